"""The one metric code both frameworks are scored with (DESIGN.md fairness rules).

Inputs are plain arrays, whatever produced them: class probabilities (rows
sum to 1) with integer class indices, or predicted values with true values.
Metric names follow ``split/metric`` once a caller prefixes the split. Every
figure is scikit-learn's; this module only fixes the labels (every class of
the data, present in the rows or not) and the zero-division convention.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics

# Probabilities are clipped here before the logarithm, as scikit-learn does.
EPSILON = 1e-15
# Whether a larger value of each metric is better.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "macro_f1": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}


def classification(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, log-loss, per-class precision and recall, and the confusion matrix.

    The confusion matrix has true classes as rows and predictions as columns.
    A class never predicted has precision 0 (and never present, recall 0),
    so a model cannot gain by ignoring a class.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} labels for {len(probabilities)} predictions")
    classes = list(range(probabilities.shape[1]))
    predicted = probabilities.argmax(axis=1)
    precision, recall, _, _ = metrics.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0.0
    )
    # Clipped away from 0 (a certain mistake would be an infinite loss), rows summing to 1.
    clipped = np.clip(probabilities, EPSILON, 1.0)
    return {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "macro_f1": float(
            metrics.f1_score(labels, predicted, labels=classes, average="macro", zero_division=0.0)
        ),
        "log_loss": float(
            metrics.log_loss(labels, clipped / clipped.sum(axis=1, keepdims=True), labels=classes)
        ),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=classes).tolist(),
    }


def regression(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² (scikit-learn's: 0 for a constant target not matched exactly)."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    actual = np.asarray(actual, dtype=np.float64).reshape(-1)
    if len(predicted) != len(actual):
        raise ValueError(f"{len(actual)} values for {len(predicted)} predictions")
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(actual, predicted))),
        "mae": float(metrics.mean_absolute_error(actual, predicted)),
        "r2": float(metrics.r2_score(actual, predicted)),
    }


def score(task: str, output: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Every metric of ``task``: :func:`classification` or :func:`regression`."""
    return classification(output, truth) if task == "classification" else regression(output, truth)
