"""The reference profile: what accepted data looks like, and table checks against it.

Column rules (``validation``) judge each value; a table can break no rule and still
be useless: one row repeated, a class gone, a feature stuck at one value, the file
appended to itself. The validate stage therefore compares each new batch, as a
whole, with the profile of the data last accepted (``paths.reference``):

- the share of duplicate rows;
- the label: each reference class keeps a minimum share (regression: the target's
  quantiles stay in place);
- each feature's distribution (PSI with a KS or chi-square test: ``drift``, the
  code the monitoring jobs use);
- features that became constant or nearly so;
- the row count.

Thresholds live in ``conf/table_checks/``. The first run on a dataset (or on data
of another lineage: other target, task, columns or source) records the profile
from that data. A deliberate change of data is accepted with
``python -m mlops_kit.accept --reason "..."`` (``make accept-data``),
which records a new profile, keeps the old ones' dates and reasons, and drops the
frozen holdout so the next ``split`` freezes one of the accepted data.
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlops_kit.core import strict_json
from mlops_kit.core.drift import category_labels, drift_table
from mlops_kit.core.params import DataConfig, Params, TableChecksConfig

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Rows of the stand-in sample of a categorical feature (see ``reference_column``).
CATEGORY_SAMPLE = 1000
LOCK_FILE = Path("dvc.lock")


class ReferenceLost(Exception):
    """dvc.lock records a reference profile that is not on disk."""


@dataclass
class Finding:
    """One table check the data failed, with the measured value and its limit."""

    check: str
    column: str
    value: float
    limit: float
    message: str


def lineage(data: DataConfig) -> dict:
    """What makes two tables the same dataset: task, target, input columns, source."""
    return {
        "task": data.task,
        "target": data.target,
        "columns": data.input_columns,
        "source": str(data.source),
    }


def duplicate_fraction(frame: pd.DataFrame, data: DataConfig) -> float:
    """Share of rows (inputs and label) that repeat an earlier row."""
    if frame.empty:
        return 0.0
    # One 64-bit hash per row: several times faster than comparing the columns.
    hashes = pd.util.hash_pandas_object(frame[[*data.input_columns, data.target]], index=False)
    return float(hashes.duplicated().mean())


def top_value_share(values: pd.Series) -> float:
    """The share of rows holding the column's most common value (missing is a value)."""
    if values.empty:
        return 0.0
    codes, _ = pd.factorize(values, use_na_sentinel=False)
    return float(np.bincount(codes).max() / len(codes))


def top_value_shares(frame: pd.DataFrame, data: DataConfig) -> dict[str, float]:
    """Per input column, the share of rows holding its most common value."""
    return {column: top_value_share(frame[column]) for column in data.input_columns}


def label_profile(target: pd.Series, data: DataConfig) -> dict:
    """Class shares (keys as text), or the target's quantiles for regression."""
    if data.is_classification:
        shares = category_labels(target).value_counts(normalize=True)
        return {"classes": {str(label): float(share) for label, share in shares.items()}}
    values = pd.to_numeric(target, errors="coerce").dropna()
    return {"quantiles": {str(q): float(values.quantile(q)) for q in QUANTILES}}


def numeric_distribution(values: pd.Series, points: int) -> dict:
    """A numeric column as its quantile function at ``points`` even steps, and its missing share.

    Evenly spaced quantiles keep the profile small (a wide table's stays well below a
    megabyte in git) and stand in for a sample of that size in the KS test and PSI.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    present = numbers.dropna()
    steps = np.linspace(0.0, 1.0, min(points, max(len(present), 1)))
    quantiles = present.quantile(steps).tolist() if len(present) else []
    return {"quantiles": quantiles, "missing": float(numbers.isna().mean())}


def categorical_distribution(values: pd.Series) -> dict:
    """A categorical column as the share of each category (missing is one, see ``drift``)."""
    shares = category_labels(values).value_counts(normalize=True)
    return {"shares": {str(label): float(share) for label, share in shares.items()}}


def profile(frame: pd.DataFrame, data: DataConfig, config: TableChecksConfig, reason: str) -> dict:
    """The reference profile of ``frame``: its statistics and each feature's distribution."""
    distributions = {
        column: numeric_distribution(frame[column], config.quantiles)
        for column in data.numeric_features
    } | {column: categorical_distribution(frame[column]) for column in data.categorical_features}
    return {
        "lineage": lineage(data),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": reason,
        "rows": len(frame),
        "duplicate_fraction": duplicate_fraction(frame, data),
        "top_value_shares": top_value_shares(frame, data),
        "label": label_profile(frame[data.target], data),
        "distributions": distributions,
        "history": [],
    }


