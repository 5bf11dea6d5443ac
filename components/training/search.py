"""The tuning set-up both frameworks share: search space, sampler, pruner, budget, metric.

Read from the ``train`` section of params.yaml, so neither framework can be
tuned harder than the other without the params saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import optuna

from components.errors import ParamsError
from components.params import choice, number, whole
from components.training.spec import CNN, MLP, ModelSpec
from components.training.tracking import DEFAULT_TRACKING_URI

OPTIMIZERS = ("adam", "adamw", "sgd")
PRUNERS = ("median", "hyperband", "none")
# What both trainers report on the validation split each epoch, per task.
VAL_METRICS = {
    "classification": ("val/accuracy", "val/loss"),
    "regression": ("val/rmse", "val/loss"),
}
ACTIVATIONS = ("relu", "gelu", "tanh")


@dataclass(frozen=True)
class SearchSpace:
    """Ranges and choices of every hyperparameter a trial draws."""

    learning_rate: tuple[float, float]
    batch_size: tuple[int, ...]
    depth: tuple[int, int]
    width: tuple[int, ...]
    dropout: tuple[float, float]
    weight_decay: tuple[float, float]
    optimizer: tuple[str, ...]
    activation: tuple[str, ...]
    max_filters: int | None = None  # not drawn: the bound on a CNN block's filters


@dataclass(frozen=True)
class Hyperparams:
    """One trial's draw."""

    learning_rate: float
    batch_size: int
    depth: int
    width: int
    dropout: float
    weight_decay: float
    optimizer: str
    activation: str


@dataclass(frozen=True)
class TuningParams:
    """The ``train`` section of params.yaml, unpacked."""

    metric: str | None
    architecture: str | None
    seed: int
    trials: int
    timeout_s: float | None
    epochs: int
    patience: int
    pruner: str
    storage: str
    tracking_uri: str
    space: SearchSpace

    @classmethod
    def from_section(cls, raw: dict[str, Any]) -> TuningParams:
        """Check and unpack the raw ``train`` mapping."""
        search = raw.get("search") or {}
        metric = raw.get("metric", "auto")
        architecture = raw.get("architecture", "auto")
        timeout = raw.get("timeout_s")
        return cls(
            metric=None if metric == "auto" else _metric(metric),
            architecture=None
            if architecture == "auto"
            else choice(architecture, "train.architecture", (MLP, CNN, "auto")),
            seed=whole(raw.get("seed", 42), "train.seed", 0),
            trials=whole(raw.get("trials", 20), "train.trials", 1),
            timeout_s=None if timeout is None else float(number(timeout, "train.timeout_s", 1)),
            epochs=whole(raw.get("epochs", 30), "train.epochs", 1),
            patience=whole(raw.get("patience", 5), "train.patience", 1),
            pruner=choice(raw.get("pruner", "median"), "train.pruner", PRUNERS),
            storage=str(raw.get("storage", "sqlite:///optuna/studies.db")),
            tracking_uri=str(raw.get("tracking_uri", DEFAULT_TRACKING_URI)),
            space=SearchSpace(
                learning_rate=_range(
                    search.get("learning_rate", [1e-4, 1e-2]),
                    "train.search.learning_rate",
                    positive=True,
                ),
                batch_size=_ints(
                    search.get("batch_size", [32, 64, 128]), "train.search.batch_size"
                ),
                depth=_int_range(search.get("depth", [1, 3]), "train.search.depth"),
                width=_ints(search.get("width", [32, 64, 128, 256]), "train.search.width"),
                dropout=_range(
                    search.get("dropout", [0.0, 0.5]), "train.search.dropout", upper=0.95
                ),
                weight_decay=_range(
                    search.get("weight_decay", [1e-6, 1e-3]),
                    "train.search.weight_decay",
                    positive=True,
                ),
                optimizer=_choices(
                    search.get("optimizer", list(OPTIMIZERS)), "train.search.optimizer", OPTIMIZERS
                ),
                activation=_choices(
                    search.get("activation", ["relu"]), "train.search.activation", ACTIVATIONS
                ),
                max_filters=None
                if search.get("max_filters") is None
                else whole(search["max_filters"], "train.search.max_filters", 1),
            ),
        )

    def objective_metric(self, task: str) -> str:
        """The one metric the objective, the pruner and the selection use (``split/metric``)."""
        logged = VAL_METRICS[task]
        if self.metric is not None and self.metric not in logged:
            raise ParamsError(
                "train.metric",
                f"expected one of {', '.join(logged)} for {task}; found {self.metric!r}",
            )
        return self.metric or logged[0]


