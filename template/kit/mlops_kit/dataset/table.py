"""Reading a table and refusing the ones the project cannot learn from.

Each refusal says what is wrong and what is accepted.
"""

import difflib
from pathlib import Path

import pandas as pd

from mlops_kit.data import DataError, load_source

# Fewer rows than this leave too little for a test split and cross-validation.
MIN_ROWS = 50

# A classification target needs this many rows of each class (stratified splits).
MIN_ROWS_PER_CLASS = 5

# Integer or text columns with at most this many distinct values are categories.
MAX_CATEGORIES = 20

MAX_NAME_LENGTH = 100


class Refused(ValueError):
    """The table or an option cannot be adopted; the message says why and what is accepted."""


def read_table(path: Path) -> pd.DataFrame:
    """The table at ``path``; unreadable files are refused with the reason (``load_source``)."""
    try:
        return load_source(path)
    except DataError as error:
        raise Refused(str(error)) from None


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
