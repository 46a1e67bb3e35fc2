"""A reviewer opens the champion's model card and plots page, offline, in a real browser.

A copy of each task's trained project serves its test split, so `make monitor` has a
prediction log to chart; then headless Chromium, with the network switched off,
opens both pages: every chart the report stage recorded must have drawn, and the
pages may ask for nothing outside the project. Screenshots are kept (see browser.py).
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers.browser import assert_pages_draw, report_pages
from helpers.commands import run_make
from helpers.projects import TrainedProject
from helpers.serving import served_answers

pytestmark = pytest.mark.e2e

# Chart files per task: what the issue promises each task's reviewer sees.
TASK_CHARTS = {
    "classification": {"confusion_matrix.png", "roc_curve.png"},
    "regression": {"predicted_vs_actual.png", "residuals.png"},
}
LOG = "logs/report-test.jsonl"


def test_the_card_and_the_plots_page_draw_every_chart_offline(
    trained_project: TrainedProject, project_copy: Path
) -> None:
    project = project_copy
    assert "Running stage 'report'" in trained_project.first_run
    params = yaml.safe_load((project / "params.yaml").read_text())
    facts, pages = report_pages(project)
    task = params["data"]["task"]
    assert TASK_CHARTS[task] <= {Path(path).name for path in facts["charts"].values()}
    # One chart per slice column and per sensitive attribute when conf/ names them.
    grouped = [params["data"][key] for key in ("slice_column", "sensitive_column")]
    assert len(facts["charts"]) == 2 + sum(column is not None for column in grouped)

    # Traffic for the drift chart: the test split, as callers send it.
    rows = subprocess.run(
        [
            str(project / ".venv" / "bin" / "python"),
            "-c",
            "import sys, pandas as pd; t = pd.read_parquet(sys.argv[1]);"
            "print(t[sys.argv[2:]].to_json(orient='records'))",
            params["paths"]["test"],
            *params["data"]["numeric_features"],
            *params["data"]["categorical_features"],
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    bodies = [json.dumps(row).encode() for row in json.loads(rows.stdout)]
    assert all(status == 200 for status, _ in served_answers(project, bodies, LOG))
    run_make(project, "monitor", f"PREDICTION_LOG={project / LOG}", "MONITOR_FLAGS=--report-only")
    assert "Input drift" in pages["model_card"].read_text()

    charts = [*facts["charts"], "Input drift (make monitor)"]
    assert_pages_draw(project, pages, charts, f"trained-{task}")
