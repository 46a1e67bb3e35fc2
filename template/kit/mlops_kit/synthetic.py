"""Synthetic data of any size with the shipped data's schema, for scale tests and benchmarks.

``python -m mlops_kit.synthetic --rows 1000000`` (or ``make synthetic ROWS=1000000``)
resamples rows of ``data.source`` with replacement, so every feature keeps its
relation to the target, then adds noise to the numeric columns and clips them to
the schema's ranges. Missing values stay missing, at the source's rate, so the
table passes the ``validate`` stage like the real one. Train on it with
``dvc exp run -S data.source=<the printed path>``.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_kit.core.params import Params, SchemaConfig, SyntheticConfig, load_params
from mlops_kit.data import load_source, write_table


def jitter_numbers(
    frame: pd.DataFrame,
    schema: SchemaConfig,
    jitter: float,
    rng: np.random.Generator,
    keep: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Add Gaussian noise to numeric columns, clipped to the schema's bounds, keeping dtypes.

    Columns with a category list (a classifier's numeric labels), and those in
    ``keep``, are copied unchanged: a class is no quantity to add noise to.
    """
    noisy = frame.copy()
    for name, rules in schema.columns.items():
        categorical = rules.dtype == "str" or rules.categories is not None
        if categorical or name in keep or name not in noisy:
            continue
        column = noisy[name].astype(float)
        noise = rng.normal(0.0, jitter * float(np.nanstd(column)), size=len(column))
        column = (column + noise).clip(lower=rules.min, upper=rules.max)
        noisy[name] = column.round() if rules.dtype == "int" else column
        if rules.dtype == "int" and not noisy[name].isna().any():
            noisy[name] = noisy[name].astype("int64")
    return noisy


def generate(params: Params, rows: int) -> pd.DataFrame:
    """A table of ``rows`` rows resembling ``data.source``, reproducible from ``train.seed``."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    source = load_source(params.data.source)
    rng = np.random.default_rng(params.train.seed)
    sampled = source.iloc[rng.integers(0, len(source), size=rows)].reset_index(drop=True)
    labels = (params.data.target,) if params.data.is_classification else ()
    return jitter_numbers(sampled, params.data_schema, params.synthetic.jitter, rng, keep=labels)


def output_path(config: SyntheticConfig, rows: int) -> Path:
    """Where a table of ``rows`` rows is written."""
    return config.output_dir / f"rows-{rows}.parquet"


def main() -> None:
    """Write a synthetic table with the number of rows asked for; print its path."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rows", type=int, required=True, help="number of rows to generate")
    rows = parser.parse_args().rows
    params = load_params()
    frame = generate(params, rows)
    path = output_path(params.synthetic, rows)
    write_table(frame, path)
    print(f"synthetic: {len(frame)} rows -> {path}")


if __name__ == "__main__":
    main()
