"""A generated project scores itself on the ML Test Score, and the score tells the truth.

The golden path scores each task's project with `make ml-test-score`. Here each
property of the classification project is broken, each in its own copy of it (a
feature turned into noise, unseeded training, a column of email addresses), and the
checks that prove it run again: the rubric row drops to zero and its section loses
the point, while every other row keeps its points.
"""

import csv
import io
import json
import random
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.projects import TrainedProject

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.parametrize("trained_project", ["classification"], indirect=True),
]

REPORT = Path("reports") / "ml_test_score.json"
SECTIONS = {"data": "Data", "model": "Model", "infra": "Infrastructure", "monitor": "Monitoring"}
# The checks the breaks below affect; cheap enough to run once per break.
CHECKS = ["tests/test_feature_quality.py", "tests/test_model.py"]


def scored_run(project: Path, *files: str) -> dict:
    """Run pytest with the scoring plugin on ``files`` (all when none); the JSON report."""
    (project / REPORT).unlink(missing_ok=True)
    subprocess.run(
        [str(project / ".venv" / "bin" / "pytest"), "-q", "--ml-test-score", *files],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert (project / REPORT).exists(), "the scoring plugin wrote no report"
    return json.loads((project / REPORT).read_text())


def points(report: dict) -> dict[str, float]:
    return {row["id"]: row["points"] for row in report["rows"]}


def edit(path: Path, change: Callable[[str], str]) -> None:
    """Apply ``change`` to a file's text."""
    path.write_text(change(path.read_text()))


@pytest.fixture(scope="module")
def healthy(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory) -> dict:
    project = trained_project.copy(tmp_path_factory.mktemp("healthy") / "project")
    return scored_run(project, *CHECKS)


def assert_broken(healthy: dict, broken: dict, rubric_id: str) -> None:
    section = SECTIONS[rubric_id.split("-")[0]]
    assert points(healthy)[rubric_id] == 1, healthy["rows"]
    assert points(broken)[rubric_id] == 0, broken["rows"]
    assert broken["sections"][section] == healthy["sections"][section] - 1
    others = {key: value for key, value in points(broken).items() if key != rubric_id}
    assert others == {key: value for key, value in points(healthy).items() if key != rubric_id}


def source_csv(project: Path) -> Path:
    return next((project / "data" / "raw").glob("*.csv"))


def rewrite_rows(text: str, change: Callable[[list[dict]], None]) -> str:
    """Apply ``change`` to the rows of a CSV text; the CSV text after it."""
    rows = list(csv.DictReader(io.StringIO(text)))
    change(rows)
    output = io.StringIO()
    writer = csv.DictWriter(output, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return output.getvalue()


def test_a_feature_turned_into_noise_loses_the_all_features_beneficial_point(
    project_copy: Path, healthy: dict
) -> None:
    project = project_copy
    source = source_csv(project)

    def body_mass_as_noise(rows: list[dict]) -> None:
        # The other measurements still tell the species apart, so only data-2 may notice.
        masses = [row["body_mass_g"] for row in rows]
        random.Random(0).shuffle(masses)
        for row, mass in zip(rows, masses, strict=True):
            row["body_mass_g"] = mass

    edit(source, lambda text: rewrite_rows(text, body_mass_as_noise))
    assert_broken(healthy, scored_run(project, *CHECKS), "data-2")


def test_unseeded_training_loses_the_reproducibility_point(
    project_copy: Path, healthy: dict
) -> None:
    # The seed reaches the estimator in the team's model.py (build_estimator).
    model = next((project_copy / "src").glob("*/model.py"))
    unseeded = re.compile(r"^\s*estimator\.set_params\(random_state=.*\)$", re.MULTILINE)
    assert unseeded.search(model.read_text())
    edit(model, lambda text: unseeded.sub("        pass", text))
    assert_broken(healthy, scored_run(project_copy, *CHECKS), "infra-1")


def test_a_column_of_email_addresses_loses_the_meta_level_requirements_point(
    project_copy: Path, healthy: dict
) -> None:
    project = project_copy
    source = source_csv(project)

    def add_emails(rows: list[dict]) -> None:
        for number, row in enumerate(rows):
            row["contact"] = f"owner{number}@example.org"

    edit(source, lambda text: rewrite_rows(text, add_emails))
    assert_broken(healthy, scored_run(project, *CHECKS), "data-4")
