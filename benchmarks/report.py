"""Markdown tables of the benchmark results, written into README.md and docs/performance.md.

Each table sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` markers and
is generated from benchmarks/results/NAME.json, so the published figures are always
the measured ones. `make bench` runs this last; `python benchmarks/report.py --check`
fails when a document is out of date with the results (the template's tests run it).
"""

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "performance.md"]

STARTUP_LABELS = {
    "render": "Render (`copier copy --defaults`)",
    "environment": "Environment (`make setup`)",
    "pipeline": "Cold `make pipeline`",
    "service_ready": "Service ready (`bentoml serve`)",
    "first_answer": "First answer",
    "first_prediction_s": "**Time to first prediction** (sum of the five above)",
    "render_ratio": "Render / one-file-template floor (ratio)",
    "pipeline_cold_s": "Cold `make pipeline`",
    "pipeline_unchanged_s": "Unchanged `make pipeline`",
    "test_suite_s": "Generated `make test` (the daily tier)",
    "forced_pipeline": "Every stage again, bytecode cached and store created (`DVC_FLAGS=--force`)",
    "dvc_noop": "`dvc repro` alone with nothing to run (floor of the unchanged pipeline)",
    "test_collection": "pytest collecting the daily tier (each of the 2 workers pays it)",
}


def spread(values: dict, digits: int = 2) -> list[str]:
    """Median, min and max as table cells."""
    return [f"{values[key]:.{digits}f}" for key in ("median", "min", "max")]


def verdict(value: float, target: float) -> str:
    return "yes" if value <= target else "**no**"


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def startup_table(report: dict) -> str:
    """Time to first prediction by step, then each target with its verdict."""
    lines = [
        row(["Figure", "Median", "Min", "Max", "Target", "Met"]),
        row(["---", *["---:"] * 4, "---"]),
    ]
    for step in ("render", "environment", "pipeline", "service_ready", "first_answer"):
        lines.append(row([STARTUP_LABELS[step], *spread(report["steps"][step]), "", ""]))
    for step in ("forced_pipeline", "dvc_noop", "test_collection"):
        if step in report["steps"]:
            lines.append(row([STARTUP_LABELS[step], *spread(report["steps"][step]), "", ""]))
    for name, target in report["targets"].items():
        values = report["measured"][name]
        cells = [STARTUP_LABELS[name], *spread(values), f"{target:g}"]
        lines.append(row([*cells, verdict(values["median"], target)]))
    return "\n".join(lines) + f"\n\nSeconds unless a ratio; {report['runs']} fresh renders."


def pair_span(ratio: dict) -> str:
    """The smallest and largest ratio of the paired runs, as one cell."""
    return f"{ratio['min']:.2f}-{ratio['max']:.2f}"


def startup_comparison_table(report: dict) -> str:
    """Each startup figure now and at the baseline ref, with the ratio of the paired runs."""
    baseline = report.get("baseline")
    if not baseline:
        return "No baseline measured: run `make bench-startup BENCH_BASELINE=<release>`."
    lines = [
        row(
            [
                "Figure",
                "Now (median s)",
                f"{baseline['ref']} (median s)",
                "Now / then (median)",
                "Pairs min-max",
            ]
        ),
        row(["---", "---:", "---:", "---:", "---:"]),
    ]
    # Steps named as their targets are (startup_table's labels).
    labels = {
        **STARTUP_LABELS,
        "unchanged_pipeline": STARTUP_LABELS["pipeline_unchanged_s"],
        "test_suite": STARTUP_LABELS["test_suite_s"],
        # The same one-file template on both sides: what this machine's noise alone gives.
        "render_floor": "*Control: copier rendering a one-file template, identical both sides*",
    }
    for step, ratio in baseline["ratios"].items():
        if step not in labels:
            continue
        now, then = report["steps"][step]["median"], baseline["steps"][step]["median"]
        cells = [labels[step], f"{now:.2f}", f"{then:.2f}", f"{ratio['median']:.2f}"]
        lines.append(row([*cells, pair_span(ratio)]))
    return "\n".join(lines) + (
        f"\n\n{report['runs']} pairs of fresh renders after one unmeasured pair, each pair"
        " run back to back, each side first in half of them; a ratio below 1 is faster now."
    )


