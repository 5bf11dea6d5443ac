"""``bakeoff train --framework tensorflow``: the TFX pipeline as the DVC stage ``train@tensorflow``."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.clean.schema import load_schema
from components.errors import ParamsError
from components.outputs import staged_outputs
from components.params import flag, load_params, number, section
from components.training import tracking
from components.training.cli import (
    architecture_for,
    code_hash,
    cpu_threads,
    inputs_hash,
    peak_memory_mb,
    study_name,
)
from components.training.search import TuningParams

FRAMEWORK = "tensorflow"
CODE_PACKAGES = ("training", "train_tensorflow")


@dataclass(frozen=True)
class TensorflowParams:
    """The ``train_tensorflow`` section of params.yaml, unpacked."""

    pipeline_dir: str
    threads: int
    mixed_precision: bool
    min_accuracy: float
    max_rmse: float
    max_drop: float
    cache: bool
    beam_args: tuple[str, ...]

    @classmethod
    def from_section(cls, raw: dict[str, Any]) -> TensorflowParams:
        """Check and unpack the raw ``train_tensorflow`` mapping."""

        def threshold(key: str, default: float) -> float:
            return number(raw.get(key, default), f"train_tensorflow.{key}", 0.0)

        def switch(key: str, default: bool) -> bool:
            return flag(raw.get(key, default), f"train_tensorflow.{key}")

        return cls(
            pipeline_dir=str(raw.get("pipeline_dir", "tfx")),
            threads=int(threshold("threads", 0)),
            mixed_precision=switch("mixed_precision", False),
            min_accuracy=threshold("min_accuracy", 0.5),
            max_rmse=threshold("max_rmse", 1e12),
            max_drop=threshold("max_drop", 0.01),
            cache=switch("cache", True),
            beam_args=_beam_args(raw.get("beam_args", [])),
        )


def _beam_args(value: Any) -> tuple[str, ...]:
    # Beam pipeline options for TFX's data components (a runner past one machine).
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item.startswith("--") for item in value
    ):
        raise ParamsError(
            "train_tensorflow.beam_args",
            f"expected a list of Beam options such as --runner=FlinkRunner; found {value!r}",
        )
    return tuple(value)


def run(args: argparse.Namespace) -> None:
    """Build the pipeline from params, run it, and write the metrics file."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFX 1.16 and TF Transform need Keras 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TFX would build and pip-install a wheel of each module file per execution
    # (~3 s each, four per run) to put the module's hash in the cache key. The
    # custom_config of Transform and Trainer carry the code's hash instead.
    os.environ.setdefault("UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES", "1")
    root = Path.cwd()
    params = load_params(args.params)
    tuning_raw = section(params, "train")
    tuning = TuningParams.from_section(tuning_raw)
    tf_params = TensorflowParams.from_section(params.get("train_tensorflow") or {})
    _configure_threads(cpu_threads(tf_params.threads))

    from pipelines.tfx_pipeline import (
        DIRECT_RUNNER_ARGS,
        TRANSFORM_MODULE,
        EvalThresholds,
        PipelineConfig,
    )
    from pipelines.tfx_runner import run_pipeline

    data_dir = Path(args.data_dir).resolve()
    constants = json.loads(Path(args.preprocessing).read_text(encoding="utf-8"))
    task = constants["task"]
    architecture = architecture_for(tuning, constants)
    metric = tuning.objective_metric(task)
    data = inputs_hash(data_dir, Path(args.preprocessing))
    code = code_hash(root, CODE_PACKAGES)
    dataset = constants.get("dataset") or "bakeoff"
    study = study_name(dataset, FRAMEWORK, tuning_raw, data, architecture, code)
    pipeline_dir = (root / tf_params.pipeline_dir).resolve()
    schema_file = _schema_file(Path(args.schema), pipeline_dir / "schemas")
    storage = tracking.tracking_uri(tuning.storage, root)
    config = PipelineConfig(
        name=f"bakeoff-{dataset}",
        root=pipeline_dir / "root",
        metadata=pipeline_dir / "metadata.sqlite",
        data_dir=data_dir,
        schema_file=schema_file,
        push_dir=Path(args.model_dir).resolve(),
        constants=constants,
        trainer={
            "constants": constants,
            "tuning": tuning_raw,
            "metric": metric,
            "architecture": architecture,
            "study": study,
            "storage": storage,
            "trial_dir": str(pipeline_dir / "trials" / study),
            "code": code,
            "mixed_precision": tf_params.mixed_precision,
        },
        thresholds=EvalThresholds(
            task=task,
            bound=tf_params.min_accuracy if task == "classification" else tf_params.max_rmse**2,
            max_change=tf_params.max_drop,
        ),
        transform_code=hashlib.sha256(TRANSFORM_MODULE.read_bytes()).hexdigest()[:16],
        enable_cache=tf_params.cache,
        beam_args=DIRECT_RUNNER_ARGS + tf_params.beam_args,
    )

    import mlflow

    uri = tracking.tracking_uri(tuning.tracking_uri, root)
    experiment = tracking.prepare_stores(uri, storage, dataset, root)
    client = mlflow.MlflowClient(uri)
    parent = tracking.create_stage_run(
        client, experiment, framework=FRAMEWORK, root=root, data=data, study=study
    )
    # The Trainer resumes this run as the parent of its trial runs. An
    # environment variable, unlike custom_config, is not part of TFX's cache key.
    os.environ["BAKEOFF_MLFLOW_PARENT_RUN"] = parent.info.run_id
    os.environ["MLFLOW_TRACKING_URI"] = uri
    Path(args.model_dir).mkdir(parents=True, exist_ok=True)
    try:
        report = run_pipeline(config)
    except BaseException:
        client.set_terminated(parent.info.run_id, status="FAILED")
        raise
    summary = json.loads(
        (Path(report.model_uri or "") / "Format-Serving" / "summary.json").read_text()
    )
    metrics = {
        **{
            key: summary[key]
            for key in (
                "train_examples_per_s",
                "best_fit_seconds",
                "framework",
                "metric",
                "best_val",
                "parameters",
                "training_seconds",
                "best_epochs",
            )
        },
        **summary["test"],
        "trials": {key: summary[key] for key in ("complete", "pruned", "failed")}
        | {"run": summary["trials_run"]},
        "best_trial": summary["best_trial"],
        "best_params": summary["best_params"],
        "mlflow_run_id": parent.info.run_id,
        "component_seconds": report.seconds,
        "cached": report.fully_cached,
        "blessed": bool(report.blessed),
        "pushed": report.pushed_uri is not None,
        "peak_memory_mb": peak_memory_mb(),
    }
    client.set_tag(parent.info.run_id, "bakeoff.tfx_run_id", report.run_id)
    client.set_tag(parent.info.run_id, "bakeoff.tfx_cached", str(report.fully_cached))
    client.set_tag(parent.info.run_id, "bakeoff.blessed", str(bool(report.blessed)))
    client.set_terminated(parent.info.run_id, status="FINISHED")
    with staged_outputs() as outputs:
        outputs.write_json(args.metrics, metrics)
    verdict = "blessed and pushed" if metrics["pushed"] else "not blessed, not pushed"
    print(
        f"train@{FRAMEWORK}: {metric} {metrics['best_val']:.4f} (trial {metrics['best_trial']}), "
        f"{', '.join(f'{k} {v:.4f}' for k, v in summary['test'].items())}; {verdict}"
        + (" (every component cached)" if report.fully_cached else "")
    )


def _schema_file(schema_yaml: Path, folder: Path) -> Path:
    """The schema as a TFMD proto, at a path named after its content.

    ImportSchemaGen's cache key is the path alone; a content-named path makes an
    edited schema re-run validation instead of silently reusing the old one.
    """
    from google.protobuf import text_format

    from components.train_tensorflow.tfx_schema import tfmd_schema

    text = text_format.MessageToString(tfmd_schema(load_schema(schema_yaml)))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / digest / "schema.pbtxt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        shutil.move(tmp, path)
    return path


def _configure_threads(threads: int) -> None:
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
