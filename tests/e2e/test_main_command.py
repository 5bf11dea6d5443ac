"""The README's main command on the embedded default data, in a fresh copy of the repository."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run

pytestmark = pytest.mark.slow


def test_bakeoff_run_brings_the_graph_up_to_date(repo):
    result = run(["bakeoff", "run"], repo)
    assert "Running stage 'clean'" in result.stdout
    assert "up to date" in run(["dvc", "status"], repo).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    quality = next(iter(metrics.values()))["data"]["reports/data_quality.json"]["data"]
    assert quality["rows"]["input"] == 1797
    assert quality["schema"]["inferred"] is False, (
        "the committed schema must be the one validated against"
    )
