"""The ``tf.distribute`` strategy Keras trains under, chosen from the environment.

``TF_CONFIG`` naming a cluster of more than one worker: ``MultiWorkerMirroredStrategy``
(every worker runs the same program with its own ``TF_CONFIG``; gradients are
all-reduced over TensorFlow's collective ops, RING on CPUs). More than one GPU
in this process: ``MirroredStrategy``. Otherwise the default strategy, under
which Keras trains exactly as without one. Only the chief writes what outlives
the run (models, MLflow); the others write to throwaway folders.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import BakeoffError

TF_CONFIG = "TF_CONFIG"
#: The task types MultiWorkerMirroredStrategy trains with (no parameter servers, no evaluator).
TASK_TYPES = ("chief", "worker")

_strategy: Any = None  # created once per process: TensorFlow allows one collective setup


@dataclass(frozen=True)
class Cluster:
    """What ``TF_CONFIG`` says about the training cluster and this process's place in it."""

    jobs: dict[str, list[str]] = field(default_factory=dict)  # task type -> "host:port" addresses
    task_type: str = "worker"
    task_index: int = 0

    @property
    def workers(self) -> int:
        """The processes that train (a chief counts as one)."""
        return max(1, sum(len(addresses) for addresses in self.jobs.values()))

    @property
    def index(self) -> int:
        """This process among them: the chief first, then the workers (TensorFlow's order)."""
        offset = len(self.jobs.get("chief", [])) if self.task_type == "worker" else 0
        return offset + self.task_index

    @property
    def chief(self) -> bool:
        """Whether this process writes what outlives the run."""
        return self.index == 0


def cluster(text: str | None) -> Cluster:
    """The cluster a ``TF_CONFIG`` value describes; no value or no cluster: one process."""
    if not text or not text.strip():
        return Cluster()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise BakeoffError(f"{TF_CONFIG}: not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise BakeoffError(f"{TF_CONFIG}: expected a JSON object; found {type(raw).__name__}")
    jobs = raw.get("cluster") or {}
    if not isinstance(jobs, dict):
        raise BakeoffError(f"{TF_CONFIG}: cluster: expected an object; found {jobs!r}")
    if not jobs:
        return Cluster()
    for name, addresses in jobs.items():
        if name not in TASK_TYPES:
            raise BakeoffError(
                f"{TF_CONFIG}: cluster.{name}: bakeoff trains with MultiWorkerMirroredStrategy, "
                f"whose tasks are {list(TASK_TYPES)}"
            )
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and ":" in a for a in addresses
        ):
            raise BakeoffError(
                f"{TF_CONFIG}: cluster.{name}: expected a list of 'host:port'; found {addresses!r}"
            )
    if len(jobs.get("chief", [])) > 1:
        raise BakeoffError(f"{TF_CONFIG}: cluster.chief: at most one; found {jobs['chief']!r}")
    task = raw.get("task")
    if not isinstance(task, dict):
        raise BakeoffError(
            f'{TF_CONFIG}: task: expected {{"type": "worker", "index": N}}; found {task!r}'
        )
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in jobs:
        raise BakeoffError(f"{TF_CONFIG}: task.type: expected one of {list(jobs)}; found {kind!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise BakeoffError(
            f"{TF_CONFIG}: task.index: expected 0 to {len(jobs[kind]) - 1}; found {index!r}"
        )
    return Cluster({name: list(a) for name, a in jobs.items()}, str(kind), index)


def strategy_from_environment(environ: Mapping[str, str] | None = None) -> Any:
    """This process's strategy, created on the first call (before any other TensorFlow op).

    Later calls return the same one whatever ``environ`` says: a process sets up
    its collective ops once.
    """
    global _strategy
    if _strategy is None:
        _strategy = _create(cluster((os.environ if environ is None else environ).get(TF_CONFIG)))
    return _strategy


def _create(layout: Cluster) -> Any:
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    if layout.workers > 1:
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(layout.jobs),
            task_type=layout.task_type,
            task_id=layout.task_index,
            num_accelerators={"GPU": gpus} if gpus else None,
            rpc_layer="grpc",
        )
        implementation = tf.distribute.experimental.CommunicationImplementation
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementation.AUTO if gpus else implementation.RING
        )
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver, communication_options=options
            )
        except RuntimeError as error:  # "Collective ops must be configured at program startup"
            raise BakeoffError(
                f"{TF_CONFIG}: {layout.workers} workers, but this process ran TensorFlow before "
                f"creating the strategy ({error}); call strategy_from_environment first"
            ) from None
    if gpus > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def local_cluster(workers: int) -> list[str]:
    """One ``TF_CONFIG`` per worker of a cluster on this machine, on ports free just now."""
    ports = []
    for _ in range(workers):
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            ports.append(probe.getsockname()[1])
    addresses = [f"localhost:{port}" for port in ports]
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
        for i in range(workers)
    ]


