"""The verdict over training seeds, and cost tie-breaks that need their interval."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components.backends.base import Loaded
from components.evaluate.core import EvaluateParams, compare
from components.evaluate.latency import Timings
from components.evaluate.report import markdown
from components.evaluate.select import Candidate, choose
from components.evaluate.stats import Interval
from components.training.features import targets
from tests.unit.test_verdict_rules import TRAINED

PARAMS = EvaluateParams(optimised="val/accuracy", resamples=300, latency_repeats=10)


def answers(truth: np.ndarray, classes: int, right: np.ndarray) -> np.ndarray:
    """One-hot answers, right on the rows where ``right`` is true and wrong elsewhere."""
    return np.eye(classes)[np.where(right, truth, (truth + 1) % classes)]


def seeded(truth, classes, shares, seed) -> np.ndarray:
    """(seeds, rows, classes): at seed k, right on a random ``shares[k]`` of the rows."""
    rng = np.random.default_rng(seed)
    return np.stack([answers(truth, classes, rng.random(len(truth)) < s) for s in shares])


def shipped(output: np.ndarray, name: str, size: int = 100) -> Loaded:
    """A model answering ``output`` on the test rows (and anything on a timing batch)."""

    def call(matrix):
        return output if len(matrix) == len(output) else output[np.zeros(len(matrix), int)]

    return Loaded(name, Path(name), size, call)


def judged(cleaned, seeds, shipped_outputs=None, params=PARAMS):
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    outputs = shipped_outputs or {name: stacked[0] for name, stacked in seeds.items()}
    models = {name: shipped(output, name) for name, output in outputs.items()}
    return compare(test, constants, models, dict.fromkeys(models, TRAINED), params, seeds)


@pytest.fixture
def rows(cleaned):
    truth = targets(cleaned.splits["test"], cleaned.preprocessing)
    return truth, len(cleaned.preprocessing.label.classes)


def test_seeded_models_that_are_equal_tie(cleaned, rows):
    truth, classes = rows
    seeds = {
        "pytorch": seeded(truth, classes, [0.85, 0.9, 0.95], seed=1),
        "tensorflow": seeded(truth, classes, [0.85, 0.9, 0.95], seed=2),
    }
    result = judged(cleaned, seeds)
    assert result["tied_with_leader"] == ["pytorch", "tensorflow"]
    assert result["decided_by"] in ("latency", "size", "name")
    for name in seeds:
        over = result["frameworks"][name]["seeds"]
        assert over["count"] == 3 and over["source"] == "refit" and over["std"] > 0
    assert result["difference"]["seeds"] == {"pytorch": 3, "tensorflow": 3}


def test_seeded_models_that_clearly_differ_are_decided_by_the_metric(cleaned, rows):
    truth, classes = rows
    seeds = {
        "pytorch": seeded(truth, classes, [0.2, 0.25, 0.3], seed=1),
        "tensorflow": seeded(truth, classes, [1.0, 1.0, 1.0], seed=2),
    }
    result = judged(cleaned, seeds)
    assert (result["winner"], result["decided_by"]) == ("tensorflow", "metric")
    assert result["differences"]["pytorch"]["significant"]


def test_a_shipped_model_that_won_one_draw_is_tied_by_its_seeds(cleaned, rows):
    truth, classes = rows
    # pytorch's shipped model is perfect, but its other seeds score like tensorflow's.
    seeds = {
        "pytorch": np.concatenate(
            [
                answers(truth, classes, np.ones(len(truth), bool))[None],
                seeded(truth, classes, [0.6, 0.65], seed=1),
            ]
        ),
        "tensorflow": seeded(truth, classes, [0.7, 0.75, 0.8], seed=2),
    }
    one_seed = judged(cleaned, {name: stacked[:1] for name, stacked in seeds.items()})
    assert one_seed["decided_by"] == "metric" and one_seed["winner"] == "pytorch"
    result = judged(cleaned, seeds)
    assert result["tied_with_leader"] == ["pytorch", "tensorflow"]
    # The report opens with the verdict: a tie across the seeds, then what ships.
    text = markdown({**result, "costs": {"frameworks": {}}}, [], "figures")
    verdict = text.split("## Evidence")[0]
    assert "tie on test/accuracy across 3 training seeds" in verdict
    assert "**Ships**" in verdict and "**Champion**" in verdict


def test_without_refit_outputs_the_shipped_model_is_the_one_seed(cleaned, rows):
    truth, classes = rows
    outputs = {
        "pytorch": answers(truth, classes, np.ones(len(truth), bool)),
        "tensorflow": answers(truth, classes, np.zeros(len(truth), bool)),
    }
    test, constants = cleaned.splits["test"], cleaned.preprocessing
    models = {name: shipped(output, name) for name, output in outputs.items()}
    result = compare(test, constants, models, dict.fromkeys(models, TRAINED), PARAMS)
    assert result["frameworks"]["pytorch"]["seeds"]["source"] == "shipped model"
    assert result["winner"] == "pytorch"


def timings(fast: np.ndarray, slow: np.ndarray) -> Timings:
    """Batch-1 timings of two models, (rounds, requests) in seconds each."""
    return Timings(
        single={"fast": fast, "slow": slow},
        full={"fast": fast, "slow": slow},
        order=tuple(("fast", "slow") for _ in range(len(fast))),
    )


def tie_break(timed: Timings, sizes=(100, 100)) -> str:
    def ratio(slower, faster):
        found = timed.ratio_interval(slower, faster, resamples=500)
        return found.low, found.high

    fast = Candidate("fast", 0.9, float(np.median(timed.single["fast"]) * 1e3), sizes[0])
    slow = Candidate("slow", 0.9, float(np.median(timed.single["slow"]) * 1e3), sizes[1])
    tie = Interval(0.0, -0.01, 0.01, 0.95, 500)
    chosen = choose(slow, [(fast, tie)], metric="m", higher_is_better=True, latency_ratio=ratio)
    return chosen.decided_by, chosen.winner


def test_latency_that_differs_only_in_noise_does_not_break_a_tie():
    rng = np.random.default_rng(0)
    # Round by round the machine's load moves both models; "slow" is 12% slower on the
    # median of all requests, but its lead changes sides between rounds.
    load = np.array([1.0, 1.6, 0.8, 1.3, 0.9])[:, None]
    fast = load * rng.normal(1.0e-3, 0.3e-3, (5, 50)).clip(1e-4)
    slow = load[::-1] * rng.normal(1.12e-3, 0.3e-3, (5, 50)).clip(1e-4)
    decided_by, winner = tie_break(timings(fast, slow))
    assert decided_by == "name" and winner == "fast"  # by name: "fast" < "slow"
    assert tie_break(timings(fast, slow), sizes=(100, 300)) == ("size", "fast")


def test_latency_that_differs_in_every_round_breaks_a_tie():
    rng = np.random.default_rng(1)
    fast = rng.normal(1.0e-3, 0.05e-3, (5, 50))
    slow = 2 * rng.normal(1.0e-3, 0.05e-3, (5, 50))
    assert tie_break(timings(fast, slow)) == ("latency", "fast")


def test_evaluate_seeds_is_checked():
    from components.errors import ParamsError
    from components.evaluate.cli import params_from
    from components.training.search import TuningParams

    tuning = TuningParams.from_section({})
    assert params_from({"seeds": 2}, tuning, "classification").seeds == 2
    with pytest.raises(ParamsError, match=r"evaluate\.seeds"):
        params_from({"seeds": 0}, tuning, "classification")
    assert replace(PARAMS, seeds=1).seeds == 1
