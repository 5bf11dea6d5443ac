"""The verdict's rules: choosing the winner, the champion gate, and export parity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components.backends.base import Loaded
from components.contracts import TrainingMetrics
from components.errors import BakeoffError, ParamsError
from components.evaluate.core import (
    EvaluateParams,
    compare,
    fairness,
    selection_metric,
    side_by_side,
)
from components.evaluate.select import Candidate, choose, exact_latency, select
from components.evaluate.stats import Interval
from components.export.core import describe_failure, failures
from components.export.parity import Limits, check
from components.register.gate import CHALLENGER, CHAMPION, decide
from components.training.features import targets


def interval(difference: float, low: float, high: float) -> Interval:
    return Interval(difference, low, high, 0.95, 2000)


FAST_BIG = Candidate("tensorflow", 0.95, latency_ms=1.0, size_bytes=900)
SLOW_SMALL = Candidate("pytorch", 0.96, latency_ms=2.0, size_bytes=100)


@pytest.mark.parametrize(
    ("difference", "higher", "winner"),
    [(0.02, True, "tensorflow"), (-0.02, True, "pytorch"), (0.02, False, "pytorch")],
)
def test_a_real_difference_is_decided_by_the_metric(difference, higher, winner):
    low, high = sorted((difference / 2, difference * 2))
    chosen = select(
        FAST_BIG,
        SLOW_SMALL,
        interval(difference, low, high),
        metric="test/m",
        higher_is_better=higher,
    )
    assert (chosen.winner, chosen.decided_by) == (winner, "metric")
    assert "excludes zero" in chosen.reason


def test_a_tie_goes_to_faster_inference():
    # pytorch scores higher, but the interval includes zero: a tie.
    chosen = select(
        FAST_BIG, SLOW_SMALL, interval(-0.01, -0.03, 0.01), metric="m", higher_is_better=True
    )
    assert (chosen.winner, chosen.decided_by) == ("tensorflow", "latency")
    assert "a tie" in chosen.reason


def test_a_tie_within_the_latency_margin_goes_to_the_smaller_model():
    close = Candidate("tensorflow", 0.95, latency_ms=1.9, size_bytes=900)
    chosen = select(
        close, SLOW_SMALL, interval(-0.01, -0.03, 0.01), metric="m", higher_is_better=True
    )
    assert (chosen.winner, chosen.decided_by) == ("pytorch", "size")


def test_a_complete_tie_is_still_decided_by_name():
    a = Candidate("tensorflow", 0.9, 1.0, 100)
    b = Candidate("pytorch", 0.9, 1.0, 100)
    chosen = select(a, b, interval(0.0, -0.01, 0.01), metric="m", higher_is_better=True)
    assert (chosen.winner, chosen.decided_by) == ("pytorch", "name")


def test_among_many_only_those_tied_with_the_leader_go_to_the_tie_break():
    leader = Candidate("a", 0.95, latency_ms=2.0, size_bytes=500)
    close = Candidate("b", 0.94, latency_ms=1.0, size_bytes=900)
    fastest_but_worse = Candidate("c", 0.80, latency_ms=0.5, size_bytes=100)
    chosen = choose(
        leader,
        [(close, interval(-0.01, -0.03, 0.01)), (fastest_but_worse, interval(-0.15, -0.2, -0.1))],
        metric="m",
        higher_is_better=True,
        latency_ratio=exact_latency([leader, close, fastest_but_worse]),
    )
    assert (chosen.winner, chosen.runner_up, chosen.decided_by) == ("b", "a", "latency")
    assert "a tie" in chosen.reason and "c" not in chosen.reason.split(":")[0]


def test_a_leader_clear_of_every_rival_wins_on_the_metric_against_the_next_best():
    leader = Candidate("a", 0.30, latency_ms=9.0, size_bytes=900)
    rivals = [
        (Candidate("b", 0.50, 1.0, 100), interval(0.2, 0.1, 0.3)),
        (Candidate("c", 0.40, 1.0, 100), interval(0.1, 0.05, 0.15)),
    ]
    # Lower is better: every rival's interval of rival - leader lies above zero.
    chosen = choose(
        leader,
        rivals,
        metric="m",
        higher_is_better=False,
        latency_ratio=exact_latency([leader, *(c for c, _ in rivals)]),
    )
    assert (chosen.winner, chosen.runner_up, chosen.decided_by) == ("a", "c", "metric")
    assert "excludes zero" in chosen.reason


def test_a_tie_of_three_within_the_latency_margin_goes_to_the_smallest_then_by_name():
    tied = [
        (Candidate("b", 0.9, 1.05, 100), interval(0.0, -0.01, 0.01)),
        (Candidate("c", 0.9, 1.0, 100), interval(0.0, -0.01, 0.01)),
    ]
    leader = Candidate("a", 0.9, 1.0, 200)
    exact = exact_latency([leader, *(c for c, _ in tied)])
    chosen = choose(leader, tied, metric="m", higher_is_better=True, latency_ratio=exact)
    # Two share the smallest size: size decides nothing, and the name order does.
    assert (chosen.winner, chosen.runner_up, chosen.decided_by) == ("a", "b", "name")
    smaller = [(Candidate("c", 0.9, 1.0, 50), interval(0.0, -0.01, 0.01)), *tied[:1]]
    chosen = choose(leader, smaller, metric="m", higher_is_better=True, latency_ratio=exact)
    assert (chosen.winner, chosen.runner_up, chosen.decided_by) == ("c", "b", "size")


def test_the_first_registration_promotes():
    decision = decide(0.5, None, None, metric="test/accuracy", min_improvement=0.0)
    assert (decision.promote, decision.alias) == (True, CHAMPION)
    assert "no champion" in decision.reason


@pytest.mark.parametrize(
    ("improvement", "minimum", "promote"),
    [
        (interval(0.03, 0.01, 0.05), 0.0, True),  # shown better
        (interval(0.03, 0.01, 0.05), 0.02, False),  # better, but not shown by the minimum
        (interval(0.03, 0.025, 0.05), 0.02, True),
        (interval(0.0, 0.0, 0.0), 0.0, False),  # the same model again: a tie
        (interval(0.01, -0.01, 0.03), 0.0, False),  # a tie keeps the champion
        (interval(-0.004, -0.02, 0.01), 0.0, False),  # a small loss: no tolerance any more
    ],
)
def test_the_champion_stays_unless_the_interval_shows_an_improvement(improvement, minimum, promote):
    decision = decide(
        0.9, 0.9, improvement, metric="test/x", min_improvement=minimum, champion_version="3"
    )
    assert decision.promote is promote
    assert decision.alias == (CHAMPION if promote else CHALLENGER)
    assert "version 3" in decision.reason
    if not promote:
        assert "a tie keeps the champion" in decision.reason


def test_no_chain_of_runs_lowers_the_champion():
    # Each candidate a little worse than the last champion, inside any tolerance
    # the old gate allowed: none is promoted, so the champion's score never drops.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 300)
    champion = np.eye(2)[np.where(rng.random(300) < 0.9, truth, 1 - truth)]
    for _ in range(5):
        candidate = champion.copy()
        flip = rng.choice(300, 2, replace=False)  # two more rows wrong
        candidate[flip] = 1 - candidate[flip]
        rows = {
            name: (output.argmax(1) == truth).astype(float)
            for name, output in (("new", candidate), ("old", champion))
        }
        from components.evaluate.stats import paired_bootstrap

        gained = paired_bootstrap(rows["new"], rows["old"], resamples=500)
        decision = decide(
            rows["new"].mean(), rows["old"].mean(), gained, metric="m", min_improvement=0.0
        )
        assert not decision.promote
        if decision.promote:
            champion = candidate


def test_a_champion_that_cannot_read_todays_data_is_replaced():
    decision = decide(
        0.1, None, None, metric="m", min_improvement=0.0, unscorable="takes other input columns"
    )
    assert decision.promote and "other input columns" in decision.reason


PROBABILITIES = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
LABELS = np.array([0, 1, 1, 1])


LIMITS = Limits()


def parity(exported, quantised=False, limits=LIMITS):
    return check(
        "fmt",
        PROBABILITIES,
        exported,
        LABELS,
        task="classification",
        metric="accuracy",
        quantised=quantised,
        limits=limits,
    )


def test_a_float_export_within_the_tolerance_passes():
    row = parity(PROBABILITIES + 5e-5)
    assert row.passed and row.max_abs_diff == pytest.approx(5e-5)
    assert row.argmax_agreement == 1.0 and row.metric_delta == 0.0


def test_a_float_export_off_by_more_than_the_tolerance_fails_even_with_the_same_argmax():
    row = parity(PROBABILITIES + 2e-4)
    assert not row.passed and row.argmax_agreement == 1.0
    assert "fmt: max |diff| 0.0002" in describe_failure("pytorch", failures([row]))


def test_a_quantised_export_may_differ_but_not_lose_more_than_the_allowed_metric():
    flipped = PROBABILITIES.copy()
    flipped[2] = [0.4, 0.6]  # one more right: the metric rises, allowed
    assert parity(flipped, quantised=True).passed
    wrong = PROBABILITIES.copy()
    wrong[1] = [0.6, 0.4]  # one of four rows lost: 25 points
    row = parity(wrong, quantised=True)
    assert not row.passed and row.metric_delta == pytest.approx(-0.25)
    assert row.argmax_agreement == pytest.approx(0.75)


def test_an_export_with_nan_outputs_fails():
    broken = PROBABILITIES.copy()
    broken[0, 0] = np.nan
    assert not parity(broken).passed
    assert not parity(broken, quantised=True).passed


def test_regression_parity_compares_values_and_rmse():
    values, truth = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0])
    row = check(
        "onnx",
        values,
        values.reshape(-1, 1) + 1e-6,
        truth,
        task="regression",
        metric="rmse",
        quantised=False,
        limits=Limits(),
    )
    assert row.passed and row.argmax_agreement is None


@pytest.mark.parametrize(
    ("task", "optimised", "metric"),
    [
        ("classification", "val/accuracy", "accuracy"),
        ("classification", "val/loss", "log_loss"),
        ("regression", "val/rmse", "rmse"),
    ],
)
def test_the_winner_is_chosen_by_the_metric_the_trainers_optimised(task, optimised, metric):
    assert selection_metric(task, optimised) == metric


def test_a_metric_of_the_other_task_is_refused():
    with pytest.raises(ParamsError, match="val/rmse"):
        selection_metric("classification", "val/rmse")


TRAINED = TrainingMetrics(
    framework="any",
    metric="val/accuracy",
    best_val=0.9,
    best_trial=0,
    best_params={"depth": 1, "width": 32},
    best_epochs=3,
    best_fit_seconds=1.0,
    train_examples_per_s=100.0,
    parameters=100,
    training_seconds=10.0,
    test={"accuracy": 0.9},
    trials={"run": 4, "complete": 3, "pruned": 1, "failed": 0},
    blessed=True,
    pushed=True,
)


def test_fairness_names_the_rules_a_run_broke():
    assert fairness({"tensorflow": TRAINED, "pytorch": TRAINED}) == []
    other = replace(TRAINED, parameters=101, trials={"run": 3}, pushed=False)
    broken = fairness({"tensorflow": TRAINED, "pytorch": other})
    assert any("equal parameter counts" in line for line in broken)
    assert any("pytorch ran 3 trials" in line for line in broken)
    assert any("pytorch's last run saved no model" in line for line in broken)
    # A different architecture drawn by each search is not a broken rule.
    wider = replace(TRAINED, parameters=300, best_params={"depth": 1, "width": 64})
    assert fairness({"tensorflow": TRAINED, "pytorch": wider}) == []


def scripted_models(cleaned):
    """A perfect and an always-wrong model of the tiny data's test split."""
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    truth = targets(test, constants)
    classes = len(constants.label.classes)
    wrong = (truth + 1) % classes

    def perfect(matrix):
        # Scoring sees every row at once; latency sees one row or a batch of 256.
        rows = len(matrix)
        return (
            np.eye(classes)[truth] if rows == len(truth) else np.eye(classes)[np.zeros(rows, int)]
        )

    def always_wrong(matrix):
        rows = len(matrix)
        return (
            np.eye(classes)[wrong] if rows == len(truth) else np.eye(classes)[np.zeros(rows, int)]
        )

    return {
        "tensorflow": Loaded("tensorflow", Path("tf"), 10, perfect),
        "pytorch": Loaded("pytorch", Path("pt"), 20, always_wrong),
    }


