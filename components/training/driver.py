"""The one training sequence every framework runs, whatever runs it.

params -> constants -> architecture -> study name -> stores (:func:`prepare`),
then parent run -> study -> best -> test -> quality gate -> save -> log model
-> metrics (:func:`train`). A framework supplies only its :class:`Backend`;
its orchestrator supplies the encoded splits: this process for PyTorch
(:func:`run_stage`), the TFX Trainer's ``run_fn`` for TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from components import contracts, progress
from components.backends.base import (
    FOLLOWER,
    LAUNCHER,
    Backend,
    FitSettings,
    RuntimeSettings,
    SplitArrays,
    machine,
    runtime_settings,
)
from components.contracts import SPLITS, Constants, ModelCard, TrainingMetrics
from components.errors import ParamsError
from components.outputs import staged_directory, staged_outputs
from components.params import load_params, number, section, whole
from components.training import features, tracking
from components.training import study as studies
from components.training.scores import test_scores
from components.training.search import Hyperparams, TuningParams
from components.training.spec import CNN, MLP
from components.training.stores import store_root

#: What the study name leaves out: raising the budget extends a study instead of starting over.
BUDGET = ("trials", "timeout_s")
#: Where every trial of every framework writes its TensorBoard event files (not tracked).
TENSORBOARD_DIR = "logs/tensorboard"
#: The per-epoch values a training stage keeps of its best trial (its learning curve).
CURVES = ("train/loss", "val/loss", "val/accuracy", "val/rmse")


@dataclass(frozen=True)
class FrameworkParams:
    """The keys every ``train_<framework>`` section has; a backend's orchestrator reads the rest.

    What changes the framework's speed is in ``runtime.<framework>`` (:class:`RuntimeSettings`).
    """

    workers: int = 1
    trial_dir: str = "trials"
    min_accuracy: float = 0.5
    max_rmse: float = 1e12

    @classmethod
    def from_section(cls, raw: dict[str, Any], framework: str) -> FrameworkParams:
        """Check and unpack the common keys of ``train_<framework>``."""
        key = f"train_{framework}"
        default = cls()
        return cls(
            workers=whole(raw.get("workers", default.workers), f"{key}.workers", 1),
            trial_dir=str(raw.get("trial_dir", f"{default.trial_dir}/{framework}")),
            min_accuracy=number(
                raw.get("min_accuracy", default.min_accuracy), f"{key}.min_accuracy", 0.0
            ),
            max_rmse=number(raw.get("max_rmse", default.max_rmse), f"{key}.max_rmse", 0.0),
        )

    def passes(self, task: str, test: dict[str, float]) -> bool:
        """The quality gate: test accuracy at least the floor, or test RMSE at most the ceiling."""
        if task == contracts.CLASSIFICATION:
            return test["accuracy"] >= self.min_accuracy
        return test["rmse"] <= self.max_rmse


@dataclass(frozen=True)
class StageJob:
    """Everything one run of a training stage needs, resolved from params and paths."""

    framework: str
    root: Path
    params_path: Path
    data_dir: Path
    preprocessing: Path
    constants: Constants
    tuning_raw: dict[str, Any]
    own_raw: dict[str, Any]  # the whole train_<framework> section, for its orchestrator
    plan: studies.StudyPlan
    data_hash: str
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    @property
    def dataset(self) -> str:
        """The data set's name (the MLflow experiment)."""
        return self.constants.dataset

    @property
    def tuning(self) -> TuningParams:
        """The ``train`` section, unpacked."""
        return TuningParams.from_section(self.tuning_raw)

    @property
    def own(self) -> FrameworkParams:
        """The common keys of ``train_<framework>``, unpacked."""
        return FrameworkParams.from_section(self.own_raw, self.framework)

    def to_config(self) -> dict[str, Any]:
        """What the TFX Trainer needs to prepare this job again inside ``run_fn``.

        TFX hashes custom_config into its cache key: besides the paths, it holds
        what the job is derived from (the study's name hashes the tuning, the
        data and the code), so the same inputs give the same key.
        """
        return {
            "framework": self.framework,
            "params": str(self.params_path),
            "data_dir": str(self.data_dir),
            "preprocessing": str(self.preprocessing),
            "root": str(self.root),
            "study": self.plan.name,
            "tuning": self.tuning_raw,  # the budget too: raising it extends the study
            "own": self.own_raw,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StageJob:
        """The job :meth:`to_config` described, prepared again from the same files."""
        return prepare(
            config["framework"],
            Path(config["params"]),
            Path(config["data_dir"]),
            Path(config["preprocessing"]),
            Path(config["root"]),
        )


def prepare(
    framework: str, params_path: str | Path, data_dir: Path, preprocessing: Path, root: Path
) -> StageJob:
    """Read params and constants, choose the architecture, name the study; nothing is trained."""
    params = load_params(params_path)
    tuning_raw = section(params, "train")
    tuning = TuningParams.from_section(tuning_raw)
    own_raw = params.get(f"train_{framework}") or {}
    own = FrameworkParams.from_section(own_raw, framework)
    runtime = replace(runtime_settings(params, framework), workers=own.workers)
    constants = contracts.load_constants(preprocessing)
    features.preflight(constants, preprocessing)
    architecture = architecture_for(tuning, constants)
    data = tracking.data_hash([data_dir / f"{split}.parquet" for split in SPLITS] + [preprocessing])
    name = study_name(
        constants.dataset,
        framework,
        tuning_raw,
        data,
        architecture,
        code_hash(root, ("training", f"backends/{framework}")),
        # What changes the numbers a trial computes; threads, oneDNN and compiling change its speed.
        runtime.mixed_precision,
        runtime.matmul_precision,
    )
    plan = studies.StudyPlan(
        name=name,
        storage=tracking.tracking_uri(tuning.storage, root),
        framework=framework,
        metric=tuning.objective_metric(constants.task),
        architecture=architecture,
        input_dim=features.input_dim(constants),
        outputs=features.outputs(constants),
        image_shape=constants.image_shape,
        max_filters=tuning.space.max_filters,
        # With the studies: a resumed study loads its best trial from where it was trained.
        trial_dir=(store_root(root) / own.trial_dir / name).resolve(),
        tracking_uri=tracking.tracking_uri(tuning.tracking_uri, root),
    )
    return StageJob(
        framework=framework,
        root=root,
        params_path=Path(params_path).resolve(),
        data_dir=data_dir.resolve(),
        preprocessing=preprocessing.resolve(),
        constants=constants,
        tuning_raw=dict(tuning_raw),
        own_raw=dict(own_raw),
        plan=plan,
        data_hash=data,
        runtime=runtime,
    )


def encoded_splits(data_dir: Path, constants: Constants) -> SplitArrays:
    """The clean splits as model inputs and targets, with the shared encoding (read once)."""
    frames = {split: pd.read_parquet(data_dir / f"{split}.parquet") for split in SPLITS}
    x = {split: features.encode(frame, constants) for split, frame in frames.items()}
    y = {split: features.targets(frame, constants) for split, frame in frames.items()}
    return SplitArrays(x["train"], y["train"], x["val"], y["val"], x["test"], y["test"])


@dataclass(frozen=True)
class Trained:
    """What :func:`train` produced: the metrics, and whether it wrote a model folder."""

    metrics: TrainingMetrics
    card: ModelCard | None


def train(
    job: StageJob,
    backend: Backend,
    data: SplitArrays,
    model_dir: Path,
    *,
    save: str = "when_blessed",
) -> Trained:
    """Study, best trial, test, quality gate, save, log the model; return the metrics.

    ``save`` is ``when_blessed`` (a model below the gate does not replace the
    last one, as TFX's Pusher does) or ``always`` (TFX: the Trainer always
    writes its model and the Evaluator and Pusher decide what ships).
    """
    import mlflow

    constants, plan, tuning = job.constants, job.plan, job.tuning
    runtime = describe_runtime(job.runtime, backend.configure(job.runtime))
    timings: dict[str, float] = {}
    experiment = tracking.prepare_stores(plan.tracking_uri, plan.storage, job.dataset, job.root)
    plan = replace(plan, experiment_id=experiment)
    client = mlflow.MlflowClient(plan.tracking_uri)
    parent = tracking.create_stage_run(
        client,
        experiment,
        framework=job.framework,
        root=job.root,
        data=job.data_hash,
        study=plan.name,
    ).info.run_id
    settings = fit_settings(job)
    fit = partial(backend.fit_trial, data=data, settings=settings)
    test_frame = pd.read_parquet(job.data_dir / "test.parquet")
    try:
        with mlflow.start_run(run_id=parent):
            mlflow.log_params(
                {
                    f"runtime.{part}.{key}": value
                    for part, values in runtime.items()
                    for key, value in values.items()
                }
            )
            outcome = studies.run_study(
                plan, tuning, fit, workers=job.runtime.workers, parent_run_id=parent
            )
            timings["study"] = outcome.seconds
            summary = studies.log_study(outcome, plan.trial_dir / "optuna")
            progress.emit(progress.STEP, text=f"testing trial {outcome.best.number}")
            started = time.perf_counter()
            hyper = Hyperparams(**outcome.best.params)
            spec = plan.model_spec(hyper)
            network = backend.load_best(outcome.model_path, spec, hyper, constants)
            model = backend.serving_model(network, constants)
            matrix = features.raw_matrix(test_frame, constants)
            test = test_scores(
                constants.task,
                backend.predict(model, matrix),
                features.targets(test_frame, constants),
            )
            timings["test"] = time.perf_counter() - started
            blessed = job.own.passes(constants.task, test)
            best_val = float(outcome.best.values[0])
            mlflow.log_metrics(
                {
                    **{f"test/{name}": value for name, value in test.items()},
                    plan.metric: best_val,
                    "parameters": outcome.parameters,
                }
            )
            mlflow.set_tag("bakeoff.blessed", str(blessed))
            progress.emit(progress.STEP, text="logging and saving the model")
            started = time.perf_counter()
            tracking.log_model(backend, model, matrix[:5], constants.feature_order)
            card = None
            if blessed or save == "always":
                card = ModelCard.describe(
                    constants,
                    framework=job.framework,
                    artifact="",
                    format="",
                    spec=asdict(spec),
                    hyperparameters=asdict(hyper),
                    study=plan.name,
                    trial=outcome.best.number,
                    metric=plan.metric,
                    best_val=best_val,
                    test=test,
                )
                card = _save(backend, network, constants, outcome.model_path, model_dir, card)
            timings["save"] = time.perf_counter() - started
    except BaseException:
        client.set_terminated(parent, status="FAILED")
        raise
    client.set_terminated(parent, status="FINISHED")
    best = outcome.best.user_attrs
    history = best.get("history") or {}
    metrics = TrainingMetrics(
        framework=job.framework,
        metric=plan.metric,
        best_val=best_val,
        best_trial=int(summary["best_trial"]),
        best_params=summary["best_params"],
        best_epochs=int(best.get("epochs", 0)),
        best_fit_seconds=float(best.get("fit_seconds", 0.0)),
        train_examples_per_s=float(best.get("examples_per_s", 0.0)),
        parameters=outcome.parameters,
        training_seconds=outcome.seconds,
        test=test,
        trials={key: summary[key] for key in ("complete", "pruned", "failed")}
        | {"run": len(outcome.study.trials)},
        blessed=blessed,
        pushed=card is not None,
        # No trial ran: the study in the storage had already spent its budget.
        cached=outcome.ran == 0,
        mlflow_run_id=parent,
        component_seconds={name: round(value, 2) for name, value in timings.items()},
        peak_memory_mb=peak_memory_mb(),
        learning_curve={key: list(history[key]) for key in CURVES if key in history},
        runtime=runtime,
        study=plan.name,
        data_hash=job.data_hash,
        # Every trial reports each epoch to Optuna, pruned ones too.
        trial_epochs=sum(len(trial.intermediate_values) for trial in outcome.study.trials),
    )
    return Trained(metrics, card)


def fit_settings(job: StageJob) -> FitSettings:
    """What every trial's fit of the job needs besides its draw and data."""
    return FitSettings(
        task=job.constants.task,
        metric=job.plan.metric,
        epochs=job.tuning.epochs,
        patience=job.tuning.patience,
        seed=job.tuning.seed,
        trial_dir=job.plan.trial_dir,
        target=features.target_scale(job.constants),
        runtime=job.runtime,
        # Both frameworks' studies side by side under one folder: bakeoff tensorboard.
        events_dir=store_root(job.root) / TENSORBOARD_DIR / job.plan.name,
    )


def _save(
    backend: Backend,
    network: Any,
    constants: Constants,
    best_path: Path,
    model_dir: Path,
    card: ModelCard,
) -> ModelCard:
    """Replace the model folder: the native artifact and ``model.json`` beside it."""
    with staged_directory(model_dir) as folder:
        artifact, described = backend.save(network, constants, folder, best_path)
        card = replace(card, artifact=artifact, format=described)
        contracts.write_json(folder / contracts.MODEL_CARD, card)
    return card


def run_stage(
    job: StageJob, backend: Backend, model_dir: Path, metrics_path: Path, schema: Path
) -> TrainingMetrics | None:
    """The whole stage in this process: encode the splits, train, write the metrics file.

    When the backend trains each trial on several processes, this process may
    only start them (they run the stage; None), or follow the leading one's
    trials (None: the leader writes the outputs).
    (``schema`` is for orchestrators that validate the data themselves, as TFX does.)
    """
    with backend.processes(job.own_raw) as part:
        if part == LAUNCHER:
            return None
        began, started = int(time.time() * 1000), time.perf_counter()
        data = encoded_splits(job.data_dir, job.constants)
        load_seconds = time.perf_counter() - started
        if part == FOLLOWER:
            backend.configure(job.runtime)
            settings = fit_settings(job).follower()
            backend.follow(data, settings, lambda hyper: job.plan.model_spec(hyper))
            return None
        trained = train(job, backend, data, model_dir)
    metrics = replace(
        trained.metrics,
        component_seconds={"load": round(load_seconds, 2), **trained.metrics.component_seconds},
        window=(began, int(time.time() * 1000)),
        stage_seconds=process_seconds(),
    )
    with staged_outputs() as staged:
        staged.write_json(metrics_path, metrics.to_dict())
    return metrics


def architecture_for(tuning: TuningParams, constants: Constants) -> str:
    """The architecture the params ask for: a CNN for image features unless told otherwise."""
    shape = constants.image_shape
    architecture = tuning.architecture or (CNN if shape else MLP)
    if architecture != CNN:
        return architecture
    if not shape:
        raise ParamsError(
            "train.architecture", "cnn needs image features (ingest.image_shape); found none"
        )
    if shape[0] * shape[1] != features.input_dim(constants):
        raise ParamsError(
            "train.architecture",
            f"cnn needs every input to be a pixel: image_shape {list(shape)} covers "
            f"{shape[0] * shape[1]} values, the features encode to {features.input_dim(constants)}",
        )
    return architecture


def code_hash(root: Path, packages: tuple[str, ...]) -> str:
    """A hash of a trainer's code (the packages under ``components/``)."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / "components" / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def study_name(dataset: str, framework: str, tuning_raw: dict[str, Any], *inputs: Any) -> str:
    """The Optuna study of a stage run: the same inputs resume it, others start a new one.

    The budget (``trials``, ``timeout_s``) is left out: raising it extends the
    study instead of starting over.
    """
    tuning = {key: value for key, value in tuning_raw.items() if key not in BUDGET}
    fingerprint = hashlib.sha256(
        json.dumps([tuning, *inputs], sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    return f"{dataset}-{framework}-{fingerprint}"


def describe_runtime(declared: RuntimeSettings, applied: dict[str, Any]) -> dict[str, Any]:
    """What a framework ran with: the params' settings, its own answers, and the machine."""
    return {"declared": declared.declared(), "applied": applied, "machine": machine()}


def process_seconds() -> float:
    """Wall seconds since this process started: a stage's cost with its start-up and imports."""
    import psutil

    return round(time.time() - psutil.Process().create_time(), 2)


def peak_memory_mb() -> float:
    """Peak resident memory of this process or of any child it waited for, in MiB."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(self_kb, children_kb) / 1024, 1)


def describe(metrics: TrainingMetrics) -> str:
    """The stage's one-line summary."""
    tests = ", ".join(f"test/{k} {v:.4f}" for k, v in metrics.test.items())
    verdict = f"{'blessed' if metrics.blessed else 'not blessed'}, " + (
        "saved" if metrics.pushed else "not saved"
    )
    return (
        f"train@{metrics.framework}: {metrics.metric} {metrics.best_val:.4f} "
        f"(trial {metrics.best_trial}), {tests}; {verdict}"
        + (" (cached: nothing was trained again)" if metrics.cached else "")
    )
