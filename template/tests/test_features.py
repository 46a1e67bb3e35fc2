"""Feature code: derived features, imputation, encoding of unseen categories."""

import numpy as np
import pandas as pd
import pytest

from mlops_kit.core.params import Params
from mlops_kit.features import (
    add_derived_features,
    build_preprocessor,
    derived_feature,
)

pytestmark = pytest.mark.ml_test("data-7")


def configured_derived_features(params: Params) -> list[str]:
    """The derived features in conf/data/; a test of them is skipped, saying why, without."""
    if not params.data.derived_features:
        pytest.skip("no data.derived_features in conf/data/: no derived feature to test")
    return params.data.derived_features


def test_every_configured_derived_feature_is_defined(params: Params) -> None:
    for name in configured_derived_features(params):
        assert callable(derived_feature(name))


def test_derived_features_are_added_without_touching_the_input(
    raw_data: pd.DataFrame, params: Params
) -> None:
    configured_derived_features(params)
    before = raw_data.copy()
    enriched = add_derived_features(raw_data, params.data.derived_features)
    pd.testing.assert_frame_equal(raw_data, before)
    for name in params.data.derived_features:
        assert name in enriched
        assert enriched[name].notna().mean() > 0.9


def test_an_unknown_derived_feature_names_the_known_ones(raw_data: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="unknown derived feature 'no_such_feature'; functions in"):
        add_derived_features(raw_data, ["no_such_feature"])


def test_preprocessing_yields_finite_numbers_even_with_missing_values(
    train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    train, test = train_test
    columns = params.data.input_columns
    preprocessor = build_preprocessor(params.data).fit(train[columns])
    # Whatever the data holds, one row misses every input: the imputers must fill it.
    inputs = test[columns].astype({name: float for name in params.data.numeric_features})
    inputs.iloc[0] = np.nan
    encoded = preprocessor.transform(inputs)
    assert encoded.shape[0] == len(test)
    assert np.isfinite(encoded).all()


def test_an_unseen_category_is_encoded_as_all_zeros(
    train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    if not params.data.categorical_features:
        pytest.skip("no data.categorical_features in conf/data/: nothing to encode")
    train, test = train_test
    columns = params.data.input_columns
    preprocessor = build_preprocessor(params.data).fit(train[columns])
    unseen = test[columns].head(1).copy()
    for column in params.data.categorical_features:
        unseen[column] = "never-seen"
    encoded = preprocessor.transform(unseen)
    assert np.isfinite(encoded).all()
    one_hot = preprocessor.named_steps["encode"].output_indices_["categorical"]
    assert not encoded[:, one_hot].any(), "an unseen category switched on a known one"
