"""Named metrics: what a metric is to the kit, and how a table of them scores predictions.

The team names its metrics in ``src/<package>/metrics.py`` (``team.task_metrics``
reads them); ``conf/evaluate/`` thresholds, the promotion decision, the slices and
the online monitoring refer to them by those names.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# The most memory text labels take once stored fixed-width (four bytes per character
# of the longest); larger, they stay Python objects: slower to sort, same scores.
FIXED_WIDTH_LABEL_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Metric:
    """A score of predictions against the truth, and which way is better.

    ``function(truth, predicted)`` returns a number; with ``needs_probabilities``
    it is ``function(truth, probabilities, classes)`` instead (classification
    only), and is skipped where probabilities say nothing: a table that lacks
    one of the model's classes, or a model that knows one class.
    """

    function: Callable[..., Any]
    greater_is_better: bool = True
    needs_probabilities: bool = False


class MetricError(ValueError):
    """A metric named in ``conf/`` is not in the team's table, or points the other way."""


def check_named(
    names: Mapping[str, bool | None], known: Mapping[str, Metric], source: str, where: str
) -> None:
    """Refuse metric names ``known`` lacks, or a direction that contradicts it.

    ``names`` maps each name to the direction ``where`` states (``None``: none stated);
    ``source`` names the file that defines ``known``.
    """
    for name, greater_is_better in names.items():
        if name not in known:
            raise MetricError(
                f"{where} names the metric {name!r}, which {source} does not define for "
                f"this task; defined: {', '.join(sorted(known))}"
            )
        if greater_is_better is not None and greater_is_better != known[name].greater_is_better:
            better = "higher" if known[name].greater_is_better else "lower"
            raise MetricError(
                f"{where} says the other direction for {name!r} than {source}, where "
                f"{better} is better; set greater_is_better: "
                f"{str(known[name].greater_is_better).lower()}"
            )


def score_predictions(
    metrics: Mapping[str, Metric],
    truth: Any,
    predicted: Any,
    probabilities: Callable[[], Any] | None = None,
    classes: list | None = None,
) -> dict[str, float]:
    """Every metric of ``metrics`` of ``predicted`` against ``truth``.

    Each metric is given ``truth`` and ``predicted`` as numpy arrays (``label_array``).
    ``probabilities`` is called at most once, and only when a metric needs it and
    the truth holds exactly the model's ``classes``, two or more.
    """
    truth, predicted = label_array(truth), label_array(predicted)
    scores: dict[str, float] = {}
    probable = (
        probabilities is not None
        and classes is not None
        and len(classes) > 1
        and set(classes) == set(pd.unique(truth))
    )
    computed = None
    for name, metric in metrics.items():
        if not metric.needs_probabilities:
            scores[name] = float(metric.function(truth, predicted))
        elif probable:
            computed = probabilities() if computed is None else computed
            scores[name] = float(metric.function(truth, computed, classes))
    return scores


def label_array(values: Any) -> np.ndarray:
    """``values`` as a numpy array, text labels stored fixed-width rather than as objects.

    scikit-learn's classification metrics sort the labels several times per call, and
    numpy sorts fixed-width strings some seven times faster than Python ``str``
    objects, to the same order; each value still compares equal to its original. Text
    labels whose fixed-width copy would pass ``FIXED_WIDTH_LABEL_BYTES`` stay objects.
    """
    array = np.asarray(values)
    if array.dtype != object or pd.api.types.infer_dtype(array, skipna=False) != "string":
        return array
    longest = max(map(len, array), default=0)
    if 4 * max(longest, 1) * array.size > FIXED_WIDTH_LABEL_BYTES:
        return array
    return array.astype(str)
