"""Migration to the ownership line: the team's code moves into its own small package.

Up to 0.4.0, ``src/<package>/`` held the template's machinery (stages, registry,
service...) with the team's derived features in ``derived_features.py`` (from
0.2.0) or decorated with ``@derived_feature`` in ``features.py`` (0.1.0). Now the
machinery is the kit (``kit/mlops_kit/``) and ``src/<package>/`` holds only the
team's room: ``features.py`` (derived features and the encoding), ``model.py``,
``metrics.py`` and ``data.py``.

``copier update`` deletes the old template modules itself (the new template lacks
them), including ``derived_features.py``, and keeps the old ``features.py`` and
``data.py`` (the room's files are never overwritten once they exist). This script
(stage ``after``) then:

- writes the new ``features.py``: the template's header and ``build_preprocessor``
  around the team's feature functions and imports, taken from ``derived_features.py``
  as the last commit holds it (0.2.0 to 0.4.0), or from the decorated functions of
  the old ``features.py`` (0.1.0, decorator dropped);
- replaces the old template ``data.py`` with the room's default hooks;
- points imports of moved modules in the team's own Python files
  (``from <package>.train import fit``) at the kit.

It runs on every update and finds the old layout itself (a project rendered from a
checkout without release tags records a commit, not a version), so it changes
nothing in a project already in the new layout. Offline; standard library and PyYAML.
"""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import yaml

TEMPLATE_ROOM = Path(__file__).resolve().parents[2] / "template" / "src" / "{{ package_name }}"
KIT = "mlops_kit"
ROOM_MODULES = ("features", "model", "metrics", "data")
# What the old template's features.py defined (0.1.0 to 0.4.0): never the team's.
OLD_TEMPLATE_NAMES = {
    "derived_feature",
    "add_derived_features",
    "build_preprocessor",
    "DerivedFeature",
    "DERIVED_FEATURES",
}
OLD_DECORATOR = "derived_feature"
# The kit's features module still offers these (the old template's public helpers).
KIT_FEATURE_NAMES = {"add_derived_features", "derived_feature", "DerivedFeature"}
LINE_LENGTH = 100


def git_show(path: str) -> str | None:
    """A file as the last commit holds it, or None (copier needs a clean, committed tree)."""
    shown = subprocess.run(
        ["git", "show", f"HEAD:{path}"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def bound_names(node: ast.stmt) -> set[str]:
    """The names a top-level statement defines."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {target.id for target in targets if isinstance(target, ast.Name)}


def source_of(lines: list[str], node: ast.stmt, decorators: bool = True) -> str:
    """The source lines of a top-level statement, decorators included by default."""
    listed = getattr(node, "decorator_list", []) if decorators else []
    first = listed[0].lineno if listed else node.lineno
    return "".join(lines[first - 1 : node.end_lineno or node.lineno])


def without_old_decorator(lines: list[str], node: ast.stmt) -> str:
    """A statement's source minus the 0.1.0 registration decorator."""
    listed = getattr(node, "decorator_list", [])
    kept = [
        "".join(lines[decorator.lineno - 1 : decorator.end_lineno])
        for decorator in listed
        if ast.unparse(decorator) != OLD_DECORATOR
    ]
    return "".join(kept) + source_of(lines, node, decorators=False)


# Where the old package's modules and names live in the kit now: a whole module moved
# (``drift`` to ``core.drift``), or some of its names (``Lineage``, once in ``train``).
MOVED_MODULES = {
    "drift": "core.drift",
    "faults": "core.faults",
    "strict_json": "core.strict_json",
}
MOVED_NAMES = {
    "config": ("core.params", lambda name: name not in {"compose_params", "main"}),
    "evaluate": ("core.gate", lambda name: name in {"Decision", "decide", "gain"}),
    "train": (
        "core.lineage",
        lambda name: (
            name
            in {
                "Lineage",
                "input_columns_of",
                "label_change",
                "label_kind",
                "labels_of",
                "lineage_change",
                "lineage_of",
                "plain_labels",
            }
        ),
    ),
    "reference": ("accept", lambda name: name == "accept"),
}


def kit_module(module: str, name: str) -> str:
    """The kit module (under ``mlops_kit``) that holds ``name`` of the old ``module``."""
    if module in MOVED_MODULES:
        return MOVED_MODULES[module]
    if module in MOVED_NAMES and MOVED_NAMES[module][1](name):
        return MOVED_NAMES[module][0]
    return module


def kit_imports(module: str, names: list[ast.alias]) -> list[ast.ImportFrom]:
    """``from <old package>.<module> import names`` as imports of the kit."""
    grouped: dict[str, list[ast.alias]] = {}
    for alias in names:
        if module:
            target = kit_module(module, alias.name)
            grouped.setdefault(f"{KIT}.{target}", []).append(alias)
        elif alias.name in MOVED_MODULES:  # from <package> import drift
            parent, _, leaf = MOVED_MODULES[alias.name].rpartition(".")
            renamed = ast.alias(name=leaf, asname=alias.asname)
            grouped.setdefault(f"{KIT}.{parent}", []).append(renamed)
        else:
            grouped.setdefault(KIT, []).append(alias)
    return [ast.ImportFrom(module=name, names=found, level=0) for name, found in grouped.items()]


def to_kit(node: ast.ImportFrom) -> list[ast.ImportFrom]:
    """A relative import of the old package (``from .config import X``) as the kit's."""
    if node.level == 0:
        return [node]
    return kit_imports(node.module or "", node.names)


def team_code(package: str, features_text: str) -> tuple[list[ast.stmt], list[str]]:
    """The team's imports and the source of its other statements, from the old layout."""
    derived = Path("src", package, "derived_features.py")
    text = derived.read_text() if derived.exists() else git_show(derived.as_posix())
    if text is not None:  # 0.2.0 to 0.4.0: the whole file is the team's
        tree = ast.parse(text)
        lines = text.splitlines(keepends=True)
        body = tree.body[1:] if ast.get_docstring(tree) else tree.body
        imports = [node for node in body if isinstance(node, ast.Import | ast.ImportFrom)]
        rest = [source_of(lines, node) for node in body if node not in imports]
        return imports, rest
    # 0.1.0: the team's statements sit among the template's in features.py.
    tree = ast.parse(features_text)
    lines = features_text.splitlines(keepends=True)
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    imports = [
        node
        for node in body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.ImportFrom) and node.level and node.module == "config")
        and not any(name.startswith(("sklearn", "collections")) for name in imported(node))
    ]
    rest = [
        without_old_decorator(lines, node)
        for node in body
        if node not in imports
        and not isinstance(node, ast.Import | ast.ImportFrom)
        and not bound_names(node) & OLD_TEMPLATE_NAMES
    ]
    return imports, rest


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement reads."""
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def import_key(statement: str, package: str) -> tuple[int, int, str]:
    """Order imports as ruff's isort does: stdlib, third party, first party; plain first."""
    module = statement.split()[1]
    root = module.split(".")[0]
    if root in sys.stdlib_module_names or root == "__future__":
        section = 0
    elif root in (KIT, package):
        section = 2
    else:
        section = 1
    return section, statement.startswith("from "), module.lower()