SCALE_SERIES = {
    "default": "Default model (random forest)",
    "lightgbm": "LightGBM (`model=lightgbm`)",
}


def scale_series_table(name: str, series: dict) -> str:
    """Seconds and peak MiB per stage at each size of one series, then its targets."""
    sizes = list(series["sizes"])
    header = ["Stage"]
    for size in sizes:
        header += [f"{int(size):,} rows: s", f"{int(size):,} rows: peak MiB"]
    lines = [
        f"{SCALE_SERIES.get(name, name)}:",
        "",
        row(header),
        row(["---", *["---:"] * (len(header) - 1)]),
    ]
    # A stage a size lacks (the pipeline gained it after that size was measured) shows "-".
    stages = list(
        dict.fromkeys(stage for size in sizes for stage in series["sizes"][size]["stages"])
    )
    for stage in stages:
        cells = [f"`{stage}`"]
        for size in sizes:
            figures = series["sizes"][size]["stages"].get(stage)
            cells += (
                [f"{figures['seconds']['median']:.1f}", f"{figures['peak_mib']['median']:.0f}"]
                if figures
                else ["-", "-"]
            )
        lines.append(row(cells))
    totals = ["**whole pipeline**"]
    for size in sizes:
        totals += [f"{series['sizes'][size]['total_seconds']['median']:.1f}"]
        totals += [f"{series['sizes'][size]['peak_mib']['median']:.0f}"]
    lines.append(row(totals))
    measured, targets = series["measured"], series["targets"]
    ratio, memory = measured["time_ratio"], measured["peak_memory_mib"]
    runs = f"Medians of {series['runs']} runs" if series["runs"] > 1 else "One run"
    load = series.get("load_average")
    loaded = f" (load average {load['min']:.1f}-{load['max']:.1f} on the machine)" if load else ""
    small, large = f"{int(sizes[0]):,}", f"{int(sizes[-1]):,}"
    text = (
        f"{runs}{loaded}. Time at {large} rows over time at {small} rows: "
        f"{ratio['median']:.2f} (min {ratio['min']:.2f}, max {ratio['max']:.2f}; target at most "
        f"{targets['time_ratio']:g}: {verdict(ratio['median'], targets['time_ratio'])}). "
        f"Peak memory of any stage at {large} rows: {memory['median']:.0f} MiB (max "
        f"{memory['max']:.0f}; target at most {targets['peak_memory_mib']:g}: "
        f"{verdict(memory['max'], targets['peak_memory_mib'])})."
    )
    if "total_seconds" in targets:
        total = measured["total_seconds"]
        text += (
            f" Whole pipeline at {large} rows: {total['median']:.0f} s (target at most "
            f"{targets['total_seconds']:g}: {verdict(total['median'], targets['total_seconds'])})."
        )
    return "\n".join(lines) + "\n\n" + text


def scale_table(report: dict) -> str:
    """Each series of the scale benchmark: its stages at each size, then its targets."""
    return "\n\n".join(
        scale_series_table(name, series) for name, series in report["series"].items()
    )


def dask_training_table(report: dict) -> str:
    """Holdout metric of LightGBM on two Dask workers and on one machine, against the folds."""
    metric, folds = report["metric"], report["folds"]
    seconds = report["train_seconds"]
    lines = [
        row(["Training", f"holdout {metric}", "train stage (s)"]),
        row(["---", "---:", "---:"]),
        row(["one machine", f"{report['single']:.4f}", f"{seconds['single']:.1f}"]),
        row([f"Dask, {report['workers']} local workers", f"{report['dask']:.4f}",
             f"{seconds['dask']:.1f}"]),
    ]  # fmt: skip
    rows = f"{report['train_rows']:,} training rows ({report['rows']:,} synthetic"
    rows += (
        f", partitions of {report['partition_rows']:,}), {report['holdout_rows']:,} holdout rows."
    )
    cv = f"The single-machine model's {len(folds['scores'])} cross-validation folds on the"
    cv += f" train split: {metric} {folds['mean']:.4f}, from {folds['min']:.4f} to"
    cv += f" {folds['max']:.4f} (spread {folds['spread']:.4f})."
    met = "yes" if report["met"] else "no"
    verdict_line = f"Dask minus one machine on the holdout: {report['difference']:+.4f}"
    verdict_line += f" (target: within the folds' spread: {met})."
    return "\n".join(lines) + f"\n\n{rows} {cv} {verdict_line}"


