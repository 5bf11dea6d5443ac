"""The Optuna study both trainers run: resumable, tracked, tolerant of diverging trials.

The framework supplies one function, ``fit(trial, hyper, spec)``, that trains one
model and returns a :class:`TrialResult`; everything else (drawing the
hyperparameters, the budget, resuming, failing trials, MLflow's nested runs,
choosing the best trial) is here, so both frameworks get exactly the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from components.errors import BakeoffError
from components.training import search, tracking
from components.training.search import Hyperparams, TuningParams
from components.training.spec import ModelSpec, parameter_count


class Diverged(Exception):
    """A trial's loss became NaN or infinite; the trial is failed and the study goes on."""


class AllTrialsFailed(BakeoffError):
    """No trial of the study finished; the stage cannot produce a model."""


@dataclass
class TrialResult:
    """What one trial produced."""

    value: float
    epochs: int
    model_path: Path
    history: dict[str, list[float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    examples_per_s: float = 0.0


@dataclass(frozen=True)
class StudyPlan:
    """Where the study lives and what it trains."""

    name: str
    storage: str
    framework: str
    metric: str
    architecture: str
    input_dim: int
    outputs: int
    image_shape: tuple[int, int] | None
    trial_dir: Path


@dataclass
class StudyOutcome:
    """The finished study and its best trial."""

    study: optuna.Study
    best: optuna.trial.FrozenTrial
    model_path: Path
    parameters: int
    counts: dict[str, int]
    seconds: float


Fit = Callable[[optuna.Trial, Hyperparams, ModelSpec], TrialResult]


def run_study(plan: StudyPlan, tuning: TuningParams, fit: Fit) -> StudyOutcome:
    """Run (or resume) the study until its trial budget is spent; return the best trial.

    Finished trials in the storage count against the budget, so rerunning an
    interrupted stage runs only the trials still owed. Trials left RUNNING by an
    interrupted process are marked failed and retried from scratch.
    """
    import mlflow

    direction = search.direction(plan.metric)
    study = optuna.create_study(
        study_name=plan.name,
        storage=plan.storage,
        direction=direction,
        sampler=search.sampler(tuning),
        pruner=search.pruner(tuning),
        load_if_exists=True,
    )
    _fail_interrupted(study)
    done = [
        t for t in study.trials if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL
    ]
    remaining = max(0, tuning.trials - len(done))

    def objective(trial: optuna.Trial) -> float:
        hyper = search.suggest(trial, tuning.space)
        spec = search.model_spec(
            hyper,
            architecture=plan.architecture,
            input_dim=plan.input_dim,
            outputs=plan.outputs,
            image_shape=plan.image_shape,
        )
        trial.set_user_attr("parameters", parameter_count(spec))
        with tracking.trial_run(
            study=plan.name,
            trial=trial.number,
            framework=plan.framework,
            params=trial.params,
            finished_on=(optuna.TrialPruned,),
        ):
            mlflow.log_metric("parameters", parameter_count(spec))
            try:
                result = fit(trial, hyper, spec)
            except optuna.TrialPruned:
                mlflow.set_tag(tracking.TAG_STATE, "PRUNED")
                raise
            except Diverged as err:
                mlflow.set_tag(tracking.TAG_STATE, "FAIL")
                mlflow.set_tag("bakeoff.failure", str(err))
                raise
            if not math.isfinite(result.value):
                mlflow.set_tag(tracking.TAG_STATE, "FAIL")
                raise Diverged(f"trial {trial.number}: {plan.metric} is {result.value}")
            mlflow.set_tag(tracking.TAG_STATE, "COMPLETE")
            trial.set_user_attr("model_path", str(result.model_path))
            trial.set_user_attr("epochs", result.epochs)
            trial.set_user_attr("fit_seconds", result.fit_seconds)
            trial.set_user_attr("examples_per_s", result.examples_per_s)
            mlflow.log_metric("train/examples_per_s", result.examples_per_s)
            return result.value

    started = time.perf_counter()
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=tuning.timeout_s, catch=(Diverged,))
    seconds = time.perf_counter() - started
    counts = {
        "complete": _count(study, optuna.trial.TrialState.COMPLETE),
        "pruned": _count(study, optuna.trial.TrialState.PRUNED),
        "failed": _count(study, optuna.trial.TrialState.FAIL),
    }
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise AllTrialsFailed(
            f"study '{plan.name}': all {len(study.trials)} trials failed or were pruned "
            f"({counts['failed']} failed, {counts['pruned']} pruned); see the MLflow trial runs "
            "for each failure, or widen train.search (a lower learning_rate often helps)"
        )
    best = study.best_trial
    return StudyOutcome(
        study=study,
        best=best,
        model_path=Path(best.user_attrs["model_path"]),
        parameters=int(best.user_attrs["parameters"]),
        counts=counts,
        seconds=seconds,
    )


def _count(study: optuna.Study, state: optuna.trial.TrialState) -> int:
    return sum(1 for trial in study.trials if trial.state == state)


def _fail_interrupted(study: optuna.Study) -> None:
    # A trial still RUNNING in the storage belongs to a process that died; this
    # stage is the study's only worker at this point, so it is safe to close it.
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def log_study(outcome: StudyOutcome, artifact_dir: Path) -> dict[str, Any]:
    """Tag the best trial, log the study's plots to the parent run; return a summary."""
    import mlflow

    mlflow.set_tag(tracking.TAG_STUDY, outcome.study.study_name)
    mlflow.set_tag(tracking.TAG_BEST, str(outcome.best.number))
    artifact_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")  # no display: render to files
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plots: dict[str, Callable[[optuna.Study], Any]] = {
        "optuna_history.png": optuna_plots.plot_optimization_history
    }
    finished = [t for t in outcome.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) > 1:
        plots["optuna_importances.png"] = optuna_plots.plot_param_importances
    for name, plot in plots.items():
        try:
            plot(outcome.study)
        except (ValueError, RuntimeError) as err:  # e.g. importances of a constant space
            mlflow.set_tag(f"bakeoff.plot.{name}", f"skipped: {err}")
            continue
        path = artifact_dir / name
        figure = plt.gcf()  # the figure optuna drew the axes on
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        mlflow.log_artifact(str(path), artifact_path="optuna")
    return {"best_trial": outcome.best.number, "best_params": outcome.best.params, **outcome.counts}
