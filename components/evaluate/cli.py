"""``bakeoff evaluate``: the DVC stage that compares every trained model and picks the winner."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from components import progress
from components.contracts import load_constants, read_json
from components.errors import BakeoffError
from components.evaluate.models import add_trained_inputs
from components.outputs import staged_directory, staged_outputs
from components.params import load_params, number, section, whole
from components.training import tracking
from components.training.search import TuningParams

STAGE = "evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's options; the paths match dvc.yaml."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    add_trained_inputs(parser)
    parser.add_argument(
        "--refit", help="the refit stage's training-cost figures (JSON); left out: none reported"
    )
    parser.add_argument(
        "--refit-outputs",
        help="the refit stage's test outputs at every training seed (NumPy archive); "
        "left out: the verdict reads the shipped models alone",
    )
    parser.add_argument("--comparison", required=True, help="JSON comparison to write")
    parser.add_argument("--report", required=True, help="Markdown report to write")
    parser.add_argument("--figures", required=True, help="folder of the report's figures")


def params_from(raw: dict[str, Any], tuning: TuningParams, task: str) -> Any:
    """The ``evaluate`` section, checked and unpacked."""
    from components.evaluate.core import EvaluateParams
    from components.evaluate.stats import Resampling

    resampling = Resampling.from_section(raw)
    return EvaluateParams(
        optimised=tuning.objective_metric(task),
        resamples=resampling.resamples,
        seeds=whole(raw.get("seeds", 3), "evaluate.seeds", 1),
        level=resampling.level,
        seed=resampling.seed,
        threads=whole(raw.get("threads", 1), "evaluate.threads", 1),
        latency_repeats=whole(raw.get("latency_repeats", 200), "evaluate.latency_repeats", 10),
        latency_rounds=whole(raw.get("latency_rounds", 5), "evaluate.latency_rounds", 2),
        latency_margin=number(raw.get("latency_margin", 0.1), "evaluate.latency_margin", 0.0),
    )


def _seed_outputs(path: str) -> dict[str, Any]:
    """Each framework's test outputs at every refit seed, from the refit stage's archive."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise BakeoffError(
            f"{path}: not the refit stage's test outputs ({error}); rerun refit"
        ) from None


def run(args: argparse.Namespace) -> None:
    """Load every trained model, compare them, write the comparison, the report and the figures."""
    import mlflow
    import pandas as pd

    from components.evaluate import core, costs, report
    from components.evaluate.models import competitors, limit_threads, without_model

    root = Path.cwd()
    params = load_params(args.params)
    tuning = TuningParams.from_section(section(params, "train"))
    constants = load_constants(args.preprocessing)
    own = params_from(params.get(STAGE) or {}, tuning, constants.task)
    models_dir, metrics_dir = Path(args.models), Path(args.metrics)
    trained = competitors(models_dir, metrics_dir)
    # Before any model runs: a framework fixes its thread pools when it first computes.
    limit_threads(trained, own.threads)
    models = {
        name: one.backend.load(one.card, one.folder, constants) for name, one in trained.items()
    }
    training = {name: one.metrics for name, one in trained.items()}
    test = pd.read_parquet(Path(args.data_dir) / "test.parquet")
    seeds = _seed_outputs(args.refit_outputs) if args.refit_outputs else None
    comparison = core.compare(test, constants, models, training, own, seeds)
    comparison["params"] = asdict(own)
    for name, one in trained.items():
        comparison["frameworks"][name]["backend"] = one.card.framework
    refit = read_json(args.refit, "refit") if args.refit else None
    comparison["costs"] = costs.gather(training, refit)
    curves = {name: dict(one.learning_curve) for name, one in training.items()}
    comparison["learning_curves"] = curves
    comparison["fairness"] += core.side_by_side({n: one.window for n, one in training.items()})
    comparison["fairness"] += [
        f"same evaluation: {name} has training metrics but no model folder "
        f"({models_dir / name}); its training never saved a model, so it is not compared"
        for name in without_model(models_dir, metrics_dir)
    ]

    uri = tracking.tracking_uri(tuning.tracking_uri, root)
    experiment = tracking.use_experiment(uri, constants.dataset, tracking.artifact_root(root))
    client = mlflow.MlflowClient(uri)
    run_id = _start_run(client, experiment, root, comparison, args)
    comparison["mlflow_run_id"] = run_id
    try:
        figures = Path(args.figures)
        relative = os.path.relpath(figures.resolve(), Path(args.report).resolve().parent)
        # The figures, the comparison and the report are replaced together, or not at all.
        with staged_outputs() as staged, staged_directory(figures) as folder:
            drawn = report.plot(comparison, curves, folder)
            text = report.markdown(comparison, drawn, Path(relative).as_posix())
            staged.write_json(args.comparison, comparison)
            staged.write(args.report, partial(_write_text, text))
        _log(client, run_id, comparison, args, figures, drawn)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    difference = comparison["difference"]
    progress.say(
        f"evaluate: {comparison['winner']} wins on {comparison['metric']} "
        f"({comparison['decided_by']}): {comparison['reason']}"
        + (
            f"; McNemar p = {difference['mcnemar']['p_value']:.3g}"
            if "mcnemar" in difference
            else ""
        )
    )
    for line in comparison["fairness"]:
        progress.say(f"evaluate: fairness rule broken: {line}")


