"""Every choice of every question renders a clean, well-formed, lint-free project."""

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from helpers.commands import hadolint
from helpers.template import hooks_dir, question_choices, render

CHOICE_QUESTIONS = ["license", "python_version", "ml_task"]
EVERY_CHOICE = [{name: value} for name in CHOICE_QUESTIONS for value in question_choices(name)]
# Every name at its longest, free text at its most awkward, and each remote and
# tracking choice among them: names land in imports, commands and docstrings, where
# a long one must not push a line past the project's ruff limits.
LONGEST = [
    {
        "project_name": "A" * 64,
        "description": ('"Quoted" \\ $HOME ${x} """ ' + "wide 日本語 " * 40)[:200],
        "author_name": "Zoë O'Brien " * 8 + "Team",
        "author_email": f"{'m' * 64}@{'e' * 63}.example.com",
        "data_remote": "s3",
        "tracking": "server",
        "tracking_uri": "http://[2001:db8::7]:65535/" + "p" * 60,
    },
    {
        "project_name": "Fraud Detection",
        "package_name": "p" * 64,
        "project_slug": "s" * 64,
        "description": "x" * 200,
        "ml_task": "regression",
        "data_remote": "gcs",
    },
    {
        "project_name": "A b " * 16,
        "project_slug": "c" * 64,
        "data_remote": "azure",
        "ci_provider": "none",
        "license": "proprietary",
    },
    {"project_name": "Z" * 64, "data_remote": "none", "python_version": "3.13"},
    {"project_name": "Fraud Detection", "data_remote": "local"},
]
# An expression, statement or comment Jinja should have rendered or removed.
# GitHub Actions expressions (${{ ... }}) are meant to stay.
JINJA_LEFTOVER = re.compile(r"(?<!\$)\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def text_files(project: Path) -> list[Path]:
    """Every rendered file outside .git that decodes as text."""
    files = []
    for path in sorted(project.rglob("*")):
        if ".git" in path.parts or not path.is_file():
            continue
        try:
            path.read_text()
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def answers_id(answers: dict[str, str]) -> str:
    """A short test id: the answers' names, each with the start of its value."""
    return ",".join(f"{name}={str(value)[:12]}" for name, value in answers.items())


@pytest.fixture(scope="module", params=EVERY_CHOICE + LONGEST, ids=answers_id)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("render") / "project", skip_tasks=True, **request.param)


def test_no_unrendered_jinja_leaks_into_any_file(rendered: Path) -> None:
    leaks = [
        f"{path.relative_to(rendered)}: {match.group()}"
        for path in text_files(rendered)
        for match in JINJA_LEFTOVER.finditer(path.read_text())
    ]
    assert not leaks
    assert not [path for path in rendered.rglob("*") if "{" in path.name or path.suffix == ".jinja"]


def test_every_yaml_and_toml_file_parses(rendered: Path) -> None:
    yaml_files = [*rendered.rglob("*.yaml"), *rendered.rglob("*.yml")]
    toml_files = list(rendered.rglob("*.toml"))
    assert yaml_files and toml_files
    for path in yaml_files:
        assert yaml.safe_load(path.read_text()) is not None, path
    for path in toml_files:
        tomllib.loads(path.read_text())


def test_the_rendered_code_passes_ruff_lint_and_format(rendered: Path) -> None:
    for command in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "."],
            cwd=rendered,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_answers_shape_the_project(rendered: Path) -> None:
    answers = yaml.safe_load((rendered / ".copier-answers.yml").read_text())
    pyproject = tomllib.loads((rendered / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"
    assert (rendered / ".python-version").read_text().strip() == answers["python_version"]
    data_config = next((rendered / "conf" / "data").glob("*.yaml"))
    assert yaml.safe_load(data_config.read_text())["task"] == answers["ml_task"]
    license_file = rendered / "LICENSE"
    if answers["license"] == "proprietary":
        assert not license_file.exists()
    else:
        assert answers["license"].split("-")[0].lower() in license_file.read_text().lower()


def test_the_task_makes_a_git_repository_idempotently(
    render_project: Callable[..., Path],
) -> None:
    project = render_project(skip_tasks=False)
    assert (project / ".git").is_dir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "rendered"], cwd=project, check=True)
    (task,) = yaml.safe_load((hooks_dir().parent / "copier.yml").read_text())["_tasks"]
    subprocess.run(task["command"], cwd=project, check=True)  # as `copier update` runs it
    head = subprocess.run(
        ["git", "log", "--format=%s", "main"], cwd=project, capture_output=True, text=True
    )
    assert head.stdout.split() == ["rendered"], "the task must keep an existing repository"


def test_skipping_tasks_leaves_git_init_to_make_setup(render_project: Callable[..., Path]) -> None:
    project = render_project(skip_tasks=True)
    assert not (project / ".git").exists()
    assert "git init" in (project / "Makefile").read_text()


def test_the_dockerfile_passes_hadolint_without_warnings(rendered: Path) -> None:
    result = hadolint(rendered, "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kit_is_versioned_as_the_newest_release_of_the_template(
    render_project: Callable[..., Path],
) -> None:
    """copier.yml's template_release is the newest CHANGELOG heading; a render from a
    commit that is not that release's tag carries the commit as a local label."""
    from packaging.version import Version

    changelog = (hooks_dir().parent / "CHANGELOG.md").read_text()
    newest = re.search(r"^## (\d+\.\d+\.\d+) - ", changelog, flags=re.MULTILINE)
    config = yaml.safe_load((hooks_dir().parent / "copier.yml").read_text())
    assert newest and config["template_release"]["default"] == newest.group(1)
    project = render_project()
    kit = tomllib.loads((project / "kit" / "pyproject.toml").read_text())["project"]
    version = Version(kit["version"])
    assert version.public == newest.group(1) and version.local, kit["version"]
    root = tomllib.loads((project / "pyproject.toml").read_text())
    assert root["tool"]["uv"]["workspace"]["members"] == ["kit"]
    assert "mlops-kit" in root["project"]["dependencies"]
