"""Open a generated project's pages in real headless Chromium, offline, and see what drew.

Chromium is driven over its DevTools protocol (a websocket, ``websocket-client``):
the network is switched off for the page, every request it makes is logged, and
after the load each image, SVG and canvas on the page is measured. One screenshot
per page is kept under ``ARTIFACTS`` for people to look at.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import websocket
import yaml

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("BROWSER_ARTIFACTS", Path(__file__).resolve().parents[2] / ".test-artifacts")
)
# The flags this closed network needs: nothing phones home, nothing resolves.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1200,900",
]
# What drew: each image decoded (natural size), each SVG with content, each canvas sized.
MEASURE = """JSON.stringify({
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight, data: i.src.startsWith('data:')})),
  svgs: [...document.querySelectorAll('svg')].map(s => s.childElementCount),
  canvases: [...document.querySelectorAll('canvas')].map(c => c.width * c.height),
  scripts: [...document.scripts].map(s => s.src || 'inline'),
  stylesheets: [...document.querySelectorAll('link')].map(l => l.href),
  text: document.body.innerText.length
})"""


def require_chromium() -> str:
    """The Chromium binary, or a skip; CI (REQUIRE_BROWSER_TESTS=1) fails instead."""
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is needed: apt-get install chromium (.ci/run installs it)"
        if os.environ.get("REQUIRE_BROWSER_TESTS"):
            pytest.fail(reason)
        # A developer without Chromium still runs every other test; CI sets
        # REQUIRE_BROWSER_TESTS, so there this can never pass by being skipped.
        pytest.skip(reason)
    return CHROMIUM


@dataclass
class Visit:
    """What one page did in the browser."""

    requests: list[str]
    measured: dict
    screenshot: Path


class Browser:
    """One headless Chromium with a fresh profile, and a DevTools connection to its page."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.process = subprocess.Popen(
            [require_chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = self.debugging_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.loads(answer.read()) if t["type"] == "page")
        self.socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict] = []
        self.call("Network.enable")
        self.call("Page.enable")
        # Offline for real: a page that tried the network would see it fail, not draw.
        self.call(
            "Network.emulateNetworkConditions",
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )

    def debugging_port(self) -> int:
        """The port Chromium chose, from the file it writes into the profile."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.process.poll() is not None:
                pytest.fail("chromium exited during start-up")
            time.sleep(0.1)
        pytest.fail("chromium did not open its DevTools port within 30 s")

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result; events meanwhile are kept."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    pytest.fail(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, event: str, seconds: float = 60) -> None:
        """Read events until ``event`` arrives."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(message.get("method") == event for message in self.events):
                return
            self.events.append(json.loads(self.socket.recv()))
        pytest.fail(f"no {event} within {seconds} s")

    def visit(self, page: Path, screenshot: Path) -> Visit:
        """Load ``page`` from disk, measure it, and keep a full-page screenshot."""
        self.events = []
        self.call("Page.navigate", url=page.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        requests = [
            message["params"]["request"]["url"]
            for message in self.events
            if message.get("method") == "Network.requestWillBeSent"
        ]
        value = self.call("Runtime.evaluate", expression=MEASURE, returnByValue=True)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return Visit(requests, json.loads(value["result"]["value"]), screenshot)

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def outside(requests: list[str], project: Path) -> list[str]:
    """The requests that left the project: anything but its own files and data: URIs."""
    own = project.resolve().as_uri() + "/"
    return [url for url in requests if not (url.startswith(own) or url.startswith("data:"))]


def assert_pages_draw(project: Path, pages: dict[str, Path], charts: list[str], label: str) -> None:
    """Each page loads offline, asks for nothing outside ``project`` and draws all its charts.

    ``charts`` are the titles of the images each page must show decoded (the facts
    the report stage recorded name what it drew). Screenshots go to ``ARTIFACTS/label/``.
    """
    browser = Browser()
    try:
        for name, page in pages.items():
            visit = browser.visit(page, ARTIFACTS / label / f"{name}.png")
            print(f"screenshot of {page}: {visit.screenshot}")
            measured = visit.measured
            assert not outside(visit.requests, project), outside(visit.requests, project)
            assert not measured["scripts"] and not measured["stylesheets"], measured
            drawn = [i for i in measured["images"] if i["complete"] and i["width"] > 0]
            assert len(drawn) == len(measured["images"]), (name, measured["images"])
            assert set(charts) <= {image["alt"] for image in drawn}, (name, measured["images"])
            assert all(image["data"] for image in drawn), measured["images"]
            assert all(count > 0 for count in measured["svgs"] + measured["canvases"]), measured
            assert measured["text"] > 0
    finally:
        browser.close()


def report_pages(project: Path) -> tuple[dict, dict[str, Path]]:
    """The report stage's recorded facts and the two pages, at the paths conf/ sets."""
    paths = yaml.safe_load((project / "params.yaml").read_text())["paths"]
    facts = json.loads((project / paths["model_card_facts"]).read_text())
    pages = {"model_card": project / paths["model_card"], "plots": project / paths["plots_page"]}
    return facts, {name: page.with_suffix(".html") for name, page in pages.items()}
