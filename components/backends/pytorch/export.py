"""PyTorch exports of the trained network: TorchScript, ``torch.export`` and ONNX.

All wrap :class:`components.backends.pytorch.serving.RawFeatureModel`, so they
take the serving matrix with the shared preprocessing inside.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

TORCHSCRIPT = "model.torchscript.pt"
EXPORTED = "model.pt2"
ONNX = "model.onnx"
OPSET = 17


def export(model: torch.nn.Module, example: np.ndarray, folder: Path) -> dict[str, Path]:
    """Write every PyTorch format of ``model`` into ``folder``; format name to path."""
    inputs = torch.from_numpy(np.ascontiguousarray(example[: max(2, len(example))], np.float32))
    # TorchScript is deprecated in favour of torch.export, yet still what many servers load.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, inputs, check_trace=False)
    traced.save(str(folder / TORCHSCRIPT))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (inputs,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(folder / EXPORTED))
    output = "probabilities" if model.classification else "value"
    torch.onnx.export(
        model,
        (inputs,),
        str(folder / ONNX),
        input_names=["inputs"],
        output_names=[output],
        dynamic_axes={"inputs": {0: "batch"}, output: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    return {
        "torchscript": folder / TORCHSCRIPT,
        "torch_export": folder / EXPORTED,
        "onnx": folder / ONNX,
    }


def _runner(module: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    def call(matrix: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            values = module(torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)))
        return values.numpy()

    return call


def eager_runtime(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """The ``nn.Module`` called eagerly."""
    return _runner(model)


def torchscript_runtime(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The TorchScript file through ``torch.jit.load``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _runner(torch.jit.load(str(path)).eval())


def torch_export_runtime(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The ``torch.export`` program through ``torch.export.load(...).module()``."""
    return _runner(torch.export.load(str(path)).module())
