"""A real Prometheus on loopback (Debian's ``prometheus`` package).

``Prometheus`` scrapes the given targets every second and evaluates rule files every
second, so a test sees samples and alerts within seconds; it stops every process it
started.
"""

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.network import free_port, stop_process, wait_until


def require(tool: str) -> str:
    """The path of a Debian prometheus tool; fail naming the package when it is missing."""
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"{tool} is not installed: apt-get install prometheus (.ci/run does)")
    return found


@dataclass
class Prometheus:
    """A Prometheus server in ``root``, listening on 127.0.0.1 only."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Where its HTTP API answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, targets: list[str], rule_files: list[Path]) -> None:
        """Scrape ``targets`` (host:port) every second with ``rule_files`` loaded."""
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "service", "static_configs": [{"targets": targets}]}],
        }
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(config))
        with (self.root / "prometheus.log").open("w") as log:
            self.process = subprocess.Popen(
                [
                    require("prometheus"),
                    f"--config.file={self.root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(
            lambda: urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200,
            "Prometheus",
            timeout=60,
            process=self.process,
        )

    def api(self, path: str, **arguments: str) -> object:
        """The ``data`` of an answer of its HTTP API."""
        query = f"?{urllib.parse.urlencode(arguments)}" if arguments else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        if body["status"] != "success":
            raise RuntimeError(f"{path} {arguments}: {body}")
        return body["data"]

    def query(self, expression: str) -> list[dict]:
        """The result of an instant query (a vector: one entry per series)."""
        return self.api("query", query=expression)["result"]

    def firing(self) -> set[str]:
        """Names of the alerts firing now."""
        return {
            a["labels"]["alertname"] for a in self.api("alerts")["alerts"] if a["state"] == "firing"
        }

    def stop(self) -> None:
        """End the server, if it was started."""
        if self.process is not None:
            stop_process(self.process)
