"""The quality bar of a table: what the configured model scores on it, cross-validated.

Thresholds and tolerances are in the metrics' own units, which depend on the
target, so they are measured per dataset instead of taken from the demo.
"""

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from mlops_kit.core.params import DataConfig, Params
from mlops_kit.dataset.roles import Profile

CV_FOLDS = 5


def floor_to(value: float, step: float = 0.01) -> float:
    """``value`` rounded down to a multiple of ``step``."""
    return round(math.floor(value / step + 1e-9) * step, 6)


def ceil_to(value: float, step: float = 0.01) -> float:
    """``value`` rounded up to a multiple of ``step``."""
    return round(math.ceil(value / step - 1e-9) * step, 6)


def ceil_significant(value: float, digits: int = 3) -> float:
    """``value`` rounded up to ``digits`` significant digits."""
    if value <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(value)) - digits + 1)
    return round(math.ceil(value / scale - 1e-9) * scale, 10)


def model_for(params: Params, data: DataConfig):
    """The configured model (conf/model/), built for ``data``."""
    from mlops_kit.train import build_model

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

    One fit per fold serves all three; each fold's fit time is kept too.
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
    fit_seconds = []
    for train_rows, test_rows in splitter.split(features, target):
        fit_x, fit_y = features.iloc[train_rows], target.iloc[train_rows]
        held_x, held_y = features.iloc[test_rows], target.iloc[test_rows]
        start = time.perf_counter()
        fitted = clone(model).fit(fit_x, fit_y)
        fit_seconds.append(time.perf_counter() - start)
        predicted = fitted.predict(held_x)
        oof.iloc[test_rows] = predicted
        constant = clone(baseline).fit(fit_x, fit_y).predict(held_x)
        for name, value in fold_metrics(held_y, predicted, data.is_classification).items():
            scores.setdefault(name, []).append(value)
        for name, value in fold_metrics(held_y, constant, data.is_classification).items():
            base.setdefault(name, []).append(value)
    # Filled fold by fold into an object column: give it the labels' own type back.
    oof = oof.infer_objects() if data.is_classification else oof.astype(float)
    return {
        "folds": {name: np.array(values) for name, values in scores.items()},
        "baseline": {name: float(np.mean(values)) for name, values in base.items()},
        "predictions": oof,
        "fit_seconds": fit_seconds,
    }


def slice_floor(profile: Profile, frame: pd.DataFrame, predicted: pd.Series, data) -> dict:
    """Out-of-fold quality per slice, the worst slice first: what slices can be asked."""
    from sklearn import metrics

    from mlops_kit.evaluate import groups_of

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


def slice_spread(profile: Profile, frame: pd.DataFrame, predicted: pd.Series, data, label: str):
    """Standard deviation of one slice's metric over a test split's worth of its rows.

    A slice of the test split holds about a quarter of the slice's rows; on a skewed
    target its RMSE swings with the few large values it happens to draw, so its
    threshold must allow that swing, measured here by resampling, not a fixed ratio.
    """
    from sklearn import metrics

    from mlops_kit.evaluate import groups_of

    rows = groups_of(frame, profile.slice_column, data.slice_bins)[label]
    truth, guess = rows[data.target].to_numpy(), predicted.loc[rows.index].to_numpy()
    score = metrics.accuracy_score if data.is_classification else metrics.root_mean_squared_error
    rng = np.random.default_rng(0)
    size = max(len(truth) // 4, 1)
    draws = [rng.integers(0, len(truth), size=size) for _ in range(200)]
    return float(np.std([score(truth[index], guess[index]) for index in draws]))


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
            label = min(slices, key=slices.get)
            worst = slices[label]
            spread = slice_spread(profile, frame, measured["predictions"], data, label)
            bound = floor_to(worst - max(0.1, 3 * spread), 0.05)
            slice_bound = {"accuracy": {"min": max(bound, 0.0)}}
            text = f"accuracy {worst:.3f} ± {spread:.3f} on the worst slice"
        else:
            label = max(slices, key=slices.get)
            worst = slices[label]
            spread = slice_spread(profile, frame, measured["predictions"], data, label)
            slice_bound = {"rmse": {"max": ceil_significant(max(worst * 1.3, worst + 3 * spread))}}
            text = f"RMSE {worst:.3g} ± {spread:.3g} on the worst slice"
        quality["ml_test_score"] = {"slices": {"thresholds": slice_bound}}
        reasons.append(f"slices of {profile.slice_column}: {text}; thresholds {slice_bound}")
    if data.is_classification:
        # Differences below the folds' own spread are noise: the checks that compare two
        # models on the test split (tuning, simpler model, staleness, groups) allow it.
        spread = float(np.std(measured["folds"]["f1_macro"]))
        tolerance = max(0.02, ceil_to(spread))
        quality["evaluate"]["holdout_margin"] = tolerance
        quality.setdefault("ml_test_score", {}).update(
            {
                "tuning": {"tolerance": tolerance},
                "simpler_model_tolerance": tolerance,
                "staleness": {"max_loss": max(0.05, ceil_to(3 * spread))},
                "inclusion": {"max_gap": max(0.1, ceil_to(3 * spread))},
            }
        )
        reasons.append(
            f"comparisons allow the folds' spread of f1_macro ({spread:.3f}): holdout, tuning and "
            f"simpler model {tolerance}, staleness {max(0.05, ceil_to(3 * spread))}, groups "
            f"{max(0.1, ceil_to(3 * spread))}"
        )
    else:
        rmse = float(np.mean(measured["folds"]["rmse"]))
        # As for classifiers, differences within the folds' spread are noise.
        spread = float(np.std(measured["folds"]["rmse"]))
        tolerance = ceil_significant(max(0.05 * rmse, spread))
        quality["evaluate"]["holdout_margin"] = tolerance
        quality.setdefault("ml_test_score", {}).update(
            {
                "tuning": {"tolerance": tolerance},
                "simpler_model_tolerance": tolerance,
                "staleness": {"max_loss": ceil_significant(0.5 * rmse)},
                "inclusion": {"max_gap": ceil_significant(rmse)},
            }
        )
        # The online job widens it by the spread it measures at the rows it gets.
        quality["monitor"] = {"online": {"tolerance": {"rmse": tolerance}}}
        reasons.append(
            f"tolerances in the target's units, from its RMSE {rmse:.3g}: holdout, tuning and "
            f"simpler model {tolerance}, staleness {ceil_significant(0.5 * rmse)}, groups "
            f"{ceil_significant(rmse)}, online at least {tolerance}"
        )
    profile.quality = quality
