"""The compiled champion at serve time: numpy preprocessing and one onnxruntime session.

What ``compiled.compile_model`` wrote into the bundle (the fitted preprocessing as
JSON, the estimator as ONNX) is applied here with numpy and onnxruntime alone: the
service imports this module, never scikit-learn, skl2onnx or onnx. A model that did
not compile is served by its pickled scikit-learn estimator behind the same numpy
preprocessing, as the bundle's runtime record says.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The runtime records a bundle names: the compiled graph, or the pickled fallback.
ONNX_RUNTIME = "onnxruntime"
SKLEARN_RUNTIME = "scikit-learn"

# How each kind of compiled tree ensemble (trees.py) is fed and read: these compare
# float32-cast inputs, as their library does, and these give raw scores (margins).
FLOAT32_INPUTS = {"forest", "xgboost"}
RAW_SCORES = {"boosting", "lightgbm", "xgboost"}


def native(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (labels and categories go to JSON)."""
    return value.item() if hasattr(value, "item") else value


class Preprocessor:
    """The fitted preprocessing, applied with numpy to a micro-batch of request rows."""

    def __init__(self, spec: dict) -> None:
        """Prepare lookup tables once: encoding a row is then a dict lookup per column.

        The team's derived-feature functions (and pandas, which they take) are loaded
        here, not on the first request: a service is ready when it says so, and a
        function missing from the team's ``features.py`` stops it starting.
        """
        self.columns: dict[str, str] = spec["columns"]
        self.derived: list[str] = spec["derived"]
        self.functions: dict[str, Callable] = {}
        if self.derived:
            from mlops_kit.features import derived_feature

            self.functions = {name: derived_feature(name) for name in self.derived}
        self.blocks = spec["blocks"]
        self.width = 0
        for block in self.blocks:
            for step in block["steps"]:
                if "onehot" in step:
                    step["index"] = [
                        {category: i for i, category in enumerate(categories)}
                        for categories in step["onehot"]
                    ]
            onehot = [step for step in block["steps"] if "onehot" in step]
            self.width += (
                sum(len(c) for c in onehot[-1]["onehot"]) if onehot else len(block["columns"])
            )

    def derive(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """The derived features of ``rows``, computed by the team's functions on a small frame.

        Columns get the dtypes training gave them: numbers as float64 (int64 when an
        integer column has no nulls in the batch), text as objects with None for nulls.
        The frame costs about 0.2 ms, whatever the batch size; the functions are the
        team's code, called directly (``add_derived_features`` would copy the frame).
        """
        import pandas as pd

        data = {}
        for column, dtype in self.columns.items():
            values = [row.get(column) for row in rows]
            if dtype == "str":
                data[column] = np.array(values, dtype=object)
            elif dtype == "int" and None not in values:
                data[column] = np.array(values, dtype=np.int64)
            else:
                data[column] = np.array(
                    [np.nan if value is None else value for value in values], dtype=np.float64
                )
        frame = pd.DataFrame(data, copy=False)
        return {
            name: np.asarray(function(frame), dtype=np.float64)
            for name, function in self.functions.items()
        }

    def transform(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The float64 matrix the estimator was fitted on, one line per row."""
        derived = self.derive(rows) if self.derived else {}

        def gather(columns: list[str], onehot: bool) -> np.ndarray:
            if onehot:
                return np.array(
                    [[row.get(column) for column in columns] for row in rows], dtype=object
                )
            return np.column_stack(
                [
                    derived[column]
                    if column in derived
                    else np.array(
                        [np.nan if row.get(column) is None else row[column] for row in rows],
                        dtype=np.float64,
                    )
                    for column in columns
                ]
            )

        return self.assemble(len(rows), gather)

    def transform_columns(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        """The same matrix as ``transform``, from whole columns (batch scoring).

        Numbers come as float64 with NaN for nulls, text and categories as objects
        with None for nulls.
        """
        count = len(next(iter(data.values())))
        derived = {}
        if self.derived:
            import pandas as pd

            frame = pd.DataFrame(
                {column: self.as_in_training(column, values) for column, values in data.items()}
            )
            derived = {
                name: np.asarray(function(frame), dtype=np.float64)
                for name, function in self.functions.items()
            }

        def gather(columns: list[str], onehot: bool) -> np.ndarray:
            if onehot:
                return np.column_stack([data[column].astype(object) for column in columns])
            return np.column_stack(
                [
                    derived[column] if column in derived else data[column].astype(np.float64)
                    for column in columns
                ]
            )

        return self.assemble(count, gather)

    def as_in_training(self, column: str, values: np.ndarray) -> np.ndarray:
        """A column as ``derive`` gives it to the team's functions.

        An integer column without nulls as int64, other numbers as float64, text as
        objects.
        """
        whole = self.columns.get(column) == "int" and values.dtype != object
        return values.astype(np.int64) if whole and not np.isnan(values).any() else values

    def assemble(self, count: int, gather: Callable[[list[str], bool], np.ndarray]) -> np.ndarray:
        """Each block's columns (``gather``) through its fitted steps, side by side."""
        out = np.empty((count, self.width), dtype=np.float64)
        at = 0
        for block in self.blocks:
            onehot = any("onehot" in step for step in block["steps"])
            values = gather(block["columns"], onehot)
            for step in block["steps"]:
                if "impute" in step:
                    values = impute(values, step["impute"])
                elif "scale" in step:
                    # The order of scikit-learn's own in-place operations: bit-identical.
                    if step["scale"]["mean"] is not None:
                        values = values - np.asarray(step["scale"]["mean"])
                    if step["scale"]["scale"] is not None:
                        values = values / np.asarray(step["scale"]["scale"])
                else:
                    values = one_hot(values, step["index"])
            out[:, at : at + values.shape[1]] = values
            at += values.shape[1]
        return out


def missing_cells(values: np.ndarray) -> np.ndarray:
    """Where an object array holds None or a float NaN.

    Compared cell by cell in C: NaN is the one value unequal to itself.
    """
    return np.equal(values, None) | np.not_equal(values, values)


def impute(values: np.ndarray, fills: list) -> np.ndarray:
    """Replace missing cells by the imputer's learned fill of their column."""
    if values.dtype == object:
        filled = values.copy()
        for j, fill in enumerate(fills):
            filled[missing_cells(filled[:, j]), j] = fill
        return filled
    return np.where(np.isnan(values), np.asarray(fills, dtype=np.float64), values)


def one_hot(values: np.ndarray, index: list[dict]) -> np.ndarray:
    """One-hot encode each column by its categories; an unknown value encodes as zeros."""
    widths = [len(categories) for categories in index]
    out = np.zeros((len(values), sum(widths)), dtype=np.float64)
    offsets = np.cumsum([0, *widths[:-1]])
    for j, categories in enumerate(index):
        column = values[:, j].tolist()
        # Each distinct cell looked up once: a column of categories repeats a few values.
        known = {cell: categories.get(cell, -1) for cell in set(column)}
        positions = np.fromiter((known[cell] for cell in column), np.int64, len(column))
        rows = np.flatnonzero(positions >= 0)
        out[rows, offsets[j] + positions[rows]] = 1.0
    return out


def inverse_link(raw: np.ndarray, classification: bool) -> np.ndarray:
    """Probabilities (sigmoid or softmax) or values from a boosted model's raw scores."""
    if not classification:
        return raw[:, 0]
    if raw.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-raw[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    exp = np.exp(raw - raw.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


class Predictor:
    """Predicts micro-batches of request rows with the compiled (or fallback) model."""

    def __init__(
        self,
        preprocessor: Preprocessor | None,
        estimator: Any,
        kind: str,
        classes: list | None,
        pipeline: Any = None,
    ) -> None:
        """``estimator`` is an onnxruntime session or a scikit-learn estimator (``kind``)."""
        self.preprocessor = preprocessor
        self.estimator = estimator
        self.kind = kind
        self.classes = classes
        self.pipeline = pipeline
        self.input_name = (
            estimator.get_inputs()[0].name if hasattr(estimator, "get_inputs") else None
        )

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list, list[list[float]] | None]:
        """Labels (or values) of ``rows``; a classifier's probabilities in ``classes`` order."""
        if self.kind == "pipeline":
            import pandas as pd

            frame = pd.DataFrame.from_records(
                list(rows), columns=list(self.pipeline.feature_names_in_)
            )
            labels, probabilities = self.predict_frame(frame)
        else:
            labels, probabilities = self.predict_matrix(self.preprocessor.transform(rows))
        return labels.tolist(), None if probabilities is None else probabilities.tolist()

    def predict_columns(
        self, data: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (or values) and probabilities of whole columns, as arrays.

        Batch scoring's entry; see ``Preprocessor.transform_columns``.
        """
        if self.kind == "pipeline":
            import pandas as pd

            return self.predict_frame(pd.DataFrame(dict(data)))
        return self.predict_matrix(self.preprocessor.transform_columns(data))

    def predict_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (or values) and probabilities of the preprocessed matrix."""
        if self.kind in FLOAT32_INPUTS:
            matrix = matrix.astype(np.float32).astype(np.float64)
        if self.kind == "sklearn":
            # The fallback: scikit-learn's estimator on the numpy matrix, no pandas.
            labels = self.estimator.predict(matrix)
            if self.classes is None:
                return labels, None
            return labels, self.estimator.predict_proba(matrix)
        outputs = self.estimator.run(None, {self.input_name: matrix})
        if self.kind == "skl2onnx":
            return outputs[0].ravel(), None if self.classes is None else outputs[1]
        scores = outputs[0]
        if self.kind in RAW_SCORES:
            scores = inverse_link(scores, self.classes is not None)
        if self.classes is None:
            return scores.ravel(), None
        # The rule of scikit-learn's forests and boosting: the first most probable class.
        return np.asarray(self.classes, dtype=object)[scores.argmax(axis=1)], scores

    def predict_frame(self, frame: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The last resort: the whole scikit-learn pipeline on a frame of the rows."""
        labels = self.pipeline.predict(frame)
        if self.classes is None:
            return labels, None
        return labels, self.pipeline.predict_proba(frame)


def onnx_session(content: bytes, threads: int = 1):
    """An onnxruntime session on the CPU.

    One thread by default: the service parallelises by workers. Batch scoring, alone
    on the machine, passes 0 (one per core).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])


def predictor_of(
    files: Mapping[str, bytes], runtime: dict, pickled: Any = None, threads: int = 1
) -> Predictor:
    """A Predictor from the compiled files; ``pickled`` is the fitted pipeline for a fallback.

    ``threads`` is the ONNX session's (``onnx_session``).
    """
    spec = json.loads(files[runtime["preprocess"]]) if runtime.get("preprocess") else None
    preprocessor = Preprocessor(spec) if spec is not None else None
    classes = runtime["classes"]
    kind = runtime["kind"]
    if runtime["name"] == ONNX_RUNTIME:
        session = onnx_session(files[runtime["model"]], threads)
        return Predictor(preprocessor, session, kind, classes)
    if kind == "pipeline":
        return Predictor(None, pickled, kind, classes, pipeline=pickled)
    return Predictor(preprocessor, pickled.named_steps["estimator"], kind, classes)


def load_predictor(bundle: Path, runtime: dict, threads: int = 1) -> Predictor:
    """Load the compiled model from ``bundle`` as its metadata's ``runtime`` record says.

    The ONNX path reads JSON and ONNX bytes only: it unpickles nothing. The fallback
    loads the bundle's joblib pipeline, the file the record names.
    """
    files = {
        name: (bundle / name).read_bytes()
        for name in runtime["files"]
        if not name.endswith(".joblib")
    }
    pickled = None
    if runtime["name"] == SKLEARN_RUNTIME:
        import joblib

        pickled = joblib.load(bundle / runtime["pickle"])
    return predictor_of(files, runtime, pickled, threads)
