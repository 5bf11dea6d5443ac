"""The comparison: both trained models scored on the same test rows with the same code.

Pure: it takes the test table, the shared constants, the two loaded models and
what their training stages reported, and returns the comparison as a dict
(``reports/comparison.json``). Reading and writing is the CLI's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from components.errors import BakeoffError, ParamsError
from components.evaluate import metrics as scoring
from components.evaluate.latency import profile
from components.evaluate.models import Native
from components.evaluate.select import Candidate, Selection, select
from components.evaluate.stats import mcnemar, paired_bootstrap
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
    level: float = 0.95
    seed: int = 0
    threads: int = 1
    latency_repeats: int = 200
    latency_margin: float = 0.1


def selection_metric(task: str, optimised: str) -> str:
    """The test metric that picks the winner: the one the trainers optimised."""
    try:
        return SELECTION[(task, optimised)]
    except KeyError:
        raise ParamsError("train.metric", f"{optimised!r} is not a {task} metric") from None


def compare(
    test: pd.DataFrame,
    constants: Mapping[str, Any],
    models: Mapping[str, Native],
    training: Mapping[str, Mapping[str, Any]],
    params: EvaluateParams,
) -> dict[str, Any]:
    """Score both models, test the difference, time them, and pick the winner."""
    if len(models) != 2:
        raise ValueError(f"the comparison needs two models, got {sorted(models)}")
    task = constants["task"]
    metric = selection_metric(task, params.optimised)
    higher = scoring.HIGHER_IS_BETTER[metric]
    matrix = raw_matrix(test, constants)
    truth = targets(test, constants)
    outputs = {name: model.predict(matrix) for name, model in models.items()}
    for name, output in outputs.items():
        bad = int((~np.isfinite(output.reshape(len(output), -1))).any(axis=1).sum())
        if bad:
            raise BakeoffError(
                f"evaluate: {name}'s model at {models[name].path} answers NaN or infinity "
                f"for {bad} of {len(output)} test rows; retrain it before comparing"
            )
    per_framework: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        scores = scoring.score(task, outputs[name], truth)
        trained = training[name]
        per_framework[name] = {
            "test": scores,
            "latency": profile(model.call, matrix, repeats=params.latency_repeats),
            "size_bytes": model.size_bytes,
            "model_path": str(model.path),
            **{key: trained.get(key) for key in TRAINING_KEYS},
        }
    a, b = sorted(models)
    rows = {name: _per_row(task, metric, outputs[name], truth) for name in (a, b)}
    aggregate = np.mean if metric != "rmse" else (lambda values: float(np.sqrt(np.mean(values))))
    interval = paired_bootstrap(
        aggregate,
        rows[a],
        rows[b],
        resamples=params.resamples,
        level=params.level,
        seed=params.seed,
    )
    difference: dict[str, Any] = {
        "metric": metric,
        "a": a,
        "b": b,
        "value": interval.difference,
        "interval": [interval.low, interval.high],
        "level": interval.level,
        "resamples": interval.resamples,
        "significant": interval.excludes_zero(),
    }
    if task == "classification":
        test_result = mcnemar(outputs[a].argmax(1) == truth, outputs[b].argmax(1) == truth)
        difference["mcnemar"] = {
            "only_a_right": test_result.only_a,
            "only_b_right": test_result.only_b,
            "statistic": test_result.statistic,
            "p_value": test_result.p_value,
            "exact": test_result.exact,
        }
    candidates = [
        Candidate(
            name,
            float(per_framework[name]["test"][metric]),
            per_framework[name]["latency"]["batch_1"]["p50_ms"],
            per_framework[name]["size_bytes"],
        )
        for name in (a, b)
    ]
    current = {name: saved_this_run(training[name]) for name in (a, b)}
    for name in (a, b):
        per_framework[name]["current"] = current[name]
    if not any(current.values()):
        raise BakeoffError(
            "evaluate: neither trainer saved a model in its last run (both below their "
            "quality gates; see 'blessed' in metrics/*.json); there is nothing new to ship"
        )
    if all(current.values()):
        chosen = select(
            candidates[0],
            candidates[1],
            interval,
            metric=f"test/{metric}",
            higher_is_better=higher,
            latency_margin=params.latency_margin,
        )
    else:
        fresh, stale = (a, b) if current[a] else (b, a)
        chosen = Selection(
            fresh,
            stale,
            "eligibility",
            f"{stale}'s last training run saved no model (below its quality gate), so the "
            f"{stale} model on disk is from an earlier run and cannot win",
        )
    return {
        "dataset": constants["dataset"],
        "task": task,
        "test_rows": len(test),
        "metric": f"test/{metric}",
        "higher_is_better": higher,
        "threads": params.threads,
        "frameworks": per_framework,
        "difference": difference,
        "winner": chosen.winner,
        "runner_up": chosen.runner_up,
        "decided_by": chosen.decided_by,
        "reason": chosen.reason,
        "fairness": fairness(training),
    }


def _per_row(task: str, metric: str, output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each row's share of the metric, so that a resample's metric is their mean (RMSE: root)."""
    if metric == "accuracy":
        return (output.argmax(1) == truth).astype(np.float64)
    if metric == "log_loss":
        chosen = output[np.arange(len(truth)), truth]
        return -np.log(np.clip(chosen.astype(np.float64), scoring.EPSILON, 1.0))
    return (output.astype(np.float64).reshape(-1) - truth.astype(np.float64)) ** 2


