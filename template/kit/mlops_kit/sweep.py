"""Hyperparameter sweep: an Optuna search whose trials run as tasks on a Dask cluster.

``make sweep [TRIALS=N]`` runs ``python -m mlops_kit.sweep`` with the ``sweep``
dependency group (Dask and Optuna; training and serving never install them). Each
trial is this project's own fit (``train.fit``) and score (``evaluate.score``) of
the configured model with hyperparameters drawn from ``conf/sweep/space/<model>``,
on a validation part of the training split. Every trial is logged to MLflow as a
child of one sweep run, and the best becomes a DVC experiment (``dvc exp run -S``),
whose pipeline run goes through the promotion gate like any other: a sweep never
makes a champion itself.

With ``DASK_SCHEDULER_ADDRESS`` set it joins that cluster; without it, it starts a
local one that listens on 127.0.0.1 only. The study lives in optuna-integration's
``DaskStorage``, on the scheduler: every worker's sampler sees the trials finished
so far, and no database is needed. MLflow keeps the durable record.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from distributed import Client, LocalCluster, as_completed, get_worker
from optuna_integration.dask import DaskStorage

from mlops_kit.cluster import SCHEDULER_VARIABLE, ClusterError, joined, scheduler_address
from mlops_kit.config import compose_params
from mlops_kit.core.params import Choices, FloatRange, IntRange, Params, SweepConfig, load_params
from mlops_kit.data import split
from mlops_kit.evaluate import score
from mlops_kit.train import fit

# DaskStorage is marked experimental; the warning would repeat on every worker.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def suggest(trial: optuna.Trial, space: SweepConfig) -> dict[str, Any]:
    """Draw one value per hyperparameter of ``space`` for ``trial``."""
    values: dict[str, Any] = {}
    for name, bounds in space.space.items():
        if isinstance(bounds, IntRange):
            values[name] = trial.suggest_int(name, bounds.low, bounds.high, log=bounds.log)
        elif isinstance(bounds, FloatRange):
            values[name] = trial.suggest_float(name, bounds.low, bounds.high, log=bounds.log)
        elif isinstance(bounds, Choices):
            values[name] = trial.suggest_categorical(name, bounds.choices)
    return values


def with_model(params: Params, values: dict[str, Any]) -> Params:
    """``params`` with the model's hyperparameters replaced by ``values``."""
    return params.model_copy(update={"model": {**params.model, **values}})


def run_trial(
    study_name: str,
    storage_name: str,
    params: Params,
    fit_rows: pd.DataFrame,
    validation_rows: pd.DataFrame,
    sampler_seed: int,
) -> dict[str, Any]:
    """One trial, run on a Dask worker: fit on ``fit_rows``, score on ``validation_rows``.

    The study is loaded from the scheduler's storage, so the sampler learns from every
    trial finished anywhere on the cluster. Each task gets its own sampler seed: the
    same seed on every worker would draw the same first values everywhere.
    """
    worker = get_worker().address
    # Every thread of every worker runs a trial at once (all are submitted together), so
    # a model that runs threads fits with one: the config's n_jobs (-1: every core) in
    # each of them would put several threads on each core.
    threads = {"n_jobs": 1} if "n_jobs" in params.model else {}
    # Optuna's per-trial INFO lines repeat what the sweep prints with the worker added.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=DaskStorage(name=storage_name),
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
    )
    outcome: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        started = time.time()
        trial_params = with_model(params, {**suggest(trial, params.sweep), **threads})
        scores = score(fit(fit_rows, trial_params), validation_rows, trial_params)
        trial.set_user_attr("worker", worker)
        outcome.update(
            number=trial.number,
            values=dict(trial.params),
            scores=scores,
            worker=worker,
            started=started,
            finished=time.time(),
        )
        return scores[params.evaluate.primary_metric]

    study.optimize(objective, n_trials=1)
    return outcome


