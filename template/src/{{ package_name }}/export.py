"""Export stage: package the registry's champion for serving.

``python -m <package>.export`` is the DVC stage after ``evaluate``. It takes the
model version the registry calls ``champion`` and writes a self-contained bundle
to ``paths.bundle``: the fitted pipeline, its identity (name, version, alias,
run), the input schema the service validates requests against, the serving
settings and an example request. The service and its image need only this
folder: no MLflow, no tracking server.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from .config import Params, load_params

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
EXAMPLE_FILE = "example_request.json"


def input_schema(params: Params) -> dict:
    """The schema rules of the columns a caller sends, in the model's input order."""
    rules = params.data_schema.columns
    return {column: rules[column].model_dump() for column in params.data.input_columns}


def example_request(table: pd.DataFrame, params: Params) -> dict:
    """A real row of ``table`` (a complete one when there is one) as a request body."""
    inputs = table[params.data.input_columns]
    complete = inputs.dropna()
    row = (complete if len(complete) else inputs).iloc[0]
    # numpy scalars become plain Python numbers, so the JSON has the schema's types.
    return {
        column: None if pd.isna(value) else getattr(value, "item", lambda v=value: v)()
        for column, value in row.items()
    }


def bundle_metadata(model, params: Params, version: str, run_id: str) -> dict:
    """What the service needs besides the model: identity, task, input schema, settings."""
    return {
        "model_name": params.mlflow.registered_model_name,
        "model_version": version,
        "model_alias": params.mlflow.champion_alias,
        "run_id": run_id,
        "task": params.data.task,
        "target": params.data.target,
        "classes": [str(label) for label in getattr(model, "classes_", [])],
        "input_schema": input_schema(params),
        "serve": params.serve.model_dump(),
    }


def write_bundle(model, metadata: dict, example: dict, bundle: Path) -> None:
    """Write the model, its metadata and an example request into ``bundle``."""
    bundle.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, bundle / MODEL_FILE)
    (bundle / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    (bundle / EXAMPLE_FILE).write_text(json.dumps(example, indent=2, default=str) + "\n")


def champion(params: Params, from_registry: bool = False) -> tuple[Any, str, str]:
    """The champion's fitted pipeline, version and run, as this run's evaluation left it.

    When evaluation just promoted the challenger, the champion is the model the
    train stage saved, so it is read from disk: that spares this stage MLflow's
    start-up, seconds on every run. Otherwise, or with ``from_registry`` (a
    machine that serves what a team trained), it comes from the registry.
    """
    promoted = not from_registry and json.loads(params.paths.promotion.read_text())["promote"]
    if promoted:
        registration = json.loads(params.paths.registration.read_text())
        return joblib.load(params.paths.model), registration["version"], registration["run_id"]

    from . import registry

    client = registry.configure(params.mlflow)
    alias = params.mlflow.champion_alias
    version = registry.version_by_alias(client, params.mlflow, alias)
    if version is None:
        raise SystemExit(
            f"export: no model holds the alias '{alias}' yet; "
            "a model becomes champion when it meets the thresholds in conf/evaluate/"
        )
    model = registry.load_version(params.mlflow, version.version)
    return model, str(version.version), version.run_id


def main() -> None:
    """Export the current champion to ``paths.bundle``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--from-registry",
        action="store_true",
        help="load the champion from the MLflow registry even when this run promoted it",
    )
    args = parser.parse_args()
    params = load_params()
    model, version, run_id = champion(params, from_registry=args.from_registry)
    metadata = bundle_metadata(model, params, version, run_id)
    example = example_request(pd.read_parquet(params.paths.test), params)
    write_bundle(model, metadata, example, params.paths.bundle)
    alias = params.mlflow.champion_alias
    print(f"export: {metadata['model_name']} v{version} ('{alias}') -> {params.paths.bundle}")


if __name__ == "__main__":
    main()
