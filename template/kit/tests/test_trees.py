"""Every tree family, compiled to one TreeEnsemble graph, predicts as its own library.

The models are fitted here on small made-up tables (numbers only, some missing), so
each reader is checked apart from any team's data: the classifiers' labels must be
equal and their probabilities close; regressors within 1e-6 of the target's scale,
with targets large enough (up to 1e5) that float32 thresholds would show.
"""

import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)

from mlops_kit.predictor import FLOAT32_INPUTS, RAW_SCORES, inverse_link, onnx_session
from mlops_kit.trees import Unsupported, tree_graph

ROWS, WIDTH = 600, 6


def table(classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Numbers on several scales with a few missing; labels or a target up to 1e5."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(ROWS, WIDTH)) * np.logspace(-3, 4, WIDTH)
    signal = features[:, 0] / 1e-3 + np.sin(features[:, 2]) + features[:, 4] / 1e3
    features[rng.random(features.shape) < 0.05] = np.nan
    if classes == 0:
        return features, 2e4 * signal + 5e4
    cuts = np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1])
    return features, np.digitize(signal, cuts)


def compiled_prediction(estimator, features: np.ndarray, classification: bool) -> np.ndarray:
    """What the service computes: the graph on the matrix, fed and read by its kind."""
    content, kind = tree_graph(estimator, features.shape[1], classification)
    matrix = features.astype(np.float32).astype(np.float64) if kind in FLOAT32_INPUTS else features
    scores = onnx_session(content).run(None, {"X": matrix})[0]
    if kind in RAW_SCORES:
        return inverse_link(scores, classification)
    return scores if classification else scores[:, 0]


CLASSIFIERS = {
    "random_forest": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=30),
    "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=40, verbose=-1, n_jobs=1),
    "xgboost": lambda: xgboost.XGBClassifier(n_estimators=40, n_jobs=1),
}
REGRESSORS = {
    "extra_trees": lambda: ExtraTreesRegressor(n_estimators=20, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(max_iter=30),
    "lightgbm": lambda: lightgbm.LGBMRegressor(n_estimators=40, verbose=-1, n_jobs=1),
    "xgboost": lambda: xgboost.XGBRegressor(n_estimators=40, n_jobs=1),
}


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("family", sorted(CLASSIFIERS))
def test_a_compiled_classifier_gives_its_labels_and_probabilities(
    family: str, classes: int
) -> None:
    features, labels = table(classes)
    if family == "random_forest":  # scikit-learn's forests take no missing values
        features = np.nan_to_num(features)
    estimator = CLASSIFIERS[family]().fit(features, labels)
    probabilities = compiled_prediction(estimator, features, classification=True)
    assert np.array_equal(probabilities.argmax(axis=1), estimator.predict(features))
    assert np.max(np.abs(probabilities - estimator.predict_proba(features))) < 1e-6


@pytest.mark.parametrize("family", sorted(REGRESSORS))
def test_a_compiled_regressor_stays_within_a_millionth_of_the_target_scale(family: str) -> None:
    features, target = table(0)
    if family == "extra_trees":
        features = np.nan_to_num(features)
    estimator = REGRESSORS[family]().fit(features, target)
    values = compiled_prediction(estimator, features, classification=False)
    reference = estimator.predict(features)
    assert np.max(np.abs(values - reference)) / np.max(np.abs(target)) <= 1e-6


@pytest.mark.parametrize(
    ("estimator", "said"),
    [
        (lambda: lightgbm.LGBMRegressor(objective="poisson", n_estimators=5), "'poisson'"),
        (
            lambda: xgboost.XGBRegressor(objective="count:poisson", n_estimators=5),
            "'count:poisson'",
        ),
        (lambda: xgboost.XGBRegressor(booster="gblinear", n_estimators=5), "'gblinear'"),
    ],
)
def test_a_model_the_graph_cannot_express_is_refused_by_name(estimator, said: str) -> None:
    features, target = table(0)
    fitted = estimator().fit(np.nan_to_num(features), np.abs(target))
    with pytest.raises(Unsupported, match=said):
        tree_graph(fitted, WIDTH, classification=False)
