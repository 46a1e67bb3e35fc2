"""Training stage: fit the configured model, track the run in MLflow, register a challenger.

``python -m mlops_kit.train`` is the DVC stage. It writes the fitted pipeline
(for evaluation and serving) and a registration record naming the MLflow run
and model version the evaluation stage reports to.

With ``DASK_SCHEDULER_ADDRESS`` set (``make pipeline CLUSTER=tcp://host:8786``) the
model is fitted on that Dask cluster instead (``cluster.py``: LightGBM and XGBoost),
into the same kind of pipeline; the run is tagged with the cluster's workers.
"""

import hashlib
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_kit import cluster, team
from mlops_kit.core import strict_json
from mlops_kit.core.lineage import lineage_of
from mlops_kit.core.params import Params, load_params
from mlops_kit.features import build_preprocessor


def build_model(params: Params) -> Pipeline:
    """The team's preprocessing followed by its estimator (``conf/model/``), seeded."""
    estimator = team.model().build_estimator(params.model, params.train.seed)
    return Pipeline([("preprocess", build_preprocessor(params.data)), ("estimator", estimator)])


def features_and_target(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.Series]:
    """Split a table into the model's input columns and its target."""
    return frame[params.data.input_columns], frame[params.data.target]


def fit(train_set: pd.DataFrame, params: Params) -> Pipeline:
    """Fit the full pipeline on the training table."""
    features, target = features_and_target(train_set, params)
    return build_model(params).fit(features, target)


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes: the same content hash DVC records for it in dvc.lock."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested config into MLflow param names such as ``model.max_depth``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def main() -> None:
    """Fit, save, log and register the model described by ``params.yaml``."""
    from mlops_kit import registry

    params = load_params()
    # The same variable `make sweep` joins a cluster with; Dask is imported only when
    # it is set, so single-machine training never needs the cluster dependency group.
    address = cluster.scheduler_address()
    cluster_tags: dict[str, str] = {}
    if address:
        try:
            trained = cluster.train(build_model(params), params, address)
        except cluster.ClusterError as error:
            raise SystemExit(f"train: {error}") from None
        model, rows = trained.model, trained.rows
        features = trained.sample[params.data.input_columns]
        cluster_tags = trained.tags()
        where = f" on the Dask cluster {address} (workers {cluster_tags['dask.workers']})"
    else:
        train_set = pd.read_parquet(params.paths.train)
        model = fit(train_set, params)
        (features, _), rows, where = features_and_target(train_set, params), len(train_set), ""
    params.paths.model.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, params.paths.model)

    logged_params = flatten(params.model_dump(mode="json", include={"data", "model", "train"}))
    data_versions = {
        "data.train_md5": file_md5(params.paths.train),
        "data.test_md5": file_md5(params.paths.test),
    }
    registration = registry.log_and_register(
        model,
        features,
        params,
        logged_params,
        {**data_versions, **cluster_tags},
        Path("params.yaml"),
        version_tags=lineage_of(model, params).tags(),
    )
    # The model card names the commit and data a champion came from; export copies these
    # into the bundle without asking MLflow again.
    registration = {**registration, "git_commit": registry.git_commit(), "data": data_versions}
    strict_json.write(params.paths.registration, registration)
    print(
        f"train: {params.model['_target_']} on {rows} rows{where}; "
        f"registered {registration['model_name']} v{registration['version']} "
        f"as '{params.mlflow.challenger_alias}'"
    )


if __name__ == "__main__":
    main()
