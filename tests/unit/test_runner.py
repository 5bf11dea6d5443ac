"""The device plan, GPU detection and stage discovery behind ``bakeoff run``."""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import devices, runner
from tests.conftest import ROOT

TWO = ["train@tensorflow", "train@pytorch"]


@pytest.mark.parametrize(
    ("cpus", "stages", "threads"),
    [
        (16, TWO, "8"),
        (8, TWO, "4"),
        (3, TWO, "1"),
        (2, TWO, "1"),
        (1, TWO, "1"),
        (16, ["train@a", "train@b", "train@c"], "5"),
        (4, ["train@tensorflow"], "4"),
    ],
)
def test_without_gpus_the_cpu_threads_are_split(cpus: int, stages: list[str], threads: str):
    shares = devices.plan(stages, [], cpus)
    assert shares == {
        stage: {"BAKEOFF_CPU_THREADS": threads, "OMP_NUM_THREADS": threads} for stage in stages
    }


@pytest.mark.parametrize("cpus", [1, 2, 64])
def test_one_gpu_is_shared_and_tensorflow_grows_its_memory(cpus: int):
    shares = devices.plan(TWO, ["0"], cpus)
    for stage in TWO:
        assert shares[stage] == {"CUDA_VISIBLE_DEVICES": "0", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        (["0", "1"], {"train@tensorflow": "0", "train@pytorch": "1"}),
        (["0", "1", "2"], {"train@tensorflow": "0,2", "train@pytorch": "1"}),
        (["0", "1", "2", "3"], {"train@tensorflow": "0,2", "train@pytorch": "1,3"}),
        (["3", "5"], {"train@tensorflow": "3", "train@pytorch": "5"}),
        (["GPU-aa", "GPU-bb"], {"train@tensorflow": "GPU-aa", "train@pytorch": "GPU-bb"}),
    ],
)
def test_several_gpus_are_split_round_robin(gpus: list[str], expected: dict[str, str]):
    shares = devices.plan(TWO, gpus, cpus=8)
    assert shares == {stage: {"CUDA_VISIBLE_DEVICES": value} for stage, value in expected.items()}


@pytest.mark.parametrize(
    ("n_gpus", "n_stages"),
    [
        (n_gpus, n_stages)
        for n_gpus in (2, 3, 4, 5, 8)
        for n_stages in (1, 2, 3)
        if n_gpus >= n_stages
    ],
)
def test_enough_gpus_give_every_stage_a_disjoint_nonempty_share(n_gpus: int, n_stages: int):
    gpus = [str(index) for index in range(n_gpus)]
    stages = [f"train@{index}" for index in range(n_stages)]
    shares = [devices.plan(stages, gpus, 4)[stage]["CUDA_VISIBLE_DEVICES"] for stage in stages]
    sets = [set(share.split(",")) for share in shares]
    assert all(sets)
    assert sum(len(one) for one in sets) == n_gpus
    assert set().union(*sets) == set(gpus)


def test_fewer_gpus_than_stages_are_shared_one_each():
    shares = devices.plan(["train@a", "train@b", "train@c"], ["0", "1"], 8)
    assert [share["CUDA_VISIBLE_DEVICES"] for share in shares.values()] == ["0", "1", "0"]
    assert all(share["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for share in shares.values())


def test_no_stages_no_plan():
    assert devices.plan([], ["0"], 8) == {}


def _fake_smi(folder: Path, body: str) -> str:
    """A ``nvidia-smi`` on a PATH of its own; returns that PATH."""
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{body}\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    return str(folder)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2,3", ["2", "3"]),
        (" 1 , 0 ", ["1", "0"]),
        ("", []),
        ("-1", []),
        ("0,-1,1", ["0"]),
        ("GPU-8f6c,GPU-12ab", ["GPU-8f6c", "GPU-12ab"]),
    ],
)
def test_the_users_cuda_visible_devices_is_the_list(tmp_path: Path, value: str, expected: list):
    # nvidia-smi would say otherwise: the user's choice wins.
    path = _fake_smi(tmp_path, "printf '0\\n1\\n2\\n3\\n'")
    assert devices.visible_gpus({"CUDA_VISIBLE_DEVICES": value, "PATH": path}) == expected


