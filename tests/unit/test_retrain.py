"""Retraining's pure parts: the new-data check, the lock, the history and the outcome."""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from components.contracts import RegistryRecord, load_comparison, write_json
from components.errors import BakeoffError, DataError
from components.ingest.core import IngestParams, ingest, manifest, source_files
from pipelines import retrain
from pipelines.simulator import write_batch
from tests.conftest import tiny_frame


def landing(tmp_path: Path, frame: pd.DataFrame, batches: int = 1) -> IngestParams:
    folder = tmp_path / "data" / "landing"
    for number in range(batches):
        write_batch(frame.iloc[number::batches], folder)
    return IngestParams.from_section({"source": "landing", "path": "data/landing"}, root=tmp_path)


def ingested(params: IngestParams, root: Path) -> dict:
    """The manifest ingest itself writes for ``params``."""
    return manifest(ingest(params, shown_root=root), "data/raw/snapshot.parquet", "0" * 64, "t")


def test_the_files_ingest_records_are_the_files_the_check_sees(tmp_path, frame):
    params = landing(tmp_path, frame, batches=2)
    check = retrain.compare_sources(source_files(params, tmp_path), ingested(params, tmp_path))
    assert not check.new
    assert check.describe() == "no new data since the last ingest"


def test_a_new_batch_is_new_data_and_named(tmp_path, frame):
    params = landing(tmp_path, frame)
    recorded = ingested(params, tmp_path)
    write_batch(frame.head(10), tmp_path / "data" / "landing")
    check = retrain.compare_sources(source_files(params, tmp_path), recorded)
    assert check.new and check.added == ("data/landing/batch-0002.csv",)
    assert check.describe() == "new data: added data/landing/batch-0002.csv"


def test_an_edited_or_removed_batch_is_new_data(tmp_path, frame):
    params = landing(tmp_path, frame, batches=2)
    recorded = ingested(params, tmp_path)
    first, second = sorted((tmp_path / "data" / "landing").glob("batch-*.csv"))
    first.write_text(first.read_text() + first.read_text().splitlines()[-1] + "\n")
    second.unlink()
    check = retrain.compare_sources(source_files(params, tmp_path), recorded)
    assert check.changed == ("data/landing/batch-0001.csv",)
    assert check.removed == ("data/landing/batch-0002.csv",)
    assert check.describe() == (
        "new data: changed data/landing/batch-0001.csv; removed data/landing/batch-0002.csv"
    )


def test_a_half_written_batch_is_not_new_data(tmp_path, frame):
    params = landing(tmp_path, frame)
    recorded = ingested(params, tmp_path)
    (tmp_path / "data" / "landing" / ".batch-0002.csv.tmp").write_text("x1,x2\n1,")
    assert not retrain.compare_sources(source_files(params, tmp_path), recorded).new


def test_a_builtin_source_matches_its_manifest_and_nothing_ingested_is_new(tmp_path):
    params = IngestParams.from_section({"source": "builtin", "builtin": "iris"})
    assert not retrain.compare_sources(source_files(params), ingested(params, tmp_path)).new
    first = retrain.compare_sources(source_files(params), None)
    assert (
        first.new and first.describe() == "new data: added sklearn:iris (nothing ingested before)"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"source": "landing", "path": "nowhere"}, "nowhere: landing folder not found"),
        ({"source": "file", "path": "missing.csv"}, "missing.csv: file not found"),
    ],
)
def test_a_missing_source_is_named(tmp_path, section, message):
    params = IngestParams.from_section(section, root=tmp_path)
    with pytest.raises(DataError, match=message):
        source_files(params, tmp_path)


def _hold(path: str, ready, release) -> None:
    with retrain.exclusive(Path(path)):
        ready.set()
        release.wait(30)


