"""Throwaway copies of this template repository at chosen states, tagged as versions.

``copier update`` works from git tags, so update tests build a small repository
whose history is: each release as it was (from its tag, or from the commit that
added its CHANGELOG entry when tags were not fetched), then the working tree as
the newest version, then optional synthetic changes on top.
"""

import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from helpers.commands import git
from helpers.template import TEMPLATE_ROOT

RELEASE_HEADING = re.compile(r"^## (\d+\.\d+\.\d+) - ", re.MULTILINE)

Fill = Callable[[Path], None]


def released_versions() -> list[str]:
    """Versions with an entry in CHANGELOG.md, oldest first."""
    changelog = (TEMPLATE_ROOT / "CHANGELOG.md").read_text()
    return sorted(RELEASE_HEADING.findall(changelog), key=lambda v: tuple(map(int, v.split("."))))


def release_commit(version: str) -> str:
    """The commit of a release: its tag, else the commit that added its changelog entry."""
    try:
        return git("rev-parse", f"v{version}^{{commit}}", cwd=TEMPLATE_ROOT).strip()
    except RuntimeError:
        added = git(
            "log", "--format=%H", "-S", f"## {version} - ", "--", "CHANGELOG.md", cwd=TEMPLATE_ROOT
        ).split()
        if not added:
            raise LookupError(f"no tag and no changelog commit for release {version}") from None
        return added[-1]


def fill_from_commit(commit: str) -> Fill:
    """Fill a folder with the template's files as they were at ``commit``."""

    def fill(destination: Path) -> None:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit],
            cwd=TEMPLATE_ROOT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(destination, filter="data")

    return fill


def fill_from_working_tree(destination: Path) -> None:
    """Fill a folder with the template's working tree: tracked and new, not ignored, files."""
    listed = git(
        "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=TEMPLATE_ROOT
    ).split("\0")
    for name in filter(None, listed):
        source = TEMPLATE_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build_template_repo(
    destination: Path, versions: list[tuple[str, Fill]], tagged: bool = True
) -> Path:
    """A git repository with one commit and tag per ``(tag, fill)``, in order.

    ``tagged=False`` leaves the tags out, as in a checkout of this repository's main
    (release tags never travel with it): copier then records commits, not versions.
    """
    destination.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=destination)
    for tag, fill in versions:
        for child in destination.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        fill(destination)
        git("add", "-A", cwd=destination)
        git("commit", "--quiet", "--allow-empty", "-m", f"template {tag}", cwd=destination)
        if tagged:
            git("tag", tag, cwd=destination)
    return destination


def current_tag() -> str:
    """Tag for the working tree: just after the newest release, so it updates from all."""
    return f"v{released_versions()[-1]}.post1"


NEWER_TARGET = "team-hello"


def with_a_newer_makefile_target(destination: Path) -> None:
    """A newer template version: the working tree plus a change to a template-owned file."""
    fill_from_working_tree(destination)
    makefile = destination / "template" / "Makefile.jinja"
    makefile.write_text(
        makefile.read_text()
        + f"\n.PHONY: {NEWER_TARGET}\n{NEWER_TARGET}: ## Added by a newer template\n\t@echo hello\n"
    )
