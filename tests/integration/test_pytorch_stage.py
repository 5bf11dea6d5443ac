"""The PyTorch branch through ``dvc repro train@pytorch`` on digits, on a smoke budget.

Checks the saved model answers raw features with the reported accuracy, MLflow
has the parent run, its nested trials and the logged model, the metrics file
has the TensorFlow one's keys, and a study killed mid-trial resumes: finished
trials are kept, the interrupted one is failed and replaced.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import run, set_params, smoke_repository, stage_env

pytestmark = pytest.mark.slow

STAGE = "train@pytorch"


def set_train(repo, **values):
    set_params(repo, train=values)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # No pruner: the resume test needs a trial that runs until it is killed.
    train = {"trials": 2, "epochs": 5, "patience": 5, "pruner": "none"}
    repo = smoke_repository(tmp_path_factory.mktemp("pytorch"), train=train)
    first = run(["dvc", "repro", STAGE], repo)
    return repo, first


def study(repo):
    metrics = json.loads((repo / "metrics/pytorch.json").read_text())
    storage = f"sqlite:///{repo / 'optuna' / 'studies.db'}"
    name = next(
        s.study_name for s in optuna.get_all_study_summaries(storage) if "pytorch" in s.study_name
    )
    return metrics, optuna.load_study(study_name=name, storage=storage)


def test_the_saved_model_answers_raw_features_with_the_reported_accuracy(trained):
    from components.contracts import load_constants, load_model_card
    from components.training.features import raw_matrix

    repo, first = trained
    assert f"{STAGE}:" in first.stdout
    metrics = json.loads((repo / "metrics/pytorch.json").read_text())
    assert metrics["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "run": 2}
    assert metrics["pushed"] and not metrics["cached"]
    constants = load_constants(repo / "data/clean/preprocessing.json")
    test = pd.read_parquet(repo / "data/clean/test.parquet")
    model = torch.export.load(repo / "models/pytorch/model.pt2").module()
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(raw_matrix(test, constants))).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    classes = np.array(constants.label.classes)
    accuracy = float((classes[probabilities.argmax(axis=1)] == test["target"].to_numpy()).mean())
    assert accuracy == pytest.approx(metrics["test/accuracy"], abs=1e-6)
    card = load_model_card(repo / "models/pytorch")
    assert card.framework == "pytorch" and card.artifact == "model.pt2"
    assert list(card.columns) == list(constants.numeric)


def test_the_metrics_have_the_tensorflow_files_keys(trained):
    from components.contracts import load_training_metrics

    repo, _ = trained
    # Every framework's file is the one contract, written by the one driver.
    pytorch = json.loads((repo / "metrics/pytorch.json").read_text())
    assert set(pytorch) == set(load_training_metrics(repo / "metrics/pytorch.json").to_dict())
    tensorflow = load_training_metrics(repo / "metrics/tensorflow.json")
    assert set(pytorch["trials"]) == set(tensorflow.trials)


def test_mlflow_has_the_parent_run_its_trials_and_the_model(trained):
    import mlflow

    repo, _ = trained
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["digits"], output_format="pandas")
    parents = runs[runs["tags.bakeoff.stage"] == STAGE]
    assert len(parents) == 1
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED"
    assert parent["tags.bakeoff.framework"] == "pytorch"
    assert len(parent["tags.bakeoff.dvc_data_hash"]) == 32
    assert parent["tags.bakeoff.git_commit"]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert len(children) == 2
    assert set(children["tags.bakeoff.trial_state"]) == {"COMPLETE"}
    assert children["metrics.val/accuracy"].notna().all()
    artifacts = mlflow.artifacts.list_artifacts(run_id=parent["run_id"], artifact_path="optuna")
    assert {a.path.split("/")[-1] for a in artifacts} >= {"optuna_history.png"}
    logged = mlflow.pytorch.load_model(f"runs:/{parent['run_id']}/model")
    info = mlflow.models.get_model_info(f"runs:/{parent['run_id']}/model")
    assert info.signature is not None and info.saved_input_example_info is not None
    raw = torch.zeros(2, 64)
    assert logged(raw).shape == (2, 10)


def test_a_study_killed_mid_trial_resumes_without_rerunning_finished_trials(trained):
    repo, _ = trained
    _, before = study(repo)
    finished = {t.number: t.value for t in before.trials}
    # A bigger budget extends the same study (the budget is not part of its name).
    set_train(repo, trials=3)
    cmd = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    cmd = cmd.replace("${key}", "pytorch").replace("${ingest.name}", "digits")
    process = subprocess.Popen(
        shlex.split(cmd),
        cwd=repo,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            _, live = study(repo)
            running = [t for t in live.trials if t.state == optuna.trial.TrialState.RUNNING]
            if running:
                break  # mid-way through the third trial
            assert process.poll() is None, "the stage finished before it could be interrupted"
            time.sleep(0.2)
        else:
            pytest.fail("no trial started in time")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the stage ended before it was killed"
    again = run(["dvc", "repro", STAGE], repo)
    assert f"{STAGE}:" in again.stdout
    metrics, after = study(repo)
    states = {t.number: t.state for t in after.trials}
    assert states[2] == optuna.trial.TrialState.FAIL  # the killed trial
    assert {n: after.trials[n].value for n in finished} == finished  # kept, not rerun
    assert metrics["trials"] == {"complete": 3, "pruned": 0, "failed": 1, "run": 4}
    assert "up to date" in run(["dvc", "status", STAGE], repo).stdout
