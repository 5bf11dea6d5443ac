"""The PyTorch stage on two CPU processes: Lightning's DDP strategy over gloo, launched by torch's elastic agent.

One process and two give the same parameters at the same global batch; a
whole stage on two processes leaves one model and one set of Optuna and MLflow
records; a process killed mid-study fails the stage with one line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import optuna
import pytest

from tests.conftest import ROOT, run, smoke_repository, stage_env
from tests.helpers.processes import stage_with_a_worker_killed

pytestmark = pytest.mark.slow

TWO_PROCESSES = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc_per_node=2",
]


def test_two_processes_take_the_steps_one_process_takes(tmp_path):
    steps = ["-m", "tests.helpers.ddp_steps", str(tmp_path)]
    for command in ([sys.executable, *steps], [*TWO_PROCESSES, *steps]):
        result = subprocess.run(command, cwd=ROOT, env=stage_env(), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    initial = np.load(tmp_path / "initial.npz")
    for case in ("one_step-sgd", "one_step-adam", "one_epoch-sgd", "one_epoch-adam"):
        single, *ranks = (
            np.load(tmp_path / f"{case}-{who}.npz") for who in ("single", "rank0", "rank1")
        )
        for name in single:
            # The steps moved the parameters, the same way on one process and on two.
            assert np.abs(single[name] - initial[name]).max() > 1e-3, (case, name)
            for rank in ranks:
                np.testing.assert_allclose(rank[name], single[name], atol=1e-5, err_msg=case)


@pytest.fixture(scope="module")
def two_process_stage(tmp_path_factory):
    repo = smoke_repository(
        tmp_path_factory.mktemp("ddp"),
        train={"trials": 2, "epochs": 2, "architecture": "mlp", "pruner": "none"},
        train_pytorch={"devices": 2},
    )
    result = run(["dvc", "repro", "train@pytorch"], repo)
    return repo, result


def test_a_study_on_two_processes_is_recorded_once(two_process_stage):
    import mlflow

    from components.training import tracking

    repo, result = two_process_stage
    metrics = json.loads((repo / "metrics/pytorch.json").read_text())
    assert metrics["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "run": 2}
    assert metrics["runtime"]["applied"]["processes_per_trial"] == 2
    assert (repo / "models/pytorch/model.pt2").is_file()
    storage = f"sqlite:///{repo / 'optuna' / 'studies.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.n_trials == 2
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    trial_runs = [r for r in runs if tracking.TAG_TRIAL in r.data.tags]
    parents = [r for r in runs if r.info.run_id == metrics["mlflow_run_id"]]
    assert len(trial_runs) == 2 and len(parents) == 1
    # Each epoch logged once, by rank 0.
    history = client.get_metric_history(trial_runs[0].info.run_id, "val/accuracy")
    assert len(history) == 2
    # The summary is printed once, by rank 0.
    assert result.stdout.count("train@pytorch:") == 1


def test_a_killed_process_fails_the_stage_with_one_line(tmp_path):
    repo = smoke_repository(
        tmp_path,
        train={"trials": 2, "epochs": 200, "patience": 200, "architecture": "mlp"},
        train_pytorch={"devices": 2},
    )
    run(["dvc", "repro", "clean"], repo)
    stage = stage_with_a_worker_killed(repo, "pytorch", b"LOCAL_RANK=1\0", stage_env())
    assert stage.returncode == 1
    last = stage.stderr.strip().splitlines()[-1]
    assert last.startswith("bakeoff train: error: train@pytorch: DDP process rank 1 of 2 failed")
    assert not (repo / "models/pytorch/model.pt2").exists()