def test_without_cuda_visible_devices_nvidia_smi_is_asked(tmp_path: Path):
    path = _fake_smi(tmp_path, "printf '0\\n1\\n'")
    assert devices.visible_gpus({"PATH": path}) == ["0", "1"]


def test_a_failing_nvidia_smi_means_no_gpus(tmp_path: Path):
    path = _fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    assert devices.visible_gpus({"PATH": path}) == []


def test_no_nvidia_smi_means_no_gpus(tmp_path: Path):
    assert devices.visible_gpus({"PATH": str(tmp_path)}) == []


def test_available_cpus_is_this_process_affinity():
    assert devices.available_cpus() == len(os.sched_getaffinity(0)) >= 1


def test_detection_imports_no_framework():
    # A fresh interpreter: this one may have imported a framework for other tests.
    check = (
        "import sys; from pipelines import devices; devices.visible_gpus();"
        " devices.plan(['train@a', 'train@b'], [], devices.available_cpus());"
        " assert not {'torch', 'tensorflow'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True)


GRAPH_ORDER = ["ingest", "clean", "train@tensorflow", "train@pytorch", "evaluate"]
GRAPH_UPSTREAM = {
    "ingest": set(),
    "clean": {"ingest"},
    "train@tensorflow": {"clean", "ingest"},
    "train@pytorch": {"clean", "ingest"},
    "evaluate": {"train@tensorflow", "train@pytorch", "clean", "ingest"},
}


def test_split_puts_upstream_first_training_together_and_the_rest_last():
    plan = runner.split_stages(GRAPH_ORDER, GRAPH_UPSTREAM)
    assert plan == runner.Plan(
        before=("ingest", "clean"),
        training=("train@tensorflow", "train@pytorch"),
        after=("evaluate",),
    )
    assert plan.concurrent


def test_split_runs_a_stage_independent_of_training_after_it():
    order = ["notes", *GRAPH_ORDER]
    plan = runner.split_stages(order, {**GRAPH_UPSTREAM, "notes": set()})
    assert plan.before == ("ingest", "clean")
    assert plan.after == ("notes", "evaluate")


@pytest.mark.parametrize(
    ("order", "training"),
    [
        (["ingest", "clean"], ()),
        (["ingest", "clean", "train@pytorch"], ("train@pytorch",)),
        (["ingest", "trainer", "training"], ()),
    ],
)
def test_one_or_no_training_stage_is_not_concurrent(order: list[str], training: tuple):
    plan = runner.split_stages(
        order, {stage: set(order[:index]) for index, stage in enumerate(order)}
    )
    assert plan.training == training
    assert not plan.concurrent


TINY_DVC_YAML = """\
stages:
  prep:
    cmd: echo prep > prep.txt
    outs: [prep.txt]
  trainer_notes:
    cmd: echo notes > notes.txt
    outs: [notes.txt]
  train:
    foreach: [tensorflow, pytorch]
    do:
      cmd: echo ${item} > ${item}.txt
      deps: [prep.txt]
      outs:
        - ${item}.txt
  evaluate:
    cmd: cat tensorflow.txt pytorch.txt > evaluate.txt
    deps: [tensorflow.txt, pytorch.txt]
    outs: [evaluate.txt]
"""


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "dvc.yaml").write_text(TINY_DVC_YAML)
    return tmp_path


def test_dvc_is_asked_for_the_training_stages(tiny_repo: Path):
    cwd = Path.cwd()
    plan = runner.plan_stages(tiny_repo)
    assert Path.cwd() == cwd
    assert plan.before == ("prep",)
    assert plan.training == ("train@tensorflow", "train@pytorch")
    assert set(plan.after) == {"trainer_notes", "evaluate"}


