"""The shared study runner with a fake trainer: budget, resume, diverging trials, MLflow runs."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from pathlib import Path

import mlflow
import optuna
import pytest

from components.training import tracking
from components.training.search import TuningParams, suggest
from components.training.study import (
    WORKER,
    AllTrialsFailed,
    Diverged,
    StudyPlan,
    TrialResult,
    run_study,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tuning(**overrides) -> TuningParams:
    return TuningParams.from_section({"trials": 4, "epochs": 2, "seed": 7, **overrides})


def plan(tmp_path: Path) -> StudyPlan:
    return StudyPlan(
        name="digits-tensorflow-test",
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        framework="tensorflow",
        metric="val/accuracy",
        architecture="mlp",
        input_dim=64,
        outputs=10,
        image_shape=None,
        trial_dir=tmp_path / "trials",
    )


@pytest.fixture(autouse=True, scope="module")
def tracking_store(tmp_path_factory):
    # One store for the module: creating an MLflow SQLite database costs seconds.
    root = tmp_path_factory.mktemp("mlflow")
    tracking.use_experiment(f"sqlite:///{root / 'mlflow.db'}", "tiny", root / "artifacts")
    yield
    while mlflow.active_run():
        mlflow.end_run()


def fake_fit(calls: list[int], diverge: set[int] = frozenset()):
    def fit(trial, hyper, spec):
        calls.append(trial.number)
        if trial.number in diverge:
            raise Diverged("loss is nan at epoch 1")
        return TrialResult(
            value=hyper.learning_rate * 10, epochs=2, model_path=Path(f"m{trial.number}")
        )

    return fit


def test_runs_the_budget_and_picks_the_best(tmp_path):
    calls: list[int] = []
    with mlflow.start_run() as parent:
        outcome = run_study(plan(tmp_path), tuning(), fake_fit(calls))
    assert calls == [0, 1, 2, 3]
    assert outcome.counts == {"complete": 4, "pruned": 0, "failed": 0}
    assert outcome.best.value == max(t.value for t in outcome.study.trials)
    assert outcome.model_path == Path(f"m{outcome.best.number}")
    assert outcome.parameters == outcome.best.user_attrs["parameters"] > 0
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 4
    assert set(children["tags.bakeoff.trial_state"]) == {"COMPLETE"}
    assert "params.learning_rate" in children


def test_a_rerun_resumes_without_repeating_finished_trials(tmp_path):
    first: list[int] = []
    run_study(plan(tmp_path), tuning(trials=2), fake_fit(first))
    again: list[int] = []
    outcome = run_study(plan(tmp_path), tuning(trials=4), fake_fit(again))
    assert first == [0, 1]
    assert again == [2, 3]
    assert len(outcome.study.trials) == 4
    assert run_study(plan(tmp_path), tuning(trials=4), fake_fit(again)).counts["complete"] == 4
    assert again == [2, 3]


def running_trial(tmp_path: Path, worker: str) -> int:
    """A trial RUNNING in the study's storage, as the process ``worker`` left it."""
    study = optuna.create_study(
        study_name="digits-tensorflow-test", storage=plan(tmp_path).storage, direction="maximize"
    )
    trial = study.ask()
    trial.set_user_attr(WORKER, worker)
    return trial.number


def test_a_trial_left_running_by_a_dead_process_is_failed_and_replaced(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    running_trial(tmp_path, f"{socket.gethostname()}:{dead.pid}")
    calls: list[int] = []
    outcome = run_study(plan(tmp_path), tuning(trials=2), fake_fit(calls))
    assert outcome.counts == {"complete": 2, "pruned": 0, "failed": 1}
    assert calls == [1, 2]


@pytest.mark.parametrize(
    "worker",
    [f"{socket.gethostname()}:{os.getpid()}", "another-host:1"],
    ids=["a live process here", "a process on another host"],
)
def test_a_trial_another_live_process_runs_is_left_to_it(tmp_path, worker):
    number = running_trial(tmp_path, worker)
    outcome = run_study(plan(tmp_path), tuning(trials=2), fake_fit([]))
    assert outcome.counts == {"complete": 2, "pruned": 0, "failed": 0}
    [still] = [t for t in outcome.study.trials if t.number == number]
    assert still.state == optuna.trial.TrialState.RUNNING


def test_every_process_stops_when_the_study_as_a_whole_has_spent_its_budget(tmp_path):
    # Another host finishes two trials while this process runs its first one.
    def fit(trial, hyper, spec):
        calls.append(trial.number)
        other = optuna.load_study(
            study_name="digits-tensorflow-test", storage=plan(tmp_path).storage
        )
        for value in (0.1, 0.2):
            other.add_trial(
                optuna.trial.create_trial(
                    params=trial.params,
                    distributions=trial.distributions,
                    value=value,
                    user_attrs={"model_path": "elsewhere", "parameters": 1},
                )
            )
        return TrialResult(value=0.9, epochs=1, model_path=Path("here"))

    calls: list[int] = []
    outcome = run_study(plan(tmp_path), tuning(trials=3), fit)
    assert calls == [0]
    assert outcome.counts == {"complete": 3, "pruned": 0, "failed": 0}
    assert outcome.model_path == Path("here")


def test_diverging_trials_fail_and_the_study_goes_on(tmp_path):
    calls: list[int] = []
    outcome = run_study(plan(tmp_path), tuning(), fake_fit(calls, diverge={1, 2}))
    assert calls == [0, 1, 2, 3]
    assert outcome.counts == {"complete": 2, "pruned": 0, "failed": 2}


def test_all_trials_failing_fails_with_a_clear_message(tmp_path):
    with pytest.raises(
        AllTrialsFailed,
        match=r"study 'digits-tensorflow-test': all 4 trials failed or were pruned \(4 failed, 0 pruned\)",
    ):
        run_study(plan(tmp_path), tuning(), fake_fit([], diverge={0, 1, 2, 3}))


def test_all_suggestions_come_first_under_stable_names():
    trial = optuna.trial.FixedTrial(
        {
            "learning_rate": 1e-3,
            "batch_size": 64,
            "depth": 2,
            "width": 128,
            "dropout": 0.1,
            "weight_decay": 1e-5,
            "optimizer": "adam",
            "activation": "relu",
        }
    )
    hyper = suggest(trial, tuning().space)
    assert (hyper.depth, hyper.width, hyper.optimizer) == (2, 128, "adam")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trials": 0}, "train.trials: expected a whole number >= 1; found 0"),
        ({"pruner": "asha"}, "train.pruner: expected one of median, hyperband, none"),
        ({"metric": "accuracy"}, "train.metric: expected 'auto' or a val/ metric"),
        (
            {"search": {"learning_rate": [0, 1]}},
            r"train.search.learning_rate: expected \[low, high\] with low <= high above 0",
        ),
        (
            {"search": {"optimizer": ["adam", "lion"]}},
            "train.search.optimizer: expected one of adam, adamw, sgd",
        ),
        ({"search": {"depth": [2, 1]}}, r"train.search.depth: expected \[low, high\]"),
    ],
)
def test_bad_tuning_params_name_the_key(raw, message):
    from components.errors import ParamsError

    with pytest.raises(ParamsError, match=message):
        TuningParams.from_section(raw)


