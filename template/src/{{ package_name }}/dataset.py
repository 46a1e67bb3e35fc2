"""Adopt a table: profile it and write the configs that make it this project's data.

``make dataset SOURCE=<csv or parquet> TARGET=<column>`` (this module's ``main``)
reads the table, decides each column's role, measures what a good model of it
scores, and writes:

- ``conf/data/<name>.yaml``: the source, the task and target, the feature lists,
  the slice, time and sensitive columns, and the quality bar (thresholds and
  tolerances in the metrics' own units, which depend on the target);
- ``conf/schema/<name>.yaml``: the validation rules, derived from the table;
- ``conf/config.yaml``: its ``data`` and ``schema`` defaults switched to them.

Every inference is printed with its reason, and written as a comment beside the
value, so a wrong guess is corrected by editing the file it names. Tables the
project cannot learn from are refused with what is wrong and what is accepted.
"""

import argparse
import difflib
import math
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .config import CONFIG_DIR, DataConfig, Params, compose_params, load_params
from .data import DataError, load_source
from .validation import infer_column, infer_target

RAW_DIR = Path("data/raw")
# Fewer rows than this leave too little for a test split and cross-validation.
MIN_ROWS = 50
# A classification target needs this many rows of each class (stratified splits).
MIN_ROWS_PER_CLASS = 5
# Integer or text columns with at most this many distinct values are categories.
MAX_CATEGORIES = 20
# Text columns whose distinct values exceed this share of the rows are free text.
FREE_TEXT_SHARE = 0.5
# Columns missing in more than this share of rows are left out.
MAX_MISSING_SHARE = 0.5
# Profiling (cross-validation, mutual information) reads at most this many rows.
PROFILE_ROWS = 5000
CV_FOLDS = 5
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ID_NAME = re.compile(r"(^|[\s_-])(id|uuid|guid|key|index)$|^unnamed: ?\d+$", re.IGNORECASE)
TIME_NAME = re.compile(r"(date|time|year|month|day|timestamp|period)", re.IGNORECASE)
SENSITIVE_NAME = re.compile(
    r"(^|[\s_-])(sex|gender|age|race|ethnicity|ethnic|religion|nationality|marital|disability)"
    r"($|[\s_-])",
    re.IGNORECASE,
)
MAX_NAME_LENGTH = 100


class Refused(ValueError):
    """The table or an option cannot be adopted; the message says why and what is accepted."""


@dataclass
class Column:
    """What the profile decided about one column, and why."""

    name: str
    role: str  # numeric, categorical, left out, time, target
    reason: str


@dataclass
class Profile:
    """Everything ``make dataset`` inferred about a table."""

    name: str
    source: Path
    task: str
    target: str
    target_reason: str
    placed: str = ""
    columns: list[Column] = field(default_factory=list)
    slice_column: str | None = None
    slice_reason: str = ""
    time_column: str | None = None
    time_reason: str = ""
    sensitive_column: str | None = None
    sensitive_reason: str = ""
    quality: dict[str, Any] = field(default_factory=dict)
    quality_reasons: list[str] = field(default_factory=list)

    def features(self, role: str) -> list[str]:
        """The columns given ``role``, in the table's order."""
        return [column.name for column in self.columns if column.role == role]


# --- Reading and refusing ------------------------------------------------------


def read_table(path: Path) -> pd.DataFrame:
    """The table at ``path``; unreadable files are refused with the reason."""
    try:
        return load_source(path)
    except DataError as error:
        raise Refused(str(error)) from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError, OSError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise Refused(
            f"{path}: cannot be read as a {path.suffix.lstrip('.')} table ({first_line}); "
            "accepted: a UTF-8 CSV with a header row, or a Parquet file"
        ) from None


