"""`make score INPUT=<csv or parquet> OUTPUT=<parquet or csv>`: a table scored by the champion.

The exported champion (``models/champion``, verified as the service verifies it)
scores the table in chunks of ``CHUNK_ROWS``, so memory stays bounded whatever the
table's size. Each row is checked against the champion's input schema as a request
would be: a good row is scored by the same compiled model the service runs; a bad
one goes, with its reasons, to the rejects file (``<OUTPUT stem>.rejected.<ext>``
or ``REJECTS=...``). Scored plus rejected is always the input's row count.

Every output row carries ``row`` (its position in the input, from 0), a
``request_id`` (this run's id and the row), the prediction (and one
``probability_<class>`` column per class), the model's name, version and alias,
and ``scored_at``. Scored rows are appended to the prediction log as the service
writes them (same fields, same sampling), so ``make monitor`` sees batch traffic.

Both files are written beside their destination and moved into place at the end:
a run that fails leaves nothing behind, and says why in one line.
"""

import argparse
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlops_kit.bundle import BundleError, verify_bundle
from mlops_kit.core.faults import NO_ROOM
from mlops_kit.predictor import Predictor, load_predictor
from mlops_kit.serving.bundle import bundle_folder, identity
from mlops_kit.serving.prediction_log import prediction_log_path

CHUNK_ROWS = 100_000

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

# How much of a bad value a reason quotes.
QUOTED_CHARACTERS = 40

IDENTITY = ("model_name", "model_version", "model_alias")


class ScoreError(Exception):
    """What stops the run, in one line (nothing is written)."""


def first_line(error: BaseException) -> str:
    """An exception's message, first line only (Arrow's run on with context)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def table_format(path: Path, role: str) -> str:
    """``csv`` or ``parquet`` from the file's extension, or a one-line refusal."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ScoreError(f"{role} {path} must end in .csv or .parquet")
    return kind


def batches(path: Path, columns: list[str]) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    """The file's column names, and its ``columns`` as Arrow batches.

    CSV cells are read as text and checked as a request's would be (text in a number
    column is a bad row, not a failed read); Parquet keeps its types.
    """
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    if table_format(path, "INPUT") == "parquet":
        source = pq.ParquetFile(path)
        names = source.schema_arrow.names
        present = [column for column in columns if column in names]
        return names, source.iter_batches(batch_size=CHUNK_ROWS, columns=present)
    header = csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 16))
    reader = csv.open_csv(
        path,
        read_options=csv.ReadOptions(block_size=16 << 20),
        convert_options=csv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            include_columns=columns,
            include_missing_columns=True,
            strings_can_be_null=True,
        ),
    )
    return header.schema.names, iter(reader)


