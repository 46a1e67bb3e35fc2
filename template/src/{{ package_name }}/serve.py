"""Serving: a BentoML service for the champion exported by the ``export`` stage.

``bentoml serve {package}.serve:ModelService`` (``make serve``) loads the bundle in
``MODEL_BUNDLE`` (default ``models/champion``). Request types are built from the
bundle's input schema, the same rules ``conf/schema/`` gives the validation stage,
so a request the model could not have been trained on is refused with a 4xx that
names the field and the problem, never a 5xx.
"""

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
import joblib
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from .config import ColumnSchema

BUNDLE = Path(os.environ.get("MODEL_BUNDLE", "models/champion"))
METADATA: dict[str, Any] = json.loads((BUNDLE / "metadata.json").read_text())
SETTINGS: dict[str, Any] = METADATA["serve"]
CLASSIFICATION = METADATA["task"] == "classification"


def field_type(rules: ColumnSchema) -> Any:
    """The pydantic type of one input column: categories, bounded numbers, nullability."""
    if rules.categories is not None:
        annotation: Any = Literal[tuple(rules.categories)]
    elif rules.dtype == "str":
        annotation = str
    else:
        number = int if rules.dtype == "int" else float
        annotation = Annotated[number, Field(ge=rules.min, le=rules.max, allow_inf_nan=False)]
    # Nullable columns accept an explicit null, but the field is still required.
    return annotation | None if rules.nullable else annotation


def record_type(input_schema: dict[str, dict]) -> type[BaseModel]:
    """A strict request model with one required field per input column, extras refused."""
    fields = {
        column: (field_type(ColumnSchema.model_validate(rules)), ...)
        for column, rules in input_schema.items()
    }
    config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    return create_model("Record", __config__=config, **fields)


Record = record_type(METADATA["input_schema"])


class Prediction(BaseModel):
    """One prediction and the model that made it."""

    prediction: str | float
    probabilities: dict[str, float] | None = None
    model_name: str
    model_version: str
    model_alias: str


class BatchPredictions(BaseModel):
    """Predictions in request order and the model that made them."""

    predictions: list[str | float]
    probabilities: list[dict[str, float]] | None = None
    model_name: str
    model_version: str
    model_alias: str


BatchOfRecords = Annotated[list[Record], Field(min_length=1, max_length=SETTINGS["max_batch_size"])]
REJECTED = bentoml.metrics.Counter(
    name="rejected_requests",
    documentation="Requests refused before reaching the model, by endpoint and status",
    labelnames=["endpoint", "status"],
)


ROUTES = {"/predict", "/predict_batch"}


def endpoint_label(scope: dict) -> str:
    """The metric label of a request's path: a known route or "other" (bounded cardinality)."""
    return scope["path"] if scope["path"] in ROUTES else "other"


class RequestGuard:
    """ASGI middleware: refuse oversized bodies (413) and count rejected requests.

    BentoML's own overload (429) and timeout (504) answers happen before this
    middleware and are counted in its ``bentoml_service_request_total``.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Handle one ASGI request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await self.read_body(receive)
        if body is None:
            await self.refuse(scope, send)
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if 400 <= status < 500:
                    REJECTED.labels(endpoint=endpoint_label(scope), status=str(status)).inc()
            await send(message)

        await self.app(scope, replay, observed_send)

    async def read_body(self, receive: Any) -> bytes | None:
        """The whole request body, or None as soon as it passes the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def refuse(self, scope: dict, send: Any) -> None:
        """Answer 413 naming the limit."""
        REJECTED.labels(endpoint=endpoint_label(scope), status="413").inc()
        body = json.dumps(
            {"error": f"request body exceeds the limit of {self.max_body_bytes} bytes"}
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class MicroBatcher:
    """Adaptive batching: concurrent single-record requests share one model call.

    Requests queue up while the model is busy; the next call takes all of them
    (up to ``max_batch_size``). A lone request is never held back waiting for
    company, so batching adds no latency when traffic is light.
    """

    def __init__(self, predict_many: Callable[[list], list], max_batch_size: int) -> None:
        self.predict_many = predict_many
        self.max_batch_size = max_batch_size
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        """Queue one item and wait for its result."""
        if self.queue is None:
            self.queue = asyncio.Queue()
            # Holding the task keeps it from being garbage-collected while it runs.
            self.worker = asyncio.create_task(self.serve_forever())
        result = asyncio.get_running_loop().create_future()
        await self.queue.put((item, result))
        return await result

    async def serve_forever(self) -> None:
        """Take whatever is queued, predict it in one call, hand back the results."""
        assert self.queue is not None
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                outputs = await asyncio.to_thread(self.predict_many, [item for item, _ in batch])
            except Exception as error:  # every waiting request gets the failure, not a hang
                for _, result in batch:
                    result.set_exception(error)
                continue
            for (_, result), output in zip(batch, outputs, strict=True):
                result.set_result(output)


@bentoml.service(
    name=METADATA["model_name"].replace("_", "-"),
    workers=SETTINGS["workers"],
    traffic={
        "timeout": SETTINGS["timeout_seconds"],
        "max_concurrency": SETTINGS["max_concurrency"],
    },
)
class ModelService:
    """Predictions from the registry's champion, one record or a batch at a time."""

    def __init__(self) -> None:
        self.model = joblib.load(BUNDLE / "model.joblib")
        self.columns = list(METADATA["input_schema"])
        self.identity = {
            "model_name": METADATA["model_name"],
            "model_version": METADATA["model_version"],
            "model_alias": METADATA["model_alias"],
        }
        self.batcher = MicroBatcher(self.predict_records, SETTINGS["batching"]["max_batch_size"])

    def frame(self, records: list[BaseModel]) -> pd.DataFrame:
        """Records as the table the pipeline was trained on (same columns and order)."""
        rows = [record.model_dump() for record in records]
        return pd.DataFrame.from_records(rows, columns=self.columns)

    def infer(self, records: list[BaseModel]) -> tuple[list, list[dict[str, float]] | None]:
        """Predicted values and, for classifiers, class probabilities."""
        table = self.frame(records)
        if not CLASSIFICATION:
            return [float(value) for value in self.model.predict(table)], None
        probabilities = self.model.predict_proba(table)
        classes = [str(label) for label in self.model.classes_]
        labels = [classes[row.argmax()] for row in probabilities]
        return labels, [dict(zip(classes, map(float, row), strict=True)) for row in probabilities]

    def predict_records(self, records: list[BaseModel]) -> list[Prediction]:
        """One Prediction per record, from a single model call."""
        values, probabilities = self.infer(records)
        return [
            Prediction(
                prediction=value,
                probabilities=probabilities[index] if probabilities else None,
                **self.identity,
            )
            for index, value in enumerate(values)
        ]

    @bentoml.api(route="/predict", input_spec=Record)
    async def predict(self, **record: Any) -> Prediction:
        """Predict one record (batched with concurrent requests)."""
        return await self.batcher.submit(Record.model_construct(**record))

    @bentoml.api(route="/predict_batch")
    def predict_batch(self, records: BatchOfRecords) -> BatchPredictions:
        """Predict a batch of records, in order."""
        values, probabilities = self.infer(records)
        return BatchPredictions(predictions=values, probabilities=probabilities, **self.identity)


ModelService.add_asgi_middleware(RequestGuard, max_body_bytes=SETTINGS["max_body_bytes"])
