"""Export stage: package the registry's champion for serving.

``python -m mlops_kit.export`` is the DVC stage after ``evaluate``. It takes the
model version the registry calls ``champion`` and writes a self-contained bundle
to ``paths.bundle``: the fitted pipeline, its identity (name, version, alias,
run, training time), the input schema the service validates requests against,
a reference record from the training data (what explanations compare against),
the serving settings and an example request. The service and its image need only this
folder: no MLflow, no tracking server. The champion (and a canary challenger) is also
compiled (``compiled.py``): the service loads that, ``metadata['runtime']`` says
how, ``metadata['files']`` holds the SHA-256 of every other file of the bundle and
``metadata['metadata_sha256']`` that of the metadata itself (``serving.bundle.seal``).
"""

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from mlops_kit.bundle import (
    CHALLENGER_FILE,
    EXAMPLE_FILE,
    METADATA_FILE,
    MODEL_FILE,
    json_bytes,
    seal,
    sha256_of,
)
from mlops_kit.compiled import compile_model
from mlops_kit.core.lineage import Lineage, input_columns_of, lineage_change
from mlops_kit.core.params import Params, load_params


def input_schema(columns: list[str], params: Params) -> dict:
    """The schema rules of the columns a caller sends, in the model's input order."""
    rules = params.data_schema.columns
    return {column: rules[column].model_dump() for column in columns}


def plain(value: Any) -> Any:
    """A table cell as the JSON value a caller sends: numpy scalars as Python, missing as null."""
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def example_request(table: pd.DataFrame, columns: list[str]) -> dict:
    """A real row of ``table`` (a complete one when there is one) as a request body.

    Each value is read from its own column: a row taken whole (``iloc``) shares one
    dtype, so on an all-numeric table integer columns would come out as floats.
    """
    inputs = table[columns]
    complete = inputs.dropna()
    chosen = complete if len(complete) else inputs
    return {column: plain(chosen[column].iloc[0]) for column in columns}


def reference_record(train: pd.DataFrame, columns: list[str]) -> dict:
    """A typical input: each numeric column's median, each other column's mode.

    Explanations measure a column's contribution as the change in prediction when
    the caller's value is replaced by this one.
    """
    return {
        column: float(train[column].median())
        if pd.api.types.is_numeric_dtype(train[column])
        else str(train[column].mode().iloc[0])
        for column in columns
    }


def bundle_metadata(
    model,
    params: Params,
    version: str,
    run_id: str,
    trained_at: str,
    reference: dict,
    challenger: dict | None = None,
    runtime: dict | None = None,
    provenance: dict | None = None,
) -> dict:
    """What the service needs besides the model: identity, task, schema, reference, settings.

    ``challenger`` is the identity (version, run, training time) of a challenger
    shipped in the bundle for the canary, or None; ``runtime`` is how the compiled
    champion runs (``compiled.compile_model``), its challenger's is in ``challenger``.
    ``provenance`` is the git commit and data hashes the model was trained from (the
    model card shows them).
    """
    return {
        "model_name": params.mlflow.registered_model_name,
        "model_version": version,
        "model_alias": params.mlflow.champion_alias,
        "run_id": run_id,
        "trained_at": trained_at,
        "provenance": provenance or {},
        "task": params.data.task,
        "target": params.data.target,
        "classes": [str(label) for label in getattr(model, "classes_", [])],
        "input_schema": input_schema(input_columns_of(model, params), params),
        "reference": reference,
        "challenger": None
        if challenger is None
        else {**challenger, "model_alias": params.mlflow.challenger_alias},
        "serve": params.serve.model_dump(),
        "runtime": runtime,
    }


def write_if_changed(path: Path, content: bytes) -> bool:
    """Write ``content`` unless ``path`` already holds exactly it; return whether it wrote."""
    if path.exists() and path.read_bytes() == content:
        return False
    path.write_bytes(content)
    return True


