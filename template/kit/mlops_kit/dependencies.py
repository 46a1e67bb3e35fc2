"""Dependency changes: which locked packages a change adds, removes or moves.

``python -m mlops_kit.dependencies --base origin/main`` compares ``uv.lock`` with
its version at a git ref and prints a markdown table, so a pull request that
changes the environment says so in CI's job summary (Dependabot proposes the
upgrades themselves; see .github/dependabot.yml).
"""

import argparse
import subprocess
import tomllib
from pathlib import Path

from mlops_kit.core.markdown import table

LOCKFILE = Path("uv.lock")


def locked_versions(lock_text: str) -> dict[str, str]:
    """Package name to locked version, from the text of a uv.lock file."""
    if not lock_text.strip():
        return {}
    packages = tomllib.loads(lock_text).get("package", [])
    return {package["name"]: str(package.get("version", "")) for package in packages}


def changes(before: dict[str, str], after: dict[str, str]) -> list[tuple[str, str, str]]:
    """(package, version before, version after) for every package that differs."""
    names = sorted(set(before) | set(after))
    return [
        (name, before.get(name, "-"), after.get(name, "-"))
        for name in names
        if before.get(name) != after.get(name)
    ]


def lock_at(ref: str) -> str:
    """The text of uv.lock at git ``ref`` (empty when it did not exist there)."""
    shown = subprocess.run(
        ["git", "show", f"{ref}:{LOCKFILE}"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else ""


def markdown(changed: list[tuple[str, str, str]], base: str) -> str:
    """The changes as a markdown section for a job summary."""
    if not changed:
        return f"### Dependencies\n\nNo locked package changed against {base}.\n"
    title = f"### Dependencies: {len(changed)} locked package(s) changed against {base}"
    lines = [title, "", *table(["Package", "Before", "After"], changed)]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the locked packages that differ from ``--base``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--base", default="HEAD", help="git ref to compare uv.lock with")
    args = parser.parse_args()
    current = LOCKFILE.read_text() if LOCKFILE.exists() else ""
    changed = changes(locked_versions(lock_at(args.base)), locked_versions(current))
    print(markdown(changed, args.base))


if __name__ == "__main__":
    main()
