"""Preprocessing constants computed once from the train split, read by both trainers.

The file is the fairness contract between the frameworks: the TFX Transform and
the Lightning data module apply exactly these statistics and vocabularies.
"""

from __future__ import annotations

from typing import Any

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
) -> dict[str, Any]:
    """Normalisation statistics, vocabularies and label encoding from the (imputed) train split."""
    numeric = [n for n in schema.features if schema.columns[n].kind == kinds.NUMBER]
    categorical = [n for n in schema.features if schema.columns[n].kind == kinds.STRING]
    stats = {}
    for name in numeric:
        column = train[name].astype("float64")
        # Population deviation (ddof=0), as Keras' Normalization layer and TF
        # Transform's scale_to_z_score compute it.
        std = float(column.std(ddof=0)) if len(column) else 0.0
        stats[name] = {"mean": float(column.mean()), "std": std, "scale": std if std > 0 else 1.0}
    vocabularies = {
        name: [str(v) for v in _by_frequency(train[name].value_counts())] for name in categorical
    }
    label_spec = schema.columns[schema.label]
    label: dict[str, Any] = {"name": schema.label, "kind": label_spec.kind}
    if schema.task == "classification":
        label["classes"] = list(label_spec.allowed or sorted(train[schema.label].unique().tolist()))
    else:
        target = train[schema.label].astype("float64")
        label["mean"] = float(target.mean())
        label["std"] = float(target.std(ddof=0))
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


def _by_frequency(counts: pd.Series) -> list[Any]:
    # Most frequent first, ties by value: the order TF Transform's vocabulary uses,
    # made deterministic.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [value for value, _ in ordered]
