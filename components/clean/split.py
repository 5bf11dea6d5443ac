"""Deterministic train/val/test assignment by hashing a row key.

A row's split depends only on its key values and the salt, never on which other
rows are present, so appending a batch never moves an existing row to another split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    """Fractions of the three splits and the salt of the hash."""

    train: float
    val: float
    test: float
    salt: str

    def bounds(self) -> tuple[float, float]:
        """Upper bounds of train and val on the unit interval."""
        total = self.train + self.val + self.test
        return self.train / total, (self.train + self.val) / total


def row_keys(values: pd.DataFrame, salt: str) -> np.ndarray:
    """A 64-bit hash per row of ``values``, keyed by ``salt`` (pandas' SipHash)."""
    key = hashlib.sha256(salt.encode()).hexdigest()[:16]
    return pd.util.hash_pandas_object(values, index=False, hash_key=key).to_numpy(dtype=np.uint64)


def assign(keys: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """The split of each row: 0 train, 1 val, 2 test."""
    unit = (keys >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    train_end, val_end = spec.bounds()
    return np.where(unit < train_end, 0, np.where(unit < val_end, 1, 2)).astype(np.int8)