def serving_table(report: dict) -> str:
    """Requests per second and latency of each server at each connection count."""
    lines = [
        row(
            [
                "Server",
                "Connections",
                "Requests/s",
                "p50 (ms)",
                "p99 (ms)",
                "Server CPU (ms/request)",
                "Non-2xx",
                "Socket errors",
            ]
        ),
        row(["---", *["---:"] * 7]),
    ]

    def cell(values: dict, digits: int) -> str:
        low, high = f"{values['min']:.{digits}f}", f"{values['max']:.{digits}f}"
        return f"{values['median']:.{digits}f} ({low}-{high})"

    names = {
        "bentoml": "BentoML (generated)",
        "mlflow": "`mlflow models serve` (2 workers)",
        "fastapi": "FastAPI baseline (same compiled model)",
    }
    for name, by_level in report["results"].items():
        for connections, figures in by_level.items():
            lines.append(
                row(
                    [
                        names.get(name, name),
                        connections,
                        cell(figures["requests_per_second"], 0),
                        cell(figures["p50_ms"], 1),
                        cell(figures["p99_ms"], 1),
                        cell(figures["cpu_ms_per_request"], 2)
                        if "cpu_ms_per_request" in figures
                        else "n/a",
                        str(figures["non_2xx"]),
                        str(figures["socket_errors"]),
                    ]
                )
            )
    ratio = report["throughput_ratio_c16"]
    calls = report["model_call_ms"]
    text = "\n".join(lines) + (
        f"\n\nMedian (min-max) of {report['runs']} loads of {report['duration_seconds']} s per "
        f"level. Throughput at 16 connections, BentoML over FastAPI: {ratio['median']:.2f} "
        f"(min {ratio['min']:.2f}). One call of the model, in-process, scikit-learn pipeline "
        f"against the compiled model ({calls.get('runtime', 'n/a')}): "
        f"{calls['scikit-learn']['1']:.2f} ms against {calls['compiled']['1']:.3f} ms for 1 row, "
        f"{calls['scikit-learn']['64']:.2f} ms against {calls['compiled']['64']:.3f} ms for 64. "
        f"Machine: {report['machine']['cpus']} CPUs, {report['machine']['cpu']}."
    )
    targets = report.get("targets", {})
    if targets:
        text += "\n\n" + row(["Target", "Wanted", "Measured (median)", "Met"]) + "\n"
        text += row(["---", "---:", "---:", "---"]) + "\n"
        text += "\n".join(
            row(
                [name, entry["target"], f"{entry['measured']:.3g}", "yes" if entry["met"] else "no"]
            )
            for name, entry in targets.items()
        )
    return text


FLOOR_LABELS = {
    "resolve": "uv resolving the dependencies from the package index (no lockfile yet)",
    "resolve_cache": "The same from uv's cache alone (`--offline`, tried first by `make setup`)",
    "first_imports_fresh": "Loading what the stages import (the stage server): new environment",
    "first_imports_cached": "The same imports, bytecode cached",
    "bytecode_compile": "**Bytecode compilation on first import** (difference of the two)",
    "mlflow_store_created": "Import MLflow and create the SQLite store (first pipeline run)",
    "mlflow_per_process": "Import MLflow and open the existing store (once per pipeline run)",
    "precompile_all": "`uv sync --compile-bytecode`: compiling the whole environment instead",
}


def floors_table(report: dict) -> str:
    """The measured costs under the startup figures."""
    lines = [row(["Cost", "Median", "Min", "Max"]), row(["---", *["---:"] * 3])]
    for name, label in FLOOR_LABELS.items():
        if name in report["figures"]:  # a results file older than the row has not got it
            lines.append(row([label, *spread(report["figures"][name])]))
    files = report["figures"]["precompiled_files"]["median"]
    return "\n".join(lines) + f"\n\nSeconds; {report['runs']} fresh renders; {files:,.0f} files."


