"""A team moves from one laptop to shared servers by configuration alone.

The stack runs for real on loopback: PostgreSQL (runs and registry of an MLflow
tracking server), an S3 store (the server's artifacts and the DVC remote) and
``mlflow server``. A project rendered in server mode, with an S3 DVC remote, gets
the stack's addresses from its ``.env`` only; no file of it is edited. The stack
and the project are made once per session; every server is stopped at the end,
also when a test fails.
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers.commands import GIT_IDENTITY, developer_environment, run_make
from helpers.network import free_port, stop_process, wait_until
from helpers.team_stack import S3_KEYS, S3_REGION, TeamStack
from helpers.template import COPIER_CONFIG, available_python_version, render

pytestmark = [pytest.mark.e2e, pytest.mark.team]

DVC_BUCKET = "dvc-remote"
# What the answers say; the test overrides the tracking server through .env, as a
# user whose server moved would.
TRACKING_ANSWER = "http://mlflow.team.invalid:5000"
SWEEP = [20, 40]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """PostgreSQL, SeaweedFS and an MLflow server; the server may still be starting."""
    root = tmp_path_factory.mktemp("team-stack")
    mlflow_version = COPIER_CONFIG["stack_images"]["default"]["mlflow"].rsplit(":v", 1)[1]
    servers = TeamStack(root, mlflow_version)
    try:
        servers.start_postgres()
        servers.start_object_store(["mlflow", DVC_BUCKET])
        servers.start_mlflow()
        yield servers
    finally:
        servers.stop()


def project_environment(project: Path, stack: TeamStack) -> dict[str, str]:
    """What a team member's shell holds: the project's tools first, the stack's settings."""
    environment = developer_environment()
    return {
        **environment,
        **GIT_IDENTITY,
        **dotenv(stack),
        "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{environment['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def dotenv(stack: TeamStack) -> dict[str, str]:
    """The .env a team member fills in from .env.example for this stack."""
    return {
        "MLFLOW_TRACKING_URI": stack.tracking_uri,
        **S3_KEYS,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_ENDPOINT_URL_S3": stack.s3_endpoint,
    }


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    """Run a command; fail the test with its output."""
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


@pytest.fixture(scope="session")
def team_project(stack: TeamStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered in server mode, set up, with one pipeline run, committed."""
    project = render(
        tmp_path_factory.mktemp("team") / "project",
        python_version=available_python_version(),
        tracking="server",
        tracking_uri=TRACKING_ANSWER,
        data_remote="s3",
        data_remote_url=f"s3://{DVC_BUCKET}/store",
    )
    assert "MLFLOW_TRACKING_URI" in (project / ".env.example").read_text()
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv(stack).items()))
    run_make(project, "setup")  # the MLflow server starts meanwhile
    stack.wait_for_mlflow()
    run_make(project, "pipeline")
    environment = project_environment(project, stack)
    run(["git", "add", "--all"], project, environment)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "first model"], project, environment)
    return project


def ask_mlflow(project: Path, stack: TeamStack, script: str, *args: str) -> dict:
    """Run ``script`` with the project's MLflow client against the server; its JSON answer."""
    environment = project_environment(project, stack)
    output = run(["python", "-c", script, *args], project, environment)
    return json.loads(output.strip().splitlines()[-1])


def registration(project: Path) -> dict:
    """The run and model version the train stage recorded."""
    return json.loads((project / "models" / "registration.json").read_text())


def md5(path: Path) -> str:
    """Content hash of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_stack_is_configured_by_the_environment_alone(
    team_project: Path, stack: TeamStack
) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=team_project, capture_output=True, text=True, check=True
    ).stdout.split()
    assert ".env" not in tracked and ".env.example" in tracked
    machine_settings = [stack.tracking_uri, stack.s3_endpoint, S3_KEYS["AWS_SECRET_ACCESS_KEY"]]
    for name in tracked:
        path = team_project / name
        if path.is_file() and path.stat().st_size < 1_000_000:
            text = path.read_bytes().decode(errors="ignore")
            assert not [setting for setting in machine_settings if setting in text], name


def test_runs_and_model_versions_are_in_the_tracking_server(
    team_project: Path, stack: TeamStack
) -> None:
    recorded = registration(team_project)
    found = ask_mlflow(
        team_project,
        stack,
        "import json, sys, mlflow\n"
        "client = mlflow.MlflowClient()\n"
        "run = client.get_run(sys.argv[1])\n"
        "champion = client.get_model_version_by_alias(sys.argv[2], 'champion')\n"
        "print(json.dumps({'status': run.info.status, 'metrics': run.data.metrics,\n"
        "  'tracking': mlflow.get_tracking_uri(), 'champion': champion.version}))",
        recorded["run_id"],
        recorded["model_name"],
    )
    assert found["tracking"] == stack.tracking_uri
    assert found["status"] == "FINISHED"
    assert str(found["champion"]) == recorded["version"]
    assert any(name.startswith("test_") for name in found["metrics"])
    # The server keeps them in PostgreSQL, not in a file beside the project.
    assert (
        stack.psql(f"select status from runs where run_uuid = '{recorded['run_id']}'") == "FINISHED"
    )
    versions = stack.psql(
        f"select version from model_versions where name = '{recorded['model_name']}'"
    )
    assert recorded["version"] in versions.split()
    assert not (team_project / "mlflow.db").exists()


def test_model_artifacts_are_in_the_bucket(team_project: Path, stack: TeamStack) -> None:
    listing = stack.s3().list_objects_v2(Bucket="mlflow", Prefix="artifacts/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert any(key.endswith("/MLmodel") for key in keys), keys
    assert any(key.endswith("/model.pkl") for key in keys), keys
    assert not (team_project / "mlartifacts").exists()


def test_data_pushed_by_one_member_is_pulled_by_another(
    team_project: Path, stack: TeamStack, tmp_path: Path
) -> None:
    run_make(team_project, "data-push")
    stored = stack.s3().list_objects_v2(Bucket=DVC_BUCKET, Prefix="store/")
    assert stored.get("KeyCount", 0) > 0

    clone = tmp_path / "clone"
    environment = project_environment(team_project, stack)
    run(["git", "clone", "--quiet", str(team_project), str(clone)], tmp_path, environment)
    # The clone shares no cache with the project: everything comes from the bucket.
    run(["dvc", "pull"], clone, environment)
    for output in ("data/split/train.parquet", "data/split/test.parquet", "models/model.joblib"):
        assert md5(clone / output) == md5(team_project / output), output
    status = run(["dvc", "status"], clone, environment)
    assert "up to date" in status


def test_a_machine_that_did_not_train_serves_the_champion_from_the_server(
    team_project: Path, stack: TeamStack, tmp_path: Path
) -> None:
    clone = tmp_path / "server"
    environment = project_environment(team_project, stack)
    run(["git", "clone", "--quiet", str(team_project), str(clone)], tmp_path, environment)
    # Only the split is needed (the bundle's reference statistics and example request):
    # no model file.
    run(["dvc", "pull", "data/split/train.parquet", "data/split/test.parquet"], clone, environment)
    assert not (clone / "models" / "model.joblib").exists()
    assert not (clone / "models" / "champion").exists()
    run(["python", "-m", "mlops_kit.export", "--from-registry"], clone, environment)
    metadata = json.loads((clone / "models" / "champion" / "metadata.json").read_text())
    assert metadata["model_version"] == registration(team_project)["version"]

    port = free_port()
    service = subprocess.Popen(
        [
            "bentoml",
            "serve",
            "mlops_kit.serving.service:ModelService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=clone,
        env={**environment, "MODEL_BUNDLE": str(clone / "models" / "champion")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                return answer.status == 200

        wait_until(ready, "the prediction service", 120, service)
        body = (clone / "models" / "champion" / "example_request.json").read_bytes()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            prediction = json.loads(answer.read())
    finally:
        stop_process(service)
    assert prediction["model_version"] == metadata["model_version"]
    assert prediction["model_alias"] == "champion"


def stop_queue_workers(project: Path, environment: dict[str, str]) -> None:
    """Ask DVC's queue workers to stop, then end any that linger after the queue empties."""
    subprocess.run(
        ["dvc", "queue", "stop", "--kill"],
        cwd=project,
        env=environment,
        capture_output=True,
        check=False,
    )
    pid_files = (project / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.pid")
    pids = [int(path.read_text().strip()) for path in pid_files if path.read_text().strip()]

    def is_worker(pid: int) -> bool:
        # A stale pid file may name a process that reused the number: check what it runs.
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            return b"queue-worker" in command and str(project).encode() in command
        return False

    deadline = time.monotonic() + 15
    for pid in pids:
        while time.monotonic() < deadline and is_worker(pid):
            time.sleep(0.5)
        if is_worker(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_hydra_sweep_runs_in_two_processes_and_lands_in_dvc_and_mlflow(
    team_project: Path, stack: TeamStack
) -> None:
    environment = project_environment(team_project, stack)
    sweep = ",".join(str(value) for value in SWEEP)
    run(
        ["dvc", "exp", "run", "--queue", "-S", f"model.n_estimators={sweep}"],
        team_project,
        environment,
    )
    started = time.monotonic()
    try:
        # The workers are daemons that keep inherited pipes open: give them a file.
        with (team_project / "queue-start.log").open("w") as log:
            subprocess.run(
                ["dvc", "queue", "start", "-j", "2"],
                cwd=team_project,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        wait_until(
            lambda: (
                not any(
                    state in run(["dvc", "queue", "status"], team_project, environment)
                    for state in ("Queued", "Running")
                )
            ),
            "the experiment queue",
            600,
            # Each look is a new dvc process: look seldom, the workers need the cores.
            interval=5,
        )
    finally:
        stop_queue_workers(team_project, environment)
    print(f"sweep of {len(SWEEP)} experiments, 2 workers: {time.monotonic() - started:.0f} s")
    assert "Failed" not in run(["dvc", "queue", "status"], team_project, environment)

    shown = json.loads(run(["dvc", "exp", "show", "--json"], team_project, environment))
    experiments = {
        experiment["name"]: experiment["revs"][0]["data"]
        for baseline in shown
        for experiment in baseline.get("experiments") or []
        if experiment.get("name")
    }
    in_dvc = {
        name: (
            data["params"]["params.yaml"]["data"]["model"]["n_estimators"],
            data["metrics"]["reports/metrics.json"]["data"],
        )
        for name, data in experiments.items()
    }
    assert sorted(n for n, _ in in_dvc.values()) == SWEEP

    in_mlflow = ask_mlflow(
        team_project,
        stack,
        "import json, sys, mlflow\n"
        "runs = mlflow.search_runs(experiment_names=[sys.argv[1]], output_format='list')\n"
        "print(json.dumps({r.data.tags['dvc.experiment']: [r.data.params['model.n_estimators'],\n"
        "  r.data.metrics] for r in runs if 'dvc.experiment' in r.data.tags}))",
        registration(team_project)["model_name"],
    )
    for name, (n_estimators, metrics) in in_dvc.items():
        assert name in in_mlflow, f"{name} is in dvc exp show but not in MLflow: {in_mlflow}"
        logged_n, logged_metrics = in_mlflow[name]
        assert int(logged_n) == n_estimators
        for metric, value in metrics.items():
            if isinstance(value, float):
                assert logged_metrics[f"test_{metric}"] == pytest.approx(value)


def test_the_team_project_passes_its_own_lint(team_project: Path) -> None:
    # ruff, and hadolint on both the serving image and the stack's MLflow server image.
    output = run_make(team_project, "lint").stdout
    assert "stack/mlflow-server.Dockerfile" in output
