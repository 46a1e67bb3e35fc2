"""Starting a server for a benchmark and waiting until it answers."""

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY_SECONDS = 120


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, poll_seconds: float = 0.5, path: str = "/readyz") -> None:
    """Poll ``url``+``path`` until it answers 200, for at most READY_SECONDS."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(poll_seconds)
    raise TimeoutError(f"{url} not ready within {READY_SECONDS} s")


def session_cpu_seconds(session: int) -> float:
    """CPU time (user and system) of every live process of a session: a server and its
    workers, which it starts in its own session."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces: split after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@contextmanager
def served(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[int]:
    """Run a server process for the ``with`` block, yielding its session id (its pid); stop
    it and its children afterwards."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process.pid
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
