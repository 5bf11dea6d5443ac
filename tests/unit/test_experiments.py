"""DVC experiments: where a queued experiment's stores go, and that it never moves an alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.contracts import RegistryRecord, load_registry_record, write_json
from components.evaluate.core import verdict_line
from components.evaluate.stats import Interval
from components.register.core import Scored, champion_line
from components.register.gate import CHALLENGER, CHAMPION, NO_ALIAS, decide, in_experiment
from components.training import tracking
from components.training.stores import experiment_name, store_root

MAIN = Path("/work/project")
COPY = MAIN / ".dvc" / "tmp" / "exps" / "tmpab12cd"


@pytest.mark.parametrize(
    ("workspace", "environ", "expected"),
    [
        # dvc repro, bakeoff run, a stage by hand: the repository itself.
        (MAIN, {}, MAIN),
        (MAIN, {"DVC_ROOT": str(MAIN)}, MAIN),
        # dvc exp run in the workspace: DVC_ROOT is the workspace.
        (MAIN, {"DVC_EXP_NAME": "e1", "DVC_ROOT": str(MAIN)}, MAIN),
        # a queued experiment's temporary copy: the main repository.
        (COPY, {"DVC_EXP_NAME": "e1", "DVC_ROOT": str(MAIN)}, MAIN),
        (COPY / "sub" / "..", {"DVC_EXP_NAME": "e1", "DVC_ROOT": str(MAIN) + "/"}, MAIN),
        # not a DVC experiment's copy: DVC_ROOT alone, or a folder elsewhere.
        (COPY, {"DVC_ROOT": str(MAIN)}, COPY),
        (COPY, {"DVC_EXP_NAME": "", "DVC_ROOT": str(MAIN)}, COPY),
        (COPY, {"DVC_EXP_NAME": "e1"}, COPY),
        (Path("/elsewhere"), {"DVC_EXP_NAME": "e1", "DVC_ROOT": str(MAIN)}, Path("/elsewhere")),
        (MAIN / "tmp" / "exps" / "x", {"DVC_EXP_NAME": "e1", "DVC_ROOT": str(MAIN)}, None),
    ],
)
def test_stores_resolve_against_the_main_repository_only_in_a_queued_copy(
    workspace, environ, expected
):
    assert store_root(workspace, environ) == (expected or workspace)


def test_the_experiment_is_named_by_dvc_exp_name():
    assert experiment_name({"DVC_EXP_NAME": " quick-fish "}) == "quick-fish"
    assert experiment_name({"DVC_EXP_NAME": ""}) is None
    assert experiment_name({}) is None


def test_relative_sqlite_stores_and_trial_folders_follow_the_store_root(tmp_path, monkeypatch):
    main, copy = tmp_path / "main", tmp_path / "main" / ".dvc" / "tmp" / "exps" / "tmp1"
    copy.mkdir(parents=True)
    monkeypatch.setenv("DVC_EXP_NAME", "e1")
    monkeypatch.setenv("DVC_ROOT", str(main))
    assert tracking.tracking_uri("sqlite:///mlflow/mlflow.db", copy) == (
        f"sqlite:///{main.resolve() / 'mlflow' / 'mlflow.db'}"
    )
    assert tracking.tracking_uri("sqlite:////abs/x.db", copy) == "sqlite:////abs/x.db"
    assert tracking.tracking_uri("http://host:5000", copy) == "http://host:5000"
    assert tracking.artifact_root(copy) == main.resolve() / "mlflow" / "artifacts"
    assert tracking.experiment_tags() == {tracking.TAG_EXPERIMENT: "e1"}
    monkeypatch.delenv("DVC_EXP_NAME")
    assert tracking.tracking_uri("sqlite:///optuna/studies.db", copy) == (
        f"sqlite:///{copy.resolve() / 'optuna' / 'studies.db'}"
    )
    assert tracking.experiment_tags() == {}


def _interval(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, low, high, 0.95, 100)


@pytest.mark.parametrize(
    "decision",
    [
        decide(0.9, None, None, metric="test/accuracy", min_improvement=0.0),
        decide(0.95, 0.9, _interval(0.01, 0.09), metric="test/accuracy", min_improvement=0.0),
        decide(0.9, 0.9, _interval(-0.02, 0.02), metric="test/accuracy", min_improvement=0.0),
    ],
)
def test_an_experiment_never_moves_an_alias_whatever_the_gate_found(decision):
    assert decision.alias in (CHAMPION, CHALLENGER) and decision.moves_alias
    assert in_experiment(decision, None) is decision
    inside = in_experiment(decision, "quick-fish")
    assert (inside.promote, inside.alias, inside.moves_alias) == (False, NO_ALIAS, False)
    assert inside.reason.startswith("no alias moved: DVC experiment quick-fish")
    assert inside.reason.endswith("the gate found: " + decision.reason)


def test_the_report_says_the_champion_is_unchanged_by_an_experiment():
    found = decide(0.95, 0.9, _interval(0.01, 0.09), metric="test/accuracy", min_improvement=0.0)
    line = champion_line(in_experiment(found, "e1"), Scored(0.9, "3"), "7", "pytorch")
    assert line.startswith("- **Champion**: unchanged (version 3); version 7 (pytorch) is ")
    assert "without an alias: DVC experiment e1" in line
    first = in_experiment(decide(0.9, None, None, metric="m", min_improvement=0.0), "e1")
    assert "unchanged (none yet)" in champion_line(first, Scored(None), "1", "pytorch")


def test_the_registry_record_keeps_the_experiment(tmp_path):
    record = RegistryRecord(
        model_name="m",
        version="2",
        framework="pytorch",
        alias=NO_ALIAS,
        promoted=False,
        reason="no alias moved: ...",
        metric="test/accuracy",
        score=0.9,
        champion_before={"score": 0.9, "version": "1"},
        pushed_to=None,
        mlflow_run_id="r",
        tags={},
        experiment="e1",
    )
    write_json(tmp_path / "registry.json", record)
    assert load_registry_record(tmp_path / "registry.json") == record
    outside = RegistryRecord(**{**record.to_dict(), "experiment": None, "alias": CHAMPION})
    write_json(tmp_path / "registry.json", outside)
    assert load_registry_record(tmp_path / "registry.json").experiment is None


@pytest.mark.parametrize(
    ("tied", "winner", "decided_by", "expected"),
    [
        (["a", "b"], "b", "latency", "tie on test/accuracy; b ships (decided by latency)"),
        (["a"], "a", "metric", "a better on test/accuracy; a ships (decided by metric)"),
    ],
)
def test_the_verdict_is_one_scalar_line(tied, winner, decided_by, expected):
    assert verdict_line("test/accuracy", "a", tied, winner, decided_by) == expected
