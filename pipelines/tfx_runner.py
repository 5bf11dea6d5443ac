"""The TensorFlow stage's orchestrator: the TFX pipeline, run with LocalDagRunner.

:func:`run_stage` builds the pipeline from the training job, runs it (the
Trainer's ``run_fn`` runs the training driver), and turns what ML Metadata
recorded into the stage's outputs: ``metrics/tensorflow.json`` and, when the
Pusher pushed, ``models/tensorflow/model.json`` beside the pushed version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from components import contracts, progress
from components.backends.base import Backend
from components.backends.tensorflow import stage
from components.backends.tensorflow.stage import METRICS_FILE
from components.clean.schema import load_schema
from components.contracts import TrainingMetrics
from components.errors import BakeoffError, ParamsError
from components.outputs import staged_outputs
from components.params import flag, number
from components.training import driver
from pipelines.tfx_pipeline import (
    DIRECT_RUNNER_ARGS,
    LATEST_BLESSED,
    TRANSFORM_MODULE,
    EvalThresholds,
    PipelineConfig,
    create_pipeline,
)

#: The Trainer's metrics file in its ModelRun artifact (``trainer_module/trainer.py``).


@dataclass(frozen=True)
class TfxParams:
    """The TFX-specific keys of ``train_tensorflow`` (the driver reads the common ones)."""

    pipeline_dir: str = "tfx"
    max_drop: float = 0.01
    cache: bool = True
    beam_args: tuple[str, ...] = ()

    @classmethod
    def from_section(cls, raw: dict[str, Any]) -> TfxParams:
        """Check and unpack them."""
        default = cls()
        return cls(
            pipeline_dir=str(raw.get("pipeline_dir", default.pipeline_dir)),
            max_drop=number(
                raw.get("max_drop", default.max_drop), "train_tensorflow.max_drop", 0.0
            ),
            cache=flag(raw.get("cache", default.cache), "train_tensorflow.cache"),
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


def run_stage(
    job: driver.StageJob, backend: Backend, model_dir: Path, metrics_path: Path, schema: Path
) -> TrainingMetrics:
    """Build and run the pipeline; write the stage's metrics and model card."""
    import mlflow

    stage.devices(job.own_raw)  # checked before the data components run

    # TFX would build and pip-install a wheel of each module file per execution
    # (~3 s each, four per run) to put the module's hash in the cache key. The
    # job in the Trainer's custom_config carries the code's hash instead.
    os.environ.setdefault("UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES", "1")
    backend.configure(job.runtime)  # threads, before the pipeline runs any op
    config = stage_config(job, model_dir, schema)
    model_dir = model_dir.resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    began = int(time.time() * 1000)
    report = run_pipeline(config)
    if not report.model_run_uri:
        raise BakeoffError(f"{config.metadata}: the TFX run recorded no Trainer output")
    trained = contracts.load_training_metrics(Path(report.model_run_uri) / METRICS_FILE)
    metrics = replace(
        trained,
        component_seconds=report.seconds,
        cached=report.fully_cached,
        blessed=bool(report.blessed),
        pushed=report.pushed_uri is not None,
        peak_memory_mb=driver.peak_memory_mb(),
        stage_seconds=driver.process_seconds(),
        # The stage's window, the data components included: what ran side by side
        # with the other trainers (the driver's own starts inside the Trainer).
        window=(began, int(time.time() * 1000)),
    )
    client = mlflow.MlflowClient(job.plan.tracking_uri)
    if not report.fully_cached:
        client.set_tag(trained.mlflow_run_id, "bakeoff.tfx_run_id", report.run_id)
        client.set_tag(trained.mlflow_run_id, "bakeoff.blessed", str(metrics.blessed))
    with staged_outputs() as staged:
        if report.pushed_uri:
            version = Path(report.pushed_uri)
            card = contracts.load_model_card(version)
            card = replace(card, artifact=version.name)
            staged.write_json(model_dir / contracts.MODEL_CARD, card.to_dict())
        staged.write_json(metrics_path, metrics.to_dict())
    return metrics


def stage_config(job: driver.StageJob, model_dir: Path, schema: Path) -> PipelineConfig:
    """The pipeline's configuration for a training job: paths, constants, gate, Beam options."""
    own = TfxParams.from_section(job.own_raw)
    gate = job.own
    pipeline_dir = (job.root / own.pipeline_dir).resolve()
    return PipelineConfig(
        name=f"bakeoff-{job.dataset}",
        root=pipeline_dir / "root",
        metadata=pipeline_dir / "metadata.sqlite",
        data_dir=job.data_dir,
        schema_file=_schema_file(schema, pipeline_dir / "schemas"),
        push_dir=model_dir.resolve(),
        constants=job.constants.to_dict(),
        trainer={"job": job.to_config()},
        thresholds=EvalThresholds(
            task=job.constants.task,
            bound=gate.min_accuracy if job.constants.classification else gate.max_rmse**2,
            max_change=own.max_drop,
        ),
        transform_code=hashlib.sha256(TRANSFORM_MODULE.read_bytes()).hexdigest()[:16],
        enable_cache=own.cache,
        beam_args=DIRECT_RUNNER_ARGS + own.beam_args,
    )


