"""Both frameworks under their defaults, bakeoff's settings and compiling, on the digits MLP and CNNs.

Steady-state training examples/s of every (framework, setting, architecture),
side by side in one run, so that the report can say what each setting is
worth on this machine. The fit is bakeoff's own (``fit_once``: the Keras fit
the TFX Trainer runs, the Lightning fit, with their callbacks) on
scikit-learn's digits, shipped with the package: the first 1,279 rows train
(the default data's train split size), the next 259 validate, the rest test.
Adam, learning rate 1e-3, batch 64, dropout 0.1, weight decay 1e-5, seed 0.

Settings, every one on the same ``--threads`` CPU threads so that only the
named setting differs:

- ``defaults``: the framework as installed, none of bakeoff's runtime
  variables in its environment (TensorFlow 2.16 then turns oneDNN on only on
  CPUs with AVX-512-class features); threads set with the framework's own API;
- ``onednn_off`` (TensorFlow): ``TF_ENABLE_ONEDNN_OPTS=0``;
- ``bakeoff``: ``RuntimeSettings()`` applied as the stages apply it
  (``Backend.environment`` before the framework is imported, then
  ``Backend.configure``);
- ``bakeoff+compile``: the same with ``compile: true`` (Keras ``jit_compile``,
  i.e. XLA; ``torch.compile``).

Architectures: ``mlp`` (2 hidden layers from 128 units); ``cnn`` (the digits
CNN family's largest point under a bound of 64 filters per block, and a
256-unit dense layer; params bound it at 128); ``cnn_unbounded`` (the same
without the bound: 256/512/1024 filters, 6.2M parameters, the network the
issue measured at 142 s/epoch under TensorFlow's defaults).

Each measurement runs in a fresh process (oneDNN is fixed when TensorFlow is
imported). Every round visits every measurement, alternating frameworks, in
reverse order every other round, so that the shared machine's drifts hit all
alike. The first epoch's surplus over the steady epoch is the warm-up
(tracing, XLA or inductor compiling); inductor keeps what it compiled on disk,
so ``torch.compile``'s warm-up is far shorter once a run has compiled the same
network on this machine.

Figure: per architecture, TensorFlow ``bakeoff`` / PyTorch ``bakeoff`` steady
examples/s, paired by round (goal on the ``cnn``: >= 0.5, i.e. within 2x), and
TensorFlow ``bakeoff`` over TensorFlow ``defaults`` and over ``onednn_off``.

    .venv/bin/python benchmarks/framework_settings.py [--architectures mlp cnn cnn_unbounded]
        [--frameworks tensorflow pytorch] [--variants defaults onednn_off bakeoff bakeoff+compile]
        [--rounds 2] [--epochs 3] [--threads 1] [--timeout 1800] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "framework_settings.json"
GOAL = 0.5  # TensorFlow bakeoff / PyTorch bakeoff on the cnn: within 2x
GOAL_ARCHITECTURE = "cnn"
METHOD = (
    "steady-state examples/s: train rows / median epoch time over epochs after the first, "
    "validation included; interleaved rounds, fresh process per measurement; same threads"
)
WARMUP = (
    "first epoch minus the steady epoch: tracing, XLA or inductor compiling; torch.compile's "
    "is shorter when inductor's on-disk cache already holds the network"
)
TRAIN_ROWS, VAL_ROWS = 1279, 259
RESULT_PREFIX = "FRAMEWORK_SETTINGS_RESULT "  # marks the child's one JSON line among logs
FRAMEWORKS = ("tensorflow", "pytorch")
#: Every variant in the order a round visits them; onednn_off has no PyTorch counterpart.
VARIANTS = {
    "tensorflow": ("defaults", "bakeoff", "bakeoff+compile", "onednn_off"),
    "pytorch": ("defaults", "bakeoff", "bakeoff+compile"),
}
VARIANT_NAMES = ("defaults", "bakeoff", "bakeoff+compile", "onednn_off")
DEFAULTS = "defaults"
BAKEOFF = "bakeoff"
ONEDNN_OFF = "onednn_off"
#: The variable (besides each backend's own) that can change a framework's threads at import.
EXTRA_RUNTIME_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Set for every TensorFlow process (tf_keras, quiet C++ logs): not a runtime setting.
TENSORFLOW_BASE_VARIABLES = ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")


@dataclass(frozen=True)
class Architecture:
    """One network of the benchmark: a point of bakeoff's architecture family."""

    kind: str  # mlp or cnn
    depth: int
    width: int
    max_filters: int | None = None


