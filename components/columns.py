"""What kind of values a column holds, shared by ingest (harmonising batches) and clean (schema)."""

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
    if pd.api.types.is_bool_dtype(values):
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
