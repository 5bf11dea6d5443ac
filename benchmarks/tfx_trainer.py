"""Keras training inside the TFX Trainer versus a bare ``model.fit``, side by side.

Same data (a synthetic 64-feature, 10-class table through ingest and clean,
preprocessed with the shared constants),
same model (one fixed point of the search space), same batch size and epochs,
each in a fresh process. Reports:

- examples/s of the fit inside the pipeline's Trainer (as the stage runs it:
  per-epoch MLflow logging, Optuna pruning callback, early stopping that never
  triggers) and of a bare ``model.fit`` on the same arrays; their ratio (goal
  >= 0.9), at steady state (median epoch after the first, which traces the
  graph) and over the whole fit;
- the pipeline's fixed overhead: the stage's wall time (``dvc repro`` of
  ``train@tensorflow``) minus its training time;
- the wall time of a rerun with unchanged inputs (every component cached).

    .venv/bin/python benchmarks/tfx_trainer.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tfx_trainer.json"
POINT = {
    "learning_rate": [1.0e-3, 1.0e-3],
    "batch_size": [64],
    "depth": [2, 2],
    "width": [128],
    "dropout": [0.1, 0.1],
    "weight_decay": [1.0e-6, 1.0e-6],
    "optimizer": ["adam"],
    "activation": ["relu"],
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def prepare(folder: Path, epochs: int, rows: int) -> None:
    """A working copy on a synthetic 64-feature, 10-class table, with a one-point, one-trial search.

    Digits' 1,279 training rows make an epoch ~50 ms, too short to time apart
    from scheduler noise; a larger table makes each epoch long enough to measure.
    """
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    from tests.conftest import copy_repository

    repo = copy_repository(folder)
    x, y = make_classification(
        n_samples=rows, n_features=64, n_informative=32, n_classes=10, random_state=0
    )
    table = pd.DataFrame(np.round(x, 5), columns=[f"f{i:02d}" for i in range(64)]).assign(label=y)
    table.to_parquet(repo / "data" / "landing" / "synthetic.parquet", index=False)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"].update(
        name="synthetic", source="file", path="data/landing/synthetic.parquet", label="label"
    )
    params["train"].update(
        trials=1, epochs=epochs, patience=epochs, pruner="none", architecture="mlp", search=POINT
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["dvc", "repro", "clean"], cwd=repo, env=_env(), check=True, capture_output=True)


def pipeline_run(repo: Path) -> tuple[float, dict]:
    """Wall time of the stage (``dvc repro --force -s train@tensorflow``) and its metrics."""
    started = time.perf_counter()
    subprocess.run(
        ["dvc", "repro", "--force", "--single-item", "train@tensorflow"],
        cwd=repo,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    return wall, json.loads((repo / "metrics" / "tensorflow.json").read_text())


def bare(repo: Path, epochs: int) -> dict[str, float]:
    """The same model and data with a plain ``model.fit``, in a fresh process."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
import pandas as pd
from components.training import features
from components.training.search import Hyperparams
from components.training.spec import ModelSpec
from components.backends.tensorflow.fit import compile_model
from components.contracts import load_constants
c = load_constants("data/clean/preprocessing.json")
train = pd.read_parquet("data/clean/train.parquet")
val = pd.read_parquet("data/clean/val.parquet")
x, y = features.encode(train, c), features.targets(train, c)
xv, yv = features.encode(val, c), features.targets(val, c)
hyper = Hyperparams(1e-3, 64, 2, 128, 0.1, 1e-6, "adam", "relu")
spec = ModelSpec("mlp", x.shape[1], len(c.label.classes), 2, 128, "relu", 0.1)
from components.backends.tensorflow.model import keras
keras().utils.set_random_seed(42)
model = compile_model(spec, hyper, c.task)
from components.training.study import steady_rate
k = keras()
epochs = []
class Timer(k.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        epochs.append(time.perf_counter() - self.began)
started = time.perf_counter()
model.fit(x, y, batch_size=64, epochs={epochs}, validation_data=(xv, yv), verbose=0, callbacks=[Timer()])
seconds = time.perf_counter() - started
print(json.dumps({{"fit_seconds": seconds, "examples_per_s": steady_rate(len(x), epochs),
                   "overall_examples_per_s": len(x) * {epochs} / seconds, "rows": len(x)}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run both, print the figures, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs of the one model, both sides"
    )
    parser.add_argument("--rows", type=int, default=60_000, help="rows of the synthetic table")
    parser.add_argument("--out", default=str(RESULTS), help="JSON file to write")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    folder = Path(tempfile.mkdtemp(prefix="bakeoff-tfx-bench-"))
    try:
        prepare(folder, args.epochs, args.rows)
        repo = folder / "repo"
        first_wall, metrics = pipeline_run(repo)
        cached_wall, cached = pipeline_run(repo)
        plain = bare(repo, args.epochs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert cached["cached"], "the rerun was expected to be fully cached"
    inside = metrics["train_examples_per_s"]
    inside_overall = plain["rows"] * args.epochs / metrics["best_fit_seconds"]
    result = {
        "benchmark": "Keras fit inside the TFX Trainer vs bare model.fit (synthetic 64 x 10 classes, one MLP, same epochs)",
        "rows": args.rows,
        "epochs": args.epochs,
        "train_rows": plain["rows"],
        "trainer_examples_per_s": inside,
        "bare_examples_per_s": plain["examples_per_s"],
        "ratio_trainer_to_bare": inside / plain["examples_per_s"],
        "trainer_overall_examples_per_s": inside_overall,
        "bare_overall_examples_per_s": plain["overall_examples_per_s"],
        "ratio_overall_with_warmup": inside_overall / plain["overall_examples_per_s"],
        "pipeline_wall_s": first_wall,
        "training_s": metrics["training_seconds"],
        "fixed_overhead_s": first_wall - metrics["training_seconds"],
        "cached_rerun_wall_s": cached_wall,
        "component_seconds": metrics["component_seconds"],
    }
    print(
        f"fit examples/s (median epoch after the first): trainer {inside:,.0f}, "
        f"bare {plain['examples_per_s']:,.0f}, ratio {result['ratio_trainer_to_bare']:.2f} (goal >= 0.9)\n"
        f"whole fit incl. first-epoch tracing: trainer {inside_overall:,.0f}, "
        f"bare {plain['overall_examples_per_s']:,.0f}, ratio {result['ratio_overall_with_warmup']:.2f}\n"
        f"pipeline wall {first_wall:.1f} s = training {metrics['training_seconds']:.1f} s "
        f"+ fixed overhead {result['fixed_overhead_s']:.1f} s; cached rerun {cached_wall:.1f} s\n"
        f"components (s): {metrics['component_seconds']}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
