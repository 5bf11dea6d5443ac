"""The one metric code both frameworks are scored with (DESIGN.md fairness rules).

Inputs are plain arrays, whatever produced them: class probabilities (rows
sum to 1) with integer class indices, or predicted values with true values.
Metric names follow ``split/metric`` once a caller prefixes the split.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    classes = probabilities.shape[1]
    if len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} labels for {len(probabilities)} predictions")
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    hits = np.diag(confusion).astype(np.float64)
    predicted_counts = confusion.sum(axis=0)
    true_counts = confusion.sum(axis=1)
    precision = np.divide(hits, predicted_counts, out=np.zeros(classes), where=predicted_counts > 0)
    recall = np.divide(hits, true_counts, out=np.zeros(classes), where=true_counts > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(classes), where=both > 0)
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], EPSILON, 1.0)
    return {
        "accuracy": float(hits.sum() / len(labels)),
        "macro_f1": float(f1.mean()),
        "log_loss": float(-np.log(chosen).mean()),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "confusion_matrix": confusion.tolist(),
    }


def regression(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² (1 - residual / total sum of squares; 0 for a constant target)."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    actual = np.asarray(actual, dtype=np.float64).reshape(-1)
    if len(predicted) != len(actual):
        raise ValueError(f"{len(actual)} values for {len(predicted)} predictions")
    residual = actual - predicted
    total = float(((actual - actual.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((residual**2).mean())),
        "mae": float(np.abs(residual).mean()),
        "r2": 1.0 - float((residual**2).sum()) / total if total > 0 else 0.0,
    }


def score(task: str, output: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Every metric of ``task``: :func:`classification` or :func:`regression`."""
    return classification(output, truth) if task == "classification" else regression(output, truth)
