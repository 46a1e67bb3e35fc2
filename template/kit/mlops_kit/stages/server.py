"""The warm stage server: import the stages' libraries once, fork every stage from here.

``python -m mlops_kit.stages.server <socket> [dvc.yaml]`` listens on a Unix socket (in a
private folder: only its owner can connect) and, between requests, imports what the
stages of ``dvc.yaml`` import, in the order the pipeline runs them. A request (from
``stages.run``) brings the stage's arguments, folder, environment and standard streams;
the server forks, and the child becomes that stage. A stage that arrives before its
libraries are loaded is forked at once and imports what is still missing itself.

Each forked stage imports the project's own modules again, from disk: the code a stage
runs is the code DVC hashed, even if it changed since the server started. The server
serves one ``make pipeline`` and stops with it.
"""

import contextlib
import importlib
import json
import os
import select
import shlex
import signal
import socket
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from mlops_kit.stages.run import package, run_here

# What a stage loads after it starts, by its command in dvc.yaml (after `stages.run`):
# loaded right after the stage's module, so in the order the stages run. The stages
# import these inside functions, so that one run on its own loads only what it uses.
# A name starting with a dot is the kit's; "module:function" is called too.
IMPORTED_LATER = {
    "data split": ("sklearn.model_selection",),
    "train": (
        # The team's build_preprocessor imports these when called, so the service never does.
        "sklearn.compose",
        "sklearn.impute",
        "sklearn.preprocessing",
        # The team's model.py builds the estimator with Hydra's instantiate.
        "hydra.utils",
        ".registry",
        "mlflow.sklearn",
        # MLflow's SQL stores, opened by every stage that tracks or registers.
        "mlflow.store.tracking.sqlalchemy_store",
        "mlflow.store.model_registry.sqlalchemy_store",
        "alembic.runtime.migration",
        "alembic.script",
        # The map of installed packages MLflow builds to check a logged model's
        # requirements (a scan of every installed distribution): built once, here.
        "mlflow.utils.requirements_utils:_init_packages_to_modules_map",
    ),
    # Not onnxruntime: it starts C++ threads when loaded, and a forked child that exits
    # aborts joining them ("terminate called ... No such process").
    "report": ("matplotlib.pyplot",),
}


