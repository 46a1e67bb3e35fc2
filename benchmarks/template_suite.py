"""The template's own two test commands, each timed once on a fresh clone.

For each command, this repository's HEAD is cloned without tags into a temporary
folder and the command is timed there, set-up included:

- `make test`, as a newcomer or a contributor runs it: the fast tests and one
  end-to-end smoke, the template's environment made first (target: 10 minutes);
- `bash .ci/run`, as CI runs it (it installs what the suite needs and runs `make
  test-all`, every end-to-end scenario included), with CI=true, no PYENV_VERSION and
  the caller's VIRTUAL_ENV left in place (under `make` it is the template's own: a
  stray one, as CI runners may have) (target: 30 minutes).

One run each: together they take tens of minutes, so each figure is one measurement,
not a median. Writes benchmarks/results/template_suite.json, keeps each run's log
(pytest's slowest tests are at its end) as template-suite-<command>.log in the
temporary folder, and prints the table report.py publishes.

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
# name: (command, CI's environment or a developer's, target in seconds)
COMMANDS = {
    "test": (["make", "test"], False, 10 * 60.0),
    "test_all": (["bash", ".ci/run"], True, 30 * 60.0),
}
PYTEST_SUMMARY = re.compile(r"^=+ .* in [\d.]+s.* =+$")


def timed_on_a_fresh_clone(command: list[str], as_ci: bool, log: Path) -> dict:
    """Clone HEAD without tags, run ``command`` in the clone; its time, outcome and
    pytest's summary lines. The output goes to ``log``."""
    with tempfile.TemporaryDirectory(prefix="template-suite-") as scratch:
        clone = Path(scratch) / "copier-mlops"
        subprocess.run(["git", "clone", "--quiet", "--no-tags", str(ROOT), str(clone)], check=True)
        dropped = ("PYENV_VERSION", "UV")
        env = {name: value for name, value in os.environ.items() if name not in dropped}
        if as_ci:
            env["CI"] = "true"
        else:
            env.pop("CI", None)
        started = time.perf_counter()
        with log.open("wb") as output:
            suite = subprocess.Popen(
                command,
                cwd=clone,
                env=env,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
            try:
                returncode = suite.wait()
            finally:
                # Stopped early (Ctrl+C, kill), the suite goes too: an orphan would share
                # the cores with whatever is measured next.
                if suite.poll() is None:
                    os.killpg(suite.pid, signal.SIGKILL)
                    suite.wait()
        seconds = time.perf_counter() - started
    summaries = [line for line in log.read_text().splitlines() if PYTEST_SUMMARY.match(line)]
    return {"seconds": seconds, "passed": returncode == 0, "pytest_summaries": summaries}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    report: dict = {"commit": commit, "commands": {}}
    for name, (command, as_ci, target) in COMMANDS.items():
        log = Path(tempfile.gettempdir()) / f"template-suite-{name}.log"
        print(f"{' '.join(command)} on a fresh clone of {commit} (log: {log})", flush=True)
        report["commands"][name] = {
            "command": " ".join(command),
            "target_s": target,
            **timed_on_a_fresh_clone(command, as_ci, log),
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(template_suite_table(report))


if __name__ == "__main__":
    main()
