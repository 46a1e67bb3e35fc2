"""The champion bundle on disk: its files, their hashes, and the metadata that seals them.

Export writes a bundle (``models/champion/``), the service opens it, monitoring,
the report and the gate read its model, and rollback exports an older one: all
through this module, the one place that knows the bundle's format. Every file's
sha256 is recorded in ``metadata.json``, and the metadata's own sha256 in it
(``seal``): a bundle copied halfway or edited by hand is refused with the files
named. These are checksums against accidents, not signatures: whoever can write
the folder can write matching ones.
"""

import hashlib
import json
from pathlib import Path
from typing import Any, TypedDict

from mlops_kit.core import strict_json

# The files of a bundle.
MODEL_FILE = "model.joblib"
CHALLENGER_FILE = "challenger.joblib"
METADATA_FILE = "metadata.json"
EXAMPLE_FILE = "example_request.json"
# The metadata's own sha256, kept in it (of everything else in it, see ``metadata_digest``).
METADATA_DIGEST = "metadata_sha256"


class Metadata(TypedDict):
    """``metadata.json``: what the service needs besides the model files."""

    model_name: str
    model_version: str
    model_alias: str
    run_id: str
    trained_at: str
    # The git commit and data hashes the model was trained from (the model card's).
    provenance: dict[str, Any]
    task: str
    target: str
    classes: list[str]
    # Per input column, the rules of conf/schema/ the service checks requests against.
    input_schema: dict[str, dict[str, Any]]
    # The training data's profile, the reference of skew and drift.
    reference: dict[str, Any]
    # The canary's challenger (identity and runtime), or None.
    challenger: dict[str, Any] | None
    # conf/serve/ as exported.
    serve: dict[str, Any]
    # How the compiled champion runs (``compiled.compile_model``), and why if it is the fallback.
    runtime: dict[str, Any]
    # sha256 of every other file of the bundle, by name.
    files: dict[str, str]
    metadata_sha256: str


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


def json_bytes(content: dict) -> bytes:
    """``content`` as the bundle's indented strict JSON."""
    return (strict_json.dumps(content, indent=2, default=str) + "\n").encode()
