"""A real Dask cluster on loopback: one scheduler and worker processes, from a project's env.

The processes run ``dask`` from the generated project's environment with its
``sweep`` group (``uv run --group sweep``), so workers import the project's package
as a real cluster's workers would. Every listener is told 127.0.0.1, dashboards
too (``--no-dashboard`` would still bind their HTTP servers on 0.0.0.0, which the
test checks with ``ss``); ``DaskCluster.stop`` ends each process group it started,
whatever happened.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from helpers.network import free_port, stop_process, wait_until


@dataclass
class DaskCluster:
    """Where a running cluster's scheduler listens, and how to stop its processes."""

    project: Path
    uv: str
    logs: Path
    scheduler_port: int = field(default_factory=free_port)
    # Each worker's --memory-limit (such as "400MiB"); None leaves Dask's default (the
    # machine's memory shared between workers). The nanny restarts a worker past 95% of it.
    memory_limit: str | None = None
    # Dask pauses a worker at 80% of its limit; a paused worker starts no task, and
    # LightGBM's collective then waits for a peer that never joins. False leaves only
    # the nanny's restart at 95% (distributed.worker.memory.pause: false).
    pause: bool = True
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The scheduler's address, as DASK_SCHEDULER_ADDRESS takes it."""
        return f"tcp://127.0.0.1:{self.scheduler_port}"

    def spawn(self, name: str, *arguments: str) -> subprocess.Popen:
        """Start ``dask <arguments>`` in its own session, its output in ``logs/<name>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ)
        if not self.pause:
            environment["DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE"] = "False"
        with (self.logs / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                [self.uv, "run", "--frozen", "--group", "sweep", "dask", *arguments],
                cwd=self.project,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start(self, workers: int) -> None:
        """Start the scheduler, then ``workers`` single-threaded worker processes."""
        scheduler = self.spawn(
            "scheduler", "scheduler", "--host", "127.0.0.1",
            "--port", str(self.scheduler_port), "--dashboard-address", "127.0.0.1:0",
        )  # fmt: skip
        # The first `uv run --group sweep` installs the group: workers start after it.
        wait_until(
            lambda: "Scheduler at:" in (self.logs / "scheduler.log").read_text(),
            "the Dask scheduler",
            timeout=240,
            process=scheduler,
        )
        for number in range(workers):
            self.spawn(
                f"worker-{number}", "worker", self.address, "--host", "127.0.0.1",
                "--nworkers", "1", "--nthreads", "1", "--dashboard-address", "127.0.0.1:0",
                *(["--memory-limit", self.memory_limit] if self.memory_limit else []),
            )  # fmt: skip
        wait_until(
            lambda: len(self.worker_addresses()) == workers,
            f"{workers} Dask workers",
            timeout=120,
            process=scheduler,
        )

    def worker_addresses(self) -> set[str]:
        """The addresses the started workers announced in their logs."""
        found = set()
        for log in self.logs.glob("worker-*.log"):
            found.update(re.findall(r"Start worker at:\s+(tcp://\S+)", log.read_text()))
        return found

    def listeners(self) -> list[str]:
        """Local addresses the cluster's processes listen on (TCP), read with ``ss``."""
        if shutil.which("ss") is None:
            raise RuntimeError("ss (iproute2) is not installed: cannot list listening sockets")
        table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        pids = {str(pid) for pid in self.process_tree()}
        return [
            line.split()[3]
            for line in table.splitlines()
            if set(re.findall(r"pid=(\d+)", line)) & pids
        ]

    def process_tree(self) -> set[int]:
        """Every process of the sessions started here (uv and the dask processes below it)."""
        sessions = {str(process.pid) for process in self.processes}
        table = subprocess.run(
            ["ps", "-eo", "pid=,sid="], capture_output=True, text=True, check=True
        ).stdout
        rows = (line.split() for line in table.splitlines())
        return {int(pid) for pid, sid in rows if sid in sessions}

    def stop(self) -> None:
        """End every process group started here, workers first."""
        for process in reversed(self.processes):
            stop_process(process)


def train_lightgbm_on(project: Path, source: str, partition_rows: int) -> None:
    """Edit conf/ of ``project``: ``source`` as data.source, conf/model/lightgbm, and train
    splits written in row groups (partitions) of ``partition_rows``.

    conf/, not params.yaml: `make pipeline` composes params.yaml from conf/ again.
    """
    config = project / "conf" / "config.yaml"
    config.write_text(re.sub(r"(?m)^  - model: \w+$", "  - model: lightgbm", config.read_text()))
    data_file = next((project / "conf" / "data").glob("*.yaml"))
    data_text = data_file.read_text()
    if not re.search(r"(?m)^source: ", data_text):
        raise ValueError(f"{data_file} has no source: line to point at {source}")
    data_file.write_text(re.sub(r"(?m)^source: .*$", f"source: {source}", data_text))
    train = project / "conf" / "train" / "default.yaml"
    pattern = r"(?m)^  partition_rows: \d+$"
    train.write_text(re.sub(pattern, f"  partition_rows: {partition_rows}", train.read_text()))
