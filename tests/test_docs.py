"""The documentation site builds without a single warning and publishes measured figures."""

import subprocess
import sys
from pathlib import Path

from conftest import TEMPLATE_ROOT


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "index.html").is_file()


def test_the_published_benchmark_tables_are_the_measured_ones() -> None:
    result = subprocess.run(
        [sys.executable, str(TEMPLATE_ROOT / "benchmarks" / "report.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
