"""Copier task: make the rendered project a git repository.

DVC needs a git repository to track pipelines and experiments. The task is
idempotent (it does nothing inside an existing repository) and offline. When
tasks are skipped with ``--skip-tasks``, ``make setup`` runs the same step.
"""

import subprocess
from pathlib import Path


def is_repository_root(path: Path) -> bool:
    """Return whether ``path`` is the top folder of a git work tree.

    A project rendered inside another repository (a scratch folder of a
    monorepo, say) still gets its own repository, because DVC expects the
    ``.dvc`` folder at the git root.
    """
    probe = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == path.resolve()


def main() -> None:
    """Initialise a git repository in the current folder unless it is one."""
    project = Path.cwd()
    if is_repository_root(project):
        print(f"git: {project} is already a repository; nothing to do")
        return
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main"], cwd=project, check=True)
    print(f"git: initialised a repository in {project}")


if __name__ == "__main__":
    main()