def check_column_names(frame: pd.DataFrame) -> None:
    """Refuse column names the configs, the schema and the service cannot carry."""
    names = [str(name) for name in frame.columns]
    problems = []
    for name in names:
        if not name.strip():
            problems.append("an empty column name")
        elif any(ord(character) < 32 for character in name):
            problems.append(f"{name!r} holds a control character (newline, tab...)")
        elif len(name) > MAX_NAME_LENGTH:
            problems.append(f"{name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters")
        elif name != name.strip():
            problems.append(f"{name!r} starts or ends with spaces")
    stripped = [name.strip() for name in names]
    duplicates = sorted({name for name in stripped if stripped.count(name) > 1})
    if duplicates:
        problems.append(f"duplicated column names {duplicates}")
    if problems:
        raise Refused(
            "unusable column names: "
            + "; ".join(problems)
            + ". Accepted: unique, non-empty names of printable characters, "
            f"at most {MAX_NAME_LENGTH} long; rename them in the file"
        )


def check_target(frame: pd.DataFrame, target: str) -> pd.Series:
    """The target column, refused when missing, empty or constant."""
    if target not in frame.columns:
        close = difflib.get_close_matches(target, [str(c) for c in frame.columns], n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise Refused(
            f"no column {target!r} in the table{hint} Accepted: one of {list(frame.columns)}"
        )
    values = frame[target]
    if values.notna().sum() == 0:
        raise Refused(f"the target {target!r} is empty in every row")
    if values.nunique(dropna=True) < 2:
        raise Refused(
            f"the target {target!r} has one value only ({values.dropna().iloc[0]!r}): "
            "a model cannot learn from it. Accepted: a column with at least two values"
        )
    return values


def target_task(values: pd.Series) -> tuple[str, str]:
    """The task the target calls for, and why."""
    present = values.dropna()
    distinct = present.nunique()
    if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return "classification", f"text or boolean labels, {distinct} classes"
    integral = bool((present == present.round()).all())
    if integral and distinct <= MAX_CATEGORIES:
        return "classification", f"whole numbers with {distinct} distinct values: classes"
    kind = "whole numbers" if integral else "real numbers"
    return "regression", f"{kind} with {distinct} distinct values: a quantity"


def check_task(values: pd.Series, target: str, project_task: str) -> str:
    """The target's description, refused when it does not fit the project's task."""
    task, reason = target_task(values)
    if task == project_task:
        return reason
    # A few distinct whole numbers (a rating, a count) can be a quantity too.
    if project_task == "regression" and pd.api.types.is_numeric_dtype(values):
        return f"{reason}; treated as a quantity, as this regression project asks"
    raise Refused(
        f"the target {target!r} looks like {task} ({reason}) but this project does "
        f"{project_task}. Switch the project: copier update --trust --defaults "
        f"--data ml_task={task}; or choose another TARGET"
    )


def check_rows(frame: pd.DataFrame, target: str, task: str) -> None:
    """Refuse tables too small to split, cross-validate and test."""
    labeled = frame[target].notna().sum()
    if labeled < MIN_ROWS:
        raise Refused(
            f"{labeled} rows have a target value; at least {MIN_ROWS} are needed to train, "
            "cross-validate and hold out a test split"
        )
    if task == "classification":
        counts = frame[target].value_counts()
        rare = {str(label): int(count) for label, count in counts.items()}
        rare = {label: count for label, count in rare.items() if count < MIN_ROWS_PER_CLASS}
        if rare:
            raise Refused(
                f"classes with fewer than {MIN_ROWS_PER_CLASS} rows: {rare}; a stratified "
                "split needs more of each. Merge or drop them in the file"
            )


# --- Column roles --------------------------------------------------------------


def as_datetime(values: pd.Series) -> pd.Series | None:
    """``values`` as timestamps when (almost) every value is one, else None."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    present = values.dropna().astype(str)
    if present.empty or not present.str.contains(r"\d").all():
        return None
    sample = present.head(200)
    try:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        return None
    if parsed.notna().mean() < 0.95:
        return None
    return pd.to_datetime(values, errors="coerce", format="mixed")


def column_role(name: str, values: pd.Series, rows: int) -> Column:
    """The role of one input column, decided from its values and name."""
    present = values.dropna()
    missing = 1 - len(present) / rows
    distinct = present.nunique()
    if missing > MAX_MISSING_SHARE:
        return Column(name, "left out", f"missing in {missing:.0%} of rows")
    if distinct <= 1:
        return Column(name, "left out", "one value only: it tells nothing")
    if as_datetime(values) is not None:
        return Column(name, "time", "dates or times: never fed raw to the model")
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    integral = numeric and bool((present == present.round()).all())
    unique_share = distinct / len(present)
    if ID_NAME.search(name) and unique_share > 0.9:
        return Column(name, "left out", "an identifier (name and nearly unique values)")
    if not numeric and distinct <= MAX_CATEGORIES:
        return Column(name, "categorical", f"text with {distinct} values")
    text = present.astype(str)
    if not numeric and unique_share > FREE_TEXT_SHARE and text.str.contains(" ").mean() > 0.5:
        return Column(name, "left out", f"free text ({distinct} distinct values)")
    if (not numeric or integral) and distinct == len(present):
        return Column(name, "left out", "an identifier (every value unique)")
    if not numeric:
        return Column(
            name,
            "left out",
            f"text with {distinct} values, too many for one-hot categories "
            f"(at most {MAX_CATEGORIES}); derive a feature from it if it matters",
        )
    if integral and distinct <= min(10, MAX_CATEGORIES):
        return Column(name, "categorical", f"whole numbers with {distinct} values: categories")
    return Column(name, "numeric", f"{'whole' if integral else 'real'} numbers")


def mutual_information(
    column: pd.Series, target: pd.Series, is_classification: bool, seed: int
) -> float:
    """Mutual information (nats) between one feature and the target, missing rows dropped.

    The same estimate the "every feature is beneficial" check (data-2) applies.
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    known = column.notna() & target.notna()
    values, target = column[known], target[known]
    if values.empty:
        return 0.0
    categorical = not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    encoded = pd.factorize(values)[0] if categorical else values.to_numpy(dtype=float)
    estimate = mutual_info_classif if is_classification else mutual_info_regression
    labels = target.astype(str) if is_classification else target.astype(float)
    scores = estimate(
        encoded.reshape(-1, 1), labels, discrete_features=categorical, random_state=seed
    )
    return float(scores[0])


# --- Slice, time and sensitive columns -----------------------------------------

NONE_WORDS = {"none", "null", "no", ""}


def chosen(option: str | None, frame: pd.DataFrame, what: str) -> str | None:
    """A column named on the command line (``none`` for none); refused when absent."""
    if option is None or option.strip().lower() in NONE_WORDS:
        return None
    if option not in frame.columns:
        raise Refused(f"{what}: no column {option!r}. Accepted: one of {list(frame.columns)}")
    return option


def pick_slice(profile: Profile, frame: pd.DataFrame, information: dict[str, float]) -> None:
    """A categorical feature with 2 to 10 balanced groups, else the most informative number."""
    candidates = []
    for name in profile.features("categorical"):
        counts = frame[name].value_counts()
        if 2 <= len(counts) <= 10:
            candidates.append((counts.min() / counts.sum(), name, len(counts)))
    if candidates:
        _, name, groups = max(candidates)
        profile.slice_column = name
        profile.slice_reason = f"the most balanced categorical feature ({groups} groups)"
        return
    numeric = [name for name in profile.features("numeric") if name in information]
    if numeric:
        best = max(numeric, key=lambda name: information[name])
        profile.slice_column = best
        profile.slice_reason = (
            "no categorical feature with 2 to 10 groups: quantile bins of the most "
            f"informative numeric feature ({information[best]:.2f} nats)"
        )
        return
    profile.slice_reason = "no column to slice by"


def pick_time(profile: Profile, frame: pd.DataFrame) -> None:
    """A date column, else a numeric column named like a time, else none (row order)."""
    dates = profile.features("time")
    if dates:
        profile.time_column = dates[0]
        profile.time_reason = "dates or times"
        return
    for column in profile.columns:
        values = frame[column.name]
        if (
            column.role in ("numeric", "categorical")
            and TIME_NAME.search(column.name)
            and pd.api.types.is_numeric_dtype(values)
        ):
            profile.time_column = column.name
            column.role = "time"
            column.reason = "its name says time: kept out of the features"
            profile.time_reason = "a number named like a time"
            return
    profile.time_reason = (
        "no date column and none named like a time: the staleness check uses the "
        "file's row order (pass TIME=<column> if rows have a time)"
    )


def pick_sensitive(profile: Profile, frame: pd.DataFrame) -> None:
    """A column named like a protected attribute, else none."""
    for name in frame.columns:
        named = name != profile.target and SENSITIVE_NAME.search(str(name))
        if named and frame[name].nunique() >= 2:
            profile.sensitive_column = str(name)
            profile.sensitive_reason = "named like a protected attribute"
            return
    profile.sensitive_reason = (
        "no column named like a protected attribute (sex, gender, age, race...): "
        "the inclusion check does not apply (pass SENSITIVE=<column>)"
    )


# --- The quality bar -----------------------------------------------------------


def floor_to(value: float, step: float = 0.01) -> float:
    """``value`` rounded down to a multiple of ``step``."""
    return round(math.floor(value / step + 1e-9) * step, 6)


def ceil_significant(value: float, digits: int = 3) -> float:
    """``value`` rounded up to ``digits`` significant digits."""
    if value <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(value)) - digits + 1)
    return round(math.ceil(value / scale - 1e-9) * scale, 10)


