"""The TF Transform ``preprocessing_fn``: the shared preprocessing, inside the TF graph.

It applies the constants of ``data/clean/preprocessing.json`` (passed whole in
``custom_config["constants"]``, so that new constants invalidate TFX's cache)
and no TFT analyzers: the statistics were computed once, from the train split,
for both frameworks. The output ``inputs`` is laid out exactly as
``components.training.features.encode`` lays it out; a test compares them.

Transform names it by import path (``pipelines.tfx_pipeline.TRANSFORM_FN``), so
Beam workers in other processes import it as any module of the project; the
hash of this file in ``custom_config`` keeps TFX's cache key honest.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from components.contracts import Constants

INPUTS = "inputs"
LABEL = "label"


def _column(tensor: Any, default: Any) -> tf.Tensor:
    """A feature as a [batch] tensor, whether it arrives dense [batch, 1] or sparse."""
    if isinstance(tensor, tf.sparse.SparseTensor):
        tensor = tf.sparse.to_dense(
            tf.sparse.reset_shape(tensor, [tensor.dense_shape[0], 1]), default_value=default
        )
    return tf.reshape(tensor, [-1])


def _lookup(keys: list[str], values: tf.Tensor) -> tf.Tensor:
    """Position of each value in ``keys``; unknown values get ``len(keys)``."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            keys=tf.constant(keys, tf.string), values=tf.range(len(keys), dtype=tf.int64)
        ),
        default_value=len(keys),
    )
    return table.lookup(values)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """Raw features to the model's dense input vector (and the label to a class index)."""
    constants = Constants.from_dict(custom_config["constants"], "custom_config.constants")
    parts = []
    numeric = list(constants.numeric)
    if numeric:
        stats, impute = constants.stats, constants.impute
        x = tf.stack(
            [tf.cast(_column(inputs[name], float("nan")), tf.float32) for name in numeric], axis=1
        )
        fill = tf.constant([impute[name] for name in numeric], tf.float32)
        x = tf.where(tf.math.is_nan(x), fill, x)
        mean = tf.constant([stats[name].mean for name in numeric], tf.float32)
        scale = tf.constant([stats[name].scale for name in numeric], tf.float32)
        parts.append((x - mean) / scale)
    for name in constants.categorical:
        vocabulary = [str(v) for v in constants.vocabularies[name]]
        value = _column(inputs[name], b"")
        value = tf.where(tf.equal(value, b""), tf.constant(str(constants.impute[name])), value)
        parts.append(tf.one_hot(_lookup(vocabulary, value), len(vocabulary) + 1, dtype=tf.float32))
    outputs = {INPUTS: tf.concat(parts, axis=1)}

    label = constants.label
    if label.name in inputs:  # absent when serving
        raw = _column(inputs[label.name], 0 if label.kind == "number" else b"")
        if constants.classification:
            text = raw if raw.dtype == tf.string else tf.strings.as_string(raw)
            outputs[LABEL] = _lookup([str(c) for c in label.classes], text)
        else:
            outputs[LABEL] = tf.cast(raw, tf.float32)
    return outputs