def reference_column(distribution: dict) -> pd.Series:
    """A stand-in sample of a feature, rebuilt from its recorded distribution.

    Numeric: the recorded quantiles, plus as many missing values as the missing share
    asks for. Categorical: each category repeated in proportion to its share.
    """
    if "quantiles" in distribution:
        values, missing = distribution["quantiles"], distribution["missing"]
        gaps = round(missing * len(values) / (1 - missing)) if missing < 1 else len(values) or 1
        return pd.Series([*values, *[np.nan] * gaps], dtype=float)
    counts = {
        label: round(share * CATEGORY_SAMPLE) for label, share in distribution["shares"].items()
    }
    return pd.Series([label for label, count in counts.items() for _ in range(count)])


def reference_columns(reference: dict, data: DataConfig) -> dict[str, pd.Series]:
    """Each feature's stand-in sample (their lengths differ: no table, no padding)."""
    return {
        column: reference_column(reference["distributions"][column])
        for column in data.input_columns
    }


def percent(share: float) -> str:
    """A share as a percentage with one decimal."""
    return f"{100 * share:.1f}%"


def duplicate_findings(frame, reference, data, config) -> list[Finding]:
    """Duplicate rows beyond the reference's own share."""
    share, before = duplicate_fraction(frame, data), reference["duplicate_fraction"]
    limit = before + config.max_duplicate_increase
    if share <= limit:
        return []
    return [
        Finding(
            "duplicate rows",
            "<table>",
            share,
            limit,
            f"{percent(share)} of the rows repeat another row (reference {percent(before)}, "
            f"allowed up to {percent(limit)}: table_checks.max_duplicate_increase)",
        )
    ]


def label_findings(frame, reference, data, config) -> list[Finding]:
    """Reference classes that (nearly) vanished, or target quantiles that moved."""
    now = label_profile(frame[data.target], data)
    findings = []
    if data.is_classification:
        for label, before in reference["label"]["classes"].items():
            share, limit = now["classes"].get(label, 0.0), before * config.min_class_share_ratio
            if share < limit:
                findings.append(
                    Finding(
                        "class share",
                        data.target,
                        share,
                        limit,
                        f"class {label!r} of {data.target!r} holds {percent(share)} of the rows "
                        f"(reference {percent(before)}, at least {percent(limit)} required: "
                        "table_checks.min_class_share_ratio)",
                    )
                )
        return findings
    before = reference["label"]["quantiles"]
    scale = (before["0.95"] - before["0.05"]) or 1.0
    for q, value in now["quantiles"].items():
        shift = abs(value - before[q]) / scale
        if shift > config.max_quantile_shift:
            findings.append(
                Finding(
                    "target quantile",
                    data.target,
                    shift,
                    config.max_quantile_shift,
                    f"the {float(q):.0%} quantile of {data.target!r} moved from {before[q]:.4g} "
                    f"to {value:.4g}, {shift:.2f} of the reference's 5%-95% range (allowed "
                    f"{config.max_quantile_shift}: table_checks.max_quantile_shift)",
                )
            )
    return findings


def constant_findings(frame, reference, data, config) -> list[Finding]:
    """Features that became near-constant."""
    findings = []
    limit = config.max_top_value_share
    for column, share in top_value_shares(frame, data).items():
        before = reference["top_value_shares"].get(column, 1.0)
        if share > limit >= before:
            findings.append(
                Finding(
                    "near-constant feature",
                    column,
                    share,
                    limit,
                    f"feature {column!r} holds one value in {percent(share)} of the rows "
                    f"(reference {percent(before)}, allowed {percent(limit)}: "
                    "table_checks.max_top_value_share)",
                )
            )
    return findings