ARCHITECTURES = {
    "mlp": Architecture("mlp", depth=2, width=128),
    "cnn": Architecture("cnn", depth=3, width=256, max_filters=64),
    "cnn_unbounded": Architecture("cnn", depth=3, width=256, max_filters=None),
}


@dataclass(frozen=True)
class Measurement:
    """One (framework, variant, architecture) cell of the table."""

    framework: str
    variant: str
    architecture: str


@dataclass(frozen=True)
class Job:
    """What a child process measures: one cell, its epoch budget and threads."""

    measurement: Measurement
    epochs: int
    threads: int
    seed: int = 0

    def to_json(self) -> str:
        """The job as the ``--child`` argument."""
        return json.dumps(
            {
                **asdict(self.measurement),
                "epochs": self.epochs,
                "threads": self.threads,
                "seed": self.seed,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Job:
        """The job a parent passed with ``--child``."""
        raw = json.loads(text)
        return cls(
            Measurement(raw["framework"], raw["variant"], raw["architecture"]),
            epochs=int(raw["epochs"]),
            threads=int(raw["threads"]),
            seed=int(raw["seed"]),
        )


def runtime_for(variant: str, threads: int) -> Any:
    """The ``RuntimeSettings`` a variant applies through its backend; None for ``defaults``."""
    from components.backends.base import RuntimeSettings

    named = {
        BAKEOFF: RuntimeSettings(),
        "bakeoff+compile": RuntimeSettings(compile=True),
        ONEDNN_OFF: RuntimeSettings(onednn=False),
    }
    if variant == DEFAULTS:
        return None
    return replace(named[variant], threads=threads)


def plan(architectures: list[str], frameworks: list[str], variants: list[str]) -> list[Measurement]:
    """The cells of one round: per architecture, the frameworks alternating variant by variant."""
    cells = []
    for architecture in architectures:
        queues = [
            [Measurement(f, v, architecture) for v in VARIANTS[f] if v in variants]
            for f in frameworks
        ]
        while any(queues):
            cells += [queue.pop(0) for queue in queues if queue]
    return cells


def schedule(cells: list[Measurement], rounds: int) -> list[tuple[int, Measurement]]:
    """Every cell once per round, every other round in reverse order."""
    return [
        (round_, cell)
        for round_ in range(rounds)
        for cell in (cells if round_ % 2 == 0 else list(reversed(cells)))
    ]


# ----------------------------------------------------------------- the child


def _tensorflow_defaults(threads: int) -> dict[str, Any]:
    from components.backends.tensorflow.backend import environment

    environment()  # what every TensorFlow process of bakeoff has (tf_keras, quiet logs)
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return {
        "framework": f"tensorflow {tf.__version__}",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": bool(_pywrap_util_port.IsMklEnabled()),
        "compile": "none",
    }


def _pytorch_defaults(threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    return {
        "framework": f"torch {torch.__version__}",
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "onednn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "compile": "none",
        "matmul_precision": torch.get_float32_matmul_precision(),
    }


#: The framework's own thread API, and what it reports, for the ``defaults`` variant.
_DEFAULT_SETUP = {"tensorflow": _tensorflow_defaults, "pytorch": _pytorch_defaults}


def _digits() -> Any:
    """Digits as bakeoff's shared encoding gives them: pixels / 16, in float32."""
    import numpy as np
    from sklearn.datasets import load_digits

    from components.backends.base import SplitArrays

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16).astype(np.float32), y.astype(np.int64)
    val_end = TRAIN_ROWS + VAL_ROWS
    return SplitArrays(
        x[:TRAIN_ROWS], y[:TRAIN_ROWS], x[TRAIN_ROWS:val_end], y[TRAIN_ROWS:val_end],
        x[val_end:], y[val_end:],
    )  # fmt: skip


def measure(job: Job) -> dict[str, Any]:
    """Set up the framework as the job's variant says, train, and time every epoch.

    Must run in a process that has not imported TensorFlow or torch yet: oneDNN
    and the thread pools are fixed at import.
    """
    from components import backends
    from components.backends.base import CPU_SHARE_VARIABLE, RuntimeSettings

    early = [name for name in ("tensorflow", "torch") if name in sys.modules]
    if early:
        raise RuntimeError(f"{early} imported before the runtime settings were applied")
    cell = job.measurement
    backend = backends.get(cell.framework)
    runtime = runtime_for(cell.variant, job.threads)
    if runtime is None:
        answer = _DEFAULT_SETUP[cell.framework](job.threads)
        runtime = RuntimeSettings(threads=job.threads, onednn="default")
    else:
        os.environ.update(backend.environment(runtime))  # as the bakeoff command does
        answer = backend.configure(runtime)
    watched = {
        *_runtime_variables(),
        *TENSORFLOW_BASE_VARIABLES,
        CPU_SHARE_VARIABLE,
        "TF_XLA_FLAGS",
    }
    environment = {name: os.environ[name] for name in sorted(watched) if name in os.environ}

    from components.backends.base import FitSettings
    from components.training.fixed import fit_once
    from components.training.search import Hyperparams, model_spec
    from components.training.spec import parameter_count

    shape = ARCHITECTURES[cell.architecture]
    hyper = Hyperparams(1e-3, 64, shape.depth, shape.width, 0.1, 1e-5, "adam", "relu")
    spec = model_spec(
        hyper,
        architecture=shape.kind,
        input_dim=64,
        outputs=10,
        image_shape=(8, 8),
        max_filters=shape.max_filters,
    )
    data = _digits()
    with tempfile.TemporaryDirectory() as folder:
        settings = FitSettings(
            task="classification",
            metric="val/accuracy",
            epochs=job.epochs,
            patience=job.epochs,  # never stops early: every measurement trains every epoch
            seed=job.seed,
            trial_dir=Path(folder),
            target=None,
            runtime=runtime,
            log_to_mlflow=False,
        )
        result = fit_once(backend, spec, hyper, data, settings)
    steady_epoch = len(data.x_train) / result.examples_per_s  # the epoch steady_rate picked
    return {
        "epoch_seconds": result.epoch_seconds,
        "examples_per_s": result.examples_per_s,
        "warmup_s": result.epoch_seconds[0] - steady_epoch,
        "val_accuracy": (result.history.get("val/accuracy") or [None])[-1],
        "parameters": parameter_count(spec),
        "runtime": answer,
        "environment": environment,
    }


# ---------------------------------------------------------------- the parent


def _runtime_variables() -> set[str]:
    """Every variable a backend sets for a runtime setting, and OpenMP's and MKL's pools."""
    from components import backends
    from components.backends.base import CPU_SHARE_VARIABLE, RuntimeSettings

    widest = RuntimeSettings(threads=1, inter_op_threads=1, onednn=False)
    names = {name for f in FRAMEWORKS for name in backends.get(f).environment(widest)}
    return names | {CPU_SHARE_VARIABLE, *EXTRA_RUNTIME_VARIABLES}


def _child_environment() -> dict[str, str]:
    """This environment without any runtime variable: each child sets its own."""
    strip = _runtime_variables()
    return {name: value for name, value in os.environ.items() if name not in strip}


def _run_child(job: Job, timeout: float) -> dict[str, Any]:
    """One measurement in a fresh interpreter; a failure is recorded, not raised."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", job.to_json()]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=_child_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        error = tail[-1] if tail else f"exit status {done.returncode}, no output"
        return {"ok": False, "error": error, "process_s": wall}
    return {"ok": True, **json.loads(lines[-1][len(RESULT_PREFIX) :]), "process_s": wall}


def _spread(values: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per cell: median steady examples/s over rounds, its range, the warm-up; and the ratios."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        cells.setdefault((run["framework"], run["variant"], run["architecture"]), []).append(run)
    table = []
    for (framework, variant, architecture), group in cells.items():
        good = [run for run in group if run["ok"]]
        row: dict[str, Any] = {
            "framework": framework,
            "variant": variant,
            "architecture": architecture,
            "measured": len(good),
            "failed": len(group) - len(good),
            "errors": sorted({run["error"] for run in group if not run["ok"]}),
        }
        if good:
            row["examples_per_s"] = _spread([run["examples_per_s"] for run in good])
            row["warmup_s"] = statistics.median(run["warmup_s"] for run in good)
            row["onednn"] = good[0]["runtime"].get("onednn")
            row["intra_op_threads"] = good[0]["runtime"].get("intra_op_threads")
        table.append(row)
    ratios = {}
    for architecture in dict.fromkeys(run["architecture"] for run in runs):
        pairs = {
            "tensorflow_bakeoff_over_pytorch_bakeoff": (("tensorflow", BAKEOFF), ("pytorch", BAKEOFF)),
            "tensorflow_bakeoff_over_defaults": (("tensorflow", BAKEOFF), ("tensorflow", DEFAULTS)),
            "tensorflow_bakeoff_over_onednn_off": (("tensorflow", BAKEOFF), ("tensorflow", ONEDNN_OFF)),
        }  # fmt: skip
        ratios[architecture] = {
            name: paired_ratio(runs, architecture, top, bottom)
            for name, (top, bottom) in pairs.items()
        }
    goal_ratio = ratios.get(GOAL_ARCHITECTURE, {}).get("tensorflow_bakeoff_over_pytorch_bakeoff")
    return {
        "cells": table,
        "ratios": ratios,
        "goal": f"{GOAL_ARCHITECTURE}: tensorflow bakeoff / pytorch bakeoff steady examples/s >= {GOAL}",
        "goal_met": None if goal_ratio is None else goal_ratio["median"] >= GOAL,
    }


def paired_ratio(
    runs: list[dict[str, Any]], architecture: str, top: tuple[str, str], bottom: tuple[str, str]
) -> dict[str, Any] | None:
    """``top`` / ``bottom`` steady examples/s, round by round; None without a pair."""

    def by_round(framework: str, variant: str) -> dict[int, float]:
        return {
            run["round"]: run["examples_per_s"]
            for run in runs
            if run["ok"]
            and (run["framework"], run["variant"], run["architecture"])
            == (framework, variant, architecture)
        }

    upper, lower = by_round(*top), by_round(*bottom)
    rounds = sorted(set(upper) & set(lower))
    if not rounds:
        return None
    values = [upper[r] / lower[r] for r in rounds]
    return {**_spread(values), "by_round": values}


def render(summary: dict[str, Any], architectures: list[str]) -> str:
    """The table: a row per framework/variant, steady examples/s per architecture, then the ratios."""
    rows: dict[str, dict[str, str]] = {}
    onednn: dict[str, str] = {}
    for cell in summary["cells"]:
        name = f"{cell['framework']}/{cell['variant']}"
        if "examples_per_s" in cell:
            spread = cell["examples_per_s"]
            text = (
                f"{spread['median']:,.0f}/s ({spread['min']:,.0f}..{spread['max']:,.0f}) "
                f"{cell['warmup_s']:+.1f}s"
            )
            onednn.setdefault(name, str(cell["onednn"]))
        else:
            text = "failed"
        if cell["failed"] and "examples_per_s" in cell:
            text += f" [{cell['failed']} failed]"
        rows.setdefault(name, {})[cell["architecture"]] = text
    header = ["framework/variant", "oneDNN", *architectures]
    lines = [
        [name, onednn.get(name, "?"), *(row.get(a, "-") for a in architectures)]
        for name, row in rows.items()
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    out = [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True))
        for line in [header, *lines]
    ]
    out.append(
        "steady examples/s: median over rounds (min..max); +s: first epoch's surplus (warm-up)"
    )
    for architecture, named in summary["ratios"].items():
        parts = []
        for name, ratio in named.items():
            label = name.replace("tensorflow_bakeoff_over_", "TF bakeoff / ").replace("_", " ")
            parts.append(
                f"{label} n/a"
                if ratio is None
                else f"{label} {ratio['median']:.2f} ({ratio['min']:.2f}..{ratio['max']:.2f})"
            )
        out.append(f"{architecture}: " + "; ".join(parts))
    return "\n".join(out)


def _cpu() -> dict[str, Any]:
    """lscpu's model name and whether the CPU has AVX-512 (what TF 2.16's oneDNN default needs)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        listing = ""
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in listing.splitlines())
    )
    flags = fields.get("Flags", "").split()
    return {
        "lscpu_model_name": fields.get("Model name"),
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
    }


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("tensorflow", "tf-keras", "torch", "lightning"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options, checked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--architectures",
        nargs="+",
        choices=list(ARCHITECTURES),
        default=list(ARCHITECTURES),
        help="networks to train (default: all)",
    )
    parser.add_argument(
        "--frameworks",
        nargs="+",
        choices=FRAMEWORKS,
        default=list(FRAMEWORKS),
        help="frameworks to train (default: both)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANT_NAMES,
        default=list(VARIANT_NAMES),
        help="settings to measure, where a framework has them (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="times every cell is measured")
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per measurement (at least 2: one warm-up)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op CPU threads of every variant"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a measurement is failed"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument(
        "--child", metavar="JOB", help="internal: measure one JSON job, print one JSON line"
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs: expected at least 2 (the first is warm-up); found {args.epochs}")
    for option in ("rounds", "threads"):
        if getattr(args, option) < 1:
            parser.error(f"--{option}: expected at least 1; found {getattr(args, option)}")
    if args.timeout <= 0:
        parser.error(f"--timeout: expected a positive number of seconds; found {args.timeout}")
    if args.child is None and not plan(args.architectures, args.frameworks, args.variants):
        parser.error(f"no framework has any of the variants {args.variants}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure every cell in interleaved rounds; print the table and write JSON."""
    args = parse_args(argv)
    if args.child is not None:
        print(RESULT_PREFIX + json.dumps(measure(Job.from_json(args.child))), flush=True)
        return
    from components.backends.base import machine

    cells = plan(args.architectures, args.frameworks, args.variants)
    order = schedule(cells, args.rounds)
    report: dict[str, Any] = {
        "benchmark": "framework_settings",
        "method": METHOD,
        "warmup": WARMUP,
        "goal": f"{GOAL_ARCHITECTURE}: tensorflow bakeoff / pytorch bakeoff >= {GOAL} (within 2x)",
        "machine": {**machine(), **_cpu()},
        "versions": _versions(),
        "arguments": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
            if key != "child"
        },
        "architectures": {name: asdict(ARCHITECTURES[name]) for name in args.architectures},
        "data": {"dataset": "sklearn digits", "train_rows": TRAIN_ROWS, "val_rows": VAL_ROWS},
        "hyperparameters": {
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "batch_size": 64,
            "dropout": 0.1,
            "weight_decay": 1e-5,
            "seed": 0,
        },
        "complete": False,
        "runs": [],
    }
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores", flush=True)
    started = time.perf_counter()
    for index, (round_, cell) in enumerate(order, 1):
        job = Job(cell, epochs=args.epochs, threads=args.threads)
        run = {"round": round_, **asdict(cell), **_run_child(job, args.timeout)}
        report["runs"].append(run)
        figure = (
            f"{run['examples_per_s']:,.0f}/s, epochs {[round(s, 2) for s in run['epoch_seconds']]}"
            if run["ok"]
            else f"FAILED: {run['error']}"
        )
        print(
            f"[{index}/{len(order)}] round {round_} {cell.framework}/{cell.variant} "
            f"{cell.architecture}: {figure}",
            flush=True,
        )
        _write(args.out, report)  # a long run keeps what it measured if stopped
    report["wall_s"] = time.perf_counter() - started
    report["summary"] = summarise(report["runs"])
    report["complete"] = True
    _write(args.out, report)
    print(render(report["summary"], args.architectures))
    print(f"{report['wall_s']:.0f} s in all; written to {args.out}")


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