def direction(metric: str) -> Literal["maximize", "minimize"]:
    """Whether a ``split/metric`` name is to be maximised or minimised."""
    name = metric.split("/", 1)[-1]
    return "maximize" if name in ("accuracy", "macro_f1", "r2") else "minimize"


def suggest(trial: optuna.Trial, space: SearchSpace) -> Hyperparams:
    """Draw every hyperparameter first, under stable names, before any work is done."""
    return Hyperparams(
        learning_rate=trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        batch_size=trial.suggest_categorical("batch_size", list(space.batch_size)),
        depth=trial.suggest_int("depth", *space.depth),
        width=trial.suggest_categorical("width", list(space.width)),
        dropout=trial.suggest_float("dropout", *space.dropout),
        weight_decay=trial.suggest_float("weight_decay", *space.weight_decay, log=True),
        optimizer=trial.suggest_categorical("optimizer", list(space.optimizer)),
        activation=trial.suggest_categorical("activation", list(space.activation)),
    )


def model_spec(
    hyper: Hyperparams,
    *,
    architecture: str,
    input_dim: int,
    outputs: int,
    image_shape: tuple[int, int] | None,
    max_filters: int | None = None,
) -> ModelSpec:
    """The architecture a trial's draw describes."""
    return ModelSpec(
        kind=architecture,
        input_dim=input_dim,
        outputs=outputs,
        depth=hyper.depth,
        width=hyper.width,
        activation=hyper.activation,
        dropout=hyper.dropout,
        image_shape=image_shape if architecture == CNN else None,
        max_filters=max_filters if architecture == CNN else None,
    )


def sampler(tuning: TuningParams, offset: int = 0) -> optuna.samplers.BaseSampler:
    """TPE with the shared seed, moved on by ``offset``.

    A sampler's random draws restart from its seed in every process, so a
    resumed study (or a second worker) seeded alike would draw the first
    trials' start-up points again. Offsetting by the trials already in the
    study keeps a fresh study identical in both frameworks and a resumed one
    from repeating itself.
    """
    return optuna.samplers.TPESampler(seed=tuning.seed + offset)


def pruner(tuning: TuningParams) -> optuna.pruners.BasePruner:
    """The shared pruner; its warm-up is counted in epochs, as both trainers report per epoch."""
    if tuning.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tuning.epochs)
    return optuna.pruners.NopPruner()


def _metric(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("val/"):
        raise ParamsError(
            "train.metric",
            f"expected 'auto' or a val/ metric such as val/accuracy; found {value!r}",
        )
    return value


def _range(
    value: Any, key: str, *, positive: bool = False, upper: float | None = None
) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or value[0] > value[1]
        or (positive and value[0] <= 0)
        or value[0] < 0
        or (upper is not None and value[1] > upper)
    ):
        bound = " above 0" if positive else f" within [0, {upper}]" if upper else ""
        raise ParamsError(key, f"expected [low, high] with low <= high{bound}; found {value!r}")
    return float(value[0]), float(value[1])


def _int_range(value: Any, key: str) -> tuple[int, int]:
    low, high = _range(value, key)
    if not (low.is_integer() and high.is_integer()) or low < 1:
        raise ParamsError(key, f"expected [low, high] whole numbers >= 1; found {value!r}")
    return int(low), int(high)


def _ints(value: Any, key: str) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ParamsError(key, f"expected a list of whole numbers above 0; found {value!r}")
    return tuple(value)


def _choices(value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ParamsError(key, f"expected a list drawn from {', '.join(allowed)}; found {value!r}")
    return tuple(choice(v, key, allowed) for v in value)
