"""The generated Dockerfile really builds and really serves, with podman and no registry.

The image is the one the CD workflow builds when run locally (the `serving_image`
fixture): built once for both tests. Base images are made locally
(helpers/container_images.py) under the exact names the Dockerfile's FROM lines use,
once per machine: podman keeps them between runs.
"""

import time

import pytest

from helpers.container_images import podman
from helpers.network import free_port, post_json, wait_until_ready
from helpers.serving import champion_prediction

pytestmark = [pytest.mark.e2e, pytest.mark.container]

READY_SECONDS = 180


def test_the_image_builds_runs_as_non_root_and_serves_the_champion(serving_image: dict) -> None:
    project = serving_image["project"]
    name, port = f"served-{time.time_ns()}", free_port()
    try:
        podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:3000", serving_image["image"])
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, READY_SECONDS)
        example = (project / "models" / "champion" / "example_request.json").read_bytes()
        status, answer = post_json(f"{url}/predict", example)
        assert status == 200, answer
        assert str(answer["prediction"]) == champion_prediction(project)
        assert answer["model_alias"] == "champion"
        assert podman("exec", name, "id", "-u").stdout.strip() != "0"
        assert podman("healthcheck", "run", name, check=False).returncode == 0
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