def model_for(params: Params, data: DataConfig):
    """The configured model (conf/model/), built for ``data``."""
    from .train import build_model

    return build_model(params.model_copy(update={"data": data}))


def fold_metrics(truth: pd.Series, predicted: np.ndarray, is_classification: bool) -> dict:
    """The metrics the thresholds bound, for one fold's predictions."""
    from sklearn import metrics

    if is_classification:
        return {
            "f1_macro": float(metrics.f1_score(truth, predicted, average="macro")),
            "accuracy": float(metrics.accuracy_score(truth, predicted)),
        }
    return {
        "rmse": float(metrics.root_mean_squared_error(truth, predicted)),
        "r2": float(metrics.r2_score(truth, predicted)),
    }


def cross_validated(frame: pd.DataFrame, params: Params, data: DataConfig, seed: int) -> dict:
    """Per-fold metrics of the configured model and a constant baseline; out-of-fold predictions.

    One fit per fold serves all three.
    """
    from sklearn.base import clone
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.model_selection import KFold, StratifiedKFold

    features, target = frame[data.input_columns], frame[data.target]
    if data.is_classification:
        folds = min(CV_FOLDS, int(target.value_counts().min()))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        baseline = DummyClassifier(strategy="most_frequent")
    else:
        splitter = KFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
        baseline = DummyRegressor()
    model = model_for(params, data)
    scores: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    oof = pd.Series(index=frame.index, dtype=object)
    for train_rows, test_rows in splitter.split(features, target):
        fit_x, fit_y = features.iloc[train_rows], target.iloc[train_rows]
        held_x, held_y = features.iloc[test_rows], target.iloc[test_rows]
        predicted = clone(model).fit(fit_x, fit_y).predict(held_x)
        oof.iloc[test_rows] = predicted
        constant = clone(baseline).fit(fit_x, fit_y).predict(held_x)
        for name, value in fold_metrics(held_y, predicted, data.is_classification).items():
            scores.setdefault(name, []).append(value)
        for name, value in fold_metrics(held_y, constant, data.is_classification).items():
            base.setdefault(name, []).append(value)
    if not data.is_classification:
        oof = oof.astype(float)
    return {
        "folds": {name: np.array(values) for name, values in scores.items()},
        "baseline": {name: float(np.mean(values)) for name, values in base.items()},
        "predictions": oof,
    }


