"""What ``/metrics`` adds to BentoML's request metrics.

Every label takes a bounded set of values (known routes and "other", input columns
and "other", model aliases), so no caller can grow the metrics without limit.
"""

import threading

import bentoml
import psutil

from mlops_kit.core.age import model_age_seconds

# How often each worker refreshes its resource gauges between scrapes.
RESOURCE_REFRESH_SECONDS = 5.0

REJECTED = bentoml.metrics.Counter(
    name="rejected_requests",
    documentation="Requests refused before reaching the model, by endpoint and status",
    labelnames=["endpoint", "status"],
)
PREDICTIONS = bentoml.metrics.Counter(
    name="predictions",
    documentation="Predicted records by the alias of the model that predicted them (shadow too)",
    labelnames=["model_alias"],
)
SCHEMA_VIOLATIONS = bentoml.metrics.Counter(
    name="schema_violations",
    documentation="Schema violations in refused requests, by input column (unknown fields: other)",
    labelnames=["field"],
)
MODEL_AGE = bentoml.metrics.Gauge(
    name="model_age_seconds",
    documentation="Seconds since the served model's training run started",
    multiprocess_mode="max",
)
# Not process_*: prometheus_client's own process collector owns those names, and
# BentoML's multiprocess /metrics leaves it out.
RESIDENT_MEMORY = bentoml.metrics.Gauge(
    name="service_resident_memory_bytes",
    documentation="Resident memory of the service's worker processes",
    multiprocess_mode="livesum",
)
CPU_SECONDS = bentoml.metrics.Gauge(
    name="service_cpu_seconds",
    documentation="CPU time (user and system) used by the service's worker processes",
    multiprocess_mode="livesum",
)


def refresh_resource_gauges(trained_at: str) -> None:
    """Set the model-age and process resource gauges to their current values."""
    MODEL_AGE.set(model_age_seconds(trained_at))
    process = psutil.Process()
    times = process.cpu_times()
    RESIDENT_MEMORY.set(process.memory_info().rss)
    CPU_SECONDS.set(times.user + times.system)


def keep_resource_gauges_current(trained_at: str) -> None:
    """Refresh this worker's gauges every few seconds, in a daemon thread."""

    def refresh_forever() -> None:
        while True:
            refresh_resource_gauges(trained_at)
            threading.Event().wait(RESOURCE_REFRESH_SECONDS)

    threading.Thread(target=refresh_forever, daemon=True).start()
