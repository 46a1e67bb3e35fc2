"""Tools from npm the tests run (linters, CLIs), each installed once into its own folder."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers.projects import exclusive
from helpers.template import TEMPLATE_ROOT


def checkout_tools(name: str) -> Path:
    """``.tools/<name>/`` of this checkout: where a quick-to-install tool is kept."""
    return TEMPLATE_ROOT / ".tools" / name


def machine_tools(name: str) -> Path:
    """``<user cache>/copier-mlops/<name>/``: where a tool that compiles on install is kept,
    so that a later run or another clone on this machine reuses it."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "copier-mlops" / name


def npm_tool(package: str, version: str, folder: Path) -> Path:
    """``package@version`` installed into ``folder`` unless it is there; the folder.

    pytest-xdist workers may ask at once: one installs, the others wait for it. The
    install is made aside and moved in whole, so an interrupted one leaves no half tool.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(f"Node.js and npm are needed to run {package} (npm)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(folder.parent / f"{folder.name}.lock"):
        if not (folder / "node_modules" / package / "package.json").exists():
            staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".installing-"))
            npm = ["npm", "install", "--silent", "--no-audit", "--no-fund"]
            subprocess.run([*npm, f"{package}@{version}"], cwd=staging, check=True)
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
    return folder
