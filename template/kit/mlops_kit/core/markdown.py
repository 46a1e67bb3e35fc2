"""Markdown tables, as every report of the kit writes them."""

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any) -> str:
    """A value as one table cell: pipes escaped, line breaks as spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()
) -> list[str]:
    """A markdown table as lines: the header, the rule, one line per row.

    Cells are written with ``cell`` (format numbers before passing them); the
    columns whose positions are in ``right`` are right-aligned.
    """
    rule = ["---:" if position in right else "---" for position in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    return [*lines, *("| " + " | ".join(cell(value) for value in row) + " |" for row in rows)]
