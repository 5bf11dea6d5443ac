"""The framework-settings benchmark's options, order and arithmetic, on fake numbers (no training)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import benchmarks


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script as a module."""
    return benchmarks.load("framework_settings")


def _run(
    bench: ModuleType, framework: str, variant: str, round_: int, rate: float, arch: str = "cnn"
) -> dict[str, Any]:
    return {
        "round": round_,
        "framework": framework,
        "variant": variant,
        "architecture": arch,
        "ok": True,
        "examples_per_s": rate,
        "warmup_s": 1.0 + round_,
        "runtime": {"onednn": variant != "onednn_off", "intra_op_threads": 1},
    }


def test_defaults(bench: ModuleType) -> None:
    args = bench.parse_args([])
    assert args.architectures == ["mlp", "cnn", "cnn_unbounded"]
    assert (args.rounds, args.epochs, args.threads, args.out) == (2, 3, 1, bench.RESULTS)


@pytest.mark.parametrize(
    "argv",
    [
        ["--epochs", "1"],
        ["--rounds", "0"],
        ["--threads", "0"],
        ["--timeout", "0"],
        ["--architectures", "resnet"],
        ["--frameworks", "pytorch", "--variants", "onednn_off"],
    ],
)
def test_bad_options_fail(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


def test_two_epochs_and_filters(bench: ModuleType) -> None:
    args = bench.parse_args(
        ["--architectures", "cnn_unbounded", "--variants", "defaults", "bakeoff", "onednn_off",
         "--rounds", "1", "--epochs", "2", "--out", "x.json"]
    )  # fmt: skip
    cells = bench.plan(args.architectures, args.frameworks, args.variants)
    assert [(c.framework, c.variant) for c in cells] == [
        ("tensorflow", "defaults"),
        ("pytorch", "defaults"),
        ("tensorflow", "bakeoff"),
        ("pytorch", "bakeoff"),
        ("tensorflow", "onednn_off"),
    ]
    assert args.out == Path("x.json")


def test_rounds_alternate_and_reverse(bench: ModuleType) -> None:
    cells = bench.plan(["mlp"], ["tensorflow", "pytorch"], list(bench.VARIANT_NAMES))
    assert [c.framework for c in cells[:6]] == ["tensorflow", "pytorch"] * 3
    order = bench.schedule(cells, 2)
    assert [c for r, c in order if r == 1] == list(reversed(cells))
    assert len(order) == 2 * len(cells) == 14


def test_runtime_for_variants(bench: ModuleType) -> None:
    assert bench.runtime_for("defaults", 1) is None
    assert bench.runtime_for("onednn_off", 3).onednn is False
    assert bench.runtime_for("onednn_off", 3).threads == 3
    assert bench.runtime_for("bakeoff+compile", 1).compile is True
    bakeoff = bench.runtime_for("bakeoff", 2)
    assert (bakeoff.onednn, bakeoff.compile, bakeoff.threads) == (True, False, 2)


def test_job_round_trips(bench: ModuleType) -> None:
    job = bench.Job(bench.Measurement("pytorch", "bakeoff", "mlp"), epochs=2, threads=1)
    assert bench.Job.from_json(job.to_json()) == job


def test_summary_pairs_ratios_by_round(bench: ModuleType) -> None:
    runs = [
        _run(bench, "tensorflow", "bakeoff", 0, 600.0),
        _run(bench, "tensorflow", "bakeoff", 1, 800.0),
        _run(bench, "pytorch", "bakeoff", 0, 1000.0),
        _run(bench, "pytorch", "bakeoff", 1, 1000.0),
        _run(bench, "tensorflow", "defaults", 0, 60.0),
        _run(bench, "tensorflow", "defaults", 1, 100.0),
        {**_run(bench, "tensorflow", "onednn_off", 0, 0.0), "ok": False, "error": "boom"},
    ]
    summary = bench.summarise(runs)
    ratios = summary["ratios"]["cnn"]
    versus_torch = ratios["tensorflow_bakeoff_over_pytorch_bakeoff"]
    assert versus_torch["by_round"] == pytest.approx([0.6, 0.8])
    assert (versus_torch["min"], versus_torch["median"], versus_torch["max"]) == pytest.approx(
        (0.6, 0.7, 0.8)
    )
    assert ratios["tensorflow_bakeoff_over_defaults"]["by_round"] == pytest.approx([10.0, 8.0])
    assert ratios["tensorflow_bakeoff_over_onednn_off"] is None
    assert summary["goal_met"] is True
    cells = {(c["framework"], c["variant"]): c for c in summary["cells"]}
    assert cells["tensorflow", "bakeoff"]["examples_per_s"]["median"] == pytest.approx(700.0)
    assert cells["tensorflow", "bakeoff"]["warmup_s"] == pytest.approx(1.5)
    assert cells["tensorflow", "onednn_off"]["failed"] == 1
    assert cells["tensorflow", "onednn_off"]["errors"] == ["boom"]
    table = bench.render(summary, ["cnn"])
    assert "tensorflow/onednn_off" in table and "failed" in table
    assert "TF bakeoff / pytorch bakeoff 0.70 (0.60..0.80)" in table


def test_goal_missed_below_half(bench: ModuleType) -> None:
    runs = [
        _run(bench, "tensorflow", "bakeoff", 0, 400.0),
        _run(bench, "pytorch", "bakeoff", 0, 1000.0),
    ]
    assert bench.summarise(runs)["goal_met"] is False