def slice_floor(profile: Profile, frame: pd.DataFrame, predicted: pd.Series, data) -> dict:
    """Out-of-fold quality per slice, the worst slice first: what slices can be asked."""
    from sklearn import metrics

    from .evaluate import groups_of

    if profile.slice_column is None:
        return {}
    results = {}
    for label, rows in groups_of(frame, profile.slice_column, data.slice_bins).items():
        truth, guess = rows[data.target], predicted.loc[rows.index]
        if data.is_classification:
            results[label] = float(metrics.accuracy_score(truth, guess))
        else:
            results[label] = float(metrics.root_mean_squared_error(truth, guess))
    return results


def quality_bar(profile: Profile, frame: pd.DataFrame, params: Params, data: DataConfig) -> None:
    """Thresholds and tolerances for this data, from cross-validating the configured model.

    Each threshold sits below the cross-validated score by three fold standard
    deviations (at least 5%), so the first model on this data passes it while a
    clearly worse one does not; regression tolerances scale with the measured RMSE,
    since they are in the target's units.
    """
    seed = params.train.seed
    measured = cross_validated(frame, params, data, seed)
    estimator = params.model["_target_"].rsplit(".", 1)[-1]
    reasons = profile.quality_reasons
    thresholds: dict[str, dict[str, float]] = {}
    for name, folds in measured["folds"].items():
        mean, spread = float(np.mean(folds)), float(np.std(folds))
        base = measured["baseline"][name]
        if name == "rmse":
            bound = ceil_significant(mean + max(3 * spread, 0.1 * mean))
            thresholds[name] = {"max": bound}
        else:
            bound = max(floor_to(mean - max(3 * spread, 0.05 * abs(mean))), 0.0)
            thresholds[name] = {"min": bound}
        reasons.append(
            f"{name}: {estimator} scores {mean:.3f} ± {spread:.3f} over {len(folds)} folds, "
            f"a constant baseline {base:.3f}; threshold {'max' if name == 'rmse' else 'min'} "
            f"{bound}"
        )
    primary = "f1_macro" if data.is_classification else "rmse"
    base, mean = measured["baseline"][primary], float(np.mean(measured["folds"][primary]))
    beats = mean > base if data.is_classification else mean < base
    if not beats:
        reasons.append(
            f"WARNING: {estimator} does not beat a constant baseline on {primary}: "
            "check the target and the features before training"
        )
    quality: dict[str, Any] = {"evaluate": {"thresholds": thresholds}}
    slices = slice_floor(profile, frame, measured["predictions"], data)
    if slices:
        if data.is_classification:
            worst = min(slices.values())
            slice_bound = {"accuracy": {"min": max(floor_to(worst - 0.1, 0.05), 0.0)}}
            text = f"accuracy {worst:.3f} on the worst slice"
        else:
            worst = max(slices.values())
            slice_bound = {"rmse": {"max": ceil_significant(worst * 1.3)}}
            text = f"RMSE {worst:.3g} on the worst slice"
        quality["ml_test_score"] = {"slices": {"thresholds": slice_bound}}
        reasons.append(f"slices of {profile.slice_column}: {text}; thresholds {slice_bound}")
    if not data.is_classification:
        rmse = float(np.mean(measured["folds"]["rmse"]))
        tolerance = ceil_significant(0.05 * rmse)
        quality.setdefault("ml_test_score", {}).update(
            {
                "tuning": {"tolerance": tolerance},
                "simpler_model_tolerance": tolerance,
                "staleness": {"max_loss": ceil_significant(0.5 * rmse)},
                "inclusion": {"max_gap": ceil_significant(rmse)},
            }
        )
        quality["monitor"] = {"online": {"tolerance": {"rmse": ceil_significant(0.6 * rmse)}}}
        reasons.append(
            f"tolerances in the target's units, from its RMSE {rmse:.3g}: tuning and simpler "
            f"model {tolerance}, staleness {ceil_significant(0.5 * rmse)}, groups "
            f"{ceil_significant(rmse)}, online {ceil_significant(0.6 * rmse)}"
        )
    profile.quality = quality


