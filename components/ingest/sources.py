"""Reading a data source (a built-in data set, one file, or a landing folder) into batches."""

from __future__ import annotations

import codecs
import csv
import hashlib
import importlib.util
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components import columns
from components.errors import DataError

SOURCE_FILE = columns.SOURCE_FILE
SOURCE_ROW = columns.SOURCE_ROW
READABLE_SUFFIXES = (".csv", ".parquet", ".pq")
DELIMITERS = ",;\t|"
NA_VALUES = ("", "NA", "N/A", "n/a", "#N/A", "NaN", "nan", "NULL", "null")
# Enough lines of a CSV to tell its delimiter; the header alone may hold one column.
SNIFF_CHARS = 64 * 1024


@dataclass(frozen=True)
class CsvFormat:
    """How CSV files are read: their encoding, delimiter (None: detected) and gap markers."""

    encoding: str = "utf-8"
    delimiter: str | None = None
    na_values: tuple[str, ...] = NA_VALUES

    @property
    def text_encoding(self) -> str:
        """The encoding files are opened with: UTF-8 skips a byte-order mark."""
        return "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding


DEFAULT_CSV = CsvFormat()


@dataclass(frozen=True)
class Builtin:
    """A data set shipped by scikit-learn, read without any download."""

    loader: str
    files: tuple[str, ...]
    task: str
    image_shape: tuple[int, int] | None = None
    loader_kwargs: tuple[tuple[str, object], ...] = ()


BUILTINS: dict[str, Builtin] = {
    "digits": Builtin("load_digits", ("digits.csv.gz",), "classification", (8, 8)),
    "wine": Builtin("load_wine", ("wine_data.csv",), "classification"),
    "breast_cancer": Builtin("load_breast_cancer", ("breast_cancer.csv",), "classification"),
    "iris": Builtin("load_iris", ("iris.csv",), "classification"),
    # Unscaled, so that the raw snapshot holds the measurements and the shared
    # preprocessing does the normalising, as for every other source.
    "diabetes": Builtin(
        "load_diabetes",
        ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"),
        "regression",
        loader_kwargs=(("scaled", False),),
    ),
}
BUILTIN_LABEL = "target"


@dataclass(frozen=True)
class FileRecord:
    """One input file as the manifest records it."""

    path: str
    sha256: str
    rows: int
    columns: int


@dataclass(frozen=True)
class Batch:
    """The rows of one input file, with their lineage columns added."""

    record: FileRecord
    frame: pd.DataFrame


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _column_name(name: str) -> str:
    # scikit-learn names such as "mean radius" or "od280/od315_of_diluted_wines"
    # are awkward as TF feature keys; the built-in sets get plain identifiers.
    return re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_")


def read_builtin(name: str) -> Batch:
    """Load a scikit-learn data set with its label in column ``target``."""
    from sklearn import datasets

    spec = BUILTINS[name]
    bunch = getattr(datasets, spec.loader)(as_frame=True, **dict(spec.loader_kwargs))
    frame = bunch.frame.rename(columns=_column_name)
    record = FileRecord(
        path=f"sklearn:{name}",
        sha256=builtin_sha256(name),
        rows=len(frame),
        columns=frame.shape[1],
    )
    return Batch(record, _with_lineage(frame, record.path))


def builtin_sha256(name: str) -> str:
    """One sha256 over the files scikit-learn ships a built-in data set in."""
    # Found without importing scikit-learn (a second), so that an idle
    # `bakeoff retrain` stays quick.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError(f"sklearn:{name}", "scikit-learn is not installed")
    folder = Path(spec.origin).parent / "datasets" / "data"
    digest = hashlib.sha256()
    for file_name in BUILTINS[name].files:
        digest.update(sha256_of(folder / file_name).encode())
    return digest.hexdigest()


