"""The champion's charts as static PNG files, drawn with matplotlib.

Static images rather than vega specs: a page that embeds them needs no script at
all, so it draws offline, in a CI artifact, in MLflow's artifact view and in the
image CD ships, and no font is ever fetched. PNG rather than SVG: SVG path data is
long runs of numbers that the personal-data scan of every output (data-5) rightly
reads as phone and card numbers. Every chart reads its columns, classes and slices
from the data and ``conf/``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from mlops_kit.core.params import Params


def pyplot():
    """Matplotlib's pyplot, set up for files only.

    Imported here, not at module level: it costs about a second, and only drawing
    needs it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: Path) -> bytes:
    """The figure as PNG bytes, written to ``path`` only when they changed.

    Without the software version in the metadata the same chart is the same bytes,
    so an unchanged champion leaves its files untouched.
    """
    import io

    plt = pyplot()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    content = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != content:
        path.write_bytes(content)
    return content


def sample(table: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``table``, a fixed random sample when it has more."""
    return table if len(table) <= rows else table.sample(n=rows, random_state=seed)


def confusion_matrix(predictions: pd.DataFrame, classes: list, path: Path) -> bytes:
    """Counts of actual (rows) against predicted (columns) classes, in the model's order."""
    plt = pyplot()
    counts = pd.crosstab(predictions["actual"], predictions["predicted"])
    counts = counts.reindex(index=classes, columns=classes, fill_value=0)
    size = 2.5 + 0.5 * len(classes)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(counts.to_numpy(), cmap="Blues")
    labels = [str(label) for label in classes]
    axis.set_xticks(range(len(classes)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(classes)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    threshold = counts.to_numpy().max() / 2
    for (row, column), value in np.ndenumerate(counts.to_numpy()):
        colour = "white" if value > threshold else "black"
        axis.text(column, row, str(value), ha="center", va="center", color=colour)
    axis.set_title("Confusion matrix (test split)")
    figure.colorbar(image, ax=axis)
    return save(figure, path)


def roc_curve(roc: pd.DataFrame, auc: float | None, path: Path) -> bytes:
    """The micro-averaged ROC curve, with the chance diagonal."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 4.5))
    label = "model" if auc is None else f"model (ROC AUC {auc:.3f})"
    axis.plot(roc["fpr"], roc["tpr"], label=label)
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title("ROC curve, micro-averaged over classes (test split)")
    axis.legend(loc="lower right")
    return save(figure, path)


def scatter(x: pd.Series, y: pd.Series, labels: tuple[str, str, str], line, path: Path) -> bytes:
    """A scatter of ``y`` against ``x`` with a dashed reference drawn by ``line(axis)``.

    ``labels`` are the x label, the y label and the title.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(5, 4.5))
    axis.scatter(x, y, s=8, alpha=0.6)
    line(axis)
    axis.set_xlabel(labels[0])
    axis.set_ylabel(labels[1])
    axis.set_title(labels[2])
    return save(figure, path)


def predicted_vs_actual(predictions: pd.DataFrame, target: str, path: Path) -> bytes:
    """Predicted against actual target values, with the line of perfect predictions."""
    actual, predicted = predictions["actual"], predictions["predicted"]
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())

    def perfect(axis) -> None:
        axis.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
        axis.legend(loc="upper left")

    labels = (f"actual {target}", f"predicted {target}", "Predicted vs actual (test split)")
    return scatter(actual, predicted, labels, perfect, path)


def residuals(predictions: pd.DataFrame, target: str, path: Path) -> bytes:
    """Residuals (actual minus predicted) against the prediction, around zero."""
    labels = (
        f"predicted {target}",
        "residual (actual - predicted)",
        "Residuals vs predicted (test split)",
    )
    return scatter(
        predictions["predicted"],
        predictions["residual"],
        labels,
        lambda axis: axis.axhline(0, linestyle="--", color="grey"),
        path,
    )


def metric_by_group(groups: dict, metric: str, overall: float, title: str, path: Path) -> bytes:
    """One bar per group (its row count in the label) of ``metric``, the overall value dashed."""
    plt = pyplot()
    labels = [f"{label} ({scores['rows']} rows)" for label, scores in groups.items()]
    values = [scores.get(metric, float("nan")) for scores in groups.values()]
    figure, axis = plt.subplots(figsize=(6, 1.2 + 0.4 * len(labels)))
    axis.barh(labels, values)
    axis.axvline(overall, linestyle="--", color="grey", label=f"whole test split {overall:.3f}")
    axis.invert_yaxis()  # the first group on top, as in the tables
    axis.set_xlabel(metric)
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    return save(figure, path)


def draw(
    tables: dict[str, pd.DataFrame], facts: dict, classes: list, params: Params, folder: Path
) -> dict[str, Path]:
    """Draw every chart the champion's facts allow into ``folder``; return them by title.

    ``tables`` holds the predictions on the test split (and the ROC points of a
    classifier), ``facts`` the scores the model card states, ``classes`` a
    classifier's labels as the data holds them (numbers stay numbers). Charts of another
    task left in ``folder`` from an earlier dataset are removed.
    """
    target = params.data.target
    predictions = tables["predictions"]
    metric = params.report.chart_metric or params.evaluate.primary_metric
    charts: dict[str, Path] = {}
    if params.data.is_classification:
        charts["Confusion matrix"] = folder / "confusion_matrix.png"
        confusion_matrix(predictions, classes, charts["Confusion matrix"])
        charts["ROC curve"] = folder / "roc_curve.png"
        roc_curve(tables["roc"], facts["quality"]["test"].get("roc_auc"), charts["ROC curve"])
    else:
        shown = sample(predictions, params.report.max_points, params.train.seed)
        charts["Predicted vs actual"] = folder / "predicted_vs_actual.png"
        predicted_vs_actual(shown, target, charts["Predicted vs actual"])
        charts["Residuals"] = folder / "residuals.png"
        residuals(shown, target, charts["Residuals"])
    overall = facts["quality"]["test"].get(metric, float("nan"))
    # The slice and the sensitive column may be the same one: each chart keeps its own title.
    for key, column, title in (
        ("slices", params.data.slice_column, f"{metric} per slice of {params.data.slice_column}"),
        (
            "parity",
            params.data.sensitive_column,
            f"{metric} across {params.data.sensitive_column} (sensitive attribute)",
        ),
    ):
        groups = facts["quality"][key]
        if groups and column is not None:
            charts[title] = folder / f"{key}_{metric}.png"
            metric_by_group(groups, metric, overall, f"{title}, test split", charts[title])
    for stale in set(folder.glob("*.png")) - set(charts.values()):
        stale.unlink()
    return charts
