"""The prediction service for the champion bundle, one room per module.

``bentoml serve {package}.serving.service:ModelService`` (``make serve``) starts it.
Read in the order a request travels:

- ``bundle``: opens ``models/champion``, checks every file against its sha256 and
  loads the compiled model; a bundle that does not match is refused at start-up.
- ``guard``: the outermost ASGI layer. Refuses unknown paths, bodies that are not
  JSON, too large, or hold unknown fields, cheaply and with bounded error bodies;
  adds Retry-After to 429/503 answers; counts every refusal.
- ``request_types``: the pydantic types of requests and answers, built from the
  bundle's input schema (the same rules ``conf/schema/`` gives validation).
- ``batching``: concurrent single-record requests share one model call.
- ``service``: the BentoML service and its routes.
- ``explain``: each input column's contribution to one prediction.
- ``prediction_log``: sampled predictions appended to a JSON Lines file.
- ``metrics``: what ``/metrics`` adds to BentoML's request metrics.
"""
