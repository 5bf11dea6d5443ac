"""The TFX Trainer's ``run_fn``: an Optuna study of Keras models on the Transform output.

Alone in its folder: TFX packages every module next to a ``module_file`` into
the Trainer's cache key. The code it calls lives in the installed ``components``
package; ``custom_config["code"]`` carries a hash of that code so a change to it
re-runs the Trainer.
"""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

PARENT_RUN_ENV = "BAKEOFF_MLFLOW_PARENT_RUN"


def _read_split(patterns: list[str], tft_output: Any) -> tuple[np.ndarray, np.ndarray]:
    """A split's transformed examples as (inputs, label) arrays, read once."""
    import tensorflow as tf

    from components.train_tensorflow.transform_module.preprocessing import INPUTS, LABEL

    files = [name for pattern in patterns for name in tf.io.gfile.glob(pattern)]
    spec = tft_output.transformed_feature_spec()
    dataset = (
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .batch(8192)
        .map(lambda serialized: tf.io.parse_example(serialized, spec))
    )
    parts = list(dataset.as_numpy_iterator())
    x = np.concatenate([part[INPUTS] for part in parts]).astype(np.float32)
    y = np.concatenate([part[LABEL] for part in parts])
    return x, y


def run_fn(fn_args: Any) -> None:
    """Tune, keep the best trial's model, export it with raw-feature signatures."""
    import mlflow
    import tensorflow_transform as tft

    from components.train_tensorflow.fit import Arrays, fit_trial
    from components.train_tensorflow.model import keras
    from components.train_tensorflow.serving import save_serving_model
    from components.training import features
    from components.training import study as studies
    from components.training.search import TuningParams

    config = fn_args.custom_config
    constants = config["constants"]
    task = constants["task"]
    tuning = TuningParams.from_section(config["tuning"])
    metric = config["metric"]
    _configure_devices(config)

    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    test_files = [pattern.replace("Split-train", "Split-test") for pattern in fn_args.train_files]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        _read_split(files, tft_output)
        for files in (fn_args.train_files, fn_args.eval_files, test_files)
    )
    data = Arrays(x_train, y_train, x_val, y_val, x_test, y_test)
    plan = studies.StudyPlan(
        name=config["study"],
        storage=config["storage"],
        framework="tensorflow",
        metric=metric,
        architecture=config["architecture"],
        input_dim=int(x_train.shape[1]),
        outputs=features.outputs(constants),
        image_shape=tuple(constants["image_shape"]) if constants.get("image_shape") else None,
        trial_dir=Path(config["trial_dir"]),
    )
    fit = partial(
        fit_trial,
        data=data,
        task=task,
        metric=metric,
        epochs=tuning.epochs,
        patience=tuning.patience,
        seed=tuning.seed,
        trial_dir=plan.trial_dir,
        log_epoch=lambda values, epoch: mlflow.log_metrics(values, step=epoch),
        target=features.target_scale(constants),
    )
    parent = os.environ.get(PARENT_RUN_ENV)
    with (
        mlflow.start_run(run_id=parent) if parent else mlflow.start_run(run_name="train tensorflow")
    ):
        outcome = studies.run_study(plan, tuning, fit)
        summary = studies.log_study(outcome, Path(fn_args.model_run_dir) / "optuna")
        model = keras().models.load_model(outcome.model_path)
        started = time.perf_counter()
        test = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        best_history = outcome.best.user_attrs
        summary.update(
            {
                "framework": "tensorflow",
                "metric": metric,
                "best_val": float(outcome.best.values[0]),
                "test": {f"test/{name}": float(value) for name, value in test.items()},
                "parameters": outcome.parameters,
                "training_seconds": outcome.seconds,
                "best_epochs": int(best_history.get("epochs", 0)),
                "best_fit_seconds": float(best_history.get("fit_seconds", 0.0)),
                "train_examples_per_s": float(best_history.get("examples_per_s", 0.0)),
                "train_rows": len(x_train),
                "trials_run": len(outcome.study.trials),
                "test_seconds": time.perf_counter() - started,
            }
        )
        mlflow.log_metrics(
            {**summary["test"], metric: summary["best_val"], "parameters": outcome.parameters}
        )
        # Logged before the Transform layer is attached: MLflow saves in Keras
        # format, which cannot serialise that layer.
        _log_model(model, x_test[:5])
        save_serving_model(
            model, tft_output, constants["label"]["name"], task, Path(fn_args.serving_model_dir)
        )
        # Pushed with the model; the stage reads the metrics file from it.
        (Path(fn_args.serving_model_dir) / "summary.json").write_text(
            json.dumps(summary, indent=2, sort_keys=True, default=str)
        )


def _log_model(model: Any, example: np.ndarray) -> None:
    import mlflow
    import mlflow.tensorflow
    import tensorflow as tf
    from mlflow.models import infer_signature

    from components.train_tensorflow.model import keras

    signature = infer_signature(example, model.predict(example, verbose=0))
    # Explicit requirements: inferring them loads the model again in a
    # subprocess, which took 12.7 s of a 0.2 s log.
    requirements = [f"tensorflow=={tf.__version__}", f"tf-keras=={keras().__version__}"]
    mlflow.tensorflow.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=requirements,
    )


def _configure_devices(config: dict[str, Any]) -> None:
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if config.get("mixed_precision"):
        from components.train_tensorflow.model import keras

        keras().mixed_precision.set_global_policy("mixed_float16")
