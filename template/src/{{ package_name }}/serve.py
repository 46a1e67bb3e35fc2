"""Serving: a BentoML service for the champion exported by the ``export`` stage.

``bentoml serve {package}.serve:ModelService`` (``make serve``) loads the bundle in
``MODEL_BUNDLE`` (default ``models/champion``). Request types are built from the
bundle's input schema, the same rules ``conf/schema/`` gives the validation stage,
so a request the model could not have been trained on is refused with a 4xx that
names the field and the problem, never a 5xx.

Every answer carries a ``request_id``; sampled predictions are appended to the
prediction log (``serve.prediction_log``) under the same id, so labels that arrive
later can be joined to them. ``/metrics`` adds to BentoML's request metrics the
predictions by model alias, the schema violations by field, the model's age and
the process's memory and CPU. ``/explain`` gives each input column's contribution
to one prediction. With ``serve.canary`` on and a challenger in the bundle, the
challenger answers a share of requests (split) or predicts them unseen (shadow).
"""

import asyncio
import atexit
import json
import math
import os
import queue
import random
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import bentoml
import joblib
import pandas as pd
import psutil
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from .config import ColumnSchema
from .freshness import model_age_seconds

BUNDLE = Path(os.environ.get("MODEL_BUNDLE", "models/champion"))
METADATA: dict[str, Any] = json.loads((BUNDLE / "metadata.json").read_text())
SETTINGS: dict[str, Any] = METADATA["serve"]
CLASSIFICATION = METADATA["task"] == "classification"
INPUT_COLUMNS = list(METADATA["input_schema"])
CANARY: dict[str, Any] = SETTINGS["canary"]
# The two models a bundle can hold; their alias names come from the metadata.
CHAMPION, CHALLENGER = "champion", "challenger"
# How often each worker refreshes its resource gauges between scrapes.
RESOURCE_REFRESH_SECONDS = 5.0


def whole_number(value: Any) -> Any:
    """An integral float as an int; a fractional one refused.

    A row of an all-numeric table (``DataFrame.iloc[i]``, a CSV read by pandas)
    comes as floats, so a count like 97 arrives as 97.0: the same number.
    """
    if isinstance(value, float) and math.isfinite(value):
        if not value.is_integer():
            raise ValueError(f"a whole number is expected, got {value}")
        return int(value)
    return value


def flag_as_number(value: Any) -> Any:
    """JSON true/false as 1/0: a 0..1 column is how the schema stores a boolean."""
    return int(value) if isinstance(value, bool) else value


def scalar_as_text(value: Any) -> Any:
    """A number or boolean as pandas writes it as text (``str``), for text columns."""
    return str(value) if isinstance(value, bool | int | float) else value


def field_type(rules: ColumnSchema) -> Any:
    """The pydantic type of one input column: categories, bounded numbers, nullability."""
    if rules.categories is not None:
        categories = Literal[tuple(rules.categories)]
        annotation: Any = Annotated[categories, BeforeValidator(scalar_as_text)]
    elif rules.dtype == "str":
        annotation = Annotated[str, BeforeValidator(scalar_as_text)]
    else:
        number = int if rules.dtype == "int" else float
        annotation = Annotated[number, Field(ge=rules.min, le=rules.max, allow_inf_nan=False)]
        if rules.dtype == "int":
            annotation = Annotated[annotation, BeforeValidator(whole_number)]
        if (rules.min, rules.max) == (0, 1):
            annotation = Annotated[annotation, BeforeValidator(flag_as_number)]
    # Nullable columns accept an explicit null, but the field is still required.
    return annotation | None if rules.nullable else annotation


