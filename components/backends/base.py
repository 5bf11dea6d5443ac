"""The interface every framework implements: the few operations in which frameworks differ.

One training driver (``components.training.driver``) runs the same sequence for
every framework: study -> best -> test -> quality gate -> save -> log -> metrics.
The later stages (evaluate, export, register) read a model folder's
``model.json`` (:class:`components.contracts.ModelCard`) and ask the registry
(``components.backends.get``) for its framework's backend. A branch on a
framework's name belongs in that framework's backend, nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from components.contracts import Constants, ModelCard

if TYPE_CHECKING:  # the study's module imports Optuna, which not every user of this one needs
    from components.training.epochs import EpochLog

Call = Callable[[np.ndarray], np.ndarray]
#: A training stage's runner: in this process, or inside the TFX Trainer (``pipelines.tfx_runner``).
IN_PROCESS = "in_process"
TFX = "tfx"
EAGER = "native_eager"  # the export stage's name for the native model called eagerly
#: What a process does in its training stage (``Backend.processes``): trains alone, leads
#: the processes that train each trial together, follows the leader's trials, or only
#: started the processes that run the stage.
ALONE, LEADER, FOLLOWER, LAUNCHER = "alone", "leader", "follower", "launcher"
#: The CPU threads each trainer may use when ``bakeoff run`` runs several side by side.
CPU_SHARE_VARIABLE = "BAKEOFF_CPU_THREADS"


#: Matmul precisions both frameworks name alike (torch.set_float32_matmul_precision's words).
MATMUL_PRECISIONS = ("highest", "high", "medium")


@dataclass(frozen=True)
class RuntimeSettings:
    """What changes the speed of a framework itself: ``runtime.<framework>`` in params.

    The same settings reach every process that runs the framework (the
    trainer, its Optuna workers, evaluate, export): the ``bakeoff`` command
    puts :meth:`Backend.environment` into the environment before any stage
    imports a framework, and :meth:`Backend.configure` applies the rest.
    A backend ignores what its framework does not have (oneDNN in PyTorch).
    """

    threads: int = (
        0  # intra-op CPU threads; 0: the runner's share of the cores, else the framework's
    )
    inter_op_threads: int = 0  # 0: the framework decides
    onednn: bool | str = True  # TensorFlow's oneDNN CPU kernels: true, false or "default"
    compile: bool = False  # XLA jit_compile (Keras) or torch.compile (PyTorch)
    mixed_precision: bool = False  # on GPUs
    memory_growth: bool = True  # GPUs: take memory as needed instead of reserving it all
    matmul_precision: str = (
        "highest"  # highest | high | medium (TF32 / bfloat16 where a GPU has it)
    )
    workers: int = 1  # processes sharing the study (the trainer's orchestration)

    @classmethod
    def from_section(cls, raw: Mapping[str, Any] | None, framework: str) -> RuntimeSettings:
        """Check and unpack ``runtime.<framework>``; keys left out keep bakeoff's defaults."""
        from components.errors import ParamsError
        from components.params import choice, flag, whole

        raw = dict(raw or {})
        key = f"runtime.{framework}"
        known = {item.name for item in fields(cls)} - {"workers"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ParamsError(
                key, f"unknown setting(s) {unknown}; expected some of {sorted(known)}"
            )
        default = cls()
        onednn = raw.get("onednn", default.onednn)
        if not (isinstance(onednn, bool) or onednn == "default"):
            raise ParamsError(f"{key}.onednn", f"expected true, false or default; found {onednn!r}")
        return cls(
            threads=whole(raw.get("threads", default.threads), f"{key}.threads", 0),
            inter_op_threads=whole(
                raw.get("inter_op_threads", default.inter_op_threads), f"{key}.inter_op_threads", 0
            ),
            onednn=onednn,
            compile=flag(raw.get("compile", default.compile), f"{key}.compile"),
            mixed_precision=flag(
                raw.get("mixed_precision", default.mixed_precision), f"{key}.mixed_precision"
            ),
            memory_growth=flag(
                raw.get("memory_growth", default.memory_growth), f"{key}.memory_growth"
            ),
            matmul_precision=choice(
                raw.get("matmul_precision", default.matmul_precision),
                f"{key}.matmul_precision",
                MATMUL_PRECISIONS,
            ),
        )

    def declared(self) -> dict[str, Any]:
        """The settings as params declare them, for the metrics, MLflow and the report."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def in_this_process(self) -> RuntimeSettings:
        """These settings with threads 0 replaced by the runner's CPU share, if it set one.

        ``bakeoff run`` sets ``BAKEOFF_CPU_THREADS`` when trainers run side by side
        on CPUs, so that together they do not ask for more threads than cores.
        """
        share = os.environ.get(CPU_SHARE_VARIABLE, "")
        if self.threads or not share.isdigit():
            return self
        return replace(self, threads=int(share))


def runtime_settings(params: Mapping[str, Any], framework: str) -> RuntimeSettings:
    """A framework's runtime settings from a whole params mapping, for this process."""
    section = (params.get("runtime") or {}).get(framework)
    return RuntimeSettings.from_section(section, framework).in_this_process()


def machine() -> dict[str, Any]:
    """The CPU model, its vector extensions and the cores this process may use.

    Every cost figure is read with them: TensorFlow's defaults, for one, depend
    on whether the CPU has AVX-512.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if model and flags:
                break
    except OSError:
        pass
    vectors = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if name in flags]
    return {"cpu": model, "cores": available_cpus(), "vector_extensions": vectors}


def available_cpus() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    log_to_mlflow: bool = True  # each epoch's values to the active MLflow run (the trial's)
    events_dir: Path | None = None  # each trial's TensorBoard run: events_dir/trial-NNNN
    progress: bool = True  # each epoch as a progress event (components.progress)

    def events(self, trial: int) -> Path | None:
        """The TensorBoard run folder of ``trial``, if the fit writes one."""
        return None if self.events_dir is None else self.events_dir / f"trial-{trial:04d}"

    def epoch_log(self, trial: int, lead: bool = True) -> EpochLog:
        """The per-epoch record of ``trial``'s fit; a process that does not ``lead`` keeps it only."""
        from components.training.epochs import EpochLog

        return EpochLog(
            log_to_mlflow=self.log_to_mlflow and lead,
            events=self.events(trial) if lead else None,
            trial=trial if self.progress and lead else None,
            epochs=self.epochs,
            metric=self.metric,
        )

    def follower(self) -> FitSettings:
        """The settings of a process that follows another's trials: it records nothing."""
        return replace(self, log_to_mlflow=False, events_dir=None, progress=False)


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
    # Held to parity but not timed: their runtime answers from another process (TF.js in Node.js).
    untimed: frozenset[str] = frozenset()
    skipped: frozenset[str] = frozenset()  # optional formats left out, as export was asked


class Backend(Protocol):
    """One framework behind the operations the driver and the later stages need."""

    name: str
    orchestrator: str  # IN_PROCESS or TFX: who runs the driver for this framework's stage
    mlflow_flavour: str  # the MLflow module that logs its models, e.g. "mlflow.pytorch"
    optional_formats: frozenset[
        str
    ]  # formats export may be asked to leave out (export.skip_formats)

    def environment(self, runtime: RuntimeSettings) -> dict[str, str]:
        """The variables the framework reads when it is imported (set before any import of it)."""
        ...

    def configure(self, runtime: RuntimeSettings) -> dict[str, Any]:
        """Apply the runtime settings to this process; describe the runtime as the framework reports it."""
        ...

    def processes(self, own: Mapping[str, Any]) -> contextlib.AbstractContextManager[str]:
        """Start or join the processes each trial trains on (``train_<framework>``); this one's part.

        ALONE for one process; LAUNCHER when this process started the others,
        which run the stage; LEADER or FOLLOWER inside them.
        """
        ...

    def fit_trial(
        self, trial: Any, hyper: Any, spec: Any, data: SplitArrays, settings: FitSettings
    ) -> Any:
        """Train one Optuna trial's model; keep its best epoch; return a ``TrialResult``."""
        ...

    def follow(self, data: SplitArrays, settings: FitSettings, spec: Callable[[Any], Any]) -> int:
        """A FOLLOWER's part: fit every trial the leader announces (``spec`` from its draw); how many."""
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
        skip: frozenset[str] = frozenset(),
    ) -> Bundle:
        """Every serving format this framework reaches (ONNX among them), written into ``out``.

        ``skip`` names optional formats not to write; those this backend has are
        listed in the bundle's ``skipped``. A format whose tools are missing
        stops the export, in one line, before anything is written.
        """
        ...

    def check_export_tools(self, skip: frozenset[str]) -> None:
        """Stop in one line when a format ``export`` would write needs a tool this machine lacks.

        Cheap and framework-free: ``bakeoff run`` asks every backend before any
        stage, so a missing tool is not found after the studies.
        """
        ...

    def limit_threads(self, threads: int) -> None:
        """Cap the framework's inference threads in this process (for fair latency figures)."""
        ...


@contextlib.contextmanager
def one_process(own: Mapping[str, Any]) -> Iterator[str]:
    """``Backend.processes`` for a backend whose trials train in one process."""
    yield ALONE


def no_tools(skip: frozenset[str]) -> None:
    """``Backend.check_export_tools`` for a backend whose exports need nothing outside its packages."""


def no_followers(data: SplitArrays, settings: FitSettings, spec: Callable[[Any], Any]) -> int:
    """``Backend.follow`` for a backend whose trials train in one process: never called."""
    raise NotImplementedError("this backend trains each trial in one process")


#: Rows per call when a model answers a whole split.
CHUNK = 1024


def batched(call: Callable[[np.ndarray], Any], matrix: np.ndarray) -> np.ndarray:
    """``call`` over every row of the serving matrix, ``CHUNK`` rows at a time."""
    parts = [
        np.asarray(call(matrix[start : start + CHUNK])) for start in range(0, len(matrix), CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,))


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
