"""The service's outermost layer: refuse bad requests cheaply, before BentoML sees them.

``install`` puts ``RequestGuard`` in front of every BentoML middleware (its request
metrics and its concurrency limit included), so:

- an unknown path is answered 404 here, and BentoML's request metrics only ever
  see known routes (the refusal is counted under ``endpoint="other"``);
- a request whose Content-Length passes ``serve.max_body_bytes`` is answered 413
  before any of its body is read, whatever the path;
- a prediction route accepts only ``application/json`` (415 otherwise), a body
  up to ``serve.max_body_bytes`` (413), and JSON whose keys are all known fields:
  unknown keys are found with one ``json.loads`` and a set difference, so a 1 MB
  body of junk keys costs milliseconds, not a full validation;
- a body that breaks the schema gets one 400 naming at most the first
  ``MAX_PROBLEMS`` problems (and how many there were), far under ``MAX_ERROR_BYTES``;
- 429 (too many requests at once) and 503 answers carry ``Retry-After`` and, like
  every refusal, are counted in ``rejected_requests_total``;
- ``/`` serves the API page from the service's own files, under a
  Content-Security-Policy that allows nothing from elsewhere, and ``/docs.json``
  the service's own OpenAPI document (``openapi.py``), not BentoML's.
"""

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mlops_kit.serving.direct import VALIDATED, DirectRoute
from mlops_kit.serving.metrics import REJECTED, SCHEMA_VIOLATIONS

MAX_PROBLEMS = 20
MAX_ERROR_BYTES = 64 * 1024
# Characters of a refused value echoed back: enough to recognise it, never the whole body.
MAX_ECHOED_CHARACTERS = 80
RETRY_AFTER_SECONDS = "1"
# Paths BentoML itself serves, answered as it answers them.
SYSTEM_ROUTES = frozenset(
    {"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json"}
)
STATIC_PREFIX = "/static_content/"
DOCS_PAGE = Path(__file__).parent / "docs_page"
DOCS_FILES = {
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/docs_page.js": (
        "docs_page.js",
        b"text/javascript; charset=utf-8",
    ),
}
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    b"connect-src 'self'; frame-ancestors 'none'"
)


@functools.cache
def docs_file(name: str) -> bytes:
    """A file of the API page, read once per worker: it never changes while serving."""
    return (DOCS_PAGE / name).read_bytes()


class Refusal(Exception):
    """A request answered with ``status`` and a JSON ``body`` before reaching BentoML."""

    def __init__(self, status: int, body: dict, fields: list[str] | None = None) -> None:
        super().__init__(body.get("error"))
        self.status, self.body, self.fields = status, body, fields or []


class ClientGone(Exception):
    """The client left (or was cut for being slow) before its body arrived: nobody to answer."""


class PredictionRoute:
    """The checks of one prediction route: its fields, its body's shape, its request model."""

    def __init__(
        self, model: type[BaseModel], columns: list[str], batch_limit: int | None = None
    ) -> None:
        self.model = model
        self.columns = columns
        self.known = frozenset(columns)
        # None: the body is one record; else a {"records": [...]} batch of at most this many.
        self.batch_limit = batch_limit

    def unknown_keys(self, record: Any, where: str) -> None:
        """Refuse a record that is not an object or holds fields the schema does not know."""
        if not isinstance(record, dict):
            raise Refusal(400, {"error": f"{where} must be a JSON object of input fields"})
        unknown = [key for key in record if key not in self.known]
        if unknown:
            shown = ", ".join(repr(key[:MAX_ECHOED_CHARACTERS]) for key in unknown[:MAX_PROBLEMS])
            raise Refusal(
                400,
                {
                    "error": f"{len(unknown)} unknown field(s) in {where}; the first: {shown}",
                    "accepted_fields": self.columns[:200],
                },
                fields=["other"],
            )

    def precheck(self, body: bytes) -> None:
        """The cheap checks: JSON, the body's shape, the batch size, unknown keys."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as error:
            problem = str(error)[:200] if isinstance(error, ValueError) else "nested too deeply"
            raise Refusal(
                400, {"error": f"the body is not valid JSON: {problem}"}, ["other"]
            ) from None
        if self.batch_limit is None:
            self.unknown_keys(document, "the request")
            return
        if not isinstance(document, dict) or set(document) != {"records"}:
            keys = list(document)[:MAX_PROBLEMS] if isinstance(document, dict) else []
            raise Refusal(
                400,
                {"error": 'a batch is {"records": [...]} and nothing else; got keys ' + str(keys)},
                ["other"],
            )
        records = document["records"]
        if not isinstance(records, list) or not 1 <= len(records) <= self.batch_limit:
            size = len(records) if isinstance(records, list) else type(records).__name__
            raise Refusal(
                400,
                {
                    "error": f"records must be a list of at least 1 and at most "
                    f"{self.batch_limit} records; got {size}"
                },
                ["other"],
            )
        for index, record in enumerate(records):
            self.unknown_keys(record, f"records[{index}]")

    def validate(self, body: bytes) -> BaseModel:
        """Full validation against the schema; a refusal names the first problems."""
        try:
            return self.model.model_validate_json(body)
        except ValidationError as error:
            issues = error.errors(include_url=False, include_context=False)
            fields = [
                next((str(part) for part in issue["loc"] if part in self.known), "other")
                for issue in issues
            ]
            problems = [
                {
                    "field": ".".join(map(str, issue["loc"])),
                    "problem": issue["msg"],
                    "input": repr(issue.get("input"))[:MAX_ECHOED_CHARACTERS],
                }
                for issue in issues[:MAX_PROBLEMS]
            ]
            count = error.error_count()
            shown = f"; the first {MAX_PROBLEMS}" if count > MAX_PROBLEMS else ""
            summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:3])
            raise Refusal(
                400,
                {
                    "error": f"{count} problem(s) with the request{shown}: {summary}",
                    "problems": problems,
                },
                fields or ["other"],
            ) from None

    def check(self, body: bytes) -> BaseModel:
        """The validated request; a ``Refusal`` unless ``body`` is one this route can predict."""
        self.precheck(body)
        return self.validate(body)


async def answer(send: Any, status: int, body: bytes, content_type: bytes, extra=()) -> None:
    """Send a whole response."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


