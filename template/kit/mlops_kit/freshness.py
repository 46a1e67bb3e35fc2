"""Staleness: how old the served model is, and a check that fails when it is too old.

``python -m mlops_kit.freshness`` (``make model-age``) reads the bundle the export
stage wrote and exits non-zero when its model was trained longer ago than
``serve.max_model_age_days``, so continuous training can retrain on schedule and a
forgotten model cannot quietly serve for ever. The service exposes the same age
as the ``model_age_seconds`` gauge in ``/metrics``.
"""

from mlops_kit.core.age import SECONDS_PER_DAY, bundle_age_seconds
from mlops_kit.core.params import load_params


def main() -> None:
    """Exit 1 when the exported champion is older than ``serve.max_model_age_days``."""
    params = load_params()
    age_days = bundle_age_seconds(params.paths.bundle) / SECONDS_PER_DAY
    limit = params.serve.max_model_age_days
    verdict = "too old: retrain it" if age_days > limit else "fresh enough"
    print(f"model-age: {params.paths.bundle} is {age_days:.1f} days old (limit {limit}): {verdict}")
    if age_days > limit:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
