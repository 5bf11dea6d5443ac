"""One Optuna trial of the Lightning model: pruning, early stopping, a checkpoint of the best epoch."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import torch

from components.train_pytorch.data import SplitDataModule
from components.train_pytorch.model import TrialModule, build_network
from components.training import search
from components.training.search import Hyperparams
from components.training.spec import ModelSpec
from components.training.study import Diverged, TrialResult, steady_rate

LogEpoch = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class Device:
    """Where and how trials train: Lightning's accelerator and precision."""

    accelerator: str = "cpu"
    precision: str = "32-true"
    threads: int = 0  # torch's intra-op CPU threads; 0: torch decides

    @classmethod
    def detect(cls, mixed_precision: bool, threads: int = 0) -> Device:
        """The first visible GPU if there is one (mixed precision if asked), else the CPU."""
        if torch.cuda.is_available():
            return cls("gpu", "16-mixed" if mixed_precision else "32-true", threads)
        return cls(threads=threads)


class _Epochs(pl.Callback):
    """Records ``split/metric`` values and wall time per epoch; stops on a non-finite loss."""

    def __init__(self, log_epoch: LogEpoch | None) -> None:
        self.log_epoch = log_epoch
        self.history: dict[str, list[float]] = {}
        self.seconds: list[float] = []
        self.diverged = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.began = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning validates before this hook, so the epoch's time includes
        # validation, as the Keras branch's does.
        self.seconds.append(time.perf_counter() - self.began)
        named = {name: float(value) for name, value in trainer.callback_metrics.items()}
        for name, value in named.items():
            self.history.setdefault(name, []).append(value)
        if self.log_epoch is not None:
            self.log_epoch(named, trainer.current_epoch)
        if not math.isfinite(named.get("train/loss", 0.0)):
            self.diverged = True
            trainer.should_stop = True


class _BestEpoch(pl.Callback):
    """Saves a Lightning checkpoint (weights only) whenever the monitored metric improves.

    Not ``ModelCheckpoint``: it saves only when ``global_step`` moved, and the
    module's direct optimiser steps (see ``TrialModule``) do not move it.
    """

    def __init__(self, path: Path, monitor: str, mode: str) -> None:
        self.path, self.monitor, self.mode = path, monitor, mode
        self.best: float | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not math.isfinite(float(value)):
            return
        current = float(value)
        if self.best is None or (
            current > self.best if self.mode == "max" else current < self.best
        ):
            self.best = current
            trainer.save_checkpoint(self.path, weights_only=True)


def trainer_for(
    *,
    epochs: int,
    device: Device,
    callbacks: list[pl.Callback],
) -> pl.Trainer:
    """A Lightning Trainer as the stage uses it: no progress bar, no per-step logger.

    bakeoff logs each epoch to MLflow itself (``_Epochs``); Lightning's own
    logger and progress bar would cost more per step than a small MLP's step.
    """
    return pl.Trainer(
        max_epochs=epochs,
        accelerator=device.accelerator,
        devices=1,
        precision=device.precision,  # type: ignore[arg-type]
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # _BestEpoch keeps the best epoch instead
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def fit_trial(
    trial: optuna.Trial,
    hyper: Hyperparams,
    spec: ModelSpec,
    *,
    data: SplitDataModule,
    task: str,
    metric: str,
    epochs: int,
    patience: int,
    seed: int,
    trial_dir: Path,
    device: Device,
    log_epoch: LogEpoch | None = None,
    target: tuple[float, float] | None = None,
) -> TrialResult:
    """Train one trial's model; keep its best epoch as a Lightning checkpoint; return the value."""
    from optuna_integration import PyTorchLightningPruningCallback

    if device.threads:
        torch.set_num_threads(device.threads)
    pl.seed_everything(seed + trial.number, verbose=False)
    data.batch_size, data.seed = hyper.batch_size, seed + trial.number
    module = TrialModule(build_network(spec, task, target), hyper, task)
    mode = "max" if search.direction(metric) == "maximize" else "min"
    folder = trial_dir / f"trial-{trial.number:04d}"
    # A trial interrupted earlier left a partial folder; this trial starts clean.
    shutil.rmtree(folder, ignore_errors=True)
    epochs_seen = _Epochs(log_epoch)
    best = _BestEpoch(folder / "best.ckpt", metric, mode)
    trainer = trainer_for(
        epochs=epochs,
        device=device,
        callbacks=[
            epochs_seen,
            best,
            PyTorchLightningPruningCallback(trial, monitor=metric),
            pl.callbacks.EarlyStopping(monitor=metric, mode=mode, patience=patience),
        ],
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    fit_seconds = time.perf_counter() - started
    losses = epochs_seen.history.get("train/loss", [])
    if epochs_seen.diverged or not losses:
        raise Diverged(
            f"trial {trial.number}: training loss became {losses[-1] if losses else 'undefined'}"
        )
    values = epochs_seen.history[metric]
    rows = len(data.arrays["train"][0])
    return TrialResult(
        value=float(max(values) if mode == "max" else min(values)),
        epochs=len(losses),
        model_path=best.path,
        history=epochs_seen.history,
        fit_seconds=fit_seconds,
        examples_per_s=steady_rate(rows, epochs_seen.seconds),
    )


def load_network(
    checkpoint: Path, spec: ModelSpec, hyper: Hyperparams, task: str, target: Any
) -> torch.nn.Module:
    """The network of a trial's best epoch, from its checkpoint."""
    module = TrialModule(build_network(spec, task, target), hyper, task)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    return module.network.eval()
