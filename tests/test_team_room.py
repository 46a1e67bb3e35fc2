"""A team works in its own room: a few files of its ML beside the kit, which it never edits.

The room (``src/<package>/``) holds the team's features, model, metrics and data
hooks; the machinery is the kit (``kit/mlops_kit/``). These stories check the line
between them on rendered projects: the room stays small, neither package has an import
cycle, a config file alone adds an estimator, a metric added to ``metrics.py`` is
scored and gated, and a wrong metric name stops evaluation in one line.
"""

import ast
import json
import subprocess
from pathlib import Path

import pytest

from helpers.commands import run_make
from helpers.template import question_choices, render

ROOM_FILES = {"__init__.py", "data.py", "features.py", "metrics.py", "model.py"}
ROOM_LINES = 600


def python_modules(package_dir: Path, name: str) -> dict[str, Path]:
    """Every module of a package folder by dotted name (``__init__`` as the package)."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([name, *parts])] = path
    return modules


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The known modules ``module`` imports, at any depth of its code (lazy imports too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            prefix = base if node.level else ""
            stem = ".".join(part for part in (prefix, node.module or "") if part)
            targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in graph[node]:
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph(project: Path, package: str) -> dict[str, set[str]]:
    """Module to imported modules, over the team's package and the kit together."""
    modules = {
        **python_modules(project / "src" / package, package),
        **python_modules(project / "kit" / "mlops_kit", "mlops_kit"),
    }
    # A package's ``__init__`` is what ``from package import x`` runs first: an edge to
    # a submodule through its package stands for the submodule itself.
    known = set(modules)
    return {module: imports_of(module, path, known) for module, path in modules.items()}


@pytest.mark.parametrize("ml_task", question_choices("ml_task"))
def test_the_room_is_small_and_neither_package_has_an_import_cycle(
    tmp_path: Path, ml_task: str
) -> None:
    project = render(tmp_path / "project", skip_tasks=True, ml_task=ml_task)
    room = project / "src" / "ml_project"
    assert {path.name for path in room.iterdir()} == ROOM_FILES
    lines = sum(len(path.read_text().splitlines()) for path in room.glob("*.py"))
    assert lines < ROOM_LINES, f"the team's room has {lines} lines"
    assert (project / "kit" / "pyproject.toml").is_file()
    graph = import_graph(project, "ml_project")
    assert cycles(graph) == []
    # The kit reaches the team's code only through mlops_kit.team, by name.
    kit_to_room = [
        m
        for m, found in graph.items()
        if m.startswith("mlops_kit") and any(target.startswith("ml_project") for target in found)
    ]
    assert kit_to_room == []


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_a_model_file_alone_and_a_metric_in_metrics_py_train_and_gate(
    project_copy: Path,
) -> None:
    """The issue's extra trees: a conf/model/ file and nothing else, chosen in
    conf/config.yaml; and balanced accuracy added to the team's metrics, with a threshold."""
    (project_copy / "conf" / "model" / "extra_trees.yaml").write_text(
        "_target_: sklearn.ensemble.ExtraTreesClassifier\n"
        "n_estimators: 120\nmax_depth: 10\nmin_samples_leaf: 2\n"
    )
    config = project_copy / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("model: random_forest", "model: extra_trees"))
    metrics = project_copy / "src" / "ml_project" / "metrics.py"
    metrics.write_text(
        metrics.read_text().replace(
            '    "accuracy": Metric(metrics.accuracy_score),\n',
            '    "accuracy": Metric(metrics.accuracy_score),\n'
            '    "balanced_accuracy": Metric(metrics.balanced_accuracy_score),\n',
        )
    )
    evaluate = project_copy / "conf" / "evaluate" / "default.yaml"
    evaluate.write_text(
        evaluate.read_text().replace(
            "thresholds:\n", "thresholds:\n  balanced_accuracy: {min: 0.5}\n", 1
        )
    )
    result = run_make(project_copy, "pipeline")
    assert "train: sklearn.ensemble.ExtraTreesClassifier" in result.stdout
    scores = json.loads((project_copy / "reports" / "metrics.json").read_text())
    assert 0.5 <= scores["balanced_accuracy"] <= 1
    # The gate judged it (promoted or not, by the team's own thresholds and margin).
    promotion = json.loads((project_copy / "reports" / "promotion.json").read_text())
    registration = json.loads((project_copy / "models" / "registration.json").read_text())
    assert promotion["challenger_version"] == registration["version"] != "1", promotion
    assert "balanced_accuracy" in promotion["challenger"]
    run_make(project_copy, "test")


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["regression"], indirect=True)
def test_an_unknown_metric_or_a_wrong_direction_in_conf_stops_evaluation_in_one_line(
    project_copy: Path,
) -> None:
    evaluate = project_copy / "conf" / "evaluate" / "default.yaml"
    original = evaluate.read_text()
    cases = {
        "primary_metric: rmse": ("primary_metric: rmsle", "'rmsle', which src/ml_project"),
        "greater_is_better: false": ("greater_is_better: true", "set greater_is_better: false"),
    }
    for old, (new, expected) in cases.items():
        evaluate.write_text(original.replace(old, new))
        run_make(project_copy, "params")
        refused = subprocess.run(
            [str(project_copy / ".venv" / "bin" / "python"), "-m", "mlops_kit.evaluate"],
            cwd=project_copy,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], refused.stderr
