"""Floors under the startup targets: costs a generated project cannot avoid by itself.

In a fresh render with the defaults (warm uv cache), measured RUNS times each:
- resolve: uv resolving the dependencies of a project with no lockfile yet, asking the
  package index about every package, and from uv's cache alone (`--offline`), which
  `make setup` tries first;
- first imports: what the stage server of `make pipeline` loads for the stages, in a
  fresh environment (Python compiles every module to bytecode once) and again (bytecode
  cached);
- MLflow: importing it and opening the SQLite tracking store, first when the store is
  created (the first pipeline run) and then as train and evaluate each pay it;
- precompiling: `uv sync --compile-bytecode`, compiling the whole environment up front.
Writes benchmarks/results/floors.json and prints the table report.py publishes.

Run with `make bench-floors`.
"""

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from report import floors_table
from startup import PYTHON_VERSION, RUNS, render, summary, timed, user_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "floors.json"
# Everything the stage server of `make pipeline` loads for the stages, in its order.
PIPELINE_IMPORTS = (
    "import os; os.environ['MPLBACKEND'] = 'Agg'\n"
    "from pathlib import Path\n"
    "from mlops_kit.stages import server\n"
    "for name in server.imports(server.stage_commands(Path('dvc.yaml'))):\n"
    "    server.preload(name)\n"
)
MLFLOW_STORE = (
    "import mlflow; mlflow.set_tracking_uri('sqlite:///floor.db'); "
    "mlflow.MlflowClient().search_experiments()"
)


def python_seconds(project: Path, code: str) -> float:
    """Wall time of ``python -c code`` in the project's environment, bytecode writes on."""
    started = time.perf_counter()
    python = str(project / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-c", code], cwd=project, env=user_env(), check=True, capture_output=True
    )
    return time.perf_counter() - started


def one_run(scratch: Path, uv: str) -> dict:
    project = scratch / "project"
    render(project, ROOT, "--data", f"python_version={PYTHON_VERSION}")
    # `make setup` resolves from uv's cache (offline) and asks the index only when that
    # fails; both, timed on the fresh render before setup writes its own lock.
    lock = project / "uv.lock"
    resolve_index = timed([uv, "lock", "--quiet"], project)
    lock.unlink()
    resolve_cache = timed([uv, "lock", "--offline", "--quiet"], project)
    lock.unlink()
    subprocess.run(
        ["make", "--no-print-directory", f"UV={uv}", "setup"],
        cwd=project,
        env=user_env(),
        check=True,
        capture_output=True,
    )
    package = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]
    pipeline_imports = PIPELINE_IMPORTS.format(package=package)
    figures = {
        "resolve": resolve_index,
        "resolve_cache": resolve_cache,
        "first_imports_fresh": python_seconds(project, pipeline_imports),
        "first_imports_cached": python_seconds(project, pipeline_imports),
        "mlflow_store_created": python_seconds(project, MLFLOW_STORE),
        "mlflow_per_process": python_seconds(project, MLFLOW_STORE),
    }
    # The alternative to compiling on first import: uv compiling the whole environment.
    compiled = subprocess.run(
        [uv, "sync", "--compile-bytecode"],
        cwd=project,
        env=user_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"Bytecode compiled (\d+) files in ([\d.]+)(ms|s)", compiled.stderr)
    figures["precompile_all"] = float(found.group(2)) / (1000 if found.group(3) == "ms" else 1)
    figures["precompiled_files"] = int(found.group(1))
    return figures


def main() -> None:
    uv = os.environ.get("UV", "uv")
    runs = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as scratch:
            runs.append(one_run(Path(scratch), uv))
            print(json.dumps(runs[-1]), flush=True)
    figures = {name: summary([run[name] for run in runs]) for name in runs[0]}
    compile_cost = [run["first_imports_fresh"] - run["first_imports_cached"] for run in runs]
    figures["bytecode_compile"] = summary(compile_cost)
    report = {"runs": RUNS, "figures": figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(floors_table(report))


if __name__ == "__main__":
    main()
