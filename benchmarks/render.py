"""The render alone, now against a release, in many interleaved pairs.

A render takes two seconds, and one pair of them varies by a fifth on this machine, so
the three to six pairs of `bench-startup` cannot tell a few percent apart. This renders
both templates (each from a one-commit copy of its tree, with the defaults) RUNS times
in alternating order, beside the one-file template as a control that is identical on
both sides, and writes the paired ratios to benchmarks/results/render.json.

Run with `make bench-render BENCH_BASELINE=0.4.0` (BENCH_RUNS, 20).
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from startup import PYTHON_VERSION, render, render_floor, summary, template_at, working_tree

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "render.json"
RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def main() -> None:
    baseline_ref = os.environ.get("BENCH_BASELINE") or "0.4.0"
    seconds: dict[str, list[float]] = {"now": [], "then": [], "floor_now": [], "floor_then": []}
    answers = ("--data", f"python_version={PYTHON_VERSION}")
    with tempfile.TemporaryDirectory() as kept:
        templates = {
            "now": template_at(working_tree(), Path(kept) / "now"),
            "then": template_at(baseline_ref, Path(kept) / "then"),
        }
        for number in range(RUNS):
            order = ["now", "then"] if number % 2 == 0 else ["then", "now"]
            for which in order:
                scratch = Path(kept) / "scratch"
                scratch.mkdir()
                seconds[which].append(render(scratch / "project", templates[which], *answers))
                seconds[f"floor_{which}"].append(render_floor(scratch))
                shutil.rmtree(scratch)
    ratios = {
        name: summary([a / b for a, b in zip(seconds[now], seconds[then], strict=True)])
        for name, now, then in (
            ("render", "now", "then"),
            ("control", "floor_now", "floor_then"),
        )
    }
    report = {
        "runs": RUNS,
        "ref": baseline_ref,
        "seconds": {name: summary(values) for name, values in seconds.items()},
        "ratios": ratios,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
