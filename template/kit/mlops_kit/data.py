"""Data stages: ``prepare`` loads the configured source, ``split`` makes train/test sets.

``python -m mlops_kit.data prepare`` and ``python -m mlops_kit.data split`` are the
DVC stage commands. Reading and splitting are the team's hooks (``src/<package>/data.py``);
this module stores what they return and freezes the holdout.
"""

import argparse
from pathlib import Path

import pandas as pd

from mlops_kit import team
from mlops_kit.core.params import DataConfig, Params, TrainConfig, load_params

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet}


class DataError(ValueError):
    """The data cannot be used as it is; the message says why and what is accepted."""


ACCEPTED = "accepted: a UTF-8, comma-separated CSV with a header row, or a Parquet file"
# A one-column CSV whose header holds one of these was likely written with it as separator.
OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "pipes"}


def load_source(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    Other formats, missing, empty and unreadable files (binary, another encoding,
    another separator, a truncated Parquet file) are refused with a ``DataError``
    naming the file and the problem, never a parser's traceback.
    """
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; accepted: .csv, .parquet")
    if not path.exists():
        raise DataError(f"{path}: file not found; set data.source in conf/data/ to your file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")
    if path.suffix.lower() == ".csv":
        with path.open("rb") as start:
            if b"\0" in start.read(8192):
                raise DataError(f"{path}: binary data (NUL bytes), not text; {ACCEPTED}")
    try:
        frame = reader(path)
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not UTF-8 text (byte {error.start} cannot be decoded); {ACCEPTED}"
        ) from None
    except (ValueError, OSError) as error:  # pandas' parser errors, pyarrow's ArrowInvalid
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        kind = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
        raise DataError(f"{path}: not a readable {kind} file ({problem}); {ACCEPTED}") from None
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for separator, name in OTHER_SEPARATORS.items():
            if separator in header:
                raise DataError(
                    f"{path}: one column only, named {header[:60]!r}: the file looks "
                    f"separated by {name}; {ACCEPTED}"
                )
    return frame


def write_table(frame: pd.DataFrame, path: Path, row_group_rows: int | None = None) -> None:
    """Write a DataFrame as Parquet, creating the parent folder.

    ``row_group_rows`` bounds the rows of a row group (pyarrow's default: about a million),
    which training on a cluster reads as one partition each.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, row_group_size=row_group_rows)


def prepare(data: DataConfig, output: Path) -> pd.DataFrame:
    """Load the raw source with the team's ``load`` and store it as Parquet for the next stages."""
    frame = team.data().load(data.source)
    frame.columns = [str(column).strip() for column in frame.columns]
    write_table(frame, output)
    return frame


def split(
    frame: pd.DataFrame, data: DataConfig, train: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The team's train and test sets of ``frame``."""
    return team.data().split(frame, data, train)


def holdout_rows(path: Path, frame: pd.DataFrame) -> pd.DataFrame | None:
    """The frozen holdout, or None when there is none or it no longer fits the data.

    It no longer fits when its columns differ from the data's (a new dataset).
    """
    if not path.exists():
        return None
    holdout = pd.read_parquet(path)
    return holdout if list(holdout.columns) == list(frame.columns) else None


def without(rows: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """``rows`` minus every row equal (in all columns) to one of ``excluded``."""
    marked = rows.merge(excluded.drop_duplicates(), how="left", indicator=True)
    return rows[(marked["_merge"] == "left_only").to_numpy()].reset_index(drop=True)


def split_stage(frame: pd.DataFrame, params: Params) -> str:
    """Write the train and test splits, and freeze the holdout on a first run.

    The holdout is the test split of the data the reference was recorded from
    (``reference``), kept as it is while that reference stands: evaluation scores
    every challenger and the champion on it, so a new batch cannot rig its own
    exam. Its rows never reach training, even when a new batch contains them.
    """
    train_set, test_set = split(frame, params.data, params.train)
    holdout = holdout_rows(params.paths.holdout, frame)
    if holdout is None:
        write_table(test_set, params.paths.holdout)
        note = f"holdout frozen: these {len(test_set)} test rows -> {params.paths.holdout}"
    else:
        kept = without(train_set, holdout)
        note = (
            f"frozen holdout of {len(holdout)} rows ({params.paths.holdout}); "
            f"{len(train_set) - len(kept)} training rows equal to holdout rows left out"
        )
        train_set = kept
    write_table(train_set, params.paths.train, params.train.cluster.partition_rows)
    write_table(test_set, params.paths.test)
    return f"split: {len(train_set)} train rows, {len(test_set)} test rows; {note}"


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
    print(split_stage(pd.read_parquet(params.paths.validated), params))


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        raise SystemExit(f"data error: {error}") from None
