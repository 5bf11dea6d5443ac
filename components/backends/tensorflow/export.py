"""TensorFlow exports of the trained Keras model: SavedModel, TFLite (float and quantised), ONNX, TF.js.

Every export takes the serving matrix (``components.training.features.raw_matrix``),
with the shared preprocessing inside: TFLite and ONNX have no string ops for
the TF Transform graph's lookups, so the module below recomputes the same
imputation, standardisation and one-hot slots from the shared constants in
plain tensor ops (TensorFlow.js, converted from the same SavedModel, has neither
``ParseExample`` nor file-backed tables); the parity check holds it to the TFX
model's outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from components.contracts import Constants

SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
TFLITE_QUANTISED = "model_dynamic_range.tflite"
ONNX = "model.onnx"
OPSET = 17
OPTIONAL = frozenset({"tfjs"})  # formats export.skip_formats may leave out (tfjs.FORMAT)


def load_keras(version: Path) -> Any:
    """The Keras model inside a SavedModel TFX pushed, without its Transform layer.

    The Trainer tracks the TF Transform layer on the model (``tft_layer``: hash
    tables over vocabulary files), so every SavedModel saved from it carried
    them unused; TensorFlow.js's converter cannot freeze such a SavedModel
    ("Identity is not in graph"). The exports recompute the preprocessing in
    plain ops, so the same layers, weights shared, are wrapped again in a
    model that tracks nothing else.
    """
    import tf_keras

    model = tf_keras.models.load_model(str(version), compile=False)
    return tf_keras.Model(model.inputs, model.outputs, name=model.name)


def raw_module(keras_model: Any, constants: Constants) -> Any:
    """A ``tf.Module`` with the preprocessing in front of ``keras_model``.

    ``__call__`` (and ``eager``, undecorated) returns the probabilities or the
    value; ``serve`` returns them under their name, for the SavedModel signature.
    """
    import tensorflow as tf

    numeric = list(constants.numeric)
    categorical = list(constants.categorical)
    vocabularies = constants.vocabularies
    width = len(numeric) + len(categorical)
    fill = np.array([constants.impute[n] for n in numeric], np.float32)
    mean = np.array([constants.stats[n].mean for n in numeric], np.float32)
    scale = np.array([constants.stats[n].scale for n in numeric], np.float32)
    sizes = [len(vocabularies[n]) for n in categorical]
    fill_positions = [_position(vocabularies[n], constants.impute[n]) for n in categorical]
    classification = constants.classification
    output = "probabilities" if classification else "value"
    spec = tf.TensorSpec([None, width], tf.float32, name="inputs")

    class RawMatrixModel(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="raw_matrix_model")
            # The weights only, not the Keras model: saving a tracked Keras model
            # also traces and writes every layer's own call functions (Keras's
            # serialization), which no reader of these SavedModels uses.
            self.weights = list(keras_model.variables)

        def eager(self, raw: Any) -> Any:
            # Constants are made here, not captured, so tf2onnx sees no extra inputs.
            parts = []
            if numeric:
                values = raw[:, : len(numeric)]
                values = tf.where(tf.math.is_nan(values), tf.constant(fill), values)
                parts.append((values - tf.constant(mean)) / tf.constant(scale))
            for column, size in enumerate(sizes):
                position = raw[:, len(numeric) + column]
                position = tf.where(
                    tf.math.is_nan(position), tf.constant(fill_positions[column]), position
                )
                known = (position >= 0) & (position < size) & (position == tf.floor(position))
                slot = tf.where(known, position, tf.constant(float(size)))
                parts.append(tf.one_hot(tf.cast(slot, tf.int32), size + 1, dtype=tf.float32))
            vector = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
            result = keras_model(vector, training=False)
            # (rows, classes), or (rows,) values, as the PyTorch exports answer.
            return result if classification else tf.reshape(result, [-1])

        # Nothing here branches on a tensor, so AutoGraph has nothing to convert;
        # left on, it rewrote the Keras model's whole call: the first call took
        # 10.4 s on a 2-core EPYC against 0.1 s off (issue 12's note; the stage
        # costs: benchmarks/results/pipeline_scale_10k_*.json).
        @tf.function(input_signature=[spec], autograph=False)
        def __call__(self, raw: Any) -> Any:
            return self.eager(raw)

        @tf.function(input_signature=[spec], autograph=False)
        def serve(self, raw: Any) -> dict[str, Any]:
            return {output: self.eager(raw)}

    return RawMatrixModel()


def _position(vocabulary: Sequence[str], value: Any) -> float:
    text = str(value)
    return float(vocabulary.index(text)) if text in vocabulary else -1.0


def save(module: Any, folder: Path) -> Path:
    """``module`` as a SavedModel with its ``serve`` as ``serving_default``; the SavedModel's folder."""
    import tensorflow as tf

    saved = folder / SAVED_MODEL
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
    return saved


def export(module: Any, folder: Path, skip: frozenset[str] = frozenset()) -> dict[str, Path]:
    """Write every TensorFlow format of ``module`` into ``folder``; format name to path.

    ``skip`` may name the optional formats (``OPTIONAL``) not to write.
    """
    import tensorflow as tf
    import tf2onnx

    from components.backends.tensorflow import tfjs

    if tfjs.FORMAT not in skip:
        tfjs.preflight()  # before anything is written
    saved = save(module, folder)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    (folder / TFLITE).write_bytes(converter.convert())
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range: int8 weights
    (folder / TFLITE_QUANTISED).write_bytes(converter.convert())
    tf2onnx.convert.from_function(
        module.serve,  # named output, as the SavedModel's signature and the PyTorch ONNX file
        input_signature=[module.serve.input_signature[0]],
        opset=OPSET,
        output_path=str(folder / ONNX),
    )
    files = {
        "savedmodel": saved,
        "tflite": folder / TFLITE,
        "tflite_dynamic_range": folder / TFLITE_QUANTISED,
        "onnx": folder / ONNX,
    }
    if tfjs.FORMAT not in skip:
        files[tfjs.FORMAT] = tfjs.convert(saved, folder)
    return files


def saved_model_runtime(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The exported SavedModel through TensorFlow's loader and its serving signature."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    (output,) = signature.structured_outputs

    def call(matrix: np.ndarray) -> np.ndarray:
        return signature(inputs=tf.constant(matrix))[output].numpy()

    return call


def tflite_runtime(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """A TFLite interpreter on ``threads`` threads, resized when the batch size changes."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    shape: list[tuple[int, ...]] = [()]

    def call(matrix: np.ndarray) -> np.ndarray:
        if matrix.shape != shape[0]:
            interpreter.resize_tensor_input(source, matrix.shape)
            interpreter.allocate_tensors()
            shape[0] = matrix.shape
        interpreter.set_tensor(source, np.ascontiguousarray(matrix, dtype=np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    return call


def eager_runtime(module: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The Keras model called eagerly, ``model(x)``, with the preprocessing in eager ops."""
    import tensorflow as tf

    def call(matrix: np.ndarray) -> np.ndarray:
        return module.eager(tf.constant(matrix)).numpy()

    return call
