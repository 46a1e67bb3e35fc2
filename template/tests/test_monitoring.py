"""Monitoring on the prediction log: drift, training/serving skew, online vs offline metrics.

Each test writes a log in the service's format (one JSON line per predicted
record) from the held-out split, predicted by a model trained here, then
breaks one property and checks that the monitoring job notices.
"""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlops_kit import monitor
from mlops_kit.core import drift
from mlops_kit.core.params import Params
from mlops_kit.evaluate import score
from mlops_kit.export import (
    bundle_metadata,
    example_request,
    reference_record,
    write_bundle,
)
from mlops_kit.train import fit

MODEL_VERSION = "7"


@pytest.fixture(scope="module")
def model(train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params) -> Pipeline:
    return fit(train_test[0], params)


@pytest.fixture(autouse=True)
def _log_path_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured log path, not one a developer's shell happens to export."""
    monkeypatch.delenv(monitor.LOG_PATH_VARIABLE, raising=False)


def as_json(value):
    """A value as JSON carries it: a plain number, string or null."""
    return None if pd.isna(value) else getattr(value, "item", lambda: value)()


def as_received(features: pd.DataFrame) -> list[dict]:
    """Table rows as the service receives them in JSON: plain numbers, strings and nulls,
    each in its column's type (iterrows would turn an integer column to floats)."""
    return [
        {column: as_json(value) for column, value in record.items()}
        for record in features.to_dict(orient="records")
    ]


def log_records(features: pd.DataFrame, model: Pipeline, params: Params) -> list[dict]:
    """Log lines like the service's: the model predicts the features it received."""
    received = as_received(features[params.data.input_columns])
    table = pd.DataFrame.from_records(received, columns=params.data.input_columns)
    if params.data.is_classification:
        # As the service answers: the most probable class in its own type (a numeric
        # label stays a number), with every probability under the label's text.
        classes = list(model.classes_)
        rows = model.predict_proba(table)
        predictions: list = [as_json(classes[row.argmax()]) for row in rows]
        probabilities: list = [
            dict(zip(map(str, classes), map(float, row), strict=True)) for row in rows
        ]
    else:
        predictions = [float(value) for value in model.predict(table)]
        probabilities = [None] * len(table)
    records = []
    for index, prediction in enumerate(predictions):
        records.append(
            {
                "request_id": uuid.uuid4().hex,
                "time": "2026-01-01T00:00:00+00:00",
                "model_name": params.mlflow.registered_model_name,
                "model_version": MODEL_VERSION,
                "model_alias": "champion",
                "features": received[index],
                "prediction": prediction,
                "probabilities": probabilities[index],
            }
        )
    return records


