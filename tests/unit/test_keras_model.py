"""The Keras builder hits the shared spec's parameter count for every architecture."""

from __future__ import annotations

import numpy as np
import pytest

from components.training.spec import MLP, ModelSpec, parameter_count
from tests.helpers.trials import SPECS


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: f"{s.kind}-d{s.depth}-w{s.width}-in{s.input_dim}"
)
def test_parameter_count_matches_the_spec(spec):
    from components.backends.tensorflow.model import build_model

    task = "classification" if spec.outputs > 1 else "regression"
    model = build_model(spec, task)
    assert model.count_params() == parameter_count(spec)
    out = model(np.zeros((2, spec.input_dim), dtype="float32")).numpy()
    assert out.shape == (2, spec.outputs)
    if task == "classification":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_a_regression_head_answers_in_the_labels_units():
    from components.backends.tensorflow.model import build_model

    spec = ModelSpec(MLP, input_dim=4, outputs=1, depth=1, width=8)
    model = build_model(spec, "regression", target=(150.0, 75.0))
    for weights in model.trainable_weights:
        weights.assign(np.zeros(weights.shape, dtype="float32"))
    np.testing.assert_allclose(model(np.ones((2, 4), dtype="float32")).numpy(), 150.0)
    assert model.count_params() == parameter_count(spec)
