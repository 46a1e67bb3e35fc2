"""Faults around a trained project, each on a copy of it: a damaged tracking store, a
missing or edited champion bundle, a full disk, a killed training, a moved project, a
data file with only its header.

Each ends in one line that names the broken thing and the command that mends it (no
traceback), and loses nothing: the champion bundle and the registry stay as they were,
and nothing is written outside the project.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helpers.commands import developer_environment, run_make
from helpers.template import uv_executable

pytestmark = pytest.mark.e2e

# The faults are of the machinery, not of the task: one task's project is enough.
ON_CLASSIFICATION = pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
# What a failed command says besides its own line: make's echo of a command and its
# summary, uv's note on the project it reinstalled, DVC's summary, and MLflow's log
# records of what it did before the fault.
CHATTER = re.compile(
    r"^(\S*uv run |make(\[\d+\])?: \*\*\*|\s*(Uninstalled|Installed) \d+ package|\s*Buil(ding|t) "
    r"|ERROR: failed to reproduce"
    r"|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARNING) )"
)
# How long a killed training may take to start its MLflow run.
RUN_START_TIMEOUT_S = 300


def make(project: Path, target: str, *variables: str) -> subprocess.CompletedProcess:
    """Run a make target of the project, whatever its exit code; output and errors merged."""
    return subprocess.run(
        ["make", "--no-print-directory", target, *variables, f"UV={uv_executable()}"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
        env=developer_environment(),
    )


def the_one_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failed command said about its failure (after the last stage
    started, without DVC's, make's and MLflow's chatter); fails unless it is one line
    and no traceback was printed."""
    output = result.stdout
    assert result.returncode != 0, output[-4000:]
    assert "Traceback" not in output, output[-6000:]
    lines = output.splitlines()
    started = [i for i, line in enumerate(lines) if line.startswith("> python -m ")]
    said = [
        line
        for line in lines[started[-1] + 1 if started else 0 :]
        if line.strip() and not CHATTER.match(line)
    ]
    assert len(said) == 1, output[-4000:]
    return said[0]


def wait_until_gone(group: int, timeout: float = 60) -> None:
    """Wait until no process of ``group`` is left, reaped ones included: DVC takes a killed
    repro that is still a zombie for one holding its lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the killed pipeline (group {group}) outlived {timeout} s")


def bundle_digest(project: Path) -> dict[str, str]:
    """Every file of the champion bundle by its sha256."""
    folder = project / "models" / "champion"
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
    }


def query(project: Path, sql: str) -> list[tuple]:
    """Rows of a query on the project's MLflow store (SQLite), read-only."""
    uri = f"file:{project / 'mlflow.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        return db.execute(sql).fetchall()


def registry(project: Path) -> tuple[list[tuple], list[tuple]]:
    """The registered versions (version, run) and the aliases (alias, version)."""
    return (
        query(project, "SELECT version, run_id FROM model_versions ORDER BY version"),
        query(project, "SELECT alias, version FROM registered_model_aliases ORDER BY alias"),
    )


def params(project: Path) -> dict:
    """The project's composed parameters (params.yaml)."""
    return yaml.safe_load((project / "params.yaml").read_text())


@ON_CLASSIFICATION
def test_a_damaged_tracking_store_stops_the_pipeline_in_one_line_and_its_mend_works(
    project_copy: Path,
) -> None:
    store = project_copy / "mlflow.db"
    damaged = b"not a database, whatever the file name says\n" * 64
    store.write_bytes(damaged)
    bundle = bundle_digest(project_copy)
    line = the_one_line(make(project_copy, "pipeline", "DVC_FLAGS=--force"))
    assert line.startswith("mlflow.db is not a readable MLflow store (file is not a database)")
    assert "make pipeline DVC_FLAGS=--force" in line
    assert store.read_bytes() == damaged, "the damaged store was changed: a backup's only copy"
    assert bundle_digest(project_copy) == bundle
    # The mend the line gives: move it aside, start a new store.
    store.rename(project_copy / "mlflow.db.damaged")
    run_make(project_copy, "pipeline", "DVC_FLAGS=--force")
    assert query(project_copy, "SELECT count(*) FROM model_versions") == [(1,)]


@ON_CLASSIFICATION
def test_serving_and_the_gate_refuse_an_edited_or_missing_champion_in_one_line(
    project_copy: Path,
) -> None:
    folder = project_copy / "models" / "champion"
    metadata_file = folder / "metadata.json"
    original = metadata_file.read_bytes()
    metadata = json.loads(original)
    metadata["model_version"] = "999"
    ranged = [name for name, rules in metadata["input_schema"].items() if rules.get("max")]
    rules = metadata["input_schema"][ranged[0]]
    rules["max"] = rules["max"] * 1000
    metadata_file.write_text(json.dumps(metadata, indent=2))
    edited = "models/champion/metadata.json was changed since export"
    assert the_one_line(make(project_copy, "serve", "PORT=1")).startswith(edited)
    assert edited in the_one_line(make(project_copy, "gate"))

    shutil.rmtree(folder)
    missing = "no exported champion in models/champion/: run make pipeline (or make champion)"
    assert the_one_line(make(project_copy, "serve", "PORT=1")) == missing
    assert the_one_line(make(project_copy, "gate")).endswith(missing)
    # The mend the line gives: export the registry's champion again.
    run_make(project_copy, "champion")
    assert (
        json.loads(metadata_file.read_text())["model_version"]
        == json.loads(original)["model_version"]
    )
    run_make(project_copy, "gate")


