"""The team's estimator: what learns from the preprocessed table.

``conf/model/<name>.yaml`` names a class in ``_target_`` and its parameters; choose
one in ``conf/config.yaml`` (or ``dvc exp run -S model=<name>``). A file there is a
complete new model: any scikit-learn-compatible estimator works, from scikit-learn
or from a package added with ``uv add``. Change ``build_estimator`` only to build
estimators a config file cannot describe (a stack, a calibrated wrapper).

``copier update`` never rewrites this file.
"""

from collections.abc import Mapping
from typing import Any

from sklearn.base import BaseEstimator


def build_estimator(model: Mapping[str, Any], seed: int) -> BaseEstimator:
    """The unfitted estimator ``conf/model/`` describes, seeded for reproducible training.

    Args:
        model: the ``model`` group of ``conf/``: ``_target_`` (a class's import path)
            and the keyword arguments to build it with.
        seed: ``train.seed``; set as ``random_state`` when the estimator takes one.

    Returns:
        The estimator the kit places after the preprocessing of ``features.py``.
    """
    from hydra.utils import instantiate

    estimator: BaseEstimator = instantiate(dict(model))
    if "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    return estimator
