"""Labels read off the probabilities are the labels the classifier's own predict gives."""

import importlib

import numpy as np
import pytest

from mlops_kit.evaluate import ARGMAX_CLASSIFIERS, predicts_argmax


def classifier(path: str) -> type:
    """The class ``ARGMAX_CLASSIFIERS`` names by ``module.QualName``."""
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path", sorted(ARGMAX_CLASSIFIERS))
def test_every_listed_classifier_still_lives_where_it_is_named(path: str) -> None:
    # A release that moves the class would silently lose the saving: this says so.
    assert predicts_argmax(classifier(path)())


@pytest.mark.parametrize("path", sorted(ARGMAX_CLASSIFIERS))
def test_the_most_probable_class_is_the_predicted_one(path: str) -> None:
    rng = np.random.default_rng(3)
    # Few distinct rows: many ties between classes, where argmax takes the first.
    features = rng.integers(0, 3, size=(600, 2)).astype(float)
    target = np.asarray(["gamma", "alpha", "beta"], dtype=object)[rng.integers(0, 3, size=600)]
    kind = classifier(path)
    settings = {"verbose": -1, "n_estimators": 5} if path.startswith("lightgbm") else {}
    model = kind(**settings).fit(features, target)
    by_probability = model.classes_[np.argmax(model.predict_proba(features), axis=1)]
    assert np.array_equal(by_probability, model.predict(features))
