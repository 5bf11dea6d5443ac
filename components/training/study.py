"""The Optuna study both trainers run: resumable, tracked, tolerant of diverging trials.

The framework supplies one function, ``fit(trial, hyper, spec)``, that trains one
model and returns a :class:`TrialResult`; everything else (drawing the
hyperparameters, the budget, resuming, failing trials, MLflow's nested runs,
choosing the best trial) is here, so both frameworks get exactly the same.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from components import progress
from components.errors import BakeoffError
from components.training import search, tracking
from components.training.search import Hyperparams, TuningParams
from components.training.spec import ModelSpec, parameter_count

DIVERGED = "diverged"  # user attribute of a trial failed by divergence, with the reason
WORKER = "worker"  # user attribute: the host:pid of the process that ran the trial
# Optuna heartbeats of running trials: a trial silent for GRACE_S is taken as dead.
HEARTBEAT_S = 30
GRACE_S = 120


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
    epoch_seconds: list[float] = field(
        default_factory=list
    )  # wall time of each epoch, validation included


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
    max_filters: int | None = None  # the CNN's bound on filters per block
    # Where worker processes log their trial runs (the parent process sets its own).
    tracking_uri: str = ""
    experiment_id: str = ""

    def model_spec(self, hyper: Hyperparams) -> ModelSpec:
        """The architecture a trial's draw describes, at this study's input and output sizes."""
        return search.model_spec(
            hyper,
            architecture=self.architecture,
            input_dim=self.input_dim,
            outputs=self.outputs,
            image_shape=self.image_shape,
            max_filters=self.max_filters,
        )


@dataclass
class StudyOutcome:
    """The finished study and its best trial."""

    study: optuna.Study
    best: optuna.trial.FrozenTrial
    model_path: Path
    parameters: int
    counts: dict[str, int]
    seconds: float
    ran: int = 0  # trials this call ran (0: the study had already spent its budget)


Fit = Callable[[optuna.Trial, Hyperparams, ModelSpec], TrialResult]


def run_study(
    plan: StudyPlan,
    tuning: TuningParams,
    fit: Fit,
    *,
    workers: int = 1,
    parent_run_id: str | None = None,
) -> StudyOutcome:
    """Run (or resume) the study until its trial budget is spent; return the best trial.

    Finished trials in the storage count against the budget, so rerunning an
    interrupted stage runs only the trials still owed. Trials left RUNNING by a
    process that died are marked failed and retried from scratch; trials other
    live processes are running (this stage's workers on other hosts) are theirs,
    and count towards the budget once finished: every process stops when the
    study as a whole has spent it.

    With ``workers`` > 1, that many processes share the study through its
    storage (Optuna's way to parallelise; threads would share one interpreter
    lock), running the trials still owed between them. ``fit`` must then be
    picklable; the workers log their trial runs to ``plan.tracking_uri`` and
    ``plan.experiment_id``.
    """
    study = _load(plan, tuning)
    _fail_interrupted(study)
    remaining = max(0, tuning.trials - _finished(study))
    objective = Objective(plan, tuning, fit, parent_run_id)
    before = len(study.trials)
    started = time.perf_counter()
    if remaining:
        # The trials still owed are shared out, so the workers together run
        # exactly the budget, as one process would.
        count = min(workers, remaining)
        shares = [remaining // count + (worker < remaining % count) for worker in range(count)]
        helpers = []
        context = multiprocessing.get_context("spawn")
        for worker, share in enumerate(shares[1:], start=1):
            process = context.Process(target=_work, args=(plan, tuning, objective, share, worker))
            process.start()
            helpers.append(process)
        _optimize(study, tuning, objective, shares[0])
        for process in helpers:
            process.join()
        crashed = [process.exitcode for process in helpers if process.exitcode != 0]
        if crashed:
            raise BakeoffError(
                f"study '{plan.name}': {len(crashed)} of {workers} worker processes exited "
                f"with status {crashed}; their errors are printed above"
            )
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
        ran=len(study.trials) - before,
    )


class Objective:
    """The study's objective: draw, build the spec, fit in a nested MLflow run, record.

    A class rather than a closure so that worker processes can receive it.
    """

    def __init__(
        self, plan: StudyPlan, tuning: TuningParams, fit: Fit, parent_run_id: str | None
    ) -> None:
        self.plan, self.tuning, self.fit, self.parent_run_id = plan, tuning, fit, parent_run_id

    def __call__(self, trial: optuna.Trial) -> float:
        """Train one trial and return its value of the optimised metric."""
        import mlflow

        # First of all, so that no other process takes the trial for a dead one's:
        # which host and process runs it (workers on one host or many share the
        # study through its storage; this also shows how they shared it).
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        progress.emit(
            progress.TRIAL,
            state="start",
            trial=trial.number,
            index=min(_finished(trial.study) + 1, self.tuning.trials),
            of=self.tuning.trials,
        )
        plan = self.plan
        hyper = search.suggest(trial, self.tuning.space)
        spec = plan.model_spec(hyper)
        trial.set_user_attr("parameters", parameter_count(spec))
        with tracking.trial_run(
            study=plan.name,
            trial=trial.number,
            framework=plan.framework,
            params=trial.params,
            finished_on=(optuna.TrialPruned,),
            parent_run_id=self.parent_run_id,
        ):
            mlflow.log_metric("parameters", parameter_count(spec))
            try:
                result = self.fit(trial, hyper, spec)
            except optuna.TrialPruned:
                mlflow.set_tag(tracking.TAG_STATE, "PRUNED")
                raise
            except Diverged as err:
                mlflow.set_tag(tracking.TAG_STATE, "FAIL")
                mlflow.set_tag("bakeoff.failure", str(err))
                trial.set_user_attr(DIVERGED, str(err))
                raise
            if not math.isfinite(result.value):
                mlflow.set_tag(tracking.TAG_STATE, "FAIL")
                message = f"trial {trial.number}: {plan.metric} is {result.value}"
                trial.set_user_attr(DIVERGED, message)
                raise Diverged(message)
            mlflow.set_tag(tracking.TAG_STATE, "COMPLETE")
            trial.set_user_attr("model_path", str(result.model_path))
            trial.set_user_attr("epochs", result.epochs)
            trial.set_user_attr("fit_seconds", result.fit_seconds)
            trial.set_user_attr("examples_per_s", result.examples_per_s)
            # The best trial's learning curve is the training stage's output, not a
            # read-back from MLflow: the storage keeps it for a resumed study too.
            trial.set_user_attr("history", result.history)
            mlflow.log_metric("train/examples_per_s", result.examples_per_s)
            return result.value


def follow_trials(next_trial: Callable[[], Any], fit: Callable[[Any, Hyperparams], Any]) -> int:
    """A follower process's loop: fit each trial the leading process announces, with its draw.

    ``next_trial`` is the leader's next trial as this process sees it (its
    number and parameters shared), or None once the study is done. A pruned or
    diverged trial ends here as on the leader, which records it. How many were followed.
    """
    followed = 0
    while (trial := next_trial()) is not None:
        with contextlib.suppress(optuna.TrialPruned, Diverged):
            fit(trial, Hyperparams(**trial.params))
        followed += 1
    return followed


def _load(plan: StudyPlan, tuning: TuningParams, worker: int = 0) -> optuna.Study:
    # Heartbeats let any process sharing the study (on any host) tell a trial
    # whose process died from one still running; Optuna fails the stale ones.
    # (Optuna marks heartbeats experimental; they have been since 2.9, unchanged.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            plan.storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )
    study = optuna.create_study(
        study_name=plan.name,
        storage=storage,
        direction=search.direction(plan.metric),
        sampler=search.sampler(tuning),
        pruner=search.pruner(tuning),
        load_if_exists=True,
    )
    offset = len(study.trials) + 1000 * worker
    if offset:
        study.sampler = search.sampler(tuning, offset)
    return study


def _finished(study: optuna.Study) -> int:
    # What the budget has paid for: complete and pruned trials, and trials that
    # diverged (a result of their hyperparameters). A trial that failed because
    # its process died or crashed is owed again.
    state = optuna.trial.TrialState
    return sum(
        1
        for t in study.trials
        if t.state in (state.COMPLETE, state.PRUNED)
        or (t.state == state.FAIL and DIVERGED in t.user_attrs)
    )


def _optimize(study: optuna.Study, tuning: TuningParams, objective: Objective, trials: int) -> None:
    def stop_at_budget(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        # Processes on other hosts spend the same budget: stop when it is spent,
        # not after this process's own share.
        if _finished(study) >= tuning.trials:
            study.stop()

    study.optimize(
        objective,
        n_trials=trials,
        timeout=tuning.timeout_s,
        catch=(Diverged,),
        callbacks=[stop_at_budget, _report],
    )


def _report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial ended: its state and value, and the study's best so far, as a progress event."""
    complete = _count(study, optuna.trial.TrialState.COMPLETE)
    progress.emit(
        progress.TRIAL,
        state=trial.state.name.lower(),
        trial=trial.number,
        value=trial.value,
        best=study.best_value if complete else None,
    )


def _work(
    plan: StudyPlan, tuning: TuningParams, objective: Objective, trials: int, worker: int
) -> None:
    """A worker process: its share of the trials of the same study, with its own draws."""
    if plan.tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(plan.tracking_uri)
        mlflow.set_experiment(experiment_id=plan.experiment_id)
    _optimize(_load(plan, tuning, worker), tuning, objective, trials)


def steady_rate(rows: int, epoch_seconds: list[float]) -> float:
    """Training examples per second at steady state: rows over the median epoch time.

    The first epoch also traces the training graph; it is left out when there
    are later ones, so that two runs compare their training, not their warm-up.
    """
    steady = sorted(epoch_seconds[1:] or epoch_seconds)
    return rows / steady[len(steady) // 2]


def _count(study: optuna.Study, state: optuna.trial.TrialState) -> int:
    return sum(1 for trial in study.trials if trial.state == state)


def _fail_interrupted(study: optuna.Study) -> None:
    """Fail the RUNNING trials whose process is gone, and only those.

    A heartbeat older than the grace period (any host), or a worker on this host
    whose process no longer exists: failing a trial a live process is running
    would make that process crash when it reports the result.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


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
