"""The data schema: inferred on the first run, then a file users edit and commit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from components import columns as kinds
from components.errors import DataError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ColumnSchema:
    """What one column may hold."""

    kind: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class DataSchema:
    """Types, ranges, nullability and label values of a data set's columns."""

    dataset: str
    task: str
    label: str
    features: tuple[str, ...]
    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    # The columns whose values identify a row for the split. Recorded in the
    # file so that later drift cannot silently change every row's split.
    key: tuple[str, ...] = ()
    # Columns of the data that are not features (constants, row ids, dates), with why.
    ignored: dict[str, str] = field(default_factory=dict)

    @property
    def used(self) -> tuple[str, ...]:
        """Feature columns, then the label."""
        return (*self.features, self.label)

    @property
    def split_key(self) -> tuple[str, ...]:
        """The row-key columns, in name order (default: every feature and the label)."""
        return tuple(sorted(self.key or self.used))

    def without(self, dropped: set[str]) -> DataSchema:
        """The schema with some feature columns taken out (accepted drift)."""
        return replace(
            self,
            features=tuple(c for c in self.features if c not in dropped),
            columns={c: s for c, s in self.columns.items() if c not in dropped},
        )


@dataclass(frozen=True)
class Drift:
    """How the data's columns differ from the schema's."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    retyped: tuple[tuple[str, str, str], ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        """One line: every difference, expected versus found."""
        parts = [f"column '{c}' added (not in the schema)" for c in self.added]
        parts += [f"column '{c}' removed (expected by the schema)" for c in self.removed]
        parts += [f"column '{c}' changed type: expected {e}, found {f}" for c, e, f in self.retyped]
        return "; ".join(parts)


def infer_schema(
    frame: pd.DataFrame,
    *,
    dataset: str,
    label: str,
    task: str,
    features: tuple[str, ...],
    range_margin: float,
    key: tuple[str, ...] | None = None,
    image: bool = False,
) -> DataSchema:
    """Infer a schema: kinds, observed finite ranges widened by ``range_margin``, label values.

    Every column is inferred as not nullable: gaps are then handled by the
    ``missing`` policy, which the user chose, rather than waved through because
    the first batch happened to have some. Edit ``nullable`` to accept them.
    Constant, row-id and date columns are not features: the schema lists them
    as ``ignored``, with the reason; when the features are an ``image``'s
    pixels, every one is kept (a fixed grid, whose border may be blank).
    """
    columns: dict[str, ColumnSchema] = {}
    ignored: dict[str, str] = {}
    for name in (*features, label):
        series = frame[name]
        kind = kinds.kind_of(series)
        reason = None if image or name == label else kinds.not_a_feature(series, kind)
        if reason is not None:
            ignored[name] = reason
            continue
        if kind == kinds.STRING:
            allowed = None
            if name == label:
                allowed = tuple(sorted(kinds.as_text(series).dropna().unique().tolist()))
            columns[name] = ColumnSchema(kinds.STRING, allowed=allowed)
            continue
        values = kinds.as_number(series)
        values = values[np.isfinite(values)]
        if name == label and task == "classification":
            classes = sorted({_plain(v) for v in values.unique().tolist()})
            columns[name] = ColumnSchema(kinds.NUMBER, allowed=tuple(classes))
            continue
        low = high = None
        if len(values):
            # Every model takes float32, so no range reaches past its largest value:
            # a value beyond it is out of range (clean's out_of_range policy).
            smallest, largest = (
                kinds.within_float32(float(v)) for v in (values.min(), values.max())
            )
            # No margin adds nothing (an overflowing span times 0 would be NaN).
            span = (largest - smallest) * range_margin if range_margin else 0.0
            low = _plain(kinds.within_float32(smallest - span))
            high = _plain(kinds.within_float32(largest + span))
        columns[name] = ColumnSchema(kinds.NUMBER, minimum=low, maximum=high)
    kept = tuple(name for name in features if name not in ignored)
    return DataSchema(
        dataset, task, label, kept, columns, tuple(sorted(key or (*kept, label))), ignored
    )


def _plain(value: float) -> int | float:
    # Integral values are written as integers so the YAML reads as the data does; past
    # 2**53 a float is integral only because it cannot hold a fraction, so it stays one.
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def find_drift(schema: DataSchema, frame: pd.DataFrame, features: tuple[str, ...]) -> Drift:
    """Columns the data adds, removes or holds with another kind than the schema says."""
    present = [c for c in frame.columns if not kinds.is_metadata(c)]
    added = tuple(c for c in features if c not in schema.columns and c not in schema.ignored)
    removed = tuple(c for c in schema.columns if c not in present)
    # Numbers may be declared text (integer-coded categories such as zip codes).
    retyped = tuple(
        (c, spec.kind, found)
        for c, spec in schema.columns.items()
        if c in present
        and spec.kind == kinds.NUMBER
        and (found := kinds.kind_of(frame[c])) != spec.kind
    )
    return Drift(added, removed, retyped)


def dump_schema(schema: DataSchema, inferred_from: str) -> str:
    """YAML text of the schema, with a header saying where it came from and that it may be edited."""
    columns: dict[str, Any] = {}
    for name, spec in schema.columns.items():
        entry: dict[str, Any] = {"type": spec.kind, "nullable": spec.nullable}
        if spec.minimum is not None:
            entry["min"] = spec.minimum
        if spec.maximum is not None:
            entry["max"] = spec.maximum
        if spec.allowed is not None:
            entry["allowed"] = list(spec.allowed)
        columns[name] = entry
    head = {
        "version": SCHEMA_VERSION,
        "dataset": schema.dataset,
        "task": schema.task,
        "label": schema.label,
        "features": list(schema.features),
    }
    tail = {"columns": columns, "key": list(schema.split_key)}
    header = (
        f"# bakeoff data schema, inferred from {inferred_from}.\n"
        "# The clean stage validates every run against it. Edit it (ranges, nullable,\n"
        "# allowed label values) and commit it; delete it to infer it again. 'key'\n"
        "# names the columns that place a row in train/val/test: changing it moves rows.\n"
        "# 'ignored' names columns that are not features, and why; to use one, move it\n"
        "# to 'features' and give it an entry in 'columns' (a number column may be\n"
        "# declared 'type: string' to make it a category).\n"
    )
    # One reason per line under 'ignored'; the rest as compact as before.
    ignored = {"ignored": dict(schema.ignored)} if schema.ignored else {}
    return header + "".join(
        yaml.safe_dump(
            part, sort_keys=False, default_flow_style=flow, width=100, allow_unicode=True
        )
        for part, flow in ((head, None), (ignored, False), (tail, None))
        if part
    )


def load_schema(path: Path) -> DataSchema:
    """Read a schema file; a malformed one fails naming the file and the key."""
    shown = path.as_posix()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(shown, f"not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise DataError(shown, "expected a mapping with 'label', 'features' and 'columns'")
    for key, expected in (("label", str), ("task", str), ("features", list), ("columns", dict)):
        if not isinstance(raw.get(key), expected):
            raise DataError(
                shown, f"key '{key}': expected a {expected.__name__}; found {raw.get(key)!r}"
            )
    if raw["task"] not in ("classification", "regression"):
        raise DataError(
            shown, f"key 'task': expected classification or regression; found {raw['task']!r}"
        )
    columns = {str(name): _column(shown, str(name), spec) for name, spec in raw["columns"].items()}
    for name in (*raw["features"], raw["label"]):
        if name not in columns:
            raise DataError(
                shown, "listed in 'features' or 'label' but has no entry in 'columns'", column=name
            )
    repeated = sorted({n for n in raw["features"] if raw["features"].count(n) > 1})
    if repeated or raw["label"] in raw["features"]:
        raise DataError(
            shown,
            "'features': expected each column once and not the label",
            column=(repeated or [raw["label"]])[0],
        )
    ignored = raw.get("ignored") or {}
    if not isinstance(ignored, dict) or not all(
        isinstance(name, str) and isinstance(why, str) for name, why in ignored.items()
    ):
        raise DataError(
            shown, f"key 'ignored': expected a mapping of column to reason; found {ignored!r}"
        )
    both = [name for name in ignored if name in (*raw["features"], raw["label"])]
    if both:
        raise DataError(
            shown, "listed in 'ignored' and also as a feature or the label", column=both[0]
        )
    key_columns = raw.get("key") or []
    if not isinstance(key_columns, list) or not all(isinstance(k, str) for k in key_columns):
        raise DataError(shown, f"key 'key': expected a list of column names; found {key_columns!r}")
    return DataSchema(
        dataset=str(raw.get("dataset", "")),
        task=raw["task"],
        label=raw["label"],
        features=tuple(raw["features"]),
        columns=columns,
        key=tuple(key_columns),
        ignored=ignored,
    )


def _column(shown: str, name: str, spec: Any) -> ColumnSchema:
    if not isinstance(spec, dict) or spec.get("type") not in (kinds.NUMBER, kinds.STRING):
        raise DataError(
            shown, f"expected 'type: number' or 'type: string'; found {spec!r}", column=name
        )
    kind = spec["type"]
    bounds: list[float | None] = []
    for key in ("min", "max"):
        value = spec.get(key)
        if value is not None and kind == kinds.STRING:
            raise DataError(shown, f"'{key}' applies to number columns only", column=name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
        ):
            raise DataError(shown, f"'{key}': expected a number; found {value!r}", column=name)
        bounds.append(value)
    nullable = spec.get("nullable", False)
    if not isinstance(nullable, bool):
        raise DataError(
            shown, f"'nullable': expected true or false; found {nullable!r}", column=name
        )
    allowed = spec.get("allowed")
    if allowed is not None:
        number = kind == kinds.NUMBER
        if not isinstance(allowed, list) or not all(
            (isinstance(v, (int, float)) and not isinstance(v, bool))
            if number
            else isinstance(v, str)
            for v in allowed
        ):
            expected = "numbers" if number else "strings"
            raise DataError(
                shown, f"'allowed': expected a list of {expected}; found {allowed!r}", column=name
            )
    return ColumnSchema(
        kind=kind,
        nullable=nullable,
        minimum=bounds[0],
        maximum=bounds[1],
        allowed=tuple(allowed) if allowed is not None else None,
    )
