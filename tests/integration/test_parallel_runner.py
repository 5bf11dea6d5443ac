"""``bakeoff run`` on a throwaway DVC repository: the training stages run side by side.

The repository has an upstream stage, a foreach ``train`` stage with two items
whose commands sleep and record when they ran, and a downstream stage.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, run
from tests.helpers.terminal import plain, terminal_run

pytestmark = pytest.mark.slow

DVC_YAML = """\
stages:
  prep:
    cmd: python prep.py
    deps:
      - prep.py
    outs:
      - data/prep.txt
  train:
    foreach: [a, b]
    do:
      cmd: python train.py ${item}
      deps:
        - train.py
        - data/prep.txt
      outs:
        - models/${item}
  report:
    cmd: python report.py
    deps:
      - report.py
      - models/a
      - models/b
    outs:
      - report.txt
"""

PREP = """\
from pathlib import Path

Path("data").mkdir(exist_ok=True)
Path("data/prep.txt").write_text("prepared\\n")
"""

# Records when it ran and the environment the runner gave it, outside DVC's outputs.
# With MEET_OTHER set, each item waits until the other has started: overlap by
# construction, however slowly either process starts, and a runner that runs
# them one after the other fails the stage instead of passing by luck.
TRAIN = """\
import json, os, sys, time
from pathlib import Path

item = sys.argv[1]
start = time.time()
if os.environ.get("FAIL_ITEM") == item:
    print(f"train {item}: error: told to fail", file=sys.stderr)
    sys.exit(3)
if os.environ.get("MEET_OTHER"):
    Path("started").mkdir(exist_ok=True)
    Path("started", item).touch()
    other = "b" if item == "a" else "a"
    while not Path("started", other).exists():
        if time.time() - start > 300:
            print(f"train {item}: error: train {other} never ran alongside", file=sys.stderr)
            sys.exit(4)
        time.sleep(0.05)
time.sleep(0.5)
Path("models", item).mkdir(parents=True, exist_ok=True)
Path("models", item, "model.txt").write_text(Path("data/prep.txt").read_text() + item)
Path("times").mkdir(exist_ok=True)
seen = {key: os.environ.get(key) for key in ("BAKEOFF_CPU_THREADS", "OMP_NUM_THREADS")}
Path("times", item + ".json").write_text(json.dumps({"start": start, "end": time.time(), **seen}))
print(f"train {item}: done")
"""

REPORT = """\
from pathlib import Path

Path("report.txt").write_text(Path("models/a/model.txt").read_text() + Path("models/b/model.txt").read_text())
"""


def _pipeline(folder: Path) -> Path:
    folder.mkdir()
    run(["git", "init", "-q"], folder)
    run([str(BIN / "dvc"), "init", "-q"], folder)
    for name, text in {
        "dvc.yaml": DVC_YAML,
        "prep.py": PREP,
        "train.py": TRAIN,
        "report.py": REPORT,
    }.items():
        (folder / name).write_text(text)
    return folder


def _bakeoff_run(folder: Path, *options: str, check: bool = True):
    return run([str(BIN / "bakeoff"), "run", *options], folder, check=check)


def _ran(output: str) -> list[str]:
    """The stages ``bakeoff run`` says it ran (its progress lines)."""
    return re.findall(r"^\[([^\]]+)\] done in ", output, re.MULTILINE)


def _dvc_ran(output: str) -> list[str]:
    """The stages DVC's own output says it ran (``--verbose``, ``--serial``)."""
    return re.findall(r"Running stage '([^']+)'", output)


def _log(repo: Path, stage: str) -> str:
    return (repo / "logs" / f"{stage}.log").read_text()


def _locked(folder: Path) -> dict:
    return yaml.safe_load((folder / "dvc.lock").read_text())["stages"]


@pytest.fixture(autouse=True)
def _no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same device plan on every machine: no GPUs, so the CPU threads are split.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("FAIL_ITEM", raising=False)
    monkeypatch.delenv("MEET_OTHER", raising=False)