def stage_commands(dvc_file: Path) -> list[list[str]]:
    """The commands the stages of ``dvc_file`` give ``stages.run``, in pipeline order."""
    runner = f"{package()}.stages.run"
    found: list[list[str]] = []
    stages = (yaml.safe_load(dvc_file.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        commands = stage.get("cmd", []) if isinstance(stage, dict) else []
        for command in [commands] if isinstance(commands, str) else commands:
            words = shlex.split(command)
            if runner in words[:-1]:
                found.append(words[words.index(runner) + 1 :])
    return found


def qualified(name: str) -> str:
    """A module name of the table above in full: ``.registry`` is the project's."""
    return f"{package()}{name}" if name.startswith(".") else name


def imports(commands: list[list[str]]) -> Iterator[str]:
    """What to import, once each, in the order the stages need it."""
    seen: set[str] = set()
    for words in commands:
        later = IMPORTED_LATER.get(" ".join(words), IMPORTED_LATER.get(words[0], ()))
        for name in [f"{package()}.{words[0]}", *map(qualified, later)]:
            if name not in seen:
                seen.add(name)
                yield name


def preload(name: str) -> None:
    """Import ``name`` (and call its function); what fails is left to the stage to report."""
    module, _, function = name.partition(":")
    try:
        loaded = importlib.import_module(module)
        if function:
            getattr(loaded, function)()
    except Exception as error:  # noqa: BLE001 - any import error is the stage's to report
        print(f"stage server: not preloaded: {name}: {error}", file=sys.stderr)


def forget_project_modules() -> None:
    """Drop the project's modules (not this machinery) so the stage imports them from disk."""
    root = package()
    machinery = f"{root}.stages"
    for name in list(sys.modules):
        if name.partition(".")[0] == root and not name.startswith(machinery):
            del sys.modules[name]


def become_stage(request: dict, streams: list[int]) -> None:
    """In the forked child: take the caller's streams, folder and environment."""
    for target, fd in zip((0, 1, 2), streams, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # Buffering as for a new process: line by line on a terminal, in blocks otherwise.
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    forget_project_modules()


def exit_code_of(status: int) -> int:
    """A shell's exit code for a wait status (128 + N for death by signal N)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Server:
    """Accepts stage requests, forks them, reports their exit codes; preloads in between."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        # A running stage, by the descriptor that tells its end: pidfd -> (pid, caller).
        self.running: dict[int, tuple[int, socket.socket]] = {}

    def accept(self) -> tuple[dict, list[int]] | None:
        """Fork the waiting caller's stage; in the child, return its request and streams."""
        caller, _ = self.listener.accept()
        try:
            _, streams, _, _ = socket.recv_fds(caller, 1, 3)
            with caller.makefile("rb") as lines:
                request = json.loads(lines.readline())
        except (OSError, ValueError):
            caller.close()
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            # The only other threads are the BLAS libraries' idle pools, which they
            # re-create in a forked child; the server computes nothing, so no OpenMP pool
            # exists yet. multiprocessing forks the same way by default on Linux.
            warnings.filterwarnings("ignore", "This process .* is multi-threaded")
            pid = os.fork()
        if pid == 0:
            self.listener.close()
            caller.close()
            for pidfd, (_, other) in self.running.items():
                os.close(pidfd)
                other.close()
            return request, streams
        for fd in streams:
            os.close(fd)
        caller.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        self.running[os.pidfd_open(pid)] = (pid, caller)
        return None

    def finish(self, pidfd: int) -> None:
        """Report an ended stage's exit code to its caller."""
        pid, caller = self.running.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        with contextlib.suppress(OSError):  # a caller that is gone waits for no code
            caller.sendall(json.dumps({"exit_code": exit_code_of(status)}).encode() + b"\n")
        caller.close()

    def serve(self, pending: Iterable[str]) -> tuple[dict, list[int]]:
        """Serve until stopped; return only in a forked child, with its request."""
        pending = iter(pending)
        loading = True
        while True:
            ready, _, _ = select.select(
                [self.listener, *self.running], [], [], 0 if loading else None
            )
            for source in ready:
                if source is self.listener:
                    child = self.accept()
                    if child is not None:
                        return child
                else:
                    self.finish(source)
            if loading and not ready:
                name = next(pending, None)
                if name is None:
                    loading = False
                else:
                    preload(name)


def stop_at_once_on_sigterm() -> None:
    """Make SIGTERM end this process at once, whatever it is importing.

    Not ``sys.exit``: the SystemExit it raises lands inside whatever import is running,
    and a C extension's initialisation turns it into an ImportError ("initialization
    failed", as scipy's pybind11 modules do), which ``preload`` reports and goes on; the
    server then waits for stages forever, and so does ``make pipeline``. The server keeps
    nothing worth a clean shutdown: its stages are processes of their own.
    """

    def stop(_signum: int, _frame: object) -> None:
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    """Serve stages on the socket named on the command line until terminated."""
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: python -m {package()}.stages.server <socket> [dvc.yaml]")
    dvc_file = Path(sys.argv[2] if len(sys.argv) == 3 else "dvc.yaml")
    # Figures go to files: no display is looked for when matplotlib loads.
    os.environ.setdefault("MPLBACKEND", "Agg")
    stop_at_once_on_sigterm()
    server = Server(sys.argv[1])
    request, streams = server.serve(imports(stage_commands(dvc_file)))
    become_stage(request, streams)
    run_here(request["module"], request["args"])


if __name__ == "__main__":
    main()