@contextmanager
def dask_client(config: SweepConfig) -> Iterator[Client]:
    """A client of the cluster at ``DASK_SCHEDULER_ADDRESS``, else of a local loopback one."""
    address = scheduler_address()
    if address:
        with joined(address, config.connect_timeout_seconds, "sweep") as client:
            yield client
        return
    # Loopback only, dashboards too (on a free port: None would still bind 8787, and
    # `--no-dashboard` on the command line binds 0.0.0.0): no port opens to the network.
    with (
        LocalCluster(
            n_workers=config.local_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        print(
            f"sweep: started a local Dask cluster at {cluster.scheduler_address} "
            f"({config.local_workers} workers; set {SCHEDULER_VARIABLE} to use another)"
        )
        yield client


def override(value: Any) -> str:
    """``value`` in Hydra's override grammar (``dvc exp run -S key=value``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def require_commit() -> None:
    """Stop before any trial runs when ``dvc exp run`` could not record the best one."""
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "HEAD"], capture_output=True, check=False
    )
    if head.returncode != 0:
        raise SystemExit(
            "sweep: the repository has no commit yet, and `dvc exp run` needs one: "
            "commit the project first (git add -A && git commit -m 'first model')"
        )


def log_trial(parent_run_id: str, experiment_id: str, outcome: dict[str, Any]) -> None:
    """Record one finished trial as a child run of the sweep, with the worker that ran it."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        start_time=int(outcome["started"] * 1000),
        run_name=f"trial-{outcome['number']}",
        tags={
            "mlflow.parentRunId": parent_run_id,
            "sweep.trial": str(outcome["number"]),
            "dask.worker": outcome["worker"],
        },
    )
    finished = int(outcome["finished"] * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric(f"validation.{name}", value, finished, 0)
            for name, value in outcome["scores"].items()
        ],
        params=[Param(f"model.{name}", str(value)) for name, value in outcome["values"].items()],
    )
    client.set_terminated(run.info.run_id, end_time=finished)


def sweep(params: Params, trials: int) -> dict[str, Any]:
    """Run ``trials`` trials on the cluster, logged under one MLflow sweep run; the best."""
    import mlflow

    from mlops_kit import registry

    train_set = pd.read_parquet(params.paths.train)
    # The project's own split, on the training rows: the test split stays unseen.
    fit_rows, validation_rows = split(
        train_set,
        params.data,
        params.train.model_copy(update={"test_size": params.sweep.validation_size}),
    )
    direction = "maximize" if params.evaluate.greater_is_better else "minimize"
    metric = params.evaluate.primary_metric
    registry.configure(params.mlflow)
    with dask_client(params.sweep) as client, registry.tracked_run(run_name="sweep") as parent:
        storage = DaskStorage(client=client)
        study = optuna.create_study(storage=storage, direction=direction)
        scheduler = client.scheduler.address
        mlflow.set_tags({"sweep.study": study.study_name, "dask.scheduler": scheduler})
        mlflow.log_params(
            {
                "sweep.trials": trials,
                "sweep.metric": metric,
                "sweep.direction": direction,
                "sweep.model": params.model["_target_"],
                "sweep.validation_rows": len(validation_rows),
            }
        )
        # Sent once to every worker, not once per task.
        fit_future, validation_future = client.scatter([fit_rows, validation_rows], broadcast=True)
        futures = [
            client.submit(
                run_trial,
                study.study_name,
                storage.name,
                params,
                fit_future,
                validation_future,
                params.train.seed + number,
                pure=False,
            )
            for number in range(trials)
        ]
        workers = set()
        for future in as_completed(futures):
            outcome = future.result()
            workers.add(outcome["worker"])
            log_trial(parent.info.run_id, parent.info.experiment_id, outcome)
            print(
                f"sweep: trial {outcome['number']} on {outcome['worker']}: "
                f"{metric} {outcome['scores'][metric]:.4f} with {outcome['values']}"
            )
        best = study.best_trial
        mlflow.log_params({f"best.model.{name}": value for name, value in best.params.items()})
        mlflow.log_metric(f"best.validation.{metric}", best.value)
        mlflow.set_tags({"sweep.best_trial": str(best.number), "dask.workers": len(workers)})
        return {"run_id": parent.info.run_id, "params": best.params, "value": best.value}


