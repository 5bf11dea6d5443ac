"""The PyTorch stage's core: tune with Optuna, keep the best trial, save it with its preprocessing."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from components.outputs import staged_directory
from components.train_pytorch.data import EVAL_BATCH, SplitDataModule
from components.train_pytorch.fit import Device, fit_trial, load_network
from components.train_pytorch.serving import RawFeatureModel
from components.training import study as studies
from components.training.features import feature_order, raw_matrix, target_scale
from components.training.search import Hyperparams, TuningParams, model_spec
from components.training.spec import ModelSpec

FRAMEWORK = "pytorch"
MODEL_FILE = "model.pt2"


@dataclass(frozen=True)
class Job:
    """Everything one run of the stage needs, resolved from params and paths."""

    data_dir: Path
    constants: dict[str, Any]
    tuning: TuningParams
    plan: studies.StudyPlan
    model_dir: Path
    device: Device
    workers: int
    min_accuracy: float
    max_rmse: float
    parent_run_id: str


def log_epoch(values: dict[str, float], epoch: int) -> None:
    """Log one epoch's ``split/metric`` values to the active (trial) run."""
    import mlflow

    mlflow.log_metrics(values, step=epoch)


def train(job: Job) -> dict[str, Any]:
    """Run the study, evaluate the best trial on test, save the model; return the metrics."""
    import mlflow

    constants, task, plan = job.constants, job.constants["task"], job.plan
    timings: dict[str, float] = {}
    started = time.perf_counter()
    data = SplitDataModule(job.data_dir, constants)
    data.setup()
    timings["load"] = time.perf_counter() - started
    target = target_scale(constants)
    fit = partial(
        fit_trial,
        data=data,
        task=task,
        metric=plan.metric,
        epochs=job.tuning.epochs,
        patience=job.tuning.patience,
        seed=job.tuning.seed,
        trial_dir=plan.trial_dir,
        device=job.device,
        log_epoch=log_epoch,
        target=target,
    )
    with mlflow.start_run(run_id=job.parent_run_id):
        outcome = studies.run_study(
            plan, job.tuning, fit, workers=job.workers, parent_run_id=job.parent_run_id
        )
        timings["study"] = outcome.seconds
        summary = studies.log_study(outcome, plan.trial_dir / "optuna")
        started = time.perf_counter()
        hyper = Hyperparams(**outcome.best.params)
        spec = model_spec(
            hyper,
            architecture=plan.architecture,
            input_dim=plan.input_dim,
            outputs=plan.outputs,
            image_shape=plan.image_shape,
        )
        network = load_network(outcome.model_path, spec, hyper, task, target)
        test = evaluate(network, *data.tensors("test"), task)
        timings["test"] = time.perf_counter() - started
        blessed = (
            test["test/accuracy"] >= job.min_accuracy
            if task == "classification"
            else test["test/rmse"] <= job.max_rmse
        )
        mlflow.log_metrics(
            {**test, plan.metric: float(outcome.best.values[0]), "parameters": outcome.parameters}
        )
        mlflow.set_tag("bakeoff.blessed", str(blessed))
        started = time.perf_counter()
        model = RawFeatureModel(network, constants).eval()
        example = raw_matrix(pd.read_parquet(job.data_dir / "test.parquet").head(5), constants)
        log_model(model, example)
        if blessed:  # as the TFX Pusher: a model below the threshold does not replace the last
            program = torch.export.export(
                model,
                (torch.from_numpy(example),),
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
            _save(job, program, outcome, hyper, test, spec)
        timings["save"] = time.perf_counter() - started
    best = outcome.best.user_attrs
    return {
        "framework": FRAMEWORK,
        "metric": plan.metric,
        "best_val": float(outcome.best.values[0]),
        "best_trial": summary["best_trial"],
        "best_params": summary["best_params"],
        "best_epochs": int(best.get("epochs", 0)),
        "best_fit_seconds": float(best.get("fit_seconds", 0.0)),
        "train_examples_per_s": float(best.get("examples_per_s", 0.0)),
        "parameters": outcome.parameters,
        "training_seconds": outcome.seconds,
        **test,
        "trials": {key: summary[key] for key in ("complete", "pruned", "failed")}
        | {"run": len(outcome.study.trials)},
        "mlflow_run_id": job.parent_run_id,
        "component_seconds": {name: round(value, 2) for name, value in timings.items()},
        # No trial ran: the study in the storage had already spent its budget.
        "cached": outcome.ran == 0,
        "blessed": bool(blessed),
        "pushed": bool(blessed),
    }


def evaluate(
    network: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str
) -> dict[str, float]:
    """The test metrics of a network on preprocessed inputs (the names Keras reports)."""
    with torch.inference_mode():
        network.eval()
        output = torch.cat([network(part).float() for part in x.split(EVAL_BATCH)])
    if task == "classification":
        loss = torch.nn.functional.cross_entropy(output, y)
        accuracy = (output.argmax(dim=1) == y).float().mean()
        return {"test/loss": float(loss), "test/accuracy": float(accuracy)}
    mse = torch.nn.functional.mse_loss(output, y)
    return {"test/loss": float(mse), "test/rmse": float(torch.sqrt(mse))}


def _save(
    job: Job,
    program: torch.export.ExportedProgram,
    outcome: studies.StudyOutcome,
    hyper: Hyperparams,
    test: dict[str, float],
    spec: ModelSpec,
) -> None:
    """Write the model folder: the exported program with preprocessing, its description, the checkpoint."""
    constants = job.constants
    with staged_directory(job.model_dir) as folder:
        torch.export.save(program, folder / MODEL_FILE)
        shutil.copy2(outcome.model_path, folder / "best.ckpt")
        description = {
            "framework": FRAMEWORK,
            "format": "torch.export program; torch.export.load(path).module()(inputs)",
            "input": {
                "columns": feature_order(constants),
                "dtype": "float32",
                "categorical": {
                    name: constants["vocabularies"][name] for name in constants["categorical"]
                },
                "note": "numeric as is (NaN for a gap); categorical as vocabulary position",
            },
            "output": (
                {"probabilities": [str(c) for c in constants["label"]["classes"]]}
                if constants["task"] == "classification"
                else {"value": constants["label"]["name"]}
            ),
            "spec": asdict(spec),
            "hyperparameters": asdict(hyper),
            "study": outcome.study.study_name,
            "trial": outcome.best.number,
            "metric": job.plan.metric,
            "best_val": float(outcome.best.values[0]),
            "test": test,
        }
        (folder / "model.json").write_text(
            json.dumps(description, indent=2, sort_keys=True, default=list) + "\n"
        )


def log_model(model: torch.nn.Module, example: np.ndarray) -> Any:
    """Log ``model`` (serving matrix in) to the active MLflow run as ``model``, pt2 format; its info."""
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    with torch.inference_mode():
        output = model(torch.from_numpy(example)).numpy()
    # Explicit requirements: inferring them loads the model again in a subprocess.
    return mlflow.pytorch.log_model(
        model,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )


def environment_for_workers(uri: str, experiment_id: str) -> None:
    """What Optuna worker processes need to log their trial runs to the same experiment."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
