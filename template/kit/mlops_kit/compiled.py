"""The compiled champion: the fitted pipeline as numpy preprocessing plus one ONNX graph.

scikit-learn spends milliseconds on one row, nearly all of it in per-call overhead
(pandas, validation, the ColumnTransformer), not in arithmetic. ``compile_model``
writes what the fitted preprocessing learned (imputer fills, scaler means and
scales, encoder categories) to a small JSON file, and the estimator to an ONNX graph;
``predictor`` (the serve-time half, which the service imports instead of this
module) applies the one with numpy and runs the other with onnxruntime. Derived features
are the team's pandas code and cannot be compiled: they run on a small frame of
the micro-batch, and only when some are configured.

Every compiled graph is in double precision, so predictions match scikit-learn's to
about 1e-12, not float32's 1e-7. Tree ensembles (scikit-learn's, LightGBM's and
XGBoost's) get their own small converter, ``trees``: skl2onnx 1.20 writes their
thresholds and leaves in float32, fails on HistGradientBoosting outright and cannot
read LightGBM or XGBoost. A model neither path converts is served by
scikit-learn behind the same numpy preprocessing, and the runtime record says why.
"""

import json
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from typing import Any

import numpy as np

from mlops_kit.predictor import (
    ONNX_RUNTIME,
    SKLEARN_RUNTIME,
    Preprocessor,
    native,
    predictor_of,
)
from mlops_kit.trees import ONNX_OPSET, Unsupported, tree_graph

# Largest difference to the fitted model's prediction that compile_model accepts on the
# schema's edge rows before it falls back, as the generated tests check: probabilities
# absolute, values relative to their scale (XGBoost predicts in float32, whose rounding
# alone is 6e-8 of the value).
TOLERANCE = 1e-6


# skl2onnx's converters target ai.onnx.ml 3 (tree models have their own writer, which
# needs 5: see trees.py).
ML_OPSET = 3


@dataclass(frozen=True)
class Compiled:
    """Files to add to the bundle and the runtime record its metadata keeps."""

    files: dict[str, bytes]
    runtime: dict


def step_spec(step: Any) -> dict:
    """What one fitted step of a ColumnTransformer block learned, as JSON."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if isinstance(step, SimpleImputer):
        statistics = [native(value) for value in step.statistics_]
        if step.add_indicator or not (
            isinstance(step.missing_values, float) and np.isnan(step.missing_values)
        ):
            raise Unsupported("a SimpleImputer with an indicator or other missing values")
        if any(isinstance(value, float) and np.isnan(value) for value in statistics):
            raise Unsupported("a SimpleImputer that dropped a column empty at fit time")
        return {"impute": statistics}
    if isinstance(step, StandardScaler):
        return {
            "scale": {
                "mean": step.mean_.tolist() if step.with_mean else None,
                "scale": step.scale_.tolist() if step.with_std else None,
            }
        }
    if isinstance(step, OneHotEncoder):
        infrequent = getattr(step, "infrequent_categories_", None) or []
        if step.drop is not None or step.sparse_output or any(c is not None for c in infrequent):
            raise Unsupported("a OneHotEncoder that drops, groups or outputs sparse")
        return {"onehot": [[native(value) for value in column] for column in step.categories_]}
    raise Unsupported(f"preprocessing step {type(step).__name__}")


def preprocess_spec(model: Any, input_schema: dict[str, dict]) -> dict:
    """The fitted ``preprocess`` step of ``model`` as JSON that ``Preprocessor`` applies.

    Raises ``Unsupported`` when it is not the derive-then-ColumnTransformer pipeline
    of the kit's ``features.build_preprocessor`` (derive, then the team's encoding)
    built from steps this module knows.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from mlops_kit.features import add_derived_features

    preprocess = model.named_steps.get("preprocess")
    steps = dict(preprocess.steps) if isinstance(preprocess, Pipeline) else {}
    derive, encode = steps.get("derive"), steps.get("encode")
    if (
        list(steps) != ["derive", "encode"]
        or getattr(derive, "func", None) is not add_derived_features
        or not isinstance(encode, ColumnTransformer)
    ):
        raise Unsupported("the preprocessing is not the one features.build_preprocessor builds")
    blocks = []
    for name, transformer, columns in encode.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        if transformer == "passthrough":
            raise Unsupported(f"passthrough columns in {name!r}")
        chain = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
        blocks.append({"columns": list(columns), "steps": [step_spec(s) for _, s in chain]})
    return {
        "columns": {column: rules["dtype"] for column, rules in input_schema.items()},
        "derived": list((derive.kw_args or {}).get("names", [])),
        "blocks": blocks,
    }