def record_type(input_schema: dict[str, dict]) -> type[BaseModel]:
    """A strict request model with one required field per input column, extras refused.

    Fields are named ``column_0``, ``column_1``...: a column's own name (``Color
    Intensity``, ``_id``, ``model_config``, ``copy``) need not be a Python identifier
    and may clash with pydantic's attributes. Each field's alias is the column's
    name, so requests, error locations and dumps use the names the user knows.
    """
    fields = {
        f"column_{index}": (
            field_type(ColumnSchema.model_validate(rules)),
            Field(alias=column, title=column),
        )
        for index, (column, rules) in enumerate(input_schema.items())
    }
    config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )
    return create_model("Record", __config__=config, **fields)


Record = record_type(METADATA["input_schema"])
# BentoML calls an endpoint with the fields by their Python names: the column of each.
FIELD_COLUMNS = {name: field.alias for name, field in Record.model_fields.items()}
# A label is sent back with its own type: 1 stays 1, "Adelie" stays "Adelie".
Label = StrictBool | StrictInt | StrictFloat | StrictStr
Row = dict[str, Any]


def row_of(fields: dict[str, Any]) -> Row:
    """An endpoint's keyword arguments (Python field names) as a row keyed by column."""
    return {FIELD_COLUMNS[name]: value for name, value in fields.items()}


