"""The template as a user meets it: its questions, and a render of its working tree."""

import os
import shutil
import subprocess
from pathlib import Path

import yaml
from copier import run_copy

TEMPLATE_ROOT = Path(__file__).resolve().parents[2]
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


def hooks_dir() -> Path:
    """The folder of scripts copier tasks run."""
    return TEMPLATE_ROOT / "hooks"


def uv_executable() -> str:
    """The uv binary the Makefile installed or found (``UV`` wins)."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise RuntimeError("uv not found: run the tests through `make test`, which installs it")
    return found


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
    raise RuntimeError(
        f"none of the Python versions {candidates} is installed; uv will not download one"
    )
