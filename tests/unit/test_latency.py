"""Interleaved latency timing and its intervals over rounds, on cheap fake models."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from components.backends.base import EAGER, Bundle, Loaded
from components.contracts import TrainingMetrics
from components.errors import ParamsError
from components.evaluate import report
from components.evaluate.core import EvaluateParams, compare
from components.evaluate.latency import (
    Timings,
    method,
    time_interleaved,
)
from components.export.core import ONNX, serving_bench

ROWS = np.arange(40, dtype=np.float32).reshape(20, 2)


def sleeper(seconds: float):
    def call(matrix: np.ndarray) -> np.ndarray:
        time.sleep(seconds)
        return matrix.sum(axis=1)

    return call


def fast(matrix: np.ndarray) -> np.ndarray:
    return matrix.sum(axis=1)


def within(value: float, interval: list[float]) -> bool:
    low, high = interval
    return low <= value <= high


def profile(calls, rows, *, level=0.95, seed=0, **timing):
    """What evaluate and export do: time interleaved, then summarise with intervals."""
    return time_interleaved(calls, rows, **timing).summary(level=level, seed=seed)


def test_every_figure_carries_an_interval_that_holds_it():
    profiles = profile({"fast": fast, "slow": sleeper(0.002)}, ROWS, repeats=20, rounds=4, warmup=2)
    assert set(profiles) == {"fast", "slow"}
    for one in profiles.values():
        single, full = one["batch_1"], one["batch_256"]
        assert (single["repeats"], single["rounds"]) == (20, 4)
        assert (full["repeats"], full["rounds"]) == (4, 4)  # at least one batch per round
        assert within(single["p50_ms"], single["p50_ms_interval"])
        assert within(single["p99_ms"], single["p99_ms_interval"])
        assert within(full["p50_ms"], full["p50_ms_interval"])
        assert within(full["examples_per_s"], full["examples_per_s_interval"])
        assert single["p50_ms"] <= single["p99_ms"]
        assert full["examples_per_s"] == pytest.approx(256 / full["p50_ms"] * 1e3)
    # A model that sleeps 2 ms per request is slower beyond doubt.
    slow, quick = profiles["slow"], profiles["fast"]
    assert slow["batch_1"]["p50_ms_interval"][0] > quick["batch_1"]["p50_ms_interval"][1]
    assert slow["batch_1"]["p50_ms"] >= 2.0
    assert (
        slow["batch_256"]["examples_per_s_interval"][1]
        < quick["batch_256"]["examples_per_s_interval"][0]
    )


def test_the_order_of_visits_rotates_from_round_to_round():
    visits: list[str] = []

    def recorder(name: str):
        def call(matrix: np.ndarray) -> np.ndarray:
            if not visits or visits[-1] != name:
                visits.append(name)
            return matrix

        return call

    calls = {name: recorder(name) for name in "abc"}
    timings = time_interleaved(calls, ROWS, repeats=6, rounds=3, warmup=0)
    assert timings.order == (("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b"))
    assert visits == list("abcbcacab")
    two = time_interleaved({"a": fast, "b": fast}, ROWS, repeats=4, rounds=4, warmup=0)
    assert [first for first, _ in two.order] == ["a", "b", "a", "b"]


def test_single_row_requests_cycle_through_the_real_rows():
    seen: list[float] = []

    def call(matrix: np.ndarray) -> np.ndarray:
        if len(matrix) == 1:
            seen.append(float(matrix[0, 0]))
        return matrix

    time_interleaved({"a": call}, ROWS, repeats=10, rounds=2, warmup=0)
    assert seen == [float(v) for v in ROWS[:10, 0]]  # rows 0-4 in round one, 5-9 in round two


def synthetic(per_round_ms: list[float], factor: float = 1.0) -> np.ndarray:
    """Requests that vary only from round to round, as a machine's load does."""
    return np.repeat(np.array(per_round_ms)[:, None] * factor / 1e3, 10, axis=1)


def test_the_paired_ratio_resamples_the_same_rounds_for_both():
    rounds = [1.0, 2.0, 3.0, 4.0, 5.0]
    single = {"a": synthetic(rounds), "b": synthetic(rounds, 2.0)}
    full = {name: values * 10 for name, values in single.items()}
    timings = Timings(single, full, (("a", "b"), ("b", "a")) * 2 + (("a", "b"),))
    profiles = timings.summary(level=0.95, seed=0)
    low, high = profiles["a"]["batch_1"]["p50_ms_interval"]
    assert low < 2.0 and high > 4.0  # the rounds differ, so each figure alone is uncertain
    ratio = timings.ratio_interval("b", "a", level=0.95, seed=0)
    # Within any one round b takes twice as long as a: the paired ratio is exactly 2.
    assert (ratio.value, ratio.low, ratio.high) == pytest.approx((2.0, 2.0, 2.0))
    assert timings.summary(seed=0) == profiles  # the same seed draws the same rounds


