"""The pipeline-scale benchmark's table, ratios and goals, on fake figures (no pipeline run)."""

from __future__ import annotations

import math
from types import ModuleType

import pandas as pd
import pytest

from tests.helpers import benchmarks


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script as a module."""
    return benchmarks.load("pipeline_scale")


@pytest.fixture(scope="module")
def table(bench: ModuleType) -> pd.DataFrame:
    return bench.synthetic_table(1_000, seed=0)


def test_the_table_has_20_numeric_3_categorical_features_and_a_5_class_string_label(bench, table):
    numeric = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    text = [c for c in table.columns if table[c].dtype == object and c != bench.LABEL]
    assert table.shape == (1_000, 24)
    assert len(numeric) == 20 and not table[numeric].isna().any().any()
    assert text == list(bench.CATEGORICAL)
    for name, levels in bench.CATEGORICAL.items():
        assert 5 <= table[name].nunique() <= levels <= 20
    assert set(table[bench.LABEL]) == set(bench.CLASSES)
    assert all(isinstance(value, str) for value in table[bench.LABEL])


def test_the_table_is_the_same_for_a_seed_and_differs_across_seeds(bench, table):
    pd.testing.assert_frame_equal(table, bench.synthetic_table(1_000, seed=0))
    assert not table.equals(bench.synthetic_table(1_000, seed=1))


def test_the_label_depends_on_the_features(bench):
    frame = bench.synthetic_table(5_000, seed=0)
    # The class each value of the strongest feature's sign favours differs: not noise.
    shares = pd.crosstab(frame["x00"] > 0, frame[bench.LABEL], normalize="index")
    assert (shares.loc[True] - shares.loc[False]).abs().max() > 0.05
    by_level = pd.crosstab(frame["grade"], frame[bench.LABEL], normalize="index")
    assert by_level.max().max() - by_level.min().min() > 0.2


def test_a_table_needs_a_row(bench):
    with pytest.raises(ValueError, match="rows"):
        bench.synthetic_table(0)


@pytest.mark.parametrize(
    ("rows_a", "seconds_a", "rows_b", "seconds_b", "expected"),
    [
        (100_000, 10.0, 1_000_000, 100.0, 10.0),  # linear
        (100_000, 10.0, 1_000_000, 150.0, 15.0),
        (10_000, 5.0, 1_000_000, 500.0, 10.0),  # 100x rows, 100x time: 10 per 10x
        (2_000, 4.0, 20_000, 4.0, 1.0),  # fixed cost
        (1_000, 1.0, 4_000, 4.0, 10.0),  # linear across a 4x step
    ],
)
def test_the_ratio_is_rescaled_to_ten_times_the_rows(
    bench, rows_a, seconds_a, rows_b, seconds_b, expected
):
    assert bench.ratio_per_10x(rows_a, seconds_a, rows_b, seconds_b) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rows_a", "seconds_a", "rows_b", "seconds_b"),
    [(10, None, 100, 1.0), (10, 1.0, 100, None), (10, 0.0, 100, 1.0), (10, 1.0, 10, 2.0)],
)
def test_a_ratio_without_two_figures_is_none(bench, rows_a, seconds_a, rows_b, seconds_b):
    assert bench.ratio_per_10x(rows_a, seconds_a, rows_b, seconds_b) is None


def test_ratios_pair_consecutive_sizes_and_leave_a_missing_or_tiny_measure_empty(bench):
    found = bench.ratios(
        {
            100_000: {"clean": 2.0, "graph": 10.0, "tfx:Pusher": 0.5},
            10_000: {"clean": 1.0, "graph": 5.0, "tfx:Transform": 1.0, "tfx:Pusher": 0.01},
            1_000_000: {"clean": 40.0},
        }
    )
    assert list(found) == ["10000->100000", "100000->1000000"]
    assert found["10000->100000"]["clean"] == pytest.approx(2.0)
    assert found["10000->100000"]["tfx:Transform"] is None
    assert found["10000->100000"]["tfx:Pusher"] is None  # 0.01 s: a ratio of rounding
    assert found["100000->1000000"] == {
        "clean": pytest.approx(20.0),
        "graph": None,
        "tfx:Pusher": None,
    }


def _result(bench, rows, seconds, peak=1_000.0, completed=True):
    return bench.SizeResult(
        rows=rows,
        seconds={stage: seconds for stage in bench.STAGES} if completed else {"ingest": seconds},
        peak_mib={stage: peak for stage in bench.STAGES} if completed else {"ingest": peak},
        completed=completed,
        elapsed_s=seconds * (len(bench.STAGES) if completed else 1),
    )


def test_goals_are_not_measured_without_the_sizes_they_name(bench):
    goals = bench.check_goals({10_000: _result(bench, 10_000, 1.0)})
    assert {goal["status"] for goal in goals.values()} == {bench.NOT_MEASURED}


def test_goals_met_when_the_large_run_is_linear_fast_and_small(bench):
    goals = bench.check_goals(
        {100_000: _result(bench, 100_000, 10.0), 1_000_000: _result(bench, 1_000_000, 110.0)}
    )
    assert goals["time_ratio_100k_to_1m"]["status"] == bench.MET
    assert goals["graph_1m_within_60_min"]["status"] == bench.MET
    assert goals["graph_1m_within_60_min"]["seconds"] == 110.0 * len(bench.STAGES)
    assert goals["peak_memory_under_8_gib"]["status"] == bench.MET


def test_goals_not_met_by_one_slow_stage_a_long_graph_or_one_large_peak(bench):
    fast = _result(bench, 100_000, 10.0)
    slow = _result(bench, 1_000_000, 100.0, peak=9_000.0)
    slow = bench.SizeResult(
        rows=slow.rows,
        seconds={**slow.seconds, "evaluate": 121.0 * 10},
        peak_mib=slow.peak_mib,
        completed=True,
        elapsed_s=4_000.0,
    )
    goals = bench.check_goals({100_000: fast, 1_000_000: slow})
    ratio = goals["time_ratio_100k_to_1m"]
    assert ratio["status"] == bench.NOT_MET
    assert ratio["stages"]["evaluate"]["status"] == bench.NOT_MET
    assert ratio["stages"]["clean"]["status"] == bench.MET
    assert goals["graph_1m_within_60_min"]["status"] == bench.NOT_MET
    assert goals["peak_memory_under_8_gib"]["status"] == bench.NOT_MET


def test_an_unfinished_large_run_is_not_measured_unless_already_over_a_limit(bench):
    unfinished = _result(bench, 1_000_000, 100.0, completed=False)
    goals = bench.check_goals({100_000: _result(bench, 100_000, 10.0), 1_000_000: unfinished})
    assert goals["graph_1m_within_60_min"]["status"] == bench.NOT_MEASURED
    assert goals["peak_memory_under_8_gib"]["status"] == bench.NOT_MEASURED
    assert goals["time_ratio_100k_to_1m"]["stages"]["ingest"]["status"] == bench.MET
    assert goals["time_ratio_100k_to_1m"]["stages"]["clean"]["status"] == bench.NOT_MEASURED
    assert goals["time_ratio_100k_to_1m"]["status"] == bench.NOT_MEASURED

    over = _result(bench, 1_000_000, 3_700.0, peak=9_000.0, completed=False)
    goals = bench.check_goals({1_000_000: over})
    assert goals["graph_1m_within_60_min"]["status"] == bench.NOT_MET
    assert goals["peak_memory_under_8_gib"]["status"] == bench.NOT_MET


def test_a_small_run_over_the_memory_limit_fails_the_goal(bench):
    goals = bench.check_goals({10_000: _result(bench, 10_000, 1.0, peak=8 * 1024.0)})
    assert goals["peak_memory_under_8_gib"]["status"] == bench.NOT_MET
    assert math.isclose(goals["peak_memory_under_8_gib"]["over"]["ingest@10000"], 8 * 1024.0)
