"""The generated Dockerfile really builds and really serves, with podman and no registry.

Base images are made locally (tests/containers/) under the exact names the
Dockerfile's FROM lines use, once per machine: podman keeps them between runs.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import uv_executable

pytestmark = [pytest.mark.e2e, pytest.mark.container]

SCRIPTS = Path(__file__).parent / "containers"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(SCRIPTS / "containers.conf")}
FROM_LINE = re.compile(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
PYTHON_IMAGE = re.compile(r"^python:(\d+\.\d+)-slim-bookworm$")
UV_IMAGE = re.compile(r"^ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)$")
READY_SECONDS = 180


def podman(*arguments: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *arguments],
        env=PODMAN_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"podman {' '.join(arguments)} failed:\n{output}")
    return result


@pytest.fixture(scope="session")
def container_engine() -> None:
    """podman, or a skip with the reason; CI (REQUIRE_CONTAINER_TESTS=1) fails instead."""
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        reason = "podman and debootstrap are needed; .ci/run installs them with apt"
        if os.environ.get("REQUIRE_CONTAINER_TESTS"):
            pytest.fail(reason)
        pytest.skip(reason)


def base_images(dockerfile: str) -> list[str]:
    """Images the Dockerfile builds from, excluding its own stages."""
    images, stages = [], set()
    for image, alias in FROM_LINE.findall(dockerfile):
        if image not in stages:
            images.append(image)
        if alias:
            stages.add(alias)
    return images


def python_prefix(version: str) -> str:
    """Installation prefix of this machine's CPython ``version`` (never downloaded)."""
    found = subprocess.run(
        [uv_executable(), "python", "find", version],
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        check=True,
    ).stdout.strip()
    prefix = subprocess.run(
        [found, "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if prefix == "/usr":
        pytest.fail(f"Python {version} at {found} is the system's; a standalone build is needed")
    return prefix


def ensure_image(name: str) -> None:
    """Make ``name`` locally unless podman already has it."""
    if podman("image", "exists", name, check=False).returncode == 0:
        return
    if python := PYTHON_IMAGE.match(name):
        version = python.group(1)
        command = [str(SCRIPTS / "python-base.sh"), python_prefix(version), version]
        command += [name, f"docker.io/library/{name}"]
    elif uv := UV_IMAGE.match(name):
        command = [str(SCRIPTS / "uv-image.sh"), uv.group(1), name]
    else:
        pytest.fail(f"no recipe to make {name} locally; add one to tests/containers/")
    made = subprocess.run(command, env=PODMAN_ENV, capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, {"error": error.read().decode()}


def wait_until_ready(url: str) -> None:
    import urllib.request

    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"the container was not ready within {READY_SECONDS} s")


@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_the_image_builds_runs_as_non_root_and_serves_the_champion(
    trained_project, container_engine, tmp_path: Path
) -> None:
    project, _ = trained_project
    for image in base_images((project / "Dockerfile").read_text()):
        ensure_image(image)
    tag = f"localhost/{project.name}-test:{time.time_ns()}"
    # Docker image format: OCI images cannot carry a HEALTHCHECK.
    podman("build", "--pull=never", "--format", "docker", "-t", tag, str(project))
    name, port = f"served-{time.time_ns()}", free_port()
    try:
        podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:3000", tag)
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url)
        example = (project / "models" / "champion" / "example_request.json").read_bytes()
        status, answer = post_json(f"{url}/predict", example)
        assert status == 200, answer
        expected = subprocess.run(
            [
                str(project / ".venv" / "bin" / "python"),
                "-c",
                "import json, joblib, pandas as pd\n"
                "model = joblib.load('models/champion/model.joblib')\n"
                "row = json.load(open('models/champion/example_request.json'))\n"
                "print(model.predict(pd.DataFrame([row]))[0])",
            ],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert str(answer["prediction"]) == expected
        assert answer["model_alias"] == "champion"
        assert podman("exec", name, "id", "-u").stdout.strip() != "0"
        assert podman("healthcheck", "run", name, check=False).returncode == 0
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
        podman("rmi", "-f", tag, check=False)
