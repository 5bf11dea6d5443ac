"""The PyTorch backend: Lightning trials, a ``torch.export`` program as the native artifact."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from components.backends.base import (
    ALONE,
    EAGER,
    FOLLOWER,
    IN_PROCESS,
    LAUNCHER,
    LEADER,
    Bundle,
    FitSettings,
    Loaded,
    RuntimeSettings,
    SplitArrays,
    available_cpus,
    no_tools,
    onnx_runtime,
    size_on_disk,
)
from components.contracts import Constants, ModelCard
from components.errors import BakeoffError

MODEL_FILE = "model.pt2"
CHECKPOINT = "best.ckpt"
RUNTIMES = {
    "torchscript": "TorchScript (torch.jit.load)",
    "torch_export": "torch.export (torch.export.load().module())",
    "onnx": "ONNX Runtime (CPU)",
    EAGER: "the framework's own model called eagerly",
}


class PytorchBackend:
    """PyTorch through Lightning (see the Protocol in ``components.backends.base``)."""

    name = "pytorch"
    orchestrator = IN_PROCESS
    mlflow_flavour = "mlflow.pytorch"
    optional_formats: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.device: Any = None
        self._module: Any = None  # the data module of the arrays last fitted on
        self._arrays: SplitArrays | None = None
        self._group: Any = None  # the DDP group this process trains in (``processes``)
        self._topology: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Optuna worker processes receive the backend; they build their own data module.
        return {**self.__dict__, "_module": None, "_arrays": None}

    @contextlib.contextmanager
    def processes(self, own: Mapping[str, Any]) -> Iterator[str]:
        """Lightning's DDP on ``train_pytorch.devices`` x ``num_nodes`` processes, or this one alone.

        Outside a launched group, this process starts the group on this host
        and the stage runs there (LAUNCHER); inside, it joins the process group.
        """
        import torch

        from components.backends.pytorch import ddp

        topology = ddp.Topology.from_section(own)
        if topology.world == 1:
            yield ALONE
            return
        rank = ddp.Rank.from_environment()
        if rank is None:
            ddp.launch(topology, sys.argv[1:])  # the stage's own command, on each process
            yield LAUNCHER
            return
        if rank.world != topology.world:
            raise BakeoffError(
                f"train_pytorch: devices x num_nodes is {topology.world} but torchrun started "
                f"{rank.world} processes; give torchrun --nproc_per_node={topology.devices} "
                f"--nnodes={topology.num_nodes}"
            )
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
        self._topology = topology
        with ddp.joined(rank, accelerator) as group:
            self._group = group
            try:
                yield LEADER if rank.leads else FOLLOWER
            finally:
                self._group = None

    def follow(self, data: SplitArrays, settings: FitSettings, spec: Callable[[Any], Any]) -> int:
        """Fit each trial rank 0 announces, on this rank's share of its batches."""
        from components.training.study import follow_trials

        return follow_trials(
            self._group.next_trial,
            lambda trial, hyper: self.fit_trial(trial, hyper, spec(hyper), data, settings),
        )

    def environment(self, runtime: RuntimeSettings) -> dict[str, str]:
        """OpenMP's pool size, which torch (and NumPy) read at import."""
        return {"OMP_NUM_THREADS": str(runtime.threads)} if runtime.threads else {}

    def configure(self, runtime: RuntimeSettings) -> dict[str, Any]:
        """Device, threads and matmul precision; worker processes split the stage's CPU threads."""
        import lightning
        import torch

        from components.backends.pytorch.fit import Device

        # Lightning announces the accelerators and advertises loggers on every
        # trial's Trainer; the stage prints its own summary instead.
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
        threads = runtime.threads
        # Optuna workers, or DDP's processes on this host, share its CPU threads.
        sharing = self._group.rank.local_world if self._group is not None else runtime.workers
        if sharing > 1 and not threads:
            threads = available_cpus()  # to be shared out between the processes
        per_worker = max(1, threads // sharing) if threads else 0
        if runtime.inter_op_threads and torch.get_num_interop_threads() != runtime.inter_op_threads:
            # torch allows it once, before any inter-op work; the record says what it kept.
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(runtime.inter_op_threads)
        torch.set_float32_matmul_precision(runtime.matmul_precision)
        self.device = Device.detect(runtime.mixed_precision, per_worker, runtime.compile)
        if per_worker:
            torch.set_num_threads(per_worker)
        return {
            "framework": f"torch {torch.__version__}, lightning {lightning.__version__}",
            "accelerator": self.device.accelerator,
            "precision": self.device.precision,
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "workers": runtime.workers,
            "processes_per_trial": self._topology.world if self._group is not None else 1,
            "onednn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "compile": "torch.compile (inductor)" if runtime.compile else "none",
            "matmul_precision": torch.get_float32_matmul_precision(),
        }

    def fit_trial(
        self, trial: Any, hyper: Any, spec: Any, data: SplitArrays, settings: FitSettings
    ) -> Any:
        """One Lightning fit, checkpointing the best epoch."""
        import torch

        from components.backends.pytorch.data import SplitDataModule
        from components.backends.pytorch.fit import Device, fit_trial

        # Per process: an Optuna worker process did not run configure.
        torch.set_float32_matmul_precision(settings.runtime.matmul_precision)
        if self._arrays is not data:  # encoded once per process, reused by every trial
            self._module, self._arrays = SplitDataModule(data), data
        device = self.device or Device.detect(
            settings.runtime.mixed_precision, settings.runtime.threads, settings.runtime.compile
        )
        if self._group is not None:  # every rank fits rank 0's trial
            device = replace(
                device, devices=self._topology.devices, num_nodes=self._topology.num_nodes
            )
            if self._group.rank.leads:
                trial = self._group.shared_trial(trial)
        return fit_trial(trial, hyper, spec, data=self._module, settings=settings, device=device)

    def load_best(self, path: Path, spec: Any, hyper: Any, constants: Constants) -> Any:
        """The network of a trial's best-epoch checkpoint."""
        from components.backends.pytorch.fit import load_network
        from components.training.features import target_scale

        return load_network(path, spec, hyper, constants.task, target_scale(constants))

    def serving_model(self, network: Any, constants: Constants) -> Any:
        """``RawFeatureModel``: the preprocessing in tensor ops, then the network."""
        from components.backends.pytorch.serving import RawFeatureModel

        return RawFeatureModel(network, constants).eval()

    def predict(self, model: Any, matrix: np.ndarray) -> np.ndarray:
        """Probabilities (rows, classes) or values (rows,)."""
        from components.backends.pytorch.export import eager_runtime

        values = eager_runtime(model)(matrix)
        return values if values.ndim == 2 and values.shape[1] > 1 else values.reshape(-1)

    def save(
        self, network: Any, constants: Constants, folder: Path, best_path: Path
    ) -> tuple[str, str]:
        """The serving model as a ``torch.export`` program, and the checkpoint it came from."""
        import torch

        model = self.serving_model(network, constants)
        example = torch.zeros((2, len(constants.feature_order)), dtype=torch.float32)
        program = torch.export.export(
            model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
        torch.export.save(program, folder / MODEL_FILE)
        shutil.copy2(best_path, folder / CHECKPOINT)
        return MODEL_FILE, "torch.export program; torch.export.load(path).module()(inputs)"

    def requirements(self) -> list[str]:
        """torch at this version (without a local build tag)."""
        import torch

        return [f"torch=={torch.__version__.split('+')[0]}"]

    def load(self, card: ModelCard, folder: Path, constants: Constants) -> Loaded:
        """The saved ``torch.export`` program, preprocessing inside."""
        import torch

        from components.errors import BakeoffError

        path = folder / card.artifact
        if not path.is_file():
            raise BakeoffError(f"{path}: no exported PyTorch model; run train@pytorch first")
        module = torch.export.load(str(path)).module()
        return Loaded(self.name, path, size_on_disk(path), lambda m: self.predict(module, m))

    def loggable(self, card: ModelCard, folder: Path, constants: Constants) -> Any:
        """The eager ``RawFeatureModel`` rebuilt from the folder's checkpoint."""
        from components.training.search import Hyperparams
        from components.training.spec import ModelSpec

        network = self.load_best(
            folder / CHECKPOINT,
            ModelSpec.from_dict(card.spec),
            Hyperparams(**card.hyperparameters),
            constants,
        )
        return self.serving_model(network, constants)

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
        """TorchScript, ``torch.export`` and ONNX of the checkpoint's network.

        The exports are held to the stage's own ``model.pt2`` (what evaluate
        scored), so preprocessing rebuilt here from the checkpoint and today's
        constants cannot drift unnoticed.
        """
        from components.backends.pytorch import export as pt_export

        model = self.loggable(card, folder, constants)
        files = pt_export.export(model, example, out)
        runtimes = {
            "torchscript": pt_export.torchscript_runtime(files["torchscript"]),
            "torch_export": pt_export.torch_export_runtime(files["torch_export"]),
            "onnx": onnx_runtime(files["onnx"], threads),
            EAGER: pt_export.eager_runtime(model),
        }
        return Bundle(
            self.name,
            files,
            runtimes,
            self.load(card, folder, constants).call,
            f"the PyTorch stage's {card.artifact}",
            runtime_names={name: RUNTIMES[name] for name in runtimes},
        )

    check_export_tools = staticmethod(no_tools)  # torch and onnx, from the lock

    def limit_threads(self, threads: int) -> None:
        """torch's intra-op threads."""
        import torch

        torch.set_num_threads(threads)


BACKEND = PytorchBackend()
