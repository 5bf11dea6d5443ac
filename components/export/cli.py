"""``bakeoff export``: the DVC stage that exports the winner to every serving format."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components.evaluate.cli import FRAMEWORKS, add_trained_inputs
from components.outputs import staged_directory, staged_outputs
from components.params import load_params, number, whole

STAGE = "export"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's options; the paths match dvc.yaml."""
    add_trained_inputs(parser)
    parser.add_argument(
        "--comparison", required=True, help="the evaluate stage's comparison (JSON)"
    )
    parser.add_argument(
        "--framework",
        choices=("winner", *FRAMEWORKS),
        default="winner",
        help="what to export: the comparison's winner (default) or a named framework",
    )
    parser.add_argument("--out", required=True, help="folder the exports are written to")
    parser.add_argument("--parity", required=True, help="parity table to write (JSON)")
    parser.add_argument("--serving-bench", required=True, help="serving benchmark to write (JSON)")


def limits_from(raw: dict[str, Any]) -> Any:
    """The ``export`` section's parity limits."""
    from components.export.parity import Limits

    return Limits(
        float_tolerance=number(raw.get("float_tolerance", 1e-4), "export.float_tolerance", 0.0),
        max_metric_drop=number(raw.get("max_metric_drop", 0.01), "export.max_metric_drop", 0.0),
    )


def run(args: argparse.Namespace) -> None:
    """Export, check parity, time every format, then replace the exports and reports."""
    import pandas as pd

    from components.evaluate.latency import limit_threads
    from components.export import core
    from components.training.features import raw_matrix, targets

    raw = load_params(args.params).get(STAGE) or {}
    limits = limits_from(raw)
    threads = whole(raw.get("threads", 1), "export.threads", 1)
    repeats = whole(raw.get("latency_repeats", 200), "export.latency_repeats", 10)
    comparison = json.loads(Path(args.comparison).read_text(encoding="utf-8"))
    framework = comparison["winner"] if args.framework == "winner" else args.framework
    constants = json.loads(Path(args.preprocessing).read_text(encoding="utf-8"))
    task = constants["task"]
    metric = comparison["metric"].split("/", 1)[1]
    limit_threads(threads, tensorflow=framework == "tensorflow")
    test = pd.read_parquet(Path(args.data_dir) / "test.parquet")
    matrix, truth = raw_matrix(test, constants), targets(test, constants)
    model_dir = Path(getattr(args, f"{framework}_model"))
    trained = json.loads(Path(getattr(args, f"{framework}_metrics")).read_text(encoding="utf-8"))
    source = {
        "framework": framework,
        "mlflow_run_id": trained.get("mlflow_run_id"),
        "best_trial": trained.get("best_trial"),
        "comparison_run_id": comparison.get("mlflow_run_id"),
        "metric": comparison["metric"],
        "test_score": comparison["frameworks"][framework]["test"][metric],
    }
    # The exports and both reports are replaced together, or not at all.
    with staged_outputs() as staged, staged_directory(args.out) as folder:
        bundle, trained_model = core.export_trained(
            framework, model_dir, constants, folder, matrix[:2], threads
        )
        source["model"] = str(trained_model)
        table = core.parity_table(
            bundle,
            matrix,
            truth,
            task=task,
            metric=metric,
            limits=limits,
            scale=core.output_scale(constants),
        )
        failed = core.failures(table)
        if failed:
            raise core.ParityError(core.describe_failure(framework, failed))
        bench = core.serving_bench(bundle, matrix, threads, repeats)
        description = core.manifest(bundle, constants, folder, table, source)
        (folder / "manifest.json").write_text(json.dumps(description, indent=2) + "\n")
        staged.write_json(
            args.parity,
            {
                "framework": framework,
                "limits": asdict(limits),
                "rows": [asdict(r) for r in table],
            },
        )
        staged.write_json(args.serving_bench, bench)
    _print(framework, table, bench)


def _print(framework: str, table: list[Any], bench: dict[str, Any]) -> None:
    for row in table:
        print(
            f"export: {framework} {row.format:<22} max |diff| {row.max_abs_diff:.2e}  "
            f"{row.metric} {row.exported:.4f} ({row.metric_delta:+.4f})  ok"
        )
    for name, values in bench["formats"].items():
        print(
            f"export: {name:<22} batch-1 p50 {values['batch_1']['p50_ms']:.3f} ms, "
            f"p99 {values['batch_1']['p99_ms']:.3f} ms; batch-256 "
            f"{values['batch_256']['examples_per_s']:,.0f} examples/s"
        )
    print(
        f"export: ONNX Runtime / native eager, batch-1 p50: {bench['onnx_over_eager_batch_1_p50']:.3f}"
    )
