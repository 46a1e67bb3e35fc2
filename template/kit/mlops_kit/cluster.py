"""Training on a Dask cluster: LightGBM and XGBoost fitted where the data is partitioned.

The train stage comes here when ``DASK_SCHEDULER_ADDRESS`` is set (``make pipeline
CLUSTER=tcp://host:8786`` sets it). The train split is read with
``dask.dataframe.read_parquet``, one partition per Parquet row group (the split stage
writes row groups of ``train.cluster.partition_rows`` rows), so each worker reads its
own partitions and the table is never gathered here.

- The preprocessing (the team's ``build_preprocessor``, any scikit-learn transformer)
  is fitted here on a sample of ``train.cluster.preprocess_sample_rows`` rows drawn
  from every partition: medians, scales and categories of a large sample are those of
  the table, and a transformer the kit does not know cannot be fitted piecewise.
  Its ``transform`` then runs on the workers, partition by partition.
- The estimator is the Dask twin of the configured one (``lightgbm.DaskLGBMClassifier``,
  ``xgboost.dask.DaskXGBRegressor``, ...), with the same hyperparameters, trained on the
  transformed partitions where they lie; it is converted back to the ordinary estimator
  (``to_local()`` for LightGBM, the booster into the scikit-learn wrapper for XGBoost).

The result is the same scikit-learn ``Pipeline`` the single-machine path writes, so the
gate, the ONNX export, the parity checks and the service apply unchanged. Other model
families cannot train on a cluster: ``ClusterError`` says so in one line.

Needs the ``cluster`` dependency group (``dask[dataframe]``, ``distributed``), which
``make pipeline CLUSTER=...`` installs; single-machine training never imports Dask. ``make
sweep`` joins a cluster through ``joined`` too.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline

from mlops_kit.core.params import Params

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
# The conf/model/ files whose estimators have a Dask twin: named in the refusal.
CLUSTER_FAMILIES = "lightgbm, xgboost"


class ClusterError(RuntimeError):
    """Training on the cluster cannot start; the message says why and what to do."""


@dataclass
class ClusterFit:
    """A pipeline trained on a cluster, and where it was trained."""

    model: Pipeline
    # Rows the preprocessing was fitted on: also the model's input example.
    sample: pd.DataFrame
    rows: int
    partitions: int
    scheduler: str
    # Workers that ran the estimator's training tasks.
    workers: list[str] = field(default_factory=list)

    def tags(self) -> dict[str, str]:
        """MLflow tags recording that, and where, the model was trained on a cluster."""
        return {
            "train.cluster": "dask",
            "dask.scheduler": self.scheduler,
            "dask.workers": ",".join(self.workers),
            "dask.partitions": str(self.partitions),
        }


def dask_twin(estimator: BaseEstimator, name: str | None = None) -> tuple[str, type]:
    """The family of ``estimator`` (``lightgbm`` or ``xgboost``) and its Dask estimator class.

    Raises ``ClusterError`` naming the families that train on a cluster otherwise; ``name``
    is how the message calls the estimator (its config's ``_target_``).
    """
    import lightgbm
    import xgboost

    if isinstance(estimator, lightgbm.LGBMModel):
        twins = {lightgbm.LGBMClassifier: lightgbm.DaskLGBMClassifier}
        twins[lightgbm.LGBMRegressor] = lightgbm.DaskLGBMRegressor
        for local, twin in twins.items():
            if isinstance(estimator, local):
                return "lightgbm", twin
    if isinstance(estimator, xgboost.XGBModel):
        import xgboost.dask

        if isinstance(estimator, xgboost.XGBClassifier):
            return "xgboost", xgboost.dask.DaskXGBClassifier
        if isinstance(estimator, xgboost.XGBRegressor):
            return "xgboost", xgboost.dask.DaskXGBRegressor
    name = name or type(estimator).__name__
    raise ClusterError(
        f"{name} cannot train on a Dask cluster; the families that can are {CLUSTER_FAMILIES} "
        "(conf/model/): choose one (`dvc exp run -S model=lightgbm`, or `model:` in "
        f"conf/config.yaml), or unset {SCHEDULER_VARIABLE} (and CLUSTER=) to train on this machine"
    )


def scheduler_address() -> str | None:
    """The scheduler ``DASK_SCHEDULER_ADDRESS`` names (``CLUSTER=`` sets it), if any."""
    return os.environ.get(SCHEDULER_VARIABLE) or None


def connect(address: str, timeout_seconds: float) -> Any:
    """A client of the scheduler at ``address``; ``ClusterError`` when it does not answer."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout_seconds}s")
    except (OSError, TimeoutError, ValueError) as error:
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterError(
            f"no Dask scheduler answers at {address} within {timeout_seconds:g} s ({problem}): "
            f"start one (`dask scheduler`, workers with `uv run --group cluster dask worker "
            f"{address}`), or fix or unset {SCHEDULER_VARIABLE} (CLUSTER=)"
        ) from None


def read_partitions(path: Path) -> Any:
    """The Parquet table at ``path`` as a Dask DataFrame, one partition per row group."""
    import dask.dataframe as dd

    return dd.read_parquet(path, split_row_groups=True)


def preprocessing_sample(frame: Any, rows: int, sample_rows: int, seed: int) -> pd.DataFrame:
    """About ``sample_rows`` rows drawn uniformly from every partition (all when fewer)."""
    fraction = min(1.0, sample_rows / max(rows, 1))
    sample = frame if fraction >= 1.0 else frame.sample(frac=fraction, random_state=seed)
    return sample.compute().reset_index(drop=True)


