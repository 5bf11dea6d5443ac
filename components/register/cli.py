"""``bakeoff register``: the DVC stage that gates, registers and pushes the winner."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from components.errors import ParamsError
from components.outputs import staged_outputs
from components.params import load_params, number, section
from components.training import tracking
from components.training.search import TuningParams

STAGE = "register"


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
    parser.add_argument("--data-dir", required=True, help="folder of the clean splits")
    parser.add_argument("--preprocessing", required=True, help="the shared constants (JSON)")
    parser.add_argument("--tensorflow-model", required=True, help="TensorFlow's model folder")
    parser.add_argument("--pytorch-model", required=True, help="PyTorch's model folder")
    parser.add_argument(
        "--serving-dir",
        required=True,
        help="where promoted versions are pushed, as <name>/<version>/ (never overwritten)",
    )
    parser.add_argument("--out", required=True, help="the registration record to write (JSON)")


def params_from(raw: dict[str, Any], dataset: str) -> Any:
    """The ``register`` section, checked and unpacked."""
    from components.register.core import RegisterParams

    name = raw.get("model_name", "auto")
    if not isinstance(name, str) or not name.strip():
        raise ParamsError("register.model_name", f"expected a name or auto; found {name!r}")
    return RegisterParams(
        model_name=f"bakeoff-{dataset}" if name == "auto" else name,
        tolerance=number(raw.get("tolerance", 0.005), "register.tolerance", 0.0),
    )


def run(args: argparse.Namespace) -> None:
    """Gate the winner against the champion, register it with its alias, push it if promoted."""
    import mlflow
    import pandas as pd

    from components.register import core
    from components.training.features import raw_matrix

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = Path.cwd()
    params = load_params(args.params)
    tuning = TuningParams.from_section(section(params, "train"))
    constants = json.loads(Path(args.preprocessing).read_text(encoding="utf-8"))
    dataset = constants.get("dataset") or "bakeoff"
    own = params_from(params.get(STAGE) or {}, dataset)
    exports = Path(args.exports)
    manifest = json.loads((exports / "manifest.json").read_text(encoding="utf-8"))
    comparison = json.loads(Path(args.comparison).read_text(encoding="utf-8"))
    framework = manifest["framework"]
    metric = comparison["metric"].split("/", 1)[1]
    test = pd.read_parquet(Path(args.data_dir) / "test.parquet")

    def score(onnx_file: Path, described: Mapping[str, Any]) -> float:
        return core.score_export(onnx_file, described, test, constants, metric)

    uri = tracking.tracking_uri(tuning.tracking_uri, root)
    experiment = tracking.use_experiment(uri, dataset, root / "mlflow" / "artifacts")
    client = mlflow.MlflowClient(uri)
    new = score(exports / manifest["formats"]["onnx"]["path"], manifest)
    champion = core.champion_score(client, own.model_name, score)
    decision = core.gate(new, champion, metric=metric, tolerance=own.tolerance)
    training_run = client.get_run(manifest["source"]["mlflow_run_id"])
    tags = core.version_tags(training_run, comparison, framework, root)
    run_id = client.create_run(
        experiment,
        run_name=f"register: {framework} as {decision.alias}",
        tags={tracking.TAG_STAGE: STAGE, **tags},
    ).info.run_id
    try:
        with mlflow.start_run(run_id=run_id):
            model_dir = Path(getattr(args, f"{framework}_model"))
            example = raw_matrix(test.head(5), constants)
            logged = _log_native(framework, model_dir, constants, example)
            mlflow.log_artifact(str(exports / manifest["formats"]["onnx"]["path"]), core.ONNX_PATH)
            mlflow.log_artifact(str(exports / "manifest.json"), core.ONNX_PATH)
            for report in (args.comparison, args.report, args.parity):
                mlflow.log_artifact(report, "reports")
            mlflow.log_metric(f"test/{metric}", new)
            if champion.score is not None:
                mlflow.log_metric(f"champion.test/{metric}", champion.score)
        registered = mlflow.register_model(logged.model_uri, own.model_name, tags=tags)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    version = str(registered.version)
    try:
        client.update_model_version(own.model_name, version, core.description(comparison, decision))
        client.set_model_version_tag(own.model_name, version, core.TAG_ALIAS, decision.reason)
        pushed = (
            core.push(exports, manifest, Path(args.serving_dir), own.model_name, version)
            if decision.promote
            else None
        )
        client.set_registered_model_alias(own.model_name, decision.alias, version)
    except BaseException:
        # No version without its alias and push: a rerun registers it again.
        client.delete_model_version(own.model_name, version)
        client.set_terminated(run_id, status="FAILED")
        raise
    record = {
        "model_name": own.model_name,
        "version": version,
        "framework": framework,
        "alias": decision.alias,
        "promoted": decision.promote,
        "reason": decision.reason,
        "metric": f"test/{metric}",
        "score": new,
        "champion_before": asdict(champion),
        "pushed_to": str(pushed) if pushed else None,
        "mlflow_run_id": run_id,
        "tags": tags,
    }
    with staged_outputs() as staged:
        staged.write_json(args.out, record)
    print(
        f"register: {own.model_name} version {version} ({framework}) is {decision.alias}: {decision.reason}"
    )
    if pushed:
        print(f"register: pushed to {pushed}")


def _log_native(
    framework: str, model_dir: Path, constants: dict[str, Any], example: np.ndarray
) -> Any:
    """Log the winner in its own MLflow flavour, serving matrix in, as the active run's ``model``."""
    if framework == "pytorch":
        from components.export.pytorch import load_native
        from components.train_pytorch.core import log_model

        return log_model(load_native(model_dir, constants), example)
    import mlflow.tensorflow
    import tensorflow as tf
    from mlflow.models import infer_signature

    from components.evaluate.models import latest_version
    from components.export.tensorflow import load_keras, raw_module

    module = raw_module(load_keras(latest_version(model_dir)), constants)
    output = module(tf.constant(example)).numpy()
    return mlflow.tensorflow.log_model(
        module,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=[f"tensorflow=={tf.__version__}"],
    )