PARAMS = EvaluateParams(optimised="val/accuracy", resamples=200, latency_repeats=10)


def test_compare_scores_both_models_on_the_same_rows_and_tests_the_difference(cleaned):
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    truth = targets(test, constants)
    models = scripted_models(cleaned)
    result = compare(
        test,
        constants,
        models,
        {"tensorflow": TRAINED, "pytorch": TRAINED},
        PARAMS,
    )
    assert result["frameworks"]["tensorflow"]["test"]["accuracy"] == 1.0
    assert result["frameworks"]["pytorch"]["test"]["accuracy"] == 0.0
    assert result["winner"] == "tensorflow" and result["decided_by"] == "metric"
    assert result["difference"]["significant"]
    assert result["difference"]["mcnemar"]["only_b_right"] == len(truth)
    assert result["difference"]["mcnemar"]["p_value"] < 0.05
    assert result["frameworks"]["pytorch"]["latency"]["batch_1"]["p50_ms"] > 0
    assert result["fairness"] == []


def test_three_frameworks_each_get_an_interval_against_the_leader(cleaned):
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    scripted = scripted_models(cleaned)
    perfect, wrong = scripted["tensorflow"].call, scripted["pytorch"].call
    models = {
        "a": Loaded("a", Path("a"), 3000, perfect),
        "b": Loaded("b", Path("b"), 10, perfect),
        "c": Loaded("c", Path("c"), 5, wrong),
    }
    # Latency never beyond the margin: the tie of a and b goes to the model
    # smaller by more than it (the margin is every cost's).
    params = replace(PARAMS, latency_margin=100.0)
    result = compare(test, constants, models, dict.fromkeys(models, TRAINED), params)
    assert result["leader"] == "a"  # a and b score the same: the first by name leads
    assert set(result["differences"]) == {"b", "c"}
    assert not result["differences"]["b"]["significant"]
    assert result["differences"]["c"]["significant"]
    assert result["differences"]["c"]["value"] == -1.0  # c minus the leader, in accuracy
    assert result["differences"]["c"]["mcnemar"]["only_b_right"] == len(test)
    assert result["tied_with_leader"] == ["a", "b"]
    assert (result["winner"], result["runner_up"], result["decided_by"]) == ("b", "a", "size")
    assert (result["difference"]["a"], result["difference"]["b"]) == ("a", "b")


