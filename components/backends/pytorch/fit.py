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
    devices: int = 1  # DDP: processes (CPU) or GPUs per host (``train_pytorch.devices``)
    num_nodes: int = 1  # DDP: hosts

    @property
    def distributed(self) -> bool:
        """Several processes train each trial (Lightning's DDP strategy)."""
        return self.devices * self.num_nodes > 1

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


class _SharedPruning(pl.Callback):
    """DDP's pruning: rank 0 reports each epoch and decides; every rank stops at that epoch.

    The trial is Optuna's ``TorchDistributedTrial``, whose ``report`` and
    ``should_prune`` are collectives that carry rank 0's decision to all.
    """

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        self.trial.report(float(value), step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned_at = trainer.current_epoch
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
    A distributed device trains with Lightning's DDP strategy on the process
    group the stage joined (``components.backends.pytorch.ddp``); the data
    module shards the training batches itself, so Lightning's sampler stays out.
    """
    distributed: dict[str, Any] = {}
    if device.distributed:
        from lightning.pytorch.strategies import DDPStrategy

        distributed = {
            "strategy": DDPStrategy(
                process_group_backend="nccl" if device.accelerator == "gpu" else "gloo"
            ),
            "num_nodes": device.num_nodes,
            "use_distributed_sampler": False,
        }
    return pl.Trainer(
        max_epochs=epochs,
        accelerator=device.accelerator,
        devices=device.devices,
        precision=device.precision,  # type: ignore[arg-type]
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # _BestEpoch keeps the best epoch instead
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **distributed,
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
    """Train one trial's model; keep its best epoch as a Lightning checkpoint; return the value.

    On a distributed device every rank calls this with the same ``trial``
    (Optuna's ``TorchDistributedTrial``); only rank 0 writes the checkpoint.
    """
    from optuna_integration import PyTorchLightningPruningCallback

    if device.threads:
        torch.set_num_threads(device.threads)
    seed = settings.seed + trial.number
    pl.seed_everything(seed, verbose=False)
    data.batch_size, data.seed = hyper.batch_size, seed
    if device.distributed:
        import torch.distributed as dist

        data.share = (dist.get_rank(), dist.get_world_size())
    module = TrialModule(
        build_network(spec, settings.task, settings.target),
        hyper,
        settings.task,
        compiled=device.compiled,
    )
    maximise = search.direction(settings.metric) == "maximize"
    folder = settings.trial_dir / f"trial-{trial.number:04d}"
    if data.share[0] == 0:
        # A trial interrupted earlier left a partial folder; this trial starts clean.
        shutil.rmtree(folder, ignore_errors=True)
    log = settings.epoch_log(trial.number)
    best = _BestEpoch(folder / "best.ckpt", settings.metric, "max" if maximise else "min")
    pruning: pl.Callback = (
        _SharedPruning(trial, settings.metric)
        if device.distributed
        else PyTorchLightningPruningCallback(trial, monitor=settings.metric)
    )
    trainer = trainer_for(
        epochs=settings.epochs,
        device=device,
        callbacks=[
            _Epochs(log),
            best,
            pruning,
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
    if isinstance(pruning, _SharedPruning) and pruning.pruned_at is not None:
        raise optuna.TrialPruned(f"Trial was pruned at epoch {pruning.pruned_at}.")
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