def with_value(table: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    """A copy of ``table`` with ``column`` set to ``value`` (``assign`` fails on "self")."""
    changed = table.copy()
    changed[column] = value
    return changed


def native(value: Any) -> Any:
    """A numpy scalar (a class of ``model.classes_``) as the Python value JSON carries."""
    return value.item() if hasattr(value, "item") else value


class Prediction(BaseModel):
    """One prediction, its id in the prediction log and the model that made it."""

    request_id: str
    prediction: Label
    probabilities: dict[str, float] | None = None
    model_name: str
    model_version: str
    model_alias: str


class BatchPredictions(BaseModel):
    """Predictions in request order, their ids in the prediction log and the model."""

    request_ids: list[str]
    predictions: list[Label]
    probabilities: list[dict[str, float]] | None = None
    model_name: str
    model_version: str
    model_alias: str


class Explanation(BaseModel):
    """How much each input column moved one prediction, measured by occlusion."""

    prediction: Label
    explained_output: str
    output: float
    reference_output: float
    contributions: dict[str, float]
    model_name: str
    model_version: str
    model_alias: str


BatchOfRecords = Annotated[list[Record], Field(min_length=1, max_length=SETTINGS["max_batch_size"])]
BatchRequest = create_model("BatchRequest", records=(BatchOfRecords, ...))
REJECTED = bentoml.metrics.Counter(
    name="rejected_requests",
    documentation="Requests refused before reaching the model, by endpoint and status",
    labelnames=["endpoint", "status"],
)
PREDICTIONS = bentoml.metrics.Counter(
    name="predictions",
    documentation="Predicted records by the alias of the model that predicted them (shadow too)",
    labelnames=["model_alias"],
)
SCHEMA_VIOLATIONS = bentoml.metrics.Counter(
    name="schema_violations",
    documentation="Schema violations in refused requests, by input column (unknown fields: other)",
    labelnames=["field"],
)
MODEL_AGE = bentoml.metrics.Gauge(
    name="model_age_seconds",
    documentation="Seconds since the served model's training run started",
    multiprocess_mode="max",
)
# Not process_*: prometheus_client's own process collector owns those names, and
# BentoML's multiprocess /metrics leaves it out.
RESIDENT_MEMORY = bentoml.metrics.Gauge(
    name="service_resident_memory_bytes",
    documentation="Resident memory of the service's worker processes",
    multiprocess_mode="livesum",
)
CPU_SECONDS = bentoml.metrics.Gauge(
    name="service_cpu_seconds",
    documentation="CPU time (user and system) used by the service's worker processes",
    multiprocess_mode="livesum",
)


ROUTES = {"/predict", "/predict_batch", "/explain"}
# Routes whose body is a record (or a batch of them) validated against the schema.
RECORD_MODELS: dict[str, type[BaseModel]] = {
    "/predict": Record,
    "/explain": Record,
    "/predict_batch": BatchRequest,
}


def endpoint_label(scope: dict) -> str:
    """The metric label of a request's path: a known route or "other" (bounded cardinality)."""
    return scope["path"] if scope["path"] in ROUTES else "other"


def model_identity(entry: dict) -> dict[str, str]:
    """The name, version and alias of the champion (metadata) or the challenger entry."""
    return {
        "model_name": METADATA["model_name"],
        "model_version": entry["model_version"],
        "model_alias": entry["model_alias"],
    }


def violated_fields(path: str, body: bytes) -> list[str]:
    """The input column of each schema violation in a refused body ("other" if none).

    Labels are only known input columns and "other" (unknown fields, bad JSON,
    batch size), so a caller cannot blow up the metric's cardinality.
    """
    try:
        RECORD_MODELS[path].model_validate_json(body)
    except ValidationError as error:
        names = [
            next((str(part) for part in issue["loc"] if part in INPUT_COLUMNS), "other")
            for issue in error.errors()
        ]
        return names or ["other"]
    return ["other"]  # refused for a reason the schema alone does not show


def refresh_resource_gauges() -> None:
    """Set the model-age and process resource gauges to their current values."""
    MODEL_AGE.set(model_age_seconds(METADATA["trained_at"]))
    process = psutil.Process()
    times = process.cpu_times()
    RESIDENT_MEMORY.set(process.memory_info().rss)
    CPU_SECONDS.set(times.user + times.system)


def refresh_resource_gauges_forever() -> None:
    """Keep this worker's gauges current between scrapes (runs in a daemon thread)."""
    while True:
        refresh_resource_gauges()
        threading.Event().wait(RESOURCE_REFRESH_SECONDS)


class PredictionLog:
    """Appends sampled predictions to a JSON Lines file, one line per record.

    Request handlers only put lines on a queue, so no file I/O happens on the
    event loop. One thread per worker process writes them: each drained group of
    lines goes to the file in a single ``write`` on a descriptor opened with
    ``O_APPEND``, so lines from concurrent requests, and from several workers
    sharing the file, neither interleave nor overwrite each other.
    """

    def __init__(self, path: Path, sample_rate: float) -> None:
        self.sample_rate = sample_rate
        # Opened here, so a log that cannot be written stops the worker at start-up.
        path.parent.mkdir(parents=True, exist_ok=True)
        self.descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self.write_forever, daemon=True)
        self.writer.start()
        # Lines still queued when the worker stops are written, not dropped.
        atexit.register(self.close)

    def record(self, entries: list[dict]) -> None:
        """Queue the sampled share of ``entries`` for writing."""
        for entry in entries:
            if random.random() < self.sample_rate:
                self.lines.put(json.dumps(entry, default=str))

    def write_forever(self) -> None:
        """Write queued lines until ``close`` queues the end marker."""
        try:
            while True:
                lines = [self.lines.get()]
                while not self.lines.empty():
                    lines.append(self.lines.get_nowait())
                done = None in lines
                text = "".join(f"{line}\n" for line in lines if line is not None)
                if text:
                    os.write(self.descriptor, text.encode())
                if done:
                    return
        finally:
            os.close(self.descriptor)

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self.lines.put(None)
        self.writer.join(timeout=10)


