"""The HTTP connection under the service: slow, lying and malformed clients are cut here.

BentoML runs each worker on uvicorn's h11 protocol, which waits for a request's
headers and body for as long as the client keeps sending a byte now and then, keeps a
connection that never sends anything open for ever, and serves a request carrying both
Content-Length and Transfer-Encoding (request smuggling behind a proxy that reads the
other one), any HTTP version and headers of any size once they arrive whole. BentoML
exposes none of uvicorn's settings but ``timeout_keep_alive``, so ``install`` makes
``GuardedH11Protocol`` the protocol uvicorn loads (its ``http="auto"`` and ``"h11"``
names), in every worker, before uvicorn starts. It:

- closes a connection whose request line and headers have not all arrived within
  ``HEADER_SECONDS`` of its first byte (or of the connection, when it sends nothing);
- answers 408 and closes when a body has not all arrived within ``BODY_SECONDS`` of
  its headers (a body shorter than its Content-Length, a byte a second);
- closes an idle kept-alive connection after ``KEEP_ALIVE_SECONDS``;
- answers 400 to Content-Length with Transfer-Encoding, 431 to more than
  ``MAX_HEADERS`` headers or ``MAX_HEADER_BYTES`` of them, 505 to a version other than
  HTTP/1.0 or HTTP/1.1, and closes the connection after each.

A Content-Length above ``serve.max_body_bytes`` is refused (413) by the guard, before
any of the body is read.
"""

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Seconds from a request's first byte to the end of its headers.
HEADER_SECONDS = 5.0
# Seconds from the end of a request's headers to the end of its body.
BODY_SECONDS = 8.0
# Seconds an idle kept-alive connection stays open for its next request.
KEEP_ALIVE_SECONDS = 5
MAX_HEADERS = 100
# Request line and headers together; h11 refuses an unfinished head past its own 16 KB.
MAX_HEADER_BYTES = 16 * 1024
VERSIONS = frozenset({b"1.0", b"1.1"})
REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
}


def refused(status: int, problem: str) -> h11.RemoteProtocolError:
    """The error that makes uvicorn answer and close; ``status`` rides on it."""
    return h11.RemoteProtocolError(problem, error_status_hint=status)


def check_request(request: h11.Request) -> None:
    """Raise a refusal for a request head this service does not accept."""
    if request.http_version not in VERSIONS:
        raise refused(505, "only HTTP/1.0 and HTTP/1.1 are served")
    if len(request.headers) > MAX_HEADERS:
        raise refused(431, f"more than {MAX_HEADERS} headers")
    size = len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers)
    if size > MAX_HEADER_BYTES:
        raise refused(431, f"request line and headers exceed {MAX_HEADER_BYTES} bytes")
    names = {name.lower() for name, _ in request.headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        raise refused(400, "Content-Length and Transfer-Encoding together are refused")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines and limits on the request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = KEEP_ALIVE_SECONDS
        self.deadline: asyncio.TimerHandle | None = None
        self.refusal: tuple[int, str] | None = None
        parse = self.conn.next_event

        def next_event() -> Any:
            # Every event uvicorn reads passes here: the place to check a head and to
            # move the read deadline from headers to body to none.
            try:
                event = parse()
                if isinstance(event, h11.Request):
                    check_request(event)
                    self.arm(BODY_SECONDS)
                elif isinstance(event, h11.EndOfMessage):
                    self.disarm()
            except h11.RemoteProtocolError as error:
                self.disarm()
                self.refusal = (error.error_status_hint, str(error))
                raise
            return event

        self.conn.next_event = next_event

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock at once: a connection that never sends is closed too."""
        super().connection_made(transport)
        self.arm(HEADER_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock with the connection."""
        self.disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """The first byte of a kept-alive connection's next request starts its clock."""
        if self.deadline is None and self.conn.their_state is h11.IDLE:
            self.arm(HEADER_SECONDS)
        super().data_received(data)

    def arm(self, seconds: float) -> None:
        """Cut the connection unless the current part of the request arrives in time."""
        self.disarm()
        self.deadline = self.loop.call_later(seconds, self.expire)

    def disarm(self) -> None:
        """No deadline: the request is in, or the connection is gone."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def expire(self) -> None:
        """Answer 408 if the client sent part of a request and nothing was answered; close."""
        self.deadline = None
        if self.transport.is_closing():
            return
        started = self.cycle is not None and self.cycle.response_started
        waiting = self.conn.their_state is h11.SEND_BODY or self.conn.trailing_data[0]
        if waiting and not started:
            body = b"the request did not arrive in time"
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer a refused request as uvicorn does, with the refusal's status and reason."""
        status, problem = self.refusal or (400, msg)
        self.refusal = None
        body = problem.encode("ascii", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        reason = REASONS.get(status, REASONS[400])
        for event in (
            h11.Response(status_code=status, headers=headers, reason=reason),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def install() -> None:
    """Make uvicorn load ``GuardedH11Protocol`` in this process (uvicorn loads it later)."""
    from uvicorn.config import HTTP_PROTOCOLS

    path = f"{__name__}:{GuardedH11Protocol.__name__}"
    HTTP_PROTOCOLS["auto"] = HTTP_PROTOCOLS["h11"] = path
