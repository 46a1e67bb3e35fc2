"""The warm stage runner: a stage forked from the server behaves as the same stage run cold.

Same output, same exit code, same folder and environment; no server, or a server that
is gone, means the stage runs in its own process. The whole pipeline through the runner
is tested in test_pipeline.py (integration tier).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_kit.stages import (
    __main__ as pipeline,
)
from mlops_kit.stages.run import (
    SOCKET_VARIABLE,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stage server for the stages these tests run: its socket's path."""
    folder = tmp_path_factory.mktemp("server")
    runner = "python -m mlops_kit.stages.run"
    (folder / "dvc.yaml").write_text(f"stages:\n  compose:\n    cmd: {runner} config\n")
    path = str(folder / "socket")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlops_kit.stages.server",
            path,
            str(folder / "dvc.yaml"),
        ],
        cwd=PROJECT_ROOT,
    )
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert process.poll() is None, "the stage server exited"
        assert time.monotonic() < deadline, "the stage server never listened"
        time.sleep(0.05)
    yield path
    process.terminate()
    process.wait(timeout=30)


def stage(*arguments: str, via: str | None, **options) -> subprocess.CompletedProcess:
    """``python -m mlops_kit.stages.run arguments``, forked from the server at ``via``."""
    env = {key: value for key, value in os.environ.items() if key != SOCKET_VARIABLE}
    if via is not None:
        env[SOCKET_VARIABLE] = via
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_kit.stages.run",
            *arguments,
        ],
        cwd=options.pop("cwd", PROJECT_ROOT),
        env={**env, **options.pop("env", {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param(["config", "--help"], id="a stage that succeeds"),
        pytest.param(["config", "--no-such-option"], id="a stage that fails on its arguments"),
    ],
)
def test_a_forked_stage_says_and_exits_as_the_same_stage_run_cold(
    server: str, arguments: list[str]
) -> None:
    cold, warm = stage(*arguments, via=None), stage(*arguments, via=server)
    assert (warm.returncode, warm.stdout, warm.stderr) == (
        cold.returncode,
        cold.stdout,
        cold.stderr,
    )


def test_a_forked_stage_works_in_the_callers_folder(server: str, tmp_path: Path) -> None:
    """`config` composes the conf/ of the folder it runs in into that folder's params.yaml."""
    for name in ("warm", "cold"):
        shutil.copytree(PROJECT_ROOT / "conf", tmp_path / name / "conf")
    warm = stage("config", via=server, cwd=tmp_path / "warm")
    cold = stage("config", via=None, cwd=tmp_path / "cold")
    assert warm.returncode == cold.returncode == 0, warm.stderr
    assert (tmp_path / "warm" / "params.yaml").read_text() == (
        tmp_path / "cold" / "params.yaml"
    ).read_text()


def test_without_a_server_the_stage_runs_in_its_own_process(tmp_path: Path) -> None:
    gone = stage("config", "--help", via=str(tmp_path / "no-server"))
    cold = stage("config", "--help", via=None)
    assert (gone.returncode, gone.stdout) == (0, cold.stdout)


@pytest.mark.slow  # the stage imports MLflow
def test_a_forked_stage_sees_the_callers_environment_and_stops_with_it(server: str) -> None:
    """`registry` prints the tracking URI of its environment (the server never had it),
    then waits on a tracking server that never answers: stopping the caller (as Ctrl+C
    or DVC would) must stop the stage, and the server must go on serving."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        caller = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlops_kit.stages.run",
                "registry",
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, SOCKET_VARIABLE: server, "MLFLOW_TRACKING_URI": uri},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert caller.stdout is not None
        first = caller.stdout.readline()
        assert first.startswith(f"tracking URI: {uri} (from MLFLOW_TRACKING_URI)"), first
        caller.send_signal(signal.SIGTERM)
        # Well before the stage's own 10 s timeout on the silent server.
        assert caller.wait(timeout=5) == 128 + signal.SIGTERM
    assert stage("config", "--help", via=server).returncode == 0


def test_the_server_stops_at_once_when_terminated_mid_import() -> None:
    """`make pipeline` stops the server when DVC is done, often while it still preloads.
    What a signal handler raises lands in the running import, and some imports swallow
    it (scipy's compiled modules turn SystemExit into an ImportError): the server must
    go all the same, or `make pipeline` waits for it forever."""
    importing = (
        "import time\n"
        "from mlops_kit.stages.server"
        " import stop_at_once_on_sigterm\n"
        "stop_at_once_on_sigterm()\n"
        "print('importing', flush=True)\n"
        "try:\n"
        "    time.sleep(60)  # an extension module's initialisation, which swallows\n"
        "except BaseException:\n"
        "    pass\n"
        "time.sleep(60)  # the server's wait for stages\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", importing], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "importing\n"
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_a_server_that_will_not_stop_is_killed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pipeline, "STOP_GRACE_S", 0.5)
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    deaf += "print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", deaf], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    pipeline.stop(process)
    assert process.returncode == -signal.SIGKILL
    assert "stage server: killed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("warm", "fork", "reason"),
    [
        ("0", True, "STAGES_WARM=0"),
        ("1", False, "cannot fork"),
        ("1", True, None),
    ],
)
def test_the_stages_run_cold_when_asked_or_when_the_system_cannot_fork(
    monkeypatch: pytest.MonkeyPatch, warm: str, fork: bool, reason: str | None
) -> None:
    monkeypatch.setenv(pipeline.WARM_VARIABLE, warm)
    if not fork:
        monkeypatch.delattr(os, "fork")
    said = pipeline.cold_reason()
    assert said == reason if reason is None else reason in said


@pytest.mark.slow  # DVC starts, twice
def test_a_cold_pipeline_is_dvc_repro_alone(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True
    )
    stage = "python -c \"open('out.txt', 'w').write('done')\""
    (tmp_path / "dvc.yaml").write_text(f"stages:\n  make:\n    cmd: {stage}\n    outs: [out.txt]\n")
    run = subprocess.run(
        [sys.executable, "-m", "mlops_kit.stages"],
        cwd=tmp_path,
        env={**os.environ, pipeline.WARM_VARIABLE: "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "each in its own process (STAGES_WARM=0)" in run.stderr
    assert (tmp_path / "out.txt").read_text() == "done"
