"""One stage: ``python -m mlops_kit.stages.run <module> [args...]``.

Runs ``python -m mlops_kit.<module> [args...]``: forked from the warm server when
``make pipeline`` started one (its socket is in ``STAGE_SERVER_SOCKET``), else here, in
this process. Either way the stage sees the same arguments, folder, environment and
standard streams, and this process exits with the stage's exit code.

Only the standard library is imported here: this process must start in milliseconds.
"""

import contextlib
import importlib
import json
import os
import runpy
import signal
import socket
import sys

SOCKET_VARIABLE = "STAGE_SERVER_SOCKET"
USAGE = "usage: python -m {package}.stages.run <module> [args...]"


def package() -> str:
    """The kit's package (this module lives in ``mlops_kit.stages``)."""
    return __package__.rsplit(".", 1)[0]


def run_here(module: str, args: list[str]) -> None:
    """Run ``python -m mlops_kit.<module> args`` in this process.

    A fault of the machine (a full disk, a damaged tracking store) ends the stage in
    the one line ``mlops_kit.core.faults`` makes of it, not in a chain of tracebacks.
    """
    sys.argv = [module, *args]
    try:
        runpy.run_module(f"{package()}.{module}", run_name="__main__", alter_sys=True)
    except Exception as error:
        faults = importlib.import_module(f"{package()}.core.faults")
        line = faults.explain(error, " ".join(["stage", module, *args]))
        if line is None:
            raise
        sys.exit(line)


def standard_streams() -> list[int]:
    """Descriptors 0, 1 and 2 to hand to the stage; /dev/null stands in for a closed one."""
    streams = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            streams.append(fd)
        except OSError:
            streams.append(os.open(os.devnull, os.O_RDWR))
    return streams


def run_warm(path: str, module: str, args: list[str]) -> int | None:
    """Have the server at ``path`` fork the stage; its exit code, or None when no server answers."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError:
        client.close()
        return None
    request = {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    with client, client.makefile("rb") as replies:
        socket.send_fds(client, [b"\0"], standard_streams())
        client.sendall(json.dumps(request).encode() + b"\n")
        started = replies.readline()
        if not started:
            return None  # the server stopped before forking: run here instead
        pid = json.loads(started)["pid"]

        # Ctrl+C or DVC stopping this stage stops the forked one too.
        def forward(signum: int, _frame: object) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        ended = replies.readline()
    if not ended:
        print(f"stage {module}: the warm stage server stopped while it ran", file=sys.stderr)
        return 1
    return json.loads(ended)["exit_code"]


def main() -> None:
    """Run the stage named on the command line, warm when a server is up."""
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(USAGE.format(package=package()))
    module, args = sys.argv[1], sys.argv[2:]
    path = os.environ.get(SOCKET_VARIABLE)
    exit_code = run_warm(path, module, args) if path else None
    if exit_code is None:
        run_here(module, args)
    else:
        sys.exit(exit_code)


if __name__ == "__main__":
    main()
