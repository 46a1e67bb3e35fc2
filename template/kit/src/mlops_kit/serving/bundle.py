"""The champion bundle the service loads: checked file by file, then compiled models loaded.

The export stage records a sha256 for every file of the bundle in its metadata, and
one of the metadata itself (``seal``): its model version, input schema and serving
settings are what the service trusts. A bundle whose files or metadata do not match
(copied halfway, edited by hand) is refused at start-up with the files named, before
any of them is loaded; ``make serve`` and ``make gate`` check it the same way first.
These are checksums against accidents, not signatures: whoever can write the folder
can write matching ones.

``python -m mlops_kit.serving.bundle [URL]`` checks the bundle and prints what would
be served (the banner of ``make serve``), or the one line that says what is wrong.
"""

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_kit.predictor import Predictor, load_predictor

METADATA_FILE = "metadata.json"
# The metadata's own sha256, kept in it (of everything else in it, see ``metadata_digest``).
METADATA_DIGEST = "metadata_sha256"
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


def metadata_digest(metadata: dict[str, Any]) -> str:
    """The sha256 of a bundle's metadata, all but its own digest, as canonical JSON.

    Canonical (sorted keys, no spaces) so that only a changed value changes it, not
    the file's layout.
    """
    content = {key: value for key, value in metadata.items() if key != METADATA_DIGEST}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with its digest: what the export stage writes as ``metadata.json``.

    A test or tool that changes a bundle's metadata on purpose seals it again.
    """
    return {**metadata, METADATA_DIGEST: metadata_digest(metadata)}


EXPORT_AGAIN = "export it again with make pipeline (or make champion)"


def read_metadata(folder: Path) -> dict[str, Any]:
    """The bundle's metadata, refused when missing, unreadable, changed or from an old template."""
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except FileNotFoundError as error:
        raise BundleError(
            f"no exported champion in {folder}/: run make pipeline (or make champion)"
        ) from error
    except ValueError as error:
        raise BundleError(
            f"{folder / METADATA_FILE} is not readable JSON ({error}): {EXPORT_AGAIN}"
        ) from None
    if not isinstance(metadata, dict) or not {"files", "runtime", METADATA_DIGEST} <= set(metadata):
        raise BundleError(
            f"the bundle in {folder}/ records no hashes of its files and metadata or no "
            f"compiled model (an older template wrote it): {EXPORT_AGAIN}"
        )
    if metadata_digest(metadata) != metadata[METADATA_DIGEST]:
        raise BundleError(
            f"{folder / METADATA_FILE} was changed since export (its sha256 differs from "
            f"the one recorded in it): {EXPORT_AGAIN}"
        )
    return metadata


def verify_bundle(folder: Path) -> dict[str, Any]:
    """The bundle's metadata, once it and every file it records match their hashes."""
    metadata = read_metadata(folder)
    problems = mismatched_files(folder, metadata["files"])
    if problems:
        raise BundleError(
            f"the bundle in {folder}/ does not match the hashes recorded at export "
            f"({'; '.join(problems)}): {EXPORT_AGAIN}"
        )
    return metadata


def open_bundle(folder: Path) -> Bundle:
    """Verify every file of the bundle at ``folder``, then load its models.

    The challenger is loaded only when the canary is on and the bundle holds one.
    """
    metadata = verify_bundle(folder)
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


def main() -> None:
    """Check the bundle; print what would be served at the URL given, or why it cannot be."""
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000"
    try:
        metadata = verify_bundle(bundle_folder())
    except BundleError as error:
        raise SystemExit(str(error)) from None
    name, version, alias = (metadata[key] for key in ("model_name", "model_version", "model_alias"))
    print(f"Serving {name} v{version} ({alias}) on {url}")


if __name__ == "__main__":
    main()
