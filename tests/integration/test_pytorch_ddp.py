"""The PyTorch stage on two CPU processes: Lightning's DDP strategy over gloo, launched by torch's elastic agent.

One process and two give the same parameters at the same global batch; a
whole stage on two processes leaves one model and one set of Optuna and MLflow
records; a process killed mid-study fails the stage with one line.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, run, smoke_repository, stage_env
from tests.helpers.processes import (
    assert_recorded_once,
    stage_on_two_processes,
    stage_with_a_worker_killed,
)

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
    return stage_on_two_processes(tmp_path_factory.mktemp("ddp"), "pytorch")


def test_a_study_on_two_processes_is_recorded_once(two_process_stage):
    repo, result = two_process_stage
    assert_recorded_once(repo, "pytorch", result.stdout)
    assert (repo / "models/pytorch/model.pt2").is_file()


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
