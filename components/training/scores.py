"""The test scores a training stage reports, computed the same way for every framework."""

from __future__ import annotations

import numpy as np

#: Probabilities are clipped here before the log, as Keras' cross-entropy does.
EPSILON = 1e-7


def test_scores(task: str, output: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``loss`` and ``accuracy`` (cross-entropy over probabilities), or ``loss`` (MSE) and ``rmse``."""
    if task == "classification":
        chosen = output[np.arange(len(truth)), truth].astype(np.float64)
        loss = float(-np.log(np.clip(chosen, EPSILON, 1.0)).mean())
        return {"loss": loss, "accuracy": float((output.argmax(axis=1) == truth).mean())}
    error = output.astype(np.float64).reshape(-1) - truth.astype(np.float64)
    mse = float((error**2).mean())
    return {"loss": mse, "rmse": float(np.sqrt(mse))}
