"""The generated GitLab CI pipeline: GitLab's schema accepts it, gitlab-ci-local reads the
jobs each kind of pipeline runs, and its lint and test jobs pass on a trained project."""

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers.commands import developer_environment
from helpers.npm_tools import machine_tools, npm_tool
from helpers.template import render, uv_executable
from helpers.workflow_runner import as_checked_out

GITLAB_CI_LOCAL_VERSION = "4.60.1"  # 4.75 needs Node 22 (Set.prototype.union)
COMBINATIONS = [
    {},
    {"ml_task": "regression", "cd_push_image": False},
    {"ct_schedule": "*/30 1-5 * * 1,3"},
    # A team's: the tracking server and the S3 remote are named as CI/CD variables.
    {"tracking": "server", "data_remote": "s3"},
]
CHECKS = ["lint", "test", "ml-test-score", "pipeline"]


@pytest.fixture(scope="session")
def gitlab_ci_local() -> Path:
    """gitlab-ci-local (npm), installed once per machine and Node.js ABI.

    Its regular expressions come from re2, a C++ addon that npm compiles on install
    (minutes on two cores), so the install is kept in the user's cache, not in the
    checkout, and a later run or another clone reuses it.
    """
    if shutil.which("rsync") is None:
        pytest.fail("gitlab-ci-local needs rsync: install Debian's rsync")
    if shutil.which("node") is None:
        pytest.fail("gitlab-ci-local needs Node.js: install Debian's nodejs and npm")
    abi = subprocess.run(
        ["node", "-p", "process.versions.modules"], capture_output=True, text=True, check=True
    ).stdout.strip()
    folder = machine_tools(f"gitlab-ci-local-{GITLAB_CI_LOCAL_VERSION}-node{abi}")
    npm_tool("gitlab-ci-local", GITLAB_CI_LOCAL_VERSION, folder)
    return folder / "node_modules" / ".bin" / "gitlab-ci-local"


def listed_jobs(tool: Path, project: Path, *variables: str) -> list[str]:
    """The jobs gitlab-ci-local would run in ``project``'s pipeline, given ``NAME=value``
    variables (a schedule's, a tag's)."""
    options = [option for variable in variables for option in ("--variable", variable)]
    result = subprocess.run(
        [str(tool), "--list-csv", "--no-color", "--no-json-schema-validation", *options],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The table follows gitlab-ci-local's warnings (such as one for each predefined
    # variable set here, which is what a schedule or a tag does).
    lines = result.stdout.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("name;")), None)
    assert header is not None, result.stdout + result.stderr
    rows = list(csv.DictReader(lines[header:], delimiter=";"))
    return [row["name"] for row in rows]


