"""The kit keeps its layers: import-linter checks the contracts in kit/pyproject.toml."""

import subprocess
import sys
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parents[1]


def test_the_kit_keeps_its_layers_and_no_package_has_an_import_cycle() -> None:
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), str(KIT_ROOT / "pyproject.toml")],
        cwd=KIT_ROOT.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 broken" in lint.stdout, lint.stdout
