"""One Optuna trial of the Keras model, on preprocessed arrays.

Called from the TFX Trainer's ``run_fn`` with the Transform output loaded once
into memory; the benchmark calls it the same way outside TFX.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from components.train_tensorflow.model import build_model, keras
from components.training import search
from components.training.search import Hyperparams
from components.training.spec import ModelSpec
from components.training.study import Diverged, TrialResult, steady_rate


@dataclass(frozen=True)
class Arrays:
    """Preprocessed inputs and targets of the three splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def keras_metric(metric: str) -> str:
    """The name Keras logs a ``split/metric`` under (``val/accuracy`` -> ``val_accuracy``)."""
    split, name = metric.split("/", 1)
    return name if split == "train" else f"{split}_{name}"


def compile_model(
    spec: ModelSpec, hyper: Hyperparams, task: str, target: tuple[float, float] | None = None
) -> Any:
    """Build and compile the model of one trial.

    Weight decay means the same in both frameworks: ``adamw`` decays decoupled
    (Keras AdamW = torch AdamW); ``adam`` and ``sgd`` add ``weight_decay * w`` to
    the gradient as torch does, which in Keras is an L2 penalty of ``wd / 2``.
    """
    k = keras()
    coupled = hyper.weight_decay if hyper.optimizer in ("adam", "sgd") else 0.0
    model = build_model(spec, task, l2=coupled / 2, target=target)
    if hyper.optimizer == "adamw":
        optimizer = k.optimizers.AdamW(
            learning_rate=hyper.learning_rate, weight_decay=hyper.weight_decay
        )
    elif hyper.optimizer == "adam":
        optimizer = k.optimizers.Adam(learning_rate=hyper.learning_rate)
    else:
        optimizer = k.optimizers.SGD(learning_rate=hyper.learning_rate, momentum=0.9)
    if task == "classification":
        loss, metrics = (
            "sparse_categorical_crossentropy",
            [k.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    else:
        loss, metrics = "mse", [k.metrics.RootMeanSquaredError(name="rmse")]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    # Profiling: the first fit in a process spent ~10 s in AutoGraph converting
    # tf_keras' train_step and test_step, which have no tensor-dependent Python
    # control flow to convert. tf.function still traces them.
    import tensorflow as tf

    model.train_step = tf.autograph.experimental.do_not_convert(model.train_step)
    model.test_step = tf.autograph.experimental.do_not_convert(model.test_step)
    return model


def fit_trial(
    trial: optuna.Trial,
    hyper: Hyperparams,
    spec: ModelSpec,
    *,
    data: Arrays,
    task: str,
    metric: str,
    epochs: int,
    patience: int,
    seed: int,
    trial_dir: Path,
    log_epoch: Any = None,
    target: tuple[float, float] | None = None,
) -> TrialResult:
    """Train one trial's model with pruning and early stopping; save it; return its best value."""
    from optuna_integration.tfkeras import TFKerasPruningCallback

    k = keras()
    k.utils.set_random_seed(seed + trial.number)
    model = compile_model(spec, hyper, task, target)
    monitor = keras_metric(metric)
    mode = "max" if search.direction(metric) == "maximize" else "min"
    history: dict[str, list[float]] = {}
    epoch_seconds: list[float] = []

    class _Epochs(k.callbacks.Callback):  # type: ignore[name-defined]
        """Records ``split/metric`` values per epoch and stops on a NaN loss."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            epoch_seconds.append(time.perf_counter() - self.began)
            named = {_tracked(name): float(value) for name, value in (logs or {}).items()}
            for name, value in named.items():
                history.setdefault(name, []).append(value)
            if log_epoch is not None:
                log_epoch(named, epoch)
            if not math.isfinite(named.get("train/loss", 0.0)):
                self.model.stop_training = True

    started = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=hyper.batch_size,
        epochs=epochs,
        validation_data=(data.x_val, data.y_val),
        verbose=0,
        callbacks=[
            _Epochs(),
            TFKerasPruningCallback(trial, monitor),
            k.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=patience, restore_best_weights=True
            ),
        ],
    )
    fit_seconds = time.perf_counter() - started
    losses = history.get("train/loss", [])
    if not losses or not all(math.isfinite(value) for value in losses):
        raise Diverged(
            f"trial {trial.number}: training loss became {losses[-1] if losses else 'undefined'}"
        )
    values = history[metric]
    best = max(values) if mode == "max" else min(values)
    trial_dir.mkdir(parents=True, exist_ok=True)
    path = trial_dir / f"trial-{trial.number:04d}.keras"
    model.save(path)
    return TrialResult(
        value=float(best),
        epochs=len(losses),
        model_path=path,
        history=history,
        fit_seconds=fit_seconds,
        examples_per_s=steady_rate(len(data.x_train), epoch_seconds),
    )


def _tracked(keras_name: str) -> str:
    # Keras logs "loss", "accuracy", "val_loss", "val_accuracy"; bakeoff names them split/metric.
    if keras_name.startswith("val_"):
        return f"val/{keras_name[4:]}"
    return f"train/{keras_name}"
