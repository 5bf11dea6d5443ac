"""The Lightning data module: the clean splits, encoded with the shared preprocessing constants.

It calls ``components.training.features.encode``, the reference the TFX
Transform graph is tested against, so both frameworks train on the same
normalised vectors (DESIGN.md fairness rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from components.training.features import encode, targets

SPLITS = ("train", "val", "test")
EVAL_BATCH = 1024


class _Rows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """In-memory tensors indexed by a whole batch of positions at once.

    Fetching a batch as one tensor index (not one row at a time then
    collating) keeps the loader's cost per batch, not per example.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(rows)
        return self.x[index], self.y[index]


class SplitDataModule(pl.LightningDataModule):
    """The train/val/test splits of ``data_dir`` as model inputs and targets.

    The splits are read and encoded once (``setup`` is idempotent), so every
    trial of a study reuses them; ``batch_size`` and ``seed`` are set per trial.
    """

    def __init__(
        self, data_dir: Path, constants: Mapping[str, Any], batch_size: int = 64, seed: int = 0
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.constants = constants
        self.batch_size = batch_size
        self.seed = seed
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def setup(self, stage: str | None = None) -> None:
        """Read and encode each split once."""
        for split in SPLITS:
            if split not in self.arrays:
                self.arrays[split] = encode_split(
                    pd.read_parquet(self.data_dir / f"{split}.parquet"), self.constants
                )

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's inputs and targets as tensors (sharing memory with the arrays)."""
        self.setup()
        x, y = self.arrays[split]
        return torch.from_numpy(x), torch.from_numpy(y)

    def train_dataloader(self) -> DataLoader[Any]:
        """Shuffled batches of ``batch_size``, in an order fixed by ``seed``."""
        rows = _Rows(*self.tensors("train"))
        order = RandomSampler(range(len(rows)), generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(
            rows, batch_size=None, sampler=BatchSampler(order, self.batch_size, drop_last=False)
        )

    def val_dataloader(self) -> DataLoader[Any]:
        """The validation split in large batches: the size changes its cost, not its metrics."""
        return self._in_order("val")

    def test_dataloader(self) -> DataLoader[Any]:
        """The test split in order."""
        return self._in_order("test")

    def _in_order(self, split: str) -> DataLoader[Any]:
        rows = _Rows(*self.tensors(split))
        batches = BatchSampler(SequentialSampler(range(len(rows))), EVAL_BATCH, drop_last=False)
        return DataLoader(rows, batch_size=None, sampler=batches)


def encode_split(
    frame: pd.DataFrame, constants: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """A split's model inputs (float32) and targets (class index, or float32 value)."""
    return encode(frame, constants), targets(frame, constants)