def drift_findings(frame, reference, data, config) -> list[Finding]:
    """Features whose distribution shifted from the reference."""
    table = drift_table(reference_columns(reference, data), frame, data, config.drift)
    drifted = table[table["drifted"]]
    if len(drifted) <= config.drift.max_drifted_features:
        return []
    return [
        Finding(
            "distribution shift",
            row.feature,
            float(row.psi),
            config.drift.psi_max,
            f"feature {row.feature!r} shifted from the reference: PSI {row.psi:.3f} "
            f"(allowed {config.drift.psi_max}), {row.test} p-value {row.p_value:.2g} "
            f"(below {config.drift.p_value_min}: table_checks.drift)",
        )
        for row in drifted.itertuples()
    ]


def row_count_findings(frame, reference, data, config) -> list[Finding]:
    """A row count far from the reference's."""
    rows, before = len(frame), reference["rows"]
    ratio = max(rows / before, before / rows) if rows and before else float("inf")
    if ratio <= config.max_row_count_ratio:
        return []
    return [
        Finding(
            "row count",
            "<table>",
            ratio,
            config.max_row_count_ratio,
            f"{rows} rows against {before} in the reference, a change of {ratio:.1f}x "
            f"(allowed {config.max_row_count_ratio}x: table_checks.max_row_count_ratio)",
        )
    ]


CHECKS = (duplicate_findings, label_findings, constant_findings, drift_findings, row_count_findings)


def check(
    frame: pd.DataFrame, reference: dict, data: DataConfig, config: TableChecksConfig
) -> list[Finding]:
    """Every table check ``frame`` fails against ``reference`` (none: it may be used)."""
    return [finding for rule in CHECKS for finding in rule(frame, reference, data, config)]


def read(path: Path) -> dict | None:
    """The recorded profile, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def record(frame: pd.DataFrame, params: Params, reason: str, previous: dict | None = None) -> dict:
    """Write the profile of ``frame`` as the reference, keeping earlier ones' history."""
    new = profile(frame, params.data, params.table_checks, reason)
    if previous is not None:
        earlier = {key: previous.get(key) for key in ("recorded_at", "reason", "rows", "lineage")}
        new["history"] = [*previous.get("history", []), earlier]
    strict_json.write(params.paths.reference, new)
    return new


def locked_md5(path: Path) -> str | None:
    """The md5 that dvc.lock records for ``path`` as a stage output, or None."""
    try:
        lock = yaml.safe_load(LOCK_FILE.read_text()) or {}
    except (FileNotFoundError, yaml.YAMLError):
        return None
    for stage in (lock.get("stages") or {}).values():
        for output in stage.get("outs") or []:
            if Path(str(output.get("path", ""))) == path:
                return output.get("md5")
    return None


def compare(frame: pd.DataFrame, params: Params) -> tuple[list[Finding], str]:
    """Table checks of ``frame`` against the reference, and a line saying what was done.

    With no reference for this data's lineage yet, ``frame`` becomes the reference
    (first run on a dataset) and nothing is checked. A reference that dvc.lock
    records but the disk lacks (a clone that did not pull) is never replaced
    silently: ``ReferenceLost`` says how to fetch it, or to accept this data.
    """
    path, reference = params.paths.reference, read(params.paths.reference)
    if reference is None and (md5 := locked_md5(path)):
        raise ReferenceLost(
            f"dvc.lock records a reference profile at {path} (md5 {md5}) that is not here: "
            "`make data-pull` fetches it from the DVC remote; to make this data the "
            'reference instead, `make accept-data REASON="..."`'
        )
    if reference is not None and reference.get("lineage") == lineage(params.data):
        findings = check(frame, reference, params.data, params.table_checks)
        when = f"recorded {reference['recorded_at']}: {reference['reason']}"
        return findings, f"{len(CHECKS)} table checks against the reference ({when})"
    why = "first run on this data" if reference is None else "new lineage: " + describe(reference)
    record(frame, params, why, previous=reference)
    params.paths.holdout.unlink(missing_ok=True)
    return [], f"reference profile recorded from these {len(frame)} rows ({why}) -> {path}"


def describe(reference: dict) -> str:
    """The lineage a reference belongs to, in words."""
    old = reference.get("lineage") or {}
    return (
        f"the reference described {old.get('target')} ({old.get('task')}) from "
        f"{old.get('source')} with {len(old.get('columns') or [])} input columns"
    )


def as_report(findings: list[Finding]) -> list[dict]:
    """Findings as the validation report lists them."""
    return [asdict(finding) for finding in findings]