def fairness(training: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The fairness rules of DESIGN.md the two training runs visibly broke, one line each."""
    broken = []
    (a, first), (b, second) = sorted(training.items())
    shape = ("depth", "width")
    same_shape = all(
        first.get("best_params", {}).get(key) == second.get("best_params", {}).get(key)
        for key in shape
    )
    if same_shape and first.get("parameters") != second.get("parameters"):
        broken.append(
            f"equal parameter counts for the same architecture: {a} "
            f"{first.get('parameters')}, {b} {second.get('parameters')}"
        )
    runs = (first.get("trials", {}).get("run"), second.get("trials", {}).get("run"))
    if runs[0] != runs[1]:
        broken.append(f"same trial budget: {a} ran {runs[0]} trials, {b} {runs[1]}")
    for name, trained in ((a, first), (b, second)):
        if not saved_this_run(trained):
            broken.append(
                f"same training run: {name}'s last run saved no model, so its model on "
                "disk comes from an earlier run (scored, but it cannot win)"
            )
    return broken


def saved_this_run(trained: Mapping[str, Any]) -> bool:
    """Whether the model on disk is the one a framework's metrics describe.

    A trainer whose best model misses its quality gate saves nothing (TFX's
    Pusher, the PyTorch stage's threshold), leaving the earlier model in place.
    """
    return trained.get("pushed", True) is not False


def side_by_side(windows: Mapping[str, tuple[int, int] | None]) -> list[str]:
    """A broken-rule line when the two training runs did not overlap in time.

    ``windows`` holds each framework's training run start and end (ms since
    the epoch, as MLflow records them). Trained at different times, the two
    shared the machine differently, so their wall times and examples/s do not
    compare (DESIGN.md: the same budget and devices).
    """
    known = {name: window for name, window in windows.items() if window}
    if len(known) != 2:
        return []
    (a, (a_start, a_end)), (b, (b_start, b_end)) = sorted(known.items())
    if max(a_start, b_start) < min(a_end, b_end):
        return []

    def when(milliseconds: int) -> str:
        return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        )

    return [
        f"same conditions: {a} trained at {when(a_start)} and {b} at {when(b_start)}, not side "
        "by side, so their training wall times and examples/s are not comparable (retrain both "
        "with `bakeoff run --force train@tensorflow train@pytorch`)"
    ]
