"""Strict JSON for every report and record the project writes.

Python's ``json`` writes NaN and Infinity, which strict parsers (browsers, jq,
most languages' libraries) refuse. A metric that could not be computed, a median
of an empty column, is written as ``null`` instead.
"""

import json
import math
from pathlib import Path
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy scalars and arrays
        return finite(value.tolist())
    return value


def dumps(content: Any, **options: Any) -> str:
    """``content`` as strict JSON; raises ValueError on anything JSON cannot hold."""
    return json.dumps(finite(content), allow_nan=False, **options)


def write(path: Path, content: Any, sort_keys: bool = False) -> None:
    """Write ``content`` as indented strict JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(content, indent=2, sort_keys=sort_keys, default=str) + "\n")