# name: (the command, what the row says of it)
TEMPLATE_COMMANDS = {
    "test": ("make test", "fast tests and the end-to-end smoke, set-up included"),
    "test_all": ("make test-all", "as CI runs it (`bash .ci/run`, CI=true)"),
}


def template_suite_table(report: dict) -> str:
    """One timed run of each of the template's test commands on a fresh clone."""
    lines = [
        row(["Command on a fresh clone", "Minutes", "Target", "Met"]),
        row(["---", "---:", "---:", "---"]),
    ]
    said = []
    for name, run in report["commands"].items():
        minutes, target = run["seconds"] / 60, run["target_s"] / 60
        met = verdict(minutes, target) if run["passed"] else "**no** (failed)"
        command, what = TEMPLATE_COMMANDS[name]
        lines.append(row([f"`{command}` {what}", f"{minutes:.1f}", f"{target:g}", met]))
        summaries = "; ".join(f"`{line.strip(' =')}`" for line in run["pytest_summaries"])
        said.append(f"`{command}`, {summaries}")
    return "\n".join(lines) + (
        f"\n\nOne run each of commit {report['commit']} (not repeated); pytest said: "
        + "; ".join(said)
        + "."
    )


def render_table(report: dict) -> str:
    """The render now and at the baseline over many interleaved pairs, with the control."""
    lines = [
        row(["Figure", "Now / then (median)", "Pairs min-max"]),
        row(["---", "---:", "---:"]),
    ]
    labels = {
        "render": "Render (`copier copy --defaults`)",
        "control": "*Control: the one-file template, identical both sides*",
    }
    for name, ratio in report["ratios"].items():
        lines.append(row([labels[name], f"{ratio['median']:.2f}", pair_span(ratio)]))
    now, then = (report["seconds"][side]["median"] for side in ("now", "then"))
    return "\n".join(lines) + (
        f"\n\n{report['runs']} pairs against {report['ref']}, alternating which goes first; "
        f"median render {now:.2f} s now, {then:.2f} s then."
    )


def score_table(report: dict) -> str:
    """`make score` against scikit-learn's batch loop, per size, with the targets met or not."""
    header = ["Rows", "`make score` (s)", "Rows/s", "Peak MiB", "scikit-learn loop (s)"]
    header += ["Peak MiB", "Speed-up (pairs min-max)"]
    lines = [row(header), row(["---:"] * len(header))]
    for rows, sizes in report["sizes"].items():
        compiled, sklearn = sizes["compiled"], sizes["sklearn"]
        lines.append(
            row(
                [
                    f"{int(rows):,}",
                    f"{compiled['seconds']['median']:.1f}",
                    f"{compiled['rows_per_second']['median']:,.0f}",
                    f"{compiled['peak_mib']['median']:.0f}",
                    f"{sklearn['seconds']['median']:.1f}",
                    f"{sklearn['peak_mib']['median']:.0f}",
                    f"{sizes['speedup']['median']:.2f} ({pair_span(sizes['speedup'])})",
                ]
            )
        )
    measured, targets = report["measured"], report["targets"]
    return "\n".join(lines) + (
        f"\n\nMedians of {report['runs']} runs each, alternating. Targets at 1,000,000 rows, "
        f"met? At most {targets['seconds_1m']:.0f} s: "
        f"{verdict(measured['seconds_1m'], targets['seconds_1m'])}; at most "
        f"{targets['peak_mib_1m']:.0f} MiB: "
        f"{verdict(measured['peak_mib_1m'], targets['peak_mib_1m'])}; at least "
        f"{targets['speedup']:.0f}x scikit-learn's rows per second: "
        f"{verdict(targets['speedup'], measured['speedup'])}."
    )


