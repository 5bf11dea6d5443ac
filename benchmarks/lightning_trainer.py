"""Lightning training as the stage runs it versus a plain PyTorch loop, side by side.

Same model (one fixed point of the search space, built by the stage's
builder), same data (a synthetic 64-feature, 10-class table, 42k training and
9k validation rows, in memory), same optimiser, batch size, epochs and
per-epoch validation, in one process, alternating which goes first.

The Lightning side is the stage's own ``fit_trial``: its Trainer settings (no
progress bar, no per-step logger), its LightningModule, data module, Optuna
pruning callback, early stopping (patience = epochs, so it never stops),
best-epoch checkpoint and per-epoch MLflow logging. The plain loop shuffles
with ``randperm``, steps the optimiser and validates each epoch, nothing more.

Figure: examples/s at steady state (training rows over the median epoch time
after the first) of each; their ratio, Lightning / plain (goal >= 0.9).

    .venv/bin/python benchmarks/lightning_trainer.py [--epochs 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import torch

from components.backends.base import FitSettings, SplitArrays
from components.backends.pytorch.data import EVAL_BATCH, SplitDataModule
from components.backends.pytorch.fit import Device, fit_trial
from components.backends.pytorch.model import TrialModule, build_network
from components.training.search import Hyperparams
from components.training.spec import MLP, ModelSpec
from components.training.study import steady_rate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "lightning_trainer.json"
TRAIN_ROWS, VAL_ROWS, FEATURES, CLASSES = 42_000, 9_000, 64, 10
SPEC = ModelSpec(MLP, input_dim=FEATURES, outputs=CLASSES, depth=2, width=128, dropout=0.1)


def synthetic(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A learnable table: labels from a random linear map of standard-normal features."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(FEATURES, CLASSES))
    arrays = {}
    for split, rows in (("train", TRAIN_ROWS), ("val", VAL_ROWS), ("test", 10)):
        x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
        y = (x @ weights + rng.normal(size=(rows, CLASSES))).argmax(axis=1).astype(np.int64)
        arrays[split] = (x, y)
    return arrays


def lightning(arrays, hyper: Hyperparams, epochs: int, folder: Path) -> float:
    """Steady examples/s of the stage's ``fit_trial``, with MLflow logging each epoch."""
    (x, y), (x_val, y_val), (x_test, y_test) = (arrays[s] for s in ("train", "val", "test"))
    data = SplitDataModule(SplitArrays(x, y, x_val, y_val, x_test, y_test))
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    with mlflow.start_run(nested=True):
        result = fit_trial(
            trial,
            hyper,
            SPEC,
            data=data,
            settings=FitSettings(
                task="classification",
                metric="val/accuracy",
                epochs=epochs,
                patience=epochs,
                seed=0,
                trial_dir=folder / "trials",
                target=None,
            ),
            device=Device(),
        )
    assert result.epochs == epochs
    return result.examples_per_s


def plain(arrays, hyper: Hyperparams, epochs: int) -> float:
    """Steady examples/s of a hand-written loop doing the same work."""
    torch.manual_seed(0)
    network = build_network(SPEC, "classification")
    optimizer = TrialModule(network, hyper, "classification").configure_optimizers()
    x, y = (torch.from_numpy(a) for a in arrays["train"])
    x_val, y_val = (torch.from_numpy(a) for a in arrays["val"])
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(epochs):
        began = time.perf_counter()
        network.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), hyper.batch_size):
            rows = order[start : start + hyper.batch_size]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(network(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
        network.eval()
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(x_val), EVAL_BATCH):
                output = network(x_val[start : start + EVAL_BATCH])
                correct += int((output.argmax(dim=1) == y_val[start : start + EVAL_BATCH]).sum())
        assert 0 <= correct <= len(x_val)
        seconds.append(time.perf_counter() - began)
    return steady_rate(len(x), seconds)


def main() -> None:
    """Measure both at each batch size of the default search space; print and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each, alternating")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    arrays = synthetic()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
        with mlflow.start_run(run_name="benchmark"):
            for batch_size in (32, 64, 128):
                hyper = Hyperparams(1e-3, batch_size, 2, 128, 0.1, 1e-6, "adam", "relu")
                rates: dict[str, list[float]] = {"lightning": [], "plain": []}
                for round_ in range(args.rounds):
                    order = ("lightning", "plain") if round_ % 2 == 0 else ("plain", "lightning")
                    for side in order:
                        rate = (
                            lightning(arrays, hyper, args.epochs, folder)
                            if side == "lightning"
                            else plain(arrays, hyper, args.epochs)
                        )
                        rates[side].append(rate)
                row = {
                    "batch_size": batch_size,
                    "lightning_examples_per_s": statistics.median(rates["lightning"]),
                    "plain_examples_per_s": statistics.median(rates["plain"]),
                    "runs": rates,
                }
                row["ratio"] = row["lightning_examples_per_s"] / row["plain_examples_per_s"]
                results.append(row)
                print(
                    f"batch {batch_size:>3}: Lightning {row['lightning_examples_per_s']:,.0f}/s, "
                    f"plain loop {row['plain_examples_per_s']:,.0f}/s, ratio {row['ratio']:.2f}",
                    flush=True,
                )
    report = {
        "benchmark": "lightning_trainer",
        "goal": "ratio >= 0.9",
        "model": {"kind": SPEC.kind, "depth": SPEC.depth, "width": SPEC.width},
        "train_rows": TRAIN_ROWS,
        "val_rows": VAL_ROWS,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "results": results,
        "min_ratio": min(row["ratio"] for row in results),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"lowest ratio {report['min_ratio']:.2f} (goal >= 0.9); written to {RESULTS}")


if __name__ == "__main__":
    main()
