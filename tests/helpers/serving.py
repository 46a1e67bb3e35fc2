"""A generated project's own `make serve`, on a free loopback port."""

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from helpers.commands import developer_environment
from helpers.network import free_port, post_json, running, wait_until_ready
from helpers.template import uv_executable

# How long a generated service may take to answer /readyz.
STARTUP_SECONDS = 120


@contextlib.contextmanager
def make_serve(project: Path, log: str, startup_seconds: float = STARTUP_SECONDS) -> Iterator[str]:
    """The project's own `make serve` on a free loopback port (its URL), logging its
    predictions to ``log`` (relative to the project); stopped afterwards, whatever happens."""
    port = free_port()
    environment = {
        **developer_environment(),
        "BENTOML_HOME": str(project / ".bentoml-test"),
        "PREDICTION_LOG": str(project / log),
    }
    command = ["make", "--no-print-directory", "serve", f"PORT={port}", f"UV={uv_executable()}"]
    with running(command, project, environment) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, startup_seconds, process)
        yield url


def served_answers(
    project: Path, bodies: list[bytes], log: str = "logs/own-data-test.jsonl"
) -> list[tuple[int, dict]]:
    """Start the project's service (`make serve`), post each body to /predict, stop it.

    The service logs the predictions to ``log`` (relative to the project).
    """
    with make_serve(project, log) as url:
        return [post_json(f"{url}/predict", body) for body in bodies]


def champion_prediction(project: Path) -> str:
    """What the project's champion predicts for its example request
    (models/champion/example_request.json), computed in the project's own environment
    without the service: the answer a served prediction must equal."""
    return subprocess.run(
        [
            str(project / ".venv" / "bin" / "python"),
            "-c",
            "import json, joblib, pandas as pd\n"
            "model = joblib.load('models/champion/model.joblib')\n"
            "row = json.load(open('models/champion/example_request.json'))\n"
            "print(model.predict(pd.DataFrame([row]))[0])",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
