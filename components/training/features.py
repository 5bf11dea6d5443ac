"""The shared preprocessing, applied: raw feature columns to the dense float32 model input.

This is the reference both frameworks must match (DESIGN.md fairness rules):
the TFX Transform graph computes the same thing inside TensorFlow, the
Lightning data module calls this directly, and a test compares the two.

Layout of the vector: the numeric features in ``constants["numeric"]`` order,
each ``(x - mean) / scale`` (a gap is first filled with its imputation value);
then each categorical feature one-hot over its vocabulary plus one last slot
for values not in it.

Every exported model (both frameworks, every format) takes the *serving matrix*
of :func:`raw_matrix` instead: one float32 row per record, the columns in
:func:`feature_order`; numeric features as they are (NaN for a gap), then each
categorical feature as its position in the vocabulary (NaN for a gap, any other
position is out of vocabulary). Formats without strings (ONNX, TFLite,
``torch.export``) take it as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from components.contracts import Constants, ServingLayout, internal_names
from components.errors import BakeoffError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def preflight(constants: Constants, path: str | Path) -> None:
    """Stop, in one line naming the column, on constants a trainer or a serving model cannot take.

    Run by each training stage before its study: clean refuses these already,
    so this guards a hand-edited or older ``preprocessing.json``, and no
    tuning budget is spent on a model that could not be saved or served.
    """

    def stop(problem: str) -> None:
        raise BakeoffError(f"{path}: {problem}; rerun clean (dvc repro clean) or fix the data")

    if not constants.feature_order:
        stop("no feature columns to train on")
    if constants.classification and len(constants.label.classes) < 2:
        count = len(constants.label.classes)
        stop(f"label '{constants.label.name}' has {count} class; a classifier needs two or more")
    for name in constants.numeric:
        values = (constants.stats[name].mean, constants.stats[name].scale, constants.impute[name])
        if not all(np.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values):
            stop(f"column '{name}': mean, scale or fill value {values} is not a finite float32")
    if constants.image_shape:
        height, width = constants.image_shape
        if constants.categorical or height * width != len(constants.numeric):
            stop(
                f"image_shape {height}x{width} needs {height * width} numeric features; "
                f"found {len(constants.numeric)} numeric and {len(constants.categorical)} "
                "categorical"
            )
    try:
        internal_names(constants.feature_order)
    except BakeoffError as err:
        stop(str(err))


def input_dim(constants: Constants) -> int:
    """Length of the model input vector."""
    return len(constants.numeric) + sum(
        len(constants.vocabularies[name]) + 1 for name in constants.categorical
    )


def outputs(constants: Constants) -> int:
    """Model outputs: the number of classes, or 1 for regression."""
    return len(constants.label.classes) if constants.classification else 1


def target_scale(constants: Constants) -> tuple[float, float] | None:
    """The train split's label mean and deviation for a regression head; None for classes."""
    label = constants.label
    return None if constants.classification else (label.mean, label.std)


def encode(frame: pd.DataFrame, constants: Constants) -> np.ndarray:
    """The model input for each row of ``frame`` (raw feature columns), as float32."""
    numeric = list(constants.numeric)
    stats = constants.stats
    impute = constants.impute
    parts = []
    if numeric:
        values = frame[numeric].to_numpy(dtype=np.float64)
        fill = np.array([impute[name] for name in numeric], dtype=np.float64)
        values = np.where(np.isnan(values), fill, values)
        mean = np.array([stats[name].mean for name in numeric], dtype=np.float64)
        scale = np.array([stats[name].scale for name in numeric], dtype=np.float64)
        parts.append(((values - mean) / scale).astype(np.float32))
    for name in constants.categorical:
        vocabulary = constants.vocabularies[name]
        index = {value: position for position, value in enumerate(vocabulary)}
        column = frame[name].where(frame[name].notna(), impute[name]).astype(str)
        positions = column.map(index).fillna(len(vocabulary)).to_numpy(dtype=np.int64)
        parts.append(np.eye(len(vocabulary) + 1, dtype=np.float32)[positions])
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)


def targets(frame: pd.DataFrame, constants: Constants) -> np.ndarray:
    """Class indices (int64) in ``label.classes`` order, or float32 values for regression."""
    label = constants.label
    if constants.classification:
        index = {str(value): position for position, value in enumerate(label.classes)}
        as_text = frame[label.name].map(lambda value: str(value))
        return as_text.map(index).to_numpy(dtype=np.int64)
    return frame[label.name].to_numpy(dtype=np.float32)


def feature_order(constants: Constants) -> list[str]:
    """The columns of the serving input, in order."""
    return constants.feature_order


def raw_matrix(frame: pd.DataFrame, constants: Constants | ServingLayout) -> np.ndarray:
    """A table of raw feature values as the serving input matrix (float32)."""
    columns = [frame[name].to_numpy(dtype=np.float64) for name in constants.numeric]
    for name in constants.categorical:
        index = {value: position for position, value in enumerate(constants.vocabularies[name])}
        values = frame[name]
        positions = values.astype(str).map(index).fillna(-1).to_numpy(dtype=np.float64)
        columns.append(np.where(values.isna().to_numpy(), np.nan, positions))
    return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(frame), 0))
