"""The team's data hooks: how the raw table is read, and how it is split.

The ``prepare`` stage calls ``load`` on ``data.source`` (``conf/data/``); the
``split`` stage calls ``split`` on the validated table. The defaults read a CSV or
Parquet file and split at random, stratified by class. Change ``load`` to read a
warehouse or join several files, ``split`` to split by time or by customer. The
kit freezes the holdout and checks the schema whatever these return.

``copier update`` never rewrites this file.
"""

from pathlib import Path

import pandas as pd

from mlops_kit.core.params import DataConfig, TrainConfig
from mlops_kit.data import load_source


def load(source: Path) -> pd.DataFrame:
    """The raw table at ``source``: one row per example, the target among the columns.

    The default reads a UTF-8 CSV with a header row or a Parquet file, and refuses
    anything else in one line (``DataError``).
    """
    return load_source(source)


def split(
    frame: pd.DataFrame, data: DataConfig, train: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and test sets of ``frame``, reproducible from ``train.seed``.

    The default draws ``train.test_size`` of the rows at random, stratified by the
    target for classification when ``train.stratify`` is set.
    """
    # Imported here: scikit-learn takes longer to import than the prepare stage runs.
    from sklearn.model_selection import train_test_split

    stratify = frame[data.target] if data.is_classification and train.stratify else None
    train_set, test_set = train_test_split(
        frame, test_size=train.test_size, random_state=train.seed, stratify=stratify
    )
    return train_set.reset_index(drop=True), test_set.reset_index(drop=True)
