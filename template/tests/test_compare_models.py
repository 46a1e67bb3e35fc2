"""`make compare-models` on this project's training split: each config measured, none chosen."""

import math

import pandas as pd

from mlops_kit.compare import configs, markdown, measure
from mlops_kit.core.params import Params


def test_a_config_is_cross_validated_timed_and_compiled(
    train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    available = configs()
    assert params.model["_target_"] in {config["_target_"] for config in available.values()}
    name = "logistic_regression" if "logistic_regression" in available else sorted(available)[0]
    result = measure(name, available[name], train_test[0], params)
    for metric in result["metrics"].values():
        assert math.isfinite(metric["mean"]) and metric["std"] >= 0
    # The folds' metrics are the ones the constant baseline is scored on.
    assert set(result["baseline"]) == set(result["metrics"])
    assert result["fit_seconds"] > 0
    assert result["compiled_ms"] > 0 and result["scikit_learn_ms"] > 0
    page = markdown([result], params, len(train_test[0]))
    assert f"| {name} |" in page or f"| **{name}** (configured) |" in page
    assert f"target `{params.data.target}`" in page
