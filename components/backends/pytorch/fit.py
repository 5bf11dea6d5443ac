"""One Optuna trial of the Lightning model: pruning, early stopping, a checkpoint of the best epoch."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import torch

from components.backends.base import FitSettings
from components.backends.pytorch.data import SplitDataModule
from components.backends.pytorch.model import TrialModule, build_network
from components.training import search
from components.training.epochs import EpochLog
from components.training.search import Hyperparams
from components.training.spec import ModelSpec
from components.training.study import TrialResult, steady_rate


@dataclass(frozen=True)
class Device:
    """Where and how trials train: Lightning's accelerator and precision."""

    accelerator: str = "cpu"
    precision: str = "32-true"
    threads: int = 0  # torch's intra-op CPU threads; 0: torch decides
    compiled: bool = False  # torch.compile the network's forward

    @classmethod
    def detect(cls, mixed_precision: bool, threads: int = 0, compiled: bool = False) -> Device:
        """The first visible GPU if there is one (mixed precision if asked), else the CPU."""
        if torch.cuda.is_available():
            return cls("gpu", "16-mixed" if mixed_precision else "32-true", threads, compiled)
        return cls(threads=threads, compiled=compiled)


class _Epochs(pl.Callback):
    """Feeds each epoch's ``split/metric`` values and wall time to the shared :class:`EpochLog`."""

    def __init__(self, log: EpochLog) -> None:
        self.epochs = log

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.begin()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning validates before this hook, so the epoch's time includes
        # validation, as the Keras branch's does.
        named = {name: float(value) for name, value in trainer.callback_metrics.items()}
        if self.epochs.end(named, trainer.current_epoch):
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
    settings: FitSettings,
    device: Device,
) -> TrialResult:
    """Train one trial's model; keep its best epoch as a Lightning checkpoint; return the value."""
    from optuna_integration import PyTorchLightningPruningCallback

    if device.threads:
        torch.set_num_threads(device.threads)
    seed = settings.seed + trial.number
    pl.seed_everything(seed, verbose=False)
    data.batch_size, data.seed = hyper.batch_size, seed
    module = TrialModule(
        build_network(spec, settings.task, settings.target),
        hyper,
        settings.task,
        compiled=device.compiled,
    )
    maximise = search.direction(settings.metric) == "maximize"
    folder = settings.trial_dir / f"trial-{trial.number:04d}"
    # A trial interrupted earlier left a partial folder; this trial starts clean.
    shutil.rmtree(folder, ignore_errors=True)
    log = EpochLog(settings.log_to_mlflow)
    best = _BestEpoch(folder / "best.ckpt", settings.metric, "max" if maximise else "min")
    trainer = trainer_for(
        epochs=settings.epochs,
        device=device,
        callbacks=[
            _Epochs(log),
            best,
            PyTorchLightningPruningCallback(trial, monitor=settings.metric),
            pl.callbacks.EarlyStopping(
                monitor=settings.metric,
                mode="max" if maximise else "min",
                patience=settings.patience,
            ),
        ],
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    fit_seconds = time.perf_counter() - started
    losses = log.check(trial.number)
    return TrialResult(
        value=log.best(settings.metric, maximise),
        epochs=len(losses),
        model_path=best.path,
        history=log.history,
        fit_seconds=fit_seconds,
        epoch_seconds=list(log.seconds),
        examples_per_s=steady_rate(len(data.arrays["train"][0]), log.seconds),
    )


def load_network(
    checkpoint: Path, spec: ModelSpec, hyper: Hyperparams, task: str, target: Any
) -> torch.nn.Module:
    """The network of a trial's best epoch, from its checkpoint."""
    module = TrialModule(build_network(spec, task, target), hyper, task)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    return module.network.eval()
