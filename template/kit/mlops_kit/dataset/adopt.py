"""``make dataset``: profile a table and make it the project's data.

``adopt`` reads the table, refuses it or decides every role and the quality bar,
then writes the configs (``configs.py``) and switches ``conf/config.yaml``. When
the switched configuration does not compose, the old one is put back.
"""

import argparse
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from mlops_kit.config import CONFIG_DIR, compose_params
from mlops_kit.core.params import Params, load_params
from mlops_kit.dataset.configs import data_file, schema_file, switch_defaults
from mlops_kit.dataset.quality import quality_bar
from mlops_kit.dataset.roles import (
    Column,
    Profile,
    chosen,
    column_role,
    data_config,
    mutual_information,
    pick_sensitive,
    pick_slice,
    pick_time,
)
from mlops_kit.dataset.table import (
    Refused,
    check_column_names,
    check_rows,
    check_target,
    check_task,
    read_table,
)

RAW_DIR = Path("data/raw")

# Profiling (cross-validation, mutual information) reads at most this many rows.
PROFILE_ROWS = 5000

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, drawn reproducibly."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def training_split(frame: pd.DataFrame, target: str, task: str, params: Params) -> pd.DataFrame:
    """The training rows the split stage will keep, with the configured seed and size."""
    from sklearn.model_selection import train_test_split

    stratify = frame[target] if task == "classification" and params.train.stratify else None
    train, _ = train_test_split(
        frame, test_size=params.train.test_size, random_state=params.train.seed, stratify=stratify
    )
    return train


def profile_table(
    frame: pd.DataFrame, name: str, source: Path, target: str, params: Params, options: dict
) -> Profile:
    """Decide every column's role, the special columns and the quality bar."""
    check_column_names(frame)
    project_task = params.data.task
    values = check_target(frame, target)
    target_reason = check_task(values, target, project_task)
    check_rows(frame, target, project_task)
    frame = frame[frame[target].notna()]
    profile = Profile(name, source, project_task, target, target_reason)
    given = {
        key: chosen(options.get(key), frame, key.upper()) for key in ("slice", "time", "sensitive")
    }
    for column in frame.columns:
        if column == target:
            continue
        if column == given["time"]:
            profile.columns.append(Column(column, "time", "given as TIME: kept out of features"))
            continue
        profile.columns.append(column_role(str(column), frame[column], len(frame)))

    # Features that tell nothing about the target are noise the model may overfit.
    # Measured as the data-2 check measures them: on the training split the pipeline
    # will make, categories as discrete; a margin of 10% keeps a feature at the floor out.
    seed = params.train.seed
    profiled = sample(frame, PROFILE_ROWS, seed)
    training = training_split(frame, target, project_task, params)
    floor = params.ml_test_score.min_mutual_information
    information = {}
    for column in profile.columns:
        if column.role in ("numeric", "categorical"):
            information[column.name] = mutual_information(
                training[column.name],
                training[target],
                project_task == "classification",
                seed,
                discrete=column.role == "categorical",
            )
            if information[column.name] < floor * 1.1:
                column.reason = (
                    f"{column.reason}; but {information[column.name]:.3f} nats of mutual "
                    f"information with the target, under the floor {floor} plus 10% (data-2)"
                )
                column.role = "left out"
    if not profile.features("numeric") and not profile.features("categorical"):
        raise Refused(
            "no column can be a feature: "
            + "; ".join(f"{column.name}: {column.reason}" for column in profile.columns)
        )
    if given["time"]:
        profile.time_column, profile.time_reason = given["time"], "given as TIME"
    else:
        pick_time(profile, frame)
    if given["slice"]:
        profile.slice_column, profile.slice_reason = given["slice"], "given as SLICE"
    elif options.get("slice") is not None:
        profile.slice_reason = "SLICE=none"
    else:
        pick_slice(profile, frame, information)
    if given["sensitive"]:
        profile.sensitive_column, profile.sensitive_reason = given["sensitive"], "given"
    elif options.get("sensitive") is not None:
        profile.sensitive_reason = "SENSITIVE=none"
    else:
        pick_sensitive(profile, frame)
    quality_bar(profile, profiled, params, data_config(profile))
    return profile


def project_source(path: Path, name: str) -> tuple[Path, str]:
    """Where the project reads the table from, and how it got there.

    The file itself when it is inside the project, else a copy in ``data/raw/``:
    DVC tracks stage inputs only inside the repository.
    """
    resolved, root = path.resolve(), Path.cwd().resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root), f"read in place from {resolved.relative_to(root)}"
    destination = RAW_DIR / f"{name}{path.suffix.lower()}"
    return destination, f"copied to {destination}"


