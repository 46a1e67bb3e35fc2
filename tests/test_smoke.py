"""The end-to-end smoke a newcomer's `make test` runs: a real project, start to answer.

Render with the defaults, `make setup`, `make pipeline` (the run's shared trained
project), then in a copy of it the commands AGENTS.md prescribes (setup, params, help,
lint), the generated daily tier, `make serve` answering one `/predict`, and a second
`make pipeline` that runs no stage, as AGENTS.md says it will.
"""

import json
from pathlib import Path

import pytest

from helpers.agents import RUN_FOR_REAL, named_targets
from helpers.commands import run_make
from helpers.network import post_json
from helpers.projects import TrainedProject
from helpers.serving import make_serve

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.smoke,
    pytest.mark.parametrize("trained_project", ["classification"], indirect=True),
]

STAGES = ("prepare", "validate", "split", "train", "evaluate", "export", "report")


def test_end_to_end_smoke_a_default_project_trains_tests_serves_and_stays_up_to_date(
    trained_project: TrainedProject, project_copy: Path
) -> None:
    for stage in STAGES:
        assert f"Running stage '{stage}'" in trained_project.first_run
    assert json.loads((project_copy / "reports" / "promotion.json").read_text())["promote"]
    metadata = json.loads((project_copy / "models" / "champion" / "metadata.json").read_text())
    assert metadata["model_alias"] == "champion"

    # A newcomer (or an agent) follows AGENTS.md: what it prescribes runs and passes.
    prescribed = named_targets((project_copy / "AGENTS.md").read_text())
    assert set(RUN_FOR_REAL) <= set(prescribed), prescribed
    for target in ("setup", "params", "help", "lint"):
        run_make(project_copy, target)

    daily = run_make(project_copy, "test")
    assert " passed" in daily.stdout and " failed" not in daily.stdout

    example = (project_copy / "models" / "champion" / "example_request.json").read_bytes()
    with make_serve(project_copy, "logs/smoke.jsonl") as url:
        status, answer = post_json(f"{url}/predict", example)
    assert status == 200, answer
    assert answer["model_alias"] == "champion"

    again = run_make(project_copy, "pipeline")
    assert "Running stage" not in again.stdout
    assert "Data and pipelines are up to date" in again.stdout
