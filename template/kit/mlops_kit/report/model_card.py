"""The champion's model card (markdown, and a page made from it) and the plots page.

Both are written from the facts the report stage gathered (``paths.model_card_facts``)
and what later steps left, when they ran: the ML Test Score table
(``make ml-test-score``) and the drift chart (``make monitor``). The card's last
section is the team's own file (``paths.model_card_team``), read every time and
never written, so regeneration cannot overwrite what the team said.
"""

import os
from pathlib import Path

from mlops_kit.core import markdown
from mlops_kit.core.params import Params

GENERATED = (
    "Written by the pipeline's report stage (`make model-card` writes it again) from "
    "`conf/` and the pipeline's outputs; edit `{team}` for the team's section."
)


def number(value) -> str:
    """A metric for a table: four decimals, or a dash when it was not computed."""
    return "-" if value is None else f"{value:.4f}"


def relative(path: Path, folder: Path) -> str:
    """``path`` as a link from a page in ``folder``."""
    return Path(os.path.relpath(path, folder)).as_posix()


def threshold_text(name: str, params: Params) -> str:
    """The promotion threshold of metric ``name``, as text."""
    bound = params.evaluate.thresholds.get(name)
    if bound is None:
        return ""
    return ", ".join(
        f"{side} {value}" for side, value in (("min", bound.min), ("max", bound.max)) if value
    )


def model_section(model: dict) -> list[str]:
    """The model: estimator, parameters, registry identity, training time, provenance."""
    same_data = model["train_md5"] == model["current_train_md5"]
    data_note = "" if same_data else " (the current training split differs: a newer batch)"
    parameters = ", ".join(f"`{key}={value}`" for key, value in model["parameters"].items())
    rows = [
        ["Estimator", f"`{model['estimator']}`"],
        ["Parameters (set in conf/model/)", parameters or "defaults"],
        ["Registered model", f"{model['name']} version {model['version']}"],
        ["Alias", model["alias"]],
        ["MLflow run", f"`{model['run_id']}`"],
        ["Trained at", model["trained_at"]],
        ["Task", f"{model['task']} of `{model['target']}`"],
        *([["Classes", ", ".join(model["classes"])]] if model["classes"] else []),
        ["Inputs", ", ".join(f"`{column}`" for column in model["inputs"])],
        ["Data source", f"`{model['source']}`"],
        ["Training data hash (MD5)", f"`{model['train_md5'] or 'not recorded'}`{data_note}"],
        ["Git commit", f"`{model['git_commit'] or 'not recorded'}`"],
    ]
    return ["## Model", "", *markdown.table(["", "champion"], rows), ""]


def groups_table(groups: dict) -> list[str]:
    """Metrics per group (slice or sensitive value), with row counts."""
    names = sorted({name for scores in groups.values() for name in scores if name != "rows"})
    rows = [
        [label, scores["rows"], *(number(scores.get(name)) for name in names)]
        for label, scores in groups.items()
    ]
    return markdown.table(["group", "rows", *names], rows)


def quality_section(quality: dict, params: Params) -> list[str]:
    """Metrics on the test split and the frozen holdout, per slice, and parity."""
    holdout = quality["holdout"] or {}
    rows = [
        [name, number(value), number(holdout.get(name)), threshold_text(name, params)]
        for name, value in sorted(quality["test"].items())
    ]
    lines = ["## Quality", "", "The champion scored on the current data.", ""]
    lines += markdown.table(["metric", "test split", "frozen holdout", "promotion threshold"], rows)
    slice_column, sensitive = params.data.slice_column, params.data.sensitive_column
    lines += ["", f"### Per slice of `{slice_column}` (test split)", ""]
    lines += groups_table(quality["slices"]) if quality["slices"] else ["No slice column is set."]
    lines += ["", "### Parity across the sensitive attribute", ""]
    if quality["parity"]:
        lines += [f"Groups of `{sensitive}` on the test split.", ""]
        lines += groups_table(quality["parity"])
        gap = ", ".join(f"{name} {value:.4f}" for name, value in quality["parity_gaps"].items())
        lines += ["", f"Largest gap between groups: {gap or 'one group only'}."]
    else:
        lines += ["No sensitive attribute is set (`data.sensitive_column`)."]
    return [*lines, ""]