def chunks(path: Path, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The input's ``columns`` in chunks of ``CHUNK_ROWS``.

    A table with no rows gives one empty chunk; a missing or unreadable file, or a
    missing column, stops here.
    """
    if not path.is_file():
        raise ScoreError(f"INPUT {path} does not exist (or is not a file)")
    try:
        names, stream = batches(path, columns)
        missing = [column for column in columns if column not in names]
        if missing:
            raise ScoreError(
                f"INPUT {path} lacks the column(s) the champion needs: {', '.join(missing)}"
            )
        pending: list[pd.DataFrame] = []
        held = 0
        yielded = False
        for batch in stream:
            pending.append(batch.to_pandas())
            held += batch.num_rows
            while held >= CHUNK_ROWS:
                frame = pd.concat(pending, ignore_index=True)
                yield frame.iloc[:CHUNK_ROWS]
                yielded = True
                pending, held = [frame.iloc[CHUNK_ROWS:].reset_index(drop=True)], held - CHUNK_ROWS
        if held or not yielded:
            rest = [frame for frame in pending if len(frame)]
            yield (
                pd.concat(rest, ignore_index=True)
                if rest
                else pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
            )
    except (pa.ArrowInvalid, OSError) as error:
        raise ScoreError(f"INPUT {path} cannot be read: {first_line(error)}") from None


def quoted(value: Any) -> str:
    """A bad value as a reason quotes it, cut short."""
    # A numpy scalar quotes as its value (-1.0), not as np.float64(-1.0).
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= QUOTED_CHARACTERS else f"{text[: QUOTED_CHARACTERS - 3]}..."


def category_text(value: Any, numeric: bool) -> str:
    """A cell as text, as the service reads a category.

    Of a numeric column, 97.0 and the text "97.0" are both 97.
    """
    if numeric and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def check_column(
    values: pd.Series, rules: dict[str, Any], column: str, reasons: np.ndarray
) -> np.ndarray:
    """The column as the model takes it; each bad cell's reason appended to its row's.

    Numbers become float64 with NaN for nulls; categories their schema values and text
    its string, as objects with None for nulls.
    """
    missing = values.isna().to_numpy()

    def refuse(bad: np.ndarray, why: str, quote: bool = True) -> None:
        for i in np.flatnonzero(bad):
            reasons[i] = f"{reasons[i]}; " if reasons[i] else ""
            reasons[i] += f"{column}: {quoted(values.iat[i])} {why}" if quote else f"{column} {why}"

    if not rules.get("nullable", True):
        refuse(missing, "is missing (the column is not nullable)", quote=False)
    categories = rules.get("categories")
    if categories:
        allowed = {str(category): category for category in categories}
        numeric = rules["dtype"] in ("int", "float")
        table = {
            value: allowed.get(category_text(value, numeric)) for value in values.dropna().unique()
        }
        mapped = values.map(table).to_numpy(dtype=object)
        refuse(~missing & pd.isna(mapped), "is not one of the categories seen in training")
        return np.where(missing, None, mapped)
    if rules["dtype"] == "str":
        return np.where(missing, None, values.astype(str).to_numpy(dtype=object))
    if values.dtype == bool:
        values = values.astype(np.int64)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    text = ~missing & np.isnan(numbers)
    refuse(text, "is not a number")
    checked = ~missing & ~text
    refuse(checked & np.isinf(numbers), "is not a finite number")
    finite = checked & np.isfinite(numbers)
    if rules["dtype"] == "int":
        refuse(finite & (numbers != np.round(numbers)), "is not a whole number")
    if rules.get("min") is not None:
        refuse(finite & (numbers < rules["min"]), f"is below the minimum {rules['min']}")
    if rules.get("max") is not None:
        refuse(finite & (numbers > rules["max"]), f"is above the maximum {rules['max']}")
    return numbers


def check_chunk(
    frame: pd.DataFrame, schema: dict[str, dict[str, Any]]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every column checked: the model's columns and each row's reasons ("" when good)."""
    reasons = np.full(len(frame), "", dtype=object)
    data = {
        column: check_column(frame[column], rules, column, reasons)
        for column, rules in schema.items()
    }
    return data, reasons


class Writer:
    """A CSV or Parquet file of ``schema``, written chunk by chunk.

    It is written beside ``path`` and moved there at the end.
    """

    def __init__(self, path: Path, role: str, schema: pa.Schema) -> None:
        self.path, self.kind, self.schema = path, table_format(path, role), schema
        if not path.parent.is_dir():
            raise ScoreError(f"{role} {path}: the folder {path.parent} does not exist")
        self.partial = path.with_name(f".{path.name}.partial")
        self.writer: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows."""
        import pyarrow.csv as csv
        import pyarrow.parquet as pq

        if self.writer is None:
            opener = pq.ParquetWriter if self.kind == "parquet" else csv.CSVWriter
            self.writer = opener(self.partial, self.schema)
        table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        self.writer.write_table(table)

    def finish(self) -> None:
        """Close the file (written even when it has no rows) and move it into place."""
        if self.writer is None:
            self.write(self.schema.empty_table().to_pandas())
        self.writer.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        """Remove the partial file of a failed run."""
        if self.writer is not None:
            self.writer.close()
        self.partial.unlink(missing_ok=True)


def output_schema(classes: list | None) -> pa.Schema:
    """The scored file's columns: identifiers, prediction, probabilities, the model."""
    if classes is None:
        prediction = pa.float64()
    else:
        whole = all(isinstance(label, int) and not isinstance(label, bool) for label in classes)
        prediction = pa.int64() if whole else pa.string()
    fields = [("row", pa.int64()), ("request_id", pa.string()), ("prediction", prediction)]
    fields += [(f"probability_{label}", pa.float64()) for label in classes or []]
    fields += [(key, pa.string()) for key in (*IDENTITY, "scored_at")]
    return pa.schema(fields)


def rejects_schema(columns: list[str]) -> pa.Schema:
    """The rejects file's columns: the row, its reasons, and its cells as text."""
    fields = [("row", pa.int64()), ("reasons", pa.string())]
    return pa.schema(fields + [(column, pa.string()) for column in columns])


class PendingLog:
    """Prediction-log lines held in a file beside the log until the run succeeds.

    Memory stays bounded whatever the table's size; on success each chunk's lines are
    appended to the log in one ``write`` on an ``O_APPEND`` descriptor, as the
    service's writer does, so lines of a service logging at the same time never
    interleave with them.
    """

    def __init__(self, log: Path, run_id: str) -> None:
        self.log = log
        self.partial = log.with_name(f".{log.name}.{run_id}.partial")
        self.sizes: list[int] = []

    def add(self, content: bytes) -> None:
        """Hold one chunk's lines."""
        if not self.sizes:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.partial.open("ab") as held:
            held.write(content)
        self.sizes.append(len(content))

    def commit(self) -> None:
        """Append every held chunk to the log."""
        if not self.sizes:
            return
        descriptor = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            with self.partial.open("rb") as held:
                for size in self.sizes:
                    os.write(descriptor, held.read(size))
        finally:
            os.close(descriptor)
        self.discard()

    def discard(self) -> None:
        """Forget the held lines (a failed run logs nothing)."""
        self.partial.unlink(missing_ok=True)


def rejects_path(output: Path) -> Path:
    """``<OUTPUT stem>.rejected.<ext>`` beside the output."""
    return output.with_name(f"{output.stem}.rejected{output.suffix}")


def scored_frame(
    predictor: Predictor, data: dict[str, np.ndarray], rows: np.ndarray, stamp: dict[str, str]
) -> pd.DataFrame:
    """The good rows' predictions with their identifiers and the model's identity."""
    if len(rows):
        labels, probabilities = predictor.predict_columns(data)
    else:  # a chunk with no good row
        labels, probabilities = np.array([]), np.zeros((0, len(predictor.classes or [])))
    frame = pd.DataFrame(
        {"row": rows, "request_id": [f"{stamp['run_id']}-{row}" for row in rows.tolist()]}
    )
    frame["prediction"] = labels
    if probabilities is not None:
        for k, label in enumerate(predictor.classes):
            frame[f"probability_{label}"] = probabilities[:, k]
    for key in (*IDENTITY, "scored_at"):
        frame[key] = stamp[key]
    return frame


def json_cells(values: np.ndarray) -> list[bytes]:
    """Each value as JSON text: NaN and None as null, anything else not JSON str()'d.

    A column of numbers is dumped in one call and cut at its commas, which no number
    contains; any other column dumps each distinct value once (categories repeat).
    """
    import orjson

    if values.dtype.kind in "biuf":
        text = orjson.dumps(values.tolist())[1:-1]
        return text.split(b",") if text else []
    cells = values.tolist()
    option = orjson.OPT_SERIALIZE_NUMPY
    known = {value: orjson.dumps(value, default=str, option=option) for value in set(cells)}
    return [known[value] for value in cells]


def log_lines(frame: pd.DataFrame, data: dict[str, np.ndarray], classes: list | None) -> bytes:
    """The scored rows as the service logs its predictions, one JSON line each.

    The fields of ``line_of`` in its order, each column written as JSON once and
    the lines assembled by one bytes format: a million lines take seconds, where a
    dict and a ``json.dumps`` per line take a minute.
    """
    import orjson

    if not len(frame):
        return b""

    def field(key: str) -> bytes:  # a key as JSON, with % escaped for the format
        return orjson.dumps(key).replace(b"%", b"%%")

    constant = b"".join(
        b"," + field(key) + b":" + orjson.dumps(frame[column].iat[0]).replace(b"%", b"%%")
        for key, column in (("time", "scored_at"), *((key, key) for key in IDENTITY))
    )
    names = list(data)
    layout = b"{" + field("request_id") + b":%b" + constant + b"," + field("features") + b":{"
    layout += b",".join(field(name) + b":%b" for name in names) + b"},"
    layout += field("prediction") + b":%b," + field("probabilities") + b":"
    # Request ids are unique and plain ASCII (run id, row): quoted, not dumped.
    columns = [b'"%b"' % request_id.encode() for request_id in frame["request_id"].tolist()]
    columns = [columns, *(json_cells(data[name]) for name in names)]
    columns.append(json_cells(frame["prediction"].to_numpy()))
    if classes is None:
        layout += b"null}\n"
    else:
        keys = [str(label) for label in classes]
        layout += b"{" + b",".join(field(key) + b":%b" for key in keys) + b"}}\n"
        columns += [json_cells(frame[f"probability_{label}"].to_numpy()) for label in classes]
    return b"".join(layout % cells for cells in zip(*columns, strict=True))


def score(input_path: Path, output: Path, rejects: Path, bundle: Path) -> tuple[int, int]:
    """Score ``input_path`` into ``output`` and ``rejects``; the two row counts."""
    table_format(output, "OUTPUT")
    table_format(rejects, "REJECTS")
    try:
        metadata = verify_bundle(bundle)
        # Every core: the command runs alone, where a service worker keeps to one.
        predictor = load_predictor(bundle, metadata["runtime"], threads=0)
    except BundleError as error:
        raise ScoreError(str(error)) from None
    schema = metadata["input_schema"]
    settings = metadata["serve"]["prediction_log"]
    stamp = {
        **identity(metadata, metadata),
        "run_id": uuid.uuid4().hex[:12],
        "scored_at": datetime.now(tz=UTC).isoformat(),
    }
    writers = [
        Writer(output, "OUTPUT", output_schema(predictor.classes)),
        Writer(rejects, "REJECTS", rejects_schema(list(schema))),
    ]
    scored = rejected = start = 0
    rng = np.random.default_rng()
    log = PendingLog(prediction_log_path({"prediction_log": settings}), stamp["run_id"])
    try:
        for frame in chunks(input_path, list(schema)):
            data, reasons = check_chunk(frame, schema)
            rows = np.arange(start, start + len(frame))
            start += len(frame)
            good = reasons == ""
            kept = {column: values[good] for column, values in data.items()}
            result = scored_frame(predictor, kept, rows[good], stamp)
            writers[0].write(result)
            bad = frame.loc[~good].astype(object)
            bad = bad.astype(str).where(bad.notna(), None)
            bad.insert(0, "row", rows[~good])
            bad.insert(1, "reasons", reasons[~good].astype(str))
            writers[1].write(bad.reset_index(drop=True))
            # The service's sampling (serve.prediction_log.sample_rate), row by row.
            sampled = rng.random(len(result)) < settings["sample_rate"]
            if sampled.any():
                log.add(
                    log_lines(
                        result.loc[sampled].reset_index(drop=True),
                        {column: values[sampled] for column, values in kept.items()},
                        predictor.classes,
                    )
                )
            scored, rejected = scored + int(good.sum()), rejected + int((~good).sum())
        for writer in writers:
            writer.finish()
    except BaseException:
        for writer in writers:
            writer.discard()
        log.discard()
        raise
    log.commit()
    return scored, rejected


def main(argv: list[str] | None = None) -> None:
    """Score INPUT into OUTPUT; print both counts, or the one line that says what is wrong."""
    parser = argparse.ArgumentParser(prog="make score", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="the table to score (.csv or .parquet)")
    parser.add_argument("output", type=Path, help="where the scored rows go (.parquet or .csv)")
    parser.add_argument("--rejects", type=Path, help="where bad rows go, with their reasons")
    arguments = parser.parse_args(argv)
    rejects = arguments.rejects or rejects_path(arguments.output)
    try:
        scored, rejected = score(arguments.input, arguments.output, rejects, bundle_folder())
    except ScoreError as error:
        sys.exit(f"score: {error}")
    except OSError as error:
        if error.errno in NO_ROOM:
            mend = "free some space and run it again; nothing was written"
            sys.exit(f"score: no space left on the device ({error}): {mend}")
        sys.exit(f"score: {first_line(error)}")
    print(
        f"score: {scored:,} rows scored into {arguments.output}, "
        f"{rejected:,} rejected into {rejects} (each with its reasons)"
    )


if __name__ == "__main__":
    main()
