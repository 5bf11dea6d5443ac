"""The exported TensorFlow model: raw features in, class probabilities (or the value) out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from components.backends.tensorflow.transform_module.preprocessing import INPUTS
from components.contracts import internal_names

EXAMPLES = tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")


def save_serving_model(model: Any, tft_output: Any, label: str, task: str, path: Path) -> None:
    """Save ``model`` with the Transform graph in front of it, as a SavedModel.

    Signatures: ``serving_default`` takes serialized tf.Examples of raw
    features keyed by the users' column names (what TF Serving and TFMA's
    Evaluator send); ``serving_raw`` takes one 1-D tensor per raw feature, each
    argument named by ``contracts.internal_names`` (a signature argument must be
    a valid op name: ``Body Mass (g)`` is not). Both return ``probabilities`` (classification)
    or ``value`` (regression). ``transform_features`` returns the transformed
    features and label of serialized examples, so TFMA compares the model's
    class index with the label's class index, not with the raw label value.
    """
    # AutoGraph is off: these functions branch on no tensor, and converting
    # the Keras model's call cost about 10 s per trace (as in export.raw_module).
    output = "probabilities" if task == "classification" else "value"
    model.tft_layer = tft_output.transform_features_layer()  # tracked, so its assets are saved
    raw_spec = tft_output.raw_feature_spec()
    raw_spec.pop(label, None)

    def predict(raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        transformed = model.tft_layer(raw)
        return {output: model(transformed[INPUTS])}

    @tf.function(input_signature=[EXAMPLES], autograph=False)
    def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return predict(tf.io.parse_example(serialized, raw_spec))

    names = internal_names(sorted(raw_spec))
    raw_signature = {
        names[name]: tf.TensorSpec([None], spec.dtype, name=names[name])
        for name, spec in sorted(raw_spec.items())
    }

    @tf.function(input_signature=[raw_signature], autograph=False)
    def serve_raw(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return predict({name: tf.reshape(features[names[name]], [-1, 1]) for name in names})

    full_spec = tft_output.raw_feature_spec()

    @tf.function(input_signature=[EXAMPLES], autograph=False)
    def transform_features(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        return model.tft_layer(tf.io.parse_example(serialized, full_spec))

    # Without the optimizer's slots: a serving model needs only its weights, and
    # the verdict compares model sizes on disk with PyTorch's weights-only file.
    # Without the layers' traced call functions: Keras loads the model back from
    # its config (``export.load_keras``), TF Serving and TFMA call the signatures,
    # and tracing them took about 11 s of the Trainer's 24 on a 2-core EPYC.
    model.save(
        str(path),
        save_format="tf",
        include_optimizer=False,
        save_traces=False,
        signatures={
            "serving_default": serve_examples,
            "serving_raw": serve_raw,
            "transform_features": transform_features,
        },
    )
