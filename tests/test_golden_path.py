"""A new user's golden path, for real, for each task: the generated tests scored, MLflow's
records, DVC's reports and remote, the project's own lint, bad batches.

The project is rendered, set up and trained once per run (the `trained_project`
fixture) and scored once (`scored_project`). Tests that only read use it as it is;
tests that run DVC or make use a copy, so none depends on another's order.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.commands import developer_environment, in_project, run_make
from helpers.projects import TrainedProject
from helpers.template import uv_executable

pytestmark = pytest.mark.e2e

PARAMS_AS_JSON = "import json, yaml; print(json.dumps(yaml.safe_load(open('params.yaml'))))"
CORRUPT_TABLE = Path(__file__).with_name("helpers") / "corrupt_table.py"


def test_the_first_pipeline_runs_every_stage(trained_project: TrainedProject) -> None:
    project = trained_project.root
    for stage in ("prepare", "validate", "split", "train", "evaluate", "export", "report"):
        assert f"Running stage '{stage}'" in trained_project.first_run
    assert (project / "models" / "model.joblib").is_file()
    assert json.loads((project / "reports" / "promotion.json").read_text())["promote"]
    metadata = json.loads((project / "models" / "champion" / "metadata.json").read_text())
    assert metadata["model_alias"] == "champion"


def test_the_generated_tests_pass_and_score_above_5_on_the_ml_test_score(
    scored_project: dict,
) -> None:
    output, report = scored_project["output"], scored_project["report"]
    assert " passed" in output and " failed" not in output
    assert "| data-1 |" in scored_project["summary"]  # the table is written to REPORT
    assert report["final"] > 5, output[-4000:]
    for section in ("data", "model", "infra", "monitor"):
        rows = [row for row in report["rows"] if row["id"].startswith(f"{section}-")]
        automated = [row for row in rows if row["coverage"] == "automated" and row["points"] == 1]
        assert len(automated) >= 6, (section, rows)


# The classification project's second run is the smoke test's (test_smoke.py).
@pytest.mark.parametrize("trained_project", ["regression"], indirect=True)
def test_a_second_pipeline_run_runs_no_stage(project_copy: Path) -> None:
    result = run_make(project_copy, "pipeline")
    assert "Running stage" not in result.stdout
    assert "Data and pipelines are up to date" in result.stdout


def logged_run(project: Path) -> dict:
    """What MLflow recorded for the registered run, asked with the project's own MLflow."""
    registration = json.loads((project / "models" / "registration.json").read_text())
    probe = in_project(
        project,
        "python",
        "-c",
        "import json, sys, mlflow\n"
        "client = mlflow.MlflowClient(tracking_uri='sqlite:///mlflow.db')\n"
        "run = client.get_run(sys.argv[1])\n"
        "champion = client.get_model_version_by_alias(sys.argv[2], 'champion')\n"
        "challenger = client.get_model_version_by_alias(sys.argv[2], 'challenger')\n"
        "print(json.dumps({'status': run.info.status, 'tags': run.data.tags,\n"
        "  'metrics': run.data.metrics, 'params': run.data.params,\n"
        "  'champion': champion.version, 'challenger': challenger.version}))",
        registration["run_id"],
        registration["model_name"],
    )
    return {**json.loads(probe.stdout.strip().splitlines()[-1]), "registration": registration}


def test_mlflow_has_the_run_and_a_champion(trained_project: TrainedProject) -> None:
    project = trained_project.root
    found = logged_run(project)
    assert found["status"] == "FINISHED"
    version = found["registration"]["version"]
    assert str(found["champion"]) == str(found["challenger"]) == version
    assert {"git.commit", "data.train_md5", "data.test_md5"} <= set(found["tags"])
    assert any(name.startswith("test_") for name in found["metrics"])
    assert "model._target_" in found["params"]


def test_the_data_version_logged_is_the_one_dvc_recorded(trained_project: TrainedProject) -> None:
    project = trained_project.root
    lock = (project / "dvc.lock").read_text()
    assert logged_run(project)["tags"]["data.train_md5"] in lock


def test_dvc_reports_metrics_plots_and_experiments(project_copy: Path) -> None:
    project = project_copy
    metrics = in_project(project, "dvc", "metrics", "show", "--json")
    assert json.loads(metrics.stdout)
    in_project(project, "dvc", "plots", "show", "-o", "dvc_plots")
    assert (project / "dvc_plots" / "index.html").is_file()
    in_project(project, "dvc", "exp", "show", "--no-pager", "--csv")


def test_dvc_push_then_pull_restores_data_and_model(project_copy: Path) -> None:
    project = project_copy
    in_project(project, "dvc", "push")
    model = project / "models" / "model.joblib"
    original = model.read_bytes()
    shutil.rmtree(project / ".dvc" / "cache")
    model.unlink()
    in_project(project, "dvc", "pull")
    assert model.read_bytes() == original


def test_the_generated_project_passes_its_own_lint(project_copy: Path) -> None:
    run_make(project_copy, "lint")


def test_make_help_lists_the_golden_path_targets(trained_project: TrainedProject) -> None:
    listing = run_make(trained_project.root, "help").stdout
    for target in ("setup", "pipeline", "test", "lint", "help"):
        assert f"{target} " in listing


# Shuffled labels run through the whole pipeline in each project's own test_pipeline.py
# (scored above): the gate refuses them there.
CORRUPTIONS = [
    "one_row",
    "one_row_label_flipped",
    "class_dropped",
    "feature_constant",
    "ten_times",
]


def bundle_files(project: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (project / "models" / "champion").iterdir()}


def champion_alias(project: Path) -> str:
    """The version the registry's champion alias names, read with the project's MLflow."""
    script = (
        "import mlflow, yaml; m = yaml.safe_load(open('params.yaml'))['mlflow']; "
        "c = mlflow.MlflowClient(m['tracking_uri']); "
        "print(c.get_model_version_by_alias(m['registered_model_name'], m['champion_alias'])"
        ".version)"
    )
    return in_project(project, "python", "-c", script).stdout.strip()


@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_bad_batches_stop_the_pipeline_or_leave_the_champion_untouched(project_copy: Path) -> None:
    """Each corruption of the shipped table either stops `make pipeline` (a table check
    names it) or trains a model the gate refuses; the champion alias and every byte of
    models/champion/ stay as they were. The list's corruptions are of class labels;
    tests/test_reference.py in each project covers a regression target's."""
    project = project_copy
    params = json.loads(in_project(project, "python", "-c", PARAMS_AS_JSON).stdout)
    source = project / params["data"]["source"]
    shipped = source.read_bytes()
    alias, bundle = champion_alias(project), bundle_files(project)
    outcomes = {}
    for kind in CORRUPTIONS:
        in_project(project, "python", str(CORRUPT_TABLE), kind)
        run = subprocess.run(
            ["make", "--no-print-directory", "pipeline", f"UV={uv_executable()}"],
            cwd=project, capture_output=True, text=True, check=False, env=developer_environment(),
        )  # fmt: skip
        source.write_bytes(shipped)
        output = run.stdout + run.stderr
        if run.returncode:
            assert "table checks failed" in output, (kind, output[-3000:])
            outcomes[kind] = "stopped"
        else:
            promotion = json.loads((project / "reports" / "promotion.json").read_text())
            assert not promotion["promote"], (kind, promotion["reasons"])
            outcomes[kind] = "refused"
        assert champion_alias(project) == alias, kind
        assert bundle_files(project) == bundle, kind
    print(outcomes)
