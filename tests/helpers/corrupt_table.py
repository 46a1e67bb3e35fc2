"""Bad batches of a generated project's own table, made with the project's libraries.

``python corrupt_table.py KIND`` (run in the project, with its interpreter) rewrites
the configured source (``data.source`` in params.yaml) in its own format with one
corruption of the issue's list. The template's test environment has no pandas.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def one_row(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """The middle row, repeated as many times as the table has rows."""
    return frame.iloc[[len(frame) // 2] * len(frame)].reset_index(drop=True)


def one_row_label_flipped(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """That repeated row with another label of the table."""
    rows = one_row(frame, target)
    rows[target] = frame.loc[frame[target] != rows[target].iloc[0], target].iloc[0]
    return rows


def labels_shuffled(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    frame[target] = np.random.default_rng(0).permutation(frame[target].to_numpy())
    return frame


def class_dropped(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Without the rarest class."""
    return frame[frame[target] != frame[target].value_counts().index[-1]]


def feature_constant(frame: pd.DataFrame, target: str, feature: str) -> pd.DataFrame:
    frame[feature] = frame[feature].mode().iloc[0]
    return frame


def ten_times(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    return pd.concat([frame] * 10, ignore_index=True)


CORRUPTIONS = {
    function.__name__: function
    for function in (one_row, one_row_label_flipped, labels_shuffled, class_dropped, ten_times)
}


def main() -> None:
    kind = sys.argv[1]
    params = yaml.safe_load(Path("params.yaml").read_text())
    data = params["data"]
    source = Path(data["source"])
    frame = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
    if kind == "feature_constant":
        frame = feature_constant(frame, data["target"], data["numeric_features"][0])
    else:
        frame = CORRUPTIONS[kind](frame, data["target"])
    if source.suffix == ".parquet":
        frame.to_parquet(source, index=False)
    else:
        frame.to_csv(source, index=False)


if __name__ == "__main__":
    main()
