"""Rollback: serve the previous champion again.

``python -m mlops_kit.rollback`` (``make rollback``) moves the registry's
``champion`` alias back to the version that held it before the current one
(versions are tagged when they become champion), among the versions that can
serve the configured data: never to one of another target, task or table. It
exports that version's bundle to ``paths.bundle``, and records the new bundle in
``dvc.lock`` so the next ``make pipeline`` keeps it. Rebuild and redeploy the image to serve it.
"""

import subprocess
import sys

from mlops_kit import registry
from mlops_kit.core.params import load_params
from mlops_kit.export import data_lineage, export, registry_champion


def main() -> None:
    """Roll the champion back one version and re-export the bundle."""
    params = load_params()
    client = registry.configure(params.mlflow)
    try:
        rolled_from, rolled_to = registry.roll_back(client, params.mlflow, *data_lineage(params))
    except LookupError as error:
        raise SystemExit(f"rollback: {error}") from None
    export(params, *registry_champion(params))
    # The bundle is the export stage's output: without this, `dvc repro` would see it
    # changed and export again from the last run's promotion decision.
    subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "export"], check=True)
    alias = params.mlflow.champion_alias
    print(f"rollback: '{alias}' v{rolled_from} -> v{rolled_to}, exported to {params.paths.bundle}")


if __name__ == "__main__":
    main()
