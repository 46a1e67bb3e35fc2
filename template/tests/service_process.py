"""The prediction service as the tests run it: a test bundle, and `bentoml serve` on loopback."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlops_kit.bundle import CHALLENGER_FILE, MODEL_FILE
from mlops_kit.compiled import compile_model
from mlops_kit.core.lineage import input_columns_of
from mlops_kit.core.params import Params
from mlops_kit.export import (
    bundle_metadata,
    example_request,
    input_schema,
    reference_record,
    write_bundle,
)

STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_test_bundle(
    model: Pipeline,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    folder: Path,
    trained_at: str,
    challenger: tuple[Pipeline, dict] | None = None,
) -> Path:
    """A bundle as the export stage writes it (compiled models, hashes), without MLflow.

    The champion is version 7; ``challenger`` is a fitted model and its identity.
    """
    train, test = train_test
    columns = params.data.input_columns
    compiled = compile_model(
        model, input_schema(columns, params), params.data.task, stem=Path(MODEL_FILE).stem
    )
    files = dict(compiled.files)
    identity = None
    if challenger is not None:
        challenger_model, identity = challenger
        schema = input_schema(input_columns_of(challenger_model, params), params)
        stem = Path(CHALLENGER_FILE).stem
        challenger_compiled = compile_model(challenger_model, schema, params.data.task, stem=stem)
        files.update(challenger_compiled.files)
        identity = {**identity, "runtime": challenger_compiled.runtime}
    metadata = bundle_metadata(
        model,
        params,
        "7",
        "test",
        trained_at,
        reference_record(train, columns),
        challenger=identity,
        runtime=compiled.runtime,
    )
    write_bundle(
        model,
        metadata,
        example_request(test, columns),
        folder,
        challenger=challenger[0] if challenger else None,
        compiled=files,
    )
    return folder


def start_service(bundle: Path, prediction_log: Path) -> tuple[subprocess.Popen, str]:
    """Start `bentoml serve` on ``bundle`` on a free loopback port; return it and its URL."""
    port = free_port()
    env = {
        **os.environ,
        "MODEL_BUNDLE": str(bundle),
        "PREDICTION_LOG": str(prediction_log),
        # Its own home: services sharing one also share their /metrics counts.
        "BENTOML_HOME": str(prediction_log.parent / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "mlops_kit.serving.service:ModelService",
    ]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_until_ready(process: subprocess.Popen, url: str) -> None:
    """Return when the service answers /readyz; fail if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited during start-up"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the service was not ready within {STARTUP_SECONDS} s")


def stop(process: subprocess.Popen) -> None:
    """Stop a started service and its workers."""
    os.killpg(process.pid, 15)
    process.wait(timeout=30)