def test_training_stages_overlap_and_the_graph_ends_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repo = _pipeline(tmp_path / "repo")
    monkeypatch.setenv("MEET_OTHER", "1")

    result = _bakeoff_run(repo)

    times = {item: json.loads((repo / "times" / f"{item}.json").read_text()) for item in "ab"}
    assert times["a"]["start"] < times["b"]["end"] and times["b"]["start"] < times["a"]["end"]
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert all(seen["BAKEOFF_CPU_THREADS"] == threads for seen in times.values())
    assert all(seen["OMP_NUM_THREADS"] == threads for seen in times.values())
    assert sorted(_ran(result.stdout)) == ["prep", "report", "train@a", "train@b"]
    # What the stages and DVC print goes to each stage's log, not to the run's output.
    for item in "ab":
        assert f"train {item}: done" in _log(repo, f"train@{item}")
        assert f"Running stage 'train@{item}'" in _log(repo, f"train@{item}")
        assert f"train {item}: done" not in result.stdout
    assert "stages:   prep " in result.stdout  # the closing summary's stage times
    assert set(_locked(repo)) == {"prep", "train@a", "train@b", "report"}
    assert (repo / "report.txt").read_text() == "prepared\naprepared\nb"
    status = run([str(BIN / "dvc"), "status"], repo)
    assert "Data and pipelines are up to date." in status.stdout

    lock = (repo / "dvc.lock").read_text()
    again = _bakeoff_run(repo)
    assert _ran(again.stdout) == []
    assert "[train@a] unchanged, not run" in again.stdout
    assert (repo / "dvc.lock").read_text() == lock


def test_the_lock_is_the_one_serial_dvc_repro_writes(tmp_path: Path):
    parallel = _pipeline(tmp_path / "parallel")
    serial = _pipeline(tmp_path / "serial")

    _bakeoff_run(parallel)
    run([str(BIN / "dvc"), "repro"], serial)

    assert _locked(parallel) == _locked(serial)


def test_a_failing_trainer_fails_the_run_and_keeps_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repo = _pipeline(tmp_path / "repo")
    monkeypatch.setenv("FAIL_ITEM", "b")

    result = _bakeoff_run(repo, check=False)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "train@b" in last and "train@a" not in last
    assert "[train@b] train b: error: told to fail" in result.stderr
    assert (repo / "models" / "a" / "model.txt").exists()
    assert set(_locked(repo)) == {"prep", "train@a"}
    assert "report" not in _ran(result.stdout)
    assert not (repo / "report.txt").exists()

    monkeypatch.delenv("FAIL_ITEM")
    rerun = _bakeoff_run(repo)
    assert sorted(_ran(rerun.stdout)) == ["report", "train@b"]


def test_force_runs_every_stage_once(tmp_path: Path):
    # Once each, not once per step: the last step must not force the earlier stages again.
    repo = _pipeline(tmp_path / "repo")

    forced = _bakeoff_run(repo, "--force")

    assert sorted(_ran(forced.stdout)) == ["prep", "report", "train@a", "train@b"]


def test_named_stages_run_with_their_upstream_and_serial_is_plain_dvc_repro(tmp_path: Path):
    repo = _pipeline(tmp_path / "repo")

    one = _bakeoff_run(repo, "train@a")
    assert _ran(one.stdout) == ["prep", "train@a"]

    rest = _bakeoff_run(repo, "--serial")
    assert _dvc_ran(rest.stdout) == ["train@b", "report"]
    assert "[train@b]" not in rest.stdout


def test_verbose_streams_dvc_and_the_trainers_lines_behind_their_names(tmp_path: Path):
    repo = _pipeline(tmp_path / "repo")

    result = _bakeoff_run(repo, "--verbose")

    assert sorted(_dvc_ran(result.stdout)) == ["prep", "report", "train@a", "train@b"]
    assert "[train@a] train a: done" in result.stdout
    assert "[train@b] train b: done" in result.stdout
    assert not (repo / "logs").exists()


def test_on_a_terminal_the_run_draws_a_live_table_and_ends_with_its_summary(tmp_path: Path):
    repo = _pipeline(tmp_path / "repo")

    status, screen = terminal_run([str(BIN / "bakeoff"), "run"], repo)

    assert status == 0, screen
    assert "\x1b[" in screen  # drawn with the terminal's escape codes, redrawn in place
    table = [line for line in plain(screen).splitlines() if line.startswith("train@a ")]
    assert table and "done" in table[-1]
    assert "bakeoff run: finished in " in plain(screen)
