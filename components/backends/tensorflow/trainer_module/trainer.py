"""The TFX Trainer's ``run_fn``: an adapter that hands TFX's inputs to the training driver.

Alone in its folder: TFX packages every module next to a ``module_file`` into
the Trainer's cache key. The code it calls lives in the installed ``components``
package; the job in ``custom_config`` carries a hash of that code, so a change
to it re-runs the Trainer. Nothing per run is in ``custom_config`` (it is part
of the cache key): the driver opens the stage's MLflow run itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: The training metrics, in the Trainer's ModelRun artifact (the stage reads them from there).
METRICS_FILE = "training.json"


def _read_split(patterns: list[str], tft_output: Any) -> tuple[np.ndarray, np.ndarray]:
    """A split's transformed examples as (inputs, label) arrays, read once."""
    import tensorflow as tf

    from components.backends.tensorflow.transform_module.preprocessing import INPUTS, LABEL

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
    """Run the training driver on the Transform output; the model goes to TFX's serving dir."""
    import tensorflow_transform as tft

    from components import contracts
    from components.backends.base import SplitArrays
    from components.backends.tensorflow.backend import TensorflowBackend
    from components.training import driver

    job = driver.StageJob.from_config(fn_args.custom_config["job"])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    test_files = [pattern.replace("Split-train", "Split-test") for pattern in fn_args.train_files]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        _read_split(files, tft_output)
        for files in (fn_args.train_files, fn_args.eval_files, test_files)
    )
    data = SplitArrays(x_train, y_train, x_val, y_val, x_test, y_test)
    # TFX writes the model always; its Evaluator and Pusher decide what ships.
    trained = driver.train(
        job, TensorflowBackend(tft_output), data, Path(fn_args.serving_model_dir), save="always"
    )
    run_dir = Path(fn_args.model_run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    contracts.write_json(run_dir / METRICS_FILE, trained.metrics)
