"""The template's own test suite, as CI runs it: one run on a fresh clone.

Clones this repository's HEAD without tags into a temporary folder and times
`bash .ci/run` (which installs what the suite needs and runs `make test`) with CI=true,
no PYENV_VERSION and the caller's VIRTUAL_ENV left in place (under `make` it is the
template's own: a stray one, as CI runners may have), the way CI runs it. One run only:
it takes tens of minutes, so the figure is one measurement, not a median. Writes
benchmarks/results/template_suite.json, keeps the run's log in the temporary folder
(template-suite.log) and prints the table report.py publishes.

Run with `make bench-template` (not part of `make bench`).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import template_suite_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "template_suite.json"
TARGET_S = 20 * 60.0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="template-suite-") as scratch:
        clone = Path(scratch) / "copier-mlops"
        subprocess.run(["git", "clone", "--quiet", "--no-tags", str(ROOT), str(clone)], check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=clone,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dropped = ("PYENV_VERSION", "UV")
        env = {name: value for name, value in os.environ.items() if name not in dropped}
        env["CI"] = "true"
        log = Path(scratch) / "ci.log"
        started = time.perf_counter()
        with log.open("wb") as output:
            suite = subprocess.Popen(
                ["bash", ".ci/run"],
                cwd=clone,
                env=env,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
            # Stopped early (Ctrl+C, kill), the suite goes too: an orphan would share the
            # cores with whatever is measured next.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            try:
                returncode = suite.wait()
            finally:
                if suite.poll() is None:
                    os.killpg(suite.pid, signal.SIGKILL)
                    suite.wait()
        seconds = time.perf_counter() - started
        pytest_summary = re.compile(r"^=+ .* in [\d.]+s.* =+$")
        summary = [line for line in log.read_text().splitlines() if pytest_summary.match(line)]
        # The clone goes with the scratch folder; its log (pytest's slowest tests, or why
        # it failed) stays for reading.
        kept = Path(tempfile.gettempdir()) / "template-suite.log"
        kept.write_bytes(log.read_bytes())
        print(f"log: {kept}")
    report = {
        "commit": commit,
        "seconds": seconds,
        "passed": returncode == 0,
        "pytest_summaries": summary,
        "target_s": TARGET_S,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(template_suite_table(report))


if __name__ == "__main__":
    main()
