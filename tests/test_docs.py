"""The documentation site builds without a single warning and publishes measured figures;
a generated project ships every page it points to."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from helpers.template import TEMPLATE_ROOT, question_choices, render


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "index.html").is_file()


def test_the_published_benchmark_tables_are_the_measured_ones() -> None:
    result = subprocess.run(
        [sys.executable, str(TEMPLATE_ROOT / "benchmarks" / "report.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def ml_test_ids(node: ast.expr) -> list[str]:
    """Rubric ids of every `pytest.mark.ml_test(...)` call inside ``node``."""
    return [
        argument.value
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "ml_test"
        for argument in call.args
        if isinstance(argument, ast.Constant)
    ]


def marked_checks(project: Path) -> dict[str, set[str]]:
    """Rubric id -> `file::test` of every generated test carrying its marker: the team's
    tests and the kit's own."""
    checks: dict[str, set[str]] = {}
    paths = [
        *(project / "tests").glob("test_*.py"),
        *(project / "kit" / "tests").rglob("test_*.py"),
    ]
    for path in sorted(paths):
        tree = ast.parse(path.read_text())
        module_ids = [
            rubric_id
            for statement in tree.body
            if isinstance(statement, ast.Assign)
            and any(getattr(target, "id", "") == "pytestmark" for target in statement.targets)
            for rubric_id in ml_test_ids(statement.value)
        ]
        for function in tree.body:
            if isinstance(function, ast.FunctionDef) and function.name.startswith("test_"):
                own = [i for decorator in function.decorator_list for i in ml_test_ids(decorator)]
                for rubric_id in {*module_ids, *own}:
                    checks.setdefault(rubric_id, set()).add(f"{path.name}::{function.name}")
    return checks


def documented_checks() -> dict[str, set[str]]:
    """Rubric id -> the `file::test` names the mapping table of docs/ml-test-score.md lists."""
    page = (TEMPLATE_ROOT / "docs" / "ml-test-score.md").read_text()
    documented: dict[str, set[str]] = {}
    for line in page.splitlines():
        row = re.match(r"^\| (data|model|infra|monitor)-(\d) \|(.*)$", line)
        if row:
            names = set(re.findall(r"`(test_\w+\.py::test_\w+)`", row.group(3)))
            documented[f"{row.group(1)}-{row.group(2)}"] = names
    return documented


def test_the_ml_test_score_page_maps_every_rubric_test_to_checks_that_exist(
    render_project,
) -> None:
    project = render_project()
    marked, documented = marked_checks(project), documented_checks()
    assert len(documented) == 28, sorted(documented)
    for rubric_id, names in documented.items():
        missing = names - marked.get(rubric_id, set())
        assert not missing, f"{rubric_id}: documented but not marked in the project: {missing}"
    undocumented = {i: checks - documented.get(i, set()) for i, checks in marked.items()}
    assert not any(undocumented.values()), {i: c for i, c in undocumented.items() if c}


# ---------------------------------------------------- the project's own docs -----
# A generated project must document itself: every page its README, docs/ and
# configs point to ships with it, and its README names the template it came from.

MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A docs/ path wherever it is mentioned (prose, code spans, config comments), but not
# the tail of a URL or of another path.
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]*\w")
CODE_SPAN = re.compile(r"`[^`\n]*`")


def project_text_files(project: Path) -> dict[Path, str]:
    """Every text file of a rendered project outside .git and the shipped data."""
    files = {}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or relative.parts[0] in (".git", "data"):
            continue
        try:
            files[path] = path.read_text()
        except UnicodeDecodeError:
            continue
    return files


