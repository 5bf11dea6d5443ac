"""Tiny trials on the shared tiny table, for the branch and export tests.

PyTorch is imported only by the functions that need it, so the TensorFlow tests
that share :func:`fit_settings` do not load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna

from components.backends.base import FitSettings, SplitArrays
from components.training.driver import encoded_splits
from components.training.search import Hyperparams
from components.training.spec import CNN, MLP, ModelSpec

HYPER = Hyperparams(1e-2, 16, 1, 16, 0.0, 1e-5, "adam", "relu")
#: Architectures both builders must give the spec's parameter count for.
SPECS = [
    ModelSpec(MLP, input_dim=64, outputs=10, depth=2, width=128),
    ModelSpec(MLP, input_dim=13, outputs=3, depth=1, width=32, activation="gelu", dropout=0.3),
    ModelSpec(MLP, input_dim=10, outputs=1, depth=3, width=64),
    ModelSpec(MLP, input_dim=10, outputs=1, depth=3, width=64, activation="tanh"),
    ModelSpec(CNN, input_dim=64, outputs=10, depth=2, width=16, image_shape=(8, 8)),
    ModelSpec(CNN, input_dim=64, outputs=10, depth=5, width=8, image_shape=(8, 8)),
    ModelSpec(CNN, input_dim=784, outputs=10, depth=3, width=8, image_shape=(28, 28)),
    ModelSpec(CNN, 64, 10, depth=3, width=32, image_shape=(8, 8), max_filters=48),
]


def splits_on_disk(cleaned: Any, folder: Path) -> SplitArrays:
    """The tiny splits written as the clean stage writes them, encoded as the driver encodes them."""
    for split, frame in cleaned.splits.items():
        frame.to_parquet(folder / f"{split}.parquet")
    return encoded_splits(folder, cleaned.preprocessing)


def fit_settings(trial_dir: Path, **overrides: Any) -> FitSettings:
    """Three epochs of a classification trial on val/accuracy, seed 1."""
    settings = {
        "task": "classification",
        "metric": "val/accuracy",
        "epochs": 3,
        "patience": 5,
        "seed": 1,
        "trial_dir": trial_dir,
        "target": None,
        "log_to_mlflow": False,
        **overrides,
    }
    return FitSettings(**settings)


def data_module(cleaned: Any, folder: Path, scale: float = 1.0) -> Any:
    """The Lightning data module of the tiny splits; ``scale`` multiplies the train inputs."""
    from components.backends.pytorch.data import SplitDataModule

    data = SplitDataModule(splits_on_disk(cleaned, folder))
    x, y = data.arrays["train"]
    data.arrays["train"] = (x * np.float32(scale), y)
    return data


def fit(data: Any, folder: Path, hyper: Hyperparams = HYPER, **overrides: Any) -> Any:
    """One Lightning trial (number 3) of a small MLP; its spec and result."""
    from components.backends.pytorch.fit import Device, fit_trial

    spec = ModelSpec(MLP, input_dim=data.arrays["train"][0].shape[1], outputs=3, depth=1, width=16)
    trial = optuna.trial.FixedTrial({}, number=3)
    settings = fit_settings(folder / "trials", **overrides)
    result = fit_trial(trial, hyper, spec, data=data, settings=settings, device=Device())
    return spec, result


def fitted_keras_mlp(cleaned: Any, epochs: int) -> Any:
    """A tiny Keras MLP fitted on the shared tiny table's train split, as the trials compile it."""
    from components.backends.tensorflow.fit import compile_model
    from components.training.features import encode, targets
    from components.training.spec import MLP, ModelSpec

    constants = cleaned.preprocessing
    train = cleaned.splits["train"]
    x, y = encode(train, constants), targets(train, constants)
    spec = ModelSpec(MLP, input_dim=x.shape[1], outputs=3, depth=1, width=16)
    model = compile_model(spec, HYPER, "classification")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model
