"""Learning curves of each framework's best trial, read back from MLflow."""

from __future__ import annotations

from typing import Any

from components.training.tracking import TAG_TRIAL

CURVES = ("train/loss", "val/loss", "val/accuracy", "val/rmse")


def best_trial_curves(client: Any, parent_run_id: str, trial: int) -> dict[str, list[float]]:
    """Per-epoch values of the best trial's logged metrics; empty when the run is gone.

    The trial is the nested run under the training stage's parent run whose
    trial tag is ``trial``; each metric's history is ordered by step (epoch).
    """
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`{TAG_TRIAL}` = '{trial}'"
        ),
        max_results=5,
    )
    if not runs:
        return {}
    run = runs[0]
    curves = {}
    for key in CURVES:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        if history:
            curves[key] = [float(point.value) for point in history]
    return curves
