"""``train_pytorch.devices`` / ``num_nodes``, and the group a launched process finds itself in."""

from __future__ import annotations

import pytest

from components.backends.pytorch.ddp import Rank, Topology, launch
from components.errors import ParamsError


def test_one_process_by_default():
    assert Topology.from_section({}).world == 1


def test_devices_times_nodes_processes_train_each_trial():
    assert Topology.from_section({"devices": 2, "num_nodes": 3}).world == 6


@pytest.mark.parametrize("raw", [{"devices": 0}, {"num_nodes": -1}, {"devices": "two"}])
def test_a_count_below_one_is_refused(raw):
    with pytest.raises(ParamsError, match="train_pytorch"):
        Topology.from_section(raw)


def test_optuna_workers_and_ddp_are_alternatives():
    with pytest.raises(ParamsError, match="alternatives"):
        Topology.from_section({"devices": 2, "workers": 2})
    assert Topology.from_section({"devices": 1, "workers": 2}).world == 1


def test_outside_a_launched_group_there_is_no_rank():
    assert Rank.from_environment({}) is None
    assert Rank.from_environment({"RANK": "0", "WORLD_SIZE": "2"}) is None


def test_torchruns_variables_place_the_process():
    environ = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    rank = Rank.from_environment(environ)
    assert rank == Rank(rank=3, world=4, local_rank=1, local_world=2)
    assert not rank.leads and Rank(0, 4, 0, 2).leads


def test_several_hosts_are_started_with_torchrun_not_by_the_stage():
    with pytest.raises(ParamsError, match="torchrun"):
        launch(Topology(devices=2, num_nodes=2), ["train"])