def prediction_log_path() -> Path:
    """The log file: ``PREDICTION_LOG`` when set, else ``serve.prediction_log.path``."""
    return Path(os.environ.get("PREDICTION_LOG") or SETTINGS["prediction_log"]["path"])


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
                if status in (400, 422) and scope["path"] in RECORD_MODELS:
                    for field in violated_fields(scope["path"], body):
                        SCHEMA_VIOLATIONS.labels(field=field).inc()
            await send(message)

        if scope["path"] == "/metrics":
            refresh_resource_gauges()
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
    """Predictions from the registry's champion (and canary challenger), one record or a batch."""

    def __init__(self) -> None:
        self.models = {CHAMPION: joblib.load(BUNDLE / "model.joblib")}
        self.identities = {CHAMPION: model_identity(METADATA)}
        if CANARY["mode"] != "off" and METADATA.get("challenger"):
            self.models[CHALLENGER] = joblib.load(BUNDLE / "challenger.joblib")
            self.identities[CHALLENGER] = model_identity(METADATA["challenger"])
        # Explanations are of the champion's predictions.
        self.model, self.identity = self.models[CHAMPION], self.identities[CHAMPION]
        self.columns = INPUT_COLUMNS
        self.reference = METADATA["reference"]
        self.batcher = MicroBatcher(self.predict_and_log, SETTINGS["batching"]["max_batch_size"])
        self.log = PredictionLog(prediction_log_path(), SETTINGS["prediction_log"]["sample_rate"])
        threading.Thread(target=refresh_resource_gauges_forever, daemon=True).start()

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

    def frame(self, rows: list[Row]) -> pd.DataFrame:
        """Rows as the table the pipeline was trained on (same columns and order)."""
        return pd.DataFrame.from_records(rows, columns=self.columns)

    def infer(
        self, rows: list[Row], role: str = CHAMPION
    ) -> tuple[list, list[dict[str, float]] | None]:
        """Predicted values and, for classifiers, class probabilities, of one model.

        A class comes back with the label's own type (1, not "1"); probabilities are
        keyed by the label's text, as JSON object keys must be.
        """
        model, table = self.models[role], self.frame(rows)
        if not CLASSIFICATION:
            return [float(value) for value in model.predict(table)], None
        probabilities = model.predict_proba(table)
        classes = [native(label) for label in model.classes_]
        keys = [str(label) for label in classes]
        labels = [classes[row.argmax()] for row in probabilities]
        return labels, [dict(zip(keys, map(float, row), strict=True)) for row in probabilities]

    def predict_as(self, role: str, rows: list[Row], request_ids: list[str]) -> list[Prediction]:
        """One model's predictions, from one call, counted and logged under its alias."""
        values, probabilities = self.infer(rows, role)
        identity = self.identities[role]
        predictions = [
            Prediction(
                request_id=request_id,
                prediction=value,
                probabilities=probabilities[index] if probabilities else None,
                **identity,
            )
            for index, (request_id, value) in enumerate(zip(request_ids, values, strict=True))
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

    def occlusion(self, row: Row) -> Explanation:
        """Each input column's contribution to one prediction, by occlusion.

        A column's contribution is the output minus the output with that column set
        to the reference record's value (median or most frequent in training).
        Contributions are one-at-a-time effects; with interactions between columns
        they need not add up to ``output - reference_output``.
        """
        table = self.frame([row])
        variants = [with_value(table, column, self.reference[column]) for column in self.columns]
        reference_row = pd.DataFrame([self.reference], columns=self.columns)
        grid = pd.concat([table, *variants, reference_row], ignore_index=True)
        if CLASSIFICATION:
            # The predicted class's probability, as the service predicts it (argmax).
            probabilities = self.model.predict_proba(grid)
            class_index = int(probabilities[0].argmax())
            label = native(self.model.classes_[class_index])
            outputs = [float(value) for value in probabilities[:, class_index]]
            prediction, explained = label, f"probability of {label!r}"
        else:
            outputs = [float(value) for value in self.model.predict(grid)]
            prediction, explained = outputs[0], "predicted value"
        return Explanation(
            prediction=prediction,
            explained_output=explained,
            output=outputs[0],
            reference_output=outputs[-1],
            contributions={
                column: outputs[0] - outputs[1 + index] for index, column in enumerate(self.columns)
            },
            **self.identity,
        )

    @bentoml.api(route="/predict", input_spec=Record)
    async def predict(self, **record: Any) -> Prediction:
        """Predict one record (batched with concurrent requests)."""
        return await self.batcher.submit((row_of(record), self.route()))

    @bentoml.api(route="/predict_batch")
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
        return self.occlusion(row_of(record))


ModelService.add_asgi_middleware(RequestGuard, max_body_bytes=SETTINGS["max_body_bytes"])
