"""The service's OpenAPI document (``/docs.json``), from the models that validate requests.

BentoML writes its own document by flattening the request and answer models: a union
keeps its first member (a class label typed as a boolean), a nullable column loses its
``null``, and only 200, 400, 404 and 500 are listed. This document is built from
pydantic's own JSON Schema of the same models instead (OpenAPI 3.1 takes JSON Schema
as it is), with the label typed by the bundle (the classes it predicts, or a number),
and every status the service answers on each route: the guard's refusals, BentoML's
429 and 504, the connection's 408, 431 and 505. The generated tests check it with
Schemathesis against the running service.
"""

from typing import Any

from pydantic import BaseModel

JSON, TEXT = "application/json", "text/plain"
REF = "#/components/schemas/{model}"
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong and what to do about it"},
        "problems": {
            "type": "array",
            "description": "The first problems of a body that breaks the schema",
            "items": {
                "type": "object",
                "required": ["field", "problem", "input"],
                "properties": {
                    "field": {"type": "string"},
                    "problem": {"type": "string"},
                    "input": {"type": "string"},
                },
            },
        },
        "accepted_fields": {"type": "array", "items": {"type": "string"}},
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "string"},
    }
}


def error(description: str, *, text: bool = False, retry: bool = False) -> dict:
    """A refusal: a JSON ``{"error": ...}`` body, or plain text from the connection layer."""
    content = {TEXT: {"schema": {"type": "string"}}} if text else {JSON: {"schema": ERROR}}
    response: dict[str, Any] = {"description": description, "content": content}
    if retry:
        response["headers"] = RETRY_AFTER
    return response


# What the HTTP connection itself answers on any route, before the service sees a request.
CONNECTION = {
    "408": error("The request did not arrive within the read deadline", text=True),
    "431": error("Too many headers, or headers too large", text=True),
    "505": error("Only HTTP/1.0 and HTTP/1.1 are served", text=True),
}
PREDICTION_REFUSALS = {
    "400": {
        "description": "The body is not JSON, breaks the input schema or has unknown fields "
        "(JSON); or the request is malformed, e.g. Content-Length with Transfer-Encoding "
        "(plain text)",
        "content": {JSON: {"schema": ERROR}, TEXT: {"schema": {"type": "string"}}},
    },
    "413": error("The body is larger than serve.max_body_bytes"),
    "415": error("The body is not sent as application/json"),
    "429": error("Too many requests at once (serve.max_concurrency)", retry=True),
    "500": error("The service failed on this request"),
    "504": error("The prediction took longer than serve.timeout_seconds"),
    **CONNECTION,
}


def schema_of(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict:
    """A reference to ``model``'s JSON Schema, which goes into ``components`` with its parts."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF, mode=mode)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def text_route(description: str, body: str, extra: dict | None = None) -> dict:
    """A GET route that answers plain text (health checks, metrics)."""
    responses = {
        "200": {"description": body, "content": {TEXT: {"schema": {"type": "string"}}}},
        **(extra or {}),
        **CONNECTION,
    }
    return {"get": {"description": description, "tags": ["Infrastructure"], "responses": responses}}


def document(
    title: str,
    version: str,
    routes: dict[str, tuple[type[BaseModel], type[BaseModel], str]],
) -> dict:
    """The OpenAPI 3.1 document of the service.

    ``routes`` maps each prediction path to its request model, answer model and
    description.
    """
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for path, (request, answer, description) in routes.items():
        paths[path] = {
            "post": {
                "operationId": path.strip("/"),
                "description": description,
                "tags": ["Predictions"],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": schema_of(request, components, "validation")}},
                },
                "responses": {
                    "200": {
                        "description": "The answer",
                        "content": {
                            JSON: {"schema": schema_of(answer, components, "serialization")}
                        },
                    },
                    **PREDICTION_REFUSALS,
                },
            }
        }
    paths["/livez"] = text_route("The service is alive", "Alive")
    paths["/healthz"] = text_route("The service is alive (as /livez)", "Alive")
    paths["/readyz"] = text_route(
        "The service is ready for traffic",
        "Ready",
        {"503": error("Not ready yet", text=True, retry=True)},
    )
    paths["/metrics"] = text_route("Prometheus metrics", "Metrics in Prometheus text format")
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
