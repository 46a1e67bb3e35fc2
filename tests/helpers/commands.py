"""A generated project's commands, run as its user would run them from a shell."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.template import uv_executable

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def developer_environment() -> dict[str, str]:
    """The environment of a developer's shell in a generated project.

    The project has its own .venv, so the template's must not leak into it (neither
    VIRTUAL_ENV nor its bin/ on PATH: under it commands ran measurably slower and
    unlike a user's); CI's CI=true would make `make setup` refuse to re-lock; and a
    generated Makefile never passes PYTHONDONTWRITEBYTECODE on; under CI's own `make`
    (MAKELEVEL, MAKEFLAGS) a project's make would call itself make[1] and take the
    outer make's flags.
    """
    own_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != own_bin)
    dropped = ("VIRTUAL_ENV", "CI", "PYTHONDONTWRITEBYTECODE", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    return {**environment, "PATH": path}


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
    """Run a command with the project's own interpreter and tools; fail the test if it fails."""
    result = subprocess.run(
        [str(project / ".venv" / "bin" / command[0]), *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def git(*arguments: str, cwd: Path) -> str:
    """Run git in ``cwd`` as a test identity; its output. Raises with git's error."""
    result = subprocess.run(
        ["git", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_IDENTITY},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(arguments)} failed: {result.stderr}")
    return result.stdout


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
