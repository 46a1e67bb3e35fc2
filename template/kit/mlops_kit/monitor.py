"""Monitoring: what the service saw and answered, against what the model was trained on.

``python -m mlops_kit.monitor JOB [JOB ...]`` reads the prediction log the service
writes (JSON Lines, one line per predicted record) and runs the named jobs:

- ``drift``: each input feature's serving distribution against the training
  split (Kolmogorov-Smirnov or chi-square test, and PSI);
- ``skew``: descriptive statistics of the logged features and predictions
  against training, and the bundle's model re-predicting the logged features
  (a difference means features are computed differently when serving);
- ``online``: the task's metrics on log rows whose labels arrived
  (``logs/labels.csv``), against the same model's metrics on the test split.

Each job writes a markdown report (drift also a plot) to ``monitor.report_dir``.
The command fails when a job finds a problem past the thresholds in
``conf/monitor/``, or has too little data for a verdict; ``--report-only``
writes the reports and always succeeds.
"""

import argparse
import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from scipy import stats

from mlops_kit import team
from mlops_kit.bundle import METADATA_FILE, MODEL_FILE
from mlops_kit.core import markdown
from mlops_kit.core.drift import (
    MISSING,
    binned_counts,
    category_counts,
    category_labels,
    drift_table,
    numbers,
    psi,
    quantile_edges,
)
from mlops_kit.core.lineage import input_columns_of
from mlops_kit.core.params import DataConfig, Params, SkewConfig, load_params
from mlops_kit.evaluate import classification_metrics, regression_metrics, score

LOG_PATH_VARIABLE = "PREDICTION_LOG"


class NotEnoughData(Exception):
    """The log (or its labels) cannot support a verdict yet."""


# --- The prediction log -------------------------------------------------------


def prediction_log_path(params: Params) -> Path:
    """The log the service writes: ``$PREDICTION_LOG`` when set, else ``serve.prediction_log``."""
    return Path(os.environ.get(LOG_PATH_VARIABLE) or params.serve.prediction_log.path)


def read_prediction_log(path: Path, min_rows: int) -> pd.DataFrame:
    """The logged predictions, one row per record, indexed by ``request_id``.

    Lines that are not JSON (a write cut short by a crash) are skipped. Fails with
    ``NotEnoughData`` when the file is missing or holds fewer than ``min_rows`` records.
    """
    if not path.exists():
        raise NotEnoughData(
            f"no prediction log at {path}: serve the model (`make serve`) and send requests, "
            f"or point {LOG_PATH_VARIABLE} at the log"
        )
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if len(records) < min_rows:
        raise NotEnoughData(
            f"{path} holds {len(records)} predictions; a verdict needs at least {min_rows} "
            "(monitor.min_rows in conf/monitor/)"
        )
    log = pd.DataFrame.from_records(records)
    log["model_version"] = log["model_version"].astype(str)
    return log.set_index("request_id", drop=False)


