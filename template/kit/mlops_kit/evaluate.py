"""Evaluation stage: score the challenger on held-out data and decide its promotion.

``python -m mlops_kit.evaluate`` is the DVC stage. It writes metrics (overall and
per slice), the data behind the plots, and the promotion decision with its
reasons. The challenger becomes champion only when it meets every threshold in
``conf/evaluate/`` and beats the current champion, scored on the same test set,
by the promotion margin. A champion of another lineage (it learned another target
or task, or needs columns the new data lacks) is not scored: the first model of
new data is judged by the thresholds alone.
"""

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import label_binarize

from mlops_kit import team
from mlops_kit.core import markdown, strict_json
from mlops_kit.core.gate import decide, threshold_failures
from mlops_kit.core.lineage import (
    Lineage,
    input_columns_of,
    label_change,
    labels_of,
    lineage_change,
    lineage_of,
    plain_labels,
)
from mlops_kit.core.params import Params, load_params
from mlops_kit.core.scoring import MetricError, check_named, label_array, score_predictions

if TYPE_CHECKING:  # MLflow takes seconds to import; the gate and the report need none of it
    from mlflow import MlflowClient


def classification_metrics(model: Pipeline, features: pd.DataFrame, target: pd.Series) -> dict:
    """The team's classification metrics (``metrics.py``) of ``model`` on ``features``."""
    return score_predictions(
        team.task_metrics(is_classification=True),
        target,
        model.predict(features),
        probabilities=lambda: model.predict_proba(features),
        classes=list(model.classes_),
    )


def regression_metrics(model: Pipeline, features: pd.DataFrame, target: pd.Series) -> dict:
    """The team's regression metrics (``metrics.py``) of ``model`` on ``features``."""
    metrics_table = team.task_metrics(is_classification=False)
    return score_predictions(metrics_table, target, model.predict(features))


# Classifiers whose ``predict`` is, in their own code, ``classes_[argmax(predict_proba)]``
# (first maximum on ties, as numpy's): their labels are read off the probabilities,
# which spares a second pass over the trees on a large table.
ARGMAX_CLASSIFIERS = frozenset(
    {
        "lightgbm.sklearn.LGBMClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
    }
)


def predicts_argmax(model: Pipeline) -> bool:
    """Whether ``model`` (a pipeline or an estimator) labels rows by their most probable class."""
    estimator = model[-1] if hasattr(model, "steps") else model
    kind = type(estimator)
    return f"{kind.__module__}.{kind.__qualname__}" in ARGMAX_CLASSIFIERS


class Predictions:
    """A model's predictions on a table, made once and scored on the whole table or its slices.

    Scoring a table, its slices, its parity groups and its charts all need the same
    predictions; at millions of rows each ``predict`` costs seconds, so they are made
    at most once per model and table (probabilities too, and only when a metric or a
    chart asks for them). ``model`` is given the columns it was fitted on: a champion
    may have learned columns the configuration no longer lists.
    """

    def __init__(self, model: Pipeline, table: pd.DataFrame, params: Params):
        self.model, self.params = model, params
        self.features = table[input_columns_of(model, params)]
        self.target = table[params.data.target]
        # Converted once, not per slice: the metrics sort these arrays many times.
        self.truth = label_array(self.target)
        self._predicted: np.ndarray | None = None
        self._probabilities: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray:
        """``model.predict`` of every row."""
        if self._predicted is None:
            if self.params.data.is_classification and predicts_argmax(self.model):
                best = np.argmax(self.probabilities, axis=1)
                predicted = np.asarray(self.model.classes_).take(best)
            else:
                predicted = self.model.predict(self.features)
            self._predicted = label_array(predicted)
        return self._predicted

    @property
    def probabilities(self) -> np.ndarray:
        """``model.predict_proba`` of every row (classifiers)."""
        if self._probabilities is None:
            self._probabilities = np.asarray(self.model.predict_proba(self.features))
        return self._probabilities

    def scores(self, rows: np.ndarray | None = None) -> dict:
        """The task's metrics (``metrics.py``) on the rows at positions ``rows`` (None: all)."""
        target = self.truth if rows is None else self.truth[rows]
        predicted = self.predicted if rows is None else self.predicted[rows]
        if not self.params.data.is_classification:
            return score_predictions(team.task_metrics(is_classification=False), target, predicted)
        return score_predictions(
            team.task_metrics(is_classification=True),
            target,
            predicted,
            probabilities=lambda: self.probabilities if rows is None else self.probabilities[rows],
            classes=list(self.model.classes_),
        )


def score(
    model: Pipeline, table: pd.DataFrame, params: Params, predictions: Predictions | None = None
) -> dict:
    """The task's metrics of ``model`` on ``table``, given the columns it was trained on.

    ``predictions``, of ``model`` on ``table``, are reused when given.
    """
    return (predictions or Predictions(model, table, params)).scores()