def test_the_ratio_of_a_slow_call_over_a_fast_one_is_above_one():
    timings = time_interleaved(
        {"fast": fast, "slow": sleeper(0.002)}, ROWS, repeats=10, rounds=5, warmup=1
    )
    ratio = timings.ratio_interval("slow", "fast")
    assert 1 < ratio.low <= ratio.value <= ratio.high
    same = timings.ratio_interval("fast", "fast")
    assert (same.value, same.low, same.high) == (1.0, 1.0, 1.0)
    with pytest.raises(KeyError, match="no timings of 'other'"):
        timings.ratio_interval("other", "fast")


@pytest.mark.parametrize(
    ("calls", "rows", "keywords", "message"),
    [
        ({}, ROWS, {}, "no models to time"),
        ({"a": fast}, ROWS[:0], {}, "no rows"),
        ({"a": fast}, ROWS, {"rounds": 0}, "at least one round"),
        ({"a": fast}, ROWS, {"level": 1.0}, "level between 0 and 1"),
    ],
)
def test_bad_timing_requests_are_refused(calls, rows, keywords, message):
    with pytest.raises(ValueError, match=message):
        profile(calls, rows, repeats=2, warmup=0, **keywords)


def test_the_serving_bench_times_every_format_together_with_intervals(tmp_path):
    bundle = Bundle(
        "fake",
        {ONNX: tmp_path / "model.onnx"},
        {ONNX: fast, EAGER: sleeper(0.001)},
        fast,
        EAGER,
    )
    bench = serving_bench(bundle, ROWS, 1, 10, rounds=5)
    assert set(bench["formats"]) == {ONNX, EAGER}
    assert (bench["rounds"], bench["level"]) == (5, 0.95)
    assert bench["method"] == method(5, 0.95)
    onnx, eager = bench["formats"][ONNX]["batch_1"], bench["formats"][EAGER]["batch_1"]
    assert bench["onnx_over_eager_batch_1_p50"] == pytest.approx(onnx["p50_ms"] / eager["p50_ms"])
    low, high = bench["onnx_over_eager_batch_1_p50_interval"]
    assert low <= bench["onnx_over_eager_batch_1_p50"] <= high < 1
    assert bench["formats"][EAGER]["runtime"] == "the framework's own model called eagerly"


def test_the_comparison_and_its_report_carry_the_latency_intervals(cleaned):
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    classes = len(constants.label.classes)

    def answer(matrix: np.ndarray) -> np.ndarray:
        return np.eye(classes)[np.zeros(len(matrix), int)]

    def slow(matrix: np.ndarray) -> np.ndarray:
        time.sleep(0.001)
        return answer(matrix)

    models = {
        "quick": Loaded("quick", Path("q"), 10, answer),
        "slow": Loaded("slow", Path("s"), 10, slow),
    }
    trained = TrainingMetrics(
        framework="any",
        metric="val/accuracy",
        best_val=0.9,
        best_trial=0,
        best_params={},
        best_epochs=1,
        best_fit_seconds=1.0,
        train_examples_per_s=1.0,
        parameters=1,
        training_seconds=1.0,
        test={},
        trials={"run": 1, "pruned": 0, "failed": 0},
        blessed=True,
        pushed=True,
    )
    params = EvaluateParams(optimised="val/accuracy", resamples=100, latency_repeats=10)
    comparison = compare(test, constants, models, dict.fromkeys(models, trained), params)
    ratio = comparison["latency_ratio"]
    assert (ratio["faster"], ratio["slower"], ratio["rounds"], ratio["level"]) == (
        "quick",
        "slow",
        5,
        0.95,
    )
    assert 1 < ratio["interval"][0] <= ratio["ratio"] <= ratio["interval"][1]
    single = comparison["frameworks"]["slow"]["latency"]["batch_1"]
    assert within(single["p50_ms"], single["p50_ms_interval"]) and single["rounds"] == 5
    text = report.markdown(comparison, [], "figures")
    low, high = single["p50_ms_interval"]
    assert f"{single['p50_ms']:.3f} [{low:.3f}, {high:.3f}]" in text
    assert (
        "interleaved timing, 5 rounds; in brackets the 95% bootstrap interval over rounds" in text
    )


@pytest.mark.parametrize("rounds", [1, 0, 2.5, True])
def test_fewer_than_two_timing_rounds_are_refused(rounds):
    from components.evaluate.cli import params_from
    from components.training.search import TuningParams

    tuning = TuningParams.from_section({})
    with pytest.raises(ParamsError, match=r"evaluate\.latency_rounds"):
        params_from({"latency_rounds": rounds}, tuning, "classification")
    assert params_from({}, tuning, "classification").latency_rounds == 5
