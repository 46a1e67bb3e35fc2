"""The generated dev container: the Dev Containers CLI reads it, and the image it names
builds with podman and holds what `make setup` needs.

The CLI (npm `@devcontainers/cli`) is installed once per run into .tools/. Its
read-configuration resolves devcontainer.json as an editor would; its build builds the
image the file names, with podman, from the same locally made base images as the serving
image (helpers/container_images.py). The built image keeps its name between runs, like
the base images: podman's layer cache then makes the next build take seconds.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.container_images import PODMAN_ENV, ensure_base_images, podman
from helpers.npm_tools import checkout_tools, npm_tool
from helpers.template import available_python_version, render

CLI_VERSION = "0.89.0"
STAGE = re.compile(r"^FROM\s+\S+\s+AS\s+(\S+)", re.IGNORECASE | re.MULTILINE)
LOOPBACK_PORT = re.compile(r"^[\"']?127\.0\.0\.1:(\d+):\d+")


@pytest.fixture(scope="session")
def devcontainer_cli() -> Path:
    """The Dev Containers CLI from npm, installed once into .tools/."""
    tools = npm_tool("@devcontainers/cli", CLI_VERSION, checkout_tools("devcontainer"))
    return tools / "node_modules" / ".bin" / "devcontainer"


def devcontainer(cli: Path, *arguments: str, timeout: int = 60) -> dict:
    """Run the CLI with podman as its engine; the JSON it prints. Fails the test with its log."""
    result = subprocess.run(
        [str(cli), *arguments, "--docker-path", "podman"],
        env=PODMAN_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"devcontainer {arguments[0]} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def read_configuration(cli: Path, project: Path) -> dict:
    """devcontainer.json as the CLI resolves it for ``project``."""
    return devcontainer(cli, "read-configuration", "--workspace-folder", str(project))


def make_variable(project: Path, expression: str) -> str:
    """The value of a Makefile ``expression`` (such as ``$(PORT)``) in ``project``."""
    rule = f"print-value: ; @echo {expression}"
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "--eval", rule, "print-value"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def compose_schema_errors(*files: Path) -> str:
    """check-jsonschema's findings for compose files against the Compose Specification."""
    checker = Path(sys.executable).parent / "check-jsonschema"
    arguments = ["--builtin-schema", "vendor.compose-spec", *map(str, files)]
    result = subprocess.run([str(checker), *arguments], capture_output=True, text=True)
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_the_cli_reads_the_default_dev_container_built_from_the_dockerfile(
    devcontainer_cli: Path, tmp_path: Path
) -> None:
    project = render(tmp_path / "project", skip_tasks=True)
    read = read_configuration(devcontainer_cli, project)
    config, config_dir = read["configuration"], project / ".devcontainer"
    build = config["build"]
    assert (config_dir / build["dockerfile"]).resolve() == project / "Dockerfile"
    assert (config_dir / build["context"]).resolve() == project
    assert build["target"] in STAGE.findall((project / "Dockerfile").read_text())
    assert config["postCreateCommand"] == "make setup"
    # The ports `make serve` and `make mlflow-ui` listen on, as the Makefile says.
    ui_recipe = subprocess.run(
        ["make", "-n", "mlflow-ui"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    mlflow_ui = re.search(r"--port (\d+)", ui_recipe)
    assert mlflow_ui, ui_recipe
    assert config["forwardPorts"] == [int(make_variable(project, "$(PORT)")), int(mlflow_ui[1])]
    workspace = read["workspace"]["workspaceFolder"]
    assert config["remoteEnv"]["PATH"].startswith(f"{workspace}/.venv/bin:")


def test_with_a_team_stack_the_dev_container_starts_it_and_shares_its_addresses(
    devcontainer_cli: Path, tmp_path: Path
) -> None:
    project = render(tmp_path / "project", skip_tasks=True, tracking="server", data_remote="s3")
    read = read_configuration(devcontainer_cli, project)
    config, config_dir = read["configuration"], project / ".devcontainer"
    files = [(config_dir / name).resolve() for name in config["dockerComposeFile"]]
    assert files[0] == project / "compose.yaml"  # paths in the others are relative to its folder
    assert all(path.is_file() for path in files), files
    assert not compose_schema_errors(*files)
    stack = yaml.safe_load(files[0].read_text())["services"]
    services = {}
    for path in files:
        services |= yaml.safe_load(path.read_text())["services"]
    dev = services[config["service"]]
    assert config["service"] not in stack
    # The dev service is the Dockerfile's dev stage, the same image the default config builds.
    context = (project / dev["build"]["context"]).resolve()
    dockerfile = context / dev["build"]["dockerfile"]
    assert dockerfile == project / "Dockerfile"
    assert dev["build"]["target"] in STAGE.findall(dockerfile.read_text())
    assert f"{project}:{config['workspaceFolder']}" in [
        f"{(project / volume.split(':')[0]).resolve()}:{volume.split(':')[1]}"
        for volume in dev["volumes"]
    ]
    assert set(dev["depends_on"]) <= set(stack)
    # On the host's network, the tracking server the project is configured for (.env's
    # example, conf/mlflow/) is the stack's MLflow, published on loopback.
    assert dev["network_mode"] == "host"
    uri = re.search(r"^MLFLOW_TRACKING_URI=(.*)$", (project / ".env.example").read_text(), re.M)
    published = {
        int(match[1]) for port in stack["mlflow"]["ports"] if (match := LOOPBACK_PORT.match(port))
    }
    assert re.fullmatch(r"http://127\.0\.0\.1:(\d+)", uri[1])[1] in map(str, published)
    assert config["postCreateCommand"] == "make setup"
    assert config["shutdownAction"] == "none"


@pytest.mark.e2e
@pytest.mark.container
def test_the_dev_container_image_builds_with_podman_and_holds_what_make_setup_needs(
    devcontainer_cli: Path, tmp_path: Path
) -> None:
    python = available_python_version()
    project = render(tmp_path / "project", skip_tasks=True, python_version=python)
    ensure_base_images(project / "Dockerfile")  # made locally once per machine
    image = f"localhost/copier-mlops-devcontainer:python{python}"
    built = devcontainer(
        devcontainer_cli,
        "build",
        "--workspace-folder",
        str(project),
        "--image-name",
        image,
        timeout=900,
    )
    assert built["outcome"] == "success", built
    # The project mounted read-only, as the image's user, the non-root one the config
    # names: the Makefile finds the image's uv (not a private copy), and uv finds this
    # project's Python without downloading one.
    config = read_configuration(devcontainer_cli, project)["configuration"]
    workspace = "/workspaces/project"
    probe = podman(
        "run",
        "--rm",
        "-v",
        f"{project}:{workspace}:ro",
        "-w",
        workspace,
        image,
        "sh",
        "-c",
        "id -un; make --no-print-directory which-uv; uv python find; git --version; curl --version",
    ).stdout.splitlines()
    assert probe[0] == config["containerUser"] == config["remoteUser"] != "root", probe
    uv_image = re.search(r"ghcr\.io/astral-sh/uv:(\S+)", (project / "Dockerfile").read_text())
    assert probe[1] == "uv" and probe[2].startswith(f"uv {uv_image[1]} "), probe
    assert probe[3] == f"/usr/local/bin/python{python}", probe
    assert probe[4].startswith("git version ") and probe[5].startswith("curl "), probe
