"""The preprocessing the kit trains: the team's derived features, then its encoding.

The feature functions and the encoding are the team's (``src/<package>/features.py``);
this module looks the listed functions up by name and wires them in front of the
team's ``build_preprocessor``.
"""

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

from mlops_kit import team
from mlops_kit.core.params import DataConfig

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

DerivedFeature = Callable[[pd.DataFrame], pd.Series]


def feature_functions(module: ModuleType | None = None) -> dict[str, DerivedFeature]:
    """The public functions the team's features module defines, by name."""
    module = module or team.features()
    return {
        name: value
        for name, value in vars(module).items()
        if callable(value)
        and not name.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
        and name != "build_preprocessor"
    }


def derived_feature(name: str) -> DerivedFeature:
    """Look up the function of the team's ``features.py`` that computes feature ``name``."""
    module = team.features()
    function = getattr(module, name, None)
    if name.startswith("_") or name == "build_preprocessor" or not callable(function):
        known = sorted(feature_functions(module))
        raise KeyError(f"unknown derived feature {name!r}; functions in features.py: {known}")
    return function


def add_derived_features(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Return a copy of ``frame`` with the named derived features added."""
    functions = {name: derived_feature(name) for name in names}
    return frame.assign(**{name: function(frame) for name, function in functions.items()})


def build_preprocessor(data: DataConfig) -> "Pipeline":
    """The team's derived features (step ``derive``), then its encoding (step ``encode``)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    derive = FunctionTransformer(
        add_derived_features, kw_args={"names": list(data.derived_features)}
    )
    return Pipeline([("derive", derive), ("encode", team.features().build_preprocessor(data))])