def test_a_second_holder_of_the_lock_is_refused_with_the_first_ones_pid(tmp_path):
    lock = tmp_path / "tmp" / "retrain.lock"
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(lock), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with (
            pytest.raises(
                retrain.Locked, match=rf"another retrain is running \(pid {holder.pid} since "
            ),
            retrain.exclusive(lock),
        ):
            pytest.fail("the lock was taken twice")
    finally:
        release.set()
        holder.join(30)
    # Released with its holder: the next retrain takes it.
    with retrain.exclusive(lock):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / "retrain.lock"
    script = (
        "import sys, time; from pathlib import Path; from pipelines import retrain\n"
        "with retrain.exclusive(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        with pytest.raises(retrain.Locked), retrain.exclusive(lock):
            pass
    finally:
        process.kill()
        process.wait()
    with retrain.exclusive(lock):
        pass


def test_the_history_gets_one_line_per_attempt(tmp_path):
    history = tmp_path / "reports" / "history.jsonl"
    retrain.append_history(history, {"id": "a", "outcome": "no_new_data"})
    retrain.append_history(history, {"id": "b", "outcome": "retrained", "promoted": True})
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"]


RECORD = RegistryRecord(
    model_name="bakeoff-digits",
    version="2",
    framework="pytorch",
    alias="challenger",
    promoted=False,
    reason="test/accuracy 0.90 is worse than champion version 1's 0.95 by more than 0.005",
    metric="test/accuracy",
    score=0.9,
    champion_before={"score": 0.95, "version": "1"},
    pushed_to=None,
    mlflow_run_id="r2",
    tags={},
)


@pytest.mark.parametrize(
    ("status", "before", "after", "expected"),
    [
        (2, None, None, {"outcome": "failed", "reason": "the pipeline failed (exit status 2)"}),
        (0, RECORD, RECORD, {"outcome": "unchanged"}),
        (0, None, None, {"outcome": "unchanged"}),
        (
            0,
            dataclasses.replace(RECORD, mlflow_run_id="r1"),
            RECORD,
            {"outcome": "retrained", "version": "2", "winner": "pytorch", "promoted": False},
        ),
        (0, None, RECORD, {"outcome": "retrained", "alias": "challenger"}),
    ],
)
def test_the_outcome_follows_the_registry_record(status, before, after, expected):
    outcome = retrain.outcome_of(status, before, after)
    assert {key: outcome[key] for key in expected} == expected
    if outcome["outcome"] == "retrained":
        assert outcome["reason"] == RECORD.reason


def test_both_frameworks_metrics_are_kept_without_the_matrices(tmp_path):
    report = {
        "metric": "test/accuracy",
        "winner": "tensorflow",
        "higher_is_better": True,
        "frameworks": {
            "tensorflow": {"test": {"accuracy": 0.9, "confusion_matrix": [[1]], "log_loss": 0.3}},
            "pytorch": {"test": {"accuracy": 0.8, "precision": [0.5]}},
        },
    }
    write_json(tmp_path / "comparison.json", report)
    comparison = load_comparison(tmp_path / "comparison.json")
    assert retrain.frameworks_of(comparison) == {
        "tensorflow": {"test/accuracy": 0.9, "test/log_loss": 0.3},
        "pytorch": {"test/accuracy": 0.8},
    }
    assert retrain.frameworks_of(None) == {}


def retrain_args(tmp_path: Path, **overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    retrain.add_arguments(parser)
    args = parser.parse_args([])
    for name, value in overrides.items():
        setattr(args, name, value)
    return args


@pytest.fixture
def project(tmp_path, frame, monkeypatch):
    """A folder with a landing source and the manifest of its last ingest."""
    params = landing(tmp_path, frame)
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"ingest": {"name": "tiny", "source": "landing", "path": "data/landing"}})
    )
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "manifest.json").write_text(json.dumps(ingested(params, tmp_path)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def history_of(project: Path) -> list[dict]:
    path = project / "reports" / "retrain_history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_attempt_without_new_data_runs_nothing_and_is_recorded(project, capsys):
    assert retrain.run(retrain_args(project)) == 0
    assert "no new data since the last ingest (landing data/landing); nothing to do" in (
        capsys.readouterr().out
    )
    [entry] = history_of(project)
    assert entry["outcome"] == "no_new_data" and entry["dataset"] == "tiny"


def test_a_refused_attempt_returns_75_and_is_recorded(project, capsys):
    with retrain.exclusive(project / ".dvc" / "tmp" / "bakeoff-retrain.lock"):
        assert retrain.run(retrain_args(project)) == retrain.LOCKED_STATUS
    assert "another retrain is running" in capsys.readouterr().err
    assert [entry["outcome"] for entry in history_of(project)] == ["refused"]


def test_an_attempt_that_fails_says_why_and_still_gets_its_line(project):
    (project / "data" / "raw" / "manifest.json").write_text("{not json")
    with pytest.raises(BakeoffError, match=r"manifest.json: not valid JSON"):
        retrain.run(retrain_args(project))
    [entry] = history_of(project)
    assert entry["outcome"] == "failed" and "manifest.json: not valid JSON" in entry["reason"]


def test_a_dry_run_writes_no_history(project):
    write_batch(tiny_frame(5, seed=1), project / "data" / "landing")
    assert retrain.run(retrain_args(project, dry_run=True)) == 0
    assert not (project / "reports" / "retrain_history.jsonl").exists()
