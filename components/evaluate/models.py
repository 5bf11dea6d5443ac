"""The two trained models, each in its own framework, behind one call.

Each takes the serving matrix (``components.training.features.raw_matrix``)
and returns class probabilities (rows, classes) or values (rows,). TensorFlow's
is the SavedModel TFX pushed, called through its ``serving_raw`` signature, so
the TF Transform graph does its preprocessing; PyTorch's is the
``torch.export`` program the stage saved, preprocessing inside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.errors import BakeoffError

CHUNK = 1024
PYTORCH_FILE = "model.pt2"


@dataclass(frozen=True)
class Native:
    """A trained model in its framework: where it is, its size, and how to call it."""

    framework: str
    path: Path
    size_bytes: int
    call: Callable[[np.ndarray], np.ndarray]  # one batch of the serving matrix

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Outputs for every row, computed in chunks."""
        return batched(self.call, matrix)


def batched(call: Callable[[np.ndarray], Any], matrix: np.ndarray) -> np.ndarray:
    """``call`` over every row of the serving matrix, ``CHUNK`` rows at a time."""
    parts = [
        np.asarray(call(matrix[start : start + CHUNK])) for start in range(0, len(matrix), CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,))


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def latest_version(model_dir: Path) -> Path:
    """The newest ``<version>/`` folder of a TF Serving layout."""
    versions = (
        [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if model_dir.is_dir()
        else []
    )
    if not versions:
        raise BakeoffError(f"{model_dir}: no SavedModel version folder; run train@tensorflow first")
    return max(versions, key=lambda p: int(p.name))


def load(framework: str, model_dir: Path, constants: Mapping[str, Any]) -> Native:
    """The trained model of ``framework`` from its stage's model folder."""
    if framework == "tensorflow":
        return _tensorflow(latest_version(model_dir), constants)
    if framework == "pytorch":
        return _pytorch(model_dir / PYTORCH_FILE)
    raise BakeoffError(f"unknown framework {framework!r}: expected tensorflow or pytorch")


def _tensorflow(version: Path, constants: Mapping[str, Any]) -> Native:
    import tensorflow as tf

    signature = tf.saved_model.load(str(version)).signatures["serving_raw"]
    specs = signature.structured_input_signature[1]
    numeric = list(constants["numeric"])
    categorical = list(constants["categorical"])
    output = "probabilities" if constants["task"] == "classification" else "value"

    def call(matrix: np.ndarray) -> np.ndarray:
        features = {}
        for column, name in enumerate(numeric):
            features[name] = tf.constant(matrix[:, column], dtype=specs[name].dtype)
        for column, name in enumerate(categorical, start=len(numeric)):
            features[name] = tf.constant(_category_names(matrix[:, column], name, constants))
        values = signature(**features)[output].numpy()
        return values if output == "probabilities" else values.reshape(-1)

    return Native("tensorflow", version, size_on_disk(version), call)


def _category_names(positions: np.ndarray, name: str, constants: Mapping[str, Any]) -> np.ndarray:
    """Vocabulary positions back to the raw strings the Transform graph looks up."""
    vocabulary = list(constants["vocabularies"][name])
    known = ~np.isnan(positions) & (positions >= 0) & (positions < len(vocabulary))
    known &= np.floor(np.nan_to_num(positions)) == np.nan_to_num(positions)
    names = np.full(len(positions), "\0unknown", dtype=object)
    names[np.isnan(positions)] = str(constants["impute"][name])
    names[known] = [vocabulary[int(p)] for p in positions[known]]
    return names.astype(str).astype(object)


def _pytorch(path: Path) -> Native:
    import torch

    if not path.is_file():
        raise BakeoffError(f"{path}: no exported PyTorch model; run train@pytorch first")
    module = torch.export.load(str(path)).module()

    def call(matrix: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            values = module(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)))
        values = values.numpy()
        return values if values.ndim == 2 and values.shape[1] > 1 else values.reshape(-1)

    return Native("pytorch", path, size_on_disk(path), call)