def transformed(preprocessor: Any, columns: list[str]) -> Any:
    """A function applying the fitted ``preprocessor`` to one partition: float64 rows."""

    # Dask names a partition's task after this function: training_workers looks for it.
    def transform_partition(partition: pd.DataFrame) -> np.ndarray:
        return np.asarray(preprocessor.transform(partition[columns]), dtype=np.float64)

    return transform_partition


def label_column(target: str) -> Any:
    """A function taking one partition's target column, as a numpy array."""

    def labels(partition: pd.DataFrame) -> np.ndarray:
        return partition[target].to_numpy()

    return labels


def codes_of(target: str, classes: np.ndarray) -> Any:
    """A function encoding one partition's labels as their positions in ``classes``."""

    def encode(partition: pd.DataFrame) -> np.ndarray:
        return np.searchsorted(classes, partition[target].to_numpy()).astype(np.int32)

    return encode


def local_xgboost(estimator: BaseEstimator, trained: Any, classes: np.ndarray | None) -> Any:
    """The configured XGBoost estimator holding the booster the cluster trained.

    Saved and loaded through XGBoost's own model file, which carries the scikit-learn
    attributes (objective, classes) the wrapper restores. The kit's XGBClassifier keeps
    the table's labels beside XGBoost's codes.
    """
    local = clone(estimator)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.json"
        trained.save_model(path)
        local.load_model(path)
    if classes is not None:
        # Read by the kit's XGBClassifier (predict, classes_); XGBoost's own ignores it.
        local.labels_ = classes
    return local


def fit_on_cluster(model: Pipeline, params: Params, client: Any) -> ClusterFit:
    """Fit ``model`` (preprocessing, estimator) on the train split spread over the cluster."""
    from distributed import get_task_stream

    preprocessor, estimator = model.steps[0][1], model.steps[-1][1]
    family, twin = dask_twin(estimator)
    data, config = params.data, params.train.cluster
    frame = read_partitions(params.paths.train)
    rows = len(frame)
    sample = preprocessing_sample(frame, rows, config.preprocess_sample_rows, params.train.seed)
    columns = data.input_columns
    preprocessor.fit(sample[columns], sample[data.target])
    width = np.asarray(preprocessor.transform(sample[columns].head(1))).shape[1]
    features = frame.map_partitions(
        transformed(preprocessor, columns), meta=np.empty((0, width), dtype=np.float64)
    )
    classes = None
    if data.is_classification and family == "xgboost":
        # XGBoost learns the codes 0..n-1 only: the classes of the whole split, a few values.
        classes = np.sort(frame[data.target].unique().compute().to_numpy())
        target = frame.map_partitions(
            codes_of(data.target, classes), meta=np.empty((0,), dtype=np.int32)
        )
    else:
        # A partition-wise target keeps the target's partitions those of the features:
        # `frame[target]` alone lets Dask merge the narrow column's partitions.
        meta = np.empty((0,), dtype=sample[data.target].to_numpy().dtype)
        target = frame.map_partitions(label_column(data.target), meta=meta)
    settings = estimator.get_params()
    if family == "lightgbm":
        # LightGBM's Dask estimator runs as many threads as each worker has (it warns
        # that it ignores n_jobs): the cluster's sizing, not the config's, decides.
        settings.pop("n_jobs", None)
    twin_estimator = twin(**settings)
    with get_task_stream(client) as stream:
        trained = twin_estimator.fit(features, target)
    if family == "lightgbm":
        local = trained.to_local()
    else:
        local = local_xgboost(estimator, trained, classes)
    fitted = Pipeline([*model.steps[:-1], (model.steps[-1][0], local)])
    return ClusterFit(
        model=fitted,
        sample=sample,
        rows=rows,
        partitions=frame.npartitions,
        scheduler=client.scheduler.address,
        workers=training_workers(stream.data),
    )


def training_workers(tasks: list[dict[str, Any]]) -> list[str]:
    """The workers that computed a transformed partition during the fit, from its task stream.

    LightGBM and XGBoost both train each worker on the partitions it holds, and only
    the workers holding some: these are the workers that trained.
    """
    found = {task["worker"] for task in tasks if "transform_partition" in str(task.get("key"))}
    return sorted(found)


@contextmanager
def joined(address: str, timeout_seconds: float, stage: str) -> Iterator[Any]:
    """A client of the scheduler at ``address`` that has workers; closed on leaving.

    ``ClusterError`` when the scheduler does not answer or has no worker to run on.
    """
    with connect(address, timeout_seconds) as client:
        workers = len(client.scheduler_info()["workers"])
        if workers == 0:
            raise ClusterError(
                f"the Dask scheduler at {address} has no workers: start some "
                f"(`uv run --group cluster dask worker {address}`)"
            )
        print(f"{stage}: joined the Dask scheduler {address} ({workers} workers)")
        yield client


def train(model: Pipeline, params: Params, address: str) -> ClusterFit:
    """Join the scheduler at ``address`` and fit ``model`` there; the client is closed after."""
    dask_twin(model.steps[-1][1], params.model.get("_target_"))  # refused before connecting
    with joined(address, params.train.cluster.connect_timeout_seconds, "train") as client:
        return fit_on_cluster(model, params, client)
