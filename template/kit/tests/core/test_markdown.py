"""One markdown table writer for every report."""

from mlops_kit.core.markdown import table


def test_a_table_has_a_header_a_rule_and_one_line_per_row() -> None:
    lines = table(["name", "value"], [("a", 1), ("b", 2.5)], right=[1])
    assert lines == ["| name | value |", "| --- | ---: |", "| a | 1 |", "| b | 2.5 |"]


def test_pipes_and_line_breaks_in_a_cell_cannot_break_the_table() -> None:
    (line,) = table(["note"], [("a | b\nc",)])[2:]
    assert line == "| a \\| b c |"
