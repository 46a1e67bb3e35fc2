"""Time to first prediction and the daily costs of a generated project.

Measures, over RUNS fresh renders with the defaults (warm uv cache; BENCH_RUNS, 3):
1. time to first prediction, by step: render, environment sync, pipeline, service
   ready, first answer;
2. render time of this template against copier rendering a one-file template (the
   floor), as a ratio measured in the same run;
3. a cold `make pipeline`, an unchanged re-run, and a forced re-run of every stage;
4. the generated daily test tier's wall time (`make test`).
Writes benchmarks/results/startup.json and prints a markdown table.

With ``BENCH_BASELINE=<release or git ref>`` it measures pairs instead (BENCH_RUNS, 4):
the template now and as it was at that ref, back to back, each first in half of the
pairs, after one unmeasured pair; the results hold each figure's ratio of now over then
(below 1: faster now), side by side from the same runs. Both render from a one-commit
copy of their tree.

Run with `make bench-startup` (`make bench-startup BENCH_BASELINE=0.4.0`).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from report import startup_table

from helpers.commands import developer_environment as user_env
from helpers.network import free_port, running, wait_until_ready
from helpers.serving import STARTUP_SECONDS as READY_SECONDS
from helpers.template_versions import release_commit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "startup.json"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# Side by side, an even number of pairs: each template goes first as often as second.
PAIRS = int(os.environ.get("BENCH_RUNS", "4"))
PYTHON_VERSION = os.environ.get("BENCH_PYTHON", "3.12")
COPIER = [sys.executable, "-m", "copier"]
# Issue 16's targets, on the 2-core machine with a warm uv cache.
TARGETS = {
    "first_prediction_s": 30.0,
    "render_ratio": 3.0,
    "pipeline_cold_s": 15.0,
    "pipeline_unchanged_s": 2.0,
    "test_suite_s": 30.0,
}


def timed(command: list[str], cwd: Path) -> float:
    """Wall time of a command that must succeed, run as from a user's shell."""
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=user_env(), check=True, capture_output=True)
    return time.perf_counter() - started


def render(destination: Path, template: Path, *extra: str) -> float:
    command = [*COPIER, "copy", "--quiet", "--defaults", "--trust", "--vcs-ref", "HEAD", *extra]
    return timed([*command, str(template), str(destination)], destination.parent)


def first_prediction(scratch: Path, uv: str, template: Path = ROOT) -> dict:
    """Render, sync, pipeline, serve and ask: each step's seconds."""
    project = scratch / "project"
    steps = {"render": render(project, template, "--data", f"python_version={PYTHON_VERSION}")}
    make = ["make", "--no-print-directory", f"UV={uv}"]
    steps["environment"] = timed([*make, "setup"], project)
    steps["pipeline"] = timed([*make, "pipeline"], project)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**user_env(), "BENTOML_DO_NOT_TRACK": "true"}  # as `make serve` starts it
    bentoml = str(project / ".venv" / "bin" / "bentoml")
    # The service's entry point as the project names it (it moved with the kit).
    service = yaml.safe_load((project / "bentofile.yaml").read_text())["service"]
    command = [bentoml, "serve", service, "--port", str(port)]
    started = time.perf_counter()
    with running([*command, "--host", "127.0.0.1"], project, env) as process:
        wait_until_ready(url, READY_SECONDS, process, interval=0.1)
        steps["service_ready"] = time.perf_counter() - started
        body = (project / "models" / "champion" / "example_request.json").read_bytes()
        request = urllib.request.Request(
            f"{url}/predict", data=body, headers={"content-type": "application/json"}
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert "prediction" in json.loads(answer.read())
        steps["first_answer"] = time.perf_counter() - started
    steps["unchanged_pipeline"] = timed([*make, "pipeline"], project)
    # Every stage again, now that bytecode is cached and the MLflow store exists: the
    # pipeline's daily cost, without the one-time costs of a fresh project.
    steps["forced_pipeline"] = timed([*make, "pipeline", "DVC_FLAGS=--force"], project)
    python = str(project / ".venv" / "bin" / "python")
    steps["dvc_noop"] = timed([python, "-m", "dvc", "repro"], project)
    steps["test_suite"] = timed([*make, "test"], project)
    # What `make test` collects: the daily tier of tests/ (the kit's own run in test-all).
    daily = ["--collect-only", "-q", "-m", "not integration and not serving and not slow", "tests"]
    steps["test_collection"] = timed([python, "-m", "pytest", *daily], project)
    return steps


def render_floor(scratch: Path) -> float:
    """Copier rendering a one-file template: the fixed cost of copier itself."""
    template = scratch / "one-file"
    template.mkdir()
    (template / "copier.yml").write_text("name:\n  type: str\n  default: demo\n")
    (template / "README.md.jinja").write_text("# {{ name }}\n")
    subprocess.run(["git", "init", "-q"], cwd=template, check=True)
    subprocess.run(["git", "add", "-A"], cwd=template, check=True)
    subprocess.run(["git", "commit", "-qm", "one file"], cwd=template, check=True)
    return render(scratch / "floor", template)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def template_at(ref: str, destination: Path) -> Path:
    """The template as it was at ``ref`` (a release in CHANGELOG.md or a git ref), as a
    one-commit repository copier renders from."""
    try:
        commit = release_commit(ref)
    except LookupError:
        commit = ref
    destination.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x"], input=archive, cwd=destination, check=True)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", f"template at {ref}"]):
        subprocess.run(["git", *command], cwd=destination, check=True, env=user_env())
    return destination


