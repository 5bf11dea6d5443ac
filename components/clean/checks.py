"""Row-level checks, run by pandera against the data schema.

Two passes: the first finds values that are not of the schema's type (pandera's
dtype coercion), the second checks the typed values for missing entries, ranges,
label values and duplicate rows. Both return pandera's failure cases, reduced to
one table of violations: row index, column, check, value found, value expected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera as pa

from components import columns as kinds
from components.clean.schema import ColumnSchema, DataSchema

WRONG_TYPE = "wrong_type"
MISSING = "missing"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_LABEL = "unknown_label"
DUPLICATE = "duplicate"
CHECKS = (WRONG_TYPE, MISSING, OUT_OF_RANGE, UNKNOWN_LABEL, DUPLICATE)
ALL_COLUMNS = "(all columns)"
ROW_HASH = "_row_hash"
FINITE = "finite"
FLOAT32 = "float32"
VIOLATION_COLUMNS = ["row", "column", "check", "found", "expected"]
FLOAT32_RANGE = f"a number within float32's range (±{kinds.FLOAT32_MAX:.8g})"


def typed(frame: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """The schema's columns converted to their kinds; values that do not convert become null.

    Numeric columns come first, built as one float64 block (pandas then never has
    to consolidate 60 separate columns), then the text columns.
    """
    numeric = [n for n, s in schema.columns.items() if s.kind == kinds.NUMBER and n in frame]
    text = [n for n, s in schema.columns.items() if s.kind == kinds.STRING and n in frame]
    block = np.empty((len(frame), len(numeric)), dtype=np.float64, order="F")
    for position, name in enumerate(numeric):
        block[:, position] = kinds.as_number(frame[name]).to_numpy()
    values = pd.DataFrame(block, index=frame.index, columns=numeric, copy=False)
    for name in text:
        values[name] = kinds.as_text(frame[name])
    return values


def type_violations(frame: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """Cells of numeric columns that hold something that is not a number."""
    suspects = [
        name
        for name, spec in schema.columns.items()
        if spec.kind == kinds.NUMBER
        and name in frame
        and not pd.api.types.is_numeric_dtype(frame[name])
    ]
    if not suspects:
        return _empty()
    checker = pa.DataFrameSchema(
        {name: pa.Column("float64", coerce=True, nullable=True) for name in suspects}
    )
    cases = _failure_cases(checker, frame[suspects], inplace=False)
    cases = cases[cases["check"].str.startswith("coerce_dtype") & cases["index"].notna()]
    return pd.DataFrame(
        {
            "row": cases["index"].astype("int64"),
            "column": cases["column"],
            "check": WRONG_TYPE,
            "found": cases["failure_case"].map(repr),
            "expected": "a number",
        }
    )[VIOLATION_COLUMNS]


def value_violations(values: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """Missing values, values out of range or domain (or not finite), and unknown labels."""
    checker = pa.DataFrameSchema(
        {
            name: pa.Column(
                "float64" if spec.kind == kinds.NUMBER else object,
                checks=_value_checks(spec),
                nullable=spec.nullable and name != schema.label,
            )
            for name, spec in schema.columns.items()
        }
    )
    cases = _failure_cases(checker, values)
    cases = cases[cases["index"].notna()]
    if cases.empty:
        return _empty()
    check = cases["check"].astype(str)
    is_label = cases["column"] == schema.label
    kind = np.select(
        [
            check == "not_nullable",
            check.str.startswith("in_range")
            | check.str.startswith("greater_than")
            | check.str.startswith("less_than")
            | (check == FINITE)
            | (check == FLOAT32),
            check.str.startswith("isin") & is_label,
            check.str.startswith("isin"),
            check == "field_uniqueness",
        ],
        [MISSING, OUT_OF_RANGE, UNKNOWN_LABEL, OUT_OF_RANGE, DUPLICATE],
        default="other",
    )
    expected = [
        FLOAT32_RANGE if c == FLOAT32 else _expected(schema.columns.get(column), k)
        for column, k, c in zip(cases["column"], kind, check, strict=True)
    ]
    table = pd.DataFrame(
        {
            "row": cases["index"].astype("int64").to_numpy(),
            "column": cases["column"].to_numpy(),
            "check": kind,
            "found": cases["failure_case"].map(repr).to_numpy(),
            "expected": expected,
        }
    )
    # A value past float32 fails both its range and the float32 check: one violation,
    # which names float32's range.
    table = table.iloc[np.argsort(check.to_numpy() != FLOAT32, kind="stable")]
    return table.drop_duplicates(["row", "column", "check"])[VIOLATION_COLUMNS]


def duplicate_violations(row_hash: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    """Rows (among ``rows``) that repeat an earlier one, the first occurrence kept.

    pandera's uniqueness check runs on ``row_hash``, one 64-bit hash of each
    row's values, rather than on every column: the same verdict (a collision is
    ~1e-8 likely among 10^6 rows) at a fraction of the cost.
    """
    checker = pa.DataFrameSchema(
        {ROW_HASH: pa.Column("uint64", unique=True, report_duplicates="exclude_first")}
    )
    cases = _failure_cases(checker, pd.DataFrame({ROW_HASH: row_hash[rows]}, index=rows))
    repeated = cases.loc[cases["index"].notna(), "index"].astype("int64").to_numpy()
    return pd.DataFrame(
        {
            "row": np.sort(repeated),
            "column": ALL_COLUMNS,
            "check": DUPLICATE,
            "found": "a repeat of an earlier row",
            "expected": "a row not seen before",
        }
    )[VIOLATION_COLUMNS]


def _value_checks(spec: ColumnSchema) -> list[pa.Check]:
    checks = []
    if spec.kind == kinds.NUMBER and spec.allowed is None:
        # Every model takes float32; a larger value would reach it as infinity.
        checks.append(pa.Check(lambda x: x.abs() <= kinds.FLOAT32_MAX, name=FLOAT32))
    elif spec.kind == kinds.NUMBER:
        checks.append(pa.Check(np.isfinite, name=FINITE))
    if spec.minimum is not None and spec.maximum is not None:
        checks.append(pa.Check.in_range(spec.minimum, spec.maximum))
    elif spec.minimum is not None:
        checks.append(pa.Check.greater_than_or_equal_to(spec.minimum))
    elif spec.maximum is not None:
        checks.append(pa.Check.less_than_or_equal_to(spec.maximum))
    if spec.allowed is not None:
        checks.append(pa.Check.isin(list(spec.allowed)))
    return checks


def _expected(spec: ColumnSchema | None, kind: str) -> str:
    if kind == DUPLICATE or spec is None:
        return "a row not seen before"
    if kind == MISSING:
        return "a value"
    if spec.minimum is None and spec.maximum is None and spec.allowed is None:
        return "a finite number"
    if spec.allowed is not None:
        shown = ", ".join(map(str, spec.allowed[:12])) + (", ..." if len(spec.allowed) > 12 else "")
        return f"one of [{shown}]"
    low = "-inf" if spec.minimum is None else spec.minimum
    high = "inf" if spec.maximum is None else spec.maximum
    return f"a value from {low} to {high}"


def _failure_cases(
    checker: pa.DataFrameSchema, frame: pd.DataFrame, *, inplace: bool = True
) -> pd.DataFrame:
    try:
        # inplace where the checks only read, so pandera need not copy the frame first.
        checker.validate(frame, lazy=True, inplace=inplace)
    except pa.errors.SchemaErrors as errors:
        return errors.failure_cases
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {name: pd.Series(dtype="int64" if name == "row" else object) for name in VIOLATION_COLUMNS}
    )
