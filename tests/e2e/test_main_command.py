"""The README's main command on the embedded default data, in a fresh copy of the repository."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run

pytestmark = pytest.mark.slow


def test_bakeoff_run_brings_the_graph_up_to_date(repo):
    # The smoke budget: the graph and the stages are the real ones, the tuning is tiny.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(trials=2, epochs=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run(["bakeoff", "run"], repo)
    # The trainers ran side by side, each line behind its stage's name.
    assert "[train@tensorflow] train@tensorflow:" in result.stdout
    assert "[train@pytorch] train@pytorch:" in result.stdout
    assert "Running stage 'clean'" in result.stdout
    assert "up to date" in run(["dvc", "status"], repo).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    data = next(iter(metrics.values()))["data"]
    quality = data["reports/data_quality.json"]["data"]
    assert data["metrics/tensorflow.json"]["data"]["trials"]["complete"] == 2
    assert data["metrics/pytorch.json"]["data"]["trials"]["complete"] == 2
    assert quality["rows"]["input"] == 1797
    assert quality["schema"]["inferred"] is False, (
        "the committed schema must be the one validated against"
    )
