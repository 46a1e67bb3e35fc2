"""Training stage: fit the configured model, track the run in MLflow, register a challenger.

``python -m <package>.train`` is the DVC stage. It writes the fitted pipeline
(for evaluation and serving) and a registration record naming the MLflow run
and model version the evaluation stage reports to.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from hydra.utils import instantiate
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from .config import Params, load_params
from .features import build_preprocessor


def build_model(params: Params) -> Pipeline:
    """Preprocessing followed by the estimator named in ``conf/model/``, seeded."""
    estimator: BaseEstimator = instantiate(params.model)
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=params.train.seed)
    return Pipeline([("preprocess", build_preprocessor(params.data)), ("estimator", estimator)])


def input_columns_of(model: Pipeline, params: Params) -> list[str]:
    """The columns ``model`` was fitted on (the configured inputs when it has none recorded).

    A champion trained before the feature lists in ``conf/data/`` changed still
    needs its own columns, both to be scored against a challenger and to be served.
    """
    return list(getattr(model, "feature_names_in_", params.data.input_columns))


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
    from . import registry

    params = load_params()
    train_set = pd.read_parquet(params.paths.train)
    model = fit(train_set, params)
    params.paths.model.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, params.paths.model)

    features, _ = features_and_target(train_set, params)
    logged_params = flatten(params.model_dump(mode="json", include={"data", "model", "train"}))
    data_versions = {
        "data.train_md5": file_md5(params.paths.train),
        "data.test_md5": file_md5(params.paths.test),
    }
    registration = registry.log_and_register(
        model, features, params, logged_params, data_versions, Path("params.yaml")
    )
    params.paths.registration.write_text(json.dumps(registration, indent=2) + "\n")
    print(
        f"train: {params.model['_target_']} on {len(train_set)} rows; "
        f"registered {registration['model_name']} v{registration['version']} "
        f"as '{params.mlflow.challenger_alias}'"
    )


if __name__ == "__main__":
    main()
