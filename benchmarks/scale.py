"""The generated pipeline at scale: synthetic tables of 100 thousand and 1 million rows.

Renders a project with the defaults, has it generate synthetic tables with its own
command (`make synthetic ROWS=...`: the shipped data resampled and jittered, same
schema), points `data.source` at each one and runs every stage of `dvc.yaml` in
order, RUNS times per size. For each stage: wall time and peak memory (the maximum
resident set size of the stage's process tree, from wait4). Targets: the whole
pipeline at 1M rows takes at most 12 times as long as at 100k, and no stage at 1M
peaks above 2 GiB. Writes benchmarks/results/scale.json and prints the table report.py
publishes.

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
SIZES = [int(rows) for rows in os.environ.get("BENCH_ROWS", "100000,1000000").split(",")]
TARGETS = {"time_ratio": 12.0, "peak_memory_mib": 2048.0}


def stage_commands(project: Path) -> dict[str, str]:
    """The pipeline's stages and their commands, in dvc.yaml's (data-flow) order."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    return {name: stage["cmd"] for name, stage in stages.items()}


def project_env(project: Path) -> dict[str, str]:
    """The environment `make pipeline` gives a stage: the project's .venv first on PATH."""
    venv, env = project / ".venv", user_env()
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}


def measured_run(command: str, project: Path) -> tuple[float, float]:
    """Seconds and peak MiB of a shell command's process tree; fails loudly on error."""
    # stderr goes to a file: a stage writing more than a pipe holds would block wait4.
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            shell=True,
            cwd=project,
            env=project_env(project),
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


def run_pipeline(project: Path, rows: int) -> dict[str, dict[str, float]]:
    """Compose params for the synthetic table of ``rows`` rows, then run every stage."""
    source = f"data/synthetic/rows-{rows}.parquet"
    python = str(project / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-m", "mlops_kit.config", f"data.source={source}"],
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


def main() -> None:
    uv = os.environ.get("UV", "uv")
    make = ["make", "--no-print-directory", f"UV={uv}"]
    runs: dict[int, list[dict]] = {rows: [] for rows in SIZES}
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        render(project, ROOT, "--data", f"python_version={PYTHON_VERSION}")
        for target in ["setup", *(f"synthetic ROWS={rows}" for rows in SIZES)]:
            command = [*make, *target.split()]
            subprocess.run(command, cwd=project, env=user_env(), check=True, capture_output=True)
        run_pipeline(project, min(SIZES))  # warm-up: the first run writes bytecode caches
        for _ in range(RUNS):
            for rows in SIZES:
                stages = run_pipeline(project, rows)
                runs[rows].append(stages)
                print(json.dumps({"rows": rows, "stages": stages}), flush=True)

    totals = {
        rows: [sum(s["seconds"] for s in run.values()) for run in runs[rows]] for rows in SIZES
    }
    sizes = {}
    for rows, measured in runs.items():
        sizes[str(rows)] = {
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
    ratios = [
        big / little for big, little in zip(totals[max(SIZES)], totals[min(SIZES)], strict=True)
    ]
    measured = {
        "time_ratio": summary(ratios),
        "peak_memory_mib": sizes[str(max(SIZES))]["peak_mib"],
    }
    report = {"runs": RUNS, "sizes": sizes, "measured": measured, "targets": TARGETS}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(scale_table(report))


if __name__ == "__main__":
    main()
