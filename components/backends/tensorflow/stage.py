"""The TensorFlow stage's training: in the TFX Trainer's process, or on several worker processes.

``run_fn`` hands over what TFX gave it (:class:`TrainerInputs`). With
``train_tensorflow.devices`` at 1 the driver runs right there. Above 1 the
Trainer's process cannot take part: ``MultiWorkerMirroredStrategy`` must be
set up before TensorFlow runs anything in a process, and the components
before the Trainer ran TensorFlow in this one. So it starts ``devices`` fresh
worker processes on this host (``python -m components.backends.tensorflow.stage``),
each with its own ``TF_CONFIG``, and waits: worker 0, the chief, runs the
driver (the study, MLflow, the model, the metrics file); the others follow its
trials (``TensorflowBackend.follow``). A failed worker stops the others and
fails the stage with one line.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

#: The training metrics, in the Trainer's ModelRun artifact (the stage reads them from there).
METRICS_FILE = "training.json"


@dataclass(frozen=True)
class TrainerInputs:
    """What ``run_fn`` receives from TFX that the training needs."""

    job: dict[str, Any]  # the StageJob's config (custom_config["job"])
    transform_output: str
    train_files: list[str]
    eval_files: list[str]
    serving_model_dir: str
    model_run_dir: str

    @classmethod
    def from_fn_args(cls, fn_args: Any) -> TrainerInputs:
        """From the TFX Trainer's ``FnArgs``."""
        return cls(
            job=fn_args.custom_config["job"],
            transform_output=fn_args.transform_output,
            train_files=list(fn_args.train_files),
            eval_files=list(fn_args.eval_files),
            serving_model_dir=fn_args.serving_model_dir,
            model_run_dir=fn_args.model_run_dir,
        )


def devices(own: dict[str, Any]) -> int:
    """``train_tensorflow.devices``: worker processes training each trial on this host."""
    from components.params import whole

    return whole(own.get("devices", 1), "train_tensorflow.devices", 1)


def run(inputs: TrainerInputs) -> None:
    """``run_fn``'s body: train here, or start the workers that do and wait for them."""
    from components.backends.tensorflow import distributed

    if distributed.cluster(os.environ.get(distributed.TF_CONFIG)).workers > 1:
        join(inputs)  # a replica a training service started with its TF_CONFIG
        return
    count = devices(inputs.job["own"])
    if count == 1:
        train(inputs)
        return
    from components.backends.base import available_cpus
    from components.errors import BakeoffError
    from components.training.driver import StageJob

    runtime = StageJob.from_config(inputs.job).runtime
    threads = max(1, (runtime.threads or available_cpus()) // count)
    with tempfile.TemporaryDirectory(prefix="bakeoff-tf-workers-") as folder:
        path = Path(folder) / "inputs.json"
        path.write_text(json.dumps(asdict(inputs)))
        try:
            distributed.run_local_workers(
                [sys.executable, "-m", "components.backends.tensorflow.stage", str(path)],
                distributed.local_cluster(count),
                timeout=math.inf,
                env={**os.environ, "TF_NUM_INTRAOP_THREADS": str(threads)},
                show_chief=True,  # the chief's lines (the study's) as they come
            )
        except BakeoffError as failure:
            raise BakeoffError(
                f"train@tensorflow: {failure}; the other workers were stopped"
            ) from None


def train(inputs: TrainerInputs, runtime: Any = None) -> None:
    """The driver on the Transform output, in this process (alone, or as one worker of several).

    ``runtime``: the settings a worker configured itself with, instead of the params'.
    """
    import tensorflow_transform as tft

    from components import contracts
    from components.backends.base import FOLLOWER, SplitArrays
    from components.backends.tensorflow.backend import TensorflowBackend
    from components.training import driver

    job = driver.StageJob.from_config(inputs.job)
    if runtime is not None:
        job = replace(job, runtime=runtime)
    tft_output = tft.TFTransformOutput(inputs.transform_output)
    test_files = [pattern.replace("Split-train", "Split-test") for pattern in inputs.train_files]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        _read_split(files, tft_output)
        for files in (inputs.train_files, inputs.eval_files, test_files)
    )
    data = SplitArrays(x_train, y_train, x_val, y_val, x_test, y_test)
    backend = TensorflowBackend(tft_output)
    with backend.processes(job.own_raw) as part:
        if part == FOLLOWER:
            backend.configure(job.runtime)
            settings = driver.fit_settings(job).follower()
            backend.follow(data, settings, job.plan.model_spec)
            return
        # TFX writes the model always; its Evaluator and Pusher decide what ships.
        trained = driver.train(job, backend, data, Path(inputs.serving_model_dir), save="always")
    run_dir = Path(inputs.model_run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    contracts.write_json(run_dir / METRICS_FILE, trained.metrics)


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


def main(path: str) -> None:
    """A worker process the stage started (``run``): the inputs from ``path``."""
    join(TrainerInputs(**json.loads(Path(path).read_text())))


def join(inputs: TrainerInputs) -> None:
    """One worker of the cluster ``TF_CONFIG`` names: its thread pools, then its strategy,
    before any other TensorFlow op; then the training."""
    from components.backends.tensorflow.backend import TensorflowBackend
    from components.backends.tensorflow.distributed import strategy_from_environment
    from components.training.driver import StageJob

    job = StageJob.from_config(inputs.job)
    # The launcher's share of the cores for this worker (TensorFlow fixes its pools once).
    threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
    runtime = replace(job.runtime, threads=threads) if threads else job.runtime
    TensorflowBackend().configure(runtime)
    strategy_from_environment()
    train(inputs, runtime)


if __name__ == "__main__":
    main(sys.argv[1])
