"""The clean stage's core: validate against the schema, apply the policies, split, compute constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from components import columns as kinds
from components.clean import checks, preprocessing, split
from components.clean.schema import ColumnSchema, DataSchema, Drift, find_drift, infer_schema
from components.columns import ROW_KEY, SOURCE_FILE, SOURCE_ROW
from components.contracts import SPLITS, Constants
from components.errors import DataError, ParamsError
from components.params import choice, flag, fraction, names, number, whole

DROP, IMPUTE, CLIP, FAIL, KEEP = "drop", "impute", "clip", "fail", "keep"
POLICIES: dict[str, tuple[str, ...]] = {
    checks.MISSING: (DROP, IMPUTE, FAIL),
    checks.WRONG_TYPE: (DROP, IMPUTE, FAIL),
    checks.OUT_OF_RANGE: (DROP, CLIP, IMPUTE, FAIL),
    checks.UNKNOWN_LABEL: (DROP, FAIL),
    checks.DUPLICATE: (DROP, KEEP, FAIL),
}


@dataclass(frozen=True)
class CleanParams:
    """The ``clean`` section of params.yaml, unpacked."""

    policies: dict[str, str]
    max_quarantine_share: float
    allow_schema_drift: bool
    range_margin: float
    split: split.SplitSpec
    key: tuple[str, ...] | None
    max_categories: int = 100

    @classmethod
    def from_section(cls, raw: dict[str, Any]) -> CleanParams:
        """Check and unpack the raw ``clean`` mapping."""
        if "schema" in raw:
            raise ParamsError(
                "clean.schema",
                "removed: the schema is now schemas/<ingest.name>.yaml; delete the key "
                "(and name the schema file after ingest.name)",
            )
        given = _mapping(raw.get("policies"), "clean.policies")
        unknown = sorted(set(given) - set(POLICIES))
        if unknown:
            raise ParamsError(
                f"clean.policies.{unknown[0]}",
                f"unknown check; expected one of {', '.join(POLICIES)}",
            )
        policies = {
            check: choice(given.get(check, DROP), f"clean.policies.{check}", allowed)
            for check, allowed in POLICIES.items()
        }
        shares = _mapping(raw.get("split"), "clean.split")
        spec = split.SplitSpec(
            train=fraction(shares.get("train", 0.7), "clean.split.train"),
            val=fraction(shares.get("val", 0.15), "clean.split.val"),
            test=fraction(shares.get("test", 0.15), "clean.split.test"),
            salt=str(shares.get("salt", "bakeoff")),
        )
        if min(spec.train, spec.val, spec.test) <= 0:
            raise ParamsError("clean.split", "expected train, val and test fractions above 0")
        return cls(
            policies=policies,
            max_quarantine_share=fraction(
                raw.get("max_quarantine_share", 0.1), "clean.max_quarantine_share"
            ),
            allow_schema_drift=flag(
                raw.get("allow_schema_drift", False), "clean.allow_schema_drift"
            ),
            range_margin=number(raw.get("range_margin", 0.0), "clean.range_margin", 0, finite=True),
            split=spec,
            key=names(shares.get("key", "auto"), "clean.split.key"),
            max_categories=whole(raw.get("max_categories", 100), "clean.max_categories", 1),
        )


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParamsError(key, f"expected a mapping; found {value!r}")
    return value


@dataclass
class CleanResult:
    """Everything the clean stage writes."""

    splits: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    schema: DataSchema
    schema_inferred: bool
    preprocessing: Constants
    report: dict[str, Any] = field(default_factory=dict)
    # One line each: columns that are not features, capped vocabularies, sparse classes.
    notes: tuple[str, ...] = ()


def clean(
    raw: pd.DataFrame,
    manifest: dict[str, Any],
    schema: DataSchema | None,
    params: CleanParams,
    *,
    snapshot_name: str,
    schema_name: str,
) -> CleanResult:
    """Validate ``raw`` against ``schema`` (inferring it when None) and produce the clean splits."""
    if raw.empty:
        raise DataError(snapshot_name, "empty snapshot: expected rows; found 0")
    label = manifest["label"]
    features = tuple(manifest["features"])
    if label not in raw:
        raise DataError(
            snapshot_name,
            "missing label column: expected it in the snapshot; found none",
            column=label,
        )
    if not raw.index.equals(pd.RangeIndex(len(raw))):
        raw = raw.reset_index(drop=True)

    drift = Drift((), (), ())
    inferred = schema is None
    image_shape = manifest.get("image_shape")
    if schema is None:
        schema = infer_schema(
            raw,
            dataset=str(manifest.get("dataset", "")),
            label=label,
            task=manifest["task"],
            features=features,
            range_margin=params.range_margin,
            key=params.key,
            image=bool(image_shape),
        )
    else:
        if schema.label != label:
            raise DataError(
                schema_name,
                f"label: expected '{label}' (the ingest manifest's); found '{schema.label}'",
            )
        drift = find_drift(schema, raw, features)
        if drift and not params.allow_schema_drift:
            raise DataError(
                snapshot_name,
                f"schema drift against {schema_name}: {drift.describe()} "
                "(accept it with clean.allow_schema_drift: true, or edit the schema)",
            )
        schema = schema.without(set(drift.removed))
    if not schema.features:
        _no_features(schema, snapshot_name)
    # Listed in ingest.ignore, a column is no longer in the manifest's features: no note.
    notes = [
        f"column '{name}' is not a feature: {why} (set ingest.ignore: [{_quoted(name)}] to "
        "silence this note)"
        for name, why in schema.ignored.items()
        if name in features
    ]

    values = checks.typed(raw, schema)
    key_columns = params.key or schema.split_key
    absent = [column for column in key_columns if column not in raw]
    if absent:
        raise DataError(
            snapshot_name,
            f"split key column '{absent[0]}' is missing: without it every row's split would change "
            "(set clean.split.key to columns that identify a row, or delete the schema to start over)",
        )
    # Key columns that are not features (ids) hash by their text; the rest by typed value.
    keys = split.row_keys(
        {c: values[c] if c in values else kinds.as_text(raw[c]) for c in key_columns},
        params.split.salt,
    )
    content_hash = (
        keys
        if sorted(key_columns) == sorted(schema.used)
        else split.row_keys({c: values[c] for c in schema.used}, params.split.salt)
    )
    violations = _violations(raw, values, schema)
    dropped, treated = _apply_policies(violations, values, schema, params, raw, snapshot_name)
    if params.policies[checks.DUPLICATE] != KEEP:
        # Repeats are looked for among the rows the other checks kept, so a good
        # row is never lost as the repeat of one that was quarantined.
        survivors = np.setdiff1d(np.arange(len(raw)), dropped)
        repeats = checks.duplicate_violations(content_hash, survivors)
        more, _ = _apply_policies(repeats, values, schema, params, raw, snapshot_name)
        violations = pd.concat([violations, repeats], ignore_index=True)
        dropped = np.union1d(dropped, more).astype(np.int64)

    total = len(raw)
    kept_mask = np.ones(total, dtype=bool)
    kept_mask[dropped] = False
    share = len(dropped) / total
    by_check = (
        violations[violations["row"].isin(dropped)].groupby("check")["row"].nunique().to_dict()
    )
    if not kept_mask.any():
        raise DataError(
            snapshot_name,
            f"no usable rows: all {total} rows were quarantined ({_counts(by_check)})",
        )
    if share > params.max_quarantine_share:
        raise DataError(
            snapshot_name,
            f"quarantine share {share:.1%} is above clean.max_quarantine_share "
            f"{params.max_quarantine_share:.1%}: {len(dropped)} of {total} rows ({_counts(by_check)})",
        )

    kept_rows = np.flatnonzero(kept_mask)
    assignment = split.assign(keys[kept_rows], params.split)
    rows_of = {name: kept_rows[assignment == index] for index, name in enumerate(SPLITS)}
    empty = [name for name, rows in rows_of.items() if len(rows) == 0]
    if empty:
        raise DataError(
            snapshot_name,
            f"split '{empty[0]}' is empty: {len(kept_rows)} usable rows are too few for the fractions in clean.split",
        )
    if schema.task == "classification":
        notes += _check_classes(values[schema.label], kept_rows, rows_of, snapshot_name)
    # Each split is taken from the typed frame once, by position: no intermediate copies
    # of the whole table.
    positions = [values.columns.get_loc(column) for column in schema.used]
    splits = {}
    for name, rows in rows_of.items():
        part = values.iloc[rows, positions]
        part.index = pd.RangeIndex(len(part))
        splits[name] = part
    # A feature constant in the train split teaches nothing, but it stays a feature:
    # the TFX schema, the splits and both serving signatures take every schema
    # feature, and new rows may vary. (An image's blank border pixels are not noted.)
    constant_in_train = (
        {} if image_shape else preprocessing.constant_features(splits["train"], schema)
    )
    notes += [
        f"column '{name}' is constant in the train split ({why} in its "
        f"{len(rows_of['train'])} rows): it teaches the models nothing until new rows vary"
        for name, why in constant_in_train.items()
    ]
    impute = preprocessing.impute_values(splits["train"], schema)
    imputed_cells = pd.Series(0, index=list(schema.features), dtype="int64")
    for name, part in splits.items():
        gaps = part.isna().sum()[list(schema.features)]
        # In place, column by column inside the block: assigning whole columns would
        # make pandas copy the 60-column block once per column.
        part.fillna(value={column: impute[column] for column in gaps.index[gaps > 0]}, inplace=True)
        imputed_cells += gaps
        part[schema.label] = _label_values(part[schema.label], schema)
        rows = rows_of[name]
        part.insert(0, ROW_KEY, keys[rows].view(np.int64))
        if SOURCE_FILE in raw:
            part.insert(1, SOURCE_FILE, raw[SOURCE_FILE].array.take(rows))
            part.insert(2, SOURCE_ROW, raw[SOURCE_ROW].to_numpy()[rows])
    computed = preprocessing.constants(
        splits["train"], schema, impute, image_shape, params.max_categories
    )
    for name in computed["categorical"]:
        distinct = splits["train"][name].nunique()
        if distinct > params.max_categories:
            notes.append(
                f"column '{name}' has {distinct} distinct values in the train split; its "
                f"vocabulary keeps the {params.max_categories} most frequent "
                "(clean.max_categories), the others share the out-of-vocabulary slot"
            )
    _check_float32(computed, values, kept_rows, raw, snapshot_name)
    constants = Constants.from_dict(computed)
    quarantine = _quarantine(raw, violations, dropped)
    report = _report(
        total=total,
        splits=splits,
        dropped=dropped,
        violations=violations,
        treated=treated,
        imputed_cells=imputed_cells,
        params=params,
        schema=schema,
        schema_name=schema_name,
        inferred=inferred,
        drift=drift,
        constant_in_train=constant_in_train,
        notes=notes,
    )
    return CleanResult(splits, quarantine, schema, inferred, constants, report, tuple(notes))


def _quoted(name: str) -> str:
    # As YAML reads it inside [...], whatever characters the name has.
    return "'" + name.replace("'", "''") + "'"


def _no_features(schema: DataSchema, snapshot_name: str) -> NoReturn:
    raise DataError(
        snapshot_name,
        "no features left to train on: "
        + "; ".join(f"'{name}' {why}" for name, why in schema.ignored.items()),
    )


def _check_classes(
    label: pd.Series, usable: np.ndarray, rows_of: dict[str, np.ndarray], snapshot_name: str
) -> list[str]:
    """A classifier needs two classes, and every class it will be scored on, in its train split.

    A class needs a row for each split to be trained, tuned and tested on; one
    with rows in train but none in val or test is noted (its per-class scores
    there are missing), not refused.
    """
    train = rows_of["train"]
    overall = _class_counts(label, usable)
    column = str(label.name)
    if len(overall) < 2:
        raise DataError(
            snapshot_name,
            f"classification: expected at least two classes; found only {overall.index[0]!r} "
            f"in all {len(usable)} usable rows",
            column=column,
        )
    in_train = _class_counts(label, train)
    if len(in_train) < 2:
        raise DataError(
            snapshot_name,
            f"classification: expected at least two classes in the train split; found only "
            f"{in_train.index[0]!r} in its {len(train)} rows ({len(overall)} classes in all "
            "usable rows: add rows of the others)",
            column=column,
        )
    absent = [value for value in overall.index if value not in in_train.index]
    if absent:
        rows = int(overall[absent[0]])
        raise DataError(
            snapshot_name,
            f"classification: expected every class in the train split; class {absent[0]!r} has "
            f"{rows} usable row{'s' if rows != 1 else ''}, none in train "
            "(add rows of it, or leave it out of the schema's allowed labels)",
            column=column,
        )
    by_split = {name: _class_counts(label, rows) for name, rows in rows_of.items()}
    rare = overall[overall < len(SPLITS)]
    if len(rare):
        value = rare.index[0]
        counts = ", ".join(f"{name} {int(found.get(value, 0))}" for name, found in by_split.items())
        raise DataError(
            snapshot_name,
            f"classification: expected at least {len(SPLITS)} usable rows of every class (one "
            f"per split); class {value!r} has {int(rare.iloc[0])} ({counts}; add rows of it, "
            "or leave it out of the schema's allowed labels)",
            column=column,
        )
    notes = []
    for value, count in in_train.items():
        missing = [name for name in SPLITS[1:] if value not in by_split[name]]
        if missing:
            notes.append(
                f"column '{column}': class {value!r} has {count} row{'s' if count != 1 else ''} "
                f"in train but none in {' or '.join(missing)}: its per-class scores there are "
                "missing"
            )
    return notes


def _class_counts(label: pd.Series, rows: np.ndarray) -> pd.Series:
    # Fewest rows first, ties by value; integral numbers shown as integers.
    values = label.iloc[rows]
    if pd.api.types.is_float_dtype(values) and bool((values % 1 == 0).all()):
        values = values.astype("int64")
    counts = values.value_counts()
    ordered = sorted(counts.items(), key=lambda item: (item[1], str(item[0])))
    return pd.Series(dict(ordered), dtype="int64")


def _check_float32(
    computed: dict[str, Any],
    values: pd.DataFrame,
    usable: np.ndarray,
    raw: pd.DataFrame,
    snapshot_name: str,
) -> None:
    """The statistics, and every usable value standardised by them, must be float32s.

    The models take float32: a mean, a deviation or an ``(x - mean) / scale``
    past its range would reach them as infinity.
    """
    label = computed["label"]
    moments = {name: (s["mean"], s["std"], s["scale"]) for name, s in computed["stats"].items()}
    if "mean" in label:
        moments[label["name"]] = (label["mean"], label["std"], label["std"] or 1.0)
    for column, (mean, std, scale) in moments.items():
        if not (abs(mean) <= kinds.FLOAT32_MAX and std <= kinds.FLOAT32_MAX):
            raise DataError(
                snapshot_name,
                "preprocessing: expected a mean and standard deviation within float32's range "
                f"over the train split; found mean {mean}, std {std}",
                column=column,
            )
        deviation = np.abs(values[column].to_numpy()[usable] - mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            # As the models divide: by the scale in float32, which may round to zero.
            standardised = np.where(deviation > 0, deviation / float(np.float32(scale)), 0.0)
        if standardised.max(initial=0.0) > kinds.FLOAT32_MAX:
            at = int(usable[np.argmax(standardised)])
            raise DataError(
                snapshot_name,
                "preprocessing: expected a standardised value within float32's range; found "
                f"({float(values.at[at, column])!r} - {mean!r}) / {scale!r} beyond it (the train "
                "split's mean and scale): the column's values span too many orders of magnitude",
                row=_where(raw, at),
                column=column,
            )


def _violations(raw: pd.DataFrame, values: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    wrong = checks.type_violations(raw, schema)
    found = checks.value_violations(values, schema)
    if not wrong.empty:
        # A value of the wrong type is null once typed; it is one violation, not two.
        cells = pd.MultiIndex.from_frame(wrong[["row", "column"]])
        missing = found["check"] == checks.MISSING
        also = pd.MultiIndex.from_frame(found[["row", "column"]]).isin(cells)
        found = found[~(missing & also)]
    table = pd.concat([wrong, found], ignore_index=True)
    return table.sort_values(["row", "column"], kind="stable").reset_index(drop=True)


def _apply_policies(
    violations: pd.DataFrame,
    values: pd.DataFrame,
    schema: DataSchema,
    params: CleanParams,
    raw: pd.DataFrame,
    snapshot_name: str,
) -> tuple[np.ndarray, dict[str, int]]:
    """Fail, or mark rows to drop, or repair cells in ``values`` in place."""
    dropped: list[np.ndarray] = []
    treated: dict[str, int] = {}
    for check in checks.CHECKS:
        found = violations[violations["check"] == check]
        if found.empty:
            continue
        policy = params.policies[check]
        if policy == FAIL:
            first = found.iloc[0]
            rows = found["row"].nunique()
            raise DataError(
                snapshot_name,
                f"{check.replace('_', ' ')}: expected {first['expected']}; found {first['found']} "
                f"({rows} row{'s' if rows != 1 else ''} like this; clean.policies.{check} is 'fail')",
                row=_where(raw, int(first["row"])),
                column=None if first["column"] == checks.ALL_COLUMNS else str(first["column"]),
            )
        # Labels are never invented: a bad label drops its row whatever the policy.
        # Clipping needs numeric bounds; a value outside a list of allowed ones
        # cannot be clipped, so its row is dropped too.
        unrepairable = found["column"] == schema.label
        if policy == CLIP:
            unrepairable |= ~found["column"].map(_clippable(schema)).fillna(False).astype(bool)
        dropped.append(
            found["row"].to_numpy() if policy == DROP else found.loc[unrepairable, "row"].to_numpy()
        )
        if policy in (IMPUTE, CLIP):
            cells = found[~unrepairable]
            for column, rows in cells.groupby("column")["row"]:
                at = rows.to_numpy()
                if policy == CLIP:
                    low, high = _clip_bounds(schema.columns[column])
                    values.loc[at, column] = values.loc[at, column].clip(low, high)
                else:
                    values.loc[at, column] = np.nan
            treated[f"{check}_{policy}"] = len(cells)
    rows = np.unique(np.concatenate(dropped)) if dropped else np.array([], dtype=np.int64)
    return rows.astype(np.int64), treated


def _clippable(schema: DataSchema) -> dict[str, bool]:
    return {
        name: spec.kind == kinds.NUMBER
        and spec.allowed is None
        and (spec.minimum is not None or spec.maximum is not None)
        for name, spec in schema.columns.items()
    }


def _clip_bounds(spec: ColumnSchema) -> tuple[float | None, float | None]:
    # The schema's bounds, and no further than float32's range (every model's input).
    def bounded(bound: float | None) -> float | None:
        return None if bound is None else kinds.within_float32(bound)

    return bounded(spec.minimum), bounded(spec.maximum)


def _where(raw: pd.DataFrame, row: int) -> str:
    if SOURCE_FILE in raw:
        return f"row {raw.at[row, SOURCE_ROW]} of {raw.at[row, SOURCE_FILE]}"
    return f"row {row + 1}"


def _label_values(label: pd.Series, schema: DataSchema) -> pd.Series:
    spec = schema.columns[schema.label]
    if schema.task == "classification" and spec.kind == kinds.NUMBER:
        allowed = spec.allowed or ()
        if all(float(value).is_integer() for value in allowed):
            return label.astype("int64")
    return label


def _quarantine(raw: pd.DataFrame, violations: pd.DataFrame, dropped: np.ndarray) -> pd.DataFrame:
    reasons = violations[violations["row"].isin(dropped)]
    text = (
        reasons["check"]
        + ": "
        + reasons["column"].astype(str)
        + " expected "
        + reasons["expected"]
        + ", found "
        + reasons["found"]
    )
    joined = text.groupby(reasons["row"]).agg("; ".join)
    quarantined = raw.loc[dropped].copy()
    quarantined[kinds.REASON] = joined.reindex(dropped).to_numpy()
    return quarantined.reset_index(drop=True)


def _counts(by_check: dict[str, int]) -> str:
    return ", ".join(f"{check}: {count}" for check, count in sorted(by_check.items())) or "none"


def _report(
    *,
    total: int,
    splits: dict[str, pd.DataFrame],
    dropped: np.ndarray,
    violations: pd.DataFrame,
    treated: dict[str, int],
    imputed_cells: pd.Series,
    params: CleanParams,
    schema: DataSchema,
    schema_name: str,
    inferred: bool,
    drift: Drift,
    constant_in_train: dict[str, str],
    notes: list[str],
) -> dict[str, Any]:
    checks_report = {}
    for check in checks.CHECKS:
        found = violations[violations["check"] == check]
        by_column = found.groupby("column")["row"].count()
        checks_report[check] = {
            "policy": params.policies[check],
            "rows": int(found["row"].nunique()),
            "cells": len(found),
            "by_column": {str(c): int(n) for c, n in by_column.items()},
        }
    report: dict[str, Any] = {
        "rows": {
            "input": total,
            "kept": total - len(dropped),
            "quarantined": len(dropped),
            **{name: len(frame) for name, frame in splits.items()},
        },
        "quarantine_share": round(len(dropped) / total, 6),
        "checks": checks_report,
        "repaired_cells": treated,
        "imputed_cells": {
            "total": int(imputed_cells.sum()),
            "by_column": {str(c): int(n) for c, n in imputed_cells.items() if n},
        },
        "schema": {
            "path": schema_name,
            "inferred": inferred,
            "features": len(schema.features),
            "ignored": dict(schema.ignored),
            "drift": {
                "added": list(drift.added),
                "removed": list(drift.removed),
                "retyped": [{"column": c, "expected": e, "found": f} for c, e, f in drift.retyped],
            },
        },
    }
    report["constant_in_train"] = constant_in_train
    report["notes"] = notes
    if schema.task == "classification":
        report["label_counts"] = {
            name: {
                str(k): int(v) for k, v in frame[schema.label].value_counts().sort_index().items()
            }
            for name, frame in splits.items()
        }
    return report
