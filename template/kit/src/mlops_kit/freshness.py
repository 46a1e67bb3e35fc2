"""Staleness: how old the served model is, and a check that fails when it is too old.

``python -m mlops_kit.freshness`` (``make model-age``) reads the bundle the export
stage wrote and exits non-zero when its model was trained longer ago than
``serve.max_model_age_days``, so continuous training can retrain on schedule and a
forgotten model cannot quietly serve for ever. The service exposes the same age
as the ``model_age_seconds`` gauge in ``/metrics``.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

from .config import load_params

SECONDS_PER_DAY = 86_400


def model_age_seconds(trained_at: str, now: datetime | None = None) -> float:
    """Seconds between ``trained_at`` (ISO-8601 with a time zone) and ``now``."""
    moment = now or datetime.now(tz=UTC)
    return (moment - datetime.fromisoformat(trained_at)).total_seconds()


def bundle_age_seconds(bundle: Path) -> float:
    """Age of the model in an exported bundle, from its metadata."""
    metadata = json.loads((bundle / "metadata.json").read_text())
    return model_age_seconds(metadata["trained_at"])


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
