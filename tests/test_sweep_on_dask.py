"""A sweep outgrows one machine: `make sweep` runs its Optuna trials on a real Dask cluster.

A scheduler and two worker processes start on loopback from a copy of the trained
project, with its own environment; `make sweep TRIALS=4` with DASK_SCHEDULER_ADDRESS
joins them. MLflow must then hold one sweep run with a child per trial, each naming a worker of that
cluster, and `dvc exp show` the best trial as an experiment. Every process the test
starts is stopped at the end, also when it fails.
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.commands import git, in_project, run_make
from helpers.dask_cluster import DaskCluster
from helpers.template import uv_executable

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("trained_project", ["classification"], indirect=True),
]

TRIALS = 4
WORKERS = 2
# Every run of the project's MLflow experiment, with its tags, params and metrics.
RUNS_AS_JSON = """
import json, mlflow
from mlops_kit.config import load_params
from mlops_kit.registry import tracking_uri
params = load_params()
mlflow.set_tracking_uri(tracking_uri(params.mlflow))
runs = mlflow.search_runs(experiment_names=[params.mlflow.experiment_name], output_format="list")
print(json.dumps([
    {{"id": r.info.run_id, "name": r.info.run_name, "tags": r.data.tags,
      "params": r.data.params, "metrics": r.data.metrics}}
    for r in runs
]))
"""


# The registry's aliases, read (no argument) or set back (a JSON argument).
ALIASES = """
import json, sys, mlflow
from mlops_kit.config import load_params
from mlops_kit.registry import tracking_uri
params = load_params()
mlflow.set_tracking_uri(tracking_uri(params.mlflow))
client = mlflow.MlflowClient()
name = params.mlflow.registered_model_name
for alias, version in json.loads(sys.argv[1]).items() if len(sys.argv) > 1 else ():
    client.set_registered_model_alias(name, alias, version)
print(json.dumps(client.get_registered_model(name).aliases))
"""


def package_of(project: Path) -> str:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]


def registry_aliases(project: Path, *restore: str) -> dict[str, str]:
    """The registry's aliases and their versions, after setting ``restore`` (JSON) if given."""
    script = ALIASES.format(package=package_of(project))
    return json.loads(in_project(project, "python", "-c", script, *restore).stdout.splitlines()[-1])


@pytest.fixture
def dask_cluster(project_copy: Path, tmp_path: Path):
    """A scheduler and two single-threaded workers on 127.0.0.1, stopped afterwards."""
    cluster = DaskCluster(project_copy, uv_executable(), tmp_path / "dask")
    try:
        cluster.start(workers=WORKERS)
        yield cluster
    finally:
        cluster.stop()


def mlflow_runs(project: Path) -> list[dict]:
    """The runs MLflow holds for the project, read with the project's own interpreter."""
    probe = in_project(project, "python", "-c", RUNS_AS_JSON.format(package=package_of(project)))
    return json.loads(probe.stdout.strip().splitlines()[-1])


def test_make_sweep_runs_its_trials_on_the_dask_cluster_it_is_pointed_at(
    project_copy: Path, dask_cluster: DaskCluster
) -> None:
    project = project_copy
    before = registry_aliases(project)
    listeners = dask_cluster.listeners()
    # Scheduler, and per worker a nanny and the worker itself.
    assert len(listeners) >= 1 + 2 * WORKERS, listeners
    assert all(address.startswith("127.0.0.1:") for address in listeners), listeners
    workers = dask_cluster.worker_addresses()
    # `dvc exp run` needs a commit to base the experiment on.
    git("add", "-A", cwd=project)
    git("commit", "--quiet", "--no-verify", "-m", "before the sweep", cwd=project)

    result = run_make(
        project, "sweep", f"TRIALS={TRIALS}", f"DASK_SCHEDULER_ADDRESS={dask_cluster.address}"
    )
    assert f"joined the Dask scheduler {dask_cluster.address} ({WORKERS} workers)" in result.stdout

    runs = mlflow_runs(project)
    sweeps = [run for run in runs if run["name"] == "sweep"]
    assert len(sweeps) == 1, [run["name"] for run in runs]
    sweep = sweeps[0]
    assert sweep["tags"]["dask.scheduler"] == dask_cluster.address
    trials = [run for run in runs if run["tags"].get("mlflow.parentRunId") == sweep["id"]]
    assert len(trials) == TRIALS
    # Each trial ran on a worker of this cluster, and the work was shared between them.
    assert {trial["tags"]["dask.worker"] for trial in trials} == workers
    metric = f"validation.{sweep['params']['sweep.metric']}"
    assert all(metric in trial["metrics"] for trial in trials)
    assert all(any(name.startswith("model.") for name in trial["params"]) for trial in trials)
    best_trial = next(
        t for t in trials if t["tags"]["sweep.trial"] == sweep["tags"]["sweep.best_trial"]
    )
    scores = [trial["metrics"][metric] for trial in trials]
    best_score = max(scores) if sweep["params"]["sweep.direction"] == "maximize" else min(scores)
    assert best_trial["metrics"][metric] == best_score
    best = {
        name.removeprefix("best.model."): value
        for name, value in sweep["params"].items()
        if name.startswith("best.model.")
    }
    assert best == {
        name.removeprefix("model."): value for name, value in best_trial["params"].items()
    }

    # The best trial is a DVC experiment, run through the pipeline (and its gate) in a
    # temporary copy: the workspace is left as it was.
    shown = json.loads(in_project(project, "dvc", "exp", "show", "--json").stdout)
    experiments = {
        experiment["name"]: experiment["revs"][0]["data"]
        for row in shown
        for experiment in row.get("experiments") or []
    }
    name = f"sweep-{sweep['id'][:8]}"
    assert name in experiments, sorted(experiments)
    model = experiments[name]["params"]["params.yaml"]["data"]["model"]
    assert {key: str(model[key]) for key in best} == best
    assert "metrics.json" in json.dumps(experiments[name]["metrics"])
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        == ""
    )
    # Its training run reached the same MLflow store; its evaluate stage is the gate.
    trained = [run for run in mlflow_runs(project) if run["tags"].get("dvc.experiment") == name]
    assert trained, "the experiment's training run is not in MLflow"
    # It registered its model as the new challenger, which only the gate could promote.
    assert registry_aliases(project)["challenger"] != before["challenger"]
