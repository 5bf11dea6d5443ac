"""A test-only third framework: softmax regression in numpy, with an ONNX graph of its own.

It stands behind the same :class:`components.backends.base.Backend` Protocol as
the real frameworks, with only the operations the later stages use (load,
export, loggable, predict, requirements, limit_threads); the fit side raises.
:func:`write_trained` writes what a training stage would: ``models/<name>/``
(``model.json`` beside the weights) and ``metrics/<name>.json``. Nothing here
imports TensorFlow or torch.

The model reads the serving matrix as it is (category positions as numbers),
standardised with the train split's column means and deviations folded into
the weights, so the whole model is ``softmax(inputs @ W + b)``: MatMul, Add,
Softmax in ONNX. A gap (NaN) in the inputs answers NaN.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.backends.base import (
    EAGER,
    IN_PROCESS,
    Bundle,
    Loaded,
    RuntimeSettings,
    no_followers,
    no_tools,
    one_process,
    onnx_runtime,
    size_on_disk,
)
from components.contracts import (
    MODEL_CARD,
    Constants,
    ModelCard,
    TrainingMetrics,
    write_json,
)
from components.evaluate import metrics as scoring
from components.training.features import raw_matrix, targets

WEIGHTS = "weights.npz"
FORMAT = "numpy softmax regression (npz: weights, bias)"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def onnx_graph(weights: np.ndarray, bias: np.ndarray) -> Any:
    """``softmax(inputs @ weights + bias)`` as an ONNX model: input "inputs", output "probabilities"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    features, classes = weights.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["inputs", "weights"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "linear",
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        initializer=[
            numpy_helper.from_array(weights.astype(np.float32), "weights"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by older ONNX Runtimes too
    onnx.checker.check_model(model)
    return model


def read_weights(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The folded weights and bias of a model folder's artifact."""
    with np.load(path) as saved:
        return saved["weights"].astype(np.float32), saved["bias"].astype(np.float32)


class LinearBackend:
    """Softmax regression behind the Backend Protocol; ``name`` tells several apart."""

    orchestrator = IN_PROCESS
    mlflow_flavour = "mlflow.onnx"
    optional_formats: frozenset[str] = frozenset()

    def __init__(self, name: str = "linear") -> None:
        self.name = name
        self.threads = 0

    def environment(self, runtime: RuntimeSettings) -> dict[str, str]:
        """Nothing read at import."""
        return {}

    def configure(self, runtime: RuntimeSettings) -> dict[str, Any]:
        """Nothing to configure: numpy's thread pool is fixed when it loads."""
        return {"framework": f"numpy {np.__version__}"}

    def fit_trial(self, *args: Any, **kwargs: Any) -> Any:
        """Not a trainer: :func:`write_trained` fits it directly."""
        raise NotImplementedError("the linear test backend is fitted by write_trained")

    def load_best(self, *args: Any, **kwargs: Any) -> Any:
        """Not a trainer."""
        raise NotImplementedError("the linear test backend is fitted by write_trained")

    def serving_model(self, *args: Any, **kwargs: Any) -> Any:
        """Not a trainer."""
        raise NotImplementedError("the linear test backend is fitted by write_trained")

    def save(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        """Not a trainer."""
        raise NotImplementedError("the linear test backend is fitted by write_trained")

    def predict(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        """The ONNX model's probabilities for a batch of the serving matrix."""
        import onnxruntime

        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(None, {"inputs": np.ascontiguousarray(matrix, dtype=np.float32)})[0]

    def requirements(self) -> list[str]:
        """What MLflow's ONNX flavour needs to load the logged model."""
        import onnx
        import onnxruntime

        return [f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"]

    def load(self, card: ModelCard, folder: Path, constants: Constants) -> Loaded:
        """The weights, called in numpy."""
        path = folder / card.artifact
        weights, bias = read_weights(path)

        def call(matrix: np.ndarray) -> np.ndarray:
            return softmax(np.asarray(matrix, dtype=np.float32) @ weights + bias)

        return Loaded(self.name, path, size_on_disk(path), call)

    def loggable(self, card: ModelCard, folder: Path, constants: Constants) -> Any:
        """The ONNX model (MLflow's ONNX flavour logs a ``ModelProto``)."""
        return onnx_graph(*read_weights(folder / card.artifact))

    def export(
        self,
        card: ModelCard,
        folder: Path,
        constants: Constants,
        out: Path,
        example: np.ndarray,
        threads: int,
        skip: frozenset[str] = frozenset(),
    ) -> Bundle:
        """ONNX, held to the numpy model (which is also the eager runtime)."""
        import onnx

        path = out / "model.onnx"
        onnx.save(self.loggable(card, folder, constants), str(path))
        reference = self.load(card, folder, constants).call
        return Bundle(
            self.name,
            {"onnx": path},
            {"onnx": onnx_runtime(path, threads), EAGER: reference},
            reference,
            f"{self.name}'s {card.artifact} in numpy",
            runtime_names={"onnx": "ONNX Runtime (CPU)", EAGER: "numpy"},
        )

    # Trials train in one process each (for TensorFlow, the Trainer's; see README).
    processes = staticmethod(one_process)
    follow = staticmethod(no_followers)
    check_export_tools = staticmethod(no_tools)  # numpy writes its ONNX graph itself

    def limit_threads(self, threads: int) -> None:
        """Remembered only: numpy's BLAS pool cannot change once loaded."""
        self.threads = threads


def fit(
    matrix: np.ndarray,
    labels: np.ndarray,
    classes: int,
    *,
    l2: float,
    steps: int = 200,
    rate: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Softmax regression by gradient descent on standardised columns; weights folded back.

    Returns the weights and bias on the raw serving matrix and the loss every step.
    """
    mean = matrix.mean(axis=0)
    scale = matrix.std(axis=0)
    scale[scale == 0] = 1.0
    x = (matrix - mean) / scale
    onehot = np.eye(classes)[labels]
    weights = np.zeros((x.shape[1], classes))
    bias = np.zeros(classes)
    losses = []
    for _ in range(steps):
        probabilities = softmax(x @ weights + bias)
        losses.append(
            float(-np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1)).mean())
        )
        error = (probabilities - onehot) / len(labels)
        weights -= rate * (x.T @ error + l2 * weights / len(labels))
        bias -= rate * error.sum(axis=0)
    # (x - mean) / scale @ W + b == x @ (W / scale) + (b - (mean / scale) @ W)
    folded = weights / scale[:, None]
    return folded, bias - (mean / scale) @ weights, losses


def write_trained(
    models: Path,
    metrics: Path,
    backend: LinearBackend,
    splits: Mapping[str, pd.DataFrame],
    constants: Constants,
    *,
    l2: float,
    window: tuple[int, int] | None = None,
) -> ModelCard:
    """Fit on the train split and write ``models/<name>/`` and ``metrics/<name>.json``."""
    started = time.time()
    classes = len(constants.label.classes)
    train = raw_matrix(splits["train"], constants).astype(np.float64)
    weights, bias, losses = fit(train, targets(splits["train"], constants), classes, l2=l2)
    scores = {}
    for split in ("val", "test"):
        outputs = softmax(raw_matrix(splits[split], constants) @ weights + bias)
        scores[split] = scoring.classification(outputs, targets(splits[split], constants))
    test = {key: scores["test"][key] for key in ("accuracy", "macro_f1", "log_loss")}
    folder = models / backend.name
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / WEIGHTS, weights=weights.astype(np.float32), bias=bias.astype(np.float32))
    card = ModelCard.describe(
        constants,
        framework=backend.name,
        artifact=WEIGHTS,
        format=FORMAT,
        spec={"kind": "softmax_regression"},
        hyperparameters={"l2": l2},
        study=f"{backend.name}-study",
        trial=0,
        metric="val/accuracy",
        best_val=scores["val"]["accuracy"],
        test=test,
    )
    write_json(folder / MODEL_CARD, card)
    metrics.mkdir(parents=True, exist_ok=True)
    ended = time.time()
    write_json(
        metrics / f"{backend.name}.json",
        TrainingMetrics(
            framework=backend.name,
            metric="val/accuracy",
            best_val=scores["val"]["accuracy"],
            best_trial=0,
            best_params={"l2": l2},
            best_epochs=len(losses),
            best_fit_seconds=ended - started,
            train_examples_per_s=len(train) * len(losses) / max(ended - started, 1e-6),
            parameters=int(weights.size + bias.size),
            training_seconds=ended - started,
            test=test,
            trials={"run": 1, "complete": 1, "pruned": 0, "failed": 0},
            blessed=True,
            pushed=True,
            learning_curve={"train/loss": losses[::20]},
            window=window or (int(started * 1000), int(ended * 1000)),
            study=f"{backend.name}-study",
            data_hash="not-hashed",
        ),
    )
    return card