def logged_inputs(log: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """The logged features as the table the service gave the model (same construction)."""
    return pd.DataFrame.from_records(
        log["features"].tolist(), columns=data.input_columns, index=log.index
    )


def served_by(log: pd.DataFrame, model_version: str) -> pd.DataFrame:
    """The log rows that model version ``model_version`` answered."""
    return log[log["model_version"] == str(model_version)]


# --- Training/serving skew -----------------------------------------------------


def skew_row(
    check: str,
    column: str,
    training: float,
    serving: float,
    value: float,
    limit: float,
    p_value: float = np.nan,
    p_value_min: float = 1.0,
):
    """One line of the skew table; a NaN value (no data) counts as skew.

    A check with a test counts only when its p-value is also below ``p_value_min``
    (a NaN p-value, no test possible, leaves the limit to decide).
    """
    significant = bool(np.isnan(p_value) or p_value < p_value_min)
    skewed = not value <= limit and significant
    return {
        "check": check,
        "column": column,
        "training": training,
        "serving": serving,
        "value": value,
        "limit": limit,
        "p_value": p_value,
        "skewed": skewed,
    }


def spread_p_value(training: pd.Series, serving: pd.Series) -> float:
    """Brown-Forsythe test that both columns have the same spread (NaN without data)."""
    training, serving = training.dropna(), serving.dropna()
    if len(training) < 2 or len(serving) < 2:
        return np.nan
    return float(stats.levene(training, serving, center="median").pvalue)


def numeric_skew(
    column: str, training: pd.Series, serving: pd.Series, config: SkewConfig, p_value_min: float
):
    """Mean shift (in training standard deviations), std ratio and missing-rate change.

    The std ratio must also be significant (Brown-Forsythe, at ``p_value_min``): the
    standard deviation of a heavy-tailed column swings with a few outliers, so a
    healthy sample of a hundred rows can be half as spread out as the training split.
    """
    training, serving = numbers(training), numbers(serving)
    mean_t, mean_s = training.mean(), serving.mean()
    std_t, std_s = training.std(), serving.std()
    shift = abs(mean_s - mean_t) / std_t if std_t > 0 else float(mean_s != mean_t)
    ratio = max(std_s / std_t, std_t / std_s) if std_t > 0 and std_s > 0 else float("inf")
    missing_t, missing_s = training.isna().mean(), serving.isna().mean()
    spread = spread_p_value(training, serving)
    return [
        skew_row(
            "mean shift (training stds)", column, mean_t, mean_s, shift, config.mean_shift_max
        ),
        skew_row(
            "std ratio", column, std_t, std_s, ratio, config.std_ratio_max, spread, p_value_min
        ),
        skew_row(
            "missing rate change",
            column,
            missing_t,
            missing_s,
            abs(missing_s - missing_t),
            config.missing_rate_change_max,
        ),
    ]


def categorical_skew(column: str, training: pd.Series, serving: pd.Series, config: SkewConfig):
    """Missing-rate change and the largest change of one category's frequency."""
    counts = category_counts(training, serving)
    shares = counts / counts.sum()
    missing = (
        shares.loc[MISSING]
        if MISSING in shares.index
        else pd.Series({"reference": 0.0, "serving": 0.0})
    )
    changes = (shares["serving"] - shares["reference"]).abs()
    category = str(changes.idxmax())
    return [
        skew_row(
            "missing rate change",
            column,
            missing["reference"],
            missing["serving"],
            abs(missing["serving"] - missing["reference"]),
            config.missing_rate_change_max,
        ),
        skew_row(
            f"largest frequency change ({category})",
            column,
            shares.loc[category, "reference"],
            shares.loc[category, "serving"],
            changes.max(),
            config.category_frequency_change_max,
        ),
    ]


def prediction_distribution_skew(
    reference: pd.Series, logged: pd.Series, is_classification: bool, config: SkewConfig, bins: int
) -> dict:
    """PSI of logged predictions against the model's own predictions on held-out data."""
    if is_classification:
        counts = category_counts(reference, logged)
        index = psi(counts["reference"].to_numpy(), counts["serving"].to_numpy())
        center_t, center_s = np.nan, np.nan
    else:
        reference, logged = numbers(reference), numbers(logged)
        edges = quantile_edges(reference, bins)
        index = psi(binned_counts(reference, edges), binned_counts(logged, edges))
        center_t, center_s = reference.mean(), logged.mean()
    return skew_row(
        "prediction PSI", "prediction", center_t, center_s, index, config.prediction_psi_max
    )


def same_predictions(
    logged: pd.Series, recomputed: np.ndarray, is_classification: bool, rtol: float
) -> pd.Series:
    """Whether each logged prediction equals the one recomputed from its logged features."""
    if is_classification:
        return category_labels(logged) == category_labels(pd.Series(recomputed, index=logged.index))
    close = np.isclose(numbers(logged).to_numpy(), recomputed.astype(float), rtol=rtol, atol=0.0)
    return pd.Series(close, index=logged.index)


def prediction_mismatch_skew(
    model: Any, log: pd.DataFrame, data: DataConfig, config: SkewConfig
) -> dict:
    """Share of logged predictions the model does not reproduce from the logged features."""
    recomputed = model.predict(logged_inputs(log, data))
    same = same_predictions(
        log["prediction"], recomputed, data.is_classification, config.prediction_rtol
    )
    mismatch = 1.0 - same.mean() if len(same) else float("nan")
    return skew_row(
        "re-predicted differently (share)",
        "prediction",
        float(len(same)),
        float((~same).sum()),
        mismatch,
        config.prediction_mismatch_max,
    )


def skew_table(
    training: pd.DataFrame,
    reference_predictions: pd.Series,
    log: pd.DataFrame,
    model: Any,
    params: Params,
) -> pd.DataFrame:
    """Every skew check: feature statistics, prediction distribution, re-prediction.

    ``log`` holds the rows the model (``model``) answered; ``reference_predictions``
    are that model's predictions on held-out data.
    """
    data, config = params.data, params.monitor.skew
    serving = logged_inputs(log, data)
    rows = []
    for column in data.numeric_features:
        rows += numeric_skew(
            column, training[column], serving[column], config, params.monitor.drift.p_value_min
        )
    for column in data.categorical_features:
        rows += categorical_skew(column, training[column], serving[column], config)
    rows.append(
        prediction_distribution_skew(
            reference_predictions,
            log["prediction"],
            data.is_classification,
            config,
            params.monitor.drift.bins,
        )
    )
    rows.append(prediction_mismatch_skew(model, log, data, config))
    return pd.DataFrame(rows)


# --- Online vs offline metrics ---------------------------------------------------


class LoggedPredictions:
    """The prediction log seen as a fitted model that answers what the service answered.

    It lets the evaluation stage's metric functions score serving traffic unchanged:
    ``predict`` returns the logged predictions of the rows asked for.
    """

    def __init__(self, log: pd.DataFrame, is_classification: bool) -> None:
        self.log = log
        self.classes_: list[str] = []
        if is_classification:
            probabilities = log["probabilities"]
            if probabilities.isna().any():
                raise ValueError("a classifier's log rows must carry class probabilities")
            self.classes_ = list(probabilities.iloc[0])

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """The logged prediction of each row of ``features`` (matched by index).

        A classifier's labels are text, as ``classes_`` and the labels they are scored
        against: the service logs a label with its own type (1, not "1").
        """
        predictions = self.log.loc[features.index, "prediction"]
        return (predictions.astype(str) if self.classes_ else predictions).to_numpy()

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """The logged class probabilities of each row, in ``classes_`` order."""
        rows = self.log.loc[features.index, "probabilities"]
        return np.array([[row[label] for label in self.classes_] for row in rows])


def labeled_rows(log: pd.DataFrame, labels_path: Path, target: str, min_rows: int) -> pd.Series:
    """The true target of each logged request that has a label, indexed by ``request_id``."""
    if not labels_path.exists():
        raise NotEnoughData(
            f"no labels yet at {labels_path}: write request_id,{target} rows as they arrive"
        )
    labels = pd.read_csv(labels_path, dtype={"request_id": str})
    missing = {"request_id", target} - set(labels.columns)
    if missing:
        raise ValueError(f"{labels_path} lacks the column(s) {sorted(missing)}")
    labels = labels.drop_duplicates("request_id", keep="last").set_index("request_id")[target]
    joined = labels[labels.index.isin(log.index)]
    if len(joined) < min_rows:
        raise NotEnoughData(
            f"{len(joined)} logged predictions have a label in {labels_path}; "
            f"a verdict needs at least {min_rows} (monitor.min_rows in conf/monitor/)"
        )
    return joined


def online_scores(log: pd.DataFrame, truth: pd.Series, is_classification: bool) -> dict:
    """The task's metrics (evaluate.py's) of the logged predictions against ``truth``."""
    rows = log.loc[truth.index]
    model = LoggedPredictions(rows, is_classification)
    if is_classification:
        # Labels are compared as text: the log keys probabilities by label text and
        # answers a numeric label (1) as a number, the labels file may hold either.
        return classification_metrics(model, rows, category_labels(truth))
    return regression_metrics(model, rows, truth.astype(float))


def point_metrics(is_classification: bool) -> dict:
    """The team's metrics that score predictions alone (no probabilities), by name.

    Their sampling spread can be measured by resampling rows; the tolerance of the
    others is the configured one.
    """
    return {
        name: metric.function
        for name, metric in team.task_metrics(is_classification).items()
        if not metric.needs_probabilities
    }


# Resamples behind each spread: the 3-sigma tolerance moves by a few percent between seeds.
SPREAD_DRAWS = 200


def tolerances(model: Any, test: pd.DataFrame, params: Params, rows: int) -> pd.DataFrame:
    """Per metric with a tolerance: how far online may stray from offline on ``rows`` rows.

    A metric measured on a few hundred labeled rows moves by chance alone; how much
    depends on the model and the data (a weak model's F1 on 20 % positives swings
    more than a strong one's accuracy). So the tolerance is ``online.spread_z``
    standard deviations of the metric over ``rows`` rows resampled from the test
    split, never less than the configured ``online.tolerance`` (the smallest change
    worth an alarm). ``chance`` is the model's metric against the test labels
    shuffled (averaged over shuffles): what a model that guesses would score online.
    When it lies within the tolerance of the offline metric, this many labels cannot
    tell a useless model from this one (``tells_chance`` is false) and the report
    says how many would.
    """
    data, config = params.data, params.monitor.online
    features = test[input_columns_of(model, params)]
    truth, guess = test[data.target], pd.Series(model.predict(features), index=test.index)
    if data.is_classification:
        truth, guess = category_labels(truth), category_labels(guess)
    else:
        truth, guess = truth.astype(float), guess.astype(float)
    truth, guess = truth.to_numpy(), guess.to_numpy()
    rng = np.random.default_rng(params.train.seed)
    draws = [rng.integers(0, len(truth), size=max(rows, 1)) for _ in range(SPREAD_DRAWS)]
    # Chance is averaged over many shuffles: one shuffle alone is off by a spread.
    shuffles = [rng.permutation(truth) for _ in range(SPREAD_DRAWS // 4)]
    table = []
    scorers = point_metrics(data.is_classification)
    for metric, floor in config.tolerance.items():
        function = scorers.get(metric)
        spread = chance = offline = np.nan
        if function is not None and len(truth):
            offline = float(function(truth, guess))
            spread = float(np.std([function(truth[index], guess[index]) for index in draws]))
            chance = float(np.mean([function(labels, guess) for labels in shuffles]))
        limit = max(floor, config.spread_z * spread) if np.isfinite(spread) else floor
        distance = abs(offline - chance)
        table.append(
            {
                "metric": metric,
                "floor": floor,
                "spread": spread,
                "tolerance": limit,
                "chance": chance,
                "tells_chance": bool(distance > limit) if np.isfinite(distance) else True,
                # Rows at which the tolerance would shrink below the distance to chance
                # (the spread falls as one over the square root of the rows).
                "rows_to_tell_chance": (
                    int(np.ceil(rows * (config.spread_z * spread / distance) ** 2))
                    if np.isfinite(distance) and distance > floor and spread > 0
                    else None
                ),
            }
        )
    return pd.DataFrame(table).set_index("metric")


def online_offline_table(
    online: dict, offline: dict, tolerance: "dict[str, float] | pd.DataFrame"
) -> pd.DataFrame:
    """Per metric with a tolerance: offline, online, their difference and whether it is too big.

    ``tolerance`` is either the table of ``tolerances`` (spread-derived limits) or
    plain limits per metric.
    """
    if isinstance(tolerance, pd.DataFrame):
        limits = tolerance["tolerance"].to_dict()
        spreads = tolerance["spread"].to_dict()
        chance = tolerance["tells_chance"].to_dict()
    else:
        limits, spreads, chance = dict(tolerance), {}, {}
    rows = []
    for metric, limit in limits.items():
        difference = abs(online.get(metric, np.nan) - offline.get(metric, np.nan))
        rows.append(
            {
                "metric": metric,
                "offline": offline.get(metric, np.nan),
                "online": online.get(metric, np.nan),
                "difference": difference,
                "spread": spreads.get(metric, np.nan),
                "tolerance": limit,
                "too_far": not difference <= limit,
                "tells_chance": chance.get(metric, True),
            }
        )
    return pd.DataFrame(rows)


def blind_spots(limits: pd.DataFrame, rows: int) -> list[str]:
    """One line per metric whose tolerance cannot tell this model from one that guesses."""
    lines = []
    for metric, row in limits[~limits["tells_chance"]].iterrows():
        needed = row["rows_to_tell_chance"]
        more = (
            f"about {int(needed)} labeled rows would"
            if needed is not None and np.isfinite(needed)
            else f"no number of labels would while its floor online.tolerance.{metric} is "
            f"{row['floor']:.4g}"
        )
        lines.append(
            f"{metric}: a model that guesses would score {row['chance']:.4g}, within the "
            f"tolerance {row['tolerance']:.4g} of this model's: {rows} labeled rows cannot "
            f"tell them apart ({more})"
        )
    return lines


# --- Reports ------------------------------------------------------------------------


def number(value: Any) -> str:
    """A table cell: numbers with four significant digits, flags as yes/no."""
    if isinstance(value, bool | np.bool_):
        return "**yes**" if value else "no"
    if isinstance(value, float | np.floating):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> list[str]:
    """``table`` as markdown lines, numbers and flags written by ``number``."""
    rows = ([number(value) for value in row] for row in table.itertuples(index=False))
    return markdown.table(list(table.columns), rows)


def write_report(path: Path, title: str, context: list[str], table: pd.DataFrame, summary: str):
    """Write a markdown report: title, context lines, the table and a summary line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", *context, "", *markdown_table(table), "", f"**{summary}**", ""]
    path.write_text("\n".join(lines))


def plot_drift(
    reference: pd.DataFrame,
    serving: pd.DataFrame,
    drift: pd.DataFrame,
    data: DataConfig,
    path: Path,
    labels: tuple[str, str] = ("training", "serving"),
) -> None:
    """Reference and serving histograms (numeric) or frequencies (categorical) per feature.

    Drawn to stay quick on wide tables (30 features took 6 s of CPU before): one
    filled outline per histogram rather than a patch per bar, no density scale, and
    one legend, on the first feature. ``labels`` name the two tables in the legend
    (a notebook compares the train and test splits with the same chart).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    columns = 3
    rows = -(-len(drift) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, feature in zip(axes.flat, drift.itertuples(), strict=False):
        if feature.kind == "numeric":
            reference_values = numbers(reference[feature.feature]).dropna()
            serving_values = numbers(serving[feature.feature]).dropna()
            edges = np.histogram_bin_edges(pd.concat([reference_values, serving_values]), bins=20)
            for values, label in ((reference_values, labels[0]), (serving_values, labels[1])):
                axis.hist(
                    values, bins=edges, density=True, alpha=0.5, label=label, histtype="stepfilled"
                )
            axis.set_yticks([])  # densities: the shapes matter, not the scale
        else:
            counts = category_counts(reference[feature.feature], serving[feature.feature])
            shares = counts / counts.sum()
            positions = np.arange(len(shares))
            axis.bar(positions - 0.2, shares["reference"], width=0.4, label=labels[0])
            axis.bar(positions + 0.2, shares["serving"], width=0.4, label=labels[1])
            axis.set_xticks(positions, shares.index, rotation=30)
        verdict = "DRIFTED" if feature.drifted else "stable"
        axis.set_title(f"{feature.feature}: {verdict} (PSI {feature.psi:.2f})", fontsize=9)
    for axis in list(axes.flat)[len(drift) :]:
        axis.set_visible(False)
    axes.flat[0].legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- Jobs ------------------------------------------------------------------------------


def bundle_model(params: Params) -> tuple[Any, str]:
    """The exported champion's model and version (what the service serves)."""
    metadata = json.loads((params.paths.bundle / METADATA_FILE).read_text())
    return joblib.load(params.paths.bundle / MODEL_FILE), str(metadata["model_version"])


def run_drift(params: Params) -> list[str]:
    """Drift job: write the report and plot; return the problems found."""
    config = params.monitor
    log = read_prediction_log(prediction_log_path(params), config.min_rows)
    training = pd.read_parquet(params.paths.train)
    serving = logged_inputs(log, params.data)
    drift = drift_table(training, serving, params.data, config.drift)
    drifted = drift.loc[drift["drifted"], "feature"].tolist()
    summary = (
        f"{len(drifted)} of {len(drift)} features drifted "
        f"(allowed: {config.drift.max_drifted_features})"
        + (f": {', '.join(drifted)}" if drifted else "")
    )
    plot = config.report_dir / "drift.png"
    plot_drift(training, serving, drift, params.data, plot)
    context = [
        f"{len(serving)} logged records against {len(training)} training rows "
        f"({params.paths.train}). A feature drifted when its PSI exceeds "
        f"{config.drift.psi_max} and its test's p-value is below {config.drift.p_value_min}.",
        "",
        f"![Training and serving distributions]({plot.name})",
    ]
    write_report(config.report_dir / "drift.md", "Input drift", context, drift, summary)
    print(f"drift: {summary}")
    return [f"drift: {summary}"] if len(drifted) > config.drift.max_drifted_features else []


def run_skew(params: Params) -> list[str]:
    """Skew job: write the report; return the problems found."""
    config = params.monitor
    log = read_prediction_log(prediction_log_path(params), config.min_rows)
    model, version = bundle_model(params)
    answered = served_by(log, version)
    if len(answered) < config.min_rows:
        raise NotEnoughData(
            f"{len(answered)} logged predictions come from the exported model v{version}; "
            f"a verdict needs at least {config.min_rows}"
        )
    training = pd.read_parquet(params.paths.train)
    test_features = pd.read_parquet(params.paths.test)[params.data.input_columns]
    reference_predictions = pd.Series(model.predict(test_features))
    skew = skew_table(training, reference_predictions, answered, model, params)
    skewed = skew.loc[skew["skewed"], ["check", "column"]]
    found = [f"{row.column}: {row.check}" for row in skewed.itertuples()]
    summary = f"{len(found)} of {len(skew)} checks past their limit" + (
        ": " + "; ".join(found) if found else ""
    )
    context = [
        f"{len(answered)} records answered by model v{version} ({len(log)} logged in all), "
        f"against {len(training)} training rows. A std ratio counts only when its "
        f"Brown-Forsythe p-value is below {config.drift.p_value_min} (drift.p_value_min). "
        "Prediction PSI compares with the model's "
        f"predictions on the test split; re-prediction runs {params.paths.bundle / MODEL_FILE} "
        "on the logged features (training: rows checked; serving: rows that differ).",
    ]
    write_report(config.report_dir / "skew.md", "Training/serving skew", context, skew, summary)
    print(f"skew: {summary}")
    return [f"skew: {summary}"] if found else []


def run_online(params: Params) -> list[str]:
    """Online job: write the report; return the problems found.

    Offline means the exported model scored on the test split, as the evaluate
    stage scores it: ``reports/metrics.json`` holds the same numbers when the last
    run promoted its model, but a challenger's when it did not.
    """
    config = params.monitor
    log = read_prediction_log(prediction_log_path(params), config.min_rows)
    model, version = bundle_model(params)
    answered = served_by(log, version)
    truth = labeled_rows(answered, config.labels, params.data.target, config.min_rows)
    online = online_scores(answered, truth, params.data.is_classification)
    test = pd.read_parquet(params.paths.test)
    offline = score(model, test, params)
    limits = tolerances(model, test, params, len(truth))
    table = online_offline_table(online, offline, limits)
    too_far = table.loc[table["too_far"], "metric"].tolist()
    summary = f"{len(too_far)} of {len(table)} metrics outside their tolerance" + (
        f": {', '.join(too_far)}" if too_far else ""
    )
    blind = blind_spots(limits, len(truth))
    context = [
        f"{len(truth)} labeled records ({config.labels}) answered by model v{version} "
        f"({len(log)} logged in all); offline: the same model on {params.paths.test}. "
        f"Tolerance: {config.online.spread_z} times the metric's spread over {len(truth)} rows "
        "resampled from the test split, at least online.tolerance of conf/monitor/.",
        *(f"- {line}" for line in blind),
    ]
    for line in blind:
        print(f"online: {line}")
    write_report(
        config.report_dir / "online.md", "Online vs offline metrics", context, table, summary
    )
    print(f"online: {summary}")
    return [f"online: {summary}"] if too_far else []


JOBS = {"drift": run_drift, "skew": run_skew, "online": run_online}


def main() -> None:
    """Run monitoring jobs on the prediction log; fail on problems unless ``--report-only``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("jobs", nargs="+", choices=list(JOBS), help="jobs to run, in order")
    parser.add_argument("--report-only", action="store_true", help="write the reports, never fail")
    args = parser.parse_args()
    params = load_params()
    failed, reported = [], []
    for job in args.jobs:
        try:
            problems = JOBS[job](params)
        except NotEnoughData as reason:
            print(f"{job}: no verdict: {reason}")
            failed.append(f"{job} (no verdict)")
            continue
        reported.append(job)
        if problems:
            failed.append(job)
    if reported:
        print(f"reports of {', '.join(reported)} in {params.monitor.report_dir}/")
    if failed and not args.report_only:
        raise SystemExit(f"monitor: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
