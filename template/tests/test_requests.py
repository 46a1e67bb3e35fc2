"""Requests as the network sends them: the API document tells the truth, bad clients are cut.

Each case runs against a real `bentoml serve` on a loopback port. Schemathesis checks
every answer against the service's own OpenAPI document (a status, a type or a null it
does not declare fails); raw sockets play the clients a proxy or a scanner would send:
slow, lying about their length, smuggling, oversized. Time bounds here are correctness
bounds (the server's deadline plus a generous margin), not speed targets.
"""

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mlops_kit.serving.connection import (
    BODY_SECONDS,
    HEADER_SECONDS,
    KEEP_ALIVE_SECONDS,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
)

pytestmark = pytest.mark.serving

# Margin over a server deadline before a test calls the connection "held".
MARGIN_SECONDS = 10.0
# Examples per operation: enough to reach every status, small enough for `make test-all`.
SCHEMATHESIS_EXAMPLES = 30
HALF_OPEN_CONNECTIONS = 50


def address(service: str) -> tuple[str, int]:
    host, port = service.removeprefix("http://").split(":")
    return host, int(port)


def example_body(bundle: Path) -> bytes:
    return (bundle / "example_request.json").read_bytes()


def head(method: str, path: str, headers: dict[str, str | int], version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def until_closed(
    connection: socket.socket, seconds: float, trickle: bytes = b"", every: float = 0.2
) -> tuple[bool, bytes]:
    """Read what the server answers until it closes the connection, sending ``trickle``
    one byte every ``every`` seconds meanwhile; (closed within ``seconds``, answer)."""
    deadline = time.monotonic() + seconds
    answer = b""
    connection.settimeout(every)
    while time.monotonic() < deadline:
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            chunk = None
        except OSError:
            return True, answer
        if chunk == b"":
            return True, answer
        answer += chunk or b""
        if trickle:
            try:
                connection.sendall(trickle[:1])
            except OSError:
                return True, answer
            trickle = trickle[1:]
    return False, answer


def status_of(answer: bytes) -> int | None:
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def slow_clients(bundle: Path) -> dict[str, tuple[bytes, bytes, float, int | None]]:
    """Each slow client: (sent at once, trickled a byte at a time, deadline, status expected)."""
    body = example_body(bundle)
    post = {"Content-Type": "application/json", "Content-Length": len(body)}
    endless_header = b"X-Slow: " + b"a" * 10_000
    return {
        "a connection that never sends": (b"", b"", HEADER_SECONDS, None),
        "headers a byte every 0.2 s": (
            b"GET /livez HTTP/1.1\r\n",
            endless_header,
            HEADER_SECONDS,
            408,
        ),
        "a body shorter than its Content-Length": (
            head("POST", "/predict", post) + body[:-5],
            b"",
            BODY_SECONDS,
            408,
        ),
        "a body never sent": (head("POST", "/predict", post), b"", BODY_SECONDS, 408),
        "a body a byte a second": (head("POST", "/predict", post), body, BODY_SECONDS, 408),
    }


def cut(service: str, sent: bytes, trickle: bytes, deadline: float, every: float) -> tuple:
    with socket.create_connection(address(service), timeout=5) as connection:
        connection.sendall(sent)
        return until_closed(connection, deadline + MARGIN_SECONDS, trickle, every)


def test_slow_and_lying_clients_are_cut_within_the_read_deadlines(
    service: str, bundle: Path
) -> None:
    """Fails when a client that sends nothing, trickles its headers or body, or sends
    less body than it declared keeps its connection past the read deadline (plus a
    margin), or when one that sent part of a request is not told 408."""
    cases = slow_clients(bundle)
    with ThreadPoolExecutor(len(cases)) as pool:
        outcomes = {
            name: pool.submit(
                cut, service, sent, trickle, deadline, 1.0 if "a second" in name else 0.2
            )
            for name, (sent, trickle, deadline, _) in cases.items()
        }
        results = {name: outcome.result() for name, outcome in outcomes.items()}
    held = [name for name, (closed, _) in results.items() if not closed]
    assert not held, f"connections held past the deadline + {MARGIN_SECONDS} s: {held}"
    for name, (_, answer) in results.items():
        expected = cases[name][3]
        assert status_of(answer) == expected, f"{name}: answered {answer[:80]!r}"
    still = httpx.post(
        f"{service}/predict",
        content=example_body(bundle),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert still.status_code == 200, f"the service broke after the slow clients: {still.text}"


def test_half_open_connections_are_closed(service: str) -> None:
    """Fails when connections that were opened and left silent stay open past the header
    deadline (plus a margin): each would hold a slot of the server for ever."""
    connections = [
        socket.create_connection(address(service), timeout=5) for _ in range(HALF_OPEN_CONNECTIONS)
    ]
    deadline = time.monotonic() + HEADER_SECONDS + MARGIN_SECONDS
    try:
        still_open = [
            index
            for index, connection in enumerate(connections)
            if not until_closed(connection, max(deadline - time.monotonic(), 0.1))[0]
        ]
    finally:
        for connection in connections:
            connection.close()
    assert not still_open, f"{len(still_open)} of {HALF_OPEN_CONNECTIONS} connections left open"


def test_an_idle_kept_alive_connection_is_closed(service: str) -> None:
    """Fails when a connection kept alive after an answer stays open, idle, past the
    keep-alive time (plus a margin)."""
    with socket.create_connection(address(service), timeout=5) as connection:
        connection.sendall(head("GET", "/livez", {}))
        closed, answer = until_closed(connection, KEEP_ALIVE_SECONDS + MARGIN_SECONDS)
    assert status_of(answer) == 200, answer[:80]
    assert closed, f"an idle connection was kept past {KEEP_ALIVE_SECONDS} + {MARGIN_SECONDS} s"


def bad_heads(bundle: Path) -> dict[str, tuple[bytes, int]]:
    """Requests refused from their head alone, and the status each gets."""
    body = example_body(bundle)
    json_post = {"Content-Type": "application/json"}
    many = {f"X-Header-{index}": 1 for index in range(10 * MAX_HEADERS)}
    return {
        "Content-Length with Transfer-Encoding (smuggling)": (
            head(
                "POST",
                "/predict",
                {**json_post, "Content-Length": len(body), "Transfer-Encoding": "chunked"},
            )
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
            400,
        ),
        "a Content-Length far past the body limit": (
            head("POST", "/predict", {**json_post, "Content-Length": 10**12}),
            413,
        ),
        "more headers than allowed": (head("GET", "/livez", many), 431),
        "a header larger than allowed": (
            head("GET", "/livez", {"X-Big": "a" * (4 * MAX_HEADER_BYTES)}),
            431,
        ),
        "HTTP/9.9": (head("GET", "/livez", {}, version="9.9"), 505),
    }


@pytest.mark.parametrize(
    "case",
    [
        "Content-Length with Transfer-Encoding (smuggling)",
        "a Content-Length far past the body limit",
        "more headers than allowed",
        "a header larger than allowed",
        "HTTP/9.9",
    ],
)
def test_a_bad_request_head_is_refused_and_the_connection_closed(
    service: str, bundle: Path, case: str
) -> None:
    """Fails when a request the service must not serve from its head alone (smuggling,
    an absurd length, too many or too large headers, an unknown HTTP version) is
    answered otherwise than with its 4xx/5xx, or its connection is left open."""
    sent, expected = bad_heads(bundle)[case]
    with socket.create_connection(address(service), timeout=5) as connection:
        connection.sendall(sent)
        closed, answer = until_closed(connection, MARGIN_SECONDS)
    assert status_of(answer) == expected, f"{case}: answered {answer[:120]!r}"
    assert closed, f"{case}: the connection was left open"


def api_document(service: str) -> dict:
    return httpx.get(f"{service}/docs.json", timeout=30).json()


def test_the_api_document_types_the_prediction_as_the_bundle_does(
    service: str, bundle: Path
) -> None:
    """Fails when /docs.json types ``prediction`` otherwise than the bundle predicts it (the
    classes of a classifier, a number for a regressor) or hides a nullable column's null.
    The bundle records classes as text; the service answers each in its own type (1, not
    "1"), and so does the document."""
    metadata = json.loads((bundle / "metadata.json").read_text())
    schemas = api_document(service)["components"]["schemas"]
    prediction = schemas["Prediction"]["properties"]["prediction"]
    if metadata["task"] == "classification":
        assert [str(label) for label in prediction["enum"]] == metadata["classes"]
    else:
        assert prediction["type"] == "number"
    fields = schemas["Record"]["properties"]
    for column, rules in metadata["input_schema"].items():
        nullable = {"type": "null"} in fields[column].get("anyOf", [])
        assert nullable == rules["nullable"], f"{column}: null documented {nullable}"


def test_the_api_document_lists_every_status_a_prediction_route_answers(service: str) -> None:
    """Fails when a prediction route's statuses (refusals, overload, timeout) are not
    all in /docs.json, where clients and Schemathesis read them."""
    paths = api_document(service)["paths"]
    for route in ("/predict", "/predict_batch", "/explain"):
        declared = set(paths[route]["post"]["responses"])
        missing = {"200", "400", "408", "413", "415", "429", "431", "500", "504", "505"} - declared
        assert not missing, f"{route} does not declare {sorted(missing)}"


def test_schemathesis_finds_nothing_the_api_document_does_not_declare(
    service: str, tmp_path: Path
) -> None:
    """Fails when Schemathesis, with every check, finds an answer its OpenAPI document does
    not declare (a status, a field type, a null), a 5xx, or valid data refused."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{service}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--seed",
        "1",
        "--no-color",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
