"""Serving latency of every export format against the native eager model, every framework.

Exports the project's trained models (every ``models/<framework>/`` with a
``model.json``) through their backends, as the export stage does, into a
scratch folder, checks parity as the stage does, and times every format in
its own runtime with the same thread count, in one process: batch-1 requests
cycling through the test rows (p50, p99) and batch-256 throughput.

Figure: ONNX Runtime batch-1 p50 latency / native eager batch-1 p50, per
framework (goal <= 0.5). The export stage writes the same figure for the
winner to ``reports/serving_bench.json``.

    .venv/bin/python benchmarks/serving_latency.py [--threads 1] [--repeats 500]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pandas as pd

from components.contracts import load_constants
from components.evaluate.models import competitors, limit_threads
from components.export import core
from components.export.parity import Limits
from components.training.features import raw_matrix, targets

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "serving_latency.json"
GOAL = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads of every runtime")
    parser.add_argument("--repeats", type=int, default=500, help="batch-1 requests per format")
    args = parser.parse_args()
    trained = competitors(ROOT / "models", ROOT / "metrics")
    limit_threads(trained, args.threads)
    constants = load_constants(ROOT / "data/clean/preprocessing.json")
    test = pd.read_parquet(ROOT / "data/clean/test.parquet")
    matrix, truth = raw_matrix(test, constants), targets(test, constants)
    metric = "accuracy" if constants.classification else "rmse"
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for framework, one in trained.items():
            folder = Path(scratch) / framework
            folder.mkdir()
            bundle = one.backend.export(
                one.card, one.folder, constants, folder, matrix[:2], args.threads
            )
            table = core.parity_table(
                bundle,
                matrix,
                truth,
                task=constants.task,
                metric=metric,
                limits=Limits(),
                scale=core.output_scale(constants),
            )
            failed = core.failures(table)
            if failed:
                raise SystemExit(core.describe_failure(framework, failed))
            results[framework] = core.serving_bench(bundle, matrix, args.threads, args.repeats)
    for framework, bench in results.items():
        print(f"{framework} (threads {args.threads}, {args.repeats} batch-1 requests per format)")
        for name, values in bench["formats"].items():
            print(
                f"  {name:<22} batch-1 p50 {values['batch_1']['p50_ms']:7.3f} ms  "
                f"p99 {values['batch_1']['p99_ms']:7.3f} ms  "
                f"batch-256 {values['batch_256']['examples_per_s']:9,.0f} examples/s"
            )
        ratio = bench["onnx_over_eager_batch_1_p50"]
        print(f"  ONNX Runtime / native eager, batch-1 p50: {ratio:.3f} (goal <= {GOAL})")
    summary = {
        "goal": f"ONNX Runtime batch-1 p50 / native eager batch-1 p50 <= {GOAL}",
        "ratio": {name: bench["onnx_over_eager_batch_1_p50"] for name, bench in results.items()},
        "threads": args.threads,
        "repeats": args.repeats,
        "frameworks": results,
    }
    RESULT.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
