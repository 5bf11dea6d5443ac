"""One Optuna trial of the Keras model, on preprocessed arrays.

Called through the backend by the training driver, inside the TFX Trainer's
``run_fn``, with the Transform output loaded once into memory. The model is
built under the process's ``tf.distribute`` strategy (``distributed``): with
``TF_CONFIG`` naming several workers, every worker runs this same fit on the
same arrays, ``batch_size`` stays the global batch, and Keras hands each worker
its share of every batch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from components.backends.base import FitSettings, SplitArrays
from components.backends.tensorflow.distributed import strategy_from_environment
from components.backends.tensorflow.model import build_model, keras
from components.training import search
from components.training.search import Hyperparams
from components.training.spec import ModelSpec
from components.training.study import TrialResult, steady_rate


def keras_metric(metric: str) -> str:
    """The name Keras logs a ``split/metric`` under (``val/accuracy`` -> ``val_accuracy``)."""
    split, name = metric.split("/", 1)
    return name if split == "train" else f"{split}_{name}"


def compile_model(
    spec: ModelSpec,
    hyper: Hyperparams,
    task: str,
    target: tuple[float, float] | None = None,
    *,
    jit_compile: bool = False,
) -> Any:
    """Build and compile the model of one trial (``jit_compile``: XLA-compiled steps).

    Built under this process's strategy (:func:`strategy_from_environment`), so
    that ``fit`` trains it on every replica; with the default strategy, as before.

    Weight decay means the same in both frameworks: ``adamw`` decays decoupled
    (Keras AdamW = torch AdamW); ``adam`` and ``sgd`` add ``weight_decay * w`` to
    the gradient as torch does, which in Keras is an L2 penalty of ``wd / 2``.
    """
    with strategy_from_environment().scope():
        return _compiled(spec, hyper, task, target, jit_compile)


def _compiled(
    spec: ModelSpec,
    hyper: Hyperparams,
    task: str,
    target: tuple[float, float] | None,
    jit_compile: bool,
) -> Any:
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
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
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
    data: SplitArrays,
    settings: FitSettings,
) -> TrialResult:
    """Train one trial's model with pruning and early stopping; save it; return its best value.

    Under several workers, only the chief logs to MLflow and keeps the model
    file; the others save theirs (saving takes part in collectives) to a
    throwaway folder, as Keras' multi-worker guide advises.
    """
    from optuna_integration.tfkeras import TFKerasPruningCallback

    chief = strategy_from_environment().extended.should_checkpoint  # before any other op
    k = keras()
    k.utils.set_random_seed(settings.seed + trial.number)
    model = compile_model(
        spec, hyper, settings.task, settings.target, jit_compile=settings.runtime.compile
    )
    monitor = keras_metric(settings.metric)
    maximise = search.direction(settings.metric) == "maximize"
    log = settings.epoch_log(trial.number, lead=chief)

    class _Epochs(k.callbacks.Callback):  # type: ignore[name-defined]
        """Feeds each epoch's ``split/metric`` values to the shared :class:`EpochLog`."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            log.begin()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            named = {_tracked(name): float(value) for name, value in (logs or {}).items()}
            if log.end(named, epoch):
                self.model.stop_training = True

    started = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=hyper.batch_size,
        epochs=settings.epochs,
        validation_data=(data.x_val, data.y_val),
        verbose=0,
        callbacks=[
            _Epochs(),
            TFKerasPruningCallback(trial, monitor),
            k.callbacks.EarlyStopping(
                monitor=monitor,
                mode="max" if maximise else "min",
                patience=settings.patience,
                restore_best_weights=True,
            ),
        ],
    )
    fit_seconds = time.perf_counter() - started
    losses = log.check(trial.number)
    path = settings.trial_dir / f"trial-{trial.number:04d}.keras"
    if chief:
        settings.trial_dir.mkdir(parents=True, exist_ok=True)
        model.save(path)
    else:
        with tempfile.TemporaryDirectory(prefix="bakeoff-worker-") as throwaway:
            model.save(Path(throwaway) / path.name)
    return TrialResult(
        value=log.best(settings.metric, maximise),
        epochs=len(losses),
        model_path=path,
        history=log.history,
        fit_seconds=fit_seconds,
        epoch_seconds=list(log.seconds),
        examples_per_s=steady_rate(len(data.x_train), log.seconds),
    )


def _tracked(keras_name: str) -> str:
    # Keras logs "loss", "accuracy", "val_loss", "val_accuracy"; bakeoff names them split/metric.
    if keras_name.startswith("val_"):
        return f"val/{keras_name[4:]}"
    return f"train/{keras_name}"
