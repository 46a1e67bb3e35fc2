"""Serving benchmark: the generated BentoML service against a FastAPI baseline.

Renders a project with the defaults, trains it, then serves the same exported
champion both ways, one after the other, on loopback, and loads each with wrk
(same tool, same body, same connections and duration), RUNS times per level after
a discarded warm-up. Writes benchmarks/results/serving.json (median, min and max of
each figure) and prints the table report.py publishes.

Run with `make bench` (needs wrk: `apt-get install wrk`).
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from copier import run_copy
from report import serving_table
from servers import free_port, served, wait_ready
from startup import RUNS, summary, user_env

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
CONCURRENCIES = (16, 64)
DURATION_SECONDS = 10
WRK_THREADS = 2
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


def run(command: list[str], cwd: Path, **options) -> subprocess.CompletedProcess:
    """Run a command, echoing it, failing loudly."""
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=cwd, check=True, **options)


def parse_wrk(output: str) -> dict:
    """Requests per second, latency percentiles (ms), non-2xx and socket errors."""

    def milliseconds(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50_ms": milliseconds(percentiles["50"]),
        "p99_ms": milliseconds(percentiles["99"]),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def load(url: str, body: Path, connections: int, workdir: Path) -> dict:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=body))
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{DURATION_SECONDS}s"]
    command += ["--latency", "-s", str(script), f"{url}/predict"]
    output = run(command, workdir, capture_output=True, text=True).stdout
    return parse_wrk(output)


def measure(server: list[str], project: Path, body: Path, env: dict) -> dict:
    """Start one server, load it at each concurrency, stop it."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in server]
    with served(command, project, env):
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        load(url, body, CONCURRENCIES[0], project)  # warm-up, discarded
        return {str(c): [load(url, body, c, project) for _ in range(RUNS)] for c in CONCURRENCIES}


def summarized(runs: list[dict]) -> dict:
    """Median, min and max of the rates and latencies of repeated loads; error totals."""
    return {
        **{
            name: summary([run[name] for run in runs])
            for name in ("requests_per_second", "p50_ms", "p99_ms")
        },
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
        "runs": runs,
    }


PREDICT_TIMING = """
import json, statistics, sys, time
import joblib, pandas as pd
bundle = sys.argv[1]
model = joblib.load(f"{bundle}/model.joblib")
row = pd.DataFrame([json.load(open(f"{bundle}/example_request.json"))])
call = model.predict_proba if hasattr(model, "predict_proba") else model.predict
def median_ms(frame, repeats=30):
    call(frame)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(frame)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
print(json.dumps({"1": median_ms(row), "64": median_ms(pd.concat([row] * 64))}))
"""


def model_call_ms(python: str, bundle: Path, env: dict) -> dict:
    """Median milliseconds of one model call on 1 and on 64 rows, in-process: the floor
    under any server's latency."""
    output = subprocess.run(
        [python, "-c", PREDICT_TIMING, str(bundle)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output)


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu": cpu, "system": platform.platform()}


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    uv = os.environ.get("UV", "uv")
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "bench-project"
        version = os.environ.get("BENCH_PYTHON", "3.12")
        run_copy(
            str(ROOT),
            project,
            defaults=True,
            unsafe=True,
            vcs_ref="HEAD",
            quiet=True,
            data={"python_version": version},
        )
        run(["make", "setup", "pipeline", f"UV={uv}"], project)
        run(
            [uv, "pip", "install", "--quiet", "--python", ".venv/bin/python", "fastapi", "uvicorn"],
            project,
        )
        python = str(project / ".venv" / "bin" / "python")
        bundle = project / "models" / "champion"
        body = bundle / "example_request.json"
        env = {**user_env(), "BENTOML_DO_NOT_TRACK": "true", "MODEL_BUNDLE": str(bundle)}
        package = json.loads((bundle / "metadata.json").read_text())["model_name"]
        servers = {
            "bentoml": [
                python,
                "-m",
                "bentoml",
                "serve",
                f"{package}.serve:ModelService",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
            ],
            "fastapi": [
                python,
                str(ROOT / "benchmarks" / "fastapi_baseline.py"),
                str(bundle),
                "{port}",
            ],
        }
        model_call = model_call_ms(python, bundle, env)
        raw = {name: measure(command, project, body, env) for name, command in servers.items()}
    low = str(CONCURRENCIES[0])
    ratios = [
        bento["requests_per_second"] / fast["requests_per_second"]
        for bento, fast in zip(raw["bentoml"][low], raw["fastapi"][low], strict=True)
    ]
    report = {
        "machine": machine(),
        "runs": RUNS,
        "duration_seconds": DURATION_SECONDS,
        "results": {
            name: {c: summarized(runs) for c, runs in by_level.items()}
            for name, by_level in raw.items()
        },
        "throughput_ratio_c16": summary(ratios),
        "model_call_ms": model_call,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(serving_table(report))


if __name__ == "__main__":
    main()