def group_positions(table: pd.DataFrame, column: str, bins: int) -> dict[str, np.ndarray]:
    """The positions of the rows of ``table`` per value of ``column``, by label.

    A numeric column with more distinct values than ``bins`` is cut into that many
    quantile bins (labelled by interval), so a continuous column slices too.
    """
    values = table[column]
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > bins:
        values = pd.qcut(values, q=bins, duplicates="drop").astype(str)
    # Grouping the positions, not the table, copies no column of it per group.
    positions = pd.Series(np.arange(len(table)), index=table.index)
    return {
        str(value): rows.to_numpy()
        for value, rows in positions.groupby(values, dropna=False, sort=True, observed=True)
    }


def groups_of(table: pd.DataFrame, column: str, bins: int) -> dict[str, pd.DataFrame]:
    """The rows of ``table`` per value of ``column``, by label (see ``group_positions``)."""
    return {label: table.iloc[rows] for label, rows in group_positions(table, column, bins).items()}


def grouped_scores(predictions: Predictions, table: pd.DataFrame, column: str) -> dict:
    """Metrics per group of ``column`` (see ``group_positions``), with each group's row count."""
    groups = group_positions(table, column, predictions.params.data.slice_bins)
    return {
        label: {"rows": len(rows), **predictions.scores(rows)} for label, rows in groups.items()
    }


def slice_scores(
    model: Pipeline, table: pd.DataFrame, params: Params, predictions: Predictions | None = None
) -> dict:
    """Metrics per slice of ``data.slice_column``, with each slice's row count.

    Empty when the dataset has no slice column. ``predictions``, of ``model`` on
    ``table``, are reused when given.
    """
    column = params.data.slice_column
    if column is None:
        return {}
    return grouped_scores(predictions or Predictions(model, table, params), table, column)


def plot_tables(
    model: Pipeline, table: pd.DataFrame, params: Params, predictions: Predictions | None = None
) -> dict[Path, pd.DataFrame]:
    """Rows behind the DVC plots: predictions (confusion or scatter) and ROC for classifiers.

    ``model`` is given the columns it was fitted on: the report draws the champion,
    which may have learned columns the configuration no longer lists. ``predictions``,
    of ``model`` on ``table``, are reused when given.
    """
    predictions = predictions or Predictions(model, table, params)
    target = predictions.target
    frame = pd.DataFrame({"actual": target, "predicted": predictions.predicted})
    if not params.data.is_classification:
        frame["residual"] = frame["actual"] - frame["predicted"]
        return {params.paths.predictions: frame}
    classes = list(model.classes_)
    truth = label_binarize(target, classes=classes)
    if len(classes) == 2:
        truth = np.hstack([1 - truth, truth])
    # Micro-averaged ROC: every (row, class) pair is one binary decision.
    fpr, tpr, _ = metrics.roc_curve(truth.ravel(), predictions.probabilities.ravel())
    return {
        params.paths.predictions: frame,
        params.paths.roc: pd.DataFrame({"fpr": fpr, "tpr": tpr}),
    }


def write_json(path: Path, content: dict) -> None:
    """Write ``content`` as indented, key-sorted strict JSON (no NaN), creating the folder."""
    strict_json.write(path, content, sort_keys=True)


def holdout_scores(
    challenger: Pipeline,
    champion: Pipeline,
    params: Params,
    on_test: tuple[pd.DataFrame, dict, dict] | None = None,
) -> tuple[dict, dict]:
    """Challenger's and champion's metrics on the frozen holdout (``data.split_stage``).

    The split stage always writes the holdout before evaluation runs; both models
    are of the data's lineage here, so both can read it. ``on_test`` holds the test
    split and both models' metrics on it: a holdout frozen from that very split (the
    first run on new data) scores the same, and is not predicted again.
    """
    holdout = pd.read_parquet(params.paths.holdout)
    if on_test is not None and same_rows(holdout, on_test[0]):
        return on_test[1], on_test[2]
    return score(challenger, holdout, params), score(champion, holdout, params)


def same_rows(table: pd.DataFrame, other: pd.DataFrame) -> bool:
    """Whether two tables hold the same columns and the same rows in the same order."""
    return table.shape == other.shape and table.equals(other)


def stale_registration(params: Params, client: "MlflowClient", registration: dict) -> None:
    """Stop when the tracking store lacks the model version the train stage registered.

    That happens when ``mlflow.db`` was deleted or the tracking URI changed since
    training. The registration record is removed: it is an uncached output of the
    train stage, which DVC then runs again on the next ``dvc repro`` (uncached outputs
    keep a stage out of DVC's run cache, so nothing restores the stale record).
    """
    from mlops_kit import registry

    lacking = registry.missing_registration(client, registration)
    if lacking is None:
        return
    params.paths.registration.unlink()
    raise SystemExit(
        f"evaluate: {params.paths.registration} names {registration['model_name']} "
        f"v{registration['version']} of run {registration['run_id']}, which the tracking "
        f"store {registry.tracking_uri(params.mlflow)} does not hold ({lacking}): the store "
        "was deleted or replaced since training. The record is removed, so `make pipeline` "
        "now trains and registers the model again."
    )