def _write_text(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")


def _start_run(
    client: Any, experiment: str, root: Path, comparison: dict[str, Any], args: argparse.Namespace
) -> str:
    """One MLflow run for the comparison, so the UI shows the verdict; its id."""
    commit = tracking.git_commit(root)
    run = client.create_run(
        experiment,
        run_name=f"evaluate: {comparison['winner']} wins",
        tags={
            tracking.TAG_STAGE: STAGE,
            tracking.TAG_COMMIT: commit,
            tracking.TAG_DATA_HASH: tracking.data_hash(
                [Path(args.data_dir) / "test.parquet", Path(args.preprocessing)]
            ),
            "bakeoff.winner": comparison["winner"],
            **tracking.experiment_tags(),
        },
    )
    return run.info.run_id


def _log(
    client: Any,
    run_id: str,
    comparison: dict[str, Any],
    args: argparse.Namespace,
    figures: Path,
    drawn: list[str],
) -> None:
    """The comparison's figures, files and headline numbers on its MLflow run."""
    for name, values in comparison["frameworks"].items():
        for key, value in values["test"].items():
            if isinstance(value, float):
                client.log_metric(run_id, f"{name}.test/{key}", value)
        client.log_metric(
            run_id, f"{name}.latency/batch_1_p50_ms", values["latency"]["batch_1"]["p50_ms"]
        )
        client.log_metric(run_id, f"{name}.size_bytes", float(values["size_bytes"]))
    client.log_metric(run_id, "difference", comparison["difference"]["value"])
    for name, cost in comparison["costs"]["frameworks"].items():
        for key in ("tuning_seconds", "trial_epochs", "fixed_seconds"):
            if cost[key] is not None:
                client.log_metric(run_id, f"{name}.cost/{key}", float(cost[key]))
        for part, value in cost["peak_memory_mb"].items():
            if value is not None:
                client.log_metric(run_id, f"{name}.cost/peak_memory_mb.{part}", float(value))
    throughput = comparison["costs"].get("training_throughput", {})
    for config, entry in throughput.get("by_configuration", {}).items():
        for name, rate in entry["rates"].items():
            on = re.sub(r"[^\w.-]", "_", config)  # MLflow's metric names: no "+"
            client.log_metric(run_id, f"{name}.cost/examples_per_s.on_{on}", rate["examples_per_s"])
    for name, difference in comparison["differences"].items():
        client.log_metric(run_id, f"{name}.difference_to_leader", difference["value"])
    client.log_artifact(run_id, args.comparison)
    client.log_artifact(run_id, args.report)
    for name in drawn:
        client.log_artifact(run_id, str(figures / name), artifact_path="figures")
