"""The Keras fit on one process versus two MultiWorkerMirroredStrategy workers on this machine.

The fit is bakeoff's own (``fit_once``: the Keras fit the TFX Trainer runs, its
callbacks, the model built under ``strategy_from_environment``) on synthetic
data: ``--rows`` x ``--features`` standard normal floats, ``--classes`` classes
from a fixed random linear map, 2,000 validation rows, ``--epochs`` epochs at
the global batch ``--batch`` (Adam 1e-3, 2 hidden layers of 128, dropout 0.1,
seed 0). Both modes get the same CPU threads in all: one process uses
``--threads`` intra-op threads; each of the two workers (``TF_CONFIG`` on
localhost ports, gradients all-reduced by RING collectives over gRPC) uses half
of them. Every worker holds the whole data set and Keras gives it its half of
every global batch.

Figure: steady-state training examples/s (train rows over the median epoch
after the first, validation included) of two workers over one process.

    .venv/bin/python benchmarks/distributed_tensorflow.py [--rows 50000] [--features 64]
        [--classes 10] [--epochs 3] [--batch 128] [--threads N] [--rounds 1] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "distributed_tensorflow.json"
RESULT_PREFIX = "DISTRIBUTED_TENSORFLOW_RESULT "  # marks each worker's one JSON line
VAL_ROWS = 2000
MODES = {"one_process": 1, "two_workers": 2}  # processes per mode
METHOD = (
    "steady-state examples/s: train rows / median epoch time over epochs after the first, "
    "validation included; same total CPU threads in both modes; fresh processes per measurement"
)


def child(args: argparse.Namespace) -> None:
    """One process of a measurement: its strategy first, then bakeoff's fit; one JSON line."""
    sys.path.insert(0, str(ROOT))
    from components import backends
    from components.backends.base import FitSettings, RuntimeSettings, SplitArrays
    from components.backends.tensorflow.distributed import TF_CONFIG, cluster

    backend = backends.get("tensorflow")
    runtime = RuntimeSettings(threads=args.threads, inter_op_threads=args.inter_op_threads)
    os.environ.update(backend.environment(runtime))  # as the bakeoff command does
    answer = backend.configure(runtime)

    from components.backends.tensorflow.distributed import strategy_from_environment

    strategy = strategy_from_environment()  # before any other TensorFlow op

    import numpy as np

    from components.training.fixed import fit_once
    from components.training.search import Hyperparams, model_spec

    rng = np.random.default_rng(0)  # every worker draws the same data
    rows = args.rows + VAL_ROWS
    x = rng.standard_normal((rows, args.features), dtype=np.float32)
    y = (x @ rng.standard_normal((args.features, args.classes))).argmax(axis=1)
    data = SplitArrays(x[: args.rows], y[: args.rows], x[args.rows :], y[args.rows :], x[:0], y[:0])
    hyper = Hyperparams(1e-3, args.batch, 2, 128, 0.1, 0.0, "adam", "relu")
    spec = model_spec(
        hyper, architecture="mlp", input_dim=args.features, outputs=args.classes, image_shape=None
    )
    with tempfile.TemporaryDirectory() as folder:
        settings = FitSettings(
            task="classification",
            metric="val/accuracy",
            epochs=args.epochs,
            patience=args.epochs,  # never stops early
            seed=0,
            trial_dir=Path(folder),
            target=None,
            runtime=runtime,
            log_to_mlflow=False,
        )
        result = fit_once(backend, spec, hyper, data, settings)
    layout = cluster(os.environ.get(TF_CONFIG))
    report = {
        "worker": layout.index,
        "workers": layout.workers,
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "examples_per_s": result.examples_per_s,
        "epoch_seconds": result.epoch_seconds,
        "val_accuracy": result.history["val/accuracy"][-1],
        "runtime": answer,
    }
    print(RESULT_PREFIX + json.dumps(report), flush=True)


def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement of a mode in fresh processes: every worker's report."""
    from components.backends.tensorflow.distributed import local_cluster, run_local_workers

    workers = MODES[mode]
    threads = max(1, args.threads // workers)
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child",
        "--rows", str(args.rows), "--features", str(args.features),
        "--classes", str(args.classes), "--epochs", str(args.epochs),
        "--batch", str(args.batch), "--threads", str(threads),
        "--inter-op-threads", str(args.inter_op_threads),
    ]  # fmt: skip
    env = {name: value for name, value in os.environ.items() if not name.startswith("TF_")}
    env |= {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    configs = local_cluster(workers) if workers > 1 else [""]
    started = time.perf_counter()
    outputs = run_local_workers(command, configs, timeout=args.timeout, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    reports = [
        json.loads(line[len(RESULT_PREFIX) :])
        for out in outputs
        for line in out.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    return {"mode": mode, "threads_per_process": threads, "process_s": wall, "workers": reports}


def main() -> None:
    """Measure both modes, print and write the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="training rows")
    parser.add_argument("--features", type=int, default=64, help="input features")
    parser.add_argument("--classes", type=int, default=10, help="label classes")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is warm-up)")
    parser.add_argument("--batch", type=int, default=128, help="global batch, split among workers")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads in all (0: this process's cores)"
    )
    parser.add_argument(
        "--inter-op-threads",
        type=int,
        default=0,
        help="inter-op threads per process (0: bakeoff's default, half the intra-op, at least 1)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each mode")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT))
    from components.backends.base import available_cpus, machine

    args.threads = args.threads or available_cpus()
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        order = list(MODES) if round_ % 2 == 0 else list(reversed(MODES))
        for mode in order:
            run = measure(mode, args)
            runs.append({"round": round_, **run})
            rates = [f"{w['examples_per_s']:,.0f}" for w in run["workers"]]
            print(f"{mode}: {', '.join(rates)} examples/s ({run['process_s']:.1f} s)", flush=True)
    rates = {
        mode: statistics.median(
            run["workers"][0]["examples_per_s"] for run in runs if run["mode"] == mode
        )
        for mode in MODES
    }  # the chief's figure: the workers step together
    ratio = rates["two_workers"] / rates["one_process"]
    report = {
        "benchmark": "distributed_tensorflow",
        "method": METHOD,
        "machine": machine(),
        "threads_in_all": args.threads,
        "threads_per_process": {
            mode: max(1, args.threads // workers) for mode, workers in MODES.items()
        },
        "inter_op_threads_per_process": {
            mode: run["workers"][0]["runtime"]["inter_op_threads"]
            for mode in MODES
            for run in runs
            if run["mode"] == mode
        },
        "rows": args.rows,
        "validation_rows": VAL_ROWS,
        "features": args.features,
        "classes": args.classes,
        "epochs": args.epochs,
        "global_batch": args.batch,
        "rounds": args.rounds,
        "examples_per_s": rates,
        "ratio_two_workers_over_one_process": ratio,
        "runs": runs,
    }
    print(f"two workers / one process: {ratio:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
