"""Training outgrows one machine: `make pipeline CLUSTER=...` fits LightGBM on a Dask cluster.

A copy of the trained project generates a larger synthetic table with its own command
(`make synthetic`), and conf/ points data.source at it, picks conf/model/lightgbm and
writes the train split in small row groups (partitions). The train stage run alone on
this machine is measured first (its peak memory); then a scheduler and two workers start
on loopback, each worker limited (`--memory-limit`) to that peak, pausing off, and
`make pipeline CLUSTER=tcp://...` trains there. The champion must be registered and
exported, its MLflow run must name the cluster's workers, the compiled model must agree
with the pipeline as the project's parity check demands, and every listener of the
cluster must be on 127.0.0.1. Wrong input (a model family without a Dask estimator, a
scheduler nobody runs) must end in one line.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers.commands import developer_environment, in_project, run_make
from helpers.dask_cluster import DaskCluster, train_lightgbm_on
from helpers.network import free_port
from helpers.template import uv_executable

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("trained_project", ["classification"], indirect=True),
]

# Synthetic rows: the train split gets three quarters, in row groups of PARTITION_ROWS.
ROWS = 400_000
PARTITION_ROWS = 50_000
WORKERS = 2
# Each worker may use at most what the train stage needed on one machine. Not less: at
# this size a worker's own footprint (Python, pandas, pyarrow, scikit-learn, LightGBM,
# distributed: about 270 MiB) outweighs its half of the table, and 90% was measured to
# make the nanny restart a worker.
WORKER_SHARE = 1.0

# The MLflow run that registered models/registration.json, with its tags.
REGISTERED_RUN = """
import json, mlflow
from mlops_kit.config import load_params
from mlops_kit.registry import tracking_uri
params = load_params()
mlflow.set_tracking_uri(tracking_uri(params.mlflow))
registration = json.loads(params.paths.registration.read_text())
client = mlflow.MlflowClient()
run = client.get_run(registration["run_id"])
aliases = client.get_registered_model(params.mlflow.registered_model_name).aliases
print(json.dumps({"registration": registration, "tags": run.data.tags, "aliases": aliases}))
"""

# The project's own parity check (tests/test_compiled.py) on the exported champion: the
# compiled bundle against the pickled pipeline, on rows of the test split.
CHAMPION_PARITY = """
import json, sys
import joblib, pandas as pd
sys.path.insert(0, "tests")
from test_compiled import assert_same, expected, records
from mlops_kit.bundle import read_metadata
from mlops_kit.config import load_params
from mlops_kit.export import plain
from mlops_kit.predictor import load_predictor
params = load_params()
bundle = params.paths.bundle
metadata = read_metadata(bundle)
model = joblib.load(bundle / "model.joblib")
predictor = load_predictor(bundle, metadata["runtime"])
test = pd.read_parquet(params.paths.test, columns=params.data.input_columns).head(2000)
classes = [plain(label) for label in model.classes_]
want = expected(model, test, "classification")
gap = assert_same(predictor.predict(records(test)), want, classes)
estimator = type(model.named_steps["estimator"])
print(json.dumps({"runtime": metadata["runtime"]["name"], "gap": gap,
                  "estimator": f"{estimator.__module__}.{estimator.__name__}"}))
