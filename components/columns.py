"""What kind of values a column holds, shared by ingest (harmonising batches) and clean (schema).

Also which columns are data but not features (constants, row ids, dates and
timestamps), found when the schema is inferred, so that the schema file the
user commits lists them under ``ignored``, with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NUMBER = "number"
STRING = "string"
# A text column is numeric when at least this share of its non-null values parse
# as numbers; the rest are rows of the wrong type, not a categorical column.
NUMERIC_SHARE = 0.9
KIND_SAMPLE = 10_000
# Every model takes float32: a value beyond this would reach the trainers as infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)

# A text column is a row id when nearly every value is distinct; below this many
# rows, distinct values say nothing.
ID_SHARE = 0.95
MIN_ID_ROWS = 20
# A text column holds dates when this share of a sample reads as ISO 8601 ones
# (2024-03-01, 2024-03-01T12:30:00, 2024-03-01 12:30:00+01:00), year first:
# the one written form that is not ambiguous between day and month.
DATE_SHARE = 0.9
DATE_SAMPLE = 1000
ISO_DATE = (
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?)?"
)
GAPS = "every row is a gap"

SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
ROW_KEY = "_row_key"
REASON = "_reason"
# Columns bakeoff adds to the data; a source may not use these names.
RESERVED = (SOURCE_FILE, SOURCE_ROW, ROW_KEY, REASON)


def is_metadata(column: str) -> bool:
    """Whether a column is one bakeoff added (lineage, row keys), not the user's data."""
    return column in RESERVED


def _plain(series: pd.Series) -> pd.Series:
    # Categorical columns (from Parquet) behave as their values for every check here.
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(object)
    return series


def kind_of(series: pd.Series) -> str:
    """``number`` or ``string``: the kind a schema declares for this column."""
    values = _plain(series).dropna()
    # True/False is a category; with a gap, pandas holds it as objects, which would parse as 1/0.
    if pd.api.types.is_bool_dtype(values) or (
        values.dtype == object and pd.api.types.infer_dtype(values) == "boolean"
    ):
        return STRING
    if pd.api.types.is_numeric_dtype(values):
        return NUMBER
    if values.empty:
        return NUMBER
    # The share is estimated on an evenly spaced sample: deciding a column's kind
    # does not need a million parses.
    values = values.iloc[:: max(1, len(values) // KIND_SAMPLE)]
    return NUMBER if as_number(values).notna().mean() >= NUMERIC_SHARE else STRING


def as_text(series: pd.Series) -> pd.Series:
    """Values as strings (floats in their shortest round-trip form), nulls kept as None."""
    series = _plain(series)
    if (
        pd.api.types.is_object_dtype(series)
        and series.map(type, na_action="ignore").isin([str]).all()
    ):
        return series.where(series.notna(), None)

    def text(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            number = float(value)
            return str(int(number)) if number.is_integer() else repr(number)
        return str(value)

    return series.map(text, na_action="ignore").astype(object).where(series.notna(), None)


def as_number(series: pd.Series) -> pd.Series:
    """Values as float64, parsed as pandera's coercion parses them; anything else becomes NaN.

    pandas' parser handles the bulk; the few values it rejects get Python's
    ``float()`` (which accepts ``1_000`` or non-ASCII digits), so a value counts
    as a number here exactly when pandera's type check accepts it.
    """
    series = _plain(series)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    present = series.notna()
    parsed = pd.to_numeric(series.where(present, None), errors="coerce").astype("float64")
    retry = present & parsed.isna()
    if retry.any():
        parsed[retry] = series[retry].map(_float_or_nan).astype("float64")
    return parsed


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def within_float32(value: float) -> float:
    """``value``, or float32's largest magnitude where it lies beyond (every model's input)."""
    return min(max(value, -FLOAT32_MAX), FLOAT32_MAX)


def constant(values: pd.Series, number: bool) -> str | None:
    """Why a column holds no information ("every value is 5", "every row is a gap"), or None."""
    present = values.dropna()
    if present.empty:
        return GAPS
    # By its extremes, or against its first value: a million values need no hashing to tell.
    first = present.iloc[0]
    if (present.min() == present.max()) if number else bool((present == first).all()):
        shown = as_text(present.iloc[:1]).iloc[0]
        return f"every value is {shown if number else repr(shown)}"
    return None


def not_a_feature(series: pd.Series, kind: str) -> str | None:
    """Why a column of the given kind should not be a feature (a short phrase), or None."""
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dropna()
        return _dates(str(stamps.iloc[0])) if len(stamps) else f"constant ({GAPS})"
    number = kind == NUMBER
    values = as_number(series) if number else as_text(series)
    same = constant(values, number)
    if same is not None:
        return f"constant ({same})"
    if number:
        return _counter(values)
    present = values.dropna()
    distinct = present.nunique()
    sample = present.iloc[:: max(1, len(present) // DATE_SAMPLE)]
    dated = sample[sample.str.fullmatch(ISO_DATE)]
    parsed = pd.to_datetime(dated, errors="coerce", utc=True).notna()
    if parsed.sum() >= DATE_SHARE * len(sample):
        return _dates(dated[parsed].iloc[0])
    if len(present) >= MIN_ID_ROWS and distinct > ID_SHARE * len(present):
        return f"looks like a row id ({distinct} distinct values in {len(present)} rows)"
    return None


def _dates(example: str) -> str:
    return (
        f"holds dates or timestamps (e.g. {example!r}); "
        "derive numeric columns from it upstream to use it"
    )


def _counter(values: pd.Series) -> str | None:
    # Whole numbers counting the rows (1, 2, 3, ...) in file order, no gaps.
    if len(values) < MIN_ID_ROWS or values.iloc[-1] - values.iloc[0] != len(values) - 1:
        return None
    steps = values.diff().iloc[1:]
    if not (steps == 1).all() or values.iloc[0] % 1 != 0:
        return None
    return (
        f"looks like a row counter ({values.iloc[0]:.0f}, {values.iloc[1]:.0f}, ... "
        f"{values.iloc[-1]:.0f})"
    )
