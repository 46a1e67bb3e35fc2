"""The BentoML service: routes, canary routing, and predictions from the compiled champion.

``bentoml serve {package}.serving.service:ModelService`` (``make serve``) loads the
bundle in ``MODEL_BUNDLE`` (default ``models/champion``), after checking its files.
Validated records go to the compiled model as rows; pandas runs per request only for
the team's derived features, on a small frame.
Every answer carries a ``request_id``; sampled predictions are appended to the
prediction log under the same id. With ``serve.canary`` on and a challenger in the
bundle, the challenger answers a share of requests (split) or predicts them unseen
(shadow).
"""

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import bentoml

from mlops_kit.serving import connection, direct, guard, openapi
from mlops_kit.serving.batching import MicroBatcher
from mlops_kit.serving.bundle import CHALLENGER, CHAMPION, bundle_folder, open_bundle
from mlops_kit.serving.explain import occlusion
from mlops_kit.serving.metrics import (
    PREDICTIONS,
    keep_resource_gauges_current,
    refresh_resource_gauges,
)
from mlops_kit.serving.prediction_log import PredictionLog, prediction_log_path
from mlops_kit.serving.request_types import answer_types, batch_type, record_type

BUNDLE = open_bundle(bundle_folder())
METADATA, SETTINGS = BUNDLE.metadata, BUNDLE.settings
CLASSIFICATION = METADATA["task"] == "classification"
CANARY: dict[str, Any] = SETTINGS["canary"]
Record = record_type(METADATA["input_schema"])
BatchOfRecords, BatchRequest = batch_type(Record, SETTINGS["max_batch_size"])
# BentoML calls an endpoint with the fields by their Python names: the column of each.
# A prediction is typed by what the bundle's models predict: their classes, or a number.
CLASSES = (
    list(dict.fromkeys(label for model in BUNDLE.models.values() for label in model.classes))
    if CLASSIFICATION
    else None
)
Prediction, BatchPredictions, Explanation = answer_types(CLASSES)
FIELD_COLUMNS = {name: field.alias for name, field in Record.model_fields.items()}
Row = dict[str, Any]


def row_of(fields: dict[str, Any]) -> Row:
    """An endpoint's keyword arguments (Python field names) as a row keyed by column."""
    return {FIELD_COLUMNS[name]: value for name, value in fields.items()}


