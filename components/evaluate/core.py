"""The comparison: every trained model scored on the same test rows with the same code.

Pure: it takes the test table, the shared constants, the loaded models and
what their training stages reported, and returns the comparison as a dict
(``reports/comparison.json``). Reading and writing is the CLI's.

Any number of frameworks from two up. The verdict reads each framework's
refits at ``evaluate.seeds`` training seeds (the refit stage's test outputs;
without them, the shipped model alone): the best on the selection metric's
mean over seeds is the leader, and every other framework gets the same
bootstrap interval over seeds and test rows against it
(:func:`components.evaluate.stats.seeds_and_rows`), and McNemar's test of the
shipped models, for classes (``differences``). ``difference`` is
the winner against the runner-up, ``a`` and ``b`` in name order, as it was
when there were only ever two. All models are timed together, interleaved;
``latency_ratio`` is the batch-1 p50 of the two fastest, one over the other,
with its interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from components.backends.base import Loaded, batched
from components.contracts import CLASSIFICATION, Constants, TrainingMetrics
from components.errors import BakeoffError, ParamsError
from components.evaluate import metrics as scoring
from components.evaluate.latency import Timings, method, time_interleaved
from components.evaluate.select import Candidate, Selection, choose, negated, ranked
from components.evaluate.stats import Interval, mcnemar, per_row, seeds_and_rows
from components.training.features import raw_matrix, targets

# The test metric the selection reads, for each optimised validation metric.
SELECTION = {
    ("classification", "val/accuracy"): "accuracy",
    ("classification", "val/loss"): "log_loss",
    ("regression", "val/rmse"): "rmse",
    ("regression", "val/loss"): "rmse",  # mean squared error ranks models as RMSE does
}
# What the training stages report that the comparison carries over.
TRAINING_KEYS = (
    "training_seconds",
    "train_examples_per_s",
    "best_epochs",
    "best_trial",
    "best_val",
    "trials",
    "parameters",
    "peak_memory_mb",
    "blessed",
    "pushed",
    "mlflow_run_id",
    "best_params",
)


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` section of params.yaml, with the optimised metric of ``train``."""

    optimised: str  # train.metric, resolved: val/accuracy, val/loss or val/rmse
    resamples: int = 2000
    seeds: int = 3  # training seeds the refit stage fits each framework with
    level: float = 0.95
    seed: int = 0
    threads: int = 1
    latency_repeats: int = 200
    latency_rounds: int = 5
    latency_margin: float = 0.1


def selection_metric(task: str, optimised: str) -> str:
    """The test metric that picks the winner: the one the trainers optimised."""
    try:
        return SELECTION[(task, optimised)]
    except KeyError:
        raise ParamsError("train.metric", f"{optimised!r} is not a {task} metric") from None


