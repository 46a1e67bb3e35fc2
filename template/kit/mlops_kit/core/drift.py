"""Distribution shift between a reference sample and a newer one, per column.

One implementation for every place that compares distributions: the validation
stage (a new batch of training data against the reference profile, see
``reference``) and the monitoring jobs (serving traffic against the training
split). Numeric columns get a two-sample Kolmogorov-Smirnov test and PSI on the
reference's quantile bins; categorical ones a chi-square test of homogeneity and
PSI on category frequencies. A column drifted when the change is both large (PSI)
and significant (p-value).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlops_kit.core.params import DataConfig, DriftConfig

# Category label of missing values, so a change in missingness shows as a category.
MISSING = "(missing)"
# Pseudo-count added to every bin before PSI (additive smoothing, see ``psi``).
SMOOTHING_COUNT = 0.5


def numbers(values: pd.Series) -> pd.Series:
    """A column as floats; anything that is not a number becomes missing."""
    return pd.to_numeric(values, errors="coerce").astype(float)


def category_label(value: Any) -> str:
    """One value as a text label, missing ones as ``MISSING``.

    A whole number reads the same as an integer or a float: JSON's 1 and 1.0, or an
    integer column and its float copy, are one category.
    """
    if pd.isna(value):
        return MISSING
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_labels(values: pd.Series) -> pd.Series:
    """A column as text labels (see ``category_label``).

    Each distinct value is labelled once: a million rows hold a handful of categories.
    """
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    labels = np.array([*(category_label(value) for value in distinct), MISSING], dtype=object)
    return pd.Series(labels[codes], index=values.index)


def psi(reference_counts: np.ndarray, serving_counts: np.ndarray) -> float:
    """Population stability index between two count vectors over the same bins."""
    # Half a count added to every bin keeps the logarithms finite and stops an empty
    # bin of a small sample (a rare category not seen yet) from passing for drift.
    reference = np.asarray(reference_counts, dtype=float) + SMOOTHING_COUNT
    serving = np.asarray(serving_counts, dtype=float) + SMOOTHING_COUNT
    reference, serving = reference / reference.sum(), serving / serving.sum()
    return float(np.sum((serving - reference) * np.log(serving / reference)))


def quantile_edges(reference: pd.Series, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (fewer when values repeat)."""
    present = reference.dropna().to_numpy(dtype=float)
    return np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def binned_counts(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Count of ``values`` in each bin between ``edges``, plus a last bin for missing ones."""
    present = values.dropna().to_numpy(dtype=float)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return np.append(counts, values.isna().sum())


def category_counts(reference: pd.Series, serving: pd.Series) -> pd.DataFrame:
    """Counts of each category (missing included) in both columns, one row per category."""
    counts = pd.DataFrame(
        {
            "reference": category_labels(reference).value_counts(),
            "serving": category_labels(serving).value_counts(),
        }
    )
    return counts.fillna(0).sort_index()


@dataclass
class FeatureDrift:
    """How one column's serving distribution differs from its reference."""

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float
    psi: float
    drifted: bool


def is_drift(index: float, p_value: float, config: DriftConfig) -> bool:
    """A change both large (PSI) and significant (p-value) is drift.

    PSI alone flags sampling noise in small logs; a test alone flags negligible
    changes in large ones. Without a test (a serving column entirely missing)
    PSI decides alone.
    """
    significant = bool(np.isnan(p_value) or p_value < config.p_value_min)
    return index > config.psi_max and significant


def numeric_drift(name: str, reference: pd.Series, serving: pd.Series, config: DriftConfig):
    """Two-sample Kolmogorov-Smirnov test and PSI on the reference's quantile bins."""
    reference, serving = numbers(reference), numbers(serving)
    edges = quantile_edges(reference, config.bins)
    index = psi(binned_counts(reference, edges), binned_counts(serving, edges))
    statistic, p_value = np.nan, np.nan
    if reference.notna().any() and serving.notna().any():
        result = stats.ks_2samp(reference.dropna(), serving.dropna())
        statistic, p_value = float(result.statistic), float(result.pvalue)
    drifted = is_drift(index, p_value, config)
    return FeatureDrift(name, "numeric", "KS", statistic, p_value, index, drifted)


def categorical_drift(name: str, reference: pd.Series, serving: pd.Series, config: DriftConfig):
    """Chi-square test of homogeneity and PSI on category frequencies."""
    counts = category_counts(reference, serving)
    index = psi(counts["reference"].to_numpy(), counts["serving"].to_numpy())
    statistic, p_value = 0.0, 1.0
    if len(counts) > 1:
        result = stats.chi2_contingency(counts.to_numpy().T)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    drifted = is_drift(index, p_value, config)
    return FeatureDrift(name, "categorical", "chi-square", statistic, p_value, index, drifted)


def drift_table(
    reference: pd.DataFrame | Mapping[str, pd.Series],
    serving: pd.DataFrame,
    data: DataConfig,
    config: DriftConfig,
) -> pd.DataFrame:
    """One row per input feature: test, statistic, p-value, PSI and whether it drifted.

    ``reference`` holds each feature's reference values: a table, or one series per
    feature when their lengths differ (stand-ins rebuilt from a profile).
    """
    rows = [
        numeric_drift(column, reference[column], serving[column], config)
        for column in data.numeric_features
    ] + [
        categorical_drift(column, reference[column], serving[column], config)
        for column in data.categorical_features
    ]
    return pd.DataFrame([row.__dict__ for row in rows])
