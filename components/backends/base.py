"""The interface every framework implements: the few operations in which frameworks differ.

One training driver (``components.training.driver``) runs the same sequence for
every framework: study -> best -> test -> quality gate -> save -> log -> metrics.
The later stages (evaluate, export, register) read a model folder's
``model.json`` (:class:`components.contracts.ModelCard`) and ask the registry
(``components.backends.get``) for its framework's backend. A branch on a
framework's name belongs in that framework's backend, nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from components.contracts import Constants, ModelCard

Call = Callable[[np.ndarray], np.ndarray]
#: A training stage's runner: in this process, or inside the TFX Trainer (``pipelines.tfx_runner``).
IN_PROCESS = "in_process"
TFX = "tfx"
EAGER = "native_eager"  # the export stage's name for the native model called eagerly
#: The CPU threads each trainer may use when ``bakeoff run`` runs several side by side.
CPU_SHARE_VARIABLE = "BAKEOFF_CPU_THREADS"


@dataclass(frozen=True)
class RuntimeSettings:
    """What changes the speed of a framework itself, declared in its params section."""

    threads: int = 0  # intra-op CPU threads; 0: the framework decides
    mixed_precision: bool = False  # on GPUs
    workers: int = 1  # processes sharing the study


@dataclass(frozen=True)
class SplitArrays:
    """The three splits as model inputs (the shared encoding) and targets."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class FitSettings:
    """What one trial's fit needs besides its draw and data."""

    task: str
    metric: str  # the optimised ``split/metric``
    epochs: int
    patience: int
    seed: int  # trial n trains with seed + n
    trial_dir: Path
    target: tuple[float, float] | None  # regression: the label's train mean and deviation
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)


@dataclass(frozen=True)
class Loaded:
    """A trained model from its folder: where it is, its size, and a call on the serving matrix."""

    framework: str
    path: Path
    size_bytes: int
    call: Call  # one batch of the serving matrix -> probabilities (rows, classes) or values (rows,)


@dataclass
class Bundle:
    """One framework's exports: the files, and a call for each in its runtime."""

    framework: str
    files: dict[str, Path]
    runtimes: dict[str, Call]  # format -> call, with EAGER for the native model called eagerly
    reference: Call  # the trained model the exports are held to
    reference_name: str
    runtime_names: dict[str, str] = field(default_factory=dict)  # format -> what serves it
    quantised: frozenset[str] = frozenset()


class Backend(Protocol):
    """One framework behind the operations the driver and the later stages need."""

    name: str
    orchestrator: str  # IN_PROCESS or TFX: who runs the driver for this framework's stage
    mlflow_flavour: str  # the MLflow module that logs its models, e.g. "mlflow.pytorch"

    def configure(self, runtime: RuntimeSettings) -> dict[str, Any]:
        """Apply the runtime settings to this process; describe the runtime (versions, threads)."""
        ...

    def fit_trial(
        self, trial: Any, hyper: Any, spec: Any, data: SplitArrays, settings: FitSettings
    ) -> Any:
        """Train one Optuna trial's model; keep its best epoch; return a ``TrialResult``."""
        ...

    def load_best(self, path: Path, spec: Any, hyper: Any, constants: Constants) -> Any:
        """The trained network a trial saved at ``path``."""
        ...

    def serving_model(self, network: Any, constants: Constants) -> Any:
        """The network with the shared preprocessing in front: serving matrix in."""
        ...

    def predict(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        """A serving model's outputs for a batch of the serving matrix."""
        ...

    def save(
        self, network: Any, constants: Constants, folder: Path, best_path: Path
    ) -> tuple[str, str]:
        """Write the native serving artifact into ``folder``; its relative path and format."""
        ...

    def requirements(self) -> list[str]:
        """The pip requirements of a logged model (explicit: inferring them reloads the model)."""
        ...

    def load(self, card: ModelCard, folder: Path, constants: Constants) -> Loaded:
        """The saved native artifact of a model folder, callable on the serving matrix."""
        ...

    def loggable(self, card: ModelCard, folder: Path, constants: Constants) -> Any:
        """The model of a folder as its MLflow flavour logs it (serving matrix in)."""
        ...

    def export(
        self,
        card: ModelCard,
        folder: Path,
        constants: Constants,
        out: Path,
        example: np.ndarray,
        threads: int,
    ) -> Bundle:
        """Every serving format this framework reaches (ONNX among them), written into ``out``."""
        ...

    def limit_threads(self, threads: int) -> None:
        """Cap the framework's inference threads in this process (for fair latency figures)."""
        ...


def onnx_runtime(path: Path, threads: int) -> Call:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads (every backend exports ONNX)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def call(matrix: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(matrix, dtype=np.float32)})[0]

    return call


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
