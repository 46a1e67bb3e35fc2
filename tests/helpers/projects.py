"""Projects made once per test run and shared, and cheap copies for the tests that change one.

Rendering, installing and training a project costs most of a minute, so each is done
once per run of the suite, by whichever pytest-xdist worker asks first: the others wait
on a file lock and read what it made (``once``). A test that changes a project (runs a
pipeline, commits, scores, serves) works on a copy (``copy_project``): seconds, where a
retrain is a minute, and no test sees what another left behind.
"""

import contextlib
import fcntl
import json
import shutil
import sqlite3
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.commands import run_make
from helpers.template import available_python_version, render

# Files above this size are data or stores, never a text file naming the project's folder.
LARGEST_TEXT_BYTES = 1 << 20


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (made if missing) for the block."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(root: Path, name: str, build: Callable[[Path], dict]) -> dict:
    """``build(folder)``'s JSON-able result, built once under ``root`` per test run.

    The first caller builds while holding a lock; later callers, in any worker, read
    the result. A build that failed is not retried by each caller: they fail with its
    error at once.
    """
    folder, result, failure = root / name, root / f"{name}.json", root / f"{name}.failed"
    with exclusive(root / f"{name}.lock"):
        if result.exists():
            return json.loads(result.read_text())
        if failure.exists():
            pytest.fail(f"{name} could not be made (in another test):\n{failure.read_text()}")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            value = build(folder)
        except BaseException:
            failure.write_text(traceback.format_exc()[-8000:])
            raise
        result.write_text(json.dumps(value))
        return value


def rewrite_path(path: Path, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` in a text file, as a new file: a hard-linked original
    is never written through."""
    data = path.read_bytes()
    if old in data and b"\0" not in data:
        mode = path.stat().st_mode
        path.unlink()
        path.write_bytes(data.replace(old, new))
        path.chmod(mode)


def holds_text(declared_type: str) -> bool:
    """Whether a SQLite column of this declared type holds text (SQLite's affinity rules)."""
    return not declared_type or any(
        word in declared_type.upper() for word in ("CHAR", "TEXT", "CLOB")
    )


def relocate_sqlite(database: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in every text column of a SQLite database.

    MLflow's store records absolute artifact locations: unchanged, a copy's new runs
    would write into the original's folder.
    """
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        for (table,) in tables.fetchall():
            columns = connection.execute(f"PRAGMA table_info('{table}')").fetchall()
            for column in (name for _, name, declared, *_ in columns if holds_text(declared)):
                connection.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )


def copy_project(source: Path, destination: Path) -> Path:
    """A working copy of a set-up project at ``destination``: sources, data, DVC cache,
    MLflow store and git history copied; the environment hard-linked (nobody writes
    into installed packages) with every file that names the old folder rewritten."""
    destination.mkdir(parents=True)
    for entry in source.iterdir():
        target = destination / entry.name
        if entry.name == ".venv":
            subprocess.run(["cp", "-al", str(entry), str(target)], check=True)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)
    old, new = str(source).encode(), str(destination).encode()
    environment = destination / ".venv"
    # Entry-point scripts name their interpreter; the editable install names src/.
    texts = [p for p in (environment / "bin").iterdir() if p.is_file() and not p.is_symlink()]
    for packages in environment.glob("lib/python*/site-packages"):
        texts += [*packages.glob("*.pth"), *packages.glob("*.dist-info/direct_url.json")]
    for path in destination.rglob("*"):
        parts = path.relative_to(destination).parts
        if parts[0] == ".venv" or parts[:2] == (".dvc", "cache") or path.suffix == ".db":
            continue  # DVC's cache is addressed by content: never edit it
        if path.is_file() and not path.is_symlink() and path.stat().st_size < LARGEST_TEXT_BYTES:
            texts.append(path)
    for path in texts:
        rewrite_path(path, old, new)
    for database in destination.glob("*.db"):
        relocate_sqlite(database, str(source), str(destination))
    return destination


@dataclass(frozen=True)
class TrainedProject:
    """A project rendered with the defaults for one task, set up, with one pipeline run.

    Shared by every test of the run: read it, never change it; ``copy`` it to change it.
    """

    root: Path
    task: str
    first_run: str  # what the first `make pipeline` printed

    def copy(self, destination: Path) -> Path:
        """A copy of the project to change, at ``destination``."""
        return copy_project(self.root, destination)


def trained_project(root: Path, task: str) -> TrainedProject:
    """The run's trained project for ``task``, made on first use."""

    def build(folder: Path) -> dict:
        project = render(
            folder / "project", ml_task=task, python_version=available_python_version()
        )
        run_make(project, "setup")
        first_run = run_make(project, "pipeline")
        return {"root": str(project), "first_run": first_run.stdout}

    made = once(root, f"trained-{task}", build)
    return TrainedProject(Path(made["root"]), task, made["first_run"])
