"""The Lightning data module: the clean splits, encoded with the shared preprocessing constants.

The arrays come from the training driver, which encodes the splits with
``components.training.features.encode``, the reference the TFX Transform graph
is tested against, so both frameworks train on the same normalised vectors
(DESIGN.md fairness rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from components.backends.base import SplitArrays

EVAL_BATCH = 1024
# Rows per Lightning step, rounded down to whole mini-batches: see ``model.TrialModule``.
CHUNK_ROWS = 4096


class _Rows(Dataset[tuple[torch.Tensor, ...]]):
    """In-memory tensors indexed by a whole batch of positions at once.

    Fetching a batch as one tensor index (not one row at a time then
    collating) keeps the loader's cost per batch, not per example.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows: Any) -> tuple[torch.Tensor, ...]:
        if isinstance(rows, tuple):  # a rank's share of a global mini-batch, and that batch's size
            share, size = rows
            return self.x[share], self.y[share], torch.tensor(size)
        return self.x[rows], self.y[rows]


class _Chunks(Sampler[torch.Tensor]):
    """A fresh permutation of the rows each epoch, cut into chunks of whole mini-batches.

    Cutting a permutation into chunks of ``k * batch_size`` rows and each chunk
    into ``batch_size`` rows gives the same mini-batches as cutting the
    permutation into ``batch_size`` rows directly.
    """

    def __init__(self, rows: int, chunk: int, seed: int) -> None:
        self.rows, self.chunk = rows, chunk
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.rows // self.chunk)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from torch.randperm(self.rows, generator=self.generator).split(self.chunk)


class _Shares(Sampler[tuple[torch.Tensor, int]]):
    """DDP: the permutation every rank draws alike, cut into global mini-batches; this rank's share of each.

    Rank ``r`` of ``w`` takes the ``r``-th of ``w`` near-equal parts of each
    batch, so the ranks together see the batches one process would.
    """

    def __init__(self, rows: int, batch: int, seed: int, rank: int, world: int) -> None:
        self.rows, self.batch, self.rank, self.world = rows, batch, rank, world
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.rows // self.batch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        for batch in torch.randperm(self.rows, generator=self.generator).split(self.batch):
            yield batch.tensor_split(self.world)[self.rank], len(batch)


class SplitDataModule(pl.LightningDataModule):
    """The train/val/test splits as model inputs and targets, in memory.

    The driver encodes the splits once (``features.encode``), so every trial of
    a study reuses them; ``batch_size`` and ``seed`` are set per trial.
    """

    def __init__(
        self,
        arrays: SplitArrays,
        batch_size: int = 64,
        seed: int = 0,
        share: tuple[int, int] = (0, 1),
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.share = share  # (rank, world): DDP ranks train on their share of each mini-batch
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "train": (arrays.x_train, arrays.y_train),
            "val": (arrays.x_val, arrays.y_val),
            "test": (arrays.x_test, arrays.y_test),
        }

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's inputs and targets as tensors (sharing memory with the arrays)."""
        x, y = self.arrays[split]
        return torch.from_numpy(x), torch.from_numpy(y)

    def train_dataloader(self) -> DataLoader[Any]:
        """Shuffled chunks of whole mini-batches, in an order fixed by ``seed``."""
        rows = _Rows(*self.tensors("train"))
        rank, world = self.share
        if world > 1:
            # One Lightning step per mini-batch: DDP reduces the gradients of one backward per step.
            shares = _Shares(len(rows), self.batch_size, self.seed, rank, world)
            return DataLoader(rows, batch_size=None, sampler=shares)
        chunks = _Chunks(len(rows), chunk_rows(self.batch_size), self.seed)
        return DataLoader(rows, batch_size=None, sampler=chunks)

    def val_dataloader(self) -> DataLoader[Any]:
        """The validation split in large batches: the size changes its cost, not its metrics."""
        return self._in_order("val")

    def test_dataloader(self) -> DataLoader[Any]:
        """The test split in order."""
        return self._in_order("test")

    def _in_order(self, split: str) -> DataLoader[Any]:
        rows = _Rows(*self.tensors(split))
        return DataLoader(rows, batch_size=None, sampler=torch.arange(len(rows)).split(EVAL_BATCH))


def chunk_rows(batch_size: int) -> int:
    """Rows per chunk: as many whole mini-batches as fit in ``CHUNK_ROWS``, at least one."""
    return max(1, CHUNK_ROWS // batch_size) * batch_size
