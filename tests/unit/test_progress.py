"""Progress events: how a stage writes them and how ``bakeoff run`` reads and shows them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from components import progress
from components.contracts import load_comparison, load_registry_record
from pipelines import board

ROOT = Path(__file__).resolve().parents[2]


def test_without_an_events_file_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.EVENTS, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.emit(progress.STEP, text="anything")
    assert list(tmp_path.iterdir()) == []


def test_each_event_is_one_json_line_appended(tmp_path, monkeypatch, capsys):
    events = tmp_path / "stage.jsonl"
    monkeypatch.setenv(progress.EVENTS, str(events))
    progress.emit(progress.TRIAL, state="start", trial=3, index=1, of=2)
    progress.say("train@x: done")

    lines = events.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == [progress.TRIAL, progress.RESULT]
    assert json.loads(lines[1])["text"] == "train@x: done"
    assert capsys.readouterr().out == "train@x: done\n"  # still printed, for dvc repro


def test_an_unwritable_events_file_loses_the_event_not_the_stage(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.EVENTS, str(tmp_path / "missing" / "stage.jsonl"))
    progress.emit(progress.STEP, text="anything")  # no exception


def test_only_whole_lines_are_read_as_the_file_grows(tmp_path):
    path = tmp_path / "stage.jsonl"
    events = board.Events(path)
    events.reset()
    with path.open("a") as handle:
        handle.write('{"kind": "step", "text": "a"}\n{"kind": "st')
    assert [event["text"] for event in events.new()] == ["a"]
    with path.open("a") as handle:
        handle.write('ep", "text": "b"}\nnot json\n')
    assert [event["text"] for event in events.new()] == ["b"]
    assert list(events.new()) == []


def _study(state: board.Board, stage: str = "train@x") -> list[str | None]:
    events = [
        {"kind": progress.STAGE, "state": "start", "command": "train"},
        {"kind": progress.STEP, "text": "TFX Trainer"},
        {"kind": progress.TRIAL, "state": "start", "trial": 4, "index": 2, "of": 3},
        {
            "kind": progress.EPOCH,
            "trial": 4,
            "epoch": 1,
            "of": 5,
            "metric": "val/accuracy",
            "value": 0.91234,
            "seconds": 2.04,
        },
        {"kind": progress.TRIAL, "state": "pruned", "trial": 4, "value": None, "best": 0.95},
    ]
    return [state.apply(stage, event) for event in events]


def test_trials_and_epochs_become_lines_and_the_stages_activity():
    state = board.Board(["train@x"])
    state.start("train@x")

    assert not state.stages["train@x"].command_started
    lines = _study(state)

    assert state.stages["train@x"].command_started  # its command ran: DVC did not skip it
    assert lines == [
        None,
        "TFX Trainer",
        "trial 2/3 started (#4)",
        "trial 2/3 epoch 1/5: val/accuracy 0.9123 (2.0 s)",
        "trial 2/3 pruned; best 0.9500",
    ]
    assert state.stages["train@x"].activity() == "TFX Trainer · trial 2/3 · best 0.9500"
    state.apply("train@x", {"kind": progress.EPOCH, "epoch": 2, "of": 5, "value": 0.5})
    assert state.stages["train@x"].activity() == (
        "TFX Trainer · trial 2/3 · epoch 2/5 · val/accuracy 0.5000 · best 0.9500"
    )


@pytest.mark.parametrize(
    ("status", "ran", "line", "state"),
    [
        (0, True, "done in ", board.DONE),
        (0, False, "unchanged, not run", board.UNCHANGED),
        (2, True, "failed (exit status 2) after ", board.FAILED),
    ],
)
def test_a_stage_ends_done_unchanged_or_failed(status, ran, line, state):
    stages = board.Board(["a", "b"])
    stages.start("a")
    assert stages.finish("a", status, ran).startswith(line)
    assert stages.stages["a"].state == state
    assert stages.times().endswith("b waiting")


def test_the_plain_view_prints_every_line_behind_its_stage():
    out = io.StringIO()
    state = board.Board(["train@x"])
    view = board.view_for(out, state, live=False)
    for text in _study(state):
        view.event("train@x", {}, text)
    assert out.getvalue().splitlines()[0] == "[train@x] TFX Trainer"
    assert len(out.getvalue().splitlines()) == 4


def test_the_live_view_keeps_results_and_ended_trials_above_its_table():
    out = io.StringIO()
    state = board.Board(["train@x"])
    state.start("train@x")
    with board.view_for(out, state, live=True) as view:
        view.event("train@x", {"kind": progress.EPOCH}, "epoch 1/5")
        view.event("train@x", {"kind": progress.TRIAL, "state": "complete"}, "trial 1/3 complete")
        view.event("train@x", {"kind": progress.RESULT}, "train@x: done")
    text = out.getvalue()
    assert "[train@x] trial 1/3 complete" in text
    assert "[train@x] train@x: done" in text
    assert "[train@x] epoch 1/5" not in text
    assert "train@x" in text.splitlines()[-1] or "running" in text


def test_the_summary_reads_the_verdict_and_the_champion_from_the_stages_outputs():
    state = board.Board(["evaluate"])
    lines = board.summary(ROOT, state, 75.0)

    comparison = load_comparison(ROOT / board.COMPARISON)
    record = load_registry_record(ROOT / board.REGISTRY)
    assert lines[0] == "finished in 1 min 15 s"
    assert f"verdict:  {comparison.winner} wins on {comparison.metric}" in lines[1]
    assert f"version {record.version} ({record.framework})" in lines[2]
    assert f"  report:   {board.REPORT.as_posix()}" in lines


def test_the_summary_files_are_the_ones_dvc_yaml_names():
    text = (ROOT / "dvc.yaml").read_text()
    for path in (board.COMPARISON, board.REPORT, board.REGISTRY):
        assert path.as_posix() in text


@pytest.mark.parametrize(
    ("promoted", "before", "expected"),
    [
        (True, None, "is the champion; alias set: why"),
        (True, "2", "is the champion; alias moved from version 2: why"),
        (False, "2", "is challenger; alias stays on version 2: why"),
    ],
)
def test_the_champion_line_says_whether_the_alias_moved(promoted, before, expected):
    record = load_registry_record(ROOT / board.REGISTRY)
    from dataclasses import replace

    changed = replace(
        record,
        promoted=promoted,
        alias="champion" if promoted else "challenger",
        reason="why",
        champion_before={"version": before},
    )
    assert board._champion(changed).endswith(expected)


def test_an_experiments_version_is_said_to_move_no_alias():
    from dataclasses import replace

    record = load_registry_record(ROOT / board.REGISTRY)
    changed = replace(record, alias="none", promoted=False, experiment="wide", reason="why")
    assert board._champion(changed).endswith("from DVC experiment wide; no alias moved: why")
