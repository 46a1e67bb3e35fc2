"""LightGBM trained on two local Dask workers against the same model trained on one machine.

Renders a project with the defaults, has it make a synthetic table with its own `make
synthetic` (BENCH_DASK_ROWS rows, 300 thousand unless set), points conf/ at it with
conf/model/lightgbm and train splits in row groups of 50 thousand rows, and runs the
stages up to the split. Then the train stage twice on the same split: on this machine,
and on a scheduler with two single-threaded workers on 127.0.0.1 (DASK_SCHEDULER_ADDRESS,
the `cluster` dependency group). Both models are scored on the frozen holdout, and the
single-machine model is cross-validated on the train split with the folds the project
uses for its quality bar (`mlops_kit.dataset.quality.cross_validated`).

Target (issue 28): the Dask model's holdout metric lies within the folds' spread of the
single-machine model, i.e. differs from the single-machine holdout metric by at most the
range (max - min) of the fold scores. Writes benchmarks/results/dask_training.json.

Run with `make bench-dask`.
"""

import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

from report import dask_training_table
from scale import measured_run
from startup import PYTHON_VERSION, render, user_env

from helpers.dask_cluster import DaskCluster, train_lightgbm_on

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dask_training.json"
ROWS = int(os.environ.get("BENCH_DASK_ROWS", "300000"))
PARTITION_ROWS = 50_000
WORKERS = 2

# Both models on the holdout, and the single-machine model's fold scores on the train split.
SCORES = """
import json, sys
import joblib, pandas as pd
from mlops_kit.config import load_params
from mlops_kit.dataset.quality import cross_validated
from mlops_kit.evaluate import score
params = load_params()
metric = params.evaluate.primary_metric
holdout = pd.read_parquet(params.paths.holdout)
train = pd.read_parquet(params.paths.train)
folds = cross_validated(train, params, params.data, params.train.seed)["folds"][metric]
print(json.dumps({
    "metric": metric,
    "greater_is_better": params.evaluate.greater_is_better,
    "holdout_rows": len(holdout),
    "train_rows": len(train),
    "single": score(joblib.load(sys.argv[1]), holdout, params)[metric],
    "dask": score(joblib.load(sys.argv[2]), holdout, params)[metric],
    "folds": [float(value) for value in folds],
}))
"""


def run(command: list[str], project: Path, **environment: str) -> subprocess.CompletedProcess:
    """Run a command in the project as from a user's shell; fail loudly with its output."""
    result = subprocess.run(
        command,
        cwd=project,
        env={**user_env(), **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def timed_train(project: Path, uv: str, **environment: str) -> float:
    """Seconds of the train stage (``python -m mlops_kit.train``) with the cluster group."""
    command = [uv, "run", "--frozen", "--group", "cluster", "python", "-m", "mlops_kit.train"]
    return measured_run(shlex.join(command), project, **environment)[0]


def main() -> None:
    uv = os.environ.get("UV", "uv")
    make = ["make", "--no-print-directory", f"UV={uv}"]
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        render(project, ROOT, "--data", f"python_version={PYTHON_VERSION}")
        run([*make, "setup"], project)
        made = run([*make, "synthetic", f"ROWS={ROWS}"], project)
        source = re.search(r"-> (\S+\.parquet)", made.stdout).group(1)
        train_lightgbm_on(project, source, PARTITION_ROWS)
        run([*make, "params"], project)
        run([uv, "run", "--frozen", "dvc", "repro", "split"], project)

        single_seconds = timed_train(project, uv)
        single_model = Path(scratch) / "single.joblib"
        (project / "models" / "model.joblib").rename(single_model)
        cluster = DaskCluster(project, uv, Path(scratch) / "dask")
        try:
            cluster.start(workers=WORKERS)
            dask_seconds = timed_train(project, uv, DASK_SCHEDULER_ADDRESS=cluster.address)
        finally:
            cluster.stop()
        scores = json.loads(
            run(
                [
                    uv,
                    "run",
                    "--frozen",
                    "python",
                    "-c",
                    SCORES,
                    str(single_model),
                    "models/model.joblib",
                ],
                project,
            ).stdout.splitlines()[-1]
        )
    folds = scores.pop("folds")
    spread = max(folds) - min(folds)
    difference = scores["dask"] - scores["single"]
    report = {
        "rows": ROWS,
        "partition_rows": PARTITION_ROWS,
        "workers": WORKERS,
        **scores,
        "folds": {
            "scores": folds,
            "mean": sum(folds) / len(folds),
            "min": min(folds),
            "max": max(folds),
            "spread": spread,
        },
        "difference": difference,
        "train_seconds": {"single": single_seconds, "dask": dask_seconds},
        "target": "|dask - single| on the holdout at most the folds' spread (max - min)",
        "met": abs(difference) <= spread,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(dask_training_table(report))


if __name__ == "__main__":
    main()
