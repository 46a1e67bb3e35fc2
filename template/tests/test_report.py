"""The model card and the plots page, written from this project's own data and model.

The report is built in a temporary folder from the trained model, as the report
stage builds it after export: every chart file holds a drawing, the team's section
survives every regeneration untouched, and no page refers to anything elsewhere.
"""

import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlops_kit.core.params import Params
from mlops_kit.export import (
    bundle_metadata,
    example_request,
    reference_record,
    write_bundle,
)
from mlops_kit.report.__main__ import (
    write_pages,
    write_report,
)

# What would make a browser fetch something: a script or stylesheet element, a remote
# source or link target, a CSS import or remote url().
REMOTE = re.compile(r"<script|<link|@import|(src|href)=\"(https?:)?//|url\((['\"]?)(https?:)?//")


@pytest.fixture(scope="module")
def report_params(
    trained_model: Pipeline,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    tmp_path_factory: pytest.TempPathFactory,
) -> Params:
    """Parameters whose report inputs and outputs all live in a temporary folder."""
    tmp_path = tmp_path_factory.mktemp("report")
    train, test = train_test
    for name, table in (("train", train), ("test", test), ("holdout", test)):
        table.to_parquet(tmp_path / f"{name}.parquet")
    bundle = tmp_path / "bundle"
    metadata = bundle_metadata(
        trained_model,
        params,
        version="7",
        run_id="test",
        trained_at=datetime.now(UTC).isoformat(),
        reference=reference_record(train, params.data.input_columns),
    )
    write_bundle(trained_model, metadata, example_request(test, params.data.input_columns), bundle)
    team = tmp_path / "docs" / "model-card-team.md"
    team.parent.mkdir()
    team.write_text(params.paths.model_card_team.read_text())
    reports = tmp_path / "reports"
    paths = params.paths.model_copy(
        update={
            **{name: tmp_path / f"{name}.parquet" for name in ("train", "test", "holdout")},
            "bundle": bundle,
            "promotion": reports / "promotion.json",
            "figures": reports / "figures",
            "model_card_facts": reports / "model_card.json",
            "model_card": reports / "model_card.md",
            "plots_page": reports / "plots.html",
            "model_card_team": team,
        }
    )
    monitor = params.monitor.model_copy(update={"report_dir": reports / "monitoring"})
    scoring = params.ml_test_score.model_copy(update={"report": reports / "ml_test_score.md"})
    return params.model_copy(update={"paths": paths, "monitor": monitor, "ml_test_score": scoring})


@pytest.fixture(scope="module")
def first_report(report_params: Params) -> tuple[dict, bool]:
    """The facts of the first report in the folder, and whether it drew its charts."""
    facts, _, changed = write_report(report_params)
    return facts, changed


def pages(params: Params) -> dict[Path, str]:
    """Every page the report wrote, with its text."""
    written = [params.paths.model_card.with_suffix(".html"), params.paths.plots_page]
    return {page: page.read_text() for page in written}


def test_every_chart_is_drawn_and_every_page_is_self_contained(
    report_params: Params, first_report: tuple[dict, bool]
) -> None:
    facts, changed = first_report
    assert changed  # a first report draws every chart
    charts = [Path(path) for path in facts["charts"].values()]
    assert len(charts) >= 2
    for chart in charts:
        content = chart.read_bytes()
        # A PNG signature, then the image header's width and height: a real drawing.
        assert content.startswith(b"\x89PNG\r\n\x1a\n"), chart
        assert min(struct.unpack(">II", content[16:24])) > 0, chart
    for page, text in pages(report_params).items():
        assert not REMOTE.search(text), (page, REMOTE.search(text))
        # Each chart is embedded in the page, not linked.
        assert text.count('<img src="data:image/png;base64,') == len(charts), page
    # A second report of the same model and data draws the same bytes.
    assert not write_report(report_params)[2]


def test_the_card_states_the_facts_of_this_data(
    report_params: Params, first_report: tuple[dict, bool]
) -> None:
    facts, _ = first_report
    card = report_params.paths.model_card.read_text()
    data = report_params.data
    assert f"`{data.target}` | target" in card
    for column in data.input_columns:
        assert f"`{column}`" in card
    for group in facts["quality"]["slices"]:
        assert f"| {group} |" in card
    if data.sensitive_column:
        assert f"Groups of `{data.sensitive_column}`" in card
    for metric, value in facts["quality"]["test"].items():
        assert f"| {metric} | {value:.4f} |" in card


def test_the_team_section_survives_regeneration(
    report_params: Params, first_report: tuple[dict, bool]
) -> None:
    team = report_params.paths.model_card_team
    written = team.read_text() + "\n## Contacts\n\nThe on-call team: ml-oncall@example.org\n"
    team.write_text(written)
    # The pages are written again, as every report stage and `make model-card` does.
    write_pages(report_params, first_report[0])
    assert team.read_text() == written
    assert "ml-oncall@example.org" in report_params.paths.model_card.read_text()
    assert (
        "ml-oncall@example.org" in report_params.paths.model_card.with_suffix(".html").read_text()
    )