def import_line(node: ast.Import | ast.ImportFrom) -> str:
    """One import statement, wrapped one name a line when it is too long."""
    line = ast.unparse(node)
    if len(line) <= LINE_LENGTH or not isinstance(node, ast.ImportFrom):
        return line
    names = "".join(f"    {ast.unparse(alias)},\n" for alias in node.names)
    return f"from {node.module} import (\n{names})"


def import_block(nodes: list[ast.stmt], package: str) -> str:
    """Sorted, de-duplicated import statements, a blank line between sections."""
    statements = sorted({import_line(node) for node in nodes}, key=lambda s: import_key(s, package))
    lines: list[str] = []
    for position, statement in enumerate(statements):
        previous = statements[position - 1] if position else None
        if previous and import_key(statement, package)[0] != import_key(previous, package)[0]:
            lines.append("")
        lines.append(statement)
    return "\n".join(lines) + "\n"


def used(name: str, text: str) -> bool:
    """Whether ``name`` appears in ``text`` as a word."""
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def new_features(package: str, old_text: str) -> str:
    """The room's features.py: the template's frame around the team's own code."""
    template = (TEMPLATE_ROOM / "features.py.jinja").read_text()
    head_text = template[: template.index("\ndef safe_ratio")]
    tail = template[template.index("def build_preprocessor") :]
    head = ast.parse(head_text)
    head_lines = head_text.splitlines(keepends=True)
    docstring = source_of(head_lines, head.body[0])
    guarded = [node for node in head.body if isinstance(node, ast.If)]
    team_imports, rest = team_code(package, old_text)
    body = "\n\n".join(part.strip("\n") + "\n" for part in rest)
    checking = "".join(source_of(head_lines, node) for node in guarded)
    code = body + tail + checking
    imports = [
        node
        for node in head.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(used(name, code) for name in bound_names(node))
    ]
    for node in team_imports:
        imports += to_kit(node) if isinstance(node, ast.ImportFrom) else [node]
    block = import_block(imports, package)
    text = f"{docstring}\n{block}\n{checking}\n\n{body}\n\n{tail}"
    return re.sub(r"\n{4,}", "\n\n\n", text).rstrip("\n") + "\n"