def test_a_model_its_last_training_run_did_not_save_cannot_win(cleaned):
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    stale = replace(TRAINED, pushed=False)
    result = compare(
        test, constants, scripted_models(cleaned), {"tensorflow": stale, "pytorch": TRAINED}, PARAMS
    )
    # The better model on disk is from an earlier run: the current one wins.
    assert (result["winner"], result["decided_by"]) == ("pytorch", "eligibility")
    assert result["frameworks"]["tensorflow"]["current"] is False
    with pytest.raises(BakeoffError, match="neither trainer saved a model"):
        compare(
            test,
            constants,
            scripted_models(cleaned),
            {"tensorflow": stale, "pytorch": stale},
            PARAMS,
        )


def test_a_model_answering_nan_is_refused_by_name(cleaned):
    models = scripted_models(cleaned)
    models["pytorch"] = Loaded("pytorch", Path("pt"), 1, lambda m: np.full((len(m), 3), np.nan))
    with pytest.raises(BakeoffError, match="pytorch's model at pt answers NaN"):
        compare(
            cleaned.splits["test"],
            cleaned.preprocessing,
            models,
            {"tensorflow": TRAINED, "pytorch": TRAINED},
            PARAMS,
        )


def test_regression_parity_is_measured_in_label_deviations():
    # float32 rounds values near 2,000 to 2.4e-4: an absolute 1e-4 would fail every export.
    native = np.array([2000.0, 2100.0, 1900.0])
    exported = native + 2.4e-4
    arguments = {"task": "regression", "metric": "rmse", "quantised": False, "limits": Limits()}
    assert not check("onnx", native, exported, native, **arguments).passed
    row = check("onnx", native, exported, native, scale=300.0, **arguments)
    assert row.passed and "label deviation" in row.limit


