"""``bakeoff retrain`` in a fresh copy of the repository: two retrains with a new batch between."""

from __future__ import annotations

import json
import time

import mlflow
import pytest

from pipelines import retrain
from tests.conftest import SMOKE, run, set_params

pytestmark = pytest.mark.slow

LOCK = ".dvc/tmp/bakeoff-retrain.lock"
HISTORY = "reports/retrain_history.jsonl"


def history(repo) -> list[dict]:
    return [json.loads(line) for line in (repo / HISTORY).read_text().splitlines()]


def simulate(repo, seed: int) -> None:
    run(
        [
            "bakeoff",
            "simulate",
            "--reference",
            "builtin:iris",
            "--rows",
            "150",
            "--seed",
            str(seed),
        ],
        repo,
    )


def test_retrain_trains_on_new_data_only_and_the_gate_moves_the_alias(repo):
    # A landing folder fed by the simulator, the smoke budget, and quality bars
    # low enough that one-epoch models are saved: this tests retraining, not the models.
    set_params(
        repo,
        ingest={"name": "iris", "source": "landing", "path": "data/landing", "image_shape": None},
        clean={"range_margin": 0.2},
        train={**SMOKE["train"], "epochs": 2},
        refit={**SMOKE["refit"], "repeats": 1},  # figures without intervals are enough here
        evaluate={"seeds": 1},
        train_tensorflow={"min_accuracy": 0.0, "max_drop": 1.0},
        train_pytorch={"min_accuracy": 0.0},
    )
    simulate(repo, seed=0)

    first = run(["bakeoff", "retrain"], repo)
    assert "new data: added data/landing/batch-0001.csv" in first.stdout
    assert "[train@tensorflow]" in first.stdout and "[train@pytorch]" in first.stdout
    [entry] = history(repo)
    assert (entry["outcome"], entry["version"], entry["alias"], entry["promoted"]) == (
        "retrained",
        "1",
        "champion",
        True,
    )
    assert set(entry["frameworks"]) == {"tensorflow", "pytorch"}
    assert all("test/accuracy" in metrics for metrics in entry["frameworks"].values())
    assert (
        entry["data_sha256"]
        == json.loads((repo / "data/raw/manifest.json").read_text())["snapshot"]["sha256"]
    )
    assert "up to date" in run(["dvc", "status"], repo).stdout

    # No new data: nothing runs, and it says so.
    started = time.monotonic()
    idle = run(["bakeoff", "retrain"], repo)
    assert time.monotonic() - started < 60
    assert "no new data since the last ingest (landing data/landing); nothing to do" in idle.stdout
    assert "Running stage" not in idle.stdout
    assert history(repo)[-1]["outcome"] == "no_new_data"

    # A retrain while another holds the lock is refused, and does nothing else.
    with retrain.exclusive(repo / LOCK):
        refused = run(["bakeoff", "retrain"], repo, check=False)
    assert refused.returncode == retrain.LOCKED_STATUS
    assert "another retrain is running (pid " in refused.stderr
    assert "this one did nothing" in refused.stderr
    assert history(repo)[-1]["outcome"] == "refused"

    # A new batch: the second retrain trains again and registers version 2, and
    # the gate decides which version holds the champion alias.
    simulate(repo, seed=1)
    second = run(["bakeoff", "retrain"], repo)
    assert "new data: added data/landing/batch-0002.csv" in second.stdout
    entry = history(repo)[-1]
    assert (entry["outcome"], entry["version"]) == ("retrained", "2")
    record = json.loads((repo / "reports/registry.json").read_text())
    assert (record["version"], record["promoted"], record["reason"]) == (
        "2",
        entry["promoted"],
        entry["reason"],
    )
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("bakeoff-iris", "champion")
    if entry["promoted"]:
        assert entry["alias"] == "champion" and str(champion.version) == "2"
    else:
        assert entry["alias"] == "challenger" and str(champion.version) == "1"
        assert str(client.get_model_version_by_alias("bakeoff-iris", "challenger").version) == "2"

    # Every run of the attempt carries its id: both trainers, evaluate and register.
    tagged = client.search_runs(
        [client.get_experiment_by_name("iris").experiment_id],
        filter_string=f"tags.`bakeoff.retrain` = '{entry['id']}'",
    )
    stages = {run_.data.tags.get("bakeoff.stage") for run_ in tagged}
    assert {"train@tensorflow", "train@pytorch", "evaluate", "register"} <= stages, stages
    assert len(tagged) == entry["mlflow_runs_tagged"]
    assert client.get_model_version("bakeoff-iris", "2").tags["bakeoff.retrain"] == entry["id"]
    assert [line["outcome"] for line in history(repo)] == [
        "retrained",
        "no_new_data",
        "refused",
        "retrained",
    ]