def data_section(data: dict) -> list[str]:
    """Rows per split; each column's dtype, role and null rate in the training split."""
    rows = data["rows"]
    lines = [
        "## Data",
        "",
        f"{rows['train']} training rows, {rows['test']} test rows, {rows['holdout']} frozen "
        f"holdout rows; {len(data['columns'])} columns in the training split.",
        "",
    ]
    if data["derived_features"]:
        derived = ", ".join(f"`{name}`" for name in data["derived_features"])
        lines += [f"Features computed from these columns: {derived}.", ""]
    columns = [
        [f"`{column}`", ", ".join(facts["roles"]), facts["dtype"], f"{facts['null_rate']:.1%}"]
        for column, facts in data["columns"].items()
    ]
    return [*lines, *markdown.table(["column", "role", "dtype", "null rate"], columns), ""]


def promotion_section(promotion: dict | None, version: str) -> list[str]:
    """The last promotion decision and its reasons."""
    lines = ["## Promotion decision", ""]
    if promotion is None:
        return [*lines, "No evaluation has run yet.", ""]
    verdict = "promoted to champion" if promotion["promote"] else "not promoted"
    challenger = str(promotion["challenger_version"])
    lines.append(f"The last evaluation: version {challenger} {verdict}.")
    if challenger != version:
        lines.append(f"The champion, version {version}, was promoted by an earlier run.")
    return [*lines, "", *(f"- {reason}" for reason in promotion["reasons"]), ""]


def demoted(markdown: str) -> list[str]:
    """Markdown of another report with each heading one level down, under a card section."""
    return [f"#{line}" if line.startswith("#") else line for line in markdown.splitlines()]


def ml_test_score_section(params: Params) -> list[str]:
    """The ML Test Score table, when `make ml-test-score` has run."""
    lines = ["## ML Test Score", ""]
    report = params.ml_test_score.report
    if not report.exists():
        return [*lines, "Not scored yet: `make ml-test-score` adds the table here.", ""]
    return [*lines, *demoted(report.read_text()), ""]


def monitoring_charts(params: Params) -> dict[str, Path]:
    """Charts `make monitor` drew, when it has run."""
    drift = params.monitor.report_dir / "drift.png"
    return {"Input drift (make monitor)": drift} if drift.exists() else {}


def images(charts: dict[str, Path], folder: Path) -> list[str]:
    """Markdown images of ``charts``, linked relative to ``folder``."""
    return [
        line
        for title, path in charts.items()
        for line in (f"![{title}]({relative(path, folder)})", "")
    ]


def team_section(params: Params) -> list[str]:
    """The team's own file, as written; a note when it is missing."""
    team = params.paths.model_card_team
    if not team.exists():
        return [
            f"_The team's section ({team}) is missing: create it to add intended use, "
            "limits and contacts._",
            "",
        ]
    note = f"_The sections below are the team's own, from `{team}`, copied in as written._"
    return [note, "", team.read_text().rstrip(), ""]


def heading(kind: str, model: dict) -> str:
    """A page's title line: what it is, of which model version and alias."""
    return f"# {kind}: {model['name']} v{model['version']} ({model['alias']})"


def card_markdown(
    facts: dict, charts: dict[str, Path], params: Params, with_images: bool = True
) -> str:
    """The model card as markdown; ``with_images`` False leaves the charts out (job summaries)."""
    model = facts["model"]
    folder = params.paths.model_card.parent
    charts = {**charts, **monitoring_charts(params)}
    plots = relative(params.paths.plots_page, folder)
    lines = [
        heading("Model card", model),
        "",
        "_" + GENERATED.format(team=params.paths.model_card_team) + "_",
        "",
        *model_section(model),
        *quality_section(facts["quality"], params),
        *data_section(facts["data"]),
        *promotion_section(facts["promotion"], model["version"]),
        *ml_test_score_section(params),
        "## Charts",
        "",
        *(images(charts, folder) if with_images else [f"In `{params.paths.plots_page}`.", ""]),
        *([f"The charts alone: [plots page]({plots}).", ""] if with_images else []),
        *team_section(params),
    ]
    return "\n".join(lines).rstrip() + "\n"


def plots_markdown(facts: dict, charts: dict[str, Path], params: Params) -> str:
    """The plots page: every chart of the champion, and the monitoring charts."""
    model = facts["model"]
    folder = params.paths.plots_page.parent
    charts = {**charts, **monitoring_charts(params)}
    card = relative(params.paths.model_card.with_suffix(".html"), folder)
    lines = [
        heading("Plots", model),
        "",
        f"The champion on the test split; its [model card]({card}).",
        "",
    ]
    for title, path in charts.items():
        lines += [f"## {title}", "", *images({title: path}, folder)]
    return "\n".join(lines).rstrip() + "\n"
