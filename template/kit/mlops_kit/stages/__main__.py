"""The pipeline, warm: ``python -m mlops_kit.stages [dvc repro flags]`` (``make pipeline``).

Starts the warm stage server in a private folder, runs ``dvc repro`` with its socket in
the environment, and stops the server when DVC is done, whatever happened. The exit code
is DVC's. After DVC, a run left open by a stage killed in an earlier pipeline (whose
stage DVC may have restored from its cache rather than run) is closed. When nothing
changed, DVC runs no stage and the server's work is only wasted on the other core.
"""

import os
import socket
import subprocess
import sys
import tempfile

from mlops_kit.stages.run import SOCKET_VARIABLE, package, run_warm

# Left by a train stage that was killed (``registry.OPEN_RUN_MARKER``; named here so
# that a pipeline with nothing to tidy never imports MLflow).
OPEN_RUN_MARKER = os.path.join(".dvc", "tmp", "open-training-run")

# How long a terminated server may take to go: it exits on SIGTERM at once (see
# server.stop_at_once_on_sigterm), so this is only the backstop before SIGKILL.
STOP_GRACE_S = 10


def stop(server: subprocess.Popen) -> None:
    """Stop the server, killing it if it has not gone within STOP_GRACE_S."""
    server.terminate()
    try:
        server.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        print("stage server: killed, it did not stop when asked", file=sys.stderr)


# `make pipeline WARM=0` (or STAGES_WARM=0): every stage in a process of its own.
WARM_VARIABLE = "STAGES_WARM"


def cold_reason() -> str | None:
    """Why the stages run cold (each in its own process), or None to run them warm."""
    if os.environ.get(WARM_VARIABLE, "1") == "0":
        return f"{WARM_VARIABLE}=0"
    if not hasattr(os, "fork") or not hasattr(socket, "AF_UNIX"):
        return "this system cannot fork a process or listen on a Unix socket"
    return None


def tidy(server: str | None = None) -> None:
    """Close the runs a killed stage left open.

    Forked from the warm server at ``server`` when it answers, else in a process of its own.
    """
    if not os.path.exists(OPEN_RUN_MARKER):
        return
    if server is None or run_warm(server, "registry", ["tidy"]) is None:
        subprocess.call([sys.executable, "-m", f"{package()}.registry", "tidy"])


def run_cold(reason: str) -> int:
    """``dvc repro`` alone: each stage imports its libraries itself."""
    print(f"stages: each in its own process ({reason})", file=sys.stderr)
    try:
        exit_code = subprocess.call([sys.executable, "-m", "dvc", "repro", *sys.argv[1:]])
    except KeyboardInterrupt:
        return 130
    tidy()
    return exit_code


def main() -> None:
    """Run ``dvc repro`` with the arguments given, beside a warm stage server."""
    reason = cold_reason()
    if reason is not None:
        sys.exit(run_cold(reason))
    with tempfile.TemporaryDirectory(prefix="stage-server-") as folder:
        path = os.path.join(folder, "socket")
        log_path = os.path.join(folder, "server.log")
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", f"{package()}.stages.server", path],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            exit_code = subprocess.call(
                [sys.executable, "-m", "dvc", "repro", *sys.argv[1:]],
                env={**os.environ, SOCKET_VARIABLE: path},
            )
        except KeyboardInterrupt:
            exit_code = 130
        try:
            tidy(path)
        except KeyboardInterrupt:
            exit_code = 130
        finally:
            stop(server)
        with open(log_path) as log:
            # What the server could not load: the stage that needed it said why.
            sys.stderr.write(log.read())
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
