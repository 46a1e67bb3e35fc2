"""Fixtures of the template's tests; the helpers they use live in tests/helpers/.

End-to-end fixtures are made once per run of the suite, whichever pytest-xdist worker
asks first (helpers/projects.py): one trained project per task, its ML Test Score. Tests
read them, and copy a project to change it. Fixtures made per worker that several tests
share (the team stack, the serving image...) keep those tests on one worker
(WORKER_GROUPS).
"""

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.projects import TrainedProject, once
from helpers.projects import trained_project as made_trained_project
from helpers.template import question_choices, render
from helpers.workers import WorkerGroups

# Tests that share a costly fixture made per worker run on one worker, whole: a test file,
# or single tests (file::name), per group. pytest-xdist's own `xdist_group` marker does
# not group under pytest 9 (checked with xdist 3.8), so the scheduler reads this instead.
WORKER_GROUPS = {
    "team-stack": ["tests/test_team_stack.py"],  # PostgreSQL, S3 and MLflow servers
    "update": ["tests/test_update.py"],  # the throwaway template repositories
    "rubric-breaks": ["tests/test_ml_test_score.py"],  # the healthy score compared with
    "serving-image": [  # the image the CD workflow builds, run by podman and kube play
        "tests/test_container.py",
        "tests/test_kube_play.py",
        "tests/test_workflows.py::test_every_step_of_the_cd_workflow_runs_locally",
    ],
}


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> object:
    """Spread tests one at a time over the workers, each group of WORKER_GROUPS whole."""
    return WorkerGroups(config, log, WORKER_GROUPS)


@pytest.fixture
def render_project(tmp_path: Path) -> Callable[..., Path]:
    """Render into a fresh temporary folder; answers are keyword arguments."""

    def _render(skip_tasks: bool = True, **answers: str) -> Path:
        return render(tmp_path / "project", skip_tasks=skip_tasks, **answers)

    return _render


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the whole run, the same in every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def trained_for(shared_root: Path) -> Callable[[str], TrainedProject]:
    """The run's trained project of a task: rendered with defaults, set up, with one
    pipeline run.

    Made once per run and shared by every end-to-end test, so each environment is
    installed and each model trained once. Read it; copy it to change it.
    """
    return lambda task: made_trained_project(shared_root, task)


@pytest.fixture(scope="session", params=question_choices("ml_task"))
def trained_project(
    request: pytest.FixtureRequest, trained_for: Callable[[str], TrainedProject]
) -> TrainedProject:
    """The trained project of each task (parametrize it indirectly to pick one)."""
    return trained_for(request.param)


@pytest.fixture
def project_copy(trained_project: TrainedProject, tmp_path: Path) -> Path:
    """A copy of the task's trained project for this test alone, to change at will."""
    return trained_project.copy(tmp_path / "project")


@pytest.fixture(scope="session")
def scored_project(trained_project: TrainedProject, shared_root: Path) -> dict:
    """The task's project scored once per run with its own `make ml-test-score`, in a copy:
    the target's output, its report (reports/ml_test_score.json) and the markdown it
    wrote to REPORT, as CI's job summary gets it."""
    from helpers.commands import run_make

    def score(folder: Path) -> dict:
        project = trained_project.copy(folder / "project")
        summary = folder / "summary.md"
        run = run_make(project, "ml-test-score", f"REPORT={summary}", timeout=1800)
        return {
            "output": run.stdout,
            "report": json.loads((project / "reports" / "ml_test_score.json").read_text()),
            "summary": summary.read_text(),
        }

    return once(shared_root, f"scored-{trained_project.task}", score)


@pytest.fixture(scope="session")
def serving_image(
    trained_for: Callable[[str], TrainedProject], tmp_path_factory: pytest.TempPathFactory
):
    """The CD workflow run locally on a copy of the classification project: it builds the
    serving image (once per run) and pushes it to an archive. Its tests share one
    worker group (WORKER_GROUPS), so one worker builds it and removes it afterwards.

    Yields the project, the image's name, the archive and the job summary.
    """
    from helpers.container_images import ensure_base_images, podman
    from helpers.workflow_runner import as_checked_out, github_env, run_workflow

    scratch = tmp_path_factory.mktemp("cd")
    project = trained_for("classification").copy(scratch / "project")
    as_checked_out(project)
    ensure_base_images(project / "Dockerfile")  # made locally once per machine
    env = github_env(scratch)
    run_workflow(project, "cd", env)
    image = f"ghcr.io/{env['GITHUB_REPOSITORY'].lower()}:{env['GITHUB_REF_NAME']}"
    try:
        yield {
            "project": project,
            "image": image,
            "archive": scratch / "image.tar",
            "summary": (scratch / "summary.md").read_text(),
        }
    finally:
        podman("rmi", "-f", image, check=False)