def default_name(source: Path) -> str:
    """A dataset name from the file name: lowercase letters, digits and '_'."""
    name = re.sub(r"[^a-z0-9]+", "_", source.stem.lower()).strip("_")
    return name if name and name[0].isalpha() else f"data_{name}"


def current_params() -> Params:
    """The project's parameters composed from conf/ now (params.yaml may be stale)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "params.yaml"
        compose_params(output=output)
        return load_params(output)


def adopt(source: Path, target: str, name: str | None, options: dict, force: bool) -> Profile:
    """Profile ``source`` and write the configs that make it the project's data."""
    name = name or default_name(source)
    if not NAME_PATTERN.match(name):
        raise Refused(
            f"NAME={name!r} cannot name config files: accepted are lowercase letters, digits "
            "and '_', starting with a letter, at most 64 characters"
        )
    data_path = CONFIG_DIR / "data" / f"{name}.yaml"
    schema_path = CONFIG_DIR / "schema" / f"{name}.yaml"
    existing = [str(path) for path in (data_path, schema_path) if path.exists()]
    if existing and not force:
        raise Refused(
            f"{', '.join(existing)} exist already; pass another NAME=, or FORCE=1 to overwrite"
        )
    frame = read_table(source)
    params = current_params()
    project_path, placed = project_source(source, name)
    profile = profile_table(frame, name, project_path, target, params, options)
    config_path = CONFIG_DIR / "config.yaml"
    config_before = config_path.read_text()
    if placed.startswith("copied"):
        project_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, project_path)
    data_path.write_text(data_file(profile))
    schema_path.write_text(schema_file(profile, frame[frame[target].notna()]))
    config_path.write_text(switch_defaults(config_before, name))
    try:
        current_params()
    except Exception:
        config_path.write_text(config_before)  # the project keeps working on its old data
        raise
    profile.placed = placed
    return profile


def report(profile: Profile) -> list[str]:
    """What was inferred, for people: one line per decision with its reason."""
    lines = [
        f"dataset {profile.name}: {profile.source} ({profile.placed})",
        f"  target {profile.target!r}: {profile.task} ({profile.target_reason})",
    ]
    for column in profile.columns:
        lines.append(f"  {column.name!r}: {column.role} ({column.reason})")
    for what, value, reason in (
        ("slices", profile.slice_column, profile.slice_reason),
        ("time", profile.time_column, profile.time_reason),
        ("sensitive", profile.sensitive_column, profile.sensitive_reason),
    ):
        lines.append(f"  {what}: {value!r} ({reason})")
    lines += [f"  quality bar: {reason}" for reason in profile.quality_reasons]
    # Say up front what the ML Test Score cannot measure on this table: it scores 0.
    if profile.time_column is None:
        lines.append(
            "  rubric: model-4 (staleness) measures time by the file's row order, and cannot "
            "apply when the rows are sorted by the target: TIME=<column> if the table has one"
        )
    if profile.sensitive_column is None:
        lines.append(
            "  rubric: model-7 (inclusion) cannot apply without a sensitive column and scores "
            "0 (the Model section's ceiling drops by 1): SENSITIVE=<column> if there is one"
        )
    lines += [
        f"wrote conf/data/{profile.name}.yaml and conf/schema/{profile.name}.yaml; "
        f"conf/config.yaml now uses them. Correct any inference in those files, then "
        "`make pipeline` (a new lineage of models starts) and `make test`.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Adopt a table as the project's data: ``make dataset SOURCE=... TARGET=...``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--source", required=True, type=Path, help="CSV or Parquet file")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--name", help="dataset name (default: from the file name)")
    parser.add_argument("--slice", help="column to report metrics by, or none")
    parser.add_argument("--time", help="column that orders rows in time, or none")
    parser.add_argument("--sensitive", help="column to compare groups on, or none")
    parser.add_argument("--force", action="store_true", help="overwrite existing configs")
    args = parser.parse_args(argv)
    options = {"slice": args.slice, "time": args.time, "sensitive": args.sensitive}
    try:
        profile = adopt(args.source, args.target, args.name, options, args.force)
    except Refused as refusal:
        raise SystemExit(f"dataset: refused: {refusal}") from None
    print("\n".join(report(profile)))
