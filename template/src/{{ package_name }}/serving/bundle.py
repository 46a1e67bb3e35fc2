"""The champion bundle the service loads: checked file by file, then compiled models loaded.

The export stage records a sha256 for every file of the bundle in its metadata.
A bundle whose files do not match (copied halfway, edited by hand, tampered with)
is refused at start-up with the files named, before any of them is loaded.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compiled import Predictor, load_predictor

METADATA_FILE = "metadata.json"
# The two models a bundle can hold.
CHAMPION, CHALLENGER = "champion", "challenger"


class BundleError(RuntimeError):
    """The bundle cannot be served: what is wrong and how to get a good one."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mismatched_files(folder: Path, recorded: dict[str, str]) -> list[str]:
    """The files the bundle records whose content is missing or differs, with why."""
    problems = []
    for name, expected in sorted(recorded.items()):
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name}: not a file of the bundle")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256_of(path) != expected:
            problems.append(f"{name}: sha256 differs from the one recorded at export")
    return problems


@dataclass(frozen=True)
class Bundle:
    """An opened, verified bundle: its metadata and the models it serves, by role."""

    folder: Path
    metadata: dict[str, Any]
    models: dict[str, Predictor]
    identities: dict[str, dict[str, str]]

    @property
    def settings(self) -> dict[str, Any]:
        """The serving settings the bundle was exported with (``conf/serve/``)."""
        return self.metadata["serve"]


def identity(metadata: dict, entry: dict) -> dict[str, str]:
    """The name, version and alias of the champion (metadata) or the challenger entry."""
    return {
        "model_name": metadata["model_name"],
        "model_version": str(entry["model_version"]),
        "model_alias": entry["model_alias"],
    }


def read_metadata(folder: Path) -> dict[str, Any]:
    """The bundle's metadata, refused when it records no file hashes."""
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except FileNotFoundError as error:
        raise BundleError(
            f"no bundle at {folder}: run `make pipeline` (or `make champion`) to export one"
        ) from error
    if "files" not in metadata or "runtime" not in metadata:
        raise BundleError(
            f"the bundle at {folder} records no file hashes or compiled model (an older "
            "template wrote it): run `make pipeline` or `make champion` to export it again"
        )
    return metadata


def open_bundle(folder: Path) -> Bundle:
    """Verify every file of the bundle at ``folder``, then load its models.

    The challenger is loaded only when the canary is on and the bundle holds one.
    """
    metadata = read_metadata(folder)
    problems = mismatched_files(folder, metadata["files"])
    if problems:
        raise BundleError(
            f"refusing to serve {folder}: its files do not match the hashes recorded at "
            f"export ({'; '.join(problems)}); export it again with `make pipeline` or "
            "`make champion`"
        )
    models = {CHAMPION: load_predictor(folder, metadata["runtime"])}
    identities = {CHAMPION: identity(metadata, metadata)}
    challenger = metadata.get("challenger")
    if metadata["serve"]["canary"]["mode"] != "off" and challenger:
        models[CHALLENGER] = load_predictor(folder, challenger["runtime"])
        identities[CHALLENGER] = identity(metadata, challenger)
    return Bundle(folder, metadata, models, identities)


def bundle_folder() -> Path:
    """The bundle to serve: ``MODEL_BUNDLE`` when set, else ``models/champion``."""
    return Path(os.environ.get("MODEL_BUNDLE", "models/champion"))
