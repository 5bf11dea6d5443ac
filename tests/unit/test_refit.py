"""The refit's schedule and arithmetic: interleaved fits, steady rates, paired intervals."""

from __future__ import annotations

import pytest

from components.errors import ParamsError
from components.refit import core
from components.refit.cli import params_from


def test_the_schedule_interleaves_frameworks_and_rotates_their_order():
    fits = core.schedule(["tensorflow", "pytorch"], ["pytorch", "tensorflow"], repeats=2)
    assert [(f.repeat, f.config, f.framework) for f in fits] == [
        (0, "tensorflow", "pytorch"),
        (0, "tensorflow", "tensorflow"),
        (0, "pytorch", "pytorch"),
        (0, "pytorch", "tensorflow"),
        (1, "tensorflow", "tensorflow"),
        (1, "tensorflow", "pytorch"),
        (1, "pytorch", "tensorflow"),
        (1, "pytorch", "pytorch"),
    ]
    # Both frameworks train with the same seed in the same repeat.
    assert {f.seed for f in fits if f.repeat == 1} == {1}


def test_two_studies_that_chose_the_same_configuration_are_fitted_once():
    spec, hyper = {"kind": "mlp", "width": 8}, {"batch_size": 32}
    other = {"kind": "mlp", "width": 16}
    configs = core.distinct(
        {"a": (spec, hyper), "b": (dict(spec), dict(hyper)), "c": (other, hyper)}
    )
    assert list(configs) == ["a+b", "c"]


def test_the_steady_rate_leaves_the_first_epoch_out_and_reports_its_surplus():
    rate, warm_up = core.steady([5.0, 1.0, 2.0, 1.0], rows=100)
    assert rate == pytest.approx(100.0)
    assert warm_up == pytest.approx(4.0)


def test_the_interval_is_geometric_and_widens_with_spread():
    centre, low, high = core.log_interval([100.0, 100.0, 100.0], 0.95)
    assert (centre, low, high) == pytest.approx((100.0, 100.0, 100.0))
    centre, low, high = core.log_interval([50.0, 200.0], 0.95)
    assert centre == pytest.approx(100.0)
    assert low < 50 and high > 200
    centre, low, high = core.log_interval([7.0], 0.95)
    assert centre == pytest.approx(7.0) and (low, high) == (None, None)  # JSON null, not NaN


def test_ratios_are_paired_repeat_by_repeat():
    fits = [
        {"config": "x", "framework": f, "repeat": r, "examples_per_s": rate, "warm_up_s": 0.1}
        for f, r, rate in [("a", 0, 200.0), ("b", 0, 100.0), ("a", 1, 400.0), ("b", 1, 200.0)]
    ]
    summary = core.summarise(fits, {"x": {"architecture": "mlp"}}, level=0.95)["x"]
    # The machine was twice as fast in repeat 1, but a is twice b's rate in both: no spread.
    (ratio,) = summary["ratios"]
    assert (ratio["framework"], ratio["over"], ratio["pairs"]) == ("a", "b", 2)
    assert ratio["ratio"] == pytest.approx(2.0)
    assert ratio["interval"] == pytest.approx([2.0, 2.0])
    assert summary["rates"]["a"]["interval"][1] > summary["rates"]["a"]["interval"][0]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epochs": 1}, "refit.epochs: expected a whole number >= 2"),
        ({"repeats": 0}, "refit.repeats: expected a whole number >= 1"),
        ({"level": 1.0}, "refit.level: expected a number between 0 and 1"),
    ],
)
def test_bad_refit_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        params_from(raw)


def test_one_repeat_gives_figures_without_intervals_that_json_can_hold():
    import json

    fits = [
        {"config": "x", "framework": f, "repeat": 0, "examples_per_s": 100.0, "warm_up_s": 0.1}
        for f in ("a", "b")
    ]
    summary = core.summarise(fits, {"x": {"architecture": "mlp"}}, level=0.95)
    assert summary["x"]["rates"]["a"]["interval"] == [None, None]
    json.dumps(summary, allow_nan=False)


def test_each_framework_refits_its_own_configuration_once_per_seed():
    owners = core.owners({"pytorch+tensorflow": None, "jax": None})
    assert owners == {
        "pytorch": "pytorch+tensorflow",
        "tensorflow": "pytorch+tensorflow",
        "jax": "jax",
    }
    fits = core.seed_schedule({"pytorch": "p", "tensorflow": "t"}, seeds=2)
    assert [(f.seed, f.framework, f.config, f.kind) for f in fits] == [
        (0, "pytorch", "p", core.SEED),
        (0, "tensorflow", "t", core.SEED),
        (1, "tensorflow", "t", core.SEED),  # the order rotates, as the timing fits'
        (1, "pytorch", "p", core.SEED),
    ]


def test_evaluate_seeds_must_be_one_or_more():
    from components.refit.cli import seeds_from

    assert seeds_from({}) == 3 and seeds_from({"seeds": 1}) == 1
    with pytest.raises(ParamsError, match=r"evaluate\.seeds"):
        seeds_from({"seeds": 0})
