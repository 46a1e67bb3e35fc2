"""Writing what a profile decided: the dataset's data and schema files, the defaults switch."""

import re
from typing import Any

import pandas as pd
import yaml

from mlops_kit.dataset.roles import Profile, as_datetime, data_config
from mlops_kit.dataset.table import Refused
from mlops_kit.validation import infer_column, infer_target


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
    lines.append("  # Functions of src/<package>/features.py to compute and feed to the model.")
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