@bentoml.service(
    name=METADATA["model_name"].replace("_", "-"),
    workers=SETTINGS["workers"],
    traffic={
        "timeout": SETTINGS["timeout_seconds"],
        "max_concurrency": SETTINGS["max_concurrency"],
    },
)
class ModelService:
    """Predictions from the registry's champion (and canary challenger), one record or a batch."""

    def __init__(self) -> None:
        self.models, self.identities = BUNDLE.models, BUNDLE.identities
        self.batcher = MicroBatcher(self.predict_and_log, SETTINGS["batching"]["max_batch_size"])
        self.log = PredictionLog(
            prediction_log_path(SETTINGS), SETTINGS["prediction_log"]["sample_rate"]
        )
        keep_resource_gauges_current(METADATA["trained_at"])
        direct.serve_directly("/predict", self.predict_record)

    def canary_draw(self, mode: str) -> bool:
        """Whether the challenger takes part in one request, in canary ``mode``."""
        return (
            CHALLENGER in self.models
            and CANARY["mode"] == mode
            and random.random() < CANARY["fraction"]
        )

    def route(self) -> str:
        """The model that answers a request: the challenger for a share of them in split mode."""
        return CHALLENGER if self.canary_draw("split") else CHAMPION

    def predict_as(self, role: str, rows: list[Row], request_ids: list[str]) -> list[Prediction]:
        """One model's predictions, from one call, counted and logged under its alias.

        A class comes back with the label's own type (1, not "1"); probabilities are
        keyed by the label's text, as JSON object keys must be.
        """
        model, identity = self.models[role], self.identities[role]
        values, probabilities = model.predict(rows)
        if CLASSIFICATION:
            keys = [str(label) for label in model.classes]
            shares = [dict(zip(keys, map(float, row), strict=True)) for row in probabilities]
        else:
            values, shares = [float(value) for value in values], [None] * len(rows)
        predictions = [
            Prediction(request_id=request_id, prediction=value, probabilities=share, **identity)
            for request_id, value, share in zip(request_ids, values, shares, strict=True)
        ]
        PREDICTIONS.labels(model_alias=identity["model_alias"]).inc(len(predictions))
        logged_at = datetime.now(tz=UTC).isoformat()
        self.log.record(
            [
                {
                    "request_id": prediction.request_id,
                    "time": logged_at,
                    **identity,
                    "features": row,
                    "prediction": prediction.prediction,
                    "probabilities": prediction.probabilities,
                }
                for row, prediction in zip(rows, predictions, strict=True)
            ]
        )
        return predictions

    def predict_and_log(self, requests: list[tuple[Row, str]]) -> list[Prediction]:
        """Predictions for (row, role) pairs, in order, each with a new request id.

        Each model is called once for its records. In shadow mode the challenger
        also predicts a share of the records: logged and counted under its alias,
        with the same request id, never returned to the caller.
        """
        request_ids = [uuid.uuid4().hex for _ in requests]
        answers: dict[int, Prediction] = {}
        for role in {role for _, role in requests}:
            indices = [index for index, (_, chosen) in enumerate(requests) if chosen == role]
            rows = [requests[index][0] for index in indices]
            predictions = self.predict_as(role, rows, [request_ids[i] for i in indices])
            answers.update(zip(indices, predictions, strict=True))
        shadowed = [index for index in range(len(requests)) if self.canary_draw("shadow")]
        if shadowed:
            rows = [requests[index][0] for index in shadowed]
            self.predict_as(CHALLENGER, rows, [request_ids[i] for i in shadowed])
        return [answers[index] for index in range(len(requests))]

    async def predict_record(self, record: Any) -> Prediction:
        """Predict one validated record (batched with concurrent requests)."""
        return await self.batcher.submit((record.model_dump(), self.route()))

    @bentoml.api(route="/predict", input_spec=Record)
    async def predict(self, **record: Any) -> Prediction:
        """Predict one record (batched with concurrent requests).

        The guard answers ``/predict`` through ``predict_record`` (see ``direct.py``);
        this endpoint declares the route to BentoML and serves in-process callers.
        """
        return await self.batcher.submit((row_of(record), self.route()))

    @bentoml.api(route="/predict_batch", input_spec=BatchRequest)
    def predict_batch(self, records: BatchOfRecords) -> BatchPredictions:
        """Predict a batch of records, in order, all by the same model."""
        role = self.route()
        predictions = self.predict_and_log([(record.model_dump(), role) for record in records])
        return BatchPredictions(
            request_ids=[prediction.request_id for prediction in predictions],
            predictions=[prediction.prediction for prediction in predictions],
            probabilities=[prediction.probabilities for prediction in predictions]
            if CLASSIFICATION
            else None,
            **self.identities[role],
        )

    @bentoml.api(route="/explain", input_spec=Record)
    def explain(self, **record: Any) -> Explanation:
        """How much each input column contributed to this record's prediction."""
        explanation = occlusion(
            self.models[CHAMPION], row_of(record), METADATA["reference"], CLASSIFICATION
        )
        return Explanation(**explanation, **self.identities[CHAMPION])


API_DOCUMENT = openapi.document(
    METADATA["model_name"],
    str(METADATA["model_version"]),
    {
        "/predict": (Record, Prediction, "Predict one record (batched with concurrent requests)"),
        "/predict_batch": (
            BatchRequest,
            BatchPredictions,
            "Predict a batch of records, in order, all by the same model",
        ),
        "/explain": (
            Record,
            Explanation,
            "How much each input column contributed to this record's prediction",
        ),
    },
)
connection.install()
guard.install(
    ModelService,
    routes={
        "/predict": guard.PredictionRoute(Record, list(METADATA["input_schema"])),
        "/explain": guard.PredictionRoute(Record, list(METADATA["input_schema"])),
        "/predict_batch": guard.PredictionRoute(
            BatchRequest, list(METADATA["input_schema"]), SETTINGS["max_batch_size"]
        ),
    },
    max_body_bytes=SETTINGS["max_body_bytes"],
    api_document=API_DOCUMENT,
    direct={"timeout": SETTINGS["timeout_seconds"], "max_concurrency": SETTINGS["max_concurrency"]},
    on_metrics=lambda: refresh_resource_gauges(METADATA["trained_at"]),
)