# --- Profiling -------------------------------------------------------------------


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, drawn reproducibly."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def profile_table(
    frame: pd.DataFrame, name: str, source: Path, target: str, params: Params, options: dict
) -> Profile:
    """Decide every column's role, the special columns and the quality bar."""
    check_column_names(frame)
    project_task = params.data.task
    values = check_target(frame, target)
    target_reason = check_task(values, target, project_task)
    check_rows(frame, target, project_task)
    frame = frame[frame[target].notna()]
    profile = Profile(name, source, project_task, target, target_reason)
    given = {
        key: chosen(options.get(key), frame, key.upper()) for key in ("slice", "time", "sensitive")
    }
    for column in frame.columns:
        if column == target:
            continue
        if column == given["time"]:
            profile.columns.append(Column(column, "time", "given as TIME: kept out of features"))
            continue
        profile.columns.append(column_role(str(column), frame[column], len(frame)))

    # Features that tell nothing about the target are noise the model may overfit;
    # the data-2 check applies the same floor to the training split.
    seed = params.train.seed
    profiled = sample(frame, PROFILE_ROWS, seed)
    floor = params.ml_test_score.min_mutual_information
    information = {}
    for column in profile.columns:
        if column.role in ("numeric", "categorical"):
            information[column.name] = mutual_information(
                profiled[column.name], profiled[target], project_task == "classification", seed
            )
            if information[column.name] < floor:
                column.reason = (
                    f"{column.reason}; but {information[column.name]:.3f} nats of mutual "
                    f"information with the target, under the floor {floor} (data-2)"
                )
                column.role = "left out"
    if not profile.features("numeric") and not profile.features("categorical"):
        raise Refused(
            "no column can be a feature: "
            + "; ".join(f"{column.name}: {column.reason}" for column in profile.columns)
        )
    if given["time"]:
        profile.time_column, profile.time_reason = given["time"], "given as TIME"
    else:
        pick_time(profile, frame)
    if given["slice"]:
        profile.slice_column, profile.slice_reason = given["slice"], "given as SLICE"
    elif options.get("slice") is not None:
        profile.slice_reason = "SLICE=none"
    else:
        pick_slice(profile, frame, information)
    if given["sensitive"]:
        profile.sensitive_column, profile.sensitive_reason = given["sensitive"], "given"
    elif options.get("sensitive") is not None:
        profile.sensitive_reason = "SENSITIVE=none"
    else:
        pick_sensitive(profile, frame)
    quality_bar(profile, profiled, params, data_config(profile))
    return profile


