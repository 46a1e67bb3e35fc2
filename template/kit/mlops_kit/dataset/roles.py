"""What each column of a table is for: a feature, left out, the time, a slice, a group.

Roles come from the values and the names; every decision carries its reason.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_kit.core.params import DataConfig
from mlops_kit.dataset.table import MAX_CATEGORIES, Refused

# Text columns whose distinct values exceed this share of the rows are free text.
FREE_TEXT_SHARE = 0.5

# Columns missing in more than this share of rows are left out.
MAX_MISSING_SHARE = 0.5

ID_NAME = re.compile(r"(^|[\s_-])(id|uuid|guid|key|index)$|^unnamed: ?\d+$", re.IGNORECASE)

TIME_NAME = re.compile(r"(date|time|year|month|day|timestamp|period)", re.IGNORECASE)

SENSITIVE_NAME = re.compile(
    r"(^|[\s_-])(sex|gender|age|race|ethnicity|ethnic|religion|nationality|marital|disability)"
    r"($|[\s_-])",
    re.IGNORECASE,
)

NONE_WORDS = {"none", "null", "no", ""}


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
    column: pd.Series,
    target: pd.Series,
    is_classification: bool,
    seed: int,
    discrete: bool = False,
) -> float:
    """Mutual information (nats) between one feature and the target, missing rows dropped.

    The same estimate the "every feature is beneficial" check (data-2) applies.
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    known = column.notna() & target.notna()
    values, target = column[known], target[known]
    if values.empty:
        return 0.0
    categorical = (
        discrete or not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    )
    encoded = pd.factorize(values)[0] if categorical else values.to_numpy(dtype=float)
    estimate = mutual_info_classif if is_classification else mutual_info_regression
    labels = target.astype(str) if is_classification else target.astype(float)
    scores = estimate(
        encoded.reshape(-1, 1), labels, discrete_features=categorical, random_state=seed
    )
    return float(scores[0])


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
