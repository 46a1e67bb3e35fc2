"""The prediction service, for real: `bentoml serve` on a loopback port, spoken to over HTTP."""

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TEST_MODEL_AGE
from service_process import (
    STARTUP_SECONDS,
    start_service,
    stop,
    wait_until_ready,
    write_test_bundle,
)

from mlops_kit.bundle import seal
from mlops_kit.core.params import ColumnSchema, Params
from mlops_kit.train import fit

pytestmark = pytest.mark.serving

# A bounded load: this many requests, and a deadline for all of them.
LOAD_REQUESTS = 320
LOAD_CONCURRENCY = 16
LOAD_DEADLINE_SECONDS = 60
# How long a logged prediction may take to reach the file.
LOG_DEADLINE_SECONDS = 10


def records(table: pd.DataFrame, params: Params) -> list[dict]:
    """Rows as JSON-ready request bodies (missing values as null)."""
    rows = table[params.data.input_columns].astype(object)
    return [
        {key: (None if pd.isna(value) else value) for key, value in row.items()}
        for row in rows.to_dict(orient="records")
    ]


def as_served(values: np.ndarray, params: Params) -> list:
    """Predicted values as the service answers them: labels with their own type, numbers."""
    if params.data.is_classification:
        return [value.item() if hasattr(value, "item") else value for value in values]
    return [float(value) for value in values]


def assert_served_as_in_process(served: list, expected: list, params: Params, case: str) -> None:
    """Labels equal (type included: 1 is not "1"), numbers equal to rounding."""
    if params.data.is_classification:
        typed = [(type(value).__name__, value) for value in served]
        assert typed == [(type(value).__name__, value) for value in expected], case
    else:
        # The service runs the compiled model, equal to the pipeline within 1e-6.
        np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-6, err_msg=case)


def served_predictions(service: str, bodies: list[dict]) -> tuple[list, list]:
    """Each body's prediction from /predict, and all of them from one /predict_batch."""
    singles = [httpx.post(f"{service}/predict", json=body, timeout=30) for body in bodies]
    assert [answer.status_code for answer in singles] == [200] * len(bodies), [
        answer.text for answer in singles if answer.status_code != 200
    ]
    batch = httpx.post(f"{service}/predict_batch", json={"records": bodies}, timeout=30)
    assert batch.status_code == 200, batch.text
    return [answer.json()["prediction"] for answer in singles], batch.json()["predictions"]


