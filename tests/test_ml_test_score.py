"""A generated project scores itself on the ML Test Score, and the score tells the truth.

The golden path scores each task's project with `make ml-test-score`. Here each
property of the classification project is broken in turn (a feature turned into
noise, unseeded training, a column of email addresses) and the checks that prove
it run again: the rubric row drops to zero and its section loses the point, while
every other row keeps its points. Each break is undone afterwards.
"""

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

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


@contextmanager
def edited(path: Path, change: Callable[[str], str]) -> Iterator[None]:
    """Apply ``change`` to a file's text for the duration of the block."""
    original = path.read_bytes()
    path.write_text(change(path.read_text()))
    try:
        yield
    finally:
        path.write_bytes(original)


@pytest.fixture(scope="module")
def healthy(trained_project) -> dict:
    project, _ = trained_project
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


def test_a_feature_turned_into_noise_loses_the_all_features_beneficial_point(
    trained_project, healthy: dict
) -> None:
    project, _ = trained_project
    source = source_csv(project)

    def body_mass_as_noise(text: str) -> str:
        # The other measurements still tell the species apart, so only data-2 may notice.
        frame = pd.read_csv(source)
        frame["body_mass_g"] = frame["body_mass_g"].sample(frac=1.0, random_state=0).to_numpy()
        return frame.to_csv(index=False)

    with edited(source, body_mass_as_noise):
        assert_broken(healthy, scored_run(project, *CHECKS), "data-2")


def test_unseeded_training_loses_the_reproducibility_point(trained_project, healthy: dict) -> None:
    project, _ = trained_project
    train = next((project / "src").glob("*/train.py"))
    unseeded = re.compile(r"^\s*estimator\.set_params\(random_state=.*\)$", re.MULTILINE)
    with edited(train, lambda text: unseeded.sub("        pass", text)):
        assert_broken(healthy, scored_run(project, *CHECKS), "infra-1")


def test_a_column_of_email_addresses_loses_the_meta_level_requirements_point(
    trained_project, healthy: dict
) -> None:
    project, _ = trained_project
    source = source_csv(project)

    def add_emails(text: str) -> str:
        frame = pd.read_csv(source)
        frame["contact"] = [f"owner{row}@example.org" for row in range(len(frame))]
        return frame.to_csv(index=False)

    with edited(source, add_emails):
        assert_broken(healthy, scored_run(project, *CHECKS), "data-4")
