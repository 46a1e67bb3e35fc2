"""MLflow glue: where runs go, how models are logged and registered, aliases.

Tracking defaults to ``sqlite:///mlflow.db`` (``conf/mlflow/``); the
``MLFLOW_TRACKING_URI`` environment variable wins, so pointing the project at a
team server needs no change here.
"""

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import ActiveRun, MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from mlops_kit import team
from mlops_kit.core import faults
from mlops_kit.core.lineage import Lineage, lineage_change
from mlops_kit.core.params import MlflowConfig, Params

PACKAGE_DIR = Path(__file__).parent
# What a logged model needs to be loaded elsewhere. Listing it explicitly spares
# MLflow its slow requirement inference on every run.
MODEL_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "pyarrow", "pydantic")


def tracking_uri(config: MlflowConfig) -> str:
    """The tracking URI in effect: ``MLFLOW_TRACKING_URI`` or the configured default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri


def local_store(uri: str) -> Path | None:
    """The SQLite file of a ``sqlite:///`` tracking URI, or None for any other store."""
    prefix = "sqlite:///"
    return Path(uri.removeprefix(prefix)) if uri.startswith(prefix) else None


def check_store(store: Path) -> None:
    """Stop, in one line, when ``store`` exists but SQLite cannot read it.

    A missing store is no fault: MLflow makes a new one, and evaluation notices that
    it lacks the model the train stage registered (``evaluate.stale_registration``).
    """
    if not store.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(store)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:
        raise SystemExit(faults.damaged_store_line(str(store), str(error))) from None


# MLflow puts a local store's artifacts in this folder beside it, one folder per experiment.
ARTIFACT_FOLDER = "mlruns"


def recorded_root(store: Path) -> str | None:
    """The project folder a local store's artifact locations name, when not this one.

    MLflow records absolute artifact locations (``<project>/mlruns/<experiment>``):
    after the project is moved or copied, they still name the old folder, and new
    runs would write there. None when they name this project, or another place the
    team chose on purpose (not ``mlruns/`` beside the store).
    """
    here = str(store.resolve().parent)
    with contextlib.closing(sqlite3.connect(store)) as db:
        try:
            rows = db.execute("SELECT experiment_id, artifact_location FROM experiments")
            locations = rows.fetchall()
        except sqlite3.OperationalError:  # a new store: MLflow has not made its tables
            return None
    for experiment_id, location in locations:
        path = str(location or "").removeprefix("file://")
        tail = f"/{ARTIFACT_FOLDER}/{experiment_id}"
        if path.endswith(tail) and path[: -len(tail)] != here:
            return path[: -len(tail)]
    return None


# SQLite's declared types that hold text (its type affinity rules).
TEXT_TYPES = ("CHAR", "TEXT", "CLOB")


def relocate_store(store: Path) -> str | None:
    """Make a moved or copied project's store name its own folder; what was done, or None.

    Every text cell naming the old folder is rewritten in one transaction, so runs,
    logged models and registered versions find their artifacts in this project's
    ``mlruns/`` and new ones are written there, never into the old folder's path.
    """
    if not store.exists():
        return None
    old = recorded_root(store)
    if old is None:
        return None
    new = str(store.resolve().parent)
    if not (Path(new) / ARTIFACT_FOLDER).is_dir():
        raise SystemExit(
            f"{store} records artifacts in {old}/{ARTIFACT_FOLDER}/ and this project has no "
            f"{ARTIFACT_FOLDER}/ folder: copy {old}/{ARTIFACT_FOLDER} here (the runs' "
            f"artifacts), or move {store} aside to start a new store"
        )
    changed = 0
    with contextlib.closing(sqlite3.connect(store)) as db, db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            columns = db.execute(f"PRAGMA table_info('{table}')").fetchall()
            for _, column, declared, *_ in columns:
                if declared and not any(kind in declared.upper() for kind in TEXT_TYPES):
                    continue
                changed += db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0',
                    (f"{old}/", f"{new}/", f"{old}/"),
                ).rowcount
    return f"mlflow: {store} named the project's old folder {old}: {changed} entries now name {new}"


