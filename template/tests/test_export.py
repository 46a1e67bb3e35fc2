"""The export stage rewrites the champion's bundle only when something in it changed."""

import hashlib
import json
from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline

from mlops_kit.bundle import METADATA_FILE, MODEL_FILE
from mlops_kit.compiled import compile_model
from mlops_kit.core.params import Params
from mlops_kit.export import (
    bundle_metadata,
    example_request,
    holds_version,
    input_schema,
    reference_record,
    write_bundle,
)
from mlops_kit.predictor import ONNX_RUNTIME


def bundle_of(
    model: Pipeline, train_test: tuple[pd.DataFrame, pd.DataFrame], params: Params, folder: Path
) -> tuple[dict, dict]:
    train, test = train_test
    columns = params.data.input_columns
    result = compile_model(model, input_schema(columns, params), params.data.task)
    metadata = bundle_metadata(
        model,
        params,
        "3",
        "run-3",
        "2026-01-01T00:00:00+00:00",
        reference_record(train, columns),
        runtime=result.runtime,
    )
    example = example_request(test, columns)
    write_bundle(model, metadata, example, folder, compiled=result.files)
    return metadata, example, result.files


def test_the_metadata_records_the_runtime_and_the_hash_of_every_other_file(
    trained_model: Pipeline,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    tmp_path: Path,
) -> None:
    bundle_of(trained_model, train_test, params, tmp_path)
    written = json.loads((tmp_path / METADATA_FILE).read_text())
    on_disk = {path.name for path in tmp_path.iterdir()} - {METADATA_FILE}
    assert set(written["files"]) == on_disk
    for name, digest in written["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name
    runtime = written["runtime"]
    assert set(runtime["files"]) <= on_disk
    assert runtime["name"] == ONNX_RUNTIME or runtime["reason"], runtime


def test_an_unchanged_bundle_is_not_written_again(
    trained_model: Pipeline,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    tmp_path: Path,
) -> None:
    metadata, example, files = bundle_of(trained_model, train_test, params, tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    written = write_bundle(
        trained_model, metadata, example, tmp_path, keep=(MODEL_FILE,), compiled=files
    )
    assert written == []
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    # Other serving settings change the metadata, and only it.
    changed = {**metadata, "serve": {**metadata["serve"], "workers": 99}}
    assert write_bundle(
        trained_model, changed, example, tmp_path, keep=(MODEL_FILE,), compiled=files
    ) == ["metadata.json"]


def test_compiled_files_the_model_no_longer_has_are_removed(
    trained_model: Pipeline,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    tmp_path: Path,
) -> None:
    metadata, example, files = bundle_of(trained_model, train_test, params, tmp_path)
    assert files
    written = write_bundle(trained_model, metadata, example, tmp_path, keep=(MODEL_FILE,))
    assert sorted(written) == sorted([*files, METADATA_FILE])
    assert not any((tmp_path / name).exists() for name in files)
    assert set(json.loads((tmp_path / METADATA_FILE).read_text())["files"]) == {
        path.name for path in tmp_path.iterdir()
    } - {METADATA_FILE}


def test_a_bundle_of_another_version_or_an_older_format_is_rewritten(
    trained_model: Pipeline,
    train_test: tuple[pd.DataFrame, pd.DataFrame],
    params: Params,
    tmp_path: Path,
) -> None:
    metadata, _, _ = bundle_of(trained_model, train_test, params, tmp_path)
    identity = (params.mlflow.registered_model_name, "3", "run-3")
    assert holds_version(metadata, identity)
    assert not holds_version(metadata, (identity[0], "4", "run-4"))
    older = {key: value for key, value in metadata.items() if key != "reference"}
    assert not holds_version(older, identity)