def run_stage() -> None:
    """Score the challenger, compare with the champion, promote when the gate passes."""
    import mlflow

    from mlops_kit import registry

    params = load_params()
    check_named(
        # The thresholds state no direction; the primary metric's is checked, last.
        {
            **dict.fromkeys(params.evaluate.thresholds),
            params.evaluate.primary_metric: params.evaluate.greater_is_better,
        },
        team.task_metrics(params.data.is_classification),
        team.metrics_file(),
        "conf/evaluate/",
    )
    registration = json.loads(params.paths.registration.read_text())
    client = registry.configure(params.mlflow)
    stale_registration(params, client, registration)
    test_set = pd.read_parquet(params.paths.test)
    model = joblib.load(params.paths.model)
    predictions = Predictions(model, test_set, params)
    challenger_scores = score(model, test_set, params, predictions)
    write_json(params.paths.metrics, challenger_scores)
    write_json(params.paths.slice_metrics, slice_scores(model, test_set, params, predictions))
    for path, table in plot_tables(model, test_set, params, predictions).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)

    challenger = lineage_of(model, params)
    champion = registry.version_by_alias(client, params.mlflow, params.mlflow.champion_alias)
    champion_scores, before, new_lineage, holdout = None, None, "", None
    if champion is not None:
        before = registry.lineage_of(client, params.mlflow, champion)
        change = lineage_change(before, challenger, test_set.columns, "the test split")
        champion_model = None
        if not change:
            try:
                champion_model = registry.load_version(params.mlflow, champion.version)
            except registry.Unloadable as unloadable:
                change = str(unloadable)
            else:
                # A champion registered before labels were tagged: its classes say it.
                change = label_change(labels_of(champion_model), challenger.labels)
        if change:
            new_lineage = (
                f"new lineage: champion v{champion.version} learned {before}; "
                f"v{registration['version']} learns {challenger} ({change})"
            )
        else:
            champion_scores = score(champion_model, test_set, params)
            on_test = (test_set, challenger_scores, champion_scores)
            holdout = holdout_scores(model, champion_model, params, on_test)
    decision = decide(challenger_scores, champion_scores, params.evaluate, new_lineage, holdout)
    if decision.promote:
        registry.promote(client, params.mlflow, registration["version"])

    with registry.tracked_run(run_id=registration["run_id"]):
        mlflow.log_metrics({f"test_{name}": value for name, value in challenger_scores.items()})
        mlflow.set_tag("promoted", str(decision.promote).lower())
        for path in [params.paths.metrics, params.paths.slice_metrics, params.paths.predictions]:
            mlflow.log_artifact(str(path), artifact_path="evaluation")
    outcome = {
        **asdict(decision),
        "challenger_version": registration["version"],
        "champion_version_before": champion.version if champion else None,
        "challenger": challenger_scores,
        "champion": champion_scores,
        "holdout": None if holdout is None else {"challenger": holdout[0], "champion": holdout[1]},
        "lineage": {
            "new": bool(new_lineage),
            "challenger": str(challenger),
            "champion_before": None if before is None else str(before),
        },
    }
    write_json(params.paths.promotion, outcome)
    verdict = "promoted to champion" if decision.promote else "not promoted"
    print(f"evaluate: v{registration['version']} {verdict}: " + "; ".join(decision.reasons))


def check_bundle(params: Params) -> list[str]:
    """Thresholds the exported champion misses on the current test split (none: it may ship).

    A bundle whose files or metadata do not match their hashes (or none at all), or
    whose model learned another target or task, or needs columns the split lacks,
    cannot be scored on it: that is the one failure then.
    """
    from mlops_kit.bundle import MODEL_FILE, BundleError, verify_bundle

    try:
        metadata = verify_bundle(params.paths.bundle)
    except BundleError as error:
        return [str(error)]
    model = joblib.load(params.paths.bundle / MODEL_FILE)
    test_set = pd.read_parquet(params.paths.test)
    bundled = Lineage(
        metadata["task"], metadata["target"], tuple(input_columns_of(model, params)), "its data"
    )
    change = lineage_change(bundled, lineage_of(model, params), test_set.columns, "the test split")
    if not change and params.data.is_classification:
        present = plain_labels(test_set[params.data.target].dropna().unique())
        change = label_change(labels_of(model), present)
    if change:
        return [
            f"its model (v{metadata['model_version']}) learned {metadata['target']} and cannot "
            f"be scored on the current test split ({change}); `make pipeline` trains and "
            "exports a model of the current data"
        ]
    return threshold_failures(score(model, test_set, params), params.evaluate)