def read_table(path: Path, shown_as: str, csv_format: CsvFormat = DEFAULT_CSV) -> Batch:
    """Read one CSV or Parquet file; unreadable or empty files fail naming the file."""
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise DataError(shown_as, f"expected a .csv or .parquet file; found '{path.suffix}'")
    if not path.is_file():
        raise DataError(shown_as, "file not found")
    try:
        if suffix == ".csv":
            frame = _read_csv(path, shown_as, csv_format)
        else:
            # Checked on the schema first: pyarrow aborts the process when it
            # converts a table with repeated field names.
            _check_names(list(pq.read_schema(path).names), shown_as)
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(shown_as, "empty file: expected a header and rows; found nothing") from None
    except UnicodeDecodeError as err:
        raise DataError(
            shown_as,
            f"expected text in {csv_format.encoding} (set ingest.encoding); "
            f"found byte {err.object[err.start : err.start + 1]!r} at byte {err.start}",
        ) from None
    except (pd.errors.ParserError, pa.ArrowException, OSError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(shown_as, f"unreadable: {detail}") from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(shown_as, f"empty table: expected rows; found {len(frame)} rows")
    frame.columns = [str(column) for column in frame.columns]
    _check_names(list(frame.columns), shown_as)
    record = FileRecord(shown_as, sha256_of(path), len(frame), frame.shape[1])
    return Batch(record, _with_lineage(frame, shown_as))


def _read_csv(path: Path, shown_as: str, csv_format: CsvFormat) -> pd.DataFrame:
    encoding = csv_format.text_encoding
    with path.open(newline="", encoding=encoding) as handle:
        sample = handle.read(SNIFF_CHARS)
    if not sample.strip():
        raise pd.errors.EmptyDataError
    delimiter = csv_format.delimiter or sniff_delimiter(sample)
    # pandas renames a repeated CSV header ("x", "x.1"); the file's own header tells.
    header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
    _check_names([name.strip() for name in header], shown_as)
    frame = pd.read_csv(
        path,
        sep=delimiter,
        encoding=encoding,
        skipinitialspace=True,
        # Only the declared markers are gaps: pandas' own list would also turn
        # a category such as "None" or "nan" into a missing value.
        keep_default_na=False,
        na_values=list(csv_format.na_values),
    )
    if frame.shape[1] == 1:
        joined = [mark for mark in DELIMITERS if mark in str(frame.columns[0])]
        if joined:
            raise DataError(
                shown_as,
                f"expected columns separated by {delimiter!r}; found one column named "
                f"{str(frame.columns[0])!r} (set ingest.delimiter, e.g. to {joined[0]!r})",
            )
    return frame


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample (one of ``DELIMITERS``); a comma when none stands out."""
    # A line cut off at the end of the sample would disturb the count.
    lines = sample.splitlines(keepends=True)
    whole = "".join(lines[:-1]) if len(lines) > 1 and not sample.endswith("\n") else sample
    try:
        return csv.Sniffer().sniff(whole, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {mark: header.count(mark) for mark in DELIMITERS}
        best = max(counts, key=lambda mark: counts[mark])
        return best if counts[best] else ","


def _check_names(names: list[str], shown_as: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(shown_as, f"expected unique column names; found {name!r} twice")
        seen.add(name)
    reserved = [name for name in names if name in columns.RESERVED]
    if reserved:
        raise DataError(
            shown_as,
            f"the column name is reserved for bakeoff's own columns ({', '.join(columns.RESERVED)})",
            column=reserved[0],
        )


def landing_files(folder: Path, shown_as: str) -> list[Path]:
    """The CSV and Parquet files of a landing folder, in name order (one batch each)."""
    if not folder.is_dir():
        raise DataError(shown_as, "landing folder not found")
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in READABLE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not files:
        raise DataError(
            shown_as, "empty landing folder: expected .csv or .parquet files; found none"
        )
    return files


def _with_lineage(frame: pd.DataFrame, shown_as: str) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    # Categorical: one string per batch, not per row, in memory and in the Parquet file.
    frame[SOURCE_FILE] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [shown_as])
    # 1-based data rows, as a person counts them in a spreadsheet below the header.
    frame[SOURCE_ROW] = pd.RangeIndex(1, len(frame) + 1, dtype="int64")
    return frame
