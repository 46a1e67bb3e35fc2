"""Batch scoring (`make score`) at 100 thousand and 1 million rows, against scikit-learn.

Renders a project with the defaults, trains its champion (`make pipeline`) and has it
make synthetic tables of each size (`make synthetic ROWS=...`). Each size is then
scored RUNS times by the project's own command and, in the same run, by the same
loop with the pickled scikit-learn pipeline predicting instead of the compiled model
(read the Parquet file in the same chunks, predict, write Parquet): seconds, rows per
second and peak memory (the largest resident set of the process tree, from wait4)
of both, and their ratio. Targets: 1,000,000 rows in at most 60 s and 1.5 GiB, at
least 5 times scikit-learn's rows per second. Writes benchmarks/results/score.json.

Run with `make bench-score`.
"""

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from scale import measured_run, project_env
from startup import PYTHON_VERSION, RUNS, render, summary

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "score.json"
SIZES = [int(rows) for rows in os.environ.get("BENCH_ROWS", "100000,1000000").split(",")]
TARGETS = {"seconds_1m": 60.0, "peak_mib_1m": 1536.0, "speedup": 5.0}

# The baseline: `make score`'s loop (chunks of the same size, Parquet in and out) with
# the pickled pipeline, as a team without the compiled model would write it.
SKLEARN_LOOP = """
import sys, joblib, pyarrow as pa, pyarrow.parquet as pq
from mlops_kit.score import CHUNK_ROWS
source, target = sys.argv[1], sys.argv[2]
model = joblib.load("models/champion/model.joblib")
columns = list(model.feature_names_in_)
writer = None
for batch in pq.ParquetFile(source).iter_batches(batch_size=CHUNK_ROWS, columns=columns):
    frame = batch.to_pandas()
    out = {"row": range(len(frame)), "prediction": model.predict(frame)}
    if hasattr(model, "predict_proba"):
        for k, share in enumerate(model.predict_proba(frame).T):
            out[f"probability_{k}"] = share
    table = pa.table(out)
    writer = writer or pq.ParquetWriter(target, table.schema)
    writer.write_table(table)
writer.close()
"""


def trained_project(scratch: Path, uv: str) -> Path:
    """A default project with its champion exported and the synthetic tables made."""
    project = scratch / "project"
    render(project, ROOT, "--data", f"python_version={PYTHON_VERSION}")
    make = ["make", "--no-print-directory", f"UV={uv}"]
    env = project_env(project)
    for target in (["setup"], ["pipeline"], *[["synthetic", f"ROWS={rows}"] for rows in SIZES]):
        subprocess.run([*make, *target], cwd=project, env=env, check=True, capture_output=True)
    return project


def main() -> None:
    uv = os.environ.get("UV", "uv")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        project = trained_project(Path(scratch), uv)
        python = project / ".venv" / "bin" / "python"
        for rows in SIZES:
            source = f"data/synthetic/rows-{rows}.parquet"
            runs: dict[str, list] = {"compiled": [], "sklearn": []}
            for number in range(RUNS):
                # Alternating the order spreads the machine's drift over both.
                order = ["compiled", "sklearn"] if number % 2 == 0 else ["sklearn", "compiled"]
                for which in order:
                    output = Path(scratch) / f"{which}.parquet"
                    if which == "compiled":
                        command = f"{python} -m mlops_kit.score {source} {output}"
                    else:
                        loop = Path(scratch) / "sklearn_loop.py"
                        loop.write_text(SKLEARN_LOOP)
                        command = f"{python} {loop} {source} {output}"
                    runs[which].append(measured_run(command, project))
            figures = {
                which: {
                    "seconds": summary([seconds for seconds, _ in measured]),
                    "rows_per_second": summary([rows / seconds for seconds, _ in measured]),
                    "peak_mib": summary([mib for _, mib in measured]),
                }
                for which, measured in runs.items()
            }
            figures["speedup"] = summary(
                [
                    slow / fast
                    for (fast, _), (slow, _) in zip(runs["compiled"], runs["sklearn"], strict=True)
                ]
            )
            results[str(rows)] = figures
            print(rows, json.dumps(figures), flush=True)
    largest = results[str(max(SIZES))]
    report = {
        "runs": RUNS,
        "sizes": results,
        "measured": {
            "seconds_1m": largest["compiled"]["seconds"]["median"],
            "peak_mib_1m": largest["compiled"]["peak_mib"]["median"],
            "speedup": statistics.median([largest["speedup"]["median"]]),
        },
        "targets": TARGETS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
