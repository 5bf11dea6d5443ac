"""Deterministic train/val/test assignment by hashing a row key.

A row's split depends only on its key values and the salt, never on which other
rows are present, so appending a batch never moves an existing row to another split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd


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


def row_keys(columns: Mapping[str, pd.Series], salt: str) -> np.ndarray:
    """A 64-bit hash per row over ``columns`` taken in name order, keyed by ``salt``.

    Each column is hashed with pandas' SipHash (``pd.util.hash_array``) and the
    columns are combined as ``pd.util.hash_pandas_object`` combines a frame's,
    without first gathering them into one frame (a copy of the whole table).
    Name order makes the key independent of how the schema lists its columns.
    """
    key = hashlib.sha256(salt.encode()).hexdigest()[:16]
    names = sorted(columns)
    out = None
    multiplier = np.uint64(1000003)
    for position, name in enumerate(names):
        hashed = pd.util.hash_array(np.asarray(columns[name].to_numpy()), hash_key=key)
        if out is None:
            out = np.zeros_like(hashed) + np.uint64(0x345678)
        remaining = len(names) - position
        out ^= hashed
        out *= multiplier
        multiplier += np.uint64(82520 + remaining + remaining)
    if out is None:
        raise ValueError("a row key needs at least one column")
    return out + np.uint64(97531)


def assign(keys: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """The split of each row: 0 train, 1 val, 2 test."""
    unit = (keys >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    train_end, val_end = spec.bounds()
    return np.where(unit < train_end, 0, np.where(unit < val_end, 1, 2)).astype(np.int8)
