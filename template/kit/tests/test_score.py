"""Batch scoring's row checks: every bad cell named with its column, good cells typed."""

import numpy as np
import pandas as pd

from mlops_kit.score import check_chunk, output_schema, rejects_path

SCHEMA = {
    "size": {"dtype": "float", "nullable": True, "min": 0.0, "max": 10.0},
    "count": {"dtype": "int", "nullable": False, "min": 0, "max": None},
    "colour": {"dtype": "str", "nullable": True, "categories": ["red", "blue"]},
    "grade": {"dtype": "int", "nullable": True, "categories": [1, 2]},
    "note": {"dtype": "str", "nullable": True},
}


def test_cells_read_as_text_are_checked_as_a_request_is() -> None:
    frame = pd.DataFrame(
        {
            "size": ["1.5", "abc", "11", None, "inf"],
            "count": ["3", "2.5", None, "4", "1"],
            "colour": ["red", "green", None, "blue", "red"],
            "grade": ["1", "2.0", "3", None, "2"],
            "note": ["x", None, "7", "y", "z"],
        }
    )
    data, reasons = check_chunk(frame, SCHEMA)
    assert reasons[0] == ""
    assert reasons[1] == (
        "size: 'abc' is not a number; count: '2.5' is not a whole number; "
        "colour: 'green' is not one of the categories seen in training"
    )
    assert reasons[2] == (
        "size: '11' is above the maximum 10.0; count is missing (the column is not "
        "nullable); grade: '3' is not one of the categories seen in training"
    )
    assert reasons[3] == ""
    assert reasons[4] == "size: 'inf' is not a finite number"
    assert data["size"][0] == 1.5 and np.isnan(data["size"][3])
    assert data["grade"].tolist()[:2] == [1, 2] and data["grade"][3] is None
    assert data["colour"][2] is None and data["note"].tolist()[2] == "7"


def test_typed_cells_from_parquet_are_checked_the_same_way() -> None:
    frame = pd.DataFrame(
        {
            "size": [1.5, -1.0],
            "count": [3, 7],
            "colour": ["blue", "red"],
            "grade": [2.0, 1.0],
            "note": [None, "n"],
        }
    )
    data, reasons = check_chunk(frame, SCHEMA)
    assert reasons.tolist() == ["", "size: -1.0 is below the minimum 0.0"]
    assert data["grade"].tolist() == [2, 1]


def test_the_scored_file_has_one_column_per_class_and_the_model_identity() -> None:
    assert output_schema(["a", "b"]).names == [
        "row",
        "request_id",
        "prediction",
        "probability_a",
        "probability_b",
        "model_name",
        "model_version",
        "model_alias",
        "scored_at",
    ]
    assert str(output_schema([0, 1]).field("prediction").type) == "int64"
    assert str(output_schema(None).field("prediction").type) == "double"


def test_rejects_go_beside_the_output_in_its_format(tmp_path) -> None:
    assert rejects_path(tmp_path / "out.parquet") == tmp_path / "out.rejected.parquet"
