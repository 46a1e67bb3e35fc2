"""A model's age, from the training time its bundle records."""

import json
from datetime import UTC, datetime, timedelta

from mlops_kit.core.age import SECONDS_PER_DAY, bundle_age_seconds, model_age_seconds


def test_the_age_is_the_time_since_training() -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    trained = (now - timedelta(days=2, hours=6)).isoformat()
    assert model_age_seconds(trained, now) == (2 * 24 + 6) * 3600


def test_a_bundle_age_is_read_from_its_metadata(tmp_path) -> None:
    trained = (datetime.now(tz=UTC) - timedelta(days=3)).isoformat()
    (tmp_path / "metadata.json").write_text(json.dumps({"trained_at": trained}))
    assert 2.99 < bundle_age_seconds(tmp_path) / SECONDS_PER_DAY < 3.01
