"""Servers on loopback: free ports, readiness, JSON requests, and stopping what was started."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(
    check: Callable[[], object],
    what: str,
    timeout: float,
    process: subprocess.Popen | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``check`` until it returns true; fail naming ``what`` (and a dead process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise TimeoutError(f"{what} was not ready after {timeout:.0f} s")


def answers_200(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 within two seconds."""
    with urllib.request.urlopen(url, timeout=2) as answer:
        return answer.status == 200


def wait_until_ready(
    url: str,
    seconds: float,
    process: subprocess.Popen | None = None,
    path: str = "/readyz",
    interval: float = 0.5,
) -> None:
    """Poll ``url`` + ``path`` until it answers 200; fail after ``seconds``, or as soon as
    ``process`` (the server, when the caller started it) has exited."""
    wait_until(lambda: answers_200(f"{url}{path}"), url, seconds, process, interval)


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    """POST a JSON body; the status and the decoded answer, errors included."""
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode(errors="replace")}


def stop_process(process: subprocess.Popen, kill: bool = False) -> None:
    """End a process started in its own session, and everything it started."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextlib.contextmanager
def running(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """Run a server process in its own session for the ``with`` block; stop it and its
    children afterwards, whatever happened."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_process(process)
