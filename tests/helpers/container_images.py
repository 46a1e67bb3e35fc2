"""Base images for container builds, made locally: no Docker engine, no registry.

The generated Dockerfile builds FROM official images (python, uv). Here podman has
no registry to pull them from, so tests/helpers/containers/ holds a recipe per image that
makes a stand-in under the exact name the FROM line uses, once per machine: podman
keeps them between runs.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.projects import exclusive
from helpers.template import TEMPLATE_ROOT, uv_executable

SCRIPTS = Path(__file__).parent / "containers"
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(SCRIPTS / "containers.conf")}
FROM_LINE = re.compile(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)
PYTHON_IMAGE = re.compile(r"^python:(\d+\.\d+)-slim-bookworm$")
LOCK = TEMPLATE_ROOT / ".tools" / "base-images.lock"
# Where Debian's catatonit package puts the binary, by release.
CATATONIT = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit")
UV_IMAGE = re.compile(r"^ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)$")


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


def missing_engine(reason: str) -> None:
    """Skip with ``reason``; CI (REQUIRE_CONTAINER_TESTS=1) fails instead."""
    if os.environ.get("REQUIRE_CONTAINER_TESTS"):
        pytest.fail(reason)
    # A developer without podman still runs every other test; CI sets
    # REQUIRE_CONTAINER_TESTS, so there this can never pass by being skipped.
    pytest.skip(reason)


def require_container_engine() -> None:
    """podman, or a skip with the reason; CI (REQUIRE_CONTAINER_TESTS=1) fails instead."""
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        missing_engine("podman and debootstrap are needed; .ci/run installs them with apt")


def require_pod_support() -> None:
    """What `podman kube play` needs beyond podman: catatonit, the pause process of a
    pod's infra container ("finding pause binary: catatonit" otherwise). A skip with the
    reason, or a failure under REQUIRE_CONTAINER_TESTS=1."""
    require_container_engine()
    if not any(Path(path).is_file() for path in CATATONIT):
        missing_engine("podman kube play needs catatonit; .ci/run installs it with apt")


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
        pytest.fail(f"no recipe to make {name} locally; add one to tests/helpers/containers/")
    # The recipes fetch release files with the same uv the tests use.
    env = {**PODMAN_ENV, "UV": uv_executable()}
    made = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout + made.stderr


def ensure_base_images(dockerfile: Path) -> None:
    """Make every image ``dockerfile`` builds from, unless podman has it already."""
    require_container_engine()
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    # Two workers may need the same image at once (the serving and dev container
    # builds): one makes it, the other waits and finds it made.
    with exclusive(LOCK):
        for image in base_images(dockerfile.read_text()):
            ensure_image(image)
