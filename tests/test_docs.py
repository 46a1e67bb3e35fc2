"""The documentation site builds without a single warning and publishes measured figures."""

import ast
import re
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


def ml_test_ids(node: ast.expr) -> list[str]:
    """Rubric ids of every `pytest.mark.ml_test(...)` call inside ``node``."""
    return [
        argument.value
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "ml_test"
        for argument in call.args
        if isinstance(argument, ast.Constant)
    ]


def marked_checks(project: Path) -> dict[str, set[str]]:
    """Rubric id -> `file::test` of every generated test carrying its marker."""
    checks: dict[str, set[str]] = {}
    for path in sorted((project / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_ids = [
            rubric_id
            for statement in tree.body
            if isinstance(statement, ast.Assign)
            and any(getattr(target, "id", "") == "pytestmark" for target in statement.targets)
            for rubric_id in ml_test_ids(statement.value)
        ]
        for function in tree.body:
            if isinstance(function, ast.FunctionDef) and function.name.startswith("test_"):
                own = [i for decorator in function.decorator_list for i in ml_test_ids(decorator)]
                for rubric_id in {*module_ids, *own}:
                    checks.setdefault(rubric_id, set()).add(f"{path.name}::{function.name}")
    return checks


def documented_checks() -> dict[str, set[str]]:
    """Rubric id -> the `file::test` names the mapping table of docs/ml-test-score.md lists."""
    page = (TEMPLATE_ROOT / "docs" / "ml-test-score.md").read_text()
    documented: dict[str, set[str]] = {}
    for line in page.splitlines():
        row = re.match(r"^\| (data|model|infra|monitor)-(\d) \|(.*)$", line)
        if row:
            names = set(re.findall(r"`(test_\w+\.py::test_\w+)`", row.group(3)))
            documented[f"{row.group(1)}-{row.group(2)}"] = names
    return documented


def test_the_ml_test_score_page_maps_every_rubric_test_to_checks_that_exist(
    render_project,
) -> None:
    project = render_project()
    marked, documented = marked_checks(project), documented_checks()
    assert len(documented) == 28, sorted(documented)
    for rubric_id, names in documented.items():
        missing = names - marked.get(rubric_id, set())
        assert not missing, f"{rubric_id}: documented but not marked in the project: {missing}"
    undocumented = {i: checks - documented.get(i, set()) for i, checks in marked.items()}
    assert not any(undocumented.values()), {i: c for i, c in undocumented.items() if c}
