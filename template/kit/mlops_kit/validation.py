"""Validation stage: check the prepared data against the schema in ``conf/schema/``.

``python -m mlops_kit.validation validate`` is the DVC stage: it writes a report
(JSON for machines, the same findings printed for people) and fails, naming the
column and rule, when the data breaks the schema; then it checks the table as a
whole against the reference profile (``reference``) and fails, naming the check,
when the batch strays from it. ``... infer`` derives a schema from the configured
data's statistics, to review and commit.
"""

import argparse
import math
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import yaml
from pandera.errors import SchemaErrors

from mlops_kit import reference
from mlops_kit.core import strict_json
from mlops_kit.core.params import ColumnSchema, DataConfig, SchemaConfig, load_params
from mlops_kit.data import load_source, write_table

PANDERA_DTYPES = {"float": float, "int": int, "str": str}
MAX_EXAMPLES = 5


class ValidationFailed(ValueError):
    """The data broke the schema; ``findings`` lists every broken rule."""

    def __init__(self, findings: list[dict]):
        self.findings = findings
        super().__init__(format_findings(findings))


def null_fraction_check(limit: float) -> pa.Check:
    """A column-level check that at most ``limit`` of the values are missing."""
    return pa.Check(
        lambda series: bool(series.isna().mean() <= limit),
        ignore_na=False,
        name=f"max_null_fraction<={limit}",
    )


def column_checks(rules: ColumnSchema) -> list[pa.Check]:
    """Translate one column's rules into pandera checks."""
    checks = []
    if rules.min is not None:
        checks.append(pa.Check.ge(rules.min))
    if rules.max is not None:
        checks.append(pa.Check.le(rules.max))
    if rules.categories is not None:
        checks.append(pa.Check.isin(rules.categories))
    if rules.nullable:
        checks.append(null_fraction_check(rules.max_null_fraction))
    return checks


def build_schema(schema: SchemaConfig) -> pa.DataFrameSchema:
    """Build the pandera schema that ``validate`` enforces."""
    columns = {
        name: pa.Column(
            PANDERA_DTYPES[rules.dtype],
            checks=column_checks(rules),
            nullable=rules.nullable,
            coerce=True,
            required=True,
        )
        for name, rules in schema.columns.items()
    }
    min_rows = pa.Check(
        lambda frame: len(frame) >= schema.min_rows,
        name=f"min_rows>={schema.min_rows}",
    )
    return pa.DataFrameSchema(columns, checks=[min_rows], strict=False, coerce=True)


def summarize_failures(failure_cases: pd.DataFrame) -> list[dict]:
    """Group pandera's failure cases into one finding per column and rule."""
    findings = []
    cases = failure_cases.copy()
    # A missing column is reported at table level, with the column as the "case".
    missing = cases["check"] == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    grouped = cases.fillna({"column": "<table>"}).groupby(
        ["column", "check"], sort=True, dropna=False
    )
    for (column, check), group in grouped:
        examples = [str(value) for value in group["failure_case"].head(MAX_EXAMPLES)]
        findings.append(
            {
                "column": str(column),
                "rule": str(check),
                "failures": len(group),
                "examples": examples,
            }
        )
    return findings


def format_findings(findings: list[dict]) -> str:
    """One line per rule, e.g. ``column 'x' broke rule greater_than_or_equal_to(0) in 3 row(s)``."""
    lines = [
        f"column {finding['column']!r} broke rule {finding['rule']} in "
        f"{finding['failures']} row(s) (e.g. {', '.join(finding['examples'])})"
        for finding in findings
    ]
    return "data validation failed:\n  " + "\n  ".join(lines)


