"""Keras under MultiWorkerMirroredStrategy: two CPU workers take the step one process takes.

Two worker processes on localhost, each with its own ``TF_CONFIG``, run one
training step of the project's own compiled MLP (``compile_model``: SGD,
dropout 0) on the same 64 rows, the global batch; Keras gives each worker 32
of them and all-reduces the gradients. One process under the default strategy
takes the same step on the same 64 rows from the same weights: every weight
must agree within 1e-5. The step is plain SGD, so a worker that averaged only
its own half would be off by far more (checked against a step on 32 rows).
Then both workers run the stage's own fit (``fit_once``) for one epoch: only
the chief keeps a model file. Last, the whole TensorFlow stage with
``train_tensorflow.devices: 2``: the Trainer's study on two workers is recorded
once, and a worker killed mid-study fails the stage with one line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from components.backends.tensorflow.distributed import local_cluster, run_local_workers
from components.errors import BakeoffError
from tests.conftest import ROOT, set_params, stage_env
from tests.helpers.processes import (
    assert_recorded_once,
    stage_on_two_processes,
    stage_with_a_worker_killed,
)

pytestmark = pytest.mark.slow

#: One training step of compile_model's MLP on the 64 rows; the weights before and after it
#: to OUT (``{index}``: the worker's); one process also steps on the first 32 rows alone.
#: ``python worker.py OUT [FAILING_WORKER]``.
WORKER = """
import json, os, sys
out = sys.argv[1]
index = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0)
from components.backends.tensorflow.distributed import strategy_from_environment
strategy = strategy_from_environment()  # before any other TensorFlow op
if sys.argv[2:] == [str(index)]:
    raise SystemExit("simulated failure before the step")
import numpy as np
import tensorflow as tf
from components.backends.tensorflow.fit import compile_model
from components.training.search import Hyperparams, model_spec

hyper = Hyperparams(0.5, 64, 2, 16, 0.0, 0.0, "sgd", "relu")
spec = model_spec(hyper, architecture="mlp", input_dim=8, outputs=3, image_shape=None)
data = np.random.default_rng(0)
x = data.normal(size=(64, 8)).astype("float32")
y = data.integers(0, 3, 64)
model = compile_model(spec, hyper, "classification")
start = np.random.default_rng(1)
weights = [start.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()]


def step(rows):
    model = compile_model(spec, hyper, "classification")
    model.set_weights(weights)
    model.fit(x[:rows], y[:rows], batch_size=64, epochs=1, shuffle=False, verbose=0)
    return np.concatenate([w.ravel() for w in model.get_weights()])


multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
steps = [step(64)] if multi else [step(64), step(32)]
np.save(out.format(index=index), np.stack([np.concatenate([w.ravel() for w in weights]), *steps]))
print("multi-worker" if multi else "one process", strategy.num_replicas_in_sync)
if not multi:
    raise SystemExit(0)

