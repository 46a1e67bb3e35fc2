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


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user and system) of a live process and all its descendants: a server and
    its workers (BentoML's run in sessions of their own, so a session is not enough)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces: split after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0.0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


@contextmanager
def served(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[int]:
    """Run a server process for the ``with`` block, yielding its pid; stop it and its
    children afterwards."""
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