def write_log(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def read_log(records: list[dict], tmp_path: Path) -> pd.DataFrame:
    return monitor.read_prediction_log(write_log(tmp_path / "log.jsonl", records), min_rows=1)


def drifted_features(records: list[dict], train: pd.DataFrame, params: Params, tmp_path: Path):
    log = read_log(records, tmp_path)
    serving = monitor.logged_inputs(log, params.data)
    shifted = drift.drift_table(train, serving, params.data, params.monitor.drift)
    return set(shifted.loc[shifted["drifted"], "feature"])


def skewed_checks(records, model, train_test, params, tmp_path) -> set[tuple[str, str]]:
    train, test = train_test
    log = read_log(records, tmp_path)
    reference = pd.Series(model.predict(test[params.data.input_columns]))
    skew = monitor.skew_table(train, reference, log, model, params)
    return {(row.column, row.check) for row in skew.itertuples() if row.skewed}


def numeric_features(params: Params) -> list[str]:
    """The numeric features; a test that needs one is skipped, saying why, without."""
    if not params.data.numeric_features:
        pytest.skip("no data.numeric_features in conf/data/: no number to shift")
    return params.data.numeric_features


@pytest.fixture
def held_out_records(model, train_test, params) -> list[dict]:
    """The held-out split as served traffic: same distribution as training."""
    return log_records(train_test[1], model, params)


# --- Drift (monitor-3) -------------------------------------------------------------


@pytest.mark.ml_test("monitor-3")
def test_serving_data_like_the_training_data_shows_no_drift(
    held_out_records, train_test, params, tmp_path
) -> None:
    """Fails when drift statistics or thresholds flag ordinary sampling noise."""
    assert drifted_features(held_out_records, train_test[0], params, tmp_path) == set()


@pytest.mark.ml_test("monitor-3")
def test_a_shifted_numeric_feature_is_drift(model, train_test, params, tmp_path) -> None:
    """Fails when a feature moved by two standard deviations goes unnoticed."""
    train, test = train_test
    column = numeric_features(params)[0]
    shifted = test.assign(**{column: test[column] + 2 * train[column].std()})
    drifted = drifted_features(log_records(shifted, model, params), train, params, tmp_path)
    assert column in drifted


@pytest.mark.ml_test("monitor-3")
def test_a_changed_category_mix_is_drift(model, train_test, params, tmp_path) -> None:
    """Fails when a categorical feature collapsing to its rarest category goes unnoticed."""
    if not params.data.categorical_features:
        pytest.skip("no data.categorical_features in conf/data/: no category mix to change")
    train, test = train_test
    column = params.data.categorical_features[0]
    rarest = train[column].value_counts().idxmin()
    changed = test.assign(**{column: rarest})
    drifted = drifted_features(log_records(changed, model, params), train, params, tmp_path)
    assert column in drifted


# --- Training/serving skew (monitor-3) -----------------------------------------------


@pytest.mark.ml_test("monitor-3")
def test_serving_features_and_predictions_like_training_show_no_skew(
    held_out_records, model, train_test, params, tmp_path
) -> None:
    """Fails when a skew check flags traffic that matches training, or re-prediction differs."""
    assert skewed_checks(held_out_records, model, train_test, params, tmp_path) == set()


@pytest.mark.ml_test("monitor-3")
def test_a_feature_logged_in_other_units_is_skew(model, train_test, params, tmp_path) -> None:
    """Fails when a feature computed at another scale when serving (x1000) goes unnoticed."""
    train, test = train_test
    column = numeric_features(params)[-1]
    scaled = test.assign(**{column: test[column] * 1000})
    skewed = skewed_checks(log_records(scaled, model, params), model, train_test, params, tmp_path)
    # The mean moves unless it is near zero; the spread moves in any case.
    assert {(column, "mean shift (training stds)"), (column, "std ratio")} & skewed, skewed


@pytest.mark.ml_test("monitor-3")
def test_a_few_training_outliers_do_not_make_a_healthy_sample_skew(params) -> None:
    """Fails when the std ratio alarms on sampling noise: four outliers in training
    nearly double its std, but a spread test finds a healthy sample no different;
    a serving column really spread three times wider stays skew."""
    rng = np.random.default_rng(params.train.seed)
    training = pd.Series([*rng.normal(size=396), 15.0, -15.0, 15.0, -15.0])
    healthy, wider = pd.Series(rng.normal(size=100)), pd.Series(3 * rng.normal(size=100))

    def spread(serving: pd.Series) -> dict:
        rows = monitor.numeric_skew(
            "x", training, serving, params.monitor.skew, params.monitor.drift.p_value_min
        )
        return next(row for row in rows if row["check"] == "std ratio")

    assert spread(healthy)["value"] > params.monitor.skew.std_ratio_max
    assert not spread(healthy)["skewed"], spread(healthy)
    assert spread(wider)["skewed"], spread(wider)


@pytest.mark.ml_test("monitor-3")
def test_a_logged_prediction_the_model_does_not_reproduce_is_skew(
    held_out_records, model, train_test, params, tmp_path
) -> None:
    """Fails when a served prediction that the model would not make from its features passes."""
    record = held_out_records[0]
    if params.data.is_classification:
        answered = str(record["prediction"])
        others = [label for label in model.classes_ if str(label) != answered]
        record["prediction"] = as_json(others[0])
    else:
        record["prediction"] = record["prediction"] + 1.0
    skewed = skewed_checks(held_out_records, model, train_test, params, tmp_path)
    assert ("prediction", "re-predicted differently (share)") in skewed


# --- Online vs offline metrics (model-2) ------------------------------------------------
#
# The tolerance comes from the model's own spread (see monitor.tolerances): a weak model
# near its majority-class baseline scores, against shuffled labels, within one spread of
# its offline metric on a test split's worth of rows. Those tests then send as many rows
# (drawn from the test split) as it takes for the spread to fall below half the distance
# between this model and one that guesses, and say so; a metric no number of rows can
# separate (its floor is wider than that distance) must be reported as blind.


def online_against_offline(records, labels: pd.Series, model, test, params, tmp_path):
    log = read_log(records, tmp_path)
    truth = pd.Series(labels.to_numpy(), index=[record["request_id"] for record in records])
    online = monitor.online_scores(log, truth, params.data.is_classification)
    offline = score(model, test, params)
    limits = monitor.tolerances(model, test, params, len(records))
    return monitor.online_offline_table(online, offline, limits)


def traffic(test: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` served rows drawn from the test split (with replacement past its size)."""
    if rows == len(test):
        return test
    return test.sample(n=rows, replace=rows > len(test), random_state=seed)


def rows_to_tell_chance(model, test, params) -> tuple[int, list[str]]:
    """How many labeled rows separate this model from one that guesses, and on which metrics.

    A metric separates them when its distance to chance is over 1.5 times its floor:
    then enough rows shrink its spread-derived tolerance to half that distance.
    """
    limits = monitor.tolerances(model, test, params, len(test))
    z = params.monitor.online.spread_z
    offline = score(model, test, params)
    telling, rows = [], len(test)
    for metric, row in limits.iterrows():
        distance = abs(offline[metric] - row["chance"])
        if not np.isfinite(distance) or distance <= 1.5 * row["floor"]:
            continue
        telling.append(metric)
        rows = max(rows, int(np.ceil(len(test) * (2 * z * row["spread"] / distance) ** 2)))
    print(f"{rows} labeled rows tell this model from chance on {telling or 'no metric'}")
    return rows, telling


def shuffled(labels: pd.Series, seed: int) -> pd.Series:
    return labels.sample(frac=1.0, random_state=seed)


@pytest.mark.ml_test("model-2")
def test_online_metrics_with_true_labels_match_the_offline_ones(
    held_out_records, model, train_test, params, tmp_path
) -> None:
    """Fails when metrics on served, labeled traffic disagree with evaluation's on the same rows."""
    test = train_test[1]
    labels = test[params.data.target]
    table = online_against_offline(held_out_records, labels, model, test, params, tmp_path)
    assert not table["too_far"].any(), table.to_string()
    np.testing.assert_allclose(table["online"], table["offline"])


@pytest.mark.ml_test("model-2")
def test_online_metrics_with_shuffled_labels_are_out_of_tolerance(
    model, train_test, params, tmp_path
) -> None:
    """Fails when the comparison misses a model that is wrong online (labels shuffled) on
    as many labeled rows as this model needs to be told from chance, flags its true
    labels there, or hides that a metric cannot tell this model from chance."""
    test = train_test[1]
    rows, telling = rows_to_tell_chance(model, test, params)
    served = traffic(test, rows, params.train.seed)
    records = log_records(served, model, params)
    labels = served[params.data.target]
    right = online_against_offline(records, labels, model, test, params, tmp_path)
    assert not right["too_far"].any(), right.to_string()
    wrong = online_against_offline(
        records, shuffled(labels, params.train.seed), model, test, params, tmp_path
    )
    blind = wrong.loc[~wrong["tells_chance"], "metric"].tolist()
    assert wrong.set_index("metric").loc[telling, "too_far"].all(), wrong.to_string()
    # A metric this model cannot separate from chance is reported as such, not trusted.
    assert not set(telling) & set(blind), wrong.to_string()
    if not telling:
        assert blind, wrong.to_string()


# --- The jobs, as `make monitor` and `make monitor-online` run them ----------------------


@pytest.fixture
def job_params(model, train_test, params, tmp_path) -> Params:
    """Parameters whose monitoring inputs and outputs live in ``tmp_path``."""
    train, test = train_test
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    bundle = tmp_path / "bundle"
    metadata = bundle_metadata(
        model,
        params,
        version=MODEL_VERSION,
        run_id="test",
        trained_at=datetime.now(UTC).isoformat(),
        reference=reference_record(train, params.data.input_columns),
    )
    write_bundle(model, metadata, example_request(test, params.data.input_columns), bundle)
    paths = params.paths.model_copy(
        update={
            "train": tmp_path / "train.parquet",
            "test": tmp_path / "test.parquet",
            "bundle": bundle,
        }
    )
    log = params.serve.prediction_log.model_copy(
        update={"path": tmp_path / "logs" / "predictions.jsonl"}
    )
    serve = params.serve.model_copy(update={"prediction_log": log})
    settings = params.monitor.model_copy(
        update={
            "labels": tmp_path / "logs" / "labels.csv",
            "report_dir": tmp_path / "reports",
            "min_rows": min(params.monitor.min_rows, len(test)),
        }
    )
    return params.model_copy(update={"paths": paths, "serve": serve, "monitor": settings})


@pytest.mark.ml_test("monitor-3")
def test_the_drift_and_skew_jobs_pass_on_healthy_traffic_and_write_reports(
    held_out_records, job_params
) -> None:
    """Fails when a job finds problems in healthy traffic or leaves no report."""
    write_log(job_params.serve.prediction_log.path, held_out_records)
    assert monitor.run_drift(job_params) == []
    assert monitor.run_skew(job_params) == []
    reports = job_params.monitor.report_dir
    drift_report = (reports / "drift.md").read_text()
    assert all(f"| {column} |" in drift_report for column in job_params.data.input_columns)
    assert (reports / "drift.png").stat().st_size > 0
    assert "0 of" in (reports / "skew.md").read_text()


@pytest.mark.ml_test("monitor-3")
def test_the_drift_job_reports_a_shifted_feature(model, train_test, params, job_params) -> None:
    """Fails when the job `make monitor` runs passes traffic with a shifted feature."""
    train, test = train_test
    column = numeric_features(params)[0]
    shifted = test.assign(**{column: test[column] + 2 * train[column].std()})
    write_log(job_params.serve.prediction_log.path, log_records(shifted, model, params))
    problems = monitor.run_drift(job_params)
    assert problems and column in problems[0]
    assert "**yes**" in (job_params.monitor.report_dir / "drift.md").read_text()


@pytest.mark.ml_test("model-2")
def test_the_online_job_compares_labeled_traffic_with_the_offline_metrics(
    model, train_test, params, job_params
) -> None:
    """Fails when the job `make monitor-online` runs flags correct labels, or passes wrong
    ones on as many labeled rows as this model needs to be told from chance; or, for a
    model no metric tells from chance, when its report does not say so."""
    target, test = params.data.target, train_test[1]
    rows, telling = rows_to_tell_chance(model, test, params)
    served = traffic(test, rows, params.train.seed)
    records = log_records(served, model, params)
    write_log(job_params.serve.prediction_log.path, records)
    ids = [record["request_id"] for record in records]
    labels = pd.DataFrame({"request_id": ids, target: served[target].to_numpy()})
    labels.to_csv(job_params.monitor.labels, index=False)
    assert monitor.run_online(job_params) == []
    labels[target] = shuffled(labels[target], 0).to_numpy()
    labels.to_csv(job_params.monitor.labels, index=False)
    problems = monitor.run_online(job_params)
    report = (job_params.monitor.report_dir / "online.md").read_text()
    if telling:
        assert problems and all(metric in problems[0] for metric in telling), (problems, report)
    else:
        assert "cannot tell them apart" in report, report


def test_without_a_log_or_labels_the_jobs_say_there_is_no_verdict(
    held_out_records, job_params
) -> None:
    with pytest.raises(monitor.NotEnoughData, match="no prediction log"):
        monitor.run_drift(job_params)
    write_log(job_params.serve.prediction_log.path, held_out_records[:1])
    with pytest.raises(monitor.NotEnoughData, match="at least"):
        monitor.run_skew(job_params)
    write_log(job_params.serve.prediction_log.path, held_out_records)
    with pytest.raises(monitor.NotEnoughData, match="no labels yet"):
        monitor.run_online(job_params)