def skl2onnx_graph(estimator: Any, n_features: int, classification: bool) -> bytes:
    """Any other estimator through skl2onnx, on a double matrix (labels and probabilities)."""
    from skl2onnx import to_onnx

    options = {id(estimator): {"zipmap": False}} if classification else None
    model = to_onnx(
        estimator,
        np.zeros((1, n_features), dtype=np.float64),
        target_opset={"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET},
        options=options,
    )
    # skl2onnx names the graph after a random identifier: fixed, the bytes depend on
    # the model alone, and a bundle of an unchanged model stays byte-identical.
    model.graph.name = "model"
    return model.SerializeToString(deterministic=True)


def estimator_graph(estimator: Any, n_features: int, task: str) -> tuple[bytes, str]:
    """The estimator as ONNX bytes and how its output becomes a prediction."""
    classification = task == "classification"
    trees = tree_graph(estimator, n_features, classification)
    if trees is not None:
        return trees
    try:
        return skl2onnx_graph(estimator, n_features, classification), "skl2onnx"
    except Exception as error:  # skl2onnx raises many kinds for what it lacks
        raise Unsupported(f"skl2onnx cannot convert {type(estimator).__name__}: {error}") from error


def schema_edge_rows(input_schema: dict[str, dict]) -> list[dict]:
    """Rows at the schema's edges: numbers at their min and max, every null, every category.

    Each row changes one column of a base row (mid-range numbers, first categories).
    """

    def number(rules: dict, value: float) -> float | int:
        return int(round(value)) if rules["dtype"] == "int" else float(value)

    base = {}
    for column, rules in input_schema.items():
        if rules.get("categories"):
            base[column] = rules["categories"][0]
        elif rules["dtype"] == "str":
            base[column] = None
        else:
            low, high = rules.get("min"), rules.get("max")
            low = 0.0 if low is None else low
            high = low if high is None else high
            base[column] = number(rules, (low + high) / 2)
    rows = [base]
    for column, rules in input_schema.items():
        values = list(rules.get("categories") or [])
        if not values and rules["dtype"] != "str":
            values = [
                number(rules, rules[key]) for key in ("min", "max") if rules.get(key) is not None
            ]
        if rules.get("nullable", True):
            values.append(None)
        rows.extend({**base, column: value} for value in values)
    return rows


def difference(compiled: tuple, reference: tuple) -> float:
    """Largest difference of two predictions; inf when a label differs.

    Of probabilities as they are; of values over their largest absolute value (at
    least 1), since trees compare in float32 and large targets show it.
    """
    labels, probabilities = compiled
    expected_labels, expected_probabilities = reference
    if probabilities is None:
        want = np.asarray(expected_labels, float)
        gap = np.max(np.abs(np.asarray(labels, float) - want))
        return float(gap / max(1.0, np.max(np.abs(want))))
    if list(labels) != list(expected_labels):
        return float("inf")
    return float(np.max(np.abs(np.asarray(probabilities) - np.asarray(expected_probabilities))))


def reference_prediction(model: Any, rows: list[dict], task: str) -> tuple[list, list | None]:
    """scikit-learn's prediction of ``rows``, through a frame as the service built one."""
    import pandas as pd

    frame = pd.DataFrame.from_records(rows, columns=list(model.feature_names_in_))
    labels = [native(label) for label in model.predict(frame)]
    return labels, model.predict_proba(frame).tolist() if task == "classification" else None


def compile_model(
    model: Any, input_schema: dict[str, dict], task: str, *, stem: str = "model"
) -> Compiled:
    """Compile the fitted pipeline ``model`` for serving.

    ``stem`` names its files (``model.onnx``, ``model.preprocess.json``; a canary
    challenger's are ``challenger.*``) and the joblib file the fallback loads
    (``<stem>.joblib``, written by the export stage). The result is checked on the
    schema's edge rows against scikit-learn; a model that does not convert, or
    whose compiled form strays more than ``TOLERANCE``, falls back to scikit-learn
    behind the numpy preprocessing (or, when that cannot be compiled either, to the
    whole pipeline), and ``runtime['reason']`` says why.
    """
    classes = [native(label) for label in model.classes_] if task == "classification" else None
    pickle = f"{stem}.joblib"
    scikit_learn = {
        "name": SKLEARN_RUNTIME,
        "version": installed_version("scikit-learn"),
        "classes": classes,
        "pickle": pickle,
    }
    rows = schema_edge_rows(input_schema)
    expected = reference_prediction(model, rows, task)
    try:
        spec = preprocess_spec(model, input_schema)
    except Unsupported as error:
        reason = f"the preprocessing cannot be compiled: {error}"
        return Compiled({}, whole_pipeline(scikit_learn, reason))
    preprocess_name = f"{stem}.preprocess.json"
    files = {preprocess_name: (json.dumps(spec, indent=1, sort_keys=True) + "\n").encode()}
    estimator = model.named_steps["estimator"]
    try:
        graph, kind = estimator_graph(estimator, Preprocessor(spec).width, task)
        onnx_name = f"{stem}.onnx"
        runtime = {
            "name": ONNX_RUNTIME,
            "version": installed_version("onnxruntime"),
            "kind": kind,
            "files": [preprocess_name, onnx_name],
            "preprocess": preprocess_name,
            "model": onnx_name,
            "classes": classes,
            "reason": None,
        }
        files[onnx_name] = graph
        gap = difference(predictor_of(files, runtime).predict(rows), expected)
        if gap > TOLERANCE:
            raise Unsupported(f"the ONNX graph differs from scikit-learn by {gap:.3g} on edge rows")
        return Compiled(files, runtime)
    except Unsupported as error:
        reason = str(error)
        files.pop(f"{stem}.onnx", None)
    runtime = {
        **scikit_learn,
        "kind": "sklearn",
        "files": [preprocess_name, pickle],
        "preprocess": preprocess_name,
        "reason": f"{reason}; scikit-learn predicts behind the compiled preprocessing",
    }
    gap = difference(predictor_of(files, runtime, model).predict(rows), expected)
    if gap > TOLERANCE:
        reason = f"{reason}; the compiled preprocessing differs by {gap:.3g} on edge rows"
        return Compiled({}, whole_pipeline(scikit_learn, reason))
    return Compiled(files, runtime)


def whole_pipeline(scikit_learn: dict, reason: str) -> dict:
    """The runtime record of the last resort: the pickled pipeline on a frame of the rows."""
    return {**scikit_learn, "kind": "pipeline", "files": [scikit_learn["pickle"]], "reason": reason}
