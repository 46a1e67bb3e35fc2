"""Faults of the machine end in one line that names the broken thing and the mend, and
lose nothing: a full disk, a damaged or moved tracking store, a killed stage's run."""

import errno
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_kit import registry
from mlops_kit.core import faults
from mlops_kit.core.params import MlflowConfig
from mlops_kit.validation import too_few_rows


def raised(error: BaseException, wrapper: type[Exception] = RuntimeError) -> BaseException:
    """``error`` as a library shows it: wrapped in another exception raised from it."""
    try:
        try:
            raise error
        except BaseException as inner:
            raise wrapper("the library's own words") from inner
    except BaseException as outer:
        return outer


def test_a_full_disk_deep_in_a_library_is_said_in_one_line_naming_the_file() -> None:
    """Fails when a full disk (ENOSPC, a quota, the file size limit, SQLite's own words),
    wrapped by a library, is not one line naming the file and the mend."""
    for error in (
        OSError(errno.ENOSPC, "No space left on device", "mlruns/1/model.pkl"),
        OSError(errno.EFBIG, "File too large", "mlruns/1/model.pkl"),
        sqlite3.OperationalError("database or disk is full"),
    ):
        line = faults.explain(raised(error), "stage train")
        assert line is not None and "\n" not in line
        assert line.startswith("stage train: no space left on the device")
        assert "run make pipeline again" in line
        if isinstance(error, OSError):
            assert "writing mlruns/1/model.pkl" in line


def test_a_bug_keeps_its_traceback() -> None:
    """Fails when an error that is no fault of the machine is turned into a line."""
    assert faults.explain(raised(ValueError("a bug")), "stage train") is None
    assert faults.explain(raised(OSError(errno.ENOENT, "missing")), "stage train") is None


def test_a_damaged_store_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    """Fails when a store SQLite cannot read passes, is not named with the mend, or is
    changed (it may be a backup's only copy); or when a missing store is refused."""
    store = tmp_path / "mlflow.db"
    registry.check_store(store)  # missing: MLflow makes a new one
    damaged = b"not a database\n" * 100
    store.write_bytes(damaged)
    with pytest.raises(SystemExit) as stopped:
        registry.check_store(store)
    line = str(stopped.value)
    assert line.startswith(f"{store} is not a readable MLflow store (file is not a database)")
    assert "make pipeline DVC_FLAGS=--force" in line and "\n" not in line
    assert store.read_bytes() == damaged
    assert faults.explain(raised(sqlite3.DatabaseError("file is not a database")), "x")


def test_a_table_with_too_few_rows_is_one_line_naming_the_file() -> None:
    """Fails when a header-only or short file is not named with its row count and
    min_rows, or when a table with enough rows is refused."""
    source = Path("data/raw/table.csv")
    assert "has no data rows, only a header" in (too_few_rows(0, source, 10) or "")
    assert too_few_rows(3, source, 10) == (
        "validate: data/raw/table.csv has 3 data row(s), fewer than the schema's min_rows=10: "
        "add rows to it, or lower min_rows in conf/schema/ if so few are enough"
    )
    assert too_few_rows(10, source, 10) is None


def store_in(folder: Path, monkeypatch: pytest.MonkeyPatch):
    """An MLflow client of a new SQLite store in ``folder``, its artifacts in ``mlruns/``
    beside it as the project's default store has them."""
    from mlflow import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)  # MLflow's default artifact root is ./mlruns
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


@pytest.mark.slow
def test_a_moved_store_names_its_new_folder_and_never_writes_into_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails when, after the project is moved, a new run writes into the old folder, an
    old run's artifacts are not found, or the relocation is not said."""
    old, new = tmp_path / "old", tmp_path / "new"
    client = store_in(old, monkeypatch)
    experiment = client.create_experiment("experiment")
    run = client.create_run(experiment).info.run_id
    (tmp_path / "note.txt").write_text("logged before the move")
    client.log_artifact(run, str(tmp_path / "note.txt"))
    client.set_terminated(run)
    old.rename(new)
    monkeypatch.chdir(new)
    said = registry.relocate_store(Path("mlflow.db")) or ""
    assert said.startswith(f"mlflow: mlflow.db named the project's old folder {old}: ")
    assert said.endswith(f" entries now name {new}")
    assert registry.relocate_store(Path("mlflow.db")) is None  # done once
    moved = store_in(new, monkeypatch)
    assert [entry.path for entry in moved.list_artifacts(run)] == ["note.txt"]
    later = moved.create_run(experiment).info.run_id
    moved.log_artifact(later, str(tmp_path / "note.txt"))
    assert not old.exists()
    assert (new / "mlruns" / experiment / later / "artifacts" / "note.txt").is_file()


@pytest.mark.slow
def test_runs_of_killed_stages_are_closed_and_their_half_registered_versions_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails when a run whose process is gone stays RUNNING or its version without an
    alias stays registered; or when a live run, another host's run, or a completed
    version is touched."""
    client = store_in(tmp_path / "project", monkeypatch)
    config = MlflowConfig(
        tracking_uri=client.tracking_uri,
        experiment_name="experiment",
        registered_model_name="model",
        challenger_alias="challenger",
        champion_alias="champion",
    )
    experiment = client.create_experiment(config.experiment_name)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    processes = {
        "killed": f"{socket.gethostname()}:{ended.pid}:",
        "alive": registry.this_process(),
        "elsewhere": "another-host:1:",
    }
    runs = {}
    for name, process in processes.items():
        runs[name] = client.create_run(experiment, tags={registry.PROCESS_TAG: process})
    client.create_registered_model(config.registered_model_name)
    versions = {
        name: client.create_model_version(
            config.registered_model_name, run.info.artifact_uri, run_id=run.info.run_id
        ).version
        for name, run in runs.items()
    }
    done = registry.close_abandoned_runs(client, config)
    killed = runs["killed"].info.run_id
    assert done == [
        f"closed run {killed}, left RUNNING by a killed stage, as KILLED",
        f"removed model v{versions['killed']}: its run {killed} ended KILLED before the "
        "version was complete",
    ]
    status = {name: client.get_run(run.info.run_id).info.status for name, run in runs.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING"}
    left = {str(v.version) for v in client.search_model_versions("name = 'model'")}
    assert left == {str(versions["alive"]), str(versions["elsewhere"])}
