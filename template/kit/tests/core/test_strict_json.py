"""Every JSON the kit writes is strict: NaN and infinities become null."""

import json
import math

import numpy as np
import pytest

from mlops_kit.core.strict_json import dumps, write


def test_nan_and_infinity_at_any_depth_become_null() -> None:
    content = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": np.float64("nan")}
    assert json.loads(dumps(content)) == {"a": None, "b": [1.0, None, {"c": None}], "d": None}


def test_numpy_values_are_written_as_plain_numbers(tmp_path) -> None:
    path = tmp_path / "report" / "metrics.json"
    write(path, {"rows": np.int64(3), "scores": np.array([0.5, np.nan])})
    assert json.loads(path.read_text()) == {"rows": 3, "scores": [0.5, None]}


def test_what_json_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError):
        dumps({"when": object()})