def figure(value: float) -> str:
    """A metric as a cell: three decimals, or whole units with separators from 1,000 up."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def families_table(report: dict) -> str:
    """Each family's primary metric per table, and its fit and 1-row times over all tables."""
    families = ["random_forest", "hist_gradient_boosting", "lightgbm", "xgboost", "linear"]
    linear = {"logistic_regression", "ridge"}

    def family(model: dict) -> str:
        return "linear" if model["model"] in linear else model["model"]

    header = ["Table", "Rows", "Metric", *(f"`{name}`" for name in families), "Best"]
    lines = [row(header), row(["---", "---:", "---", *["---:"] * len(families), "---"])]
    times: dict[str, dict[str, list[float]]] = {
        name: {"fit": [], "compiled": []} for name in families
    }
    wins = dict.fromkeys(families, 0)
    # Folds disagree by a few hundredths on small tables: within one standard deviation
    # of the best mean is as good as the best.
    close = dict.fromkeys(families, 0)
    for name, table in report["tables"].items():
        metric = "f1_macro" if table["task"] == "classification" else "rmse"
        sign = 1 if metric == "f1_macro" else -1
        by_family = {family(model): model for model in table["models"]}
        scores = {key: model["metrics"][metric] for key, model in by_family.items()}
        best = max(scores, key=lambda key: sign * scores[key]["mean"])
        wins[best] += 1
        for key, value in scores.items():
            close[key] += sign * (scores[best]["mean"] - value["mean"]) <= scores[best]["std"]
        for key, model in by_family.items():
            times[key]["fit"].append(model["fit_seconds"])
            times[key]["compiled"].append(model["compiled_ms"])
        cells = [
            f"{figure(scores[key]['mean'])} ± {figure(scores[key]['std'])}"
            if key in scores
            else "-"
            for key in families
        ]
        label = f"{name} (shipped)" if table["shipped"] else name
        lines.append(row([label, str(table["rows"]), metric, *cells, f"`{best}`"]))

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    summary = [
        row(
            [
                "Family",
                "Best on",
                "Within 1 sd of the best",
                "Fit per fold (s, median)",
                "1 row compiled (ms, median)",
            ]
        ),
        row(["---", "---:", "---:", "---:", "---:"]),
        *(
            row(
                [
                    f"`{key}`",
                    f"{wins[key]} of {len(report['tables'])}",
                    f"{close[key]} of {len(report['tables'])}",
                    f"{median(times[key]['fit']):.3f}",
                    f"{median(times[key]['compiled']):.3f}",
                ]
            )
            for key in families
            if times[key]["fit"]
        ),
    ]
    return "\n".join(lines) + (
        "\n\nMean ± standard deviation over the cross-validation folds of the training split "
        "(`make compare-models`); `linear` is logistic regression or ridge.\n\n"
        + "\n".join(summary)
    )


TABLES: dict[str, Callable[[dict], str]] = {
    "dask_training": dask_training_table,
    "families": families_table,
    "floors": floors_table,
    "startup": startup_table,
    "startup_comparison": startup_comparison_table,
    "render": render_table,
    "scale": scale_table,
    "score": score_table,
    "serving": serving_table,
    "template_suite": template_suite_table,
}


def rendered(text: str) -> str:
    """``text`` with every marked table regenerated from its results file."""
    for name, table in TABLES.items():
        start, end = f"<!-- results:{name} -->\n", f"<!-- /results:{name} -->"
        pattern = re.compile(rf"({re.escape(start)})(?:.*?\n)?({re.escape(end)})", re.S)
        results = RESULTS / f"{name.removesuffix('_comparison')}.json"
        if pattern.search(text) and results.exists():
            body = table(json.loads(results.read_text()))
            text = pattern.sub(lambda m, body=body: f"{m.group(1)}{body}\n{m.group(2)}", text)
    return text


def main() -> None:
    check = "--check" in sys.argv[1:]
    stale = []
    for document in DOCUMENTS:
        text = document.read_text()
        fresh = rendered(text)
        if fresh != text:
            stale.append(document.relative_to(ROOT))
            if not check:
                document.write_text(fresh)
    if check and stale:
        sys.exit(f"out of date with benchmarks/results/: {', '.join(map(str, stale))}")
    print(
        ("stale: " if check else "updated: ") + ", ".join(map(str, stale)) if stale else "current"
    )


if __name__ == "__main__":
    main()
