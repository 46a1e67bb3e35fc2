"""The champion bundle the service loads: verified, then its compiled models loaded.

``mlops_kit.bundle`` checks every file against the sha256 recorded at export, and
the metadata against its own (its model version, input schema and serving settings
are what the service trusts); a bundle that does not match is refused at start-up
with the files named, before any of them is loaded. ``make serve`` and ``make gate``
check it the same way first.

``python -m mlops_kit.serving.bundle [URL]`` checks the bundle and prints what would
be served (the banner of ``make serve``), or the one line that says what is wrong.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_kit.bundle import BundleError, verify_bundle
from mlops_kit.predictor import Predictor, load_predictor

# The two models a bundle can hold.
CHAMPION, CHALLENGER = "champion", "challenger"


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
