"""The prediction log: sampled predictions, one JSON line per predicted record.

The monitoring jobs read it (drift, skew, online metrics); each line carries the
request id the caller got back, so labels that arrive later can be joined to it.
"""

import atexit
import json
import os
import queue
import random
import threading
from pathlib import Path

from mlops_kit.core import strict_json


def line_of(entry: dict) -> str:
    """One entry as strict JSON (a NaN becomes null: the monitoring jobs parse strictly)."""
    try:
        return json.dumps(entry, allow_nan=False, default=str)
    except ValueError:
        return strict_json.dumps(entry, default=str)


class PredictionLog:
    """Appends sampled predictions to a JSON Lines file, one line per record.

    Request handlers only put lines on a queue, so no file I/O happens on the
    event loop. One thread per worker process writes them: each drained group of
    lines goes to the file in a single ``write`` on a descriptor opened with
    ``O_APPEND``, so lines from concurrent requests, and from several workers
    sharing the file, neither interleave nor overwrite each other.
    """

    def __init__(self, path: Path, sample_rate: float) -> None:
        self.sample_rate = sample_rate
        # Opened here, so a log that cannot be written stops the worker at start-up.
        path.parent.mkdir(parents=True, exist_ok=True)
        self.descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self.write_forever, daemon=True)
        self.writer.start()
        # Lines still queued when the worker stops are written, not dropped.
        atexit.register(self.close)

    def record(self, entries: list[dict]) -> None:
        """Queue the sampled share of ``entries`` for writing."""
        for entry in entries:
            if self.sample_rate >= 1.0 or random.random() < self.sample_rate:
                self.lines.put(line_of(entry))

    def write_forever(self) -> None:
        """Write queued lines until ``close`` queues the end marker."""
        try:
            while True:
                lines = [self.lines.get()]
                while not self.lines.empty():
                    lines.append(self.lines.get_nowait())
                done = None in lines
                text = "".join(f"{line}\n" for line in lines if line is not None)
                if text:
                    os.write(self.descriptor, text.encode())
                if done:
                    return
        finally:
            os.close(self.descriptor)

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self.lines.put(None)
        self.writer.join(timeout=10)


def prediction_log_path(settings: dict) -> Path:
    """The log file: ``PREDICTION_LOG`` when set, else ``serve.prediction_log.path``."""
    return Path(os.environ.get("PREDICTION_LOG") or settings["prediction_log"]["path"])
