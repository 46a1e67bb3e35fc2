"""What the model card states about the champion, gathered from the bundle and the data.

The champion is the exported bundle's model (``paths.bundle``), which need not be
the model the last run trained: a challenger that was not promoted leaves it in
place. So its scores are computed here, on the current test split and the frozen
holdout, rather than copied from the evaluation of the challenger.
"""

import json
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from mlops_kit.bundle import METADATA_FILE, MODEL_FILE
from mlops_kit.core.lineage import input_columns_of
from mlops_kit.core.params import Params
from mlops_kit.evaluate import (
    Predictions,
    grouped_scores,
    plot_tables,
    same_rows,
    score,
    slice_scores,
)
from mlops_kit.train import file_md5


def column_roles(params: Params, columns: list[str]) -> dict[str, list[str]]:
    """Each column's roles in ``conf/`` (target, feature, slice, ...); ``unused`` if none."""
    data = params.data
    named = {
        "target": [data.target],
        "numeric feature": data.numeric_features,
        "categorical feature": data.categorical_features,
        "slice": [data.slice_column],
        "time": [data.time_column],
        "sensitive attribute": [data.sensitive_column],
    }
    roles = {
        column: [role for role, names in named.items() if column in names] for column in columns
    }
    return {column: found or ["unused"] for column, found in roles.items()}


def data_facts(params: Params, train: pd.DataFrame, test: pd.DataFrame, holdout: int) -> dict:
    """Rows per split, and per column of the training split its dtype, roles and null rate."""
    roles = column_roles(params, list(train.columns))
    return {
        "rows": {"train": len(train), "test": len(test), "holdout": holdout},
        "derived_features": params.data.derived_features,
        "columns": {
            column: {
                "dtype": str(train[column].dtype),
                "roles": roles[column],
                "null_rate": float(train[column].isna().mean()),
            }
            for column in train.columns
        },
    }


def parity_scores(
    model: Any, table: pd.DataFrame, params: Params, predictions: Predictions | None = None
) -> dict:
    """Metrics per group of the sensitive attribute, with row counts (empty without one).

    ``predictions``, of ``model`` on ``table``, are reused when given.
    """
    column = params.data.sensitive_column
    if column is None or column not in table.columns:
        return {}
    return grouped_scores(predictions or Predictions(model, table, params), table, column)


def gaps(groups: dict) -> dict[str, float]:
    """Per metric, the largest minus the smallest value across groups."""
    names = {name for scores in groups.values() for name in scores if name != "rows"}
    gap = {}
    for name in sorted(names):
        values = [scores[name] for scores in groups.values() if scores.get(name) is not None]
        if len(values) > 1:
            gap[name] = max(values) - min(values)
    return gap


def estimator_facts(model: Any, params: Params) -> dict:
    """The champion's estimator class and the values it holds for the parameters ``conf/`` sets.

    Read from the model itself: the configuration may have changed since the
    champion was trained (a challenger of it that was not promoted).
    """
    estimator = model[-1] if hasattr(model, "steps") else model
    held = estimator.get_params(deep=False)
    configured = [name for name in params.model if name != "_target_"]
    name, target = type(estimator).__qualname__, str(params.model.get("_target_", ""))
    # sklearn's classes live in private modules: the public path conf/ names reads better.
    public = target if target.rsplit(".", 1)[-1] == name else f"{type(estimator).__module__}.{name}"
    return {
        "estimator": public,
        "parameters": {key: held.get(key) for key in configured if key in held},
    }


def read_json(path: Path) -> dict | None:
    """A JSON report, or None when the step that writes it has not run."""
    return json.loads(path.read_text()) if path.exists() else None


def champion_facts(params: Params) -> tuple[dict, dict[str, pd.DataFrame], list]:
    """The card's facts about the exported champion, its chart tables and its class labels."""
    bundle = params.paths.bundle
    metadata = json.loads((bundle / METADATA_FILE).read_text())
    model = joblib.load(bundle / MODEL_FILE)
    train = pd.read_parquet(params.paths.train)
    test = pd.read_parquet(params.paths.test)
    holdout = pd.read_parquet(params.paths.holdout) if params.paths.holdout.exists() else None
    # One set of predictions on the test split serves its scores, slices, parity and charts.
    predictions = Predictions(model, test, params)
    tables = plot_tables(model, test, params, predictions)
    test_scores = score(model, test, params, predictions)
    # A holdout frozen from this very test split (the first run on new data) scores the same.
    if holdout is None:
        holdout_scores = None
    elif same_rows(holdout, test):
        holdout_scores = test_scores
    else:
        holdout_scores = score(model, holdout, params)
    provenance = metadata.get("provenance") or {}
    facts = {
        "model": {
            "name": metadata["model_name"],
            "version": str(metadata["model_version"]),
            "alias": metadata["model_alias"],
            "run_id": metadata["run_id"],
            "trained_at": metadata["trained_at"],
            "task": metadata["task"],
            "target": metadata["target"],
            "classes": metadata["classes"],
            **estimator_facts(model, params),
            "inputs": input_columns_of(model, params),
            "git_commit": provenance.get("git_commit"),
            "train_md5": provenance.get("data.train_md5"),
            "current_train_md5": file_md5(params.paths.train),
            "source": str(params.data.source),
        },
        "quality": {
            "test": test_scores,
            "holdout": holdout_scores,
            "slices": slice_scores(model, test, params, predictions),
            "parity": parity_scores(model, test, params, predictions),
        },
        "data": data_facts(params, train, test, 0 if holdout is None else len(holdout)),
        "promotion": read_json(params.paths.promotion),
    }
    facts["quality"]["parity_gaps"] = gaps(facts["quality"]["parity"])
    named = {
        "predictions": tables[params.paths.predictions],
        **({"roc": tables[params.paths.roc]} if params.paths.roc in tables else {}),
    }
    return facts, named, list(getattr(model, "classes_", []))
