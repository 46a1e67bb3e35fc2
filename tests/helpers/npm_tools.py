"""Tools from npm the tests run (linters, CLIs), installed once into the checkout's .tools/."""

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.projects import exclusive
from helpers.template import TEMPLATE_ROOT


def npm_tool(package: str, version: str, folder: str) -> Path:
    """``package@version`` installed into ``.tools/<folder>/`` unless it is there; the folder.

    pytest-xdist workers may ask at once: one installs, the others wait for it.
    """
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(f"Node.js and npm are needed to run {package} (npm)")
    tools = TEMPLATE_ROOT / ".tools" / folder
    tools.mkdir(parents=True, exist_ok=True)
    with exclusive(tools / ".lock"):
        if not (tools / "node_modules" / package / "package.json").exists():
            npm = ["npm", "install", "--silent", "--no-audit", "--no-fund"]
            subprocess.run([*npm, f"{package}@{version}"], cwd=tools, check=True)
    return tools
