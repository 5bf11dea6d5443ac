"""Preprocessing constants computed once from the train split, read by both trainers.

The file is the fairness contract between the frameworks: the TFX Transform and
the Lightning data module apply exactly these statistics and vocabularies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from components import columns as kinds
from components.clean.schema import DataSchema

PREPROCESSING_VERSION = 1


def impute_values(train: pd.DataFrame, schema: DataSchema) -> dict[str, Any]:
    """Per feature, the value that fills a gap: the train median, or the most frequent string."""
    values: dict[str, Any] = {}
    for name in schema.features:
        present = train[name].dropna()
        if schema.columns[name].kind == kinds.NUMBER:
            values[name] = float(present.median()) if len(present) else 0.0
        else:
            counts = present.value_counts()
            values[name] = str(_by_frequency(counts)[0]) if len(counts) else ""
    return values


def constants(
    train: pd.DataFrame,
    schema: DataSchema,
    impute: dict[str, Any],
    image_shape: list[int] | None,
    max_categories: int | None = None,
) -> dict[str, Any]:
    """Normalisation statistics, vocabularies and label encoding from the (imputed) train split.

    A vocabulary keeps the ``max_categories`` most frequent values; the others
    share the out-of-vocabulary slot every categorical feature has.
    """
    numeric = [n for n in schema.features if schema.columns[n].kind == kinds.NUMBER]
    categorical = [n for n in schema.features if schema.columns[n].kind == kinds.STRING]
    stats = {}
    for name in numeric:
        mean, std = moments(train[name])
        stats[name] = {"mean": mean, "std": std, "scale": std if std > 0 else 1.0}
    vocabularies = {
        name: [str(v) for v in _by_frequency(train[name].value_counts())][:max_categories]
        for name in categorical
    }
    label_spec = schema.columns[schema.label]
    label: dict[str, Any] = {"name": schema.label, "kind": label_spec.kind}
    if schema.task == "classification":
        label["classes"] = list(label_spec.allowed or sorted(train[schema.label].unique().tolist()))
    else:
        label["mean"], label["std"] = moments(train[schema.label])
    return {
        "version": PREPROCESSING_VERSION,
        "dataset": schema.dataset,
        "task": schema.task,
        "features": list(schema.features),
        "numeric": numeric,
        "categorical": categorical,
        "stats": stats,
        "vocabularies": vocabularies,
        "impute": impute,
        "label": label,
        "image_shape": image_shape,
        "train_rows": len(train),
    }


def constant_features(train: pd.DataFrame, schema: DataSchema) -> dict[str, str]:
    """The features with at most one value in the (not yet imputed) train split, with why."""
    found = {}
    for name in schema.features:
        why = kinds.constant(train[name], schema.columns[name].kind == kinds.NUMBER)
        if why is not None:
            found[name] = why
    return found


def moments(values: pd.Series) -> tuple[float, float]:
    """Mean and population standard deviation, finite for any finite values.

    The deviation is the population one (ddof=0), as Keras' Normalization layer
    and TF Transform's scale_to_z_score compute it. The values are first scaled
    by the power of two nearest their largest magnitude: exact in binary
    floating point, so ordinary columns get the same numbers as unscaled, while
    neither the sum nor the squares of values such as 1e308 (or 1e-300) can
    overflow (or vanish). Infinite or missing values give a non-finite result.
    """
    column = values.astype("float64")
    if len(column) == 0:
        return math.nan, 0.0
    peak = float(column.abs().max())
    if not math.isfinite(peak) or peak == 0:
        return float(column.mean()), float(column.std(ddof=0))
    exponent = math.frexp(peak)[1]
    scaled = pd.Series(np.ldexp(column.to_numpy(), -exponent))
    return (
        math.ldexp(float(scaled.mean()), exponent),
        math.ldexp(float(scaled.std(ddof=0)), exponent),
    )


def _by_frequency(counts: pd.Series) -> list[Any]:
    # Most frequent first, ties by value: the order TF Transform's vocabulary uses,
    # made deterministic.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [value for value, _ in ordered]
