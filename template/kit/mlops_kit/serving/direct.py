"""``/predict`` answered right under BentoML's request metrics, without the rest of its stack.

The generated service's latency tail at 16 connections was two to three times that of
a plain FastAPI app on the same compiled model, and none of it was the model: each
request went through BentoML's OpenTelemetry, access-log, timeout, concurrency and
context middlewares, its router and endpoint wrapper (which validates the body a second
time) and a streamed response. The guard has already validated the record, so
``DirectRoute`` (placed just inside BentoML's request metrics, which keep counting and
timing ``/predict`` under the same names) hands it to the service's handler and writes
the answer in one piece, with the same limits BentoML would apply:

- at most ``max_concurrency`` requests at once on the direct routes, beyond which it
  answers 429 (the guard adds Retry-After and counts it);
- a prediction slower than ``timeout`` seconds is answered 504;
- a failure is answered 500 with one line naming it, and logged with its traceback.

``/predict_batch`` and ``/explain`` keep BentoML's full path. BentoML's access log and
tracing spans do not cover ``/predict``: its request metrics and the prediction log do.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

# The scope key under which the guard leaves a request's validated record.
VALIDATED = "prediction_service.validated"
Handler = Callable[[BaseModel], Awaitable[BaseModel]]
# Filled by the service instance of this worker process when it starts.
HANDLERS: dict[str, Handler] = {}
logger = logging.getLogger(__name__)


def serve_directly(path: str, handler: Handler) -> None:
    """Answer validated POSTs to ``path`` with ``handler`` (an instance's async method)."""
    HANDLERS[path] = handler


async def answer(send: Any, status: int, body: bytes) -> None:
    """Send a whole JSON response."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DirectRoute:
    """ASGI middleware answering the registered routes itself (see the module docstring)."""

    def __init__(self, app: Any, timeout: float, max_concurrency: int) -> None:
        self.app = app
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Answer a validated request to a registered route; pass anything else on."""
        handler = HANDLERS.get(scope.get("path", ""))
        record = scope.get(VALIDATED)
        if handler is None or record is None:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_concurrency:
            await answer(send, 429, b'{"error": "Too many requests"}')
            return
        self.in_flight += 1
        try:
            prediction = await asyncio.wait_for(handler(record), self.timeout)
        except TimeoutError:
            problem = f"the prediction took longer than {self.timeout} s"
            await answer(send, 504, json.dumps({"error": problem}).encode())
            return
        except Exception as error:  # one line to the caller, the traceback to the log
            logger.exception("prediction failed on %s", scope["path"])
            problem = f"prediction failed: {type(error).__name__}: {error}"[:500]
            await answer(send, 500, json.dumps({"error": problem}).encode())
            return
        finally:
            self.in_flight -= 1
        await answer(send, 200, prediction.model_dump_json().encode())