def data_config(profile: Profile) -> DataConfig:
    """The ``data`` section the profile describes."""
    return DataConfig(
        source=profile.source,
        task=profile.task,
        target=profile.target,
        numeric_features=profile.features("numeric"),
        categorical_features=profile.features("categorical"),
        derived_features=[],
        slice_column=profile.slice_column,
        time_column=profile.time_column,
        sensitive_column=profile.sensitive_column,
    )


# --- Writing the configs -----------------------------------------------------------


def dump(value: Any) -> str:
    """One YAML value on one line (a flow-style scalar, list or mapping)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def data_file(profile: Profile) -> str:
    """The text of ``conf/data/<name>.yaml``: values and, beside them, why."""
    lines = [
        "# @package _global_",
        f"# Written by `make dataset` from {profile.source}; edit any value, the reasons",
        "# beside them say what was inferred. Global package: besides `data`, this file",
        "# sets the quality bar for this data over the defaults of conf/evaluate/ and",
        "# conf/ml_test_score/ (their metrics are in the target's units).",
        "data:",
        f"  source: {dump(str(profile.source))}",
        f"  task: {profile.task}",
        f"  # {profile.target_reason}",
        f"  target: {dump(profile.target)}",
    ]
    for role, key in (("numeric", "numeric_features"), ("categorical", "categorical_features")):
        lines.append(f"  {key}:" + ("" if profile.features(role) else " []"))
        for column in profile.columns:
            if column.role == role:
                lines.append(f"    - {dump(column.name)}  # {column.reason}")
    lines.append("  # Functions of derived_features.py to compute and feed to the model.")
    lines.append("  derived_features: []")
    left_out = [column for column in profile.columns if column.role in ("left out", "time")]
    if left_out:
        lines.append("  # Left out of the model (move one to a feature list to use it):")
        lines += [f"  #   {column.name}: {column.reason}" for column in left_out]
    for key, value, reason in (
        ("slice_column", profile.slice_column, profile.slice_reason),
        ("time_column", profile.time_column, profile.time_reason),
        ("sensitive_column", profile.sensitive_column, profile.sensitive_reason),
    ):
        lines.append(f"  # {reason}")
        lines.append(f"  {key}: {dump(value)}")
    lines.append("# The quality bar, measured by cross-validating the configured model:")
    lines += [f"#   {reason}" for reason in profile.quality_reasons]
    lines.append(yaml.safe_dump(profile.quality, sort_keys=False, width=100).rstrip())
    return "\n".join(lines) + "\n"


def schema_file(profile: Profile, frame: pd.DataFrame) -> str:
    """The text of ``conf/schema/<name>.yaml``: rules for the target and every used column."""
    data = data_config(profile)
    used = [data.target, *data.input_columns]
    extra = [
        column
        for column in (profile.slice_column, profile.time_column, profile.sensitive_column)
        if column is not None and column not in used
    ]
    columns = {}
    for column in [*used, *extra]:
        values = frame[column]
        if column == profile.time_column and as_datetime(values) is not None:
            # Dates: the rule is that the column is there, not a list of every date.
            null_fraction = float(values.isna().mean())
            columns[column] = {"dtype": "str", "nullable": bool(null_fraction > 0)}
            if null_fraction > 0:
                columns[column]["max_null_fraction"] = round(min(1.0, null_fraction + 0.05), 3)
            continue
        if column == data.target:
            columns[column] = infer_target(values, data.is_classification)
            continue
        columns[column] = infer_column(values, False, 0.1, 0.05)
    schema = {"min_rows": max(1, len(frame) // 10), "columns": columns}
    header = f"# Derived from {profile.source} by `make dataset`; review before committing.\n"
    return header + yaml.safe_dump(schema, sort_keys=False, allow_unicode=True)


def switch_defaults(config_text: str, name: str) -> str:
    """``conf/config.yaml`` with its ``data`` and ``schema`` defaults set to ``name``."""
    switched = config_text
    for group in ("data", "schema"):
        pattern = re.compile(rf"^(\s*-\s*{group}\s*:\s*)\S+\s*$", re.MULTILINE)
        if not pattern.search(switched):
            raise Refused(f"conf/config.yaml has no '- {group}: <name>' line in its defaults")
        switched = pattern.sub(rf"\g<1>{name}", switched, count=1)
    return switched


def project_source(path: Path, name: str) -> tuple[Path, str]:
    """Where the project reads the table from, and how it got there.

    The file itself when it is inside the project, else a copy in ``data/raw/``:
    DVC tracks stage inputs only inside the repository.
    """
    resolved, root = path.resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root), f"read in place from {resolved.relative_to(root)}"
    destination = RAW_DIR / f"{name}{path.suffix.lower()}"
    return destination, f"copied to {destination}"


def default_name(source: Path) -> str:
    """A dataset name from the file name: lowercase letters, digits and '_'."""
    name = re.sub(r"[^a-z0-9]+", "_", source.stem.lower()).strip("_")
    return name if name and name[0].isalpha() else f"data_{name}"


def current_params() -> Params:
    """The project's parameters composed from conf/ now (params.yaml may be stale)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "params.yaml"
        compose_params(output=output)
        return load_params(output)


