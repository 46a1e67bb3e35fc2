"""The promotion gate: thresholds first, then the margin over the champion, then the holdout."""

import pytest

from mlops_kit.core.gate import decide
from mlops_kit.core.params import EvaluateConfig


def gate(greater_is_better: bool = True, margin: float = 0.01) -> EvaluateConfig:
    return EvaluateConfig(
        primary_metric="m",
        greater_is_better=greater_is_better,
        thresholds={"m": {"min": 0.5} if greater_is_better else {"max": 0.5}},
        promotion_margin=margin,
        holdout_margin=0.05,
    )


@pytest.mark.ml_test("infra-4", "monitor-7")
def test_the_first_model_is_promoted_when_it_meets_the_thresholds() -> None:
    assert decide({"m": 0.8}, None, gate()).promote


@pytest.mark.ml_test("infra-4", "monitor-7")
def test_a_model_missing_a_threshold_is_never_promoted() -> None:
    decision = decide({"m": 0.4}, None, gate())
    assert not decision.promote
    assert "below the minimum 0.5" in decision.reasons[0]


@pytest.mark.parametrize(
    ("challenger", "champion", "greater_is_better", "promoted"),
    [
        (0.90, 0.80, True, True),
        (0.805, 0.80, True, False),  # better, but by less than the margin
        (0.70, 0.80, True, False),
        (0.20, 0.30, False, True),  # an error metric: lower is better
        (0.30, 0.20, False, False),
    ],
)
def test_the_challenger_must_beat_the_champion_by_the_margin(
    challenger: float, champion: float, greater_is_better: bool, promoted: bool
) -> None:
    decision = decide({"m": challenger}, {"m": champion}, gate(greater_is_better))
    assert decision.promote is promoted, decision.reasons
    assert ("champion stays" in decision.reasons[0]) is not promoted


@pytest.mark.ml_test("infra-4", "monitor-7")
@pytest.mark.parametrize(
    ("on_holdout", "greater_is_better", "promoted"),
    [
        ((0.76, 0.80), True, True),  # a loss within the holdout margin (0.05)
        ((0.70, 0.80), True, False),
        ((0.34, 0.30), False, True),
        ((0.40, 0.30), False, False),  # an error metric that grew past the margin
    ],
)
def test_a_challenger_that_loses_on_the_frozen_holdout_is_not_promoted(
    on_holdout: tuple[float, float], greater_is_better: bool, promoted: bool
) -> None:
    """It beats the champion on the new test split; the frozen holdout decides."""
    new = (0.9, 0.8) if greater_is_better else (0.2, 0.3)
    holdout = ({"m": on_holdout[0]}, {"m": on_holdout[1]})
    decision = decide({"m": new[0]}, {"m": new[1]}, gate(greater_is_better), holdout=holdout)
    assert decision.promote is promoted, decision.reasons
    assert "frozen holdout" in decision.reasons[0]


@pytest.mark.ml_test("infra-4", "monitor-7")
def test_a_metric_that_could_not_be_computed_never_passes_its_threshold() -> None:
    decision = decide({"m": float("nan")}, None, gate())
    assert not decision.promote
    assert "not computed" in decision.reasons[0]
