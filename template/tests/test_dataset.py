"""`make dataset`: a table becomes the project's data, or is refused saying why.

Each test works in a temporary copy of conf/, so the project's own configs are
never touched; tables are synthetic, made here.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_kit.config import compose_params
from mlops_kit.core.params import Params, load_params
from mlops_kit.dataset.adopt import main
from mlops_kit.dataset.roles import (
    column_role,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROWS = 120


def copy_of_conf(folder: Path) -> Path:
    """A project folder holding a copy of this project's conf/."""
    project = folder / "project"
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf")
    return project


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of conf/ as the working directory, for one test."""
    project = copy_of_conf(tmp_path)
    monkeypatch.chdir(project)
    return project


def outside(workspace: Path, name: str) -> Path:
    """A path for a table outside the project, as a user's download would be."""
    folder = workspace.parent / "incoming"
    folder.mkdir(exist_ok=True)
    return folder / name


def own_table(params: Params, rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A table unlike the demo's: an identifier, free text, dates, a constant, a
    mostly missing column, a low-cardinality integer and a name with spaces."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    frame = pd.DataFrame(
        {
            "Customer ID": np.arange(1000, 1000 + rows),
            "Signal Strength": signal,
            "noise level": rng.normal(size=rows),
            # Informative categories: both follow the signal.
            "plan": np.array(["basic", "plus", "pro"])[np.digitize(signal, [-0.5, 0.5])],
            "seats": np.digitize(signal, [-1.0, 0.0, 1.0]) + 1,
            "comment": [f"free text number {index} about things" for index in range(rows)],
            "signed_up": pd.date_range("2024-01-01", periods=rows, freq="D").astype(str),
            "constant": 1,
            "rarely_known": [1.0 if index % 5 == 0 else None for index in range(rows)],
        }
    )
    if params.data.is_classification:
        frame["Churned"] = np.where(signal + rng.normal(scale=0.3, size=rows) > 0, "yes", "no")
    else:
        frame["Churned"] = 3 * signal + rng.normal(scale=0.3, size=rows)
    return frame