def test_http_predictions_equal_in_process_predictions(
    service: str, bundle: Path, train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    model = joblib.load(bundle / "model.joblib")
    test = train_test[1].head(20)
    expected = as_served(model.predict(test[params.data.input_columns]), params)
    for served in served_predictions(service, records(test, params)):
        assert_served_as_in_process(served, expected, params, "test split rows")


def source_rows(raw_data: pd.DataFrame, params: Params) -> tuple[list[int], list[int]]:
    """Positions of a few complete rows of the source table, and of a few with gaps."""
    inputs = raw_data[params.data.input_columns]
    gaps = inputs.isna().any(axis=1).to_numpy()
    positions = np.arange(len(inputs))
    return positions[~gaps][:6].tolist(), positions[gaps][:4].tolist()


def test_a_row_of_the_users_table_sent_as_pandas_hands_it_over_is_predicted_as_in_process(
    service: str,
    bundle: Path,
    raw_data: pd.DataFrame,
    validated_data: pd.DataFrame,
    params: Params,
) -> None:
    """Fails when a row of the user's own table, sent as pandas hands it over, is refused or
    predicted differently than in-process: ``iloc[i].to_dict()`` (on an all-numeric table
    every value a float, 97.0 for an integer column) and ``to_json(orient="records")``
    (missing values as null). Rows with gaps go only as JSON: a NaN is not JSON."""
    model = joblib.load(bundle / "model.joblib")
    inputs = raw_data[params.data.input_columns]
    complete, with_gaps = source_rows(raw_data, params)
    as_dicts = [inputs.iloc[position].to_dict() for position in complete]
    as_json = json.loads(inputs.iloc[complete + with_gaps].to_json(orient="records"))
    cases = [("iloc[i].to_dict()", complete, as_dicts), ("to_json", complete + with_gaps, as_json)]
    # A table whose every row has a gap has no row to send as a dict.
    for case, positions, bodies in [case for case in cases if case[1]]:
        features = validated_data[params.data.input_columns].iloc[positions]
        expected = as_served(model.predict(features), params)
        for served in served_predictions(service, bodies):
            assert_served_as_in_process(served, expected, params, case)


def integer_columns(params: Params) -> list[str]:
    """The input columns the schema calls ``int``."""
    rules = params.data_schema.columns
    return [column for column in params.data.input_columns if rules[column].dtype == "int"]


def test_a_whole_float_is_taken_for_an_integer_column_and_a_fraction_refused_by_name(
    service: str, bundle: Path, params: Params
) -> None:
    """Fails when 97.0 for an integer column is refused or predicted unlike 97, or when
    97.5 is accepted, or refused without naming the column."""
    example = json.loads((bundle / "example_request.json").read_text())
    columns = [column for column in integer_columns(params) if example[column] is not None]
    if not columns:
        pytest.skip("no input column of this table is an integer column")
    column, rules = columns[0], params.data_schema.columns[columns[0]]
    as_int = httpx.post(f"{service}/predict", json=example, timeout=30)
    as_float = httpx.post(
        f"{service}/predict", json={**example, column: float(example[column])}, timeout=30
    )
    assert as_float.status_code == 200, as_float.text
    assert as_float.json()["prediction"] == as_int.json()["prediction"]
    # Half a unit inside the range, so only the fraction can be the problem.
    fraction = example[column] + (0.5 if rules.max is None or example[column] < rules.max else -0.5)
    refused = httpx.post(f"{service}/predict", json={**example, column: fraction}, timeout=30)
    assert 400 <= refused.status_code < 500, refused.text
    assert column in refused.text and "whole number" in refused.text, refused.text


def test_an_integer_label_comes_back_as_an_integer(
    service: str, bundle: Path, train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    """Fails when a class labelled 0/1/2 in the table comes back as text ("1"), or its
    probabilities are not keyed by the labels' text."""
    if not params.data.is_classification:
        pytest.skip("a regression model predicts numbers, not labels")
    labels = train_test[0][params.data.target]
    if not pd.api.types.is_integer_dtype(labels):
        pytest.skip(f"the label {params.data.target!r} holds {labels.dtype} values, not integers")
    example = json.loads((bundle / "example_request.json").read_text())
    answer = httpx.post(f"{service}/predict", json=example, timeout=30).json()
    assert type(answer["prediction"]) is int, answer
    assert answer["prediction"] in set(labels.tolist())
    assert set(answer["probabilities"]) == {str(label) for label in labels.unique()}


def test_every_answer_names_the_model_version_and_alias(service: str, bundle: Path) -> None:
    body = json.loads((bundle / "example_request.json").read_text())
    answer = httpx.post(f"{service}/predict", json=body, timeout=30).json()
    assert answer["model_version"] == "7"
    assert answer["model_alias"] == "champion"


# A request field no table has (the error must name it).
UNKNOWN_FIELD = "no_such_column"
# A text value no category column has.
UNKNOWN_CATEGORY = "(not a category of this column)"


def past_upper_bound(rules: ColumnSchema) -> int | float:
    """A value beyond a bounded numeric column's maximum (whatever its sign)."""
    assert rules.max is not None
    value = rules.max + abs(rules.max) + 1
    return int(value) if rules.dtype == "int" else value


def schema_violation(example: dict, params: Params) -> tuple[str, dict]:
    """A column and a request its schema refuses there: a number past its bound, else an
    unknown category, else (a free-text column) a JSON object instead of a value."""
    rules = params.data_schema.columns
    for column in params.data.numeric_features:
        if rules[column].max is not None:
            return column, {**example, column: past_upper_bound(rules[column])}
    for column in params.data.categorical_features:
        if rules[column].categories is not None:
            return column, {**example, column: UNKNOWN_CATEGORY}
    column = params.data.input_columns[0]
    return column, {**example, column: {"value": 1}}


def bad_requests(example: dict, params: Params) -> list[tuple[str, str, dict, str]]:
    """(case, endpoint, request, text the error must contain), for the cases this table has:
    the number cases need a numeric column, the category case a categorical one."""
    limit = params.serve.max_batch_size
    too_many = {"records": [example] * (limit + 1)}
    too_big = b"x" * (params.serve.max_body_bytes + 1)
    first = params.data.input_columns[0]
    without = {key: value for key, value in example.items() if key != first}
    violated, violating = schema_violation(example, params)
    cases = [
        ("missing field", "/predict", {"json": without}, first),
        ("unknown field", "/predict", {"json": {**example, UNKNOWN_FIELD: 1}}, UNKNOWN_FIELD),
        ("outside the schema", "/predict", {"json": violating}, violated),
        ("empty batch", "/predict_batch", {"json": {"records": []}}, "at least 1"),
        ("batch over limit", "/predict_batch", {"json": too_many}, str(limit)),
        ("not JSON", "/predict", {"content": b"{this is not json"}, "JSON"),
        ("oversized body", "/predict", {"content": too_big}, "limit"),
    ]
    for numeric in params.data.numeric_features[:1]:
        not_a_number, infinite = ({**example, numeric: value} for value in (math.nan, math.inf))
        cases += [
            ("wrong type", "/predict", {"json": {**example, numeric: "heavy"}}, numeric),
            ("NaN", "/predict", {"content": json.dumps(not_a_number)}, numeric),
            ("infinity", "/predict", {"content": json.dumps(infinite)}, numeric),
        ]
    categories = [
        column
        for column in params.data.categorical_features
        if params.data_schema.columns[column].categories is not None
    ]
    for category in categories[:1]:
        unknown = {**example, category: UNKNOWN_CATEGORY}
        cases.append(("unknown category", "/predict", {"json": unknown}, category))
    return cases


def test_bad_input_gets_a_4xx_naming_the_problem_and_the_service_survives(
    service: str, bundle: Path, params: Params
) -> None:
    example = json.loads((bundle / "example_request.json").read_text())
    headers = {"content-type": "application/json"}
    for case, endpoint, request, expected in bad_requests(example, params):
        answer = httpx.post(f"{service}{endpoint}", headers=headers, timeout=30, **request)
        assert 400 <= answer.status_code < 500, f"{case}: {answer.status_code} {answer.text}"
        assert expected in answer.text, f"{case}: {answer.text}"
        healthy = httpx.post(f"{service}/predict", json=example, timeout=30)
        assert healthy.status_code == 200, f"the service broke after {case}"
    metrics = httpx.get(f"{service}/metrics", timeout=30).text
    assert 'rejected_requests_total{endpoint="/predict",status="413"}' in metrics


def test_bounded_load_has_no_errors(service: str, bundle: Path) -> None:
    body = (bundle / "example_request.json").read_bytes()
    headers = {"content-type": "application/json"}
    deadline = time.monotonic() + LOAD_DEADLINE_SECONDS

    def worker(_: int) -> tuple[list[float], list[int]]:
        latencies, failures = [], []
        with httpx.Client(base_url=service, headers=headers, timeout=30) as client:
            for _ in range(LOAD_REQUESTS // LOAD_CONCURRENCY):
                if time.monotonic() > deadline:
                    failures.append("deadline")
                    break
                started = time.perf_counter()
                status = client.post("/predict", content=body).status_code
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    failures.append(status)
        return latencies, failures

    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_CONCURRENCY) as pool:
        results = list(pool.map(worker, range(LOAD_CONCURRENCY)))
    seconds = time.perf_counter() - started
    latencies = [value for result in results for value in result[0]]
    failures = [value for result in results for value in result[1]]
    p99_ms = np.percentile(latencies, 99) * 1000
    print(
        f"\nload: {len(latencies)} requests in {seconds:.1f} s at concurrency "
        f"{LOAD_CONCURRENCY}: {len(latencies) / seconds:.0f} req/s, p99 {p99_ms:.0f} ms"
    )
    assert len(latencies) == LOAD_REQUESTS and not failures, (
        f"{len(failures)} failed requests: {set(failures)}"
    )


def logged_lines(log: Path, request_ids: set[str]) -> dict[str, dict]:
    """The log's lines by request id, once every id in ``request_ids`` is there."""
    deadline = time.monotonic() + LOG_DEADLINE_SECONDS
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        by_id = {entry["request_id"]: entry for entry in map(json.loads, lines)}
        if request_ids <= by_id.keys() or time.monotonic() > deadline:
            return by_id
        time.sleep(0.2)


def test_prediction_log_has_a_line_per_prediction_joined_by_request_id(
    service: str,
    prediction_log: Path,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
) -> None:
    """Fails when a prediction is missing from the log, a line lacks a contract field, or the
    logged features, prediction or model differ from what the caller sent and got back."""
    bodies = records(train_test[1].head(8), params)
    with ThreadPoolExecutor(4) as pool:  # concurrent singles share model calls
        singles = list(
            pool.map(lambda body: httpx.post(f"{service}/predict", json=body, timeout=30), bodies)
        )
    batch = httpx.post(f"{service}/predict_batch", json={"records": bodies}, timeout=30).json()
    answers = [answer.json() for answer in singles]
    sent = [
        (body, answer["request_id"], answer["prediction"])
        for body, answer in zip(bodies, answers, strict=True)
    ]
    sent += list(zip(bodies, batch["request_ids"], batch["predictions"], strict=True))
    request_ids = {request_id for _, request_id, _ in sent}
    assert len(request_ids) == 2 * len(bodies), "request ids must be unique"

    logged = logged_lines(prediction_log, request_ids)
    assert request_ids <= logged.keys(), (
        f"{len(request_ids - logged.keys())} predictions not logged"
    )
    for body, request_id, prediction in sent:
        entry = logged[request_id]
        assert entry["features"] == body
        assert entry["prediction"] == prediction
        assert (entry["model_name"], entry["model_version"], entry["model_alias"]) == (
            params.mlflow.registered_model_name,
            "7",
            "champion",
        )
        assert datetime.fromisoformat(entry["time"]).tzinfo is not None
        if params.data.is_classification:
            assert set(entry["probabilities"]) == set(map(str, train_test[0][params.data.target]))
        else:
            assert entry["probabilities"] is None


def metric_values(service: str, name: str) -> dict[str, float]:
    """The samples of one metric in /metrics, by their label text."""
    text = httpx.get(f"{service}/metrics", timeout=30).text
    samples = {}
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in "{ ":
            labels, _, value = line[len(name) :].rpartition(" ")
            samples[labels] = float(value)
    return samples


def field_label(field: str) -> str:
    """The label text of one field's schema-violation count in /metrics."""
    return "{" + f'field="{field}"' + "}"


@pytest.mark.ml_test("monitor-2")
def test_schema_violations_are_counted_by_column_in_metrics(
    service: str, bundle: Path, params: Params
) -> None:
    """Fails when an invalid serving input is accepted, or its violation does not show in
    /metrics under the column it broke (and unknown fields not under "other")."""
    example = json.loads((bundle / "example_request.json").read_text())
    cases = [schema_violation(example, params), ("other", {**example, UNKNOWN_FIELD: 1})]
    for field, body in cases:
        label = field_label(field)
        before = metric_values(service, "schema_violations_total").get(label, 0.0)
        answer = httpx.post(f"{service}/predict", json=body, timeout=30)
        assert 400 <= answer.status_code < 500, answer.text
        after = metric_values(service, "schema_violations_total").get(label, 0.0)
        assert after == before + 1, f"{field}: {before} -> {after}"
    labels = metric_values(service, "schema_violations_total")
    known = {field_label(column) for column in [*params.data.input_columns, "other"]}
    assert set(labels) <= known, f"unbounded labels: {set(labels) - known}"


# Column names a user's table may have that are no Python identifier, or clash with
# attributes of pydantic models or of the service.
AWKWARD_NAMES = ["Color Intensity", "model_config", "_id", "od280/od315", "schema", "copy", "self"]


def awkward_renaming(params: Params, table_columns: list[str]) -> dict[str, str]:
    """Each input column's new, awkward name: numbered once the list runs out, or when the
    table has another column (target, time...) of that name."""
    others = set(table_columns) - set(params.data.input_columns)
    names = {}
    for index, column in enumerate(params.data.input_columns):
        name = AWKWARD_NAMES[index % len(AWKWARD_NAMES)]
        numbered = index >= len(AWKWARD_NAMES) or name in others
        names[column] = f"{name} {index}" if numbered else name
    return names


@pytest.fixture(scope="module")
def awkward(
    train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params, tmp_path_factory
) -> Iterator[tuple[str, Params, pd.DataFrame, Path]]:
    """The service on this table with its input columns renamed to awkward names (derived
    features left out: they read the original names): URL, its params, test rows, bundle."""
    names = awkward_renaming(params, list(train_test[0].columns))
    data = params.data.model_copy(
        update={
            "numeric_features": [names[column] for column in params.data.numeric_features],
            "categorical_features": [names[column] for column in params.data.categorical_features],
            "derived_features": [],
        }
    )
    schema = params.data_schema.model_copy(
        update={
            "columns": {
                names.get(column, column): rules
                for column, rules in params.data_schema.columns.items()
            }
        }
    )
    renamed = params.model_copy(update={"data": data, "data_schema": schema})
    train, test = (frame.rename(columns=names) for frame in train_test)
    model = fit(train, renamed)
    folder = tmp_path_factory.mktemp("awkward")
    trained_at = datetime.now(tz=UTC).isoformat()
    write_test_bundle(model, (train, test), renamed, folder / "bundle", trained_at)
    process, url = start_service(folder / "bundle", folder / "predictions.jsonl")
    try:
        wait_until_ready(process, url)
        yield url, renamed, test, folder / "bundle"
    finally:
        stop(process)


def test_columns_with_awkward_names_are_request_fields_under_their_own_names(
    awkward: tuple[str, Params, pd.DataFrame, Path],
) -> None:
    """Fails when a column named like "Color Intensity", "model_config", "_id" or
    "od280/od315" cannot be sent, is predicted unlike in-process, is left out of the
    explanation, or a problem with it is reported or counted under any other name."""
    url, params, test, bundle = awkward
    model = joblib.load(bundle / "model.joblib")
    rows = test.head(8)
    expected = as_served(model.predict(rows[params.data.input_columns]), params)
    for served in served_predictions(url, records(rows, params)):
        assert_served_as_in_process(served, expected, params, "renamed columns")

    example = json.loads((bundle / "example_request.json").read_text())
    explained = httpx.post(f"{url}/explain", json=example, timeout=30)
    assert explained.status_code == 200, explained.text
    assert set(explained.json()["contributions"]) == set(params.data.input_columns)

    column, body = schema_violation(example, params)
    label = field_label(column)
    before = metric_values(url, "schema_violations_total").get(label, 0.0)
    answer = httpx.post(f"{url}/predict", json=body, timeout=30)
    assert 400 <= answer.status_code < 500 and column in answer.text, answer.text
    assert metric_values(url, "schema_violations_total").get(label, 0.0) == before + 1
    python_name = {**example, "column_0": example[params.data.input_columns[0]]}
    answer = httpx.post(f"{url}/predict", json=python_name, timeout=30)
    assert 400 <= answer.status_code < 500 and "column_0" in answer.text, answer.text


@pytest.mark.ml_test("monitor-4")
def test_model_age_is_in_metrics(service: str) -> None:
    """Fails when /metrics has no model age, or it disagrees with the bundle's training time."""
    (age,) = metric_values(service, "model_age_seconds").values()
    expected = TEST_MODEL_AGE.total_seconds()
    assert expected <= age < expected + STARTUP_SECONDS + 600


def run_freshness_check(bundle: Path, trained_at: datetime, params: Params, folder: Path) -> int:
    """Exit code of the model-age check on a copy of ``bundle`` trained at ``trained_at``."""
    copy = folder / "bundle"
    copy.mkdir()
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["trained_at"] = trained_at.isoformat()
    (copy / "metadata.json").write_text(json.dumps(metadata))
    settings = params.model_dump(mode="json", by_alias=True)
    settings["paths"]["bundle"] = str(copy)
    (folder / "params.yaml").write_text(yaml.safe_dump(settings))
    command = [
        sys.executable,
        "-m",
        "mlops_kit.freshness",
    ]
    return subprocess.run(command, cwd=folder, capture_output=True, check=False).returncode


@pytest.mark.ml_test("monitor-4")
def test_model_age_check_fails_on_a_stale_bundle(
    bundle: Path, params: Params, tmp_path: Path
) -> None:
    """Fails when `make model-age` passes a model older than serve.max_model_age_days, or
    fails a fresh one."""
    limit = timedelta(days=params.serve.max_model_age_days)
    now = datetime.now(tz=UTC)
    (tmp_path / "stale").mkdir()
    (tmp_path / "fresh").mkdir()
    stale = run_freshness_check(bundle, now - limit - timedelta(days=1), params, tmp_path / "stale")
    fresh = run_freshness_check(bundle, now - limit / 2, params, tmp_path / "fresh")
    assert (stale, fresh) == (1, 0)


def test_process_memory_and_cpu_are_in_metrics(service: str) -> None:
    """Fails when /metrics lacks the service's resident memory or CPU time (BentoML's
    multiprocess metrics leave out prometheus_client's process_* metrics)."""
    memory = metric_values(service, "service_resident_memory_bytes")
    cpu = metric_values(service, "service_cpu_seconds")
    assert memory and all(value > 1_000_000 for value in memory.values()), memory
    assert cpu and all(value > 0 for value in cpu.values()), cpu


def column_moves(params: Params) -> Iterator[tuple[str, int | float | str]]:
    """(column, value): each numeric column's bounds, then each categorical column's categories."""
    rules = params.data_schema.columns
    for column in params.data.numeric_features:
        for bound in (rules[column].min, rules[column].max):
            if bound is not None:
                yield column, int(bound) if rules[column].dtype == "int" else bound
    for column in params.data.categorical_features:
        for category in rules[column].categories or []:
            yield column, category


@pytest.mark.ml_test("infra-5")
def test_explanation_gives_each_column_a_contribution_that_follows_the_model(
    service: str, bundle: Path, params: Params
) -> None:
    """Fails when /explain leaves out an input column, or a column's contribution does not
    change when that column's value changes although the prediction does."""
    example = json.loads((bundle / "example_request.json").read_text())
    explained = httpx.post(f"{service}/explain", json=example, timeout=30)
    assert explained.status_code == 200, explained.text
    contributions = explained.json()["contributions"]
    assert set(contributions) == set(params.data.input_columns)
    assert all(math.isfinite(value) for value in contributions.values())

    # Move one column across its training range (numbers) or its categories until the
    # explained output moves.
    for column, value in column_moves(params):
        answer = httpx.post(f"{service}/explain", json={**example, column: value}, timeout=30)
        assert answer.status_code == 200, answer.text
        if answer.json()["output"] != explained.json()["output"]:
            assert answer.json()["contributions"][column] != contributions[column], column
            return
    pytest.fail("no single input column changed the explained output")


@pytest.fixture(scope="module")
def challenger_model(train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params):
    """A challenger unlike the champion: the same pipeline fitted on a quarter of the rows."""
    return fit(train_test[0].iloc[::4], params)


@pytest.fixture(scope="module")
def canary_services(
    bundle: Path,
    challenger_model,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    tmp_path_factory,
) -> Iterator[dict[str, tuple[str, Path]]]:
    """A service per canary mode (split and shadow, fraction 1) on the test bundle plus a
    challenger v8, started side by side: mode -> (URL, prediction log)."""
    started = {}
    try:
        for mode in ("split", "shadow"):
            folder = tmp_path_factory.mktemp(f"canary-{mode}")
            trained_at = json.loads((bundle / "metadata.json").read_text())["trained_at"]
            identity = {
                "model_version": "8",
                "run_id": "test-challenger",
                "trained_at": trained_at,
            }
            champion = joblib.load(bundle / "model.joblib")
            challenger = (challenger_model, identity)
            write_test_bundle(champion, train_test, params, folder, trained_at, challenger)
            # The serving settings live in the metadata: changed here, it is sealed again.
            metadata = json.loads((folder / "metadata.json").read_text())
            metadata["serve"]["canary"] = {"mode": mode, "fraction": 1.0}
            (folder / "metadata.json").write_text(json.dumps(seal(metadata)))
            log = folder / "predictions.jsonl"
            started[mode] = (*start_service(folder, log), log)
        for process, url, _ in started.values():
            wait_until_ready(process, url)
        yield {mode: (url, log) for mode, (_, url, log) in started.items()}
    finally:
        for process, _, _ in started.values():
            stop(process)


def expected_predictions(model, bodies: list[dict], params: Params) -> list:
    """What ``model`` predicts for request bodies, as the service answers it."""
    return as_served(model.predict(pd.DataFrame(bodies, columns=params.data.input_columns)), params)


@pytest.mark.ml_test("infra-6")
def test_split_canary_sends_its_share_of_traffic_to_the_challenger(
    canary_services: dict[str, tuple[str, Path]],
    challenger_model,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
) -> None:
    """Fails when, in split mode at fraction 1, a request is answered by anything but the
    challenger (alias, version and predictions), or /metrics does not count it by alias."""
    url, _ = canary_services["split"]
    bodies = records(train_test[1].head(8), params)
    singles = [httpx.post(f"{url}/predict", json=body, timeout=30).json() for body in bodies]
    batch = httpx.post(f"{url}/predict_batch", json={"records": bodies}, timeout=30).json()
    for answer in [*singles, batch]:
        assert (answer["model_alias"], answer["model_version"]) == ("challenger", "8"), answer
    expected = expected_predictions(challenger_model, bodies, params)
    for served in ([answer["prediction"] for answer in singles], batch["predictions"]):
        assert_served_as_in_process(served, expected, params, "split canary")
    counts = metric_values(url, "predictions_total")
    assert counts.get('{model_alias="challenger"}', 0) == 2 * len(bodies), counts
    assert counts.get('{model_alias="champion"}', 0) == 0, counts


@pytest.mark.ml_test("infra-6")
def test_shadow_canary_logs_the_challenger_and_answers_with_the_champion(
    canary_services: dict[str, tuple[str, Path]],
    bundle: Path,
    challenger_model,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
) -> None:
    """Fails when, in shadow mode at fraction 1, a caller gets the challenger's answer, or
    the challenger's prediction for a request is missing from the log (same request id,
    its alias and version) or from the per-alias counts in /metrics."""
    url, log = canary_services["shadow"]
    bodies = records(train_test[1].head(8), params)
    answers = [httpx.post(f"{url}/predict", json=body, timeout=30).json() for body in bodies]
    assert {(answer["model_alias"], answer["model_version"]) for answer in answers} == {
        ("champion", "7")
    }
    champion = joblib.load(bundle / "model.joblib")
    assert_served_as_in_process(
        [answer["prediction"] for answer in answers],
        expected_predictions(champion, bodies, params),
        params,
        "shadow canary, champion's answers",
    )
    request_ids = [answer["request_id"] for answer in answers]
    deadline = time.monotonic() + LOG_DEADLINE_SECONDS
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        shadow = {line["request_id"]: line for line in lines if line["model_alias"] == "challenger"}
        if set(request_ids) <= shadow.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(request_ids) <= shadow.keys(), "shadow predictions missing from the log"
    assert {shadow[request_id]["model_version"] for request_id in request_ids} == {"8"}
    expected = expected_predictions(challenger_model, bodies, params)
    logged = [shadow[request_id]["prediction"] for request_id in request_ids]
    assert_served_as_in_process(logged, expected, params, "shadow canary, logged challenger")
    counts = metric_values(url, "predictions_total")
    assert counts.get('{model_alias="challenger"}', 0) == len(bodies), counts
    assert counts.get('{model_alias="champion"}', 0) == len(bodies), counts
