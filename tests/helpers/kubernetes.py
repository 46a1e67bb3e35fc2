"""A project's Kubernetes manifests (deploy/k8s/) as documents, as kustomize builds them."""

import shutil
import subprocess
from pathlib import Path

import yaml


def manifests(project: Path, image: str) -> tuple[list[dict], bool]:
    """The documents deploy/k8s/ builds to with ``image`` as the serving image, and whether
    kustomize built them.

    With kubectl, the project's own `make k8s-manifests IMAGE=...` builds them. With no
    kubectl here (Debian does not package it), the kustomization's resources are read as
    they are, without the image override.
    """
    if shutil.which("kubectl"):
        built = subprocess.run(
            ["make", "--no-print-directory", "k8s-manifests", f"IMAGE={image}"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        )
        return [doc for doc in yaml.safe_load_all(built.stdout) if doc], True
    base = project / "deploy" / "k8s"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    return [yaml.safe_load((base / name).read_text()) for name in kustomization["resources"]], False


def by_kind(documents: list[dict]) -> dict[str, dict]:
    """The documents by their kind (one of each kind in deploy/k8s/)."""
    return {document["kind"]: document for document in documents}
