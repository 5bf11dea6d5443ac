"""``bakeoff register``: the DVC stage that gates, registers and pushes the winner."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from components import progress
from components.contracts import (
    RegistryRecord,
    ServingLayout,
    load_comparison,
    load_constants,
    load_export_manifest,
)
from components.errors import BakeoffError
from components.evaluate.models import add_trained_inputs
from components.outputs import staged_outputs
from components.params import load_params, section
from components.training import stores, tracking
from components.training.search import TuningParams

STAGE = "register"
ONNX = "onnx"  # the format the gate scores, every version's alike


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's options; the paths match dvc.yaml."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--exports", required=True, help="the export stage's folder")
    parser.add_argument(
        "--comparison", required=True, help="the evaluate stage's comparison (JSON)"
    )
    parser.add_argument(
        "--report", required=True, help="the comparison report (Markdown), logged with the model"
    )
    parser.add_argument(
        "--parity", required=True, help="the export stage's parity table, logged with the model"
    )
    add_trained_inputs(parser)
    parser.add_argument(
        "--serving-dir",
        required=True,
        help="where promoted versions are pushed, as <name>/<version>/ (never overwritten)",
    )
    parser.add_argument("--out", required=True, help="the registration record to write (JSON)")


def params_from(raw: dict[str, Any], dataset: str, evaluate: dict[str, Any] | None = None) -> Any:
    """The ``register`` section, checked and unpacked (with the bootstrap's ``evaluate`` settings)."""
    from components.register.core import RegisterParams

    return RegisterParams.from_section(raw, dataset, evaluate)


def run(args: argparse.Namespace) -> None:
    """Gate the winner against the champion, register it with its alias, push it if promoted."""
    import mlflow
    import pandas as pd

    from components.contracts import load_parity
    from components.evaluate.models import competitor
    from components.register import core, gate
    from components.training.features import targets

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = Path.cwd()
    params = load_params(args.params)
    tuning = TuningParams.from_section(section(params, "train"))
    constants = load_constants(args.preprocessing)
    own = params_from(params.get(STAGE) or {}, constants.dataset, params.get("evaluate") or {})
    exports = Path(args.exports)
    manifest = load_export_manifest(exports)
    comparison = load_comparison(args.comparison)
    load_parity(args.parity)  # logged with the model: checked before anything is registered
    framework = manifest.framework
    chosen = competitor(framework, Path(args.models), Path(args.metrics))
    metric = comparison.metric_name
    test = pd.read_parquet(Path(args.data_dir) / "test.parquet")
    if ONNX not in manifest.formats:
        raise BakeoffError(f"{exports / 'manifest.json'}: formats.{ONNX}: missing; rerun export")
    onnx_file = exports / manifest.formats[ONNX]

    def answer(onnx: Path, described: Any) -> Any:
        return core.score_export(onnx, described, test, constants)

    uri = tracking.tracking_uri(tuning.tracking_uri, root)
    experiment = tracking.use_experiment(uri, constants.dataset, tracking.artifact_root(root))
    client = mlflow.MlflowClient(uri)
    gated = core.gate(
        constants.task,
        metric,
        answer(onnx_file, manifest.raw),
        core.champion_outputs(client, own.model_name, answer),
        targets(test, constants),
        own,
    )
    experiment_name = stores.experiment_name()
    decision = gate.in_experiment(gated.decision, experiment_name)
    new, champion = gated.score, gated.champion
    tags = core.version_tags(chosen.metrics, chosen.card, comparison, framework, root)
    run_id = client.create_run(
        experiment,
        run_name=f"register: {framework} as {decision.alias}",
        tags={tracking.TAG_STAGE: STAGE, **tags},
    ).info.run_id
    try:
        with mlflow.start_run(run_id=run_id):
            model = chosen.backend.loggable(chosen.card, chosen.folder, constants)
            rows = test.head(5)[list(chosen.card.columns)]
            layout = ServingLayout.of_card(chosen.card)
            logged = tracking.log_named_model(chosen.backend, model, rows, layout)
            mlflow.log_artifact(str(onnx_file), core.ONNX_PATH)
            mlflow.log_artifact(str(exports / "manifest.json"), core.ONNX_PATH)
            for report in (args.comparison, args.parity):
                mlflow.log_artifact(report, "reports")
            mlflow.log_metric(f"test/{metric}", new)
            if champion.score is not None:
                mlflow.log_metric(f"champion.test/{metric}", champion.score)
        registered = mlflow.register_model(logged.model_uri, own.model_name, tags=tags)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    version = str(registered.version)
    line = core.champion_line(decision, champion, version, framework)
    try:
        client.update_model_version(own.model_name, version, core.description(comparison, decision))
        with tempfile.TemporaryDirectory() as scratch:
            # The report as evaluate wrote it, its verdict closed with the gate's decision.
            report = Path(scratch) / Path(args.report).name
            report.write_text(core.with_champion(Path(args.report).read_text(), line))
            client.log_artifact(run_id, str(report), "reports")
        client.set_model_version_tag(own.model_name, version, core.TAG_ALIAS, decision.reason)
        pushed = (
            core.push(exports, manifest, Path(args.serving_dir), own.model_name, version)
            if decision.promote
            else None
        )
        if decision.moves_alias:
            client.set_registered_model_alias(own.model_name, decision.alias, version)
    except BaseException:
        # No version without its alias and push: a rerun registers it again.
        client.delete_model_version(own.model_name, version)
        client.set_terminated(run_id, status="FAILED")
        raise
    record = RegistryRecord(
        model_name=own.model_name,
        version=version,
        framework=framework,
        alias=decision.alias,
        promoted=decision.promote,
        reason=decision.reason,
        metric=f"test/{metric}",
        score=new,
        champion_before=asdict(champion),
        improvement=asdict(gated.improvement) if gated.improvement else None,
        pushed_to=str(pushed) if pushed else None,
        mlflow_run_id=run_id,
        tags=tags,
        experiment=experiment_name,
    )
    with staged_outputs() as staged:
        staged.write_json(args.out, record.to_dict())
    held = f"is {decision.alias}" if decision.moves_alias else "has no alias"
    progress.say(
        f"register: {own.model_name} version {version} ({framework}) {held}: {decision.reason}"
    )
    progress.say("register: " + line.removeprefix("- ").replace("**", ""))
    if pushed:
        progress.say(f"register: pushed to {pushed}")