def adopt(source: Path, target: str, name: str | None, options: dict, force: bool) -> Profile:
    """Profile ``source`` and write the configs that make it the project's data."""
    name = name or default_name(source)
    if not NAME_PATTERN.match(name):
        raise Refused(
            f"NAME={name!r} cannot name config files: accepted are lowercase letters, digits "
            "and '_', starting with a letter, at most 64 characters"
        )
    data_path = CONFIG_DIR / "data" / f"{name}.yaml"
    schema_path = CONFIG_DIR / "schema" / f"{name}.yaml"
    existing = [str(path) for path in (data_path, schema_path) if path.exists()]
    if existing and not force:
        raise Refused(
            f"{', '.join(existing)} exist already; pass another NAME=, or FORCE=1 to overwrite"
        )
    frame = read_table(source)
    params = current_params()
    project_path, placed = project_source(source, name)
    profile = profile_table(frame, name, project_path, target, params, options)
    config_path = CONFIG_DIR / "config.yaml"
    config_before = config_path.read_text()
    if placed.startswith("copied"):
        project_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, project_path)
    data_path.write_text(data_file(profile))
    schema_path.write_text(schema_file(profile, frame[frame[target].notna()]))
    config_path.write_text(switch_defaults(config_before, name))
    try:
        current_params()
    except Exception:
        config_path.write_text(config_before)  # the project keeps working on its old data
        raise
    profile.placed = placed
    return profile


