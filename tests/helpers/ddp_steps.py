"""Training steps of the project's Lightning module, on one process or as a rank of a DDP group.

Run as ``python -m tests.helpers.ddp_steps OUT`` (one process) or under
``torch.distributed.run --nproc_per_node=2 -m tests.helpers.ddp_steps OUT``;
each process writes its network's parameters after each case to
``OUT/<case>-rank<r>.npz``. The cases are the stage's own pieces
(``SplitDataModule``, ``TrialModule``, ``trainer_for``) at one global batch
size, dropout 0, so the processes' updates are the one process's updates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch

from components.backends.base import SplitArrays
from components.backends.pytorch import ddp
from components.backends.pytorch.data import SplitDataModule
from components.backends.pytorch.fit import Device, trainer_for
from components.backends.pytorch.model import TrialModule, build_network
from components.training.search import Hyperparams
from components.training.spec import ModelSpec

FEATURES, CLASSES, BATCH = 12, 3, 64
SPEC = ModelSpec("mlp", FEATURES, CLASSES, depth=2, width=32)
#: rows of the training split: exactly one step, and an epoch whose last batch is short (200 = 3 x 64 + 8)
CASES = {"one_step": 64, "one_epoch": 200}


def arrays(rows: int) -> SplitArrays:
    """A fixed random classification table (the same on every process)."""
    generator = np.random.default_rng(7)
    x = generator.normal(size=(rows + 32, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return SplitArrays(x[:rows], y[:rows], x[rows:], y[rows:], x[rows:], y[rows:])


def fit(rows: int, optimizer: str, share: tuple[int, int], device: Device) -> torch.nn.Module:
    """One epoch of the stage's module on ``rows`` rows; its network."""
    pl.seed_everything(3, verbose=False)
    hyper = Hyperparams(0.1, BATCH, 2, 32, 0.0, 1e-4, optimizer, "relu")
    module = TrialModule(build_network(SPEC, "classification", None), hyper, "classification")
    data = SplitDataModule(arrays(rows), batch_size=BATCH, seed=11, share=share)
    trainer_for(epochs=1, device=device, callbacks=[]).fit(module, datamodule=data)
    return module.network


def main(out: Path) -> None:
    """Every case with each optimiser; parameters written per rank."""
    torch.set_num_threads(1)
    rank = ddp.Rank.from_environment()
    cases = [(name, rows, opt) for name, rows in CASES.items() for opt in ("sgd", "adam")]
    if rank is None:
        pl.seed_everything(3, verbose=False)  # as fit's: the parameters before any step
        save(build_network(SPEC, "classification", None), out / "initial.npz")
        for name, rows, optimizer in cases:
            save(fit(rows, optimizer, (0, 1), Device()), out / f"{name}-{optimizer}-single.npz")
        return
    torch.distributed.init_process_group("gloo")
    device = Device(devices=rank.world)
    for name, rows, optimizer in cases:
        network = fit(rows, optimizer, (rank.rank, rank.world), device)
        save(network, out / f"{name}-{optimizer}-rank{rank.rank}.npz")
    torch.distributed.destroy_process_group()


def save(network: torch.nn.Module, path: Path) -> None:
    """The network's parameters, by name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{name: p.detach().numpy() for name, p in network.named_parameters()})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