def shared_tracking_uri(params: Params) -> str:
    """The tracking URI in effect, with a relative SQLite path made absolute.

    ``dvc exp run --temp`` runs the pipeline in a temporary copy of the project, where
    the laptop default ``sqlite:///mlflow.db`` would name a new, throw-away database.
    """
    from mlops_kit import registry

    uri = registry.tracking_uri(params.mlflow)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


def run_experiment(best: dict[str, Any], name: str, params: Params, model: str | None) -> None:
    """Run the pipeline with the best trial's hyperparameters as a DVC experiment.

    It runs in a temporary copy (``--temp``): the workspace keeps what it had, and
    ``dvc exp apply <name>`` brings the experiment's results into it. Its train stage
    fits on this machine, as each trial did on its worker: the sweep's cluster address
    is not passed on (``make pipeline CLUSTER=...`` trains on a cluster).
    """
    # The model group first: the values are hyperparameters of the model swept.
    settings = [f"model={model}"] if model else []
    settings += [f"model.{key}={override(value)}" for key, value in best["params"].items()]
    command = [sys.executable, "-m", "dvc", "exp", "run", "--temp", "--name", name]
    for setting in settings:
        command += ["-S", setting]
    print("sweep: " + " ".join(["dvc", *command[3:]]))
    environment = {**os.environ, "MLFLOW_TRACKING_URI": shared_tracking_uri(params)}
    environment.pop(SCHEDULER_VARIABLE, None)
    if subprocess.run(command, check=False, env=environment).returncode != 0:
        raise SystemExit(
            f"sweep: the trials are logged, but experiment {name} failed (dvc's output is "
            "above); fix what it names, then `dvc exp run` with the settings printed above"
        )
    print(
        f"sweep: experiment {name} is in `dvc exp show`; the promotion gate decided on its "
        f"model. `dvc exp apply {name}` brings it into the workspace; to keep these values, "
        f"write them into conf/model/{f'{model}.yaml' if model else ''}: "
        + ", ".join(f"{key}: {override(value)}" for key, value in best["params"].items())
    )


def main() -> None:
    """Sweep the configured model's space, then run the best trial as a DVC experiment."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--trials", type=int, help="trials to run (default: sweep.trials)")
    parser.add_argument(
        "--model", help="a config of conf/model/ to sweep instead of the configured one"
    )
    parser.add_argument(
        "--no-experiment", action="store_true", help="log the trials, run no DVC experiment"
    )
    args = parser.parse_args()
    params = load_params()
    if args.model:
        # Composed aside: params.yaml keeps describing the workspace's own run.
        with tempfile.TemporaryDirectory() as scratch:
            composed = Path(scratch) / "params.yaml"
            compose_params([f"model={args.model}"], output=composed)
            params = load_params(composed)
    if not params.sweep.space:
        raise SystemExit(
            f"sweep: no search space for {params.model['_target_']}: write "
            f"conf/sweep/space/{args.model or '<model>'}.yaml (conf/sweep/space/ has examples), "
            "or sweep another model with `make sweep MODEL=<name>`"
        )
    trials = args.trials or params.sweep.trials
    if not args.no_experiment:
        require_commit()
    try:
        best = sweep(params, trials)
    except ClusterError as error:
        raise SystemExit(f"sweep: {error}") from None
    print(
        f"sweep: best of {trials} trials: {params.evaluate.primary_metric} "
        f"{best['value']:.4f} with {best['params']} (MLflow run {best['run_id']})"
    )
    if not args.no_experiment:
        run_experiment(best, f"sweep-{best['run_id'][:8]}", params, args.model)


if __name__ == "__main__":
    main()
