"""Bad batches of the configured data cannot pass validation or win the promotion gate.

Each corruption is applied to this project's own table (conf/ and data, not the
demo's): the table checks of the validate stage must name it, against a reference
profile of the real table. Shuffled labels leave no trace in the table's
statistics; they are caught by the gate, like a rigged test split is, on the
frozen holdout.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlops_kit import reference
from mlops_kit.core.gate import decide, gain
from mlops_kit.core.params import Params
from mlops_kit.core.strict_json import dumps
from mlops_kit.data import (
    split,
    without,
)
from mlops_kit.evaluate import score
from mlops_kit.train import fit

Corruption = Callable[[pd.DataFrame, Params], pd.DataFrame]


@pytest.fixture(scope="module")
def profile(validated_data: pd.DataFrame, params: Params) -> dict:
    """The reference profile of the configured data, as a first run records it."""
    recorded = reference.profile(validated_data, params.data, params.table_checks, "first run")
    return json.loads(dumps(recorded))


def checks_failed(frame: pd.DataFrame, profile: dict, params: Params) -> set[str]:
    return {
        finding.check
        for finding in reference.check(frame, profile, params.data, params.table_checks)
    }


def one_row_repeated(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    return pd.concat([frame.iloc[[len(frame) // 2]]] * len(frame), ignore_index=True)


def one_row_with_another_label(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    row = one_row_repeated(frame, params)
    target = params.data.target
    others = frame.loc[frame[target] != row[target].iloc[0], target]
    row[target] = others.iloc[0]
    return row


def labels_shuffled(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The labels permuted among the rows: every table statistic stays as it was."""
    shuffled = frame.copy()
    target = params.data.target
    shuffled[target] = np.random.default_rng(0).permutation(shuffled[target].to_numpy())
    return shuffled


