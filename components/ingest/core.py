"""The ingest stage's core: read the source, harmonise the batches, record what was read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components import columns as columns_
from components.errors import DataError, ParamsError
from components.ingest import sources
from components.params import choice, names

SOURCES = ("builtin", "file", "landing")
TASKS = ("classification", "regression")
LABEL_CANDIDATES = ("target", "label", "y", "class")
# An integer-valued numeric label with at most this many distinct values is a
# class label; more, and the task is regression. Params can say otherwise.
MAX_INFERRED_CLASSES = 50
MANIFEST_VERSION = 1
# The data set's name is a file name: dvc.yaml reads the schema at schemas/<name>.yaml.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class IngestParams:
    """The ``ingest`` section of params.yaml, unpacked."""

    name: str
    source: str
    builtin: str
    path: Path
    label: str | None
    task: str | None
    features: tuple[str, ...] | None
    ignore: tuple[str, ...]
    image_shape: tuple[int, int] | None
    csv: sources.CsvFormat = sources.DEFAULT_CSV

    @classmethod
    def from_section(cls, raw: dict[str, Any], root: Path = Path(".")) -> IngestParams:
        """Check and unpack the raw ``ingest`` mapping; paths are relative to ``root``."""
        source = choice(raw.get("source", "builtin"), "ingest.source", SOURCES)
        builtin = choice(raw.get("builtin", "digits"), "ingest.builtin", tuple(sources.BUILTINS))
        path = raw.get("path")
        if source != "builtin" and not isinstance(path, str):
            raise ParamsError(
                "ingest.path", f"expected a path for source '{source}'; found {path!r}"
            )
        task = raw.get("task", "auto")
        label = raw.get("label", "auto")
        if not isinstance(label, str) or not label:
            raise ParamsError("ingest.label", f"expected 'auto' or a column name; found {label!r}")
        shape = raw.get("image_shape")
        if shape is not None and (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(side, int) and side > 0 for side in shape)
        ):
            raise ParamsError(
                "ingest.image_shape", f"expected [height, width] or null; found {shape!r}"
            )
        name = str(raw.get("name") or builtin)
        if not NAME.fullmatch(name):
            raise ParamsError(
                "ingest.name",
                "expected letters, digits, '.', '-' or '_' (the schema is "
                f"schemas/<ingest.name>.yaml); found {name!r}",
            )
        return cls(
            name=name,
            source=source,
            builtin=builtin,
            path=root / (path or "."),
            label=None if label == "auto" else label,
            task=None if task == "auto" else choice(task, "ingest.task", (*TASKS, "auto")),
            features=names(raw.get("features", "auto"), "ingest.features"),
            ignore=names(raw.get("ignore"), "ingest.ignore") or (),
            image_shape=tuple(shape) if shape else None,
            csv=_csv_format(raw),
        )


def _csv_format(raw: dict[str, Any]) -> sources.CsvFormat:
    encoding = raw.get("encoding", "utf-8")
    try:
        # Also refuses codecs that are not text encodings, such as base64.
        "".encode(encoding if isinstance(encoding, str) else "")
    except LookupError:
        raise ParamsError(
            "ingest.encoding",
            f"expected a text encoding such as utf-8, latin-1 or cp1252; found {encoding!r}",
        ) from None
    delimiter = raw.get("delimiter", "auto")
    if delimiter != "auto" and (
        not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n'
    ):
        raise ParamsError(
            "ingest.delimiter",
            f"expected 'auto' or one character such as ',', ';', '\\t' or '|'; found {delimiter!r}",
        )
    na_values = raw.get("na_values", list(sources.NA_VALUES))
    if not isinstance(na_values, list) or not all(isinstance(v, str) for v in na_values):
        raise ParamsError(
            "ingest.na_values", f"expected a list of strings that mark a gap; found {na_values!r}"
        )
    return sources.CsvFormat(
        encoding=encoding,
        delimiter=None if delimiter == "auto" else delimiter,
        na_values=tuple(na_values),
    )


@dataclass(frozen=True)
class Snapshot:
    """What ingest read: the rows of every batch and how to interpret them."""

    frame: pd.DataFrame
    files: tuple[sources.FileRecord, ...]
    dataset: str
    source: dict[str, str]
    label: str
    task: str
    features: tuple[str, ...]
    image_shape: tuple[int, int] | None


def shown_path(path: Path, root: Path | None) -> str:
    """``path`` as messages and the manifest show it: relative to ``root`` where possible."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def ingest(params: IngestParams, shown_root: Path | None = None) -> Snapshot:
    """Read the source named in ``params`` into one snapshot; paths show relative to ``shown_root``."""
    label: str | None = params.label
    task: str | None = params.task
    image_shape = params.image_shape
    if params.source == "builtin":
        batches = [sources.read_builtin(params.builtin)]
        builtin = sources.BUILTINS[params.builtin]
        label = label or sources.BUILTIN_LABEL
        task = task or builtin.task
        image_shape = image_shape or builtin.image_shape
        source = {"kind": "builtin", "name": params.builtin}
    else:
        if params.source == "file":
            paths = [params.path]
        else:
            paths = sources.landing_files(params.path, shown_path(params.path, shown_root))
        batches = [
            sources.read_table(path, shown_path(path, shown_root), params.csv) for path in paths
        ]
        source = {"kind": params.source, "path": shown_path(params.path, shown_root)}

    frame = combine(batches)
    where = batches[0].record.path if len(batches) == 1 else source.get("path", "")
    columns = [column for column in frame.columns if not columns_.is_metadata(column)]
    label = label or infer_label(columns)
    if label not in columns:
        raise DataError(
            where, f"missing label column: expected '{label}'; found columns {columns[:12]}"
        )
    task = task or infer_task(frame[label])
    features = params.features or tuple(
        column for column in columns if column != label and column not in params.ignore
    )
    absent = [column for column in features if column not in columns]
    if absent:
        raise DataError(where, "declared in ingest.features but not in the data", column=absent[0])
    if label in features:
        raise ParamsError("ingest.features", f"the label '{label}' cannot also be a feature")
    repeated = sorted({column for column in features if features.count(column) > 1})
    if repeated:
        raise ParamsError("ingest.features", f"'{repeated[0]}' is listed more than once")
    _check_cells(frame, (*features, label), where)
    if image_shape and image_shape[0] * image_shape[1] != len(features):
        raise ParamsError(
            "ingest.image_shape",
            f"{image_shape[0]}x{image_shape[1]} does not match the {len(features)} features",
        )
    return Snapshot(
        frame=frame,
        dataset=params.name,
        files=tuple(batch.record for batch in batches),
        source=source,
        label=label,
        task=task,
        features=features,
        image_shape=image_shape,
    )


