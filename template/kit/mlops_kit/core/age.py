"""How old a model is: its training time against now, as the bundle records it."""

import json
from datetime import UTC, datetime
from pathlib import Path

SECONDS_PER_DAY = 86_400


def model_age_seconds(trained_at: str, now: datetime | None = None) -> float:
    """Seconds between ``trained_at`` (ISO-8601 with a time zone) and ``now``."""
    moment = now or datetime.now(tz=UTC)
    return (moment - datetime.fromisoformat(trained_at)).total_seconds()


def bundle_age_seconds(bundle: Path) -> float:
    """Age of the model in an exported bundle, from its metadata."""
    metadata = json.loads((bundle / "metadata.json").read_text())
    return model_age_seconds(metadata["trained_at"])
