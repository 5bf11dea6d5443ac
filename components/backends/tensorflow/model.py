"""Keras (tf-keras, the Keras 2 that TFX 1.16 and TF Transform use) models from the shared spec."""

from __future__ import annotations

from typing import Any

from components.training.spec import CNN, ModelSpec


def keras() -> Any:
    """The tf-keras module; imported on use so that importing this file stays cheap."""
    import tf_keras

    return tf_keras


def build_model(
    spec: ModelSpec, task: str, l2: float = 0.0, target: tuple[float, float] | None = None
) -> Any:
    """A Keras model taking the dense preprocessed input vector (``input_dim`` floats).

    Classification ends in a softmax over ``spec.outputs`` classes, regression in
    one linear unit, both in float32 even under mixed precision. ``l2`` penalises
    every weight and bias (see ``fit.compile_model``). ``target`` (the train
    split's label mean and deviation) makes a regression head predict
    ``mean + std * z``, so the network learns a standardised target while the
    model still answers in the label's units; it adds no parameters.
    """
    k = keras()
    penalty = (
        {"kernel_regularizer": k.regularizers.l2(l2), "bias_regularizer": k.regularizers.l2(l2)}
        if l2
        else {}
    )
    inputs = k.Input(shape=(spec.input_dim,), name="inputs", dtype="float32")
    x = inputs
    if spec.kind == CNN:
        assert spec.image_shape is not None
        x = k.layers.Reshape((*spec.image_shape, 1))(x)
        for filters, pooled in spec.conv_blocks():
            x = k.layers.Conv2D(filters, 3, padding="same", activation=spec.activation, **penalty)(
                x
            )
            if pooled:
                x = k.layers.MaxPooling2D(2)(x)
        x = k.layers.Flatten()(x)
        x = k.layers.Dropout(spec.dropout)(x)
        x = k.layers.Dense(spec.width, activation=spec.activation, **penalty)(x)
    else:
        for units in spec.hidden_units():
            x = k.layers.Dense(units, activation=spec.activation, **penalty)(x)
            x = k.layers.Dropout(spec.dropout)(x)
    if task == "classification":
        outputs = k.layers.Dense(
            spec.outputs, activation="softmax", name="probabilities", dtype="float32", **penalty
        )(x)
    else:
        outputs = k.layers.Dense(1, dtype="float32", **penalty)(x)
        mean, std = target or (0.0, 1.0)
        outputs = k.layers.Rescaling(std or 1.0, offset=mean, name="value", dtype="float32")(
            outputs
        )
    return k.Model(inputs, outputs)
