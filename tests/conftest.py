"""Fixtures that render the template with copier's Python API, as a user would."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from copier import run_copy

# How long a generated service may take to answer /readyz.
STARTUP_SECONDS = 120
TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
COPIER_CONFIG = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())


def question_choices(name: str) -> list[str]:
    """The values a multiple-choice question accepts, as listed in copier.yml."""
    choices = COPIER_CONFIG[name]["choices"]
    return list(choices.values()) if isinstance(choices, dict) else list(choices)


def render(destination: Path, skip_tasks: bool = False, **answers: str) -> Path:
    """Render the template's working tree into ``destination`` with defaults plus ``answers``."""
    run_copy(
        str(TEMPLATE_ROOT),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        vcs_ref="HEAD",
        quiet=True,
        skip_tasks=skip_tasks,
    )
    return destination


@pytest.fixture
def render_project(tmp_path: Path) -> Callable[..., Path]:
    """Render into a fresh temporary folder; answers are keyword arguments."""

    def _render(skip_tasks: bool = True, **answers: str) -> Path:
        return render(tmp_path / "project", skip_tasks=skip_tasks, **answers)

    return _render


def uv_executable() -> str:
    """The uv binary the Makefile installed or found (``UV`` wins)."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv not found: run the tests through `make test`, which installs it")
    return found


def developer_environment() -> dict[str, str]:
    """The environment as from a developer's shell in a generated project.

    The project has its own .venv, so the template's must not leak into it, and CI's
    CI=true would make `make setup` refuse to re-lock.
    """
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CI")}


def run_make(
    project: Path, target: str, *variables: str, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run a make target of a generated project (``NAME=value`` variables may hold spaces);
    fail the test with its output."""
    result = subprocess.run(
        ["make", "--no-print-directory", target, *variables, f"UV={uv_executable()}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=developer_environment(),
    )
    if result.returncode != 0:
        output = f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        pytest.fail(f"make {target} failed in {project}:\n{output}")
    return result


def in_project(project: Path, *command: str) -> subprocess.CompletedProcess:
    """Run a command with the project's own interpreter and tools."""
    result = subprocess.run(
        [str(project / ".venv" / "bin" / command[0]), *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def hadolint(project: Path, dockerfile: str) -> subprocess.CompletedProcess:
    """Lint a generated Dockerfile with hadolint (a dev dependency), warnings and infos too."""
    linter = Path(sys.executable).parent / "hadolint"
    return subprocess.run(
        [str(linter), "--failure-threshold", "info", dockerfile],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def hooks_dir() -> Path:
    """The folder of scripts copier tasks run."""
    return TEMPLATE_ROOT / "hooks"


def available_python_version() -> str:
    """The default Python version if uv finds it here, else the first offered one found.

    Interpreters are never downloaded (UV_PYTHON_DOWNLOADS=never).
    """
    default = str(COPIER_CONFIG["python_version"]["default"])
    candidates = [default, *(v for v in question_choices("python_version") if v != default)]
    for version in candidates:
        probe = subprocess.run(
            [uv_executable(), "python", "find", version],
            capture_output=True,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
            check=False,
        )
        if probe.returncode == 0:
            return version
    pytest.fail(f"none of the Python versions {candidates} is installed; uv will not download one")


@pytest.fixture(scope="session", params=question_choices("ml_task"))
def trained_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    """A project per task, rendered with defaults, set up, with one pipeline run.

    Shared by every end-to-end test of the session, so each environment is
    installed and each model trained once.
    """
    task = request.param
    project = render(
        tmp_path_factory.mktemp(task) / "project",
        ml_task=task,
        python_version=available_python_version(),
    )
    run_make(project, "setup")
    first_run = run_make(project, "pipeline")
    return project, first_run


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    """POST a JSON body to a service the test started; the status and the decoded
    answer, errors included."""
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode(errors="replace")}


def wait_until_ready(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url``/readyz until it answers 200; fail after ``seconds``, or as soon as
    ``process`` (the service, when the test started it) has exited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail("the service exited during start-up")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} was not ready within {seconds} s")


@contextlib.contextmanager
def make_serve(project: Path, log: str, startup_seconds: float = STARTUP_SECONDS) -> Iterator[str]:
    """The project's own `make serve` on a free loopback port (its URL), logging its
    predictions to ``log`` (relative to the project); stopped afterwards, whatever happens."""
    from team_stack import free_port  # boto3 behind it: imported only when serving

    port = free_port()
    environment = {
        **developer_environment(),
        "BENTOML_HOME": str(project / ".bentoml-test"),
        "PREDICTION_LOG": str(project / log),
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"PORT={port}", f"UV={uv_executable()}"],
        cwd=project,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, startup_seconds, process)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def served_answers(
    project: Path, bodies: list[bytes], log: str = "logs/own-data-test.jsonl"
) -> list[tuple[int, dict]]:
    """Start the project's service (`make serve`) on a loopback port, post each body, stop it.

    The service logs the predictions to ``log`` (relative to the project).
    """
    with make_serve(project, log) as url:
        return [post_json(f"{url}/predict", body) for body in bodies]
