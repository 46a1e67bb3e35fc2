"""The report stage and the commands that write its pages again.

``python -m mlops_kit.report`` (the DVC stage): score the champion, draw its
charts, record the card's facts, write the model card and the plots page, and log
the charts and the card to the champion's MLflow run when a chart changed.
``pages`` writes the card and the plots page again from the recorded facts (after
``make ml-test-score`` or ``make monitor`` added their parts), ``summary`` prints
the card without its images (CI's job summary).
"""

import argparse
from pathlib import Path

from mlops_kit.core import strict_json
from mlops_kit.core.params import Params, load_params
from mlops_kit.report.model_card import card_markdown, plots_markdown
from mlops_kit.report.page import html_page, write_if_changed, write_markdown_and_page


def charts_of(facts: dict) -> dict[str, Path]:
    """The charts recorded with the facts, by title."""
    return {title: Path(path) for title, path in facts["charts"].items()}


def write_pages(params: Params, facts: dict) -> list[Path]:
    """Write the model card (markdown and HTML) and the plots page; return the pages."""
    charts = charts_of(facts)
    model = facts["model"]
    name = f"{model['name']} v{model['version']}"
    card = write_markdown_and_page(
        params.paths.model_card, f"Model card: {name}", card_markdown(facts, charts, params)
    )
    plots = params.paths.plots_page
    folder = plots.parent
    write_if_changed(
        plots, html_page(f"Plots: {name}", plots_markdown(facts, charts, params), folder)
    )
    return [card, plots]


def log_to_mlflow(params: Params, facts: dict, files: list[Path]) -> None:
    """Log the charts and the card to the champion's run (artifact folder ``report``)."""
    import mlflow

    from mlops_kit import registry

    registry.configure(params.mlflow)
    with registry.tracked_run(run_id=facts["model"]["run_id"]):
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="report")


def write_report(params: Params) -> tuple[dict, list[Path], bool]:
    """Score and chart the champion, record its facts and write its pages.

    Returns the facts, the files worth keeping with the run (charts, card, its page)
    and whether any chart changed.
    """
    from mlops_kit.report import figures
    from mlops_kit.report.facts import champion_facts

    facts, tables, classes = champion_facts(params)
    folder = params.paths.figures
    before = {path: path.read_bytes() for path in folder.glob("*.png")}
    charts = figures.draw(tables, facts, classes, params, folder)
    facts["charts"] = {title: path.as_posix() for title, path in charts.items()}
    strict_json.write(params.paths.model_card_facts, facts, sort_keys=True)
    pages = write_pages(params, facts)
    changed = any(before.get(path) != path.read_bytes() for path in charts.values())
    return facts, [*charts.values(), params.paths.model_card, pages[0]], changed


def run_stage(params: Params) -> None:
    """The stage: write the report; log it to the champion's run when a chart changed."""
    facts, files, changed = write_report(params)
    if changed:
        # MLflow's import costs seconds: only a new champion or new test data pays it.
        log_to_mlflow(params, facts, files)
    print(
        f"report: {params.paths.model_card.with_suffix('.html')}, {params.paths.plots_page} "
        f"({len(facts['charts'])} charts{', logged to MLflow' if changed else ''})"
    )


def main() -> None:
    """Run the stage, or write the pages again (``pages``), or print the card (``summary``)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "command", nargs="?", default="stage", choices=["stage", "pages", "summary"]
    )
    parser.add_argument(
        "--if-present", action="store_true", help="pages: do nothing before the stage has run"
    )
    args = parser.parse_args()
    params = load_params()
    if args.command == "stage":
        run_stage(params)
        return
    import json

    facts_file = params.paths.model_card_facts
    if not facts_file.exists():
        if args.if_present:
            return
        raise SystemExit(f"report: {facts_file} is missing: `make pipeline` writes it")
    facts = json.loads(facts_file.read_text())
    if args.command == "summary":
        print(card_markdown(facts, charts_of(facts), params, with_images=False))
        return
    pages = write_pages(params, facts)
    print(f"report: {', '.join(str(page) for page in pages)}")


if __name__ == "__main__":
    main()
