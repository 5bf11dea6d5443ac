"""``bakeoff evaluate``: the DVC stage that compares both trained models and picks the winner."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from components.errors import BakeoffError, ParamsError
from components.outputs import staged_directory, staged_outputs
from components.params import fraction, load_params, number, section, whole
from components.training import tracking
from components.training.search import TuningParams

FRAMEWORKS = ("tensorflow", "pytorch")
STAGE = "evaluate"


def add_trained_inputs(parser: argparse.ArgumentParser) -> None:
    """Params, test data, constants, and both trainers' models and metrics (evaluate, export)."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--data-dir", required=True, help="folder of the clean splits")
    parser.add_argument("--preprocessing", required=True, help="the shared constants (JSON)")
    for name in FRAMEWORKS:
        parser.add_argument(f"--{name}-model", required=True, help=f"{name}'s model folder")
        parser.add_argument(f"--{name}-metrics", required=True, help=f"{name}'s training metrics")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's options; the paths match dvc.yaml."""
    add_trained_inputs(parser)
    parser.add_argument("--comparison", required=True, help="JSON comparison to write")
    parser.add_argument("--report", required=True, help="Markdown report to write")
    parser.add_argument("--figures", required=True, help="folder of the report's figures")


def params_from(raw: dict[str, Any], tuning: TuningParams, task: str) -> Any:
    """The ``evaluate`` section, checked and unpacked."""
    from components.evaluate.core import EvaluateParams

    return EvaluateParams(
        optimised=tuning.objective_metric(task),
        resamples=whole(raw.get("resamples", 2000), "evaluate.resamples", 100),
        level=_level(raw.get("level", 0.95)),
        seed=whole(raw.get("seed", 0), "evaluate.seed", 0),
        threads=whole(raw.get("threads", 1), "evaluate.threads", 1),
        latency_repeats=whole(raw.get("latency_repeats", 200), "evaluate.latency_repeats", 10),
        latency_margin=number(raw.get("latency_margin", 0.1), "evaluate.latency_margin", 0.0),
    )


def _level(value: Any) -> float:
    level = fraction(value, "evaluate.level")
    if not 0 < level < 1:
        raise ParamsError("evaluate.level", f"expected a number between 0 and 1; found {value!r}")
    return level


def run(args: argparse.Namespace) -> None:
    """Load both models, compare them, write the comparison, the report and the figures."""
    import mlflow
    import pandas as pd

    from components.evaluate import core, report
    from components.evaluate.curves import best_trial_curves
    from components.evaluate.latency import limit_threads
    from components.evaluate.models import load

    root = Path.cwd()
    params = load_params(args.params)
    tuning = TuningParams.from_section(section(params, "train"))
    constants = json.loads(Path(args.preprocessing).read_text(encoding="utf-8"))
    own = params_from(params.get(STAGE) or {}, tuning, constants["task"])
    limit_threads(own.threads)
    training = {}
    for name in FRAMEWORKS:
        path = Path(getattr(args, f"{name}_metrics"))
        if not path.is_file():
            raise BakeoffError(f"{path}: no training metrics; run train@{name} first")
        training[name] = json.loads(path.read_text(encoding="utf-8"))
    models = {
        name: load(name, Path(getattr(args, f"{name}_model")), constants) for name in FRAMEWORKS
    }
    test = pd.read_parquet(Path(args.data_dir) / "test.parquet")
    comparison = core.compare(test, constants, models, training, own)
    comparison["params"] = asdict(own)

    uri = tracking.tracking_uri(tuning.tracking_uri, root)
    experiment = tracking.use_experiment(
        uri, constants.get("dataset"), root / "mlflow" / "artifacts"
    )
    client = mlflow.MlflowClient(uri)
    windows: dict[str, tuple[int, int] | None] = {}
    curves = {}
    for name in FRAMEWORKS:
        windows[name] = _training_window(client, training[name].get("mlflow_run_id"))
        run_id, trial = training[name].get("mlflow_run_id"), training[name].get("best_trial")
        try:
            curves[name] = best_trial_curves(client, run_id, int(trial)) if run_id else {}
        except mlflow.exceptions.MlflowException as error:
            print(f"evaluate: no learning curve for {name}: {error}", file=sys.stderr)
            curves[name] = {}
    comparison["learning_curves"] = curves
    comparison["fairness"] += core.side_by_side(windows)

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
    print(
        f"evaluate: {comparison['winner']} wins on {comparison['metric']} "
        f"({comparison['decided_by']}): {comparison['reason']}"
        + (
            f"; McNemar p = {difference['mcnemar']['p_value']:.3g}"
            if "mcnemar" in difference
            else ""
        )
    )
    for line in comparison["fairness"]:
        print(f"evaluate: fairness rule broken: {line}")


def _training_window(client: Any, run_id: str | None) -> tuple[int, int] | None:
    """When a training stage's MLflow run started and ended; None if unknown."""
    import mlflow

    if not run_id:
        return None
    try:
        info = client.get_run(run_id).info
    except mlflow.exceptions.MlflowException:
        return None
    return (info.start_time, info.end_time) if info.start_time and info.end_time else None


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
    client.log_artifact(run_id, args.comparison)
    client.log_artifact(run_id, args.report)
    for name in drawn:
        client.log_artifact(run_id, str(figures / name), artifact_path="figures")
