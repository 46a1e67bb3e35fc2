"""Model families side by side on the shipped tables and on tables nobody tuned for.

Renders one project per task with the defaults and, for each table, adopts it
(`make dataset`, as a team would; the shipped table as it ships), makes the
training split (`dvc repro split`) and runs `make compare-models` on it: every
config of conf/model/ cross-validated on the split's folds (metric mean and spread),
the median fit time per fold and the 1-row in-process time compiled and through
scikit-learn. The adopted tables are the ones the template's own-data tests adopt
(tests/helpers/own_tables.py). Writes benchmarks/results/families.json; the docs'
table says, per table, which family scored best and how each did against the random
forest, the shipped default.

Run with `make bench-families`.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from scale import project_env
from startup import PYTHON_VERSION, render

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "families.json"
OWN_TABLES = ROOT / "tests" / "helpers" / "own_tables.py"
# (task, table, target column, file suffix); a None target is the shipped table.
TABLES = [
    ("classification", "penguins", None, None),
    ("classification", "wine", "target", ".csv"),
    ("classification", "breast_cancer", "target", ".csv"),
    ("classification", "sensors", "Alarm", ".parquet"),
    ("classification", "customers", "Plan", ".csv"),
    ("classification", "weak_churn", "churned", ".csv"),
    ("regression", "auto_mpg", None, None),
    ("regression", "diabetes", "target", ".csv"),
    ("regression", "house_prices", "Sale Price", ".parquet"),
    ("regression", "engine_wear", "wear_mm", ".csv"),
    ("regression", "district_prices", "price", ".csv"),
]
ONLY = set(filter(None, os.environ.get("BENCH_TABLES", "").split(",")))


def run(command: list[str], project: Path) -> str:
    """A command in the project's environment; its output, or the failure's tail and exit."""
    result = subprocess.run(
        command, cwd=project, env=project_env(project), capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def project_for(task: str, scratch: Path, uv: str) -> Path:
    """A rendered project with its environment, committed so each table starts clean."""
    project = scratch / task
    render(project, ROOT, "--data", f"python_version={PYTHON_VERSION}", "--data", f"ml_task={task}")
    run(["make", "--no-print-directory", f"UV={uv}", "setup"], project)
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        run(command, project)
    return project


def compared(project: Path, uv: str, name: str, target: str | None, suffix: str | None) -> dict:
    """Adopt one table in a clean project and compare every model config on it."""
    run(["git", "reset", "-q", "--hard"], project)
    run(["git", "clean", "-fdq"], project)
    make = ["make", "--no-print-directory", f"UV={uv}"]
    if target is not None:
        source = project.parent / f"{name}{suffix}"
        run(
            [
                str(project / ".venv" / "bin" / "python"),
                str(OWN_TABLES),
                "write",
                name,
                str(source),
            ],
            project,
        )
        run([*make, "dataset", f"SOURCE={source}", f"TARGET={target}"], project)
    else:
        run([*make, "params"], project)
    run([str(project / ".venv" / "bin" / "dvc"), "repro", "--quiet", "split"], project)
    report = project.parent / f"{name}.md"
    run(
        [
            str(project / ".venv" / "bin" / "python"),
            "-m",
            "mlops_kit.compare",
            "--report",
            str(report),
        ],
        project,
    )
    return json.loads(report.with_suffix(".json").read_text())


def main() -> None:
    uv = os.environ.get("UV", "uv")
    # Each table is written as soon as it is measured, into what earlier runs measured:
    # a run cut short keeps its tables, and BENCH_TABLES=a,b measures those again alone.
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"tables": {}}
    report["python"] = PYTHON_VERSION
    with tempfile.TemporaryDirectory() as scratch:
        projects: dict[str, Path] = {}
        for task, name, target, suffix in TABLES:
            if ONLY and name not in ONLY:
                continue
            if task not in projects:
                projects[task] = project_for(task, Path(scratch), uv)
            result = compared(projects[task], uv, name, target, suffix)
            report["tables"][name] = {"task": task, "shipped": target is None, **result}
            order = [table for _, table, _, _ in TABLES]
            report["tables"] = dict(
                sorted(report["tables"].items(), key=lambda item: order.index(item[0]))
            )
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(report, indent=2) + "\n")
            best = max(result["models"], key=lambda model: primary(model, task))
            print(f"{task} / {name}: {result['rows']} rows, best {best['model']}", flush=True)


def primary(model: dict, task: str) -> float:
    """The figure the families are ranked by, larger is better: F1 or minus RMSE."""
    metrics = model["metrics"]
    if task == "classification":
        return metrics["f1_macro"]["mean"]
    return -metrics["rmse"]["mean"]


if __name__ == "__main__":
    main()
