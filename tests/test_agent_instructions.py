"""AGENTS.md, the generated project's instructions for coding agents, stays true.

For several sets of answers, every `make <target>` it names is a target of the project's
Makefile that `make help` lists, and every path it names ships with the render, or is
one `make setup` and `make pipeline` write (checked in a trained project) or one git
ignores (a file the user makes, such as .env). The commands it prescribes run and pass
in the smoke test (tests/test_smoke.py), which follows them on a copy of the run's
trained project.
"""

import re
import subprocess
from pathlib import Path

import pytest

from helpers.agents import RUN_FOR_REAL, named_targets
from helpers.commands import developer_environment
from helpers.projects import TrainedProject
from helpers.template import render, uv_executable

CODE_SPAN = re.compile(r"`([^`\n]+)`")
ANSWERS = [
    {},
    {"tracking": "server", "data_remote": "s3", "ci_provider": "none"},
    {"ml_task": "regression", "data_remote": "none", "ci_provider": "gitlab"},
]


def blocks(text: str) -> list[str]:
    """The paragraphs and list items of a Markdown text, each as one string."""
    found: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            found.append([])
        elif line.startswith(("- ", "#")) or not found:
            found.append([line])
        else:
            found[-1].append(line)
    return [" ".join(block) for block in found if block]


def named_paths(text: str) -> list[tuple[str, list[str]]]:
    """Each path AGENTS.md names (a code span that is a folder or a file name), with the
    folders its paragraph or list item names: a bare file name lives in one of them."""
    paths = []
    for block in blocks(text):
        spans = [
            span
            for span in CODE_SPAN.findall(block)
            if not re.search(r"[\s<>=]", span)
            and ("/" in span or "." in span or span in ("Makefile", "Dockerfile"))
        ]
        folders = [span for span in spans if span.endswith("/")]
        paths += [(span, folders) for span in spans]
    return paths


def make_help(project: Path) -> str:
    return subprocess.run(
        ["make", "--no-print-directory", "help", f"UV={uv_executable()}"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        env=developer_environment(),
    ).stdout


def missing_paths(project: Path) -> list[str]:
    """The paths AGENTS.md names that ``project`` lacks and git does not ignore."""
    missing = []
    for path, folders in named_paths((project / "AGENTS.md").read_text()):
        bare = "/" not in path
        candidates = [project / path, *(project / folder / path for folder in folders if bare)]
        if any(candidate.exists() for candidate in candidates):
            continue
        # A file the user makes and git ignores (.env) is named but never shipped.
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=project, check=False)
        if ignored.returncode != 0:
            missing.append(path)
    return missing


@pytest.fixture(scope="module")
def default_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("agents") / "project")


@pytest.mark.parametrize(
    "answers", ANSWERS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "defaults"
)
def test_every_target_and_path_agents_md_names_exists_for_these_answers(
    answers: dict, default_render: Path, tmp_path: Path
) -> None:
    project = render(tmp_path / "project", **answers) if answers else default_render
    text = (project / "AGENTS.md").read_text()
    targets = named_targets(text)
    assert set(RUN_FOR_REAL) | {"test-all"} <= set(targets), targets
    plain = re.sub(r"\x1b\[[0-9;]*m", "", make_help(project))
    listed = {line.split()[0] for line in plain.splitlines() if line.strip()}
    assert set(targets) <= listed, f"not in make help: {set(targets) - listed}"
    for target in targets:
        # -n prints the recipe without running it: make refuses a target it does not have.
        dry = subprocess.run(
            ["make", "-n", target, f"UV={uv_executable()}"],
            cwd=project,
            capture_output=True,
            text=True,
            env=developer_environment(),
        )
        assert dry.returncode == 0, f"make -n {target}: {dry.stderr}"
    # What a render lacks, `make setup` and `make pipeline` write: the default answers'
    # AGENTS.md names it, and the trained project's test below finds it.
    written_later = set(missing_paths(default_render))
    assert set(missing_paths(project)) <= written_later, missing_paths(project)


@pytest.mark.e2e
@pytest.mark.parametrize("trained_project", ["classification"], indirect=True)
def test_every_path_agents_md_names_exists_in_a_trained_project(
    trained_project: TrainedProject,
) -> None:
    project = trained_project.root
    assert any(
        path.startswith("src/") for path, _ in named_paths((project / "AGENTS.md").read_text())
    )
    assert missing_paths(project) == []
