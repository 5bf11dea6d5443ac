"""Training examples/s of the PyTorch stage's Lightning fit on one process and on two (DDP, gloo).

The same fit the stage runs (``SplitDataModule``, ``TrialModule``,
``trainer_for``), on a synthetic table, at one global batch size: one process
takes its usual path (chunks of mini-batches per Lightning step); two
processes each take their share of every mini-batch, and DDP averages the
gradients (one Lightning step per mini-batch). Each process gets
``cores / processes`` threads, so both modes use the same cores. Both run in
this one invocation, one after the other, with the CPU model in the record.

Figure: steady examples/s (epochs after the first) on two processes divided
by that on one.

    .venv/bin/python benchmarks/distributed_pytorch.py [--rows 50000] [--epochs 3] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed_pytorch.json"
FEATURES, CLASSES = 64, 10


def fit(rows: int, epochs: int, batch: int, out: Path) -> None:
    """One fit, on this process alone or as a rank of the group torchrun started; epoch seconds to ``out``."""
    import lightning.pytorch as pl
    import numpy as np
    import torch

    from components.backends.base import SplitArrays, available_cpus
    from components.backends.pytorch import ddp
    from components.backends.pytorch.data import SplitDataModule
    from components.backends.pytorch.fit import Device, trainer_for
    from components.backends.pytorch.model import TrialModule, build_network
    from components.training.search import Hyperparams
    from components.training.spec import ModelSpec

    rank = ddp.Rank.from_environment()
    world = rank.world if rank else 1
    torch.set_num_threads(max(1, available_cpus() // (rank.local_world if rank else 1)))
    if rank:
        torch.distributed.init_process_group("gloo")
    generator = np.random.default_rng(0)
    x = generator.normal(size=(rows + 2000, FEATURES)).astype(np.float32)
    y = (x[:, :CLASSES] @ generator.normal(size=CLASSES)).argsort().argsort() * CLASSES // len(x)
    y = y.astype(np.int64)
    data = SplitArrays(x[:rows], y[:rows], x[rows:], y[rows:], x[rows:], y[rows:])
    pl.seed_everything(0, verbose=False)
    spec = ModelSpec("mlp", FEATURES, CLASSES, depth=2, width=256)
    hyper = Hyperparams(1e-3, batch, 2, 256, 0.0, 1e-5, "adam", "relu")
    module = TrialModule(build_network(spec, "classification", None), hyper, "classification")
    seconds: list[float] = []

    class _Clock(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            seconds.append(time.perf_counter() - self.started)

    share = (rank.rank, world) if rank else (0, 1)
    module_data = SplitDataModule(data, batch_size=batch, seed=0, share=share)
    device = Device(devices=world)
    trainer_for(epochs=epochs, device=device, callbacks=[_Clock()]).fit(module, module_data)
    if not rank or rank.leads:
        out.write_text(json.dumps({"epoch_seconds": seconds, "threads": torch.get_num_threads()}))
    if rank:
        torch.distributed.destroy_process_group()


def measure(processes: int, rows: int, epochs: int, batch: int) -> dict:
    """Launch one fit on ``processes`` processes; its steady examples/s."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "fit.json"
        inner = [__file__, "--fit", str(out), *map(str, ("--rows", rows, "--epochs", epochs))]
        inner += ["--batch", str(batch)]
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone"]
            launcher += [f"--nproc_per_node={processes}"]
        started = time.perf_counter()
        subprocess.run([*launcher, *inner], cwd=ROOT, check=True, capture_output=True)
        wall = time.perf_counter() - started
        record = json.loads(out.read_text())
    steady = record["epoch_seconds"][1:] or record["epoch_seconds"]
    return {
        "processes": processes,
        "threads_per_process": record["threads"],
        "epoch_seconds": [round(s, 3) for s in record["epoch_seconds"]],
        "examples_per_s": round(rows * len(steady) / sum(steady), 1),
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--fit", type=Path, help=argparse.SUPPRESS)  # a launched process
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.fit:
        fit(args.rows, args.epochs, args.batch, args.fit)
        return
    from components.backends.base import machine

    runs = [measure(n, args.rows, args.epochs, args.batch) for n in (1, 2)]
    one, two = runs
    result = {
        "benchmark": "distributed_pytorch",
        "machine": machine(),
        "workload": {
            "rows": args.rows,
            "features": FEATURES,
            "classes": CLASSES,
            "network": "mlp 256-128, adam",
            "epochs": args.epochs,
            "global_batch": args.batch,
        },
        "runs": runs,
        "two_over_one": round(two["examples_per_s"] / one["examples_per_s"], 3),
        "environment": {name: os.environ.get(name, "") for name in ("OMP_NUM_THREADS",)},
    }
    for run in runs:
        print(
            f"{run['processes']} process(es) x {run['threads_per_process']} thread(s): "
            f"{run['examples_per_s']:,.0f} examples/s (epochs {run['epoch_seconds']} s)"
        )
    print(f"two processes / one: {result['two_over_one']:.2f}x on {result['machine']['cpu']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
