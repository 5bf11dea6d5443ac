"""``bakeoff simulate``: append realistic new batches to the landing folder, optionally drifted.

A batch resamples the rows of a reference table (a built-in data set or a
CSV/Parquet file) and jitters each numeric feature by ``noise`` of its
standard deviation, kept within the reference's observed range so that clean
accepts it. Drift moves the chosen numeric features by ``shift`` standard
deviations, unclipped, so that it shows in the data-quality report and, when
large, in the models. Integer features stay whole numbers. Batches are
written as ``batch-NNNN.csv`` in sequence; a half-written file is never
visible to ingest (it is written under a dot-name and renamed).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.errors import BakeoffError

BATCH_NAME = re.compile(r"^batch-(\d+)\.csv$")


@dataclass(frozen=True)
class Drift:
    """How a batch differs from the reference."""

    noise: float = 0.3  # per-value jitter, in standard deviations (within the observed range)
    shift: float = 0.0  # added to the drifting features, in standard deviations
    columns: tuple[str, ...] | None = None  # the drifting features; None: every numeric one


def simulate_batch(
    reference: pd.DataFrame, label: str, rows: int, seed: int, drift: Drift = Drift()
) -> pd.DataFrame:
    """``rows`` new rows like ``reference``'s, with its columns in its order."""
    if rows < 1:
        raise BakeoffError(f"simulate: rows must be at least 1; found {rows}")
    if drift.noise < 0:
        raise BakeoffError(f"simulate: noise must be 0 or more; found {drift.noise}")
    if label not in reference.columns:
        raise BakeoffError(f"simulate: the reference has no label column {label!r}")
    rng = np.random.default_rng(seed)
    batch = reference.iloc[rng.integers(0, len(reference), rows)].reset_index(drop=True)
    numeric = [
        name
        for name in reference.columns
        if name != label and pd.api.types.is_numeric_dtype(reference[name])
    ]
    drifting = set(numeric if drift.columns is None else drift.columns)
    unknown = drifting - set(numeric)
    if unknown:
        raise BakeoffError(f"simulate: no numeric feature named {', '.join(sorted(unknown))}")
    for name in numeric:
        original = reference[name].astype(np.float64)
        deviation = float(original.std(ddof=0)) or 1.0
        values = batch[name].astype(np.float64).to_numpy()
        values = values + rng.normal(0.0, drift.noise * deviation, rows)
        values = np.clip(values, original.min(), original.max())
        if name in drifting:
            values = values + drift.shift * deviation
        if pd.api.types.is_integer_dtype(reference[name]):
            batch[name] = np.round(values).astype(np.int64)
        else:
            batch[name] = values
    return batch


def next_batch_path(folder: Path) -> Path:
    """The landing file after the highest ``batch-NNNN.csv`` already there."""
    numbers = [
        int(match.group(1))
        for path in folder.glob("batch-*.csv")
        if (match := BATCH_NAME.match(path.name))
    ]
    return folder / f"batch-{max(numbers, default=0) + 1:04d}.csv"


def write_batch(frame: pd.DataFrame, folder: Path) -> Path:
    """Write ``frame`` as the next batch of ``folder``, appearing whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    target = next_batch_path(folder)
    hidden = folder / f".{target.name}.tmp"  # ingest skips dot-names
    frame.to_csv(hidden, index=False)
    os.replace(hidden, target)
    return target


def reference_table(source: str) -> tuple[pd.DataFrame, str]:
    """The reference rows and their label column: ``builtin:<name>`` or a CSV/Parquet path."""
    from components.ingest import sources
    from components.ingest.core import infer_label

    if source.startswith("builtin:"):
        name = source.split(":", 1)[1]
        if name not in sources.BUILTINS:
            known = ", ".join(sorted(sources.BUILTINS))
            raise BakeoffError(f"simulate: unknown built-in {name!r}; expected one of {known}")
        frame = sources.read_builtin(name).frame
        return frame.drop(columns=[sources.SOURCE_FILE, sources.SOURCE_ROW]), sources.BUILTIN_LABEL
    path = Path(source)
    if not path.is_file():
        raise BakeoffError(f"simulate: {path}: reference file not found")
    frame = sources.read_table(path, str(path)).frame
    frame = frame.drop(columns=[sources.SOURCE_FILE, sources.SOURCE_ROW])
    return frame, infer_label(list(frame.columns))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff simulate``."""
    parser.add_argument("--landing", default="data/landing", help="landing folder to append to")
    parser.add_argument(
        "--reference",
        default="builtin:digits",
        help="rows to resample: builtin:<name> or a CSV/Parquet file (label: target/label/y/class)",
    )
    parser.add_argument("--label", default=None, help="label column (default: as ingest infers it)")
    parser.add_argument("--rows", type=int, default=200, help="rows per batch")
    parser.add_argument("--batches", type=int, default=1, help="batches to append")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first batch (then +1)")
    parser.add_argument("--noise", type=float, default=0.3, help="jitter, in standard deviations")
    parser.add_argument("--shift", type=float, default=0.0, help="drift, in standard deviations")
    parser.add_argument(
        "--drift-columns", nargs="*", default=None, help="features that drift (default: all)"
    )


def run(args: argparse.Namespace) -> None:
    """Append the batches and say where they went."""
    reference, label = reference_table(args.reference)
    label = args.label or label
    drift = Drift(
        noise=args.noise,
        shift=args.shift,
        columns=tuple(args.drift_columns) if args.drift_columns else None,
    )
    for index in range(args.batches):
        batch = simulate_batch(reference, label, args.rows, args.seed + index, drift)
        path = write_batch(batch, Path(args.landing))
        print(f"simulate: {path} ({len(batch)} rows, shift {drift.shift:g}, noise {drift.noise:g})")