def in_old_layout(text: str) -> bool:
    """Whether features.py is the old template module (any release up to 0.4.0)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    defined = set().union(set(), *(bound_names(node) for node in tree.body))
    # Every old release defined both; the room's features.py leaves them to the kit.
    return {"add_derived_features", "derived_feature"} <= defined


def old_data_hooks(text: str) -> bool:
    """Whether data.py is the old template stage module rather than the room's hooks."""
    return "def prepare(" in text or "def main(" in text


def rewrite_imports(path: Path, package: str, room: dict[str, set[str]]) -> bool:
    """Point imports of the old package's moved modules in ``path`` at the kit."""
    text = path.read_text()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        parts = node.module.split(".")
        if parts[0] != package:
            continue
        indent = " " * node.col_offset
        module = ".".join(parts[1:])
        if len(parts) == 1:  # from <package> import registry, features
            kit = [alias for alias in node.names if alias.name not in room]
            mine = [alias for alias in node.names if alias.name in room]
        elif parts[1] in room:  # the room's module: names it lacks moved to the kit's
            kit = [alias for alias in node.names if alias.name not in room[parts[1]]]
            mine = [alias for alias in node.names if alias.name in room[parts[1]]]
        else:
            kit, mine = list(node.names), []
        new = kit_imports(module, kit) if kit else []
        new += [node] if mine and not kit else []
        new += [ast.ImportFrom(module=node.module, names=mine, level=0)] if mine and kit else []
        replacement = "".join(
            indent + import_line(statement).replace("\n", "\n" + indent) + "\n" for statement in new
        )
        first, last = node.lineno, node.end_lineno or node.lineno
        if new != [node] and replacement != "".join(lines[first - 1 : last]):
            edits.append((first, last, replacement))
    if not edits:
        return False
    for first, last, replacement in sorted(edits, reverse=True):
        lines[first - 1 : last] = [replacement]
    path.write_text("".join(lines))
    return True


def room_names(package: str) -> dict[str, set[str]]:
    """The names each module of the room defines now."""
    names = {}
    for module in ROOM_MODULES:
        path = Path("src", package, f"{module}.py")
        if path.exists():
            tree = ast.parse(path.read_text())
            names[module] = set().union(set(), *(bound_names(node) for node in tree.body))
    return names


def team_python_files(package: str) -> list[Path]:
    """Python files the team may have written: its tests, scripts and room, not the kit."""
    skipped = {".git", ".venv", ".tools", "kit", "node_modules"}
    return [
        path
        for path in Path().rglob("*.py")
        if not skipped & set(path.parts) and path.parts[:2] != ("src", KIT)
    ]


def migrate(package: str) -> list[str]:
    """Move the project into the new layout; what was done, one line each."""
    room = Path("src", package)
    features, data = room / "features.py", room / "data.py"
    if not Path("kit").is_dir():
        return ["no kit/ folder: this template version predates the team's room; nothing to do"]
    done = []
    if features.exists() and "<<<<<<< " in features.read_text():
        return [f"{features} has conflict markers: resolve them, then run this script again"]
    if features.exists() and in_old_layout(features.read_text()):
        features.write_text(new_features(package, features.read_text()))
        done.append(f"{features}: the team's derived features, with the room's build_preprocessor")
    if data.exists() and old_data_hooks(data.read_text()):
        data.write_text((TEMPLATE_ROOM / "data.py").read_text())
        done.append(
            f"{data}: the room's load and split hooks (the old stage module is in git: "
            f"git show HEAD:{data.as_posix()})"
        )
    names = room_names(package)
    files = team_python_files(package)
    rewritten = [path for path in files if rewrite_imports(path, package, names)]
    done += [f"{path}: imports of moved modules now name {KIT}" for path in rewritten]
    if rewritten:
        done.append(sort_imports(rewritten))
    return done or ["already in the team's-room layout; nothing to do"]


def sort_imports(paths: list[Path]) -> str:
    """Sort the rewritten files' imports with the project's ruff, when one is at hand."""
    project_ruff = Path(".venv", "bin", "ruff")
    if project_ruff.exists():
        ruff = [str(project_ruff)]
    elif importlib.util.find_spec("ruff") is not None:
        ruff = [sys.executable, "-m", "ruff"]
    else:
        return "imports rewritten; run `make format` once `make setup` has installed ruff"
    files = [str(path) for path in paths]
    sort = [*ruff, "check", "--quiet", "--select", "I", "--fix", *files]
    subprocess.run(sort, capture_output=True, check=False)
    subprocess.run([*ruff, "format", "--quiet", *files], capture_output=True, check=False)
    return "imports of the rewritten files sorted with ruff"


def main() -> None:
    """Migrate the project in the current folder (copier runs migrations there)."""
    # The answers file names the package: migrations are not given the answers.
    package = yaml.safe_load(Path(".copier-answers.yml").read_text())["package_name"]
    for line in migrate(package):
        print(f"migration (team's room): {line}")


if __name__ == "__main__":
    main()
