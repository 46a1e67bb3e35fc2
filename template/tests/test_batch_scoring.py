"""Batch scoring (`make score`) on this project's data and champion bundle.

Every row of the input comes out scored or rejected with its reasons; the scored rows
match the service's predictions and reach the prediction log as the service writes
it; a wrong input is refused in one line and nothing is written. The broken cells are
chosen from conf/schema/: whichever column can hold text in a number, an unseen
category or a value beyond its bounds.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_kit.core.params import Params
from mlops_kit.export import input_schema, plain
from mlops_kit.monitor import read_prediction_log
from mlops_kit.predictor import load_predictor
from mlops_kit.score import main as score_main
from mlops_kit.score import rejects_path

# What the service writes for each prediction (serving/service.py).
SERVICE_LOG_FIELDS = {
    "request_id",
    "time",
    "model_name",
    "model_version",
    "model_alias",
    "features",
    "prediction",
    "probabilities",
}


@pytest.fixture
def run_score(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Callable[..., tuple[int, str, str]]:
    """`make score INPUT OUTPUT` on the test bundle, in this process: exit code, stdout,
    stderr (a refusal is the message of SystemExit, as the shell shows it)."""
    monkeypatch.setenv("MODEL_BUNDLE", str(bundle))

    def run(log: Path, *arguments: object) -> tuple[int, str, str]:
        monkeypatch.setenv("PREDICTION_LOG", str(log))
        try:
            score_main([str(argument) for argument in arguments])
            code, message = 0, ""
        except SystemExit as stop:
            code, message = 1, str(stop.code)
        out = capsys.readouterr()
        return code, out.out, out.err + message

    return run


def broken_cells(schema: dict[str, dict]) -> dict[str, tuple[str, str]]:
    """One bad cell per kind this schema makes possible: column and text written."""
    cells = {}
    for column, rules in schema.items():
        numeric = rules["dtype"] != "str" and not rules.get("categories")
        if numeric:
            cells.setdefault("text in a number column", (column, "not a number"))
            if rules.get("max") is not None:
                beyond = rules["max"] + abs(rules["max"]) + 1
                cells.setdefault("out of range", (column, str(beyond)))
        if rules.get("categories"):
            cells.setdefault("unseen category", (column, "never-seen-in-training"))
    return cells


@pytest.fixture(scope="module")
def table(train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params) -> pd.DataFrame:
    """The held-out rows' input columns, as a team's nightly table would hold them."""
    return train_test[1][params.data.input_columns].reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(params: Params) -> dict[str, dict]:
    return input_schema(params.data.input_columns, params)


def test_every_row_is_scored_or_rejected_with_its_reason(
    run_score: Callable, bundle: Path, table: pd.DataFrame, schema: dict, tmp_path: Path
) -> None:
    cells = broken_cells(schema)
    assert cells, "the schema allows no broken cell: nothing to check"
    broken = table.astype(object)
    for row, (column, text) in enumerate(cells.values()):
        broken.at[row, column] = text
    source = tmp_path / "rows.csv"
    broken.to_csv(source, index=False)
    output = tmp_path / "scored.parquet"
    log = tmp_path / "predictions.jsonl"
    code, out, err = run_score(log, source, output)
    assert code == 0, err
    scored, rejected = pd.read_parquet(output), pd.read_parquet(rejects_path(output))
    assert len(scored) + len(rejected) == len(table)
    assert rejected["row"].tolist() == list(range(len(cells)))
    for reason, (column, _) in zip(rejected["reasons"], cells.values(), strict=True):
        assert reason.startswith(f"{column}: "), reason
    assert f"{len(scored):,} rows scored" in out
    assert f"{len(rejected):,} rejected" in out
    # The scored rows are predicted as the service predicts them, row for row.
    metadata_runtime = pd.read_json(bundle / "metadata.json", typ="series")["runtime"]
    predictor = load_predictor(bundle, metadata_runtime)
    good = table.iloc[scored["row"]]
    records = [{c: plain(v) for c, v in row.items()} for row in good.to_dict("records")]
    labels, probabilities = predictor.predict(records)
    if predictor.classes is None:
        assert np.allclose(scored["prediction"], labels, rtol=1e-12, atol=0)
    else:
        assert scored["prediction"].tolist() == labels
        columns = [f"probability_{label}" for label in predictor.classes]
        assert np.allclose(scored[columns].to_numpy(), probabilities, rtol=0, atol=1e-12)
    assert scored["request_id"].is_unique
    assert scored[["model_name", "model_version", "model_alias"]].nunique().eq(1).all()


def test_scored_rows_reach_the_prediction_log_as_the_service_writes_them(
    run_score: Callable, table: pd.DataFrame, params: Params, tmp_path: Path
) -> None:
    source = tmp_path / "rows.parquet"
    table.to_parquet(source)
    output = tmp_path / "scored.csv"
    log = tmp_path / "predictions.jsonl"
    assert run_score(log, source, output)[0] == 0
    scored = pd.read_csv(output)
    logged = read_prediction_log(log, min_rows=1)
    sample_rate = params.serve.prediction_log.sample_rate
    if sample_rate >= 1.0:
        assert sorted(logged["request_id"]) == sorted(scored["request_id"])
    assert set(logged.columns) == SERVICE_LOG_FIELDS
    row_of = dict(zip(scored["request_id"], scored["row"], strict=True))
    for request_id, features in zip(logged["request_id"], logged["features"], strict=True):
        cells = table.iloc[row_of[request_id]]
        assert features == {column: plain(value) for column, value in cells.items()}


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("missing file", "does not exist"),
        ("not a table", "cannot be read"),
        ("missing column", "lacks the column(s) the champion needs"),
        ("wrong extension", "must end in .csv or .parquet"),
        ("missing folder", "does not exist"),
    ],
)
def test_a_wrong_input_is_refused_in_one_line_and_nothing_is_written(
    run_score: Callable, table: pd.DataFrame, tmp_path: Path, case: str, said: str
) -> None:
    source, output = tmp_path / "rows.parquet", tmp_path / "scored.parquet"
    if case == "not a table":
        source.write_bytes(b"PAR1 this is not a parquet file")
    elif case == "missing column":
        table.drop(columns=table.columns[0]).to_parquet(source)
    elif case == "wrong extension":
        table.to_parquet(source)
        output = tmp_path / "scored.xlsx"
    elif case == "missing folder":
        table.to_parquet(source)
        output = tmp_path / "no" / "such" / "scored.parquet"
    log = tmp_path / "predictions.jsonl"
    code, _, err = run_score(log, source, output)
    assert code != 0
    assert said in err and err.startswith("score: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        path.name for path in [source] if path.exists()
    )
