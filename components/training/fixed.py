"""One fit of a fixed configuration outside any study: the refit step and the benchmarks use it.

The fit is the study's own (:meth:`Backend.fit_trial`: the same callbacks,
early stopping and per-epoch timing), given a trial of a throwaway in-memory
study that never prunes, so nothing reaches the project's Optuna storage.
"""

from __future__ import annotations

from typing import Any

from components.backends.base import Backend, FitSettings, SplitArrays
from components.training import search
from components.training.search import Hyperparams
from components.training.spec import ModelSpec
from components.training.study import TrialResult


def fit_once(
    backend: Backend,
    spec: ModelSpec,
    hyper: Hyperparams,
    data: SplitArrays,
    settings: FitSettings,
) -> TrialResult:
    """Train ``spec`` with ``hyper`` for ``settings.epochs`` epochs at ``settings.seed``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a study anyone looks at
    study = optuna.create_study(
        direction=search.direction(settings.metric), pruner=optuna.pruners.NopPruner()
    )
    trial: Any = study.ask()  # number 0: the fit seeds itself with settings.seed
    return backend.fit_trial(trial, hyper, spec, data, settings)
