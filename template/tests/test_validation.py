"""The schema in conf/schema/ accepts the shipped data and names what breaks it."""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_kit.core.params import Params, SchemaConfig
from mlops_kit.data import load_source
from mlops_kit.validation import (
    ValidationFailed,
    infer_schema,
    validate,
    write_report,
)

Corruption = Callable[[pd.DataFrame, Params], tuple[pd.DataFrame, str, str]]


def numeric_features(params: Params) -> list[str]:
    """The numeric features; a case that needs one is skipped, saying why, without."""
    if not params.data.numeric_features:
        pytest.skip("no numeric feature in conf/data/: no number to corrupt")
    return params.data.numeric_features


def wrong_dtype(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    column = numeric_features(params)[0]
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = "not a number"
    return frame, column, "dtype"


def out_of_range(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    schema = params.data_schema.columns
    bounded = [name for name in numeric_features(params) if schema[name].max is not None]
    if not bounded:
        pytest.skip("no numeric feature has a maximum in conf/schema/: no range to break")
    column = bounded[0]
    highest = schema[column].max or 0.0
    # Past the bound whatever its sign; a whole number keeps an integer column's dtype.
    frame.loc[0, column] = type(frame.loc[0, column])(highest + 10 * abs(highest) + 10)
    return frame, column, "less_than_or_equal_to"


def missing_column(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    column = params.data.input_columns[-1]
    return frame.drop(columns=[column]), column, "column_in_dataframe"


def unknown_category(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    """An unknown value in a column with a category list: a categorical feature, else
    a text label (a table of numbers alone has no category to break)."""
    schema = params.data_schema.columns
    listed = [
        name
        for name in [*params.data.categorical_features, params.data.target]
        if schema[name].categories is not None
    ]
    if not listed:
        pytest.skip("no column with a category list in conf/schema/: no category to break")
    column = listed[0]
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = unseen_category(schema[column].categories or [])
    return frame, column, "isin"


def unseen_category(categories: list) -> str | int:
    """A value outside ``categories``, of their type: a numeric label gets a number."""
    return max(categories) + 1 if isinstance(categories[0], int) else "no-such-category"


def missing_labels(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    column = params.data.target
    frame[column] = frame[column].astype(object)
    frame.loc[:2, column] = np.nan
    return frame, column, "not_nullable"


def too_many_missing(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    rules = params.data_schema.columns
    nullable = [name for name in numeric_features(params) if rules[name].nullable]
    column = (nullable or numeric_features(params))[0]
    frame[column] = frame[column].astype(float)  # an integer column cannot hold NaN
    frame.loc[: len(frame) // 2, column] = np.nan
    return frame, column, "max_null_fraction" if nullable else "not_nullable"


def no_rows(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, str, str]:
    return frame.iloc[0:0], "<table>", "min_rows"


@pytest.mark.ml_test("data-1")
@pytest.mark.parametrize(
    "corrupt",
    [
        wrong_dtype,
        out_of_range,
        missing_column,
        unknown_category,
        missing_labels,
        too_many_missing,
        no_rows,
    ],
)
def test_corrupted_data_is_refused_naming_column_and_rule(
    raw_data: pd.DataFrame, params: Params, corrupt: Corruption
) -> None:
    corrupted, column, rule = corrupt(raw_data.copy(), params)
    with pytest.raises(ValidationFailed) as failure:
        validate(corrupted, params.data_schema)
    assert any(
        finding["column"] == column and rule in finding["rule"]
        for finding in failure.value.findings
    ), failure.value.findings
    assert repr(column) in str(failure.value)


def test_a_header_only_csv_is_refused_for_having_no_rows(
    raw_data: pd.DataFrame, params: Params, tmp_path: Path
) -> None:
    path = tmp_path / "header_only.csv"
    raw_data.iloc[0:0].to_csv(path, index=False)
    with pytest.raises(ValidationFailed, match="min_rows"):
        validate(load_source(path), params.data_schema)


@pytest.mark.ml_test("data-1")
def test_every_model_column_has_schema_rules_that_training_data_meets(
    train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    """Fails when a model input or the target has no rule in conf/schema/, or when the
    training split breaks a rule (a schema that no longer describes the data)."""
    columns = [params.data.target, *params.data.input_columns]
    missing = [column for column in columns if column not in params.data_schema.columns]
    assert not missing, f"columns without schema rules: {missing}"
    validate(train_test[0], params.data_schema)


@pytest.mark.ml_test("data-1")
def test_the_shipped_data_passes_and_gets_schema_dtypes(
    validated_data: pd.DataFrame, params: Params
) -> None:
    for column in params.data.numeric_features:
        assert pd.api.types.is_numeric_dtype(validated_data[column]), column


@pytest.mark.ml_test("data-1")
def test_a_schema_inferred_from_the_data_accepts_that_data(
    raw_data: pd.DataFrame, params: Params
) -> None:
    inferred = SchemaConfig.model_validate(infer_schema(raw_data, params.data, 0.1, 0.05))
    assert set(inferred.columns) == {params.data.target, *params.data.input_columns}
    validate(raw_data, inferred)


def test_the_report_lists_findings_for_people_and_machines(tmp_path: Path) -> None:
    findings = [{"column": "x", "rule": "min>=0", "failures": 2, "examples": ["-1", "-2"]}]
    report = tmp_path / "validation.json"
    write_report(report, rows=10, findings=findings)
    assert json.loads(report.read_text()) == {
        "valid": False,
        "rows": 10,
        "findings": findings,
        "table_findings": [],
    }
    assert "column 'x' broke rule min>=0 in 2 row(s) (e.g. -1, -2)" in str(
        ValidationFailed(findings)
    )