def adopt(workspace: Path, frame: pd.DataFrame, *options: str, suffix: str = ".csv") -> Params:
    """Write ``frame``, run `make dataset`'s command on it, return the composed params."""
    source = outside(workspace, f"own_table{suffix}")
    frame.to_parquet(source, index=False) if suffix == ".parquet" else frame.to_csv(
        source, index=False
    )
    main(["--source", str(source), "--target", "Churned", *options])
    output = workspace / "params.yaml"
    compose_params(output=output, config_dir=workspace / "conf")
    return load_params(output)


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory, params: Params) -> tuple[Path, Params]:
    """One adoption of the synthetic table, shared: cross-validation takes seconds."""
    project = copy_of_conf(tmp_path_factory.mktemp("adopted"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        return project, adopt(project, own_table(params), "--sensitive", "none")


@pytest.mark.slow
def test_a_table_is_adopted_with_every_role_inferred(
    adopted: tuple[Path, Params], params: Params
) -> None:
    workspace, adopted_params = adopted
    data = adopted_params.data
    assert data.target == "Churned" and data.task == params.data.task
    assert "Signal Strength" in data.numeric_features
    assert {"plan", "seats"} <= set(data.categorical_features)
    used = set(data.input_columns)
    for left_out in ("Customer ID", "noise level", "comment", "constant", "rarely_known"):
        assert left_out not in used, left_out
    assert data.time_column == "signed_up"
    assert data.sensitive_column is None
    assert data.source == Path("data/raw/own_table.csv")
    assert (workspace / "data" / "raw" / "own_table.csv").is_file()
    assert set(adopted_params.data_schema.columns) >= {data.target, *data.input_columns}
    text = (workspace / "conf" / "data" / "own_table.yaml").read_text()
    for reason in ("identifier", "mutual information", "free text", "dates or times", "one value"):
        assert reason in text, reason


@pytest.mark.slow
def test_the_quality_bar_comes_from_the_data_not_the_demo(
    adopted: tuple[Path, Params], params: Params
) -> None:
    thresholds = adopted[1].evaluate.thresholds
    assert thresholds != params.evaluate.thresholds
    assert set(thresholds) == set(params.evaluate.thresholds)


@pytest.mark.slow
def test_existing_configs_are_not_overwritten_without_force(
    adopted: tuple[Path, Params], monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = adopted[0]
    monkeypatch.chdir(workspace)
    before = (workspace / "conf" / "data" / "own_table.yaml").read_text()
    with pytest.raises(SystemExit, match="FORCE=1"):
        main(["--source", str(outside(workspace, "own_table.csv")), "--target", "Churned"])
    assert (workspace / "conf" / "data" / "own_table.yaml").read_text() == before


@pytest.mark.slow
def test_the_written_data_config_is_yaml_that_sets_the_quality_bar(
    adopted: tuple[Path, Params],
) -> None:
    written = yaml.safe_load((adopted[0] / "conf" / "data" / "own_table.yaml").read_text())
    assert set(written) >= {"data", "evaluate"}
    assert written["data"]["target"] == "Churned"


@pytest.mark.slow
def test_a_parquet_table_with_given_special_columns_is_adopted(
    workspace: Path, params: Params
) -> None:
    options = ("--name", "mine", "--slice", "plan", "--time", "none", "--sensitive", "seats")
    adopted = adopt(workspace, own_table(params), *options, suffix=".parquet")
    assert (adopted.data.slice_column, adopted.data.sensitive_column) == ("plan", "seats")
    config = (workspace / "conf" / "config.yaml").read_text()
    assert "- data: mine" in config and "- schema: mine" in config


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing file", "file not found"),
        ("binary garbage", "binary data (NUL bytes), not text"),
        ("no such target", "no column 'Churned'"),
        ("one target value", "has one value only"),
        ("too few rows", "at least 50 are needed"),
        ("bad column name", "unusable column names"),
        ("wrong task", "copier update --trust --defaults --data ml_task="),
    ],
)
def test_an_unusable_table_is_refused_saying_why_and_nothing_changes(
    workspace: Path, params: Params, case: str, message: str
) -> None:
    frame = own_table(params)
    source = outside(workspace, "table.csv")
    if case == "binary garbage":
        source.write_bytes(bytes(range(256)) * 40)
    elif case != "missing file":
        if case == "no such target":
            frame = frame.drop(columns=["Churned"])
        elif case == "one target value":
            frame["Churned"] = frame["Churned"].iloc[0]
        elif case == "too few rows":
            frame = frame.head(10)
        elif case == "bad column name":
            frame = frame.rename(columns={"plan": "plan\nname"})
        elif case == "wrong task" and params.data.is_classification:
            frame["Churned"] = np.linspace(0, 1, len(frame))  # a quantity, not classes
        elif case == "wrong task":
            frame["Churned"] = ["a", "b"] * (len(frame) // 2)  # labels, not a quantity
        frame.to_csv(source, index=False)
    before = {path: path.read_bytes() for path in (workspace / "conf").rglob("*") if path.is_file()}
    with pytest.raises(SystemExit) as refusal:
        main(["--source", str(source), "--target", "Churned"])
    assert message in str(refusal.value), refusal.value
    after = {path: path.read_bytes() for path in (workspace / "conf").rglob("*") if path.is_file()}
    assert after == before


@pytest.mark.parametrize(
    ("values", "role"),
    [
        (pd.Series(np.arange(ROWS)), "left out"),  # an identifier
        (pd.Series(np.random.default_rng(1).normal(size=ROWS)), "numeric"),
        (pd.Series(np.arange(ROWS) % 4), "categorical"),  # low-cardinality integers
        (pd.Series(["a", "b"] * (ROWS // 2)), "categorical"),
        (pd.Series(pd.date_range("2020-01-01", periods=ROWS)), "time"),
        (pd.Series([None] * (ROWS - 5) + [1.0] * 5), "left out"),
    ],
)
def test_column_roles_follow_the_values(values: pd.Series, role: str) -> None:
    assert column_role("column", values, ROWS).role == role
