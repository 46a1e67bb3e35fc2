"""Data stages: ``prepare`` loads the configured source, ``split`` makes train/test sets.

``python -m <package>.data prepare`` and ``python -m <package>.data split`` are the
DVC stage commands; the functions below are what the tests exercise.
"""

import argparse
from pathlib import Path

import pandas as pd

from .config import DataConfig, TrainConfig, load_params

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}


class DataError(ValueError):
    """The data cannot be used as it is; the message says why and what is accepted."""


def load_source(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, refusing other formats and empty files."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; accepted: .csv, .parquet")
    if not path.exists():
        raise DataError(f"{path}: file not found; set data.source in conf/data/ to your file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")
    return reader(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as Parquet, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def prepare(data: DataConfig, output: Path) -> pd.DataFrame:
    """Load the raw source and store it as Parquet for the following stages."""
    frame = load_source(data.source)
    frame.columns = [str(column).strip() for column in frame.columns]
    write_table(frame, output)
    return frame


def split(
    frame: pd.DataFrame, data: DataConfig, train: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test sets, reproducibly and (for classification) stratified."""
    # Imported here: scikit-learn takes longer to import than the prepare stage runs.
    from sklearn.model_selection import train_test_split

    stratify = frame[data.target] if data.is_classification and train.stratify else None
    train_set, test_set = train_test_split(
        frame, test_size=train.test_size, random_state=train.seed, stratify=stratify
    )
    return train_set.reset_index(drop=True), test_set.reset_index(drop=True)


def main() -> None:
    """Run one data stage: ``prepare`` or ``split``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("stage", choices=["prepare", "split"])
    stage = parser.parse_args().stage
    params = load_params()
    if stage == "prepare":
        frame = prepare(params.data, params.paths.prepared)
        print(f"prepare: {len(frame)} rows from {params.data.source} -> {params.paths.prepared}")
        return
    frame = pd.read_parquet(params.paths.validated)
    train_set, test_set = split(frame, params.data, params.train)
    write_table(train_set, params.paths.train)
    write_table(test_set, params.paths.test)
    print(f"split: {len(train_set)} train rows, {len(test_set)} test rows")


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        raise SystemExit(f"data error: {error}") from None