def compare(
    test: pd.DataFrame,
    constants: Constants,
    models: Mapping[str, Loaded],
    training: Mapping[str, TrainingMetrics],
    params: EvaluateParams,
    seeds: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Score every model, test each against the leader, time them, and pick the winner.

    ``seeds`` holds each framework's test outputs at every training seed of the
    refit (seeds first); a framework without them is judged on its shipped model.
    """
    if len(models) < 2:
        raise BakeoffError(
            f"evaluate: the comparison needs two or more trained models; found {sorted(models)}"
        )
    task = constants.task
    metric = selection_metric(task, params.optimised)
    higher = scoring.HIGHER_IS_BETTER[metric]
    matrix = raw_matrix(test, constants)
    truth = targets(test, constants)
    names = sorted(models)
    outputs = {name: batched(models[name].call, matrix) for name in names}
    for name, output in outputs.items():
        bad = int((~np.isfinite(output.reshape(len(output), -1))).any(axis=1).sum())
        if bad:
            raise BakeoffError(
                f"evaluate: {name}'s model at {models[name].path} answers NaN or infinity "
                f"for {bad} of {len(output)} test rows; retrain it before comparing"
            )
    # All models timed together, interleaved, so that the machine's load falls on each alike.
    timings = time_interleaved(
        {name: models[name].call for name in names},
        matrix,
        repeats=params.latency_repeats,
        rounds=params.latency_rounds,
    )
    latency = timings.summary(level=params.level, seed=params.seed)
    by_seed = {}
    for name in names:
        stacked = seeds[name] if seeds and name in seeds else outputs[name][None]
        if stacked[0].size != outputs[name].size:
            raise BakeoffError(
                f"evaluate: {name}'s refit outputs have shape {stacked.shape[1:]} per seed, "
                f"its model's {outputs[name].shape}; rerun the refit stage"
            )
        # A regression's values as (rows,) or (rows, 1): the model's own layout.
        by_seed[name] = stacked.reshape(len(stacked), *outputs[name].shape)
    per_framework: dict[str, dict[str, Any]] = {}
    for name in names:
        model, trained = models[name], training[name]
        per_framework[name] = {
            "test": scoring.score(task, outputs[name], truth),
            "seeds": _over_seeds(
                task, metric, by_seed[name], truth, refit=bool(seeds and name in seeds)
            ),
            "latency": latency[name],
            "size_bytes": model.size_bytes,
            "model_path": str(model.path),
            **{key: _plain(getattr(trained, key)) for key in TRAINING_KEYS},
            "current": saved_this_run(trained),
        }
    candidates = {
        name: Candidate(
            name,
            float(per_framework[name]["seeds"]["mean"]),
            per_framework[name]["latency"]["batch_1"]["p50_ms"],
            per_framework[name]["size_bytes"],
        )
        for name in names
    }
    eligible = [name for name in names if per_framework[name]["current"]]
    if not eligible:
        nobody = "neither trainer" if len(names) == 2 else "no trainer"
        raise BakeoffError(
            f"evaluate: {nobody} saved a model in its last run (all below their "
            "quality gates; see 'blessed' in metrics/*.json); there is nothing new to ship"
        )
    leader = ranked([candidates[n] for n in eligible], higher_is_better=higher)[0].framework
    pairs = _Pairs(task, metric, outputs, by_seed, truth, params)
    differences = {name: pairs.describe(name, leader) for name in names if name != leader}
    if len(eligible) == 1:
        chosen = _only_eligible(leader, [n for n in names if n != leader], candidates, higher)
    else:
        chosen = choose(
            candidates[leader],
            [(candidates[n], pairs.interval(n, leader)) for n in eligible if n != leader],
            metric=f"test/{metric}",
            higher_is_better=higher,
            latency_ratio=lambda slower, faster: _ratio_bounds(timings, slower, faster, params),
            latency_margin=params.latency_margin,
        )
    a, b = sorted((chosen.winner, chosen.runner_up))
    tied = sorted(
        [leader, *(n for n in eligible if n != leader and not differences[n]["significant"])]
    )
    return {
        "dataset": constants.dataset,
        "task": task,
        "test_rows": len(test),
        "metric": f"test/{metric}",
        "higher_is_better": higher,
        "threads": params.threads,
        "frameworks": per_framework,
        "latency_ratio": _latency_ratio(timings, latency, params),
        "leader": leader,
        "difference": pairs.describe(a, b),
        "differences": differences,
        "tied_with_leader": tied,
        "winner": chosen.winner,
        "runner_up": chosen.runner_up,
        "decided_by": chosen.decided_by,
        "verdict": verdict_line(f"test/{metric}", leader, tied, chosen.winner, chosen.decided_by),
        "reason": chosen.reason,
        "fairness": fairness(training),
    }


def verdict_line(metric: str, leader: str, tied: list[str], winner: str, decided_by: str) -> str:
    """The verdict in one short line, a scalar ``dvc exp show`` and ``dvc metrics`` display.

    Quality first (a tie when the leader's interval against another includes
    zero), then what ships and the rule that chose it.
    """
    quality = f"tie on {metric}" if len(tied) > 1 else f"{leader} better on {metric}"
    return f"{quality}; {winner} ships (decided by {decided_by})"


def _ratio_bounds(
    timings: Timings, slower: str, faster: str, params: EvaluateParams
) -> tuple[float, float]:
    ratio = timings.ratio_interval(slower, faster, level=params.level, seed=params.seed)
    return ratio.low, ratio.high


def _over_seeds(
    task: str, metric: str, stacked: np.ndarray, truth: np.ndarray, *, refit: bool
) -> dict[str, Any]:
    """The selection metric at each training seed, their mean and spread (sample deviation)."""
    scores = [float(scoring.score(task, one, truth)[metric]) for one in stacked]
    return {
        "source": "refit" if refit else "shipped model",
        "count": len(scores),
        "scores": scores,
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
        "min": min(scores),
        "max": max(scores),
    }


def _latency_ratio(
    timings: Timings, latency: Mapping[str, Mapping[str, Any]], params: EvaluateParams
) -> dict[str, Any]:
    """The slower of the two fastest frameworks' batch-1 p50 over the faster's, with its interval."""
    by_speed = sorted(latency, key=lambda name: (latency[name]["batch_1"]["p50_ms"], name))
    faster, slower = by_speed[:2]
    ratio = timings.ratio_interval(slower, faster, level=params.level, seed=params.seed)
    return {
        "faster": faster,
        "slower": slower,
        "ratio": ratio.value,
        "interval": [ratio.low, ratio.high],
        "level": ratio.level,
        "rounds": timings.rounds,
        "method": f"batch-1 p50 of slower over faster; {method(timings.rounds, ratio.level)}, "
        "paired (the same resampled rounds for both)",
    }


class _Pairs:
    """Paired statistics of two frameworks' test rows, each pair computed once in name order.

    The interval of ``b - a`` is that of ``a - b`` negated, so which of two
    frameworks leads never changes the resamples, and with two frameworks the
    numbers are those of ``a - b`` as before.
    """

    def __init__(
        self,
        task: str,
        metric: str,
        outputs: Mapping[str, np.ndarray],
        by_seed: Mapping[str, np.ndarray],
        truth: np.ndarray,
        params: EvaluateParams,
    ) -> None:
        self.task, self.metric, self.outputs, self.truth = task, metric, outputs, truth
        self.params = params
        self.rows = {
            name: np.stack([per_row(metric, one, truth) for one in stacked])
            for name, stacked in by_seed.items()
        }
        self._intervals: dict[tuple[str, str], Interval] = {}

    def interval(self, a: str, b: str) -> Interval:
        """The bootstrap interval of ``a - b`` on the selection metric's mean over seeds."""
        if a > b:
            return negated(self.interval(b, a))
        if (a, b) not in self._intervals:
            self._intervals[(a, b)] = seeds_and_rows(
                self.rows[a],
                self.rows[b],
                root=self.metric == "rmse",
                resamples=self.params.resamples,
                level=self.params.level,
                seed=self.params.seed,
            )
        return self._intervals[(a, b)]

    def describe(self, a: str, b: str) -> dict[str, Any]:
        """``a - b`` as the comparison file writes it (with McNemar's test for classes)."""
        interval = self.interval(a, b)
        difference: dict[str, Any] = {
            "metric": self.metric,
            "a": a,
            "b": b,
            "value": interval.difference,
            "interval": [interval.low, interval.high],
            "level": interval.level,
            "resamples": interval.resamples,
            "seeds": {name: len(self.rows[name]) for name in (a, b)},
            "method": "pigeonhole bootstrap over training seeds and test rows (Owen 2007), "
            "percentile interval",
            "significant": interval.excludes_zero(),
        }
        if self.task == CLASSIFICATION:
            right = {name: self.outputs[name].argmax(1) == self.truth for name in (a, b)}
            test = mcnemar(right[a], right[b])
            difference["mcnemar"] = {
                "only_a_right": test.only_a,
                "only_b_right": test.only_b,
                "statistic": test.statistic,
                "p_value": test.p_value,
                "exact": test.exact,
            }
        return difference


def _only_eligible(
    fresh: str, stale: list[str], candidates: Mapping[str, Candidate], higher: bool
) -> Selection:
    """The one framework whose last training run saved its model wins by eligibility."""
    runner = ranked([candidates[n] for n in stale], higher_is_better=higher)[0].framework
    names = ", ".join(stale)
    return Selection(
        fresh,
        runner,
        "eligibility",
        f"{names}'s last training run saved no model (below its quality gate), so the "
        f"{names} model on disk is from an earlier run and cannot win",
    )


def _plain(value: Any) -> Any:
    """A metrics field as JSON holds it (mappings as dicts)."""
    return dict(value) if isinstance(value, Mapping) else value


def fairness(training: Mapping[str, TrainingMetrics]) -> list[str]:
    """The fairness rules of DESIGN.md the training runs visibly broke, one line each."""
    broken = []
    names = sorted(training)
    shapes: dict[tuple[Any, ...], list[str]] = {}
    for name in names:
        params = training[name].best_params
        shapes.setdefault((params.get("depth"), params.get("width")), []).append(name)
    for group in shapes.values():
        if len({training[name].parameters for name in group}) > 1:
            broken.append(
                "equal parameter counts for the same architecture: "
                + ", ".join(f"{name} {training[name].parameters}" for name in group)
            )
    runs = {name: training[name].trials.get("run") for name in names}
    if len(set(runs.values())) > 1:
        first, *rest = names
        broken.append(
            f"same trial budget: {first} ran {runs[first]} trials, "
            + ", ".join(f"{name} {runs[name]}" for name in rest)
        )
    for name in names:
        if not saved_this_run(training[name]):
            broken.append(
                f"same training run: {name}'s last run saved no model, so its model on "
                "disk comes from an earlier run (scored, but it cannot win)"
            )
    return broken


def saved_this_run(trained: TrainingMetrics) -> bool:
    """Whether the model on disk is the one a framework's metrics describe.

    A trainer whose best model misses its quality gate saves nothing (TFX's
    Pusher, the in-process driver's threshold), leaving the earlier model in place.
    """
    return trained.pushed


def side_by_side(windows: Mapping[str, tuple[int, int] | None]) -> list[str]:
    """A broken-rule line when the training runs did not all overlap in time.

    ``windows`` holds each framework's training start and end (ms since the
    epoch, from its metrics file). Trained at different times, they shared the
    machine differently, so their wall times and examples/s do not compare
    (DESIGN.md: the same budget and devices).
    """
    known = {name: window for name, window in sorted(windows.items()) if window}
    if len(known) < 2:
        return []
    # Intervals on a line overlap all together when the latest start precedes the earliest end.
    if max(start for start, _ in known.values()) < min(end for _, end in known.values()):
        return []

    def when(milliseconds: int) -> str:
        return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        )

    (first, (start, _)), *rest = known.items()
    starts = [f"{first} trained at {when(start)}"]
    starts += [f"{name} at {when(begun)}" for name, (begun, _) in rest]
    listed = ", ".join(starts[:-1]) + " and " + starts[-1]
    stages = " ".join(f"train@{name}" for name in known)
    return [
        f"same conditions: {listed}, not side by side, so their training wall times and examples/s are not comparable (retrain them "
        f"together with `bakeoff run --force {stages}`)"
    ]