def configure(config: MlflowConfig) -> MlflowClient:
    """Point MLflow at the tracking store and experiment; return a registry client.

    A local store is checked first: one SQLite cannot read stops here in one line,
    and one that still names the folder the project was moved or copied from is
    made to name this one (and says so).
    """
    uri = tracking_uri(config)
    store = local_store(uri)
    if store is not None:
        check_store(store)
        relocated = relocate_store(store)
        if relocated:
            print(relocated)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(config.experiment_name)
    return MlflowClient()


# A run tag naming the process that tracks the run (host, pid, start time): a run left
# RUNNING whose process is gone was killed, and the next training closes it.
PROCESS_TAG = "pipeline.process"


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), or "" where unknown.

    With the pid it tells a process from a later one that reused its pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    """This process as the value of ``PROCESS_TAG``."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


def process_gone(tag: str) -> bool:
    """Whether the process a ``PROCESS_TAG`` value names has ended (on this host).

    A process of another host may be alive: it is never taken for gone.
    """
    host, _, rest = tag.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(started) and process_start(int(pid)) != started


# Written by the train stage while its run is open, removed when it ends: left behind,
# it says a training was killed, so `make pipeline` tidies the registry even when DVC
# restores the train stage from its cache instead of running it (see ``tidy``).
OPEN_RUN_MARKER = Path(".dvc") / "tmp" / "open-training-run"


# A model version tag the train stage sets last: a version without it, of a run that
# did not finish, was left half-registered.
COMPLETE_TAG = "registration"


@contextlib.contextmanager
def tracked_run(**start: Any) -> Iterator[ActiveRun]:
    """``mlflow.start_run(**start)``, marked as this process's while it is open.

    Every stage that opens a run (or reopens the train stage's) goes through here, so
    that a kill at any point leaves a run the next pipeline can tell abandoned.
    """
    OPEN_RUN_MARKER.parent.mkdir(parents=True, exist_ok=True)
    OPEN_RUN_MARKER.write_text(this_process())
    try:
        with mlflow.start_run(**start) as run:
            mlflow.set_tag(PROCESS_TAG, this_process())
            yield run
    finally:
        OPEN_RUN_MARKER.unlink(missing_ok=True)


def close_abandoned_runs(client: MlflowClient, config: MlflowConfig) -> list[str]:
    """Close the runs a killed stage left RUNNING, and remove what it half-registered.

    A run is abandoned when the process its ``PROCESS_TAG`` names is gone; it is
    marked KILLED. A model version of a run that did not finish (killed, or failed
    before the train stage completed it) and that holds no alias was never a
    challenger: it is deleted, so the registry holds no version without its run.
    Returns one line per thing done.
    """
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        return []
    done = []
    running = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    for run in running:
        tag = run.data.tags.get(PROCESS_TAG)
        if tag and process_gone(tag):
            client.set_terminated(run.info.run_id, status="KILLED")
            done.append(f"closed run {run.info.run_id}, left RUNNING by a killed stage, as KILLED")
    name = config.registered_model_name
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return done
    for entry in versions:
        if entry.aliases or not entry.run_id or COMPLETE_TAG in entry.tags:
            continue
        try:
            run = client.get_run(entry.run_id)
        except MlflowException:
            continue
        if PROCESS_TAG in run.data.tags and run.info.status in ("FAILED", "KILLED"):
            client.delete_model_version(name, entry.version)
            done.append(
                f"removed {name} v{entry.version}: its run {entry.run_id} ended "
                f"{run.info.status} before the version was complete"
            )
    return done


def git_commit() -> str:
    """The current git commit, with ``-dirty`` when the work tree has changes."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "uncommitted"
    status = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, check=False
    )
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def pinned_requirements(model: Pipeline | None = None) -> list[str]:
    """Requirements of the logged model, pinned to the versions it was trained with.

    The estimator's own distribution joins them when it is not scikit-learn's (a
    LightGBM model needs ``lightgbm`` wherever it is loaded).
    """
    from importlib.metadata import packages_distributions

    names = list(MODEL_REQUIREMENTS)
    top = type(model[-1]).__module__.split(".")[0] if model is not None else ""
    # scikit-learn is listed already; the project's own packages travel as code_paths
    # (no index has them). Only another package's estimator needs the scan of every
    # installed distribution that packages_distributions() makes.
    if top not in ("", "sklearn", team.PACKAGE, __package__.split(".")[0]):
        for distribution in packages_distributions().get(top, []):
            if distribution not in names:
                names.append(distribution)
    return [f"{name}=={version(name)}" for name in names]