def test_a_pruned_trial_run_ends_finished_and_the_parent_stays_open(tmp_path):
    def fit(trial, hyper, spec):
        if trial.number == 1:
            raise optuna.TrialPruned()
        return TrialResult(value=0.5, epochs=1, model_path=Path("m"))

    with mlflow.start_run() as parent:
        outcome = run_study(plan(tmp_path), tuning(trials=2), fit)
        assert mlflow.active_run().info.run_id == parent.info.run_id
    assert outcome.counts["pruned"] == 1
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    pruned = children[children["tags.bakeoff.trial_state"] == "PRUNED"]
    assert pruned["status"].tolist() == ["FINISHED"]
    assert mlflow.get_run(parent.info.run_id).info.status == "FINISHED"


def _meeting_fit(trial, hyper, spec):
    # Module level, so worker processes can receive it. Each trial waits until both
    # workers have one running: both get trials by construction, however slowly the
    # second process starts (a fixed sleep let the first spend the budget alone).
    import os
    import time

    trial.set_user_attr("pid", os.getpid())
    meeting = Path(os.environ["MEETING_DIR"])
    (meeting / str(os.getpid())).touch()
    deadline = time.monotonic() + 300
    while len(list(meeting.iterdir())) < 2:
        assert time.monotonic() < deadline, "the second worker never started a trial"
        time.sleep(0.05)
    return TrialResult(value=hyper.learning_rate, epochs=1, model_path=Path(f"m{trial.number}"))


@pytest.mark.slow
def test_worker_processes_share_one_study_and_its_budget(tmp_path, monkeypatch):
    uri = mlflow.get_tracking_uri()
    experiment = mlflow.get_experiment_by_name("tiny")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment.experiment_id)
    (tmp_path / "meeting").mkdir()
    monkeypatch.setenv("MEETING_DIR", str(tmp_path / "meeting"))
    with mlflow.start_run() as parent:
        outcome = run_study(
            plan(tmp_path),
            tuning(trials=6),
            _meeting_fit,
            workers=2,
            parent_run_id=parent.info.run_id,
        )
    trials = outcome.study.trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)), "every trial recorded once"
    assert outcome.counts["complete"] == 6, "the workers together run exactly the budget"
    assert len({t.user_attrs["pid"] for t in trials}) == 2, "both processes ran trials"
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials), "no repeated draw"
    children = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == len(trials)


def test_a_resumed_study_does_not_draw_its_first_points_again(tmp_path):
    run_study(plan(tmp_path), tuning(trials=2), fake_fit([]))
    outcome = run_study(plan(tmp_path), tuning(trials=4), fake_fit([]))
    draws = [tuple(sorted(t.params.items())) for t in outcome.study.trials]
    assert len(set(draws)) == 4


@pytest.mark.parametrize(
    ("metric", "task", "message"),
    [
        ("val/r2", "regression", "expected one of val/rmse, val/loss for regression"),
        ("val/rmse", "classification", "expected one of val/accuracy, val/loss for classification"),
    ],
)
def test_a_metric_the_trainers_do_not_report_is_refused(metric, task, message):
    from components.errors import ParamsError

    with pytest.raises(ParamsError, match=message):
        tuning(metric=metric).objective_metric(task)


def test_a_cnn_needs_every_input_to_be_a_pixel(cleaned):
    from components.errors import ParamsError
    from components.training.driver import architecture_for

    # x1, x2 and colour's one-hot
    constants = dataclasses.replace(cleaned.preprocessing, image_shape=(1, 2))
    with pytest.raises(ParamsError, match="cnn needs every input to be a pixel"):
        architecture_for(tuning(), constants)


def test_diverged_trials_are_paid_for_and_a_rerun_runs_nothing_more(tmp_path):
    run_study(plan(tmp_path), tuning(), fake_fit([], diverge={1}))
    again: list[int] = []
    outcome = run_study(plan(tmp_path), tuning(), fake_fit(again))
    assert again == [], "a fresh run and a rerun spend the budget the same way"
    assert outcome.counts == {"complete": 3, "pruned": 0, "failed": 1}
