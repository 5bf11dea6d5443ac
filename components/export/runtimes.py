"""Runtimes shared by both frameworks' exports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def onnx_runtime(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX Runtime CPU session on ``threads`` intra-op threads, one inter-op thread."""
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
