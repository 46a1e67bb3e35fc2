"""The team's metrics: each task's named scores and which way is better.

``conf/evaluate/`` refers to these names: the primary metric that decides a
promotion, and the thresholds every champion must meet. The evaluation, the
slices, the model card and the online monitoring score every metric listed here.
Add a metric by adding an entry: a function ``(truth, predicted) -> float``, or
``(truth, probabilities, classes) -> float`` with ``needs_probabilities=True``;
``truth``, ``predicted`` and ``probabilities`` arrive as numpy arrays.

``copier update`` never rewrites this file.
"""

from functools import partial

from numpy.typing import ArrayLike
from sklearn import metrics

from mlops_kit.core.scoring import Metric


def roc_auc(truth: ArrayLike, probabilities: ArrayLike, classes: list) -> float:
    """Area under the ROC curve; one class against the rest when there are more than two."""
    if len(classes) == 2:
        return metrics.roc_auc_score(truth, probabilities[:, 1])
    return metrics.roc_auc_score(truth, probabilities, multi_class="ovr", labels=classes)


CLASSIFICATION: dict[str, Metric] = {
    "accuracy": Metric(metrics.accuracy_score),
    "f1_macro": Metric(partial(metrics.f1_score, average="macro")),
    "precision_macro": Metric(partial(metrics.precision_score, average="macro", zero_division=0)),
    "recall_macro": Metric(partial(metrics.recall_score, average="macro", zero_division=0)),
    "roc_auc": Metric(roc_auc, needs_probabilities=True),
}

REGRESSION: dict[str, Metric] = {
    "rmse": Metric(metrics.root_mean_squared_error, greater_is_better=False),
    "mae": Metric(metrics.mean_absolute_error, greater_is_better=False),
    "r2": Metric(metrics.r2_score),
}