def markdown_report(params: Params, reason: str) -> str:
    """What the last pipeline run decided and why, with the metrics, as markdown."""
    outcome = json.loads(params.paths.promotion.read_text())
    verdict = "promoted to champion" if outcome["promote"] else "not promoted"
    lines = [
        f"## Training run: model v{outcome['challenger_version']} {verdict}",
        "",
        f"Reason for the run: {reason}.",
        "",
        *(f"- {line}" for line in outcome["reasons"]),
        "",
    ]
    champion = outcome["champion"] or {}
    # A champion of another lineage was not scored on this data; older reports lack the key.
    unscored = "other lineage" if outcome.get("lineage", {}).get("new") else "none"
    rows = [
        (name, f"{value:.4f}", f"{champion[name]:.4f}" if name in champion else unscored)
        for name, value in sorted(outcome["challenger"].items())
    ]
    lines += markdown.table(["Metric", "Challenger", "Champion before"], rows, right=[1, 2])
    return "\n".join(lines) + "\n"


def latency_batch(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The input columns of ``table``, repeated to the configured latency batch size."""
    rows = params.ml_test_score.latency.rows
    inputs = table[params.data.input_columns]
    return pd.concat([inputs] * (rows // len(inputs) + 1)).head(rows)


def _yardstick(values: np.ndarray) -> None:
    """A fixed CPU-bound workload: its time moves with the machine's load, never with the model."""
    np.sort(values)


def batch_latency_ms(model: Pipeline, batch: pd.DataFrame, repeats: int) -> tuple[float, float]:
    """Median time of one prediction call on ``batch`` in ms, and its ratio to a yardstick's.

    The machine's load slows both halves of a pair alike, so the ratio stays put where
    the milliseconds do not: checks compare ratios, never milliseconds from another hour.
    The yardstick lasts some ten milliseconds, long enough to be preempted like the model.
    """
    values = np.random.default_rng(0).random(1_000_000)
    timings, ratios = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(batch)
        middle = time.perf_counter()
        _yardstick(values)
        end = time.perf_counter()
        timings.append((middle - start) * 1000)
        ratios.append((middle - start) / (end - middle))
    return float(np.median(timings)), float(np.median(ratios))


def latency_baseline(params: Params) -> dict | None:
    """The recorded baseline, or None when there is none or it predates relative timing."""
    path = params.ml_test_score.latency.baseline
    if not path.exists():
        return None
    recorded = json.loads(path.read_text())
    return recorded if "relative" in recorded else None


def record_latency_baseline(params: Params, if_missing: bool) -> None:
    """Measure the trained model's batch prediction time and store it as the baseline."""
    latency = params.ml_test_score.latency
    if if_missing and latency_baseline(params) is not None:
        print(f"latency baseline: kept {latency.baseline}")
        return
    missing = [path for path in (params.paths.validated, params.paths.model) if not path.exists()]
    if missing:
        raise SystemExit(
            f"latency baseline: no trained model to time yet ({missing[0]} is missing); "
            "run `make pipeline` first"
        )
    batch = latency_batch(pd.read_parquet(params.paths.validated), params)
    model = joblib.load(params.paths.model)
    measured, relative = batch_latency_ms(model, batch, latency.repeats)
    write_json(latency.baseline, {"batch_ms": measured, "relative": relative, "rows": latency.rows})
    print(
        f"latency baseline: {latency.rows} rows in {measured:.1f} ms "
        f"({relative:.2f} yardsticks) -> {latency.baseline}"
    )


def main() -> None:
    """Run the stage, or a check CI uses: ``gate``, ``promoted``, ``report``, ``latency``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    commands = ["stage", "gate", "promoted", "report", "latency"]
    parser.add_argument("command", nargs="?", default="stage", choices=commands)
    parser.add_argument("--reason", default="manual run", help="why the run happened (report)")
    parser.add_argument(
        "--if-missing", action="store_true", help="latency: keep an existing baseline"
    )
    args = parser.parse_args()
    if args.command == "stage":
        run_stage()
        return
    params = load_params()
    if args.command == "latency":
        record_latency_baseline(params, args.if_missing)
        return
    if args.command == "promoted":
        print(str(json.loads(params.paths.promotion.read_text())["promote"]).lower())
    elif args.command == "report":
        print(markdown_report(params, args.reason))
    else:
        failures = check_bundle(params)
        if failures:
            raise SystemExit("gate: the exported champion may not ship: " + "; ".join(failures))
        print(f"gate: the exported champion in {params.paths.bundle} meets every threshold")


if __name__ == "__main__":
    try:
        main()
    except MetricError as error:
        raise SystemExit(f"evaluate: {error}") from None
