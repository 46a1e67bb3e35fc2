"""`make setup` finds a uv that runs in the project, or installs one, or says what to do.

On a pyenv machine where uv was pip-installed into another Python, `uv` on PATH
is a pyenv shim that fails inside the project ("pyenv: uv: command not found").
These tests put a fake `uv` (or `python3`) first on a PATH holding nothing else
and read what the generated Makefile chooses; nothing is installed.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.template import render, uv_executable

PYENV_SHIM = '#!/bin/sh\necho "pyenv: uv: command not found" >&2\nexit 127\n'


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("uv") / "project", skip_tasks=True)


def a_path_with(folder: Path, **scripts: str) -> str:
    """A PATH of one folder holding the given scripts and the tools recipes need."""
    folder.mkdir()
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    for tool in ("head", "rm"):
        (folder / tool).symlink_to(shutil.which(tool))
    return str(folder)


def make(project: Path, path: str, *arguments: str) -> subprocess.CompletedProcess:
    """Run the project's make with only ``path`` on PATH and no UV in the environment."""
    return subprocess.run(
        [shutil.which("make"), "--no-print-directory", *arguments],
        cwd=project,
        env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_uv_on_path_that_fails_here_is_passed_over_for_a_private_copy(
    project: Path, tmp_path: Path
) -> None:
    path = a_path_with(tmp_path / "bin", uv=PYENV_SHIM)
    plan = make(project, path, "-n", "setup")
    assert plan.returncode == 0, plan.stderr
    assert "python3 -m venv .tools" in plan.stdout
    assert f"{project}/.tools/bin/uv sync" in plan.stdout
    assert "\nuv sync" not in plan.stdout


def test_a_uv_on_path_that_runs_is_used(project: Path, tmp_path: Path) -> None:
    path = a_path_with(tmp_path / "bin", uv=f'#!/bin/sh\nexec "{uv_executable()}" "$@"\n')
    plan = make(project, path, "-n", "setup")
    assert plan.returncode == 0, plan.stderr
    assert "\nuv sync" in plan.stdout
    assert ".tools" not in plan.stdout
    shown = make(project, path, "which-uv")
    assert shown.stdout.splitlines()[0] == "uv" and "uv " in shown.stdout


def test_uv_given_to_make_wins(project: Path, tmp_path: Path) -> None:
    path = a_path_with(tmp_path / "bin", uv=PYENV_SHIM)
    shown = make(project, path, "which-uv", f"UV={uv_executable()}")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.splitlines()[0] == uv_executable()


def test_the_private_copy_once_installed_is_used(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True)
    (project / ".tools" / "bin").mkdir(parents=True)
    (project / ".tools" / "bin" / "uv").symlink_to(uv_executable())
    path = a_path_with(tmp_path / "bin", uv=PYENV_SHIM)
    shown = make(project, path, "which-uv")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.splitlines()[0] == f"{project}/.tools/bin/uv"
    assert "python3 -m venv" not in make(project, path, "-n", "setup").stdout
    assert ".tools/" in (project / ".gitignore").read_text().splitlines()


def test_when_no_uv_can_be_had_setup_says_what_to_do(project: Path, tmp_path: Path) -> None:
    failing_python = '#!/bin/sh\necho "pyenv: python3: command not found" >&2\nexit 127\n'
    path = a_path_with(tmp_path / "bin", uv=PYENV_SHIM, python3=failing_python)
    setup = make(project, path, "setup")
    assert setup.returncode != 0
    assert "uv on PATH does not run here: pyenv: uv: command not found" in setup.stdout
    assert "Install uv yourself" in setup.stdout
    assert "make setup UV=/path/to/uv" in setup.stdout
    assert not (project / ".tools").exists()
    assert not (project / ".venv").exists(), "setup stops before creating the environment"
