"""Named metrics: scored by name, refused by name when conf/ names one that is not there."""

import numpy as np
import pandas as pd
import pytest

from mlops_kit.core import scoring
from mlops_kit.core.scoring import (
    Metric,
    MetricError,
    check_named,
    label_array,
    score_predictions,
)

TABLE = {
    "hits": Metric(lambda truth, guess: sum(t == g for t, g in zip(truth, guess, strict=True))),
    "misses": Metric(
        lambda truth, guess: sum(t != g for t, g in zip(truth, guess, strict=True)),
        greater_is_better=False,
    ),
    "first_class_share": Metric(
        lambda truth, probabilities, classes: probabilities[0][0], needs_probabilities=True
    ),
}


def test_every_metric_is_scored_and_probabilities_are_asked_once() -> None:
    asked = []

    def probabilities():
        asked.append(1)
        return [[0.25, 0.75]]

    scores = score_predictions(TABLE, ["a", "b"], ["a", "a"], probabilities, ["a", "b"])
    assert scores == {"hits": 1.0, "misses": 1.0, "first_class_share": 0.25}
    assert asked == [1]


def test_a_probability_metric_is_skipped_when_the_truth_lacks_a_class() -> None:
    scores = score_predictions(TABLE, ["a", "a"], ["a", "b"], lambda: [[1.0, 0.0]], ["a", "b"])
    assert "first_class_share" not in scores


@pytest.mark.parametrize(
    ("names", "said"),
    [
        ({"recall": None}, "names the metric 'recall', which metrics.py does not define"),
        ({"misses": True}, "set greater_is_better: false"),
    ],
)
def test_a_metric_named_in_conf_must_exist_and_point_the_same_way(names: dict, said: str) -> None:
    with pytest.raises(MetricError, match=said):
        check_named(names, TABLE, "metrics.py", "conf/evaluate/")
    check_named({"hits": True, "misses": None}, TABLE, "metrics.py", "conf/evaluate/")


def test_text_labels_are_scored_fixed_width_and_compare_equal() -> None:
    labels = np.asarray(["Adelie", "Gentoo", "Chinstrap", "Adelie"], dtype=object)
    fixed = label_array(labels)
    assert fixed.dtype.kind == "U"
    assert fixed.tolist() == labels.tolist()
    seen = []
    table = {"seen": Metric(lambda truth, guess: seen.append((truth, guess)) or 1.0)}
    score_predictions(table, pd.Series(labels), labels[::-1], None, None)
    assert all(array.dtype.kind == "U" for array in seen[0])


@pytest.mark.parametrize(
    "values",
    [[1, 2, 2], [True, False], np.asarray(["a", 1, None], dtype=object), ["a", None, "b"]],
)
def test_other_labels_are_left_as_they_are(values: list) -> None:
    assert label_array(values).tolist() == list(values)
    assert label_array(values).dtype == np.asarray(values).dtype


def test_labels_too_wide_to_store_fixed_width_stay_objects(monkeypatch) -> None:
    monkeypatch.setattr(scoring, "FIXED_WIDTH_LABEL_BYTES", 100)
    labels = np.asarray(["x" * 30, "y"] * 2, dtype=object)
    assert label_array(labels).dtype == object