@contextlib.contextmanager
def full(folder: Path, room: int) -> Iterator[None]:
    """``folder`` on a file system of its own with ``room`` bytes free: a real ENOSPC.

    A tmpfs mounted over it, holding what it held; needs root (a container's is enough).
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: the full disk cannot be made here")
    used = sum(path.stat().st_blocks * 512 for path in folder.rglob("*"))
    aside = folder.with_name(f"{folder.name}.aside")
    folder.rename(aside)
    folder.mkdir()
    size = used + room
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{aside}/.", str(folder)], check=True)
        free = shutil.disk_usage(folder).free
        assert free < 1 << 20, f"{free} bytes free: not full enough for a model"
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
        folder.rmdir()
        aside.rename(folder)


@ON_CLASSIFICATION
def test_a_full_disk_stops_training_in_one_line_and_leaves_no_run_running_nor_a_version(
    project_copy: Path,
) -> None:
    """MLflow's artifact folder (mlruns/) on a file system with 64 KiB to spare: the train
    stage's model does not fit (ENOSPC, not a simulation)."""
    bundle, before = bundle_digest(project_copy), registry(project_copy)
    with full(project_copy / "mlruns", room=64 << 10):
        result = make(project_copy, "pipeline", "DVC_FLAGS=--force")
    line = the_one_line(result)
    assert line.startswith("stage train: no space left on the device"), line
    assert "free some space (df -h .) and run make pipeline again" in line
    assert query(project_copy, "SELECT count(*) FROM runs WHERE status = 'RUNNING'") == [(0,)]
    assert query(project_copy, "SELECT status FROM runs ORDER BY start_time DESC LIMIT 1") == [
        ("FAILED",)
    ]
    assert registry(project_copy) == before
    assert bundle_digest(project_copy) == bundle


@ON_CLASSIFICATION
def test_a_killed_training_is_closed_by_the_next_pipeline_which_says_so(
    project_copy: Path,
) -> None:
    known = {run for (run,) in query(project_copy, "SELECT run_uuid FROM runs")}
    bundle, aliases = bundle_digest(project_copy), registry(project_copy)[1]
    pipeline = subprocess.Popen(
        ["make", "--no-print-directory", "pipeline", "DVC_FLAGS=--force", f"UV={uv_executable()}"],
        cwd=project_copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=developer_environment(),
        start_new_session=True,
    )
    deadline = time.monotonic() + RUN_START_TIMEOUT_S
    running: set[str] = set()
    try:
        while not running and time.monotonic() < deadline and pipeline.poll() is None:
            time.sleep(0.2)
            rows = query(project_copy, "SELECT run_uuid FROM runs WHERE status = 'RUNNING'")
            running = {run for (run,) in rows} - known
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pipeline.pid, signal.SIGKILL)
        pipeline.wait(timeout=60)
        wait_until_gone(pipeline.pid)
    assert running, "the train stage never started its MLflow run"
    (killed,) = running
    result = run_make(project_copy, "pipeline")
    assert f"mlflow: closed run {killed}, left RUNNING by a killed stage, as KILLED" in (
        result.stdout
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert query(project_copy, "SELECT count(*) FROM runs WHERE status = 'RUNNING'") == [(0,)]
    assert query(project_copy, f"SELECT status FROM runs WHERE run_uuid = '{killed}'") == [
        ("KILLED",)
    ]
    # No version of the killed run is left; the champion stays unless the new run beat it.
    versions, after = registry(project_copy)
    assert killed not in {run for _, run in versions}
    if dict(after)["champion"] == dict(aliases)["champion"]:
        assert bundle_digest(project_copy) == bundle


@ON_CLASSIFICATION
def test_a_moved_project_never_writes_into_its_old_folder(project_copy: Path) -> None:
    moved = project_copy.with_name("moved")
    project_copy.rename(moved)  # what `mv` does: the store still names the old folder
    result = run_make(moved, "pipeline", "DVC_FLAGS=--force")
    assert not project_copy.exists(), sorted(
        str(path) for path in project_copy.rglob("*") if path.is_file()
    )[:20]
    assert f"named the project's old folder {project_copy}" in result.stdout
    tables = query(moved, "SELECT name FROM sqlite_master WHERE type = 'table'")
    for (table,) in tables:
        for row in query(moved, f'SELECT * FROM "{table}"'):
            assert not any(f"{project_copy}/" in str(cell) for cell in row), (table, row)
    # The runs' artifacts are found where they now are: the champion exports from them.
    run_make(moved, "champion")


@ON_CLASSIFICATION
def test_a_data_file_with_only_its_header_is_refused_in_one_line(project_copy: Path) -> None:
    settings = params(project_copy)
    source = project_copy / settings["data"]["source"]
    source.write_text(source.read_text().splitlines()[0] + "\n")
    bundle, before = bundle_digest(project_copy), registry(project_copy)
    line = the_one_line(make(project_copy, "pipeline"))
    assert line == (
        f"validate: {settings['data']['source']} has no data rows, only a header, fewer than "
        f"the schema's min_rows={settings['schema']['min_rows']}: add rows to it, or lower "
        "min_rows in conf/schema/ if so few are enough"
    )
    assert bundle_digest(project_copy) == bundle
    assert registry(project_copy) == before