def write_bundle(
    model,
    metadata: dict,
    example: dict,
    bundle: Path,
    challenger=None,
    keep: tuple = (),
    compiled: dict[str, bytes] | None = None,
) -> list[str]:
    """Write the model (and challenger), compiled files, metadata and example into ``bundle``.

    Files whose content is unchanged are left alone, and the model files named in
    ``keep`` (the same model version as the bundle's) are not dumped again: pickling
    a model loaded back from the registry gives other bytes for the same model.
    Compiled files the bundle's previous metadata listed and this one lacks are
    removed. The metadata written gains ``files``: each other file's SHA-256.
    Returns the names of the files written or removed.

    The new bundle is made in a folder beside it and then put in its place: a write
    that fails (a full disk) leaves the bundle as it was, never half of each.
    """
    staging = bundle.with_name(f".{bundle.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if bundle.is_dir():
            shutil.copytree(bundle, staging)
        written = write_into(model, metadata, example, staging, challenger, keep, compiled)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not written:
        shutil.rmtree(staging)
        return []
    previous = bundle.with_name(f".{bundle.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if bundle.exists():
        bundle.rename(previous)
    staging.rename(bundle)
    shutil.rmtree(previous, ignore_errors=True)
    return written


def write_into(
    model,
    metadata: dict,
    example: dict,
    bundle: Path,
    challenger=None,
    keep: tuple = (),
    compiled: dict[str, bytes] | None = None,
) -> list[str]:
    """``write_bundle``'s writes, in place in ``bundle``: what changed, file by file."""
    bundle.mkdir(parents=True, exist_ok=True)
    compiled = compiled or {}
    previous = bundled(bundle)
    written = []
    for name in sorted((previous[0].get("files") or {}) if previous else {}):
        stale = name not in compiled and name not in (MODEL_FILE, CHALLENGER_FILE, EXAMPLE_FILE)
        if stale and (bundle / name).exists():
            (bundle / name).unlink()
            written.append(name)
    for name, fitted in ((MODEL_FILE, model), (CHALLENGER_FILE, challenger)):
        path = bundle / name
        if fitted is None:
            if path.exists():
                path.unlink()
                written.append(name)
        elif name not in keep or not path.exists():
            joblib.dump(fitted, path)
            written.append(name)
    for name, content in [*sorted(compiled.items()), (EXAMPLE_FILE, json_bytes(example))]:
        if write_if_changed(bundle / name, content):
            written.append(name)
    names = [MODEL_FILE, *([CHALLENGER_FILE] if challenger is not None else []), *compiled]
    files = {name: sha256_of(bundle / name) for name in sorted([*names, EXAMPLE_FILE])}
    # Sealed as it reads back: the digest is of the JSON values, not of Python's objects.
    written_metadata = json.loads(json_bytes({**metadata, "files": files}))
    if write_if_changed(bundle / METADATA_FILE, json_bytes(seal(written_metadata))):
        written.append(METADATA_FILE)
    return written


def bundled(bundle: Path) -> tuple[dict, dict] | None:
    """The metadata and example request of the bundle on disk, or None without one."""
    try:
        metadata = json.loads((bundle / METADATA_FILE).read_text())
        example = json.loads((bundle / EXAMPLE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return metadata, example


def holds_version(metadata: dict, identity: tuple[str, str, str]) -> bool:
    """Whether a bundle's metadata is of model ``identity`` (name, version, run).

    A bundle an older template wrote (no reference record) never is: it is rewritten whole.
    """
    keys = ("model_name", "model_version", "run_id")
    return "reference" in metadata and identity == tuple(str(metadata.get(key)) for key in keys)


def data_lineage(params: Params) -> tuple[Lineage, list[str]]:
    """The lineage of the configured data, and the columns a bundle's model is given.

    Those are the training split's (the reference record is made from it), or the
    configured columns before the pipeline ever ran.
    """
    data = params.data
    path = params.paths.train
    columns = parquet_columns(path) if path.exists() else data.input_columns
    return Lineage(data.task, data.target, tuple(data.input_columns), str(data.source)), columns


def parquet_columns(path: Path) -> list[str]:
    """The columns of a Parquet table, read from its schema: no row is loaded."""
    import pyarrow.parquet as pq

    # pandas stores a non-default index as a column of its own; it is no column of the table.
    return [name for name in pq.read_schema(path).names if not name.startswith("__index_level_")]


def provenance_of(registration: dict) -> dict:
    """The git commit and data hashes in a train stage's record (older records lack them)."""
    return {"git_commit": registration.get("git_commit"), **registration.get("data", {})}


def registry_champion(params: Params) -> tuple[Any, str, str, str, dict]:
    """The fitted pipeline, version, run, training time and provenance of the registry's champion.

    Refuses a champion that cannot serve the configured data (another target, task
    or table): no model of this data has met the thresholds yet.
    """
    from mlops_kit import registry

    client = registry.configure(params.mlflow)
    alias = params.mlflow.champion_alias
    version = registry.version_by_alias(client, params.mlflow, alias)
    if version is None:
        raise SystemExit(
            f"export: no model holds the alias '{alias}' yet; "
            "a model becomes champion when it meets the thresholds in conf/evaluate/"
        )
    lineage = registry.lineage_of(client, params.mlflow, version)
    data, columns = data_lineage(params)
    change = lineage_change(lineage, data, columns, "the data")
    if change:
        raise SystemExit(
            f"export: the champion v{version.version} learned {lineage} and cannot serve "
            f"the configured data ({change}); no model that learns {data} has met the "
            f"promotion thresholds yet ({params.paths.promotion} says why)"
        )
    try:
        model = registry.load_version(params.mlflow, version.version)
    except registry.Unloadable as unloadable:
        raise SystemExit(
            f"export: the champion {unloadable}; train one with this code (`make pipeline`)"
        ) from None
    trained_at = registry.trained_at(client, version.run_id)
    # The train stage logged these as run tags (registry.log_and_register).
    tags = client.get_run(version.run_id).data.tags
    provenance = {
        "git_commit": tags.get("git.commit"),
        **{key: value for key, value in tags.items() if key.startswith("data.") and "md5" in key},
    }
    return model, str(version.version), version.run_id, trained_at, provenance


def champion(params: Params) -> tuple[Any, str, str, str, dict]:
    """The champion's fitted pipeline, version, run, training time and provenance.

    As evaluation left it.

    When evaluation just promoted the challenger, the champion is the model the
    train stage saved, so it is read from disk: that spares this stage MLflow's
    start-up, seconds on every run. Otherwise it comes from the registry.
    """
    if json.loads(params.paths.promotion.read_text())["promote"]:
        registration = json.loads(params.paths.registration.read_text())
        return (
            joblib.load(params.paths.model),
            registration["version"],
            registration["run_id"],
            registration["trained_at"],
            provenance_of(registration),
        )
    return registry_champion(params)


def canary_challenger(params: Params, champion_version: str) -> tuple[Any, dict] | None:
    """The challenger for the canary: the model the train stage saved, and its identity.

    None when the canary is off or that model is the champion (it was promoted).
    """
    registration = json.loads(params.paths.registration.read_text())
    if params.serve.canary.mode == "off" or registration["version"] == champion_version:
        return None
    identity = {key: registration[key] for key in ("run_id", "trained_at")}
    return joblib.load(params.paths.model), {**identity, "model_version": registration["version"]}


def export(
    params: Params, model, version: str, run_id: str, trained_at: str, provenance: dict
) -> list[str]:
    """Write the bundle of one model version to ``paths.bundle``; return the files written.

    When the bundle already holds this model version (no promotion since), its
    reference record and example request stay as they are: they describe the data
    the champion learned from, not the batch that just arrived. The bundle is then
    left byte-identical unless the serving settings or the canary changed.
    """
    columns = input_columns_of(model, params)
    on_disk = bundled(params.paths.bundle)
    identity = (params.mlflow.registered_model_name, str(version), run_id)
    same = on_disk is not None and holds_version(on_disk[0], identity)
    if same:
        reference, example = on_disk[0]["reference"], on_disk[1]
    else:
        # Only the model's columns are read: the splits hold millions of rows at scale.
        reference = reference_record(pd.read_parquet(params.paths.train, columns=columns), columns)
        example = example_request(pd.read_parquet(params.paths.test, columns=columns), columns)
    challenger_model, challenger = canary_challenger(params, version) or (None, None)
    schema = input_schema(columns, params)
    champion_compiled = compile_model(model, schema, params.data.task, stem=Path(MODEL_FILE).stem)
    files = dict(champion_compiled.files)
    if challenger is not None:
        # The challenger was fitted on the configured columns, which may not be the champion's.
        challenger_schema = input_schema(input_columns_of(challenger_model, params), params)
        challenger_compiled = compile_model(
            challenger_model, challenger_schema, params.data.task, stem=Path(CHALLENGER_FILE).stem
        )
        files.update(challenger_compiled.files)
        challenger = {**challenger, "runtime": challenger_compiled.runtime}
    metadata = bundle_metadata(
        model,
        params,
        version,
        run_id,
        trained_at,
        reference,
        challenger=challenger,
        runtime=champion_compiled.runtime,
        provenance=provenance,
    )
    keep = [MODEL_FILE] if same else []
    if same and challenger is not None and on_disk[0].get("challenger") == metadata["challenger"]:
        keep.append(CHALLENGER_FILE)
    return write_bundle(
        model,
        metadata,
        example,
        params.paths.bundle,
        challenger_model,
        keep=tuple(keep),
        compiled=files,
    )


def main() -> None:
    """Export the current champion to ``paths.bundle``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--from-registry",
        action="store_true",
        help="take the registry's champion even when this run promoted it "
        "(a machine that serves what a team trained)",
    )
    args = parser.parse_args()
    params = load_params()
    chosen = registry_champion(params) if args.from_registry else champion(params)
    written = export(params, *chosen)
    alias, version = params.mlflow.champion_alias, chosen[1]
    name = params.mlflow.registered_model_name
    if not written:
        print(f"export: {name} v{version} ('{alias}') unchanged: {params.paths.bundle} left as is")
        return
    print(f"export: {name} v{version} ('{alias}') -> {params.paths.bundle} ({', '.join(written)})")


if __name__ == "__main__":
    main()
