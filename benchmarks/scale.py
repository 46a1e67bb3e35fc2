"""The generated pipeline at scale: synthetic tables of 100 thousand to 10 million rows.

Renders a project with the defaults, has it generate synthetic tables with its own
command (`make synthetic ROWS=...`: the shipped data resampled and jittered, same
schema), points `data.source` at each one and runs every stage of `dvc.yaml` in
order. For each stage: wall time and peak memory (the maximum resident set size of
the stage's process tree, from wait4). Two series, each with its own targets:

- ``default``: the default model (a random forest) at 100k and 1M rows, BENCH_RUNS
  runs (3): the pipeline at 1M takes at most 12 times as long as at 100k, and no
  stage at 1M peaks above 2 GiB;
- ``lightgbm``: LightGBM (``model=lightgbm``, the override `python -m mlops_kit.config`
  composes) at 1M and 10M rows, BENCH_LIGHTGBM_RUNS runs (3: some 25 minutes on the
  2-core machine, the 10M pipeline about six): the pipeline at 10M takes at most 600 s
  and 12 times as long as at 1M, and no stage at 10M peaks above 4 GiB.

Environment: BENCH_SCALE picks the series (``default,lightgbm``); BENCH_ROWS and
BENCH_LIGHTGBM_ROWS their sizes. A series not run keeps its figures from the last
results file, so `BENCH_SCALE=lightgbm make bench-scale` re-measures LightGBM alone.
Each series records the load average around its runs: the figures are only as quiet
as the machine was. Writes benchmarks/results/scale.json and prints the tables
report.py publishes.

Run with `make bench-scale`.
"""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from report import scale_table
from startup import PYTHON_VERSION, RUNS, render, summary, user_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"


def sizes(variable: str, default: str) -> list[int]:
    """Row counts from an environment variable, smallest first."""
    return sorted(int(rows) for rows in os.environ.get(variable, default).split(","))


# Per series: the model override (None: conf/'s default), sizes, runs and targets.
# time_ratio compares the largest size with the smallest; peak_memory_mib is any stage
# at the largest size; total_seconds the whole pipeline at the largest size.
SERIES = {
    "default": {
        "model": None,
        "sizes": sizes("BENCH_ROWS", "100000,1000000"),
        "runs": RUNS,
        "targets": {"time_ratio": 12.0, "peak_memory_mib": 2048.0},
    },
    "lightgbm": {
        "model": "lightgbm",
        "sizes": sizes("BENCH_LIGHTGBM_ROWS", "1000000,10000000"),
        "runs": int(os.environ.get("BENCH_LIGHTGBM_RUNS", "3")),
        "targets": {"time_ratio": 12.0, "peak_memory_mib": 4096.0, "total_seconds": 600.0},
    },
}
CHOSEN = [name.strip() for name in os.environ.get("BENCH_SCALE", ",".join(SERIES)).split(",")]


def stage_commands(project: Path) -> dict[str, str]:
    """The pipeline's stages and their commands, in dvc.yaml's (data-flow) order."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    return {name: stage["cmd"] for name, stage in stages.items()}


def project_env(project: Path) -> dict[str, str]:
    """The environment `make pipeline` gives a stage: the project's .venv first on PATH."""
    venv, env = project / ".venv", user_env()
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}


def measured_run(command: str, project: Path, **environment: str) -> tuple[float, float]:
    """Seconds and peak MiB of a shell command's process tree; fails loudly on error.

    The command runs in ``project_env`` with ``environment`` added.
    """
    # stderr goes to a file: a stage writing more than a pipe holds would block wait4.
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            shell=True,
            cwd=project,
            env={**project_env(project), **environment},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        # wait4 reports the largest resident set of the child and its reaped descendants.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"{command!r} failed:\n{errors.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def run_pipeline(project: Path, source: str, model: str | None) -> dict[str, dict[str, float]]:
    """Compose params for ``source`` (and ``model``), then run every stage."""
    python = str(project / ".venv" / "bin" / "python")
    overrides = [f"data.source={source}", *([f"model={model}"] if model else [])]
    subprocess.run(
        [python, "-m", "mlops_kit.config", *overrides],
        cwd=project,
        env=project_env(project),
        check=True,
        capture_output=True,
    )
    stages = {}
    for name, command in stage_commands(project).items():
        seconds, mib = measured_run(command, project)
        stages[name] = {"seconds": seconds, "peak_mib": mib}
    return stages