def compile_kubeflow_v2(job: driver.StageJob, schema: Path, output: Path, image: str) -> Path:
    """The stage's pipeline compiled by TFX's KubeflowV2DagRunner (Kubeflow Pipelines, Vertex).

    Compiling only: nothing runs and no cluster is reached. ``image`` must hold
    this project and its locked packages. The spec's paths (data, schema, module
    files, pipeline root) are this checkout's; a cluster needs them on shared
    storage, and Vertex takes the pipeline root at submission. The Evaluator's
    baseline is TFX's LatestBlessedModelStrategy, the one blessed-model
    resolver V2 compiles.
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow

    os.environ.setdefault("UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES", "1")
    pipeline_dir = (job.root / TfxParams.from_section(job.own_raw).pipeline_dir).resolve()
    config = replace(
        stage_config(job, pipeline_dir / "kubeflow_v2" / "push", schema),
        baseline=LATEST_BLESSED,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    runner = kubeflow.KubeflowV2DagRunner(
        config=kubeflow.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(output.parent),
        output_filename=output.name,
    )
    runner.run(create_pipeline(config), write_out=True)
    return output


def _schema_file(schema_yaml: Path, folder: Path) -> Path:
    """The schema as a TFMD proto, at a path named after its content.

    ImportSchemaGen's cache key is the path alone; a content-named path makes an
    edited schema re-run validation instead of silently reusing the old one.
    """
    from google.protobuf import text_format

    from components.backends.tensorflow.tfx_schema import tfmd_schema

    text = text_format.MessageToString(tfmd_schema(load_schema(schema_yaml)))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = folder / digest / "schema.pbtxt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        shutil.move(tmp, path)
    return path


class PipelineFailed(BakeoffError):
    """A TFX component failed; the message is the component's own."""


@dataclass
class RunReport:
    """The last pipeline run as ML Metadata recorded it."""

    run_id: str
    states: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    model_run_uri: str | None = None
    blessed: bool | None = None
    pushed_uri: str | None = None

    @property
    def fully_cached(self) -> bool:
        """True when no component executed (every execution was a cache hit)."""
        executed = {node: state for node, state in self.states.items() if "resolver" not in node}
        return bool(executed) and all(state == "CACHED" for state in executed.values())


def run_pipeline(config: PipelineConfig) -> RunReport:
    """Run the pipeline; a failing component raises with its message, as one line."""
    from tfx import v1 as tfx

    from components.backends.tensorflow.gate import AnomaliesFound

    try:
        with _components_as_steps():
            tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    except BakeoffError:
        raise
    except AnomaliesFound as err:
        raise PipelineFailed(str(err)) from None
    except RuntimeError as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, BakeoffError):
            raise cause from None
        raise
    return last_run(config.metadata)


@contextmanager
def _components_as_steps() -> Iterator[None]:
    """Each component LocalDagRunner launches, as a progress step named by its node id.

    LocalDagRunner has no hook of its own; its launcher's ``launch`` is wrapped for
    the run (TFX is pinned in the lock; the end-to-end test finds the Trainer's step
    among ``bakeoff run``'s lines).
    """
    from tfx.orchestration.portable import launcher

    original = launcher.Launcher.launch

    def launch(self: Any) -> Any:
        progress.emit(progress.STEP, text=f"TFX {self._pipeline_node.node_info.id}")
        return original(self)

    launcher.Launcher.launch = launch  # type: ignore[method-assign]
    try:
        yield
    finally:
        launcher.Launcher.launch = original  # type: ignore[method-assign]


def last_run(metadata: Path) -> RunReport:
    """Node states and key outputs of the newest pipeline run in the ML Metadata store."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    store = mlmd.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata))
    )
    run = max(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.id)
    report = RunReport(run_id=run.name)
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        node = next(
            c.name for c in store.get_contexts_by_execution(execution.id) if c.type == "node"
        )
        node = node.split(".", 1)[-1]
        report.states[node] = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        elapsed = execution.last_update_time_since_epoch - execution.create_time_since_epoch
        report.seconds[node] = round(elapsed / 1000, 2)
        outputs = [
            event.artifact_id
            for event in store.get_events_by_execution_ids([execution.id])
            if event.type
            in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
        ]
        for artifact in store.get_artifacts_by_id(outputs):
            _record(report, node, artifact, store)
    return report


def _record(report: RunReport, node: str, artifact: Any, store: Any) -> None:
    kind = store.get_artifact_types_by_id([artifact.type_id])[0].name
    properties = artifact.custom_properties
    if node == "Trainer" and kind == "Model":
        report.model_uri = artifact.uri
    elif node == "Trainer" and kind == "ModelRun":
        report.model_run_uri = artifact.uri
    elif node == "Evaluator" and kind == "ModelBlessing" and "blessed" in properties:
        report.blessed = bool(properties["blessed"].int_value)
    elif (
        node == "Pusher"
        and kind == "PushedModel"
        and properties.get("pushed")
        and properties["pushed"].int_value
    ):
        report.pushed_uri = properties["pushed_destination"].string_value