#: Cell values no framework's input takes as one feature (Parquet lists, maps, binary).
NESTED = (list, tuple, dict, set, np.ndarray, bytes, bytearray)


def _check_cells(frame: pd.DataFrame, columns: tuple[str, ...], where: str) -> None:
    """Every cell of a feature or the label holds one number or one text, else one line."""
    for column in columns:
        series = frame[column]
        if series.dtype != object:
            continue
        nested = series.map(lambda value: isinstance(value, NESTED))
        if nested.any():
            first = int(np.argmax(nested.to_numpy()))
            value = series.iloc[first]
            row, source = (
                frame[sources.SOURCE_ROW].iloc[first],
                frame[sources.SOURCE_FILE].iloc[first],
            )
            raise DataError(
                where,
                f"expected one number or text per cell; found {type(value).__name__} "
                f"{str(value)[:40]!r} in {int(nested.sum())} rows (flatten it into columns "
                "upstream, or list it in ingest.ignore)",
                row=f"row {row}" if str(source) == where else f"row {row} of {source}",
                column=column,
            )


def source_files(params: IngestParams, shown_root: Path | None = None) -> dict[str, str]:
    """The source's files as ingest would record them, path to sha256, without reading rows.

    The paths and hashes are those of the manifest's ``files``, so comparing the
    two tells whether the source changed since the last ingest.
    """
    if params.source == "builtin":
        return {f"sklearn:{params.builtin}": sources.builtin_sha256(params.builtin)}
    if params.source == "file":
        paths = [params.path]
        if not params.path.is_file():
            raise DataError(shown_path(params.path, shown_root), "file not found")
    else:
        paths = sources.landing_files(params.path, shown_path(params.path, shown_root))
    return {shown_path(path, shown_root): sources.sha256_of(path) for path in paths}