"""

# The in-memory size of the train split as the single-machine stage reads it.
TABLE_BYTES = """
import pandas as pd, pyarrow.parquet as pq
from mlops_kit.config import load_params
path = load_params().paths.train
print(int(pd.read_parquet(path).memory_usage(deep=True).sum()), pq.ParquetFile(path).num_row_groups)
"""


def peak_mib(command: list[str], project: Path) -> float:
    """Run ``command`` in the project; the peak resident memory of its process tree, MiB."""
    with open(project / "single-machine.log", "w") as log:
        process = subprocess.Popen(
            command, cwd=project, stdout=log, stderr=subprocess.STDOUT, env=developer_environment()
        )
        _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, (project / "single-machine.log").read_text()
    return usage.ru_maxrss / 1024


def test_make_pipeline_trains_lightgbm_on_a_memory_limited_dask_cluster(
    project_copy: Path, tmp_path: Path
) -> None:
    project = project_copy
    # No champion of the shipped table for the new data's first model to be held against.
    (project / "mlflow.db").unlink()
    synthetic = run_make(project, "synthetic", f"ROWS={ROWS}")
    source = re.search(r"-> (\S+\.parquet)", synthetic.stdout).group(1)
    train_lightgbm_on(project, source, PARTITION_ROWS)
    # The larger table becomes the reference on purpose; the split freezes a new holdout.
    run_make(project, "accept-data", "REASON=a larger synthetic table for cluster training")
    # Through uv run, as `make` runs it: DVC's stages call `python` from the project's env.
    split = subprocess.run(
        [uv_executable(), "run", "--frozen", "dvc", "repro", "split"],
        cwd=project, env=developer_environment(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert split.returncode == 0, split.stdout[-3000:] + split.stderr[-3000:]
    table_bytes, row_groups = map(
        int, in_project(project, "python", "-c", TABLE_BYTES).stdout.split()
    )
    # Several partitions, more than workers: each worker reads some of them.
    assert row_groups >= 2 * WORKERS, row_groups

    # The train stage on this machine alone, as the baseline a worker gets less than.
    single = peak_mib([str(project / ".venv" / "bin" / "python"), "-m", "mlops_kit.train"], project)
    limit_mib = int(single * WORKER_SHARE)
    cluster = DaskCluster(
        project, uv_executable(), tmp_path / "dask", memory_limit=f"{limit_mib}MiB", pause=False
    )
    try:
        cluster.start(workers=WORKERS)
        before = cluster.listeners()
        workers = cluster.worker_addresses()
        result = run_make(project, "pipeline", f"CLUSTER={cluster.address}", timeout=1200)
        after = cluster.listeners()
    finally:
        cluster.stop()

    # Scheduler, and per worker a nanny and the worker itself: loopback only, before and
    # after training.
    assert len(before) >= 1 + 2 * WORKERS, before
    assert all(address.startswith("127.0.0.1:") for address in before + after), (before, after)
    assert f"joined the Dask scheduler {cluster.address} ({WORKERS} workers)" in result.stdout
    # No worker went past its memory limit: the nanny would have restarted it.
    for log in (tmp_path / "dask").glob("worker-*.log"):
        assert "Restarting" not in log.read_text(), log.read_text()[-3000:]

    record = json.loads(in_project(project, "python", "-c", REGISTERED_RUN).stdout.splitlines()[-1])
    tags = record["tags"]
    assert tags["train.cluster"] == "dask"
    assert tags["dask.scheduler"] == cluster.address
    # Both workers trained (the partitions were spread), and only the cluster's.
    assert set(tags["dask.workers"].split(",")) == workers
    assert int(tags["dask.partitions"]) == row_groups
    # The cluster's model was registered and, meeting the gate, became the champion.
    assert str(record["aliases"]["champion"]) == record["registration"]["version"]
    promotion = json.loads((project / "reports" / "promotion.json").read_text())
    assert promotion["promote"] is True, promotion["reasons"]

    parity = json.loads(
        in_project(project, "python", "-c", CHAMPION_PARITY).stdout.splitlines()[-1]
    )
    assert parity["runtime"] == "onnxruntime", parity
    assert parity["estimator"] == "lightgbm.sklearn.LGBMClassifier", parity
    print(
        f"train split {table_bytes / 2**20:.0f} MiB in memory, {row_groups} partitions; "
        f"single-machine train stage peak {single:.0f} MiB; worker limit {limit_mib} MiB; "
        f"compiled vs pipeline gap {parity['gap']:.2e}"
    )


def test_a_family_without_dask_estimator_and_an_unreachable_scheduler_end_in_one_line(
    project_copy: Path,
) -> None:
    project = project_copy
    nobody = f"tcp://127.0.0.1:{free_port()}"
    command = [uv_executable(), "run", "--frozen", "--group", "sweep", "python", "-m"]
    environment = {**developer_environment(), "DASK_SCHEDULER_ADDRESS": nobody}

    def run(module: str = "mlops_kit.train", *options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, module, *options],
            cwd=project,
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )

    # The trained project's model is a random forest: refused before any connection.
    refused = run()
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr, refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    assert "cannot train on a Dask cluster" in line and "lightgbm, xgboost" in line, line

    in_project(
        project, "python", "-m", "mlops_kit.config",
        "model=lightgbm", "train.cluster.connect_timeout_seconds=2",
        "sweep.connect_timeout_seconds=2",
    )  # fmt: skip
    # The train stage and the sweep join a cluster the same way, and refuse alike.
    for options in [("mlops_kit.train",), ("mlops_kit.sweep", "--trials", "1", "--no-experiment")]:
        unreachable = run(*options)
        assert unreachable.returncode == 1
        assert "Traceback" not in unreachable.stderr, unreachable.stderr
        line = unreachable.stderr.strip().splitlines()[-1]
        assert f"no Dask scheduler answers at {nobody}" in line, line
