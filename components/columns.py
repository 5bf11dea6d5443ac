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


def is_metadata(column: str) -> bool:
    """Columns that bakeoff adds (lineage, row keys) start with an underscore."""
    return column.startswith("_")


def kind_of(series: pd.Series) -> str:
    """``number`` or ``string``: the kind a schema declares for this column."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(values):
        return STRING
    if pd.api.types.is_numeric_dtype(values):
        return NUMBER
    if values.empty:
        return NUMBER
    # The share is estimated on an evenly spaced sample: deciding a column's kind
    # does not need a million parses.
    values = values.iloc[:: max(1, len(values) // KIND_SAMPLE)]
    parsed = pd.to_numeric(values.astype(str), errors="coerce")
    return NUMBER if parsed.notna().mean() >= NUMERIC_SHARE else STRING


def as_text(series: pd.Series) -> pd.Series:
    """Values as strings (floats in their shortest round-trip form), nulls kept as None."""
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
    """Values as float64; anything that does not parse becomes NaN."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    return pd.to_numeric(series.astype(object).where(series.notna(), None), errors="coerce").astype(
        "float64"
    )