def combine(batches: list[sources.Batch]) -> pd.DataFrame:
    """Stack batches; a column whose batches disagree on being numeric becomes text.

    Text keeps every value as it was written, so clean can report the rows that
    do not fit the schema instead of ingest guessing at them.
    """
    frames = [batch.frame for batch in batches]
    if len(frames) == 1:
        return frames[0]
    columns: list[str] = []
    for frame in frames:
        columns.extend(column for column in frame.columns if column not in columns)
    textual = {
        column
        for column in columns
        if len({_batch_kind(frame[column]) for frame in frames if column in frame} - {"empty"}) > 1
    }
    if textual:
        frames = [
            frame.assign(**{c: columns_.as_text(frame[c]) for c in textual if c in frame})
            for frame in frames
        ]
    lineage = [sources.SOURCE_FILE, sources.SOURCE_ROW]
    ordered = [column for column in columns if column not in lineage] + lineage
    combined = pd.concat(frames, ignore_index=True)[ordered]
    combined[sources.SOURCE_FILE] = combined[sources.SOURCE_FILE].astype("category")
    return combined


def _batch_kind(series: pd.Series) -> str:
    if series.isna().all():
        return "empty"
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    return "number" if pd.api.types.is_numeric_dtype(series) else "text"


def infer_label(columns: list[str]) -> str:
    """The label column when params say ``auto``: a conventional name, else the last column."""
    lowered = {column.lower(): column for column in columns}
    for candidate in LABEL_CANDIDATES:
        if candidate in lowered:
            return lowered[candidate]
    return columns[-1]


def infer_task(label: pd.Series) -> str:
    """Classification for text labels or few integer values; regression otherwise.

    A numeric label is judged by its parsed values, so a stray ``"?"`` in a
    column of numbers does not turn a regression into a classification.
    """
    if columns_.kind_of(label) == columns_.STRING:
        return "classification"
    values = columns_.as_number(label).dropna()
    values = values[np.isfinite(values)]
    integral = bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    if integral and values.nunique() <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def manifest(
    snapshot: Snapshot,
    snapshot_path: str,
    snapshot_sha256: str,
    ingested_at: str,
) -> dict[str, Any]:
    """The manifest: what was read, its checksums and counts, and how it is to be used."""
    frame = snapshot.frame
    data_columns = [column for column in frame.columns if not columns_.is_metadata(column)]
    return {
        "version": MANIFEST_VERSION,
        "dataset": snapshot.dataset,
        "source": snapshot.source,
        "files": [
            {"path": f.path, "sha256": f.sha256, "rows": f.rows, "columns": f.columns}
            for f in snapshot.files
        ],
        "rows": len(frame),
        "columns": len(data_columns),
        "column_types": {column: str(frame[column].dtype) for column in data_columns},
        "label": snapshot.label,
        "task": snapshot.task,
        "features": list(snapshot.features),
        "image_shape": list(snapshot.image_shape) if snapshot.image_shape else None,
        "snapshot": {"path": snapshot_path, "sha256": snapshot_sha256},
        "ingested_at": ingested_at,
    }
