"""``bakeoff export``: the DVC stage that exports the winner to every serving format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from components import progress
from components.contracts import (
    ParityReport,
    load_comparison,
    load_constants,
    write_json,
)
from components.errors import BakeoffError, ParamsError
from components.evaluate.models import add_trained_inputs
from components.outputs import staged_directory, staged_outputs
from components.params import load_params, number, whole

STAGE = "export"
WINNER = "winner"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's options; the paths match dvc.yaml."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    add_trained_inputs(parser)
    parser.add_argument(
        "--comparison", required=True, help="the evaluate stage's comparison (JSON)"
    )
    parser.add_argument(
        "--framework",
        default=WINNER,
        help="what to export: the comparison's winner (default) or a framework it compared",
    )
    parser.add_argument("--out", required=True, help="folder the exports are written to")
    parser.add_argument("--parity", required=True, help="parity table to write (JSON)")
    parser.add_argument("--serving-bench", required=True, help="serving benchmark to write (JSON)")


def limits_from(raw: dict[str, Any]) -> Any:
    """The ``export`` section's parity limits, with each format's own float tolerance."""
    from components.export.parity import Limits

    own = raw.get("tolerances") or {}
    if not isinstance(own, dict) or not all(isinstance(name, str) for name in own):
        raise ParamsError(
            "export.tolerances", f"expected a mapping of format to tolerance; found {own!r}"
        )
    return Limits(
        float_tolerance=number(raw.get("float_tolerance", 1e-4), "export.float_tolerance", 0.0),
        max_metric_drop=number(raw.get("max_metric_drop", 0.01), "export.max_metric_drop", 0.0),
        tolerances={
            name: number(value, f"export.tolerances.{name}", 0.0) for name, value in own.items()
        },
    )


def skip_from(raw: dict[str, Any]) -> frozenset[str]:
    """``export.skip_formats``: optional formats not to write, each one some backend's."""
    from components import backends

    value = raw.get("skip_formats") or []
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ParamsError("export.skip_formats", f"expected a list of formats; found {value!r}")
    optional = set().union(*(backends.get(name).optional_formats for name in backends.names()))
    unknown = sorted(set(value) - optional)
    if unknown:
        raise ParamsError(
            "export.skip_formats",
            f"only optional formats can be skipped ({', '.join(sorted(optional)) or 'none'}); "
            f"found {', '.join(unknown)}",
        )
    return frozenset(value)


def run(args: argparse.Namespace) -> None:
    """Export, check parity, time every format, then replace the exports and reports."""
    import pandas as pd

    from components.evaluate.models import competitor
    from components.export import core
    from components.training.features import raw_matrix, targets

    raw = load_params(args.params).get(STAGE) or {}
    limits = limits_from(raw)
    skip = skip_from(raw)
    threads = whole(raw.get("threads", 1), "export.threads", 1)
    repeats = whole(raw.get("latency_repeats", 200), "export.latency_repeats", 10)
    rounds = whole(raw.get("latency_rounds", 5), "export.latency_rounds", 2)
    comparison = load_comparison(args.comparison)
    name = comparison.winner if args.framework == WINNER else args.framework
    if name not in comparison.scores:
        raise BakeoffError(
            f"{args.comparison}: framework {name!r} was not compared; expected one of "
            f"{', '.join(sorted(comparison.scores))}"
        )
    constants = load_constants(args.preprocessing)
    chosen = competitor(name, Path(args.models), Path(args.metrics))
    chosen.backend.limit_threads(threads)
    test = pd.read_parquet(Path(args.data_dir) / "test.parquet")
    matrix, truth = raw_matrix(test, constants), targets(test, constants)
    source = {
        "framework": name,
        "backend": chosen.card.framework,
        "model": str(chosen.folder / chosen.card.artifact),
        "mlflow_run_id": chosen.metrics.mlflow_run_id,
        "best_trial": chosen.metrics.best_trial,
        "comparison_run_id": comparison.mlflow_run_id,
        "metric": comparison.metric,
        "test_score": comparison.scores[name],
    }
    # The exports and both reports are replaced together, or not at all.
    with staged_outputs() as staged, staged_directory(args.out) as folder:
        bundle = chosen.backend.export(
            chosen.card, chosen.folder, constants, folder, matrix[:2], threads, skip
        )
        core.check_bundle(name, bundle, folder)
        table = core.parity_table(
            bundle,
            matrix,
            truth,
            task=constants.task,
            metric=comparison.metric_name,
            limits=limits,
            scale=core.output_scale(constants),
        )
        failed = core.failures(table)
        if failed:
            raise core.ParityError(core.describe_failure(name, failed))
        bench = core.serving_bench(bundle, matrix, threads, repeats, rounds=rounds)
        write_json(
            folder / "manifest.json",
            core.manifest(name, bundle, chosen.card, folder, table, source),
        )
        report = ParityReport(
            name,
            limits.float_tolerance,
            limits.max_metric_drop,
            tuple(table),
            tolerances=dict(limits.tolerances),
            skipped=tuple(sorted(bundle.skipped)),
        )
        staged.write_json(args.parity, report.to_dict())
        staged.write_json(args.serving_bench, bench)
    _print(name, table, bench, bundle.skipped)


def _print(
    framework: str, table: list[Any], bench: dict[str, Any], skipped: frozenset[str]
) -> None:
    for row in table:
        progress.say(
            f"export: {framework} {row.format:<22} max |diff| {row.max_abs_diff:.2e}  "
            f"{row.metric} {row.exported:.4f} ({row.metric_delta:+.4f})  ok"
        )
    for name in sorted(skipped):
        progress.say(f"export: {framework} {name:<22} skipped (export.skip_formats)")
    for name, values in bench["formats"].items():
        single, full = values["batch_1"], values["batch_256"]
        progress.say(
            f"export: {name:<22} batch-1 p50 {single['p50_ms']:.3f} ms "
            f"{_span(single['p50_ms_interval'], '.3f')}, p99 {single['p99_ms']:.3f} ms; "
            f"batch-256 {full['examples_per_s']:,.0f} examples/s "
            f"{_span(full['examples_per_s_interval'], ',.0f')}"
        )
    ratio = bench["onnx_over_eager_batch_1_p50"]
    if ratio is not None:
        progress.say(
            f"export: ONNX Runtime / native eager, batch-1 p50: {ratio:.3f} "
            f"{_span(bench['onnx_over_eager_batch_1_p50_interval'], '.3f')}"
        )
    for name in bench["untimed"]:
        progress.say(
            f"export: {name:<22} not timed (its runtime answers from another process, through files)"
        )
    progress.say(f"export: latency by {bench['method']}")


def _span(interval: list[float], spec: str) -> str:
    low, high = interval
    return f"[{low:{spec}}, {high:{spec}}]"