def report(profile: Profile) -> list[str]:
    """What was inferred, for people: one line per decision with its reason."""
    lines = [
        f"dataset {profile.name}: {profile.source} ({profile.placed})",
        f"  target {profile.target!r}: {profile.task} ({profile.target_reason})",
    ]
    for column in profile.columns:
        lines.append(f"  {column.name!r}: {column.role} ({column.reason})")
    for what, value, reason in (
        ("slices", profile.slice_column, profile.slice_reason),
        ("time", profile.time_column, profile.time_reason),
        ("sensitive", profile.sensitive_column, profile.sensitive_reason),
    ):
        lines.append(f"  {what}: {value!r} ({reason})")
    lines += [f"  quality bar: {reason}" for reason in profile.quality_reasons]
    lines += [
        f"wrote conf/data/{profile.name}.yaml and conf/schema/{profile.name}.yaml; "
        f"conf/config.yaml now uses them. Correct any inference in those files, then "
        "`make pipeline` (a new lineage of models starts) and `make test`.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Adopt a table as the project's data: ``make dataset SOURCE=... TARGET=...``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--source", required=True, type=Path, help="CSV or Parquet file")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--name", help="dataset name (default: from the file name)")
    parser.add_argument("--slice", help="column to report metrics by, or none")
    parser.add_argument("--time", help="column that orders rows in time, or none")
    parser.add_argument("--sensitive", help="column to compare groups on, or none")
    parser.add_argument("--force", action="store_true", help="overwrite existing configs")
    args = parser.parse_args(argv)
    options = {"slice": args.slice, "time": args.time, "sensitive": args.sensitive}
    try:
        profile = adopt(args.source, args.target, args.name, options, args.force)
    except Refused as refusal:
        raise SystemExit(f"dataset: refused: {refusal}") from None
    print("\n".join(report(profile)))


if __name__ == "__main__":
    sys.exit(main())