def run_local_workers(
    command: Sequence[str],
    configs: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    show_chief: bool = False,
) -> list[str]:
    """Run ``command`` once per ``TF_CONFIG`` and return each worker's standard output.

    A worker that fails stops the others, and so does the ``timeout``: either
    raises one line naming the worker and its last words. ``show_chief``: worker
    0 writes to this process's output as it goes (its output is then not returned). (Left alone, a worker
    whose peer never joined waits for TensorFlow's registration timeout, and one
    whose peer died mid-run fails after the heartbeat timeout, about 10 s.)
    """
    base = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="bakeoff-workers-") as folder:
        logs = [(Path(folder) / f"{i}.out", Path(folder) / f"{i}.err") for i in range(len(configs))]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for index, ((out, err), config) in enumerate(zip(logs, configs, strict=True)):
                shown = show_chief and index == 0
                with out.open("w") as stdout, err.open("w") as stderr:
                    processes.append(
                        subprocess.Popen(
                            list(command),
                            env={**base, TF_CONFIG: config},
                            cwd=cwd,
                            stdout=None if shown else stdout,
                            stderr=None if shown else stderr,
                            stdin=subprocess.DEVNULL,
                        )
                    )
            deadline = time.monotonic() + timeout
            while True:
                codes = [process.poll() for process in processes]
                failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
                if failed:
                    first, code = failed[0], codes[failed[0]]
                    if code is not None and code < 0:  # its last words predate the signal
                        raise BakeoffError(
                            f"worker {first} of {len(codes)} was killed by signal {-code}"
                        )
                    shown = show_chief and first == 0
                    words = "its error is above" if shown else _last_line(logs[first][1])
                    raise BakeoffError(
                        f"worker {first} of {len(codes)} exited with status {code}: {words}"
                    )
                if all(code == 0 for code in codes):
                    return [out.read_text() for out, _ in logs]
                if time.monotonic() > deadline:
                    raise BakeoffError(
                        f"{len(codes)} workers did not finish within {timeout:.0f} s"
                    )
                time.sleep(0.1)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def broadcast(value: Any) -> Any:
    """The chief's ``value`` on every worker, through the strategy's own collective all-reduce.

    The chief contributes its pickled bytes, the others zeros, and a sum
    leaves the chief's bytes everywhere (first their length, then the bytes).
    With one process there is nothing to send.
    """
    import pickle

    import numpy as np
    import tensorflow as tf

    strategy = strategy_from_environment()
    if strategy.num_replicas_in_sync == 1:
        return value
    chief = cluster(os.environ.get(TF_CONFIG)).chief
    payload = np.frombuffer(pickle.dumps(value), np.uint8).astype(np.int32)
    mine = payload if chief else np.zeros(0, np.int32)

    def summed(array: np.ndarray) -> np.ndarray:
        total = strategy.reduce("SUM", strategy.run(lambda: tf.constant(array)), axis=None)
        return np.asarray(total.numpy())

    length = int(summed(np.array([len(mine)], np.int32))[0])
    buffer = np.zeros(length, np.int32)
    buffer[: len(mine)] = mine
    return pickle.loads(summed(buffer).astype(np.uint8).tobytes())


class SharedTrial:
    """The chief's Optuna trial as every worker sees it (what ``TorchDistributedTrial`` is for torch).

    Its number and parameters are the chief's; ``report`` records on the chief
    only; ``should_prune`` is the chief's decision on every worker, so all stop
    at the same epoch. Every worker must make the same calls in the same order.
    """

    def __init__(self, trial: Any) -> None:
        self._trial = trial
        self.number, self.params = broadcast(
            (trial.number, dict(trial.params)) if trial is not None else None
        )

    def report(self, value: float, step: int) -> None:
        """The epoch's value, in the chief's trial."""
        if self._trial is not None:
            self._trial.report(value, step)

    def should_prune(self) -> bool:
        """The chief's pruner's decision, on every worker."""
        return bool(broadcast(self._trial.should_prune() if self._trial is not None else None))