# The stage's own fit on the workers: only the chief keeps the trial's model file.
from pathlib import Path
from components.backends import get
from components.backends.base import FitSettings, SplitArrays
from components.training.fixed import fit_once
trials = Path(out.format(index=index) + ".trials")
settings = FitSettings("classification", "val/accuracy", 1, 1, 0, trials, None, log_to_mlflow=False)
data = SplitArrays(x, y, x, y, x[:0], y[:0])
fit_once(get("tensorflow"), spec, hyper, data, settings)
"""


def environment() -> dict[str, str]:
    """One CPU thread per process (two cores, three processes), the repository importable."""
    env = {name: value for name, value in stage_env().items() if name != "TF_CONFIG"}
    return env | {
        "PYTHONPATH": str(ROOT),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def test_two_workers_take_the_step_one_process_takes(script: Path, tmp_path: Path) -> None:
    env = environment()
    single = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "single.npy")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    outputs = run_local_workers(
        [sys.executable, str(script), str(tmp_path / "worker-{index}.npy")],
        local_cluster(2),
        timeout=120,
        env=env,
    )
    out, err = single.communicate(timeout=120)
    assert single.returncode == 0, err[-2000:]

    assert out.splitlines()[-1] == "one process 1"
    assert [out.splitlines()[-1] for out in outputs] == ["multi-worker 2"] * 2
    start, reference, half = np.load(tmp_path / "single.npy")
    workers = [np.load(tmp_path / f"worker-{i}.npy") for i in (0, 1)]
    for worker in workers:
        np.testing.assert_array_equal(worker[0], start)  # the same starting weights
        np.testing.assert_allclose(worker[1], reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(workers[0][1], workers[1][1], rtol=0, atol=1e-6)
    assert np.abs(reference - start).max() > 1e-2  # the step moved the weights
    assert np.abs(half - reference).max() > 1e-3  # a half batch's step is told apart
    kept = {path.name: sorted(p.name for p in path.iterdir()) for path in tmp_path.glob("*.trials")}
    assert kept == {"worker-0.npy.trials": ["trial-0000.keras"]}  # the chief's alone


def test_a_worker_that_fails_stops_the_other_with_one_line(script: Path, tmp_path: Path) -> None:
    """Worker 1 exits after joining the cluster; worker 0 waits for it; the launcher stops it."""
    started = time.monotonic()
    with pytest.raises(BakeoffError) as raised:
        run_local_workers(
            [sys.executable, str(script), str(tmp_path / "worker-{index}.npy"), "1"],
            local_cluster(2),
            timeout=60,
            env=environment(),
        )
    assert str(raised.value) == (
        "worker 1 of 2 exited with status 1: simulated failure before the step"
    )
    assert time.monotonic() - started < 30
    assert not (tmp_path / "worker-0.npy").exists()


def test_a_strategy_after_other_tensorflow_ops_fails_with_one_line(tmp_path: Path) -> None:
    """Collective ops are set up at a process's start: later, the worker refuses at once."""
    code = (
        "import tensorflow as tf; tf.constant(1.0) + 1\n"
        "from components.backends.tensorflow.distributed import strategy_from_environment\n"
        "from components.errors import BakeoffError\n"
        "try:\n"
        "    strategy_from_environment()\n"
        "except BakeoffError as error:\n"
        "    raise SystemExit(str(error))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment() | {"TF_CONFIG": local_cluster(2)[0]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("TF_CONFIG: 2 workers, but this process ran TensorFlow before")
    assert last.endswith("call strategy_from_environment first")


@pytest.fixture(scope="module")
def two_worker_stage(tmp_path_factory):
    """``train@tensorflow`` with ``devices: 2``: the TFX pipeline, its Trainer on two workers."""
    return stage_on_two_processes(tmp_path_factory.mktemp("tf-workers"), "tensorflow")


def test_a_study_on_two_workers_is_recorded_once(two_worker_stage) -> None:
    repo, result = two_worker_stage
    assert_recorded_once(repo, "tensorflow", result.stdout)


def test_a_killed_worker_fails_the_stage_with_one_line(two_worker_stage) -> None:
    """Worker 1 killed mid-study: the launcher stops worker 0, the stage ends with one line."""
    repo, _ = two_worker_stage
    set_params(repo, train={"trials": 4, "epochs": 200, "patience": 200})  # the Trainer reruns
    before = (repo / "metrics/tensorflow.json").read_text()
    marker = b'"task": {"type": "worker", "index": 1}'
    stage = stage_with_a_worker_killed(repo, "tensorflow", marker, stage_env())
    assert stage.returncode == 1
    assert stage.stderr.strip().splitlines()[-1] == (
        "bakeoff train: error: train@tensorflow: worker 1 of 2 was killed by signal 9; "
        "the other workers were stopped"
    )
    assert (repo / "metrics/tensorflow.json").read_text() == before  # the last good outputs