def synthetic(rows: int) -> str:
    """The table `make synthetic ROWS=rows` writes (conf/synthetic/'s output_dir)."""
    return f"data/synthetic/rows-{rows}.parquet"


def measure(project: Path, series: dict, shipped: str) -> dict:
    """Run a series: every size, ``runs`` times; its per-stage summary and measured targets."""
    # Warm-up on the shipped table: bytecode caches written, the model's library imported once.
    run_pipeline(project, shipped, series["model"])
    load = [os.getloadavg()[0]]
    runs: dict[int, list[dict]] = {rows: [] for rows in series["sizes"]}
    for _ in range(series["runs"]):
        for rows in series["sizes"]:
            stages = run_pipeline(project, synthetic(rows), series["model"])
            runs[rows].append(stages)
            load.append(os.getloadavg()[0])
            print(
                json.dumps({"model": series["model"], "rows": rows, "stages": stages}), flush=True
            )
    totals = {
        rows: [sum(s["seconds"] for s in run.values()) for run in measured]
        for rows, measured in runs.items()
    }
    result = {}
    for rows, measured in runs.items():
        result[str(rows)] = {
            "stages": {
                name: {
                    "seconds": summary([run[name]["seconds"] for run in measured]),
                    "peak_mib": summary([run[name]["peak_mib"] for run in measured]),
                }
                for name in measured[0]
            },
            "total_seconds": summary(totals[rows]),
            "peak_mib": summary([max(s["peak_mib"] for s in run.values()) for run in measured]),
        }
    largest, smallest = max(runs), min(runs)
    ratios = [big / little for big, little in zip(totals[largest], totals[smallest], strict=True)]
    measured = {
        "time_ratio": summary(ratios),
        "peak_memory_mib": result[str(largest)]["peak_mib"],
        "total_seconds": result[str(largest)]["total_seconds"],
    }
    return {
        "model": series["model"],
        "runs": series["runs"],
        # One-minute load average before the first run and after each: other work on the
        # machine slows the stages, so figures are comparable only at a similar load.
        "load_average": summary(load),
        "sizes": result,
        "measured": {key: value for key, value in measured.items() if key in series["targets"]},
        "targets": series["targets"],
    }


def main() -> None:
    unknown = sorted(set(CHOSEN) - set(SERIES))
    if unknown:
        raise SystemExit(f"BENCH_SCALE: unknown series {unknown}; known: {sorted(SERIES)}")
    uv = os.environ.get("UV", "uv")
    make = ["make", "--no-print-directory", f"UV={uv}"]
    everything = sorted({rows for name in CHOSEN for rows in SERIES[name]["sizes"]})
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    # Results of series not run this time are kept (a file of the older layout has none).
    report = {"series": dict(previous.get("series", {}))}
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        render(project, ROOT, "--data", f"python_version={PYTHON_VERSION}")
        for target in ["setup", *(f"synthetic ROWS={rows}" for rows in everything)]:
            command = [*make, *target.split()]
            subprocess.run(command, cwd=project, env=user_env(), check=True, capture_output=True)
        # The shipped table, as `make setup` composed params.yaml before any override.
        shipped = yaml.safe_load((project / "params.yaml").read_text())["data"]["source"]
        for name in CHOSEN:
            report["series"][name] = measure(project, SERIES[name], shipped)
    report["series"] = {name: report["series"][name] for name in SERIES if name in report["series"]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(scale_table(report))


if __name__ == "__main__":
    main()
