"""``bakeoff train --framework pytorch``: the DVC stage ``train@pytorch``."""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.outputs import staged_outputs
from components.params import flag, load_params, number, section, whole
from components.training import tracking
from components.training.cli import (
    architecture_for,
    code_hash,
    cpu_threads,
    inputs_hash,
    peak_memory_mb,
    study_name,
)
from components.training.features import input_dim, outputs
from components.training.search import TuningParams
from components.training.study import StudyPlan

FRAMEWORK = "pytorch"
CODE_PACKAGES = ("training", "train_pytorch")


@dataclass(frozen=True)
class PytorchParams:
    """The ``train_pytorch`` section of params.yaml, unpacked."""

    threads: int
    workers: int
    mixed_precision: bool
    trial_dir: str
    min_accuracy: float
    max_rmse: float

    @classmethod
    def from_section(cls, raw: dict[str, Any]) -> PytorchParams:
        """Check and unpack the raw ``train_pytorch`` mapping."""
        return cls(
            threads=whole(raw.get("threads", 0), "train_pytorch.threads", 0),
            workers=whole(raw.get("workers", 1), "train_pytorch.workers", 1),
            mixed_precision=flag(
                raw.get("mixed_precision", False), "train_pytorch.mixed_precision"
            ),
            trial_dir=str(raw.get("trial_dir", "lightning")),
            min_accuracy=number(raw.get("min_accuracy", 0.5), "train_pytorch.min_accuracy", 0.0),
            max_rmse=number(raw.get("max_rmse", 1e12), "train_pytorch.max_rmse", 0.0),
        )


def run(args: argparse.Namespace) -> None:
    """Resolve params and paths, run the stage's core, write the metrics file."""
    import mlflow

    from components.train_pytorch import core
    from components.train_pytorch.fit import Device

    # Lightning announces the accelerators and advertises loggers on every
    # trial's Trainer; the stage prints its own summary instead.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    root = Path.cwd()
    params = load_params(args.params)
    tuning_raw = section(params, "train")
    tuning = TuningParams.from_section(tuning_raw)
    own = PytorchParams.from_section(params.get("train_pytorch") or {})
    data_dir = Path(args.data_dir)
    constants = json.loads(Path(args.preprocessing).read_text(encoding="utf-8"))
    task = constants["task"]
    architecture = architecture_for(tuning, constants)
    data = inputs_hash(data_dir, Path(args.preprocessing))
    dataset = constants.get("dataset") or "bakeoff"
    study = study_name(
        dataset,
        FRAMEWORK,
        tuning_raw,
        data,
        architecture,
        code_hash(root, CODE_PACKAGES),
        own.mixed_precision,
    )
    threads = cpu_threads(own.threads)
    if own.workers > 1 and not threads:
        threads = len(os.sched_getaffinity(0))  # to be shared out between the workers
    plan = StudyPlan(
        name=study,
        storage=tracking.tracking_uri(tuning.storage, root),
        framework=FRAMEWORK,
        metric=tuning.objective_metric(task),
        architecture=architecture,
        input_dim=input_dim(constants),
        outputs=outputs(constants),
        image_shape=tuple(constants["image_shape"]) if constants.get("image_shape") else None,
        trial_dir=(root / own.trial_dir / study).resolve(),
    )
    uri = tracking.tracking_uri(tuning.tracking_uri, root)
    experiment = tracking.prepare_stores(uri, plan.storage, dataset, root)
    core.environment_for_workers(uri, experiment)
    client = mlflow.MlflowClient(uri)
    parent = tracking.create_stage_run(
        client, experiment, framework=FRAMEWORK, root=root, data=data, study=study
    )
    job = core.Job(
        data_dir=data_dir,
        constants=constants,
        tuning=tuning,
        plan=plan,
        model_dir=Path(args.model_dir),
        # Worker processes split the stage's CPU threads between them.
        device=Device.detect(own.mixed_precision, max(1, threads // own.workers) if threads else 0),
        workers=own.workers,
        min_accuracy=own.min_accuracy,
        max_rmse=own.max_rmse,
        parent_run_id=parent.info.run_id,
    )
    try:
        metrics = core.train(job)
    except BaseException:
        client.set_terminated(parent.info.run_id, status="FAILED")
        raise
    client.set_terminated(parent.info.run_id, status="FINISHED")
    metrics["peak_memory_mb"] = peak_memory_mb()
    Path(args.model_dir).mkdir(parents=True, exist_ok=True)
    with staged_outputs() as staged:
        staged.write_json(args.metrics, metrics)
    tests = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test/"))
    verdict = "saved" if metrics["pushed"] else "below the threshold, not saved"
    print(
        f"train@{FRAMEWORK}: {plan.metric} {metrics['best_val']:.4f} "
        f"(trial {metrics['best_trial']}), {tests}; {verdict}"
        + (" (every trial resumed from the study)" if metrics["cached"] else "")
        + f" [{job.device.accelerator}, {os.environ.get('CUDA_VISIBLE_DEVICES', 'all')} visible]"
        * (job.device.accelerator == "gpu")
    )