def test_trainers_that_did_not_run_side_by_side_are_flagged():
    hour = 3_600_000
    assert side_by_side({"tensorflow": (0, 2 * hour), "pytorch": (hour, 3 * hour)}) == []
    (line,) = side_by_side({"tensorflow": (5 * hour, 6 * hour), "pytorch": (0, hour)})
    assert "pytorch trained at 1970-01-01 00:00 UTC" in line
    assert "tensorflow at 1970-01-01 05:00 UTC" in line and "not comparable" in line
    assert side_by_side({"tensorflow": None, "pytorch": (0, hour)}) == []
    # Three: all must overlap at once; the line names every one and every stage to rerun.
    assert (
        side_by_side({"a": (0, 3 * hour), "b": (hour, 4 * hour), "c": (2 * hour, 5 * hour)}) == []
    )
    (line,) = side_by_side({"a": (0, hour), "b": (0, 3 * hour), "c": (2 * hour, 4 * hour)})
    assert "a trained at 1970-01-01 00:00 UTC, b at 1970-01-01 00:00 UTC and c at" in line
    assert "train@a train@b train@c" in line


@pytest.mark.parametrize("level", [0, 1, 1.5, "high"])
def test_a_confidence_level_outside_zero_and_one_is_refused(level):
    from components.evaluate.cli import params_from
    from components.training.search import TuningParams

    tuning = TuningParams.from_section({})
    with pytest.raises(ParamsError, match=r"evaluate\.level"):
        params_from({"level": level}, tuning, "classification")


