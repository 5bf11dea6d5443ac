"""Parity of an export with the native model, on the whole test split.

A float export must match the native outputs to ``float_tolerance``, or its
own entry in ``tolerances`` (max absolute difference; for regression in units of the label's deviation, since
float32 itself rounds a value of 2,000 to 2.4e-4); a quantised one may differ more but must not lose more
than ``max_metric_drop`` of the selection metric (accuracy points as a
fraction, or RMSE relative to the native RMSE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from components.contracts import ParityRow as Parity
from components.evaluate import metrics as scoring


@dataclass(frozen=True)
class Limits:
    """The ``export`` section's parity limits.

    ``tolerances`` gives a float format its own limit in place of
    ``float_tolerance`` (``export.tolerances``: TF.js computes in JavaScript).
    """

    float_tolerance: float = 1e-4
    max_metric_drop: float = 0.01
    tolerances: Mapping[str, float] = field(default_factory=dict)

    def float_limit(self, name: str) -> float:
        """The max absolute difference allowed to float format ``name``."""
        return self.tolerances.get(name, self.float_tolerance)


def metric_of(task: str, metric: str, output: np.ndarray, truth: np.ndarray) -> float:
    """``metric`` of ``output`` against the true labels or values."""
    return float(scoring.score(task, output, truth)[metric])


def check(
    name: str,
    native: np.ndarray,
    exported: np.ndarray,
    truth: np.ndarray,
    *,
    task: str,
    metric: str,
    quantised: bool,
    limits: Limits,
    scale: float = 1.0,
) -> Parity:
    """Compare one export's outputs with the native model's on the same rows.

    ``scale`` divides the difference before the float limit applies (the
    train split's label deviation for regression; 1 for probabilities).
    """
    native = np.asarray(native, dtype=np.float64)
    exported = np.asarray(exported, dtype=np.float64).reshape(native.shape)
    if not np.all(np.isfinite(exported)):
        difference = float("inf")
    else:
        difference = float(np.abs(native - exported).max()) if native.size else 0.0
    agreement = (
        float((native.argmax(1) == exported.argmax(1)).mean()) if task == "classification" else None
    )
    base = metric_of(task, metric, native, truth)
    score = metric_of(task, metric, exported, truth) if np.isfinite(difference) else float("nan")
    delta = score - base
    higher = scoring.HIGHER_IS_BETTER[metric]
    if quantised:
        # Loss in the metric's own direction; for RMSE relative to the native value.
        loss = -delta if higher else (delta / base if base else delta)
        passed = bool(np.isfinite(difference)) and loss <= limits.max_metric_drop
        limit = f"{metric} loss <= {limits.max_metric_drop:g}"
    else:
        tolerance = limits.float_limit(name)
        passed = difference / scale <= tolerance
        unit = "" if scale == 1.0 else f" x {scale:.4g} (label deviation)"
        limit = f"max |diff| <= {tolerance:g}{unit}"
    return Parity(
        name,
        quantised,
        len(native),
        difference,
        agreement,
        metric,
        base,
        score,
        delta,
        passed,
        limit,
    )