def working_tree() -> str:
    """A commit of the checkout as it is (tracked files, edits included), or HEAD."""
    stash = subprocess.run(
        ["git", "stash", "create"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return stash.stdout.strip() or "HEAD"


def main() -> None:
    uv = os.environ.get("UV", "uv")
    baseline_ref = os.environ.get("BENCH_BASELINE", "")
    runs, before = [], []
    with tempfile.TemporaryDirectory() as kept:
        # Both sides render from a one-commit repository, as the floor does: copier clones
        # a local template with its whole history, which a user's cached mirror of the
        # template's URL does not pay on every render (0.2 s on this repository).
        current = template_at(working_tree(), Path(kept) / "now")
        baseline = template_at(baseline_ref, Path(kept) / "baseline") if baseline_ref else None
        if baseline:
            # One unmeasured round first: the first render and pipeline of a session pay
            # for cold disk caches, which would fall on whichever template went first.
            for template in (current, baseline):
                with tempfile.TemporaryDirectory() as scratch:
                    first_prediction(Path(scratch), uv, template)
        for number in range(PAIRS if baseline else RUNS):
            # Alternating the order spreads the machine's drift over both.
            order = ["now", "then"] if number % 2 == 0 else ["then", "now"]
            for which in order if baseline else ["now"]:
                with tempfile.TemporaryDirectory() as scratch:
                    template = current if which == "now" else baseline
                    steps = first_prediction(Path(scratch), uv, template)
                    steps["render_floor"] = render_floor(Path(scratch))
                (runs if which == "now" else before).append(steps)
                print(which, json.dumps(steps), flush=True)
    figures = {name: summary([run[name] for run in runs]) for name in runs[0]}
    first = ["render", "environment", "pipeline", "service_ready", "first_answer"]
    measured = {
        "first_prediction_s": summary([sum(run[s] for s in first) for run in runs]),
        "render_ratio": summary([run["render"] / run["render_floor"] for run in runs]),
        "pipeline_cold_s": figures["pipeline"],
        "pipeline_unchanged_s": figures["unchanged_pipeline"],
        "test_suite_s": figures["test_suite"],
    }
    report = {"runs": len(runs), "steps": figures, "measured": measured, "targets": TARGETS}
    if before:
        report["baseline"] = {
            "ref": baseline_ref,
            "steps": {name: summary([run[name] for run in before]) for name in before[0]},
            # Now over then, run by run (each pair measured back to back).
            "ratios": {
                name: summary([a[name] / b[name] for a, b in zip(runs, before, strict=True)])
                for name in runs[0]
                if name in before[0]
            },
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(startup_table(report))


if __name__ == "__main__":
    main()
