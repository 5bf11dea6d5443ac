"""Runs the TFX pipeline with LocalDagRunner and reads what happened from ML Metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.errors import BakeoffError
from pipelines.tfx_pipeline import PipelineConfig, create_pipeline


class PipelineFailed(BakeoffError):
    """A TFX component failed; the message is the component's own."""


@dataclass
class RunReport:
    """The last pipeline run as ML Metadata recorded it."""

    run_id: str
    states: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
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

    from components.train_tensorflow.gate import AnomaliesFound

    try:
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
    elif node == "Evaluator" and kind == "ModelBlessing" and "blessed" in properties:
        report.blessed = bool(properties["blessed"].int_value)
    elif (
        node == "Pusher"
        and kind == "PushedModel"
        and properties.get("pushed")
        and properties["pushed"].int_value
    ):
        report.pushed_uri = properties["pushed_destination"].string_value