def prose_lines(markdown: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(markdown: str) -> set[str]:
    """The fragment ids GitHub gives the headings of a Markdown text."""
    slugs = set()
    for line in prose_lines(markdown):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading:
            text = CODE_SPAN.sub(lambda span: span.group(0).strip("`"), heading.group(1))
            slugs.add(re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-"))
    return slugs


def broken_references(project: Path) -> list[str]:
    """Relative links (and their anchors) and docs/ paths that lead nowhere in the project."""
    files = project_text_files(project)
    broken = []
    for path, text in files.items():
        name = path.relative_to(project)
        mentioned = {m.split("#")[0] for m in DOCS_PATH.findall(text)}
        broken += [f"{name}: {m}" for m in sorted(mentioned) if not (project / m).exists()]
        if path.suffix != ".md":
            continue
        for line in prose_lines(text):
            for target in MARKDOWN_LINK.findall(CODE_SPAN.sub("", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # a URL (https:, mailto:), not a file of the project
                file_part, _, fragment = target.partition("#")
                linked = (path.parent / file_part).resolve() if file_part else path
                if not linked.exists():
                    broken.append(f"{name}: link to {target}")
                elif linked.suffix == ".md" and fragment not in {"", *anchors(linked.read_text())}:
                    broken.append(f"{name}: no heading #{fragment} in {file_part or name}")
    return broken


@pytest.fixture(scope="module", params=question_choices("ml_task"))
def rendered_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The template's working tree rendered with defaults, per ml_task (no tasks run)."""
    destination = tmp_path_factory.mktemp(request.param) / "project"
    return render(destination, skip_tasks=True, ml_task=request.param)


def test_every_page_the_project_points_to_ships_with_it(rendered_project: Path) -> None:
    assert broken_references(rendered_project) == []


def test_the_readme_links_each_page_of_the_project_docs(rendered_project: Path) -> None:
    pages = sorted(p.name for p in (rendered_project / "docs").glob("*.md"))
    assert {"own-data.md", "monitoring.md", "ml-test-score.md"} <= set(pages)
    readme = (rendered_project / "README.md").read_text()
    linked = set(MARKDOWN_LINK.findall(readme))
    assert [page for page in pages if f"docs/{page}" not in linked] == []


def test_the_project_rubric_page_names_the_files_holding_each_check(
    rendered_project: Path,
) -> None:
    page = (rendered_project / "docs" / "ml-test-score.md").read_text()
    documented = {}
    for line in page.splitlines():
        row = re.match(r"^\| ((?:data|model|infra|monitor)-\d) \|[^|]*\|([^|]*)\|", line)
        if row:
            documented[row.group(1)] = set(re.findall(r"`(test_\w+\.py)`", row.group(2)))
    assert len(documented) == 28, sorted(documented)
    marked = {
        rubric_id: {check.split("::")[0] for check in checks}
        for rubric_id, checks in marked_checks(rendered_project).items()
    }
    wrong = {
        rubric_id: (files, marked.get(rubric_id, set()))
        for rubric_id, files in documented.items()
        if files != marked.get(rubric_id, set())
    }
    assert wrong == {}, "rubric id: (files the page names, files with marked checks)"


def test_the_readme_names_the_source_and_commit_it_was_rendered_from(
    rendered_project: Path,
) -> None:
    answers = yaml.safe_load((rendered_project / ".copier-answers.yml").read_text())
    readme = (rendered_project / "README.md").read_text()
    generated_from = next(line for line in readme.splitlines() if "Generated from" in line)
    assert f"`{TEMPLATE_ROOT}`" in generated_from
    assert f"commit `{answers['_commit']}" in generated_from
    assert "github.com/copier-mlops" not in readme


def test_a_project_from_a_release_names_its_version_and_commit(tmp_path: Path) -> None:
    """A user renders a tagged release: the README says which one, and which commit."""
    source = tmp_path / "copier-mlops"
    source.mkdir()
    shutil.copy(TEMPLATE_ROOT / "copier.yml", source)
    for folder in ("template", "hooks"):
        shutil.copytree(
            TEMPLATE_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    git = ["git", "-C", str(source), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "release"], ["tag", "v9.9.9"]):
        subprocess.run([*git, *command], check=True, capture_output=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    project = tmp_path / "project"
    run_copy(
        str(source),
        project,
        data={"ml_task": "regression", "ci_provider": "none"},
        defaults=True,
        unsafe=True,
        quiet=True,
        skip_tasks=True,
    )
    readme = (project / "README.md").read_text()
    assert f"at `{source}`, version `v9.9.9` (commit `{commit[:12]}`)" in readme
    assert broken_references(project) == []


def documented_modules(heading: str) -> set[str]:
    """The first-column names of the table under a heading of docs/layout.md."""
    text = (TEMPLATE_ROOT / "docs" / "layout.md").read_text()
    section = text.split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


def package_entries(package_dir: Path) -> set[str]:
    """A package's modules and subpackages, as the layout page names them."""
    return {
        path.name + ("/" if path.is_dir() else "")
        for path in package_dir.iterdir()
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists())
    }


def test_the_layout_page_lists_exactly_the_modules_of_both_packages(
    rendered_project: Path,
) -> None:
    """docs/layout.md names every module of the team's room and of the kit, and nothing
    that does not exist."""
    room = rendered_project / "src" / "ml_project"
    kit = rendered_project / "kit" / "mlops_kit"
    assert documented_modules("The team's room") == package_entries(room)
    assert documented_modules("The kit") == package_entries(kit)
