"""``make accept-data``: the prepared data becomes the reference the table checks compare with.

``python -m mlops_kit.accept --reason "..."`` validates the prepared table against
the schema, records its profile as the new reference (with the reason, keeping the
history), and drops the frozen holdout so the next pipeline freezes a new one.
"""

import argparse

import pandas as pd

from mlops_kit import reference
from mlops_kit.core.params import Params, load_params
from mlops_kit.validation import ValidationFailed, validate


def accept(params: Params, reason: str) -> str:
    """Record the prepared data as the new reference; return what changed, in words."""
    if not reason.strip():
        raise SystemExit(
            'accept: give the reason this data is accepted, e.g. REASON="new sensor firmware"'
        )
    try:
        frame = validate(pd.read_parquet(params.paths.prepared), params.data_schema)
    except ValidationFailed as failure:
        raise SystemExit(f"accept: refused, the data breaks the schema first: {failure}") from None
    previous = reference.read(params.paths.reference)
    same = previous is not None and previous.get("lineage") == reference.lineage(params.data)
    findings = reference.check(frame, previous, params.data, params.table_checks) if same else []
    reference.record(frame, params, reason.strip(), previous=previous)
    params.paths.holdout.unlink(missing_ok=True)
    accepted = "; ".join(finding.message for finding in findings) or "no table check failed"
    return (
        f"accept: {len(frame)} rows of {params.data.source} are the new reference "
        f"({reason.strip()}) -> {params.paths.reference}\n  accepted: {accepted}\n"
        "  the next `make pipeline` validates against it and freezes a new holdout"
    )


def main() -> None:
    """``--reason "..."``: the prepared data becomes the reference."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--reason", required=True, help="why this data is accepted")
    args = parser.parse_args()
    print(accept(load_params(), args.reason))


if __name__ == "__main__":
    main()