def json_body(content: dict) -> bytes:
    """A refusal's body, cut to ``MAX_ERROR_BYTES`` whatever the content."""
    encoded = json.dumps(content, default=str).encode()
    if len(encoded) <= MAX_ERROR_BYTES:
        return encoded
    return json.dumps({"error": str(content.get("error", ""))[: MAX_ERROR_BYTES // 2]}).encode()


def declared_length(scope: dict) -> int:
    """The request's Content-Length (uvicorn has checked it is a number), or 0."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value)
    return 0


def media_type(scope: dict) -> str:
    """The request's content type without parameters (``; charset=...``), lower-cased."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


class RequestGuard:
    """ASGI middleware in front of the whole service (see the module's docstring)."""

    def __init__(
        self,
        app: Any,
        routes: dict[str, PredictionRoute],
        max_body_bytes: int,
        api_document: dict,
        on_metrics: Callable[[], None],
    ) -> None:
        self.app = app
        self.api_document = json.dumps(api_document).encode()
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.on_metrics = on_metrics

    def label(self, path: str) -> str:
        """The metric label of a path: a known route, or "other" (bounded cardinality)."""
        return path if path in self.routes or path in SYSTEM_ROUTES else "other"

    def known(self, path: str) -> bool:
        """Whether the service has ``path``."""
        return (
            path in self.routes
            or path in SYSTEM_ROUTES
            or path in DOCS_FILES
            or path.startswith(STATIC_PREFIX)
        )

    async def refuse(self, scope: dict, send: Any, refusal: Refusal) -> None:
        """Answer a refusal and count it (and its schema violations)."""
        REJECTED.labels(endpoint=self.label(scope["path"]), status=str(refusal.status)).inc()
        for field in refusal.fields:
            SCHEMA_VIOLATIONS.labels(field=field).inc()
        extra = [(b"connection", b"close")] if refusal.status == 413 else []
        await answer(send, refusal.status, json_body(refusal.body), b"application/json", extra)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Handle one ASGI request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not self.known(path):
            routes = sorted(self.routes)
            refusal = Refusal(404, {"error": f"no such path; the prediction routes: {routes}"})
            await self.refuse(scope, send, refusal)
            return
        if declared_length(scope) > self.max_body_bytes:
            await self.refuse(scope, send, self.too_large())
            return
        if path in DOCS_FILES:
            name, content_type = DOCS_FILES[path]
            page = docs_file(name)
            policy = [(b"content-security-policy", CONTENT_SECURITY_POLICY)]
            await answer(send, 200, page, content_type, policy)
            return
        if path == "/docs.json":
            await answer(send, 200, self.api_document, b"application/json")
            return
        if path == "/metrics":
            self.on_metrics()
        route = self.routes.get(path)
        if route is None or scope.get("method") != "POST":
            await self.app(scope, receive, self.counting(scope, send))
            return
        try:
            if media_type(scope) != "application/json":
                raise Refusal(
                    415,
                    {"error": "send the body as JSON, with content-type: application/json"},
                )
            body = await self.read_body(receive)
            scope[VALIDATED] = route.check(body)
        except ClientGone:
            return
        except Refusal as refusal:
            await self.refuse(scope, send, refusal)
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, self.counting(scope, send))

    def counting(self, scope: dict, send: Any) -> Callable:
        """``send``, counting refusals from inside and adding Retry-After to 429 and 503."""

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if 400 <= status < 500 or status == 503:
                    REJECTED.labels(endpoint=self.label(scope["path"]), status=str(status)).inc()
                if status in (429, 503):
                    headers = list(message.get("headers", []))
                    headers.append((b"retry-after", RETRY_AFTER_SECONDS.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        return observed_send

    def too_large(self) -> Refusal:
        """The refusal of a body past the limit."""
        return Refusal(
            413, {"error": f"request body exceeds the limit of {self.max_body_bytes} bytes"}
        )

    async def read_body(self, receive: Any) -> bytes:
        """The whole request body; a 413 refusal as soon as it passes the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self.too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def install(service: Any, direct: dict[str, Any], **options: Any) -> None:
    """Put ``RequestGuard`` in front of the service's middlewares, ``DirectRoute`` inside.

    ``DirectRoute`` (with the ``direct`` options) goes just inside BentoML's request
    metrics (see ``direct.py``).

    BentoML's ``add_asgi_middleware`` places a middleware inside its own request
    metrics and concurrency limit, too late to keep unknown paths out of the
    metrics or to add Retry-After to its 429. Its app factory's middleware list is
    extended instead, for this service only; BentoML is pinned below 1.5, and the
    generated tests fail if this stops working.
    """
    from _bentoml_impl.server.app import ServiceAppFactory
    from starlette.middleware import Middleware

    middlewares = ServiceAppFactory.middlewares

    def guarded(factory: Any) -> list:
        inner = middlewares.fget(factory)
        if factory.service.name != service.name:
            return inner
        metrics = [
            index for index, middleware in enumerate(inner) if "Metrics" in middleware.cls.__name__
        ]
        at = metrics[0] + 1 if metrics else 0
        return [
            Middleware(RequestGuard, **options),
            *inner[:at],
            Middleware(DirectRoute, **direct),
            *inner[at:],
        ]

    ServiceAppFactory.middlewares = property(guarded)
