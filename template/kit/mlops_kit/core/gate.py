"""The promotion gate: thresholds, the margin over the champion, the frozen holdout.

Pure decisions on scores already measured; the evaluate stage measures them and
acts on the ``Decision``.
"""

import math
from dataclasses import dataclass, field

from mlops_kit.core.params import EvaluateConfig


@dataclass
class Decision:
    """Whether the challenger is promoted, and why."""

    promote: bool
    reasons: list[str] = field(default_factory=list)


def threshold_failures(scores: dict, config: EvaluateConfig) -> list[str]:
    """Every threshold the scores miss, as a readable reason."""
    failures = []
    for name, bound in config.thresholds.items():
        value = scores.get(name)
        # NaN (a metric undefined on this data) compares False with any bound: no pass.
        if value is None or not math.isfinite(value):
            failures.append(f"metric {name!r} has a threshold but was not computed")
        elif bound.min is not None and value < bound.min:
            failures.append(f"{name}={value:.4f} is below the minimum {bound.min}")
        elif bound.max is not None and value > bound.max:
            failures.append(f"{name}={value:.4f} is above the maximum {bound.max}")
    return failures


def gain(new: float, old: float, config: EvaluateConfig) -> float:
    """How much better ``new`` is than ``old`` on the primary metric (positive: better)."""
    return new - old if config.greater_is_better else old - new


def decide(
    challenger: dict,
    champion: dict | None,
    config: EvaluateConfig,
    new_lineage: str = "",
    holdout: tuple[dict, dict] | None = None,
) -> Decision:
    """Apply the promotion gate: thresholds, the margin over the champion, the holdout.

    ``new_lineage`` says why the champion was not scored (it learned from other
    data, see ``lineage.Lineage``): the challenger is then judged by the thresholds alone.
    ``holdout`` holds the challenger's and the champion's scores on the frozen
    holdout: a challenger that loses more than ``holdout_margin`` there is not
    promoted, whatever the new test split says (that split came with the new data,
    and bad data brings its own easy exam).
    """
    failures = threshold_failures(challenger, config)
    alone = [f"{new_lineage}: judged by the thresholds alone"] if new_lineage else []
    if failures:
        return Decision(False, [*alone, "challenger misses thresholds: " + "; ".join(failures)])
    if new_lineage:
        return Decision(True, [*alone, "the challenger meets every threshold"])
    if champion is None:
        return Decision(True, ["no champion yet and the challenger meets every threshold"])
    name = config.primary_metric
    improvement = gain(challenger[name], champion[name], config)
    comparison = (
        f"{name}: challenger {challenger[name]:.4f} vs champion {champion[name]:.4f} "
        f"(gain {improvement:+.4f}, required margin {config.promotion_margin})"
    )
    if not (improvement >= config.promotion_margin and improvement > 0):
        return Decision(False, [f"champion stays; {comparison}"])
    if holdout is None:
        return Decision(True, [f"challenger beats the champion; {comparison}"])
    new, old = holdout[0][name], holdout[1][name]
    held = gain(new, old, config)
    on_holdout = (
        f"frozen holdout {name}: challenger {new:.4f} vs champion {old:.4f} "
        f"(gain {held:+.4f}, largest loss allowed {config.holdout_margin})"
    )
    if held < -config.holdout_margin:
        return Decision(False, [f"champion stays; {comparison}; but {on_holdout}"])
    return Decision(True, [f"challenger beats the champion; {comparison}; {on_holdout}"])
