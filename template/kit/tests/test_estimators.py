"""The kit's XGBoost classifier takes a table's own labels and keeps XGBoost's trees."""

import pickle

import numpy as np
from sklearn.base import clone

from mlops_kit.estimators import XGBClassifier
from mlops_kit.predictor import inverse_link, onnx_session
from mlops_kit.trees import tree_graph


def labelled(labels: list) -> tuple[np.ndarray, np.ndarray]:
    """Two informative columns and one label per row, drawn from ``labels``."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(400, 3))
    codes = (features[:, 0] > 0).astype(int) + (features[:, 1] > 0.5).astype(int)
    return features, np.asarray(labels, dtype=object)[codes % len(labels)]


def test_string_labels_are_learned_and_predicted_as_themselves() -> None:
    features, target = labelled(["Gentoo", "Adelie", "Chinstrap"])
    model = XGBClassifier(n_estimators=20, n_jobs=1).fit(features, target)
    assert list(model.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    predicted = model.predict(features)
    assert set(predicted) <= set(target)
    assert np.mean(predicted == target) > 0.9
    assert np.array_equal(model.classes_[model.predict_proba(features).argmax(axis=1)], predicted)


def test_two_labels_of_any_kind_make_a_binary_model() -> None:
    features, target = labelled([True, False])
    model = XGBClassifier(n_estimators=10, n_jobs=1).fit(features, target.astype(bool))
    assert list(model.classes_) == [False, True]
    assert model.predict(features).dtype == bool


def test_the_labels_survive_pickling_and_cloning_refits() -> None:
    features, target = labelled(["no", "yes"])
    model = XGBClassifier(n_estimators=10, n_jobs=1).fit(features, target)
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict(features), model.predict(features))
    refitted = clone(model).fit(features, np.where(target == "no", "stay", "churn"))
    assert list(refitted.classes_) == ["churn", "stay"]


def test_the_compiled_graph_reads_the_same_trees() -> None:
    features, target = labelled(["a", "b", "c"])
    model = XGBClassifier(n_estimators=20, n_jobs=1).fit(features, target)
    content, kind = tree_graph(model, features.shape[1], classification=True)
    assert kind == "xgboost"
    matrix = features.astype(np.float32).astype(np.float64)
    probabilities = inverse_link(onnx_session(content).run(None, {"X": matrix})[0], True)
    assert np.array_equal(model.classes_[probabilities.argmax(axis=1)], model.predict(features))
    assert np.max(np.abs(probabilities - model.predict_proba(features))) < 1e-6