def log_and_register(
    model: Pipeline,
    features: pd.DataFrame,
    params: Params,
    logged_params: dict[str, Any],
    tags: dict[str, str],
    config_file: Path,
    version_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Log a run with its config, tags and model; register the model as challenger.

    ``version_tags`` go on the registered version (its lineage, see ``lineage.Lineage``).
    """
    client = configure(params.mlflow)
    for line in close_abandoned_runs(client, params.mlflow):
        print(f"mlflow: {line}")
    example = features.head(3)
    registered: list[str] = []
    # On any error the run ends FAILED (start_run's context) and the version it
    # registered is deleted: a failed stage leaves neither behind.
    try:
        with tracked_run() as run:
            info = log_model(model, example, params, logged_params, tags, config_file)
            registered.append(str(info.registered_model_version))
            complete_registration(client, params.mlflow, registered[0], version_tags)
    except BaseException:
        for number in registered:
            with contextlib.suppress(Exception):  # the store may be what failed
                client.delete_model_version(params.mlflow.registered_model_name, number)
        raise
    return {
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "model_name": params.mlflow.registered_model_name,
        "version": registered[0],
        "trained_at": run_start_time(run.info.start_time),
    }


def log_model(
    model: Pipeline,
    example: pd.DataFrame,
    params: Params,
    logged_params: dict[str, Any],
    tags: dict[str, str],
    config_file: Path,
) -> Any:
    """In the active run: log the config, tags and model, registering it; MLflow's model info."""
    mlflow.log_params(logged_params)
    mlflow.set_tags({**tags, "git.commit": git_commit(), "data.source": str(params.data.source)})
    # Inside `dvc exp run` DVC names the experiment: the tag joins a row of
    # `dvc exp show` to its MLflow run, also when a queue runs several at once.
    if os.environ.get("DVC_EXP_NAME"):
        mlflow.set_tag("dvc.experiment", os.environ["DVC_EXP_NAME"])
    mlflow.log_artifact(str(config_file), artifact_path="config")
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(example, model.predict(example)),
        input_example=example,
        registered_model_name=params.mlflow.registered_model_name,
        pip_requirements=pinned_requirements(model),
        code_paths=[str(PACKAGE_DIR), str(team_package_dir())],
        # The pipeline calls the team's feature functions through the kit; cloudpickle
        # keeps them by reference and code_paths ships both packages beside the model.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    )
    return info


def team_package_dir() -> Path:
    """The folder of the team's package (``src/<package>/``)."""
    return Path(team.features().__file__).parent


def complete_registration(
    client: MlflowClient,
    config: MlflowConfig,
    version_number: str,
    version_tags: dict[str, str] | None,
) -> None:
    """Tag a just registered version, make it the challenger, and mark it complete."""
    for key, value in (version_tags or {}).items():
        client.set_model_version_tag(config.registered_model_name, version_number, key, value)
    set_alias(client, config, config.challenger_alias, version_number)
    client.set_model_version_tag(
        config.registered_model_name, version_number, COMPLETE_TAG, "complete"
    )


def run_start_time(start_time_ms: int) -> str:
    """An MLflow run's start time (milliseconds since the epoch) as ISO-8601 UTC."""
    return datetime.fromtimestamp(start_time_ms / 1000, tz=UTC).isoformat()


def trained_at(client: MlflowClient, run_id: str) -> str:
    """When the run that trained a model started, as ISO-8601 UTC."""
    return run_start_time(client.get_run(run_id).info.start_time)


def version_by_alias(client: MlflowClient, config: MlflowConfig, alias: str) -> ModelVersion | None:
    """The model version holding ``alias``, or None when no version holds it yet."""
    try:
        return client.get_model_version_by_alias(config.registered_model_name, alias)
    except MlflowException:
        return None


class Unloadable(RuntimeError):
    """A registered version whose pickle names code this project no longer has."""


def load_version(config: MlflowConfig, version_number: str) -> Pipeline:
    """Load a registered model version as the scikit-learn pipeline it was logged as.

    Raises ``Unloadable`` when the pickle refers to a function or module that is gone
    (a version logged before its code moved, such as before the kit existed).
    """
    uri = f"models:/{config.registered_model_name}/{version_number}"
    try:
        return mlflow.sklearn.load_model(uri)
    except (AttributeError, ImportError) as error:
        raise Unloadable(
            f"v{version_number} of {config.registered_model_name} was logged with code this "
            f"project no longer has ({error}), so it cannot be loaded"
        ) from None


def missing_registration(client: MlflowClient, registration: dict[str, Any]) -> str | None:
    """What the tracking store lacks of the model version ``registration`` names, or None.

    Only a store that answers "not found" counts as lacking it: an unreachable one
    raises, since the version may well be there.
    """
    name, number = registration["model_name"], registration["version"]
    try:
        version = client.get_model_version(name, number)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return f"it has no version {number} of {name!r}"
    if version.run_id != registration["run_id"]:
        return f"its v{number} comes from another run, {version.run_id}"
    return None


def input_names(config: MlflowConfig, version: ModelVersion) -> list[str]:
    """The input columns of a registered version: its signature's, else its pipeline's."""
    uri = f"models:/{config.registered_model_name}/{version.version}"
    signature = mlflow.models.get_model_info(uri).signature
    if signature is not None:
        return signature.inputs.input_names()
    return list(load_version(config, str(version.version)).feature_names_in_)


def lineage_of(client: MlflowClient, config: MlflowConfig, version: ModelVersion) -> Lineage:
    """What a registered version learned from, read from its lineage tags.

    A version registered before versions were tagged gets it from its run's logged
    ``data`` params and its model's signature, without loading the model.
    """
    recorded = Lineage.from_tags(version.tags)
    if recorded is not None:
        return recorded
    run = client.get_run(version.run_id)
    logged = run.data.params
    return Lineage(
        task=logged.get("data.task", "unknown task"),
        target=logged.get("data.target", "unknown target"),
        columns=tuple(input_names(config, version)),
        source=run.data.tags.get("data.source", logged.get("data.source", "unknown source")),
    )


def set_alias(client: MlflowClient, config: MlflowConfig, alias: str, version_number: str) -> None:
    """Move ``alias`` to ``version_number``."""
    client.set_registered_model_alias(config.registered_model_name, alias, version_number)


# Model version tags that keep the champion alias's history: aliases themselves have none.
CHAMPION_SINCE_TAG = "champion_since"
ROLLED_BACK_TAG = "rolled_back_at"


def now_utc() -> str:
    """The current time as ISO-8601 UTC."""
    return datetime.now(tz=UTC).isoformat()


def promote(client: MlflowClient, config: MlflowConfig, version_number: str) -> None:
    """Make ``version_number`` the champion and record when, for rollbacks."""
    set_alias(client, config, config.champion_alias, version_number)
    client.set_model_version_tag(
        config.registered_model_name, version_number, CHAMPION_SINCE_TAG, now_utc()
    )


def earlier_champions(
    client: MlflowClient, config: MlflowConfig, current: str
) -> list[ModelVersion]:
    """The versions that were champion before ``current`` and were not rolled back from."""
    versions = client.search_model_versions(f"name = '{config.registered_model_name}'")
    return [
        version
        for version in versions
        if CHAMPION_SINCE_TAG in version.tags
        and ROLLED_BACK_TAG not in version.tags
        and str(version.version) != current
    ]


def previous_champion(
    client: MlflowClient, config: MlflowConfig, current: str, data: Lineage, columns: list[str]
) -> str | None:
    """The version that was champion before ``current`` and can serve the current data.

    ``data`` is the lineage of the configured data and ``columns`` the columns of its
    training split: a version that learned another target or task, or needs columns
    the data lacks, is passed over. None when no earlier champion fits.
    """
    fitting = [
        version
        for version in earlier_champions(client, config, current)
        if lineage_change(lineage_of(client, config, version), data, columns, "the data") is None
    ]
    if not fitting:
        return None
    return str(max(fitting, key=lambda version: version.tags[CHAMPION_SINCE_TAG]).version)


def roll_back(
    client: MlflowClient, config: MlflowConfig, data: Lineage, columns: list[str]
) -> tuple[str, str]:
    """Move the champion alias back to the previous champion; return (from, to) versions.

    Only a champion that can serve the current data goes back into service (see
    ``previous_champion``): a rollback never crosses to another lineage. The version
    rolled back from is tagged, so a second rollback goes further back instead of
    returning to it.
    """
    current = version_by_alias(client, config, config.champion_alias)
    if current is None:
        raise LookupError(f"no version holds the alias '{config.champion_alias}': nothing to undo")
    previous = previous_champion(client, config, str(current.version), data, columns)
    if previous is None:
        passed = [
            f"v{version.version} learned {lineage_of(client, config, version)}"
            for version in earlier_champions(client, config, str(current.version))
        ]
        crossing = f" ({'; '.join(passed)}: a rollback never crosses lineages)" if passed else ""
        raise LookupError(
            f"no version before v{current.version} that learns {data} has been "
            f"'{config.champion_alias}': there is no previous one to roll back to{crossing}"
        )
    client.set_model_version_tag(
        config.registered_model_name, str(current.version), ROLLED_BACK_TAG, now_utc()
    )
    set_alias(client, config, config.champion_alias, previous)
    return str(current.version), previous


def server_health(uri: str, timeout: float = 10.0) -> str:
    """What a tracking server's ``/health`` answers, or why it could not be reached."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            return f"answers {response.status} {response.read().decode().strip()}"
    except (urllib.error.URLError, OSError) as error:
        raise SystemExit(f"tracking server {uri} does not answer: {error}") from error


def tidy(config: MlflowConfig) -> None:
    """Close what a killed training left open, when ``OPEN_RUN_MARKER`` says one was.

    The marker of a training still running (another pipeline) is left alone.
    """
    try:
        owner = OPEN_RUN_MARKER.read_text()
    except OSError:
        return
    for line in close_abandoned_runs(configure(config), config):
        print(f"mlflow: {line}")
    if process_gone(owner):
        OPEN_RUN_MARKER.unlink(missing_ok=True)


def main() -> None:
    """Print the tracking URI in effect and, for a server, check that it answers.

    ``tidy`` instead closes what a killed training left open (``make pipeline`` runs it).
    """
    from mlops_kit.core.params import load_params

    if sys.argv[1:] == ["tidy"]:
        tidy(load_params().mlflow)
        return
    uri = tracking_uri(load_params().mlflow)
    source = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "conf/mlflow/"
    print(f"tracking URI: {uri} (from {source})")
    if uri.startswith(("http://", "https://")):
        print(f"server {server_health(uri)}")


if __name__ == "__main__":
    main()