@pytest.mark.parametrize(
    ("targets", "training", "after"),
    [
        (["train"], ("train@tensorflow", "train@pytorch"), ()),
        (["evaluate"], ("train@tensorflow", "train@pytorch"), ("evaluate",)),
        (["train@pytorch"], ("train@pytorch",), ()),
        (["prep"], (), ("prep",)),
    ],
)
def test_the_users_targets_limit_the_plan(
    tiny_repo: Path, targets: list[str], training: tuple, after: tuple
):
    plan = runner.plan_stages(tiny_repo, targets)
    assert plan.training == training
    assert plan.after == after


def test_the_repositorys_training_stages_are_found():
    plan = runner.plan_stages(ROOT)
    assert "train@tensorflow" in plan.training
    assert all(stage.startswith("train@") for stage in plan.training)
    assert plan.before == ("ingest", "clean")


def test_stage_commands_find_this_interpreters_scripts_first():
    env = runner.stage_environment()
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_the_options_of_bakeoff_run():
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    args = parser.parse_args(["train", "evaluate", "--force", "--serial"])
    assert (args.stages, args.force, args.serial) == (["train", "evaluate"], True, True)
    args = parser.parse_args([])
    assert (args.stages, args.force, args.serial) == ([], False, False)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            "register: {tolerance: 0.005}\n",
            "register.tolerance: replaced by register.min_improvement",
        ),
        ("evaluate: {seeds: 0}\n", "evaluate.seeds"),
        ("evaluate: {level: 1.0}\n", "evaluate.level: expected a number between 0 and 1"),
        ("register: {min_improvement: -0.1}\n", "register.min_improvement"),
        ("refit: {repeats: 0}\n", "refit.repeats"),
        ("export: {tolerances: {tfjs: -1}}\n", "export.tolerances.tfjs"),
        ("export: {skip_formats: [onnx]}\n", "export.skip_formats: only optional formats"),
    ],
)
def test_bad_params_of_the_stages_after_the_studies_stop_the_run_before_any_stage(
    tiny_repo: Path, monkeypatch, sections: str, message: str
):
    from components.errors import ParamsError

    (tiny_repo / "params.yaml").write_text(sections)

    def no_dvc(*args, **kwargs):
        raise AssertionError("a stage ran before the params were checked")

    monkeypatch.setattr(runner, "_dvc", no_dvc)
    monkeypatch.setattr(runner, "_train", no_dvc)
    with pytest.raises(ParamsError) as refused:
        runner.reproduce(tiny_repo)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_missing_export_tools_stop_the_run_before_any_stage_when_it_reaches_export(
    tiny_repo: Path, monkeypatch
):
    from components.backends.tensorflow import tfjs
    from components.errors import BakeoffError

    with (tiny_repo / "dvc.yaml").open("a") as dvc_yaml:
        dvc_yaml.write(
            "  export:\n    cmd: cp evaluate.txt export.txt\n"
            "    deps: [evaluate.txt]\n    outs: [export.txt]\n"
        )
    (tiny_repo / "params.yaml").write_text("export: {}\n")
    monkeypatch.setattr(tfjs, "CONVERTER", tfjs.ROOT / ".venv-tfjs" / "bin" / "absent")

    class StageRan(Exception):
        pass

    def stage(*args, **kwargs):
        raise StageRan

    for name in ("_dvc", "_train", "_run_with_progress"):
        monkeypatch.setattr(runner, name, stage)
    for serial in (False, True):
        with pytest.raises(BakeoffError) as refused:
            runner.reproduce(tiny_repo, serial=serial)
        message = str(refused.value)
        assert "TensorFlow.js export needs the converter" in message and "\n" not in message
        assert "export.skip_formats: [tfjs]" in message
    # A run that stops before export, or skips the format, needs no such tool.
    with pytest.raises(StageRan):
        runner.reproduce(tiny_repo, ["evaluate"])
    (tiny_repo / "params.yaml").write_text("export: {skip_formats: [tfjs]}\n")
    with pytest.raises(StageRan):
        runner.reproduce(tiny_repo)