def validate(frame: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """Return the data with schema dtypes, or raise ``ValidationFailed`` listing every problem."""
    try:
        return build_schema(schema).validate(frame, lazy=True)
    except SchemaErrors as errors:
        raise ValidationFailed(summarize_failures(errors.failure_cases)) from None


def too_few_rows(rows: int, source: Path, min_rows: int) -> str | None:
    """The one line for a table with fewer rows than the schema's ``min_rows``, or None.

    Said before the column rules run: on a table with no rows every column rule
    fails too, and those lines would hide the one cause.
    """
    if rows >= min_rows:
        return None
    held = "no data rows, only a header" if rows == 0 else f"{rows} data row(s)"
    return (
        f"validate: {source} has {held}, fewer than the schema's min_rows={min_rows}: "
        "add rows to it, or lower min_rows in conf/schema/ if so few are enough"
    )


def write_report(
    path: Path, rows: int, findings: list[dict], table_findings: list[dict] | None = None
) -> None:
    """Write the validation report as JSON: column-rule findings, then table-check ones."""
    table_findings = table_findings or []
    report = {
        "valid": not findings and not table_findings,
        "rows": rows,
        "findings": findings,
        "table_findings": table_findings,
    }
    strict_json.write(path, report)


def round_outward(value: float, lower: bool) -> float:
    """Round a bound outward to 3 significant digits so it stays human-readable."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.floor if lower else math.ceil)(value / scale) * scale
    return float(round(rounded, 10))


def infer_column(
    series: pd.Series, is_target: bool, range_margin: float, null_slack: float
) -> dict:
    """Derive one column's rules from its observed statistics.

    Whole numbers are ``int``, unless values are missing: an integer column with
    gaps is read as floats with NaN, so it is ``float`` (the service still takes
    whole numbers for it). Booleans are numbers 0 and 1 (``int``, ``float`` with
    gaps), range exactly [0, 1], so they work as numeric or as categorical features
    and the service takes JSON true/false for them.
    """
    null_fraction = float(series.isna().mean())
    nullable = bool(null_fraction > 0 and not is_target)
    values = series.dropna()
    rules: dict = {}
    # True/False with gaps is read by pandas as an object column, not a boolean one.
    boolean = pd.api.types.is_bool_dtype(series) or (
        series.dtype == object and len(values) > 0 and values.map(pd.api.types.is_bool).all()
    )
    if boolean:
        rules["dtype"] = "float" if nullable else "int"
        rules["min"], rules["max"] = (0.0, 1.0) if nullable else (0, 1)
    elif pd.api.types.is_numeric_dtype(series):
        integral = bool((values == values.round()).all())
        rules["dtype"] = "int" if integral and not nullable else "float"
        spread = float(values.max() - values.min())
        low = round_outward(float(values.min()) - range_margin * spread, lower=True)
        high = round_outward(float(values.max()) + range_margin * spread, lower=False)
        whole = rules["dtype"] == "int"
        rules["min"] = math.floor(low) if whole else low
        rules["max"] = math.ceil(high) if whole else high
    else:
        rules["dtype"] = "str"
        rules["categories"] = sorted(str(value) for value in values.unique())
    rules["nullable"] = nullable
    if nullable:
        rules["max_null_fraction"] = round(min(1.0, null_fraction + null_slack), 3)
    return rules


def infer_target(series: pd.Series, is_classification: bool) -> dict:
    """The target's rules: its classes (whole-number labels stay numbers), else its range."""
    values = series.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if is_classification and numeric and bool((values == values.round()).all()):
        return {
            "dtype": "int",
            "categories": sorted(int(value) for value in values.unique()),
            "nullable": False,
        }
    return infer_column(series, True, range_margin=0.1, null_slack=0.0)


def infer_schema(
    frame: pd.DataFrame, data: DataConfig, range_margin: float, null_slack: float
) -> dict:
    """Derive a schema for the target and input columns from the data's statistics."""
    rules = {data.target: infer_target(frame[data.target], data.is_classification)}
    for column in data.input_columns:
        rules[column] = infer_column(frame[column], False, range_margin, null_slack)
    return {"min_rows": max(1, len(frame) // 10), "columns": rules}


def main() -> None:
    """Run ``validate`` (the DVC stage) or ``infer`` (derive a schema from the data)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("command", choices=["validate", "infer"])
    parser.add_argument(
        "--range-margin", type=float, default=0.1, help="widen ranges by this share"
    )
    parser.add_argument("--null-slack", type=float, default=0.05, help="extra tolerated null share")
    args = parser.parse_args()
    params = load_params()
    if args.command == "infer":
        frame = load_source(params.data.source)
        schema = infer_schema(frame, params.data, args.range_margin, args.null_slack)
        output = Path("conf/schema") / f"{params.data.source.stem}.yaml"
        header = (
            f"# Derived from {params.data.source} by `make schema`; review before committing.\n"
        )
        output.write_text(header + yaml.safe_dump(schema, sort_keys=False))
        print(f"schema: wrote {output} from {len(frame)} rows of {params.data.source}")
        return
    frame = pd.read_parquet(params.paths.prepared)
    too_few = too_few_rows(len(frame), params.data.source, params.data_schema.min_rows)
    if too_few:
        finding = {"column": "<table>", "rule": f"min_rows>={params.data_schema.min_rows}"}
        examples = {"failures": 1, "examples": [f"{len(frame)} rows"]}
        write_report(params.paths.validation_report, len(frame), [{**finding, **examples}])
        raise SystemExit(too_few)
    try:
        validated = validate(frame, params.data_schema)
    except ValidationFailed as failure:
        write_report(params.paths.validation_report, len(frame), failure.findings)
        raise SystemExit(f"{failure}\nreport: {params.paths.validation_report}") from None
    try:
        table_findings, checked = reference.compare(validated, params)
    except reference.ReferenceLost as lost:
        raise SystemExit(f"validate: {lost}") from None
    write_report(
        params.paths.validation_report, len(frame), [], reference.as_report(table_findings)
    )
    if table_findings:
        lines = "\n  ".join(finding.message for finding in table_findings)
        raise SystemExit(
            f"table checks failed against the reference profile:\n  {lines}\n"
            f"report: {params.paths.validation_report}\n"
            'data that changed on purpose: make accept-data REASON="why it changed"'
        )
    write_table(validated, params.paths.validated)
    print(f"validate: {len(frame)} rows match the schema -> {params.paths.validated}")
    print(f"validate: {checked}")


if __name__ == "__main__":
    main()
