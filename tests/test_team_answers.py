"""A team's answers: a tracking server and a cloud DVC remote, configured by the environment.

The Compose file is validated against the Compose specification's JSON schema as
vendored by check-jsonschema (PyPI, a dev dependency; ``vendor.compose-spec``), so the
check runs offline.
"""

import configparser
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from helpers.commands import hadolint
from helpers.template import question_choices, render

REMOTE_URLS = {"s3": "s3://", "gcs": "gs://", "azure": "azure://"}
DVC_EXTRAS = {"s3": "dvc[s3]", "gcs": "dvc[gs]", "azure": "dvc[azure]"}
# Variables .env.example must list for each remote: what DVC's client libraries read.
REMOTE_VARIABLES = {
    "s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"],
    "gcs": ["GOOGLE_APPLICATION_CREDENTIALS"],
    "azure": ["AZURE_STORAGE_CONNECTION_STRING"],
    "local": [],
    "none": [],
}


@pytest.fixture(scope="module")
def team_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Server mode with an S3 remote, as a team on MinIO would answer."""
    return render(
        tmp_path_factory.mktemp("team") / "project",
        skip_tasks=True,
        tracking="server",
        tracking_uri="https://mlflow.example.com",
        data_remote="s3",
        data_remote_url="s3://ml-data/dvc",
    )


@pytest.fixture(scope="module", params=question_choices("data_remote"))
def remote_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """One project per data remote choice, with its default URL."""
    project = tmp_path_factory.mktemp("remote") / "project"
    return request.param, render(project, skip_tasks=True, data_remote=request.param)


def dvc_config(project: Path) -> configparser.ConfigParser:
    """.dvc/config as DVC reads it (an INI file)."""
    parser = configparser.ConfigParser()
    parser.read_string((project / ".dvc" / "config").read_text())
    return parser


def dotenv_names(project: Path) -> set[str]:
    """Variable names .env.example sets or shows commented out."""
    text = (project / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def compose_check(compose_file: Path) -> subprocess.CompletedProcess:
    """Validate a Compose file against the Compose specification's JSON schema, offline."""
    check = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(compose_file)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_compose_file_follows_the_compose_specification(team_project: Path) -> None:
    result = compose_check(team_project / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_typo(team_project: Path, tmp_path: Path) -> None:
    # Proof the check bites: a misspelt healthcheck key is refused.
    broken = (team_project / "compose.yaml").read_text().replace("healthcheck:", "heathcheck:", 1)
    (tmp_path / "compose.yaml").write_text(broken)
    assert compose_check(tmp_path / "compose.yaml").returncode != 0


def test_the_stack_pins_its_images_checks_health_and_keeps_data_in_volumes(
    team_project: Path,
) -> None:
    compose = yaml.safe_load((team_project / "compose.yaml").read_text())
    services = compose["services"]
    assert {"mlflow", "postgres", "minio"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert re.search(r":[^:]*[0-9][^:]*$", image) and ":latest" not in image, name
        if service.get("restart") != "no":
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    named = set(compose["volumes"])
    for name in ("postgres", "minio"):
        mounts = {volume.split(":")[0] for volume in services[name]["volumes"]}
        assert mounts <= named, f"{name} mounts a host folder instead of a named volume"
    command = " ".join(services["mlflow"]["command"])
    assert "postgresql" in command and "--artifacts-destination s3://" in command
    bucket_job = " ".join(services["buckets"]["command"])
    assert "stack/ml-data" in bucket_job, "the stack creates the DVC bucket too"


def test_the_stack_has_no_password_of_its_own(team_project: Path) -> None:
    text = (team_project / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${MINIO_ROOT_PASSWORD:?" in text
    assert not re.search(r"PASSWORD: (?!\$\{)", text)
    example = (team_project / ".env.example").read_text()
    assert re.findall(r"^(\w*PASSWORD)=$", example, re.MULTILINE) == [
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_PASSWORD",
    ], "the stack's passwords are left for each team to choose"


def test_the_mlflow_server_image_passes_hadolint(team_project: Path) -> None:
    result = hadolint(team_project, "stack/mlflow-server.Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_server_answer_reaches_the_config_and_env_example(team_project: Path) -> None:
    mlflow_config = yaml.safe_load((team_project / "conf" / "mlflow" / "default.yaml").read_text())
    assert mlflow_config["tracking_uri"] == "https://mlflow.example.com"
    assert (
        "MLFLOW_TRACKING_URI=https://mlflow.example.com"
        in (team_project / ".env.example").read_text()
    )
    makefile = (team_project / "Makefile").read_text()
    for target in ("stack-up:", "stack-down:", "data-push:", "data-pull:", "tracking:"):
        assert target in makefile
    assert "mlflow-ui:" not in makefile, "a team browses its server, not a local file"


def test_the_local_answers_render_no_stack(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True)
    assert not (project / "compose.yaml").exists() and not (project / "stack").exists()
    mlflow_config = yaml.safe_load((project / "conf" / "mlflow" / "default.yaml").read_text())
    assert mlflow_config["tracking_uri"] == "sqlite:///mlflow.db"
    assert "mlflow-ui:" in (project / "Makefile").read_text()


def test_each_data_remote_gets_its_url_extra_and_variables(remote_project) -> None:
    remote, project = remote_project
    config = dvc_config(project)
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["dependency-groups"]
    dvc_requirement = next(d for d in dependencies["train"] if d.startswith("dvc"))
    if remote in REMOTE_URLS:
        assert config["core"]["remote"] == "team"
        # DVC writes section names with quotes: ['remote "team"']
        assert config["'remote \"team\"'"]["url"].startswith(REMOTE_URLS[remote])
        assert dvc_requirement.startswith(DVC_EXTRAS[remote] + ">=")
    else:
        assert dvc_requirement.startswith("dvc>=")
        expected = {"local": "local", "none": None}[remote]
        assert config["core"].get("remote") == expected
    assert set(REMOTE_VARIABLES[remote]) <= dotenv_names(project)
    assert "MLFLOW_TRACKING_URI" in dotenv_names(project)


def test_without_a_remote_data_pull_explains_and_succeeds(tmp_path: Path) -> None:
    # CI calls `make data-pull` whatever the answer; with no remote there is nothing to pull.
    project = render(tmp_path / "project", skip_tasks=True, data_remote="none")
    result = subprocess.run(
        ["make", "--no-print-directory", "data-pull"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no DVC remote" in result.stdout
    assert "data-push:" not in (project / "Makefile").read_text()


def test_secrets_stay_out_of_git(remote_project) -> None:
    _, project = remote_project
    ignored = (project / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    for line in (project / ".env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if not line.startswith("#") and re.search("SECRET|KEY|PASSWORD|CONNECTION_STRING", name):
            assert value == "", f"{name} has a value in .env.example"