@pytest.mark.parametrize("name", ["", "  ", 3])
def test_a_blank_registered_model_name_is_refused(name):
    from components.register.cli import params_from

    with pytest.raises(ParamsError, match=r"register\.model_name: expected a name or auto"):
        params_from({"model_name": name}, "digits")
    assert params_from({}, "digits").model_name == "bakeoff-digits"


def test_the_logged_report_closes_its_verdict_with_the_gates_decision():
    from components.contracts import CHAMPION_PENDING
    from components.register.core import Scored, champion_line, with_champion

    report = f"# r\n\n## Verdict\n\n- **Ships**: x\n{CHAMPION_PENDING}\n\n## Evidence\n"
    tie = interval(0.0, -0.01, 0.01)
    kept = decide(0.9, 0.9, tie, metric="test/accuracy", min_improvement=0.0, champion_version="6")
    line = champion_line(kept, Scored(0.9, "6"), "7", "pytorch")
    assert line.startswith(
        "- **Champion**: unchanged (version 6); version 7 (pytorch) is registered as challenger"
    )
    assert "no improvement shown" in line
    closed = with_champion(report, line)
    assert CHAMPION_PENDING not in closed and closed.index(line) < closed.index("## Evidence")
    first = decide(0.9, None, None, metric="test/accuracy", min_improvement=0.0)
    assert "version 7 (pytorch) takes over" in champion_line(first, Scored(None), "7", "pytorch")