def rarest_class_dropped(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    target = params.data.target
    if not params.data.is_classification:
        # A regression target's counterpart: the upper half of its values is gone.
        return frame[frame[target] <= frame[target].median()]
    return frame[frame[target] != frame[target].value_counts().index[-1]]


def first_varying_feature_constant(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    limit = params.table_checks.max_top_value_share
    for column in params.data.input_columns:
        if frame[column].value_counts(normalize=True, dropna=False).iloc[0] <= limit:
            frame = frame.copy()
            frame[column] = frame[column].mode().iloc[0]
            return frame
    pytest.skip("every input feature is near-constant already: none can be made constant")


def table_ten_times(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    return pd.concat([frame] * 10, ignore_index=True)


# Each corruption, and the checks that must name it (at least one of each set).
CORRUPTIONS: list[tuple[Corruption, set[str]]] = [
    (one_row_repeated, {"duplicate rows"}),
    (one_row_with_another_label, {"duplicate rows"}),
    (rarest_class_dropped, {"class share", "target quantile"}),
    (first_varying_feature_constant, {"near-constant feature", "distribution shift"}),
    (table_ten_times, {"duplicate rows"}),
    (table_ten_times, {"row count"}),
]


@pytest.mark.ml_test("data-1", "monitor-2")
def test_the_accepted_table_passes_the_checks_against_its_own_profile(
    validated_data: pd.DataFrame, profile: dict, params: Params
) -> None:
    assert checks_failed(validated_data, profile, params) == set()


@pytest.mark.ml_test("data-1", "monitor-2")
@pytest.mark.parametrize(
    ("corrupt", "named"), CORRUPTIONS, ids=[f"{c.__name__}-{min(n)}" for c, n in CORRUPTIONS]
)
def test_a_corrupted_batch_fails_the_table_checks_naming_the_problem(
    validated_data: pd.DataFrame, profile: dict, params: Params, corrupt: Corruption, named: set
) -> None:
    corrupted = corrupt(validated_data.copy(), params)
    assert checks_failed(corrupted, profile, params) & named, named


def test_half_of_the_accepted_rows_passes_the_checks(
    validated_data: pd.DataFrame, profile: dict, params: Params
) -> None:
    """A random half of the accepted rows is a fair new batch: no check may fire on it."""
    half = validated_data.sample(frac=0.5, random_state=1)
    assert checks_failed(half, profile, params) == set()


def test_accepting_new_data_records_it_with_its_reason_and_keeps_the_history(
    validated_data: pd.DataFrame, params: Params, tmp_path: Path
) -> None:
    paths = params.paths.model_copy(
        update={"reference": tmp_path / "profile.json", "holdout": tmp_path / "holdout.parquet"}
    )
    local = params.model_copy(update={"paths": paths})
    findings, said = reference.compare(validated_data, local)
    assert findings == [] and "first run" in said
    grown = table_ten_times(validated_data, params)
    findings, _ = reference.compare(grown, local)
    assert {finding.check for finding in findings} >= {"row count"}
    before = reference.read(paths.reference)
    reference.record(grown, local, "merged ten deliveries", previous=before)
    after = reference.read(paths.reference)
    assert after["reason"] == "merged ten deliveries" and after["rows"] == len(grown)
    assert after["history"][-1]["rows"] == len(validated_data)
    assert reference.compare(grown, local)[0] == []
    # Strict JSON: a strict parser reads the profile, missing values included.
    json.loads(paths.reference.read_text(), parse_constant=pytest.fail)


def rigged_batch(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The real rows with systematically wrong labels: a batch whose own test split
    rewards learning them.

    Classification: each class takes the next one's label (binary: swapped);
    regression: the target mirrored around its midrange. A model of this batch is
    wrong wherever the real one is right, however weak the real signal: it wins the
    batch's own split and loses on the real one.
    """
    target = params.data.target
    rigged = frame.copy()
    if params.data.is_classification:
        classes = sorted(frame[target].dropna().unique())
        rotation = dict(zip(classes, [*classes[1:], classes[0]], strict=True))
        rigged[target] = frame[target].map(rotation)
    else:
        values = frame[target].astype(float)
        rigged[target] = values.max() + values.min() - values
    return rigged


@pytest.mark.ml_test("monitor-7", "infra-4")
def test_a_challenger_that_wins_its_own_rigged_split_loses_on_the_frozen_holdout(
    validated_data: pd.DataFrame,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    trained_model: Pipeline,
    params: Params,
) -> None:
    """The gate with the table checks out of the way: a batch of wrong labels trains a
    challenger that beats the champion on that batch's own test split. On the
    frozen holdout (the real test split) it is worse by more than the holdout margin,
    so it is not promoted. A champion that a model of wrong labels matches on the
    holdout within that margin could not be defended by it: the test says so."""
    rigged = rigged_batch(validated_data, params)
    rigged_train, rigged_test = split(rigged, params.data, params.train)
    challenger = fit(rigged_train, params)
    on_new = score(challenger, rigged_test, params), score(trained_model, rigged_test, params)
    config = params.evaluate
    without_holdout = decide(*on_new, config)
    assert without_holdout.promote, without_holdout.reasons  # the rigged split alone fools it
    holdout = train_test[1]
    on_holdout = score(challenger, holdout, params), score(trained_model, holdout, params)
    decision = decide(*on_new, config, holdout=on_holdout)
    metric = config.primary_metric
    loss = -gain(on_holdout[0][metric], on_holdout[1][metric], config)
    assert loss > config.holdout_margin, (
        f"a model of wrong labels scores {metric} {on_holdout[0][metric]:.4f} on the holdout, "
        f"within the holdout margin {config.holdout_margin} of the champion's "
        f"{on_holdout[1][metric]:.4f}: the holdout cannot defend this champion; lower "
        "evaluate.holdout_margin or bring data with more signal"
    )
    assert not decision.promote
    assert "frozen holdout" in decision.reasons[0], decision.reasons


@pytest.mark.ml_test("monitor-7", "infra-4")
def test_a_challenger_trained_on_shuffled_labels_is_not_promoted(
    validated_data: pd.DataFrame,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    trained_model: Pipeline,
    profile: dict,
    params: Params,
) -> None:
    """Shuffled labels keep every table statistic (the checks above cannot see them);
    the gate must refuse the model they train, on its own split or on the holdout."""
    shuffled = labels_shuffled(validated_data, params)
    assert checks_failed(shuffled, profile, params) == set()
    new_train, new_test = split(shuffled, params.data, params.train)
    challenger = fit(new_train, params)
    holdout = train_test[1]
    decision = decide(
        score(challenger, new_test, params),
        score(trained_model, new_test, params),
        params.evaluate,
        holdout=(score(challenger, holdout, params), score(trained_model, holdout, params)),
    )
    assert not decision.promote, decision.reasons


def test_holdout_rows_never_reach_training(
    train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params
) -> None:
    train, holdout = train_test
    batch = pd.concat([train, holdout.head(5)], ignore_index=True)
    kept = without(batch, holdout)
    assert len(kept) == len(without(train, holdout))
    assert kept.merge(holdout, how="inner").empty


def test_a_reference_that_dvc_lock_records_but_the_disk_lacks_is_never_replaced_silently(
    validated_data: pd.DataFrame,
    params: Params,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clone that did not pull the DVC outputs must not record the batch at hand
    (perhaps the corrupted one) as the reference the checks compare with."""
    missing = tmp_path / "profile.json"
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "stages:\n  validate:\n    outs:\n"
        f"    - path: {missing}\n      md5: 0123456789abcdef0123456789abcdef\n"
    )
    monkeypatch.setattr(reference, "LOCK_FILE", lock)
    paths = params.paths.model_copy(update={"reference": missing})
    with pytest.raises(reference.ReferenceLost, match="make data-pull"):
        reference.compare(validated_data, params.model_copy(update={"paths": paths}))
    assert not missing.exists()
