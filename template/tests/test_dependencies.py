"""Dependency changes are noticed: Dependabot proposes upgrades, CI lists lockfile changes."""

from pathlib import Path

import pytest
import yaml

from mlops_kit.dependencies import (
    changes,
    locked_versions,
    markdown,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]

LOCK_BEFORE = """
version = 1
[[package]]
name = "numpy"
version = "2.1.0"
[[package]]
name = "pandas"
version = "2.2.3"
"""
LOCK_AFTER = """
version = 1
[[package]]
name = "numpy"
version = "2.2.0"
[[package]]
name = "pyarrow"
version = "18.0.0"
"""


@pytest.mark.ml_test("monitor-1")
def test_a_lockfile_change_is_listed_package_by_package() -> None:
    changed = changes(locked_versions(LOCK_BEFORE), locked_versions(LOCK_AFTER))
    assert changed == [
        ("numpy", "2.1.0", "2.2.0"),
        ("pandas", "2.2.3", "-"),
        ("pyarrow", "-", "18.0.0"),
    ]
    assert "3 locked package(s) changed against main" in markdown(changed, "main")
    assert "No locked package changed" in markdown([], "main")


@pytest.mark.ml_test("monitor-1")
def test_dependabot_watches_the_python_lockfile_and_the_actions() -> None:
    """Fails when .github/dependabot.yml stops proposing upgrades for either ecosystem."""
    config = PROJECT_ROOT / ".github" / "dependabot.yml"
    if not config.exists():
        pytest.skip("no .github/dependabot.yml (the project was rendered without GitHub Actions)")
    ecosystems = {
        update["package-ecosystem"] for update in yaml.safe_load(config.read_text())["updates"]
    }
    assert {"uv", "github-actions"} <= ecosystems, ecosystems
