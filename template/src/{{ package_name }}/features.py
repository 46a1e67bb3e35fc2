"""Preprocessing: derived features, imputation, scaling and encoding.

The derived features themselves are the team's code, in ``derived_features.py``;
this module only wires the ones listed in ``conf/data/`` into the model.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from . import derived_features
from .config import DataConfig

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

DerivedFeature = Callable[[pd.DataFrame], pd.Series]


def derived_feature(name: str) -> DerivedFeature:
    """Look up the function of ``derived_features.py`` that computes feature ``name``."""
    function = getattr(derived_features, name, None)
    if name.startswith("_") or not callable(function):
        known = sorted(
            attribute
            for attribute, value in vars(derived_features).items()
            if callable(value)
            and not attribute.startswith("_")
            and value.__module__ == derived_features.__name__
        )
        raise KeyError(
            f"unknown derived feature {name!r}; functions in derived_features.py: {known}"
        )
    return function


def add_derived_features(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Return a copy of ``frame`` with the named derived features added."""
    functions = {name: derived_feature(name) for name in names}
    return frame.assign(**{name: function(frame) for name, function in functions.items()})


def build_preprocessor(data: DataConfig) -> "Pipeline":
    """Derive features, impute and scale numbers, impute and one-hot encode categories."""
    # scikit-learn is loaded here, not with the module: the service computes derived
    # features with the functions above and would otherwise load it (2-3 s) for nothing.
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    # A column with no value at all in a batch (a sensor down for the whole export) is
    # kept, filled with 0, rather than dropped: dropped, it leaves the scaler or the
    # encoder no column (training crashes) and the model one input short of the schema.
    numeric = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
    )
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent", keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    encode = ColumnTransformer(
        [
            ("numeric", numeric, [*data.numeric_features, *data.derived_features]),
            ("categorical", categorical, data.categorical_features),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    derive = FunctionTransformer(
        add_derived_features, kw_args={"names": list(data.derived_features)}
    )
    return Pipeline([("derive", derive), ("encode", encode)])
