"""The export stage's core: write every format of the winner, hold each to the native model, time each.

Nothing is written unless every export passes its parity check; the caller
stages the folder, so a failed check leaves the last good exports in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components.errors import BakeoffError
from components.evaluate.latency import profile
from components.evaluate.models import batched
from components.export.parity import Limits, Parity, check
from components.export.runtimes import onnx_runtime
from components.training.features import feature_order, target_scale

Call = Callable[[np.ndarray], np.ndarray]
EAGER = "native_eager"
# The runtime each format is served and timed with.
RUNTIMES = {
    "savedmodel": "TensorFlow (tf.saved_model.load, serving_default)",
    "tflite": "TFLite interpreter",
    "tflite_dynamic_range": "TFLite interpreter",
    "onnx": "ONNX Runtime (CPU)",
    "torchscript": "TorchScript (torch.jit.load)",
    "torch_export": "torch.export (torch.export.load().module())",
    EAGER: "the framework's own model called eagerly",
}
QUANTISED = {"tflite_dynamic_range"}


class ParityError(BakeoffError):
    """An export does not reproduce the native model closely enough."""


@dataclass
class Bundle:
    """One framework's exports: the files, and a call for each in its runtime."""

    framework: str
    files: dict[str, Path]
    runtimes: dict[str, Call]  # format -> call, with EAGER for the native model called eagerly
    reference: Call  # the trained model the exports are held to
    reference_name: str


def export_tensorflow(
    version: Path, constants: Mapping[str, Any], folder: Path, threads: int, reference: Call
) -> Bundle:
    """The TensorFlow formats of the SavedModel TFX pushed at ``version``."""
    from components.export import tensorflow as tf_export

    module = tf_export.raw_module(tf_export.load_keras(version), constants)
    files = tf_export.export(module, folder)
    runtimes = {
        "savedmodel": tf_export.saved_model_runtime(files["savedmodel"]),
        "tflite": tf_export.tflite_runtime(files["tflite"], threads),
        "tflite_dynamic_range": tf_export.tflite_runtime(files["tflite_dynamic_range"], threads),
        "onnx": onnx_runtime(files["onnx"], threads),
        EAGER: tf_export.eager_runtime(module),
    }
    return Bundle(
        "tensorflow", files, runtimes, reference, f"TFX SavedModel {version.name} (serving_raw)"
    )


def export_pytorch(
    model_dir: Path,
    constants: Mapping[str, Any],
    folder: Path,
    example: np.ndarray,
    threads: int,
    reference: Call | None = None,
) -> Bundle:
    """The PyTorch formats of the network in the stage's checkpoint.

    ``reference`` is the model the exports are held to: the stage's own
    ``model.pt2`` (what evaluate scored), so preprocessing rebuilt here from
    the checkpoint and today's constants cannot drift unnoticed. Without it,
    the rebuilt eager module is the reference.
    """
    from components.export import pytorch as pt_export

    model = pt_export.load_native(model_dir, constants)
    files = pt_export.export(model, example, folder)
    eager = pt_export.eager_runtime(model)
    runtimes = {
        "torchscript": pt_export.torchscript_runtime(files["torchscript"]),
        "torch_export": pt_export.torch_export_runtime(files["torch_export"]),
        "onnx": onnx_runtime(files["onnx"], threads),
        EAGER: eager,
    }
    if reference is None:
        return Bundle("pytorch", files, runtimes, eager, "the best checkpoint's nn.Module (eager)")
    return Bundle("pytorch", files, runtimes, reference, "the PyTorch stage's model.pt2")


def export_trained(
    framework: str,
    model_dir: Path,
    constants: Mapping[str, Any],
    folder: Path,
    example: np.ndarray,
    threads: int,
) -> tuple[Bundle, Path]:
    """Every format of ``framework``'s trained model in ``model_dir``, held to the model evaluate scored.

    Returns the bundle and the trained model it came from (the newest
    SavedModel version, or the PyTorch stage's folder).
    """
    from components.evaluate.models import latest_version, load

    reference = load(framework, model_dir, constants).call
    if framework == "tensorflow":
        version = latest_version(model_dir)
        return export_tensorflow(version, constants, folder, threads, reference), version
    return export_pytorch(model_dir, constants, folder, example, threads, reference), model_dir


def parity_table(
    bundle: Bundle,
    matrix: np.ndarray,
    truth: np.ndarray,
    *,
    task: str,
    metric: str,
    limits: Limits,
    scale: float = 1.0,
) -> list[Parity]:
    """Every export (and the eager model) against the reference, on every test row."""
    native = batched(bundle.reference, matrix)
    return [
        check(
            name,
            native,
            batched(call, matrix),
            truth,
            task=task,
            metric=metric,
            quantised=name in QUANTISED,
            limits=limits,
            scale=scale,
        )
        for name, call in bundle.runtimes.items()
    ]


def output_scale(constants: Mapping[str, Any]) -> float:
    """What a float export's difference is measured in: the label's deviation for regression."""
    scale = target_scale(constants)
    return float(scale[1]) if scale and scale[1] > 0 else 1.0


def failures(table: list[Parity]) -> list[Parity]:
    """The rows that broke their limit."""
    return [row for row in table if not row.passed]


def describe_failure(framework: str, failed: list[Parity]) -> str:
    """One line naming each failed export and by how much it missed."""
    parts = [
        f"{row.format}: max |diff| {row.max_abs_diff:.3g}, {row.metric} {row.exported:.4f} "
        f"against {row.native:.4f} (limit: {row.limit})"
        for row in failed
    ]
    return f"{framework} export parity failed, nothing written: " + "; ".join(parts)


def serving_bench(bundle: Bundle, matrix: np.ndarray, threads: int, repeats: int) -> dict[str, Any]:
    """Batch-1 p50/p99 and batch-256 throughput of every format in its own runtime."""
    formats = {
        name: {"runtime": RUNTIMES[name], **profile(call, matrix, repeats=repeats)}
        for name, call in bundle.runtimes.items()
    }
    eager = formats[EAGER]["batch_1"]["p50_ms"]
    return {
        "framework": bundle.framework,
        "threads": threads,
        "test_rows": len(matrix),
        "formats": formats,
        "onnx_over_eager_batch_1_p50": formats["onnx"]["batch_1"]["p50_ms"] / eager,
    }


def manifest(
    bundle: Bundle,
    constants: Mapping[str, Any],
    folder: Path,
    table: list[Parity],
    source: Mapping[str, Any],
) -> dict[str, Any]:
    """What the export folder holds and how to call each file."""
    classification = constants["task"] == "classification"
    return {
        "framework": bundle.framework,
        "formats": {
            name: {
                "path": path.relative_to(folder).as_posix(),
                "runtime": RUNTIMES[name],
                "quantised": name in QUANTISED,
            }
            for name, path in bundle.files.items()
        },
        "input": {
            "name": "inputs",
            "dtype": "float32",
            "columns": feature_order(constants),
            "categorical": {n: constants["vocabularies"][n] for n in constants["categorical"]},
            "note": "numeric as is (NaN for a gap); categorical as vocabulary position",
        },
        "output": (
            {"probabilities": [str(c) for c in constants["label"]["classes"]]}
            if classification
            else {"value": constants["label"]["name"]}
        ),
        "parity_reference": bundle.reference_name,
        "parity": [asdict(row) for row in table],
        "source": dict(source),
    }
