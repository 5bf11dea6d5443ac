"""The TFX pipeline of the TensorFlow branch: ``create_pipeline(config) -> tfx.dsl.Pipeline``.

ExampleGen reads the clean splits as they are (no re-splitting); StatisticsGen,
ImportSchemaGen (the project's schema), ExampleValidator and a gate that stops
on anomalies; Transform with the shared constants; Trainer (Optuna inside
``run_fn``); Evaluator against the last blessed model other than the
candidate; Pusher when blessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import components.backends.tensorflow as tf_branch
from components.contracts import SPLITS

MODULES = Path(tf_branch.__file__).parent
TRANSFORM_MODULE = MODULES / "transform_module" / "preprocessing.py"
TRANSFORM_FN = "components.backends.tensorflow.transform_module.preprocessing.preprocessing_fn"
TRAINER_MODULE = MODULES / "trainer_module" / "trainer.py"
# The data components' Beam options on one machine: the DirectRunner, in this
# process. ``train_tensorflow.beam_args`` are appended, so they can override
# these (Beam keeps an option's last value) or name another runner.
DIRECT_RUNNER_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
# The Evaluator's baseline: the newest blessed model other than the candidate
# (``baseline.py``; keeps an unchanged rerun cached), or TFX's own
# LatestBlessedModelStrategy, the only blessed-model resolver that
# KubeflowV2DagRunner compiles.
PREVIOUS_BLESSED = "previous_blessed"
LATEST_BLESSED = "latest_blessed"


@dataclass(frozen=True)
class EvalThresholds:
    """The Evaluator's gate: a floor (or ceiling) on the metric and the largest allowed regression."""

    task: str
    bound: float
    max_change: float


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline is built from; paths are absolute."""

    name: str
    root: Path
    metadata: Path
    data_dir: Path
    schema_file: Path
    push_dir: Path
    constants: dict[str, Any]
    trainer: dict[str, Any]
    thresholds: EvalThresholds
    transform_code: str = ""
    enable_cache: bool = True
    beam_args: tuple[str, ...] = DIRECT_RUNNER_ARGS
    baseline: str = PREVIOUS_BLESSED


def _eval_config(thresholds: EvalThresholds) -> Any:
    import tensorflow_model_analysis as tfma

    from components.backends.tensorflow.transform_module.preprocessing import LABEL

    if thresholds.task == "classification":
        metric, direction = "SparseCategoricalAccuracy", tfma.MetricDirection.HIGHER_IS_BETTER
        value = tfma.GenericValueThreshold(lower_bound={"value": thresholds.bound})
        change = tfma.GenericChangeThreshold(
            direction=direction, absolute={"value": -thresholds.max_change}
        )
    else:
        metric, direction = "MeanSquaredError", tfma.MetricDirection.LOWER_IS_BETTER
        value = tfma.GenericValueThreshold(upper_bound={"value": thresholds.bound})
        change = tfma.GenericChangeThreshold(
            direction=direction, absolute={"value": thresholds.max_change}
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=LABEL,
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name=metric,
                        threshold=tfma.MetricThreshold(
                            value_threshold=value, change_threshold=change
                        ),
                    ),
                ]
            )
        ],
    )


def create_pipeline(config: PipelineConfig) -> Any:
    """Build the pipeline; nothing runs until a runner runs it."""
    from tfx import v1 as tfx
    from tfx.components import FileBasedExampleGen
    from tfx.dsl.components.base import executor_spec

    from components.backends.tensorflow import parquet_executor
    from components.backends.tensorflow.baseline import PreviousBlessedModelStrategy
    from components.backends.tensorflow.gate import AnomaliesGate

    example_gen = FileBasedExampleGen(
        input_base=str(config.data_dir),
        input_config=tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name=split, pattern=f"{split}.parquet") for split in SPLITS
            ]
        ),
        custom_executor_spec=executor_spec.BeamExecutorSpec(parquet_executor.Executor),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(config.schema_file))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        # By import path, not module_file: with UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES
        # TFX loads a module_file as 'user_module_0', a name Beam workers in other
        # processes (multi_processing, a portable runner) cannot import; the project
        # is installed in their environment. The code's hash keeps the cache honest.
        preprocessing_fn=TRANSFORM_FN,
        custom_config={"constants": config.constants, "code": config.transform_code},
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
    )
    transform.add_upstream_node(gate)  # nothing is transformed unless the data passed validation
    trainer = tfx.components.Trainer(
        module_file=str(TRAINER_MODULE),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["val"]),
        custom_config=config.trainer,
    )
    blessed: dict[str, Any] = {
        "model": tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        "model_blessing": tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    }
    if config.baseline == LATEST_BLESSED:
        resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy, **blessed
        ).with_id("latest_blessed_model_resolver")
    else:
        resolver = tfx.dsl.Resolver(
            strategy_class=PreviousBlessedModelStrategy,
            candidate=trainer.outputs["model"],
            **blessed,
        ).with_id("previous_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"],
        eval_config=_eval_config(config.thresholds),
        example_splits=["test"],
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(config.push_dir))
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=str(config.root),
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            gate,
            transform,
            trainer,
            resolver,
            evaluator,
            pusher,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(config.metadata)
        ),
        beam_pipeline_args=list(config.beam_args),
    )