@pytest.fixture(
    scope="module",
    params=COMBINATIONS,
    ids=lambda answers: ",".join(f"{k}={v}" for k, v in answers.items()) or "defaults",
)
def gitlab_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A project rendered for GitLab with these answers, and the answers."""
    answers = {"ci_provider": "gitlab", **request.param}
    project = render(tmp_path_factory.mktemp("gitlab") / "project", skip_tasks=True, **answers)
    return project, answers


def test_gitlabs_own_schema_accepts_the_pipeline(gitlab_project) -> None:
    project, _ = gitlab_project
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.gitlab-ci", str(project / ".gitlab-ci.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_push_runs_the_checks_a_schedule_trains_a_tag_releases(
    gitlab_project, gitlab_ci_local: Path
) -> None:
    project, answers = gitlab_project
    assert listed_jobs(gitlab_ci_local, project) == CHECKS
    schedule = ["CI_PIPELINE_SOURCE=schedule"]
    assert listed_jobs(gitlab_ci_local, project, *schedule, "PIPELINE_TASK=train") == ["train"]
    assert listed_jobs(gitlab_ci_local, project, *schedule, "PIPELINE_TASK=template-update") == [
        "template-update"
    ]
    release = ["champion", "container-image"]
    if answers.get("cd_push_image", True):
        release.append("deploy")
    assert listed_jobs(gitlab_ci_local, project, "CI_COMMIT_TAG=v1.2.3") == release


def test_the_pipeline_names_its_schedules_and_secrets(gitlab_project) -> None:
    """GitLab keeps schedules and secrets in its settings: the file's header says what to
    create, with the ct_schedule answer as the training schedule's cron."""
    project, answers = gitlab_project
    text = (project / ".gitlab-ci.yml").read_text()
    header = text.split("\n\n")[0]
    cron = answers.get("ct_schedule", "0 4 * * 1")
    assert re.search(rf'cron "{re.escape(cron)}" \(UTC\)\s+PIPELINE_TASK=train', header)
    assert "PIPELINE_TASK=template-update" in header
    named = set(re.findall(r"^#   ([A-Z][A-Z0-9_]+)", header, re.MULTILINE))
    team = {"tracking": "server", "data_remote": "s3"}.items() <= answers.items()
    secrets = {"MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secrets <= named if team else not secrets & named
    assert ("KUBE_CONFIG" in named) is answers.get("cd_push_image", True)
    script = yaml.safe_load(text)["container-image"]["script"]
    assert any("make docker-build" in line for line in script)
    pushes = [line for line in script if "docker login" in line or "make docker-push" in line]
    assert len(pushes) == (2 if answers.get("cd_push_image", True) else 0)


@pytest.mark.parametrize(
    ("provider", "present", "absent"),
    [
        ("gitlab", [".gitlab-ci.yml", ".gitlab/CODEOWNERS"], [".github"]),
        ("github", [".github/workflows/ci.yml"], [".gitlab-ci.yml", ".gitlab"]),
        ("none", [], [".github", ".gitlab-ci.yml", ".gitlab"]),
    ],
)
def test_each_ci_provider_gets_its_own_files_only(
    tmp_path: Path, provider: str, present: list[str], absent: list[str]
) -> None:
    project = render(tmp_path / "project", skip_tasks=True, ci_provider=provider)
    assert [name for name in present if not (project / name).exists()] == []
    assert [name for name in absent if (project / name).exists()] == []


def test_the_model_review_evidence_is_gitlabs(render_project) -> None:
    """ML Test Score model-1 counts the review files the project has: GitLab's here."""
    project = render_project(ci_provider="gitlab")
    rubric = yaml.safe_load((project / "conf" / "ml_test_score" / "default.yaml").read_text())
    evidence = rubric["manual"]["model-1"]["evidence"]
    assert evidence and all((project / path).is_file() for path in evidence)


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_the_lint_and_test_jobs_pass_under_gitlab_ci_local(
    project_copy: Path, gitlab_ci_local: Path, tmp_path: Path
) -> None:
    """The shared project was rendered for GitHub: rendered again with its own answers
    and ci_provider=gitlab (no tasks, seconds), its GitLab files replace .github/. The
    jobs run in the shell (--force-shell-executor: the image they name is GitLab's),
    one after the other, in the project folder as a runner's checkout."""
    recorded = yaml.safe_load((project_copy / ".copier-answers.yml").read_text())
    answers = {k: v for k, v in recorded.items() if not k.startswith("_")}
    gitlab = render(tmp_path / "gitlab", skip_tasks=True, **{**answers, "ci_provider": "gitlab"})
    shutil.rmtree(project_copy / ".github")
    shutil.copy2(gitlab / ".gitlab-ci.yml", project_copy)
    shutil.copytree(gitlab / ".gitlab", project_copy / ".gitlab")
    as_checked_out(project_copy)
    environment = developer_environment()
    environment["PATH"] = f"{Path(uv_executable()).parent}{os.pathsep}{environment['PATH']}"
    command = [str(gitlab_ci_local), "--force-shell-executor", "--concurrency", "1"]
    started = time.monotonic()
    result = subprocess.run(
        [*command, "--no-color", "lint", "test"],
        cwd=project_copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    print(f"gitlab-ci-local lint test: {time.monotonic() - started:.0f} s")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert re.search(r"^ PASS +lint$", output, re.MULTILINE), output[-4000:]
    assert re.search(r"^ PASS +test$", output, re.MULTILINE), output[-4000:]
    assert "lint > All checks passed!" in output  # ruff ran
    assert re.search(r"^test > =+ \d+ passed", output, re.MULTILINE), output[-4000:]
