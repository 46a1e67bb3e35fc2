"""Migration to 0.2.0: the team's derived features move out of ``features.py``.

Up to 0.1.0, ``src/<package>/features.py`` mixed the template's preprocessing
with the team's feature functions, so template upgrades and team edits collided
in one file. From 0.2.0, feature functions live in ``derived_features.py``
(team-owned, never touched by updates) and ``features.py`` is template-owned.

``copier update`` re-applies the team's own changes to ``features.py`` on top of
the new template version, then runs this script (stage ``after``). When
``features.py`` still holds a function with the 0.1.0 ``@derived_feature``
decorator, it moves every function and import the new ``features.py`` does not
define into ``derived_features.py``, dropping the decorator.

It runs on every update, not only on those crossing 0.2.0: a project rendered
from a checkout without release tags records a commit, not a version, and
copier skips versioned migrations for it. So the script finds the old layout
itself and changes nothing in a project already in the new one (a fresh render,
or one whose team added helpers of its own to ``features.py``). Offline.
"""

import ast
import re
import sys
from pathlib import Path

import yaml

# The template's own features.py (not a .jinja file: rendered as is).
TEMPLATE_FEATURES = (
    Path(__file__).resolve().parents[2] / "template" / "src" / "{{ package_name }}" / "features.py"
)
OLD_DECORATOR = "derived_feature"
# The decorator on a line of its own, as 0.1.0 documented it; also found in a file
# with conflict markers, which ast cannot parse.
OLD_DECORATOR_LINE = re.compile(rf"^@{OLD_DECORATOR}\s*$", re.MULTILINE)


def line_span(node: ast.stmt, with_decorators: bool = True) -> range:
    """Zero-based indexes of a top-level statement's lines, decorators included by default."""
    decorators = getattr(node, "decorator_list", []) if with_decorators else []
    first = decorators[0].lineno if decorators else node.lineno
    return range(first - 1, node.end_lineno or node.lineno)


def source_of(lines: list[str], node: ast.stmt, with_decorators: bool = True) -> str:
    """The source lines of a top-level statement."""
    span = line_span(node, with_decorators)
    return "".join(lines[span.start : span.stop])


def without_old_decorator(lines: list[str], node: ast.FunctionDef) -> str:
    """A function's source minus the 0.1.0 registration decorator."""
    kept = [
        "".join(lines[decorator.lineno - 1 : decorator.end_lineno])
        for decorator in node.decorator_list
        if ast.unparse(decorator) != OLD_DECORATOR
    ]
    return "".join(kept) + source_of(lines, node, with_decorators=False)


def tidy(text: str) -> str:
    """At most two blank lines in a row and one newline at the end, as ruff formats."""
    return re.sub(r"\n{4,}", "\n\n\n", text).rstrip("\n") + "\n"


def in_old_layout(tree: ast.Module) -> bool:
    """Whether a top-level function still carries the 0.1.0 registration decorator."""
    return any(
        isinstance(node, ast.FunctionDef)
        and any(ast.unparse(decorator) == OLD_DECORATOR for decorator in node.decorator_list)
        for node in tree.body
    )


def template_definitions() -> tuple[set[str], set[str]]:
    """Function names and import statements of the template's features.py."""
    tree = ast.parse(TEMPLATE_FEATURES.read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    imports = {
        ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    }
    return functions, imports


def import_key(statement: str) -> tuple[int, int, str]:
    """Order imports as ruff's isort does: stdlib, third party, local; plain before from."""
    module = statement.split()[1]
    root = module.split(".")[0]
    section = 2 if module.startswith(".") else 0 if root in sys.stdlib_module_names else 1
    return section, statement.startswith("from "), module.lower()


def import_block(statements: list[str]) -> str:
    """Sorted import statements, one blank line between sections."""
    ordered = sorted(set(statements), key=import_key)
    lines: list[str] = []
    for position, statement in enumerate(ordered):
        if position and import_key(statement)[0] != import_key(ordered[position - 1])[0]:
            lines.append("")
        lines.append(statement)
    return "\n".join(lines) + "\n"


def merge_into_derived(
    existing: str, lines: list[str], imports: list[ast.stmt], functions: list[ast.FunctionDef]
) -> str:
    """``derived_features.py`` with the team's imports and not yet present functions added."""
    tree = ast.parse(existing)
    existing_lines = existing.splitlines(keepends=True)
    docstring = tree.body[0] if isinstance(tree.body[0], ast.Expr) else None
    statements = [
        ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    statements += [ast.unparse(node) for node in imports]
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    rest = [
        source_of(existing_lines, node)
        for node in tree.body
        if node is not docstring and not isinstance(node, ast.Import | ast.ImportFrom)
    ]
    rest += [without_old_decorator(lines, node) for node in functions if node.name not in defined]
    head = source_of(existing_lines, docstring) + "\n" if docstring else ""
    return tidy(head + import_block(statements) + "\n\n" + "\n\n".join(rest))


def migrate(package_dir: Path) -> str:
    """Move the team's functions and imports from features.py; return what was done."""
    features = package_dir / "features.py"
    derived = package_dir / "derived_features.py"
    if not features.exists() or not derived.exists():
        return "features.py or derived_features.py missing; nothing to do"
    source = features.read_text()
    if "<<<<<<< " in source:
        if not OLD_DECORATOR_LINE.search(source):
            return "features.py has conflict markers but no @derived_feature; nothing to do"
        script = "hooks/migrations/v0_2_0_derived_features.py"
        return f"resolve the conflict in {features}, then run {script} from a template checkout"
    tree = ast.parse(source)
    if not in_old_layout(tree):
        return "features.py is in the 0.2.0 layout (no @derived_feature); nothing to do"
    template_functions, template_imports = template_definitions()
    lines = source.splitlines(keepends=True)
    team_functions = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name not in template_functions
    ]
    team_imports = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and ast.unparse(node) not in template_imports
    ]
    if not team_functions and not team_imports:
        return "features.py holds no team code; nothing to do"

    derived.write_text(merge_into_derived(derived.read_text(), lines, team_imports, team_functions))

    removed: set[int] = set()
    for node in [*team_imports, *team_functions]:
        removed.update(line_span(node))
    features.write_text(tidy("".join(line for i, line in enumerate(lines) if i not in removed)))
    names = ", ".join(node.name for node in team_functions) or "imports only"
    return f"moved {names} from features.py to derived_features.py"


def main() -> None:
    """Migrate the project in the current folder (copier runs migrations there)."""
    # The answers file names the package: migrations are not given the answers.
    package = yaml.safe_load(Path(".copier-answers.yml").read_text())["package_name"]
    print(f"migration 0.2.0: {migrate(Path('src') / package)}")


if __name__ == "__main__":
    main()
