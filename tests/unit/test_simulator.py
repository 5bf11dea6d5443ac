"""The batch simulator: realistic new rows, drift on demand, batches that appear whole."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from components.errors import BakeoffError
from components.ingest.sources import landing_files, read_table
from pipelines.simulator import Drift, next_batch_path, run, simulate_batch, write_batch
from tests.conftest import tiny_frame


@pytest.fixture
def reference() -> pd.DataFrame:
    frame = tiny_frame(500)
    frame["count"] = np.random.default_rng(1).integers(0, 17, len(frame))
    return frame


def test_a_batch_looks_like_the_reference(reference):
    batch = simulate_batch(reference, "label", 300, seed=3)
    assert list(batch.columns) == list(reference.columns)
    assert len(batch) == 300
    assert set(batch["label"]) <= set(reference["label"])
    assert set(batch["colour"]) <= set(reference["colour"])
    for name in ("x1", "x2", "count"):  # jittered within the observed range
        assert batch[name].between(reference[name].min(), reference[name].max()).all()
    assert pd.api.types.is_integer_dtype(batch["count"])
    assert abs(batch["x1"].mean() - reference["x1"].mean()) < 0.2 * reference["x1"].std()
    # Not copies of reference rows, which clean would drop as duplicates.
    merged = batch.merge(reference, how="inner", on=list(reference.columns))
    assert len(merged) < 0.1 * len(batch)


def test_the_same_seed_gives_the_same_batch(reference):
    first = simulate_batch(reference, "label", 50, seed=7)
    pd.testing.assert_frame_equal(first, simulate_batch(reference, "label", 50, seed=7))
    assert not first.equals(simulate_batch(reference, "label", 50, seed=8))


def test_drift_moves_only_the_chosen_features(reference):
    drifted = simulate_batch(
        reference, "label", 2000, seed=0, drift=Drift(noise=0.0, shift=2.0, columns=("x2",))
    )
    deviation = reference["x2"].std(ddof=0)
    assert drifted["x2"].mean() == pytest.approx(reference["x2"].mean() + 2 * deviation, rel=0.05)
    assert drifted["x2"].max() > reference["x2"].max()  # unclipped: clean will see it
    assert drifted["x1"].between(reference["x1"].min(), reference["x1"].max()).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rows": 0}, "rows must be at least 1"),
        ({"label": "nope"}, "no label column 'nope'"),
        ({"drift": Drift(columns=("colour",))}, "no numeric feature named colour"),
        ({"drift": Drift(noise=-1.0)}, "noise must be 0 or more"),
    ],
)
def test_bad_arguments_are_named(reference, arguments, message):
    options = {"label": "label", "rows": 5, "seed": 0} | arguments
    with pytest.raises(BakeoffError, match=message):
        simulate_batch(reference, **options)


def test_batches_are_numbered_and_ingest_reads_them(reference, tmp_path):
    landing = tmp_path / "landing"
    assert next_batch_path(landing).name == "batch-0001.csv"
    first = write_batch(simulate_batch(reference, "label", 10, seed=0), landing)
    (landing / "batch-0007.csv").write_text("x\n1\n")  # a gap in the numbering
    second = write_batch(simulate_batch(reference, "label", 10, seed=1), landing)
    assert (first.name, second.name) == ("batch-0001.csv", "batch-0008.csv")
    assert not [p for p in landing.iterdir() if p.name.startswith(".")]
    assert first in landing_files(landing, "landing") and second in landing_files(
        landing, "landing"
    )
    assert len(read_table(second, "b").frame) == 10


def test_the_command_appends_builtin_batches(tmp_path, capsys):
    arguments = argparse.Namespace(
        landing=str(tmp_path),
        reference="builtin:iris",
        label=None,
        rows=20,
        batches=2,
        seed=0,
        noise=0.3,
        shift=1.0,
        drift_columns=None,
    )
    run(arguments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch-0001.csv", "batch-0002.csv"]
    assert "shift 1" in capsys.readouterr().out
    batch = pd.read_csv(tmp_path / "batch-0002.csv")
    assert "target" in batch.columns and len(batch) == 20
    with pytest.raises(BakeoffError, match="unknown built-in 'nope'"):
        run(argparse.Namespace(**{**vars(arguments), "reference": "builtin:nope"}))
