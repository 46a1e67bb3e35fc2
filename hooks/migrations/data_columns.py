"""Migration: the rubric's columns move from conf/ml_test_score/ into the demo data files.

Before this change, ``conf/ml_test_score/default.yaml`` (template-owned) named the
staleness check's time column and the inclusion check's sensitive attribute of
the shipped data. They now live in the dataset's own file (``conf/data/``,
team-owned, which ``copier update`` never touches), as ``time_column`` and
``sensitive_column``. Without this migration an updated project would lose both:
the staleness check would fall back to row order and the inclusion check would
not apply.

For each shipped demo data file still in the project that names neither key, the
keys are appended with the demo's values. Files the team wrote itself, and files
that already name the keys, are left alone, so running it again changes nothing.
Offline, no dependency beyond the standard library and PyYAML.
"""

from pathlib import Path

import yaml

# The shipped data files and the columns the old ml_test_score defaults named for them.
DEMO_COLUMNS = {
    "penguins": {
        "source": "data/raw/penguins.csv",
        "time_column": "year",
        "sensitive_column": "sex",
    },
    "auto_mpg": {
        "source": "data/raw/auto_mpg.csv",
        "time_column": "model_year",
        "sensitive_column": "origin",
    },
}
ADDED = """# Rows are ordered in time by this column: the staleness check (model-4) trains
# without the newest period. None: the file's row order.
time_column: {time_column}
# Model quality is compared across the groups of this column (model-7, inclusion).
sensitive_column: {sensitive_column}
"""


def migrate(conf_data: Path) -> list[str]:
    """Add the rubric's columns to the demo data files that lack them; the files changed."""
    changed = []
    for name, columns in DEMO_COLUMNS.items():
        path = conf_data / f"{name}.yaml"
        if not path.is_file():
            continue
        text = path.read_text()
        content = yaml.safe_load(text) or {}
        is_demo = isinstance(content, dict) and content.get("source") == columns["source"]
        if not is_demo or {"time_column", "sensitive_column"} & set(content):
            continue
        path.write_text(text.rstrip("\n") + "\n" + ADDED.format(**columns))
        changed.append(str(path))
    return changed


def main() -> None:
    """Migrate the project in the current folder (copier runs migrations there)."""
    changed = migrate(Path("conf") / "data")
    outcome = f"added to {', '.join(changed)}" if changed else "nothing to do"
    print(f"migration data columns: {outcome}")


if __name__ == "__main__":
    main()
