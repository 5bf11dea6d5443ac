"""The PyTorch branch's pieces: data module, module builder, serving model, one trial, divergence."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest
import torch

from components.backends.pytorch.data import SplitDataModule, chunk_rows
from components.backends.pytorch.fit import load_network
from components.backends.pytorch.model import build_network, trainable_parameters
from components.backends.pytorch.serving import RawFeatureModel
from components.training import features
from components.training.features import raw_matrix
from components.training.search import Hyperparams
from components.training.spec import MLP, ModelSpec, parameter_count
from components.training.study import Diverged
from tests.helpers.trials import HYPER, SPECS, data_module, fit, splits_on_disk


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: f"{s.kind}-d{s.depth}-w{s.width}-in{s.input_dim}"
)
def test_parameter_count_equals_the_keras_models(spec):
    from components.backends.tensorflow.model import build_model

    task = "classification" if spec.outputs > 1 else "regression"
    network = build_network(spec, task)
    assert trainable_parameters(network) == parameter_count(spec)
    assert trainable_parameters(network) == build_model(spec, task).count_params()
    out = network(torch.zeros(2, spec.input_dim))
    assert out.shape == ((2, spec.outputs) if task == "classification" else (2,))


def test_weights_start_as_keras_starts_them():
    network = build_network(ModelSpec(MLP, input_dim=64, outputs=10, depth=1, width=128), "task")
    first = network[0]
    limit = np.sqrt(6 / (64 + 128))  # Glorot uniform
    assert first.weight.abs().max() <= limit
    assert first.weight.abs().max() > 0.9 * limit
    assert not first.bias.any()


def test_a_regression_head_answers_in_the_labels_units():
    network = build_network(
        ModelSpec(MLP, input_dim=4, outputs=1, depth=1, width=8), "regression", (150.0, 75.0)
    )
    for parameter in network.parameters():
        torch.nn.init.zeros_(parameter)
    assert network(torch.ones(3, 4)).tolist() == [150.0, 150.0, 150.0]


def test_the_data_module_feeds_the_reference_encoding(cleaned, tmp_path):
    arrays = splits_on_disk(cleaned, tmp_path)
    data = SplitDataModule(arrays, batch_size=7, seed=3)
    for split in ("train", "val", "test"):
        x, y = data.tensors(split)
        expected = features.encode(cleaned.splits[split], cleaned.preprocessing)
        assert np.abs(x.numpy() - expected).max() <= 1e-5
        np.testing.assert_array_equal(
            y.numpy(), features.targets(cleaned.splits[split], cleaned.preprocessing)
        )
    loader = data.train_dataloader()  # Lightning iterates one loader for every epoch
    chunks = list(loader)
    size = chunk_rows(7)
    assert size % 7 == 0 and size > 7  # whole mini-batches, several per chunk
    assert [len(c[0]) for c in chunks[:-1]] == [size] * (len(chunks) - 1)
    seen = torch.cat([c[1] for c in chunks])
    assert sorted(seen.tolist()) == sorted(data.tensors("train")[1].tolist())
    again = torch.cat([c[1] for c in loader])
    assert not torch.equal(seen, again), "each epoch draws a new order"
    replay = SplitDataModule(arrays, batch_size=7, seed=3)
    assert torch.equal(torch.cat([c[1] for c in replay.train_dataloader()]), seen), (
        "the order is fixed by the seed"
    )


def test_the_serving_model_preprocesses_raw_features_as_the_reference(cleaned):
    constants = cleaned.preprocessing
    test = cleaned.splits["test"].copy()
    test.loc[test.index[0], "colour"] = "purple"  # out of vocabulary
    test.loc[test.index[1], "x2"] = np.nan  # a numeric gap: the train median
    test.loc[test.index[2], "colour"] = None  # a categorical gap: the most frequent value
    model = RawFeatureModel(torch.nn.Identity(), dataclasses.replace(constants, task="regression"))
    out = model.preprocess(torch.from_numpy(raw_matrix(test, constants)))
    expected = features.encode(test, constants)
    assert np.abs(out.numpy() - expected).max() <= 1e-5
    assert out[0, -1] == 1.0


def test_the_serving_model_answers_probabilities(cleaned):
    constants = cleaned.preprocessing
    spec = ModelSpec(MLP, input_dim=features.input_dim(constants), outputs=3, depth=1, width=8)
    model = RawFeatureModel(build_network(spec, "classification"), constants)
    probabilities = model(torch.from_numpy(raw_matrix(cleaned.splits["val"], constants)))
    np.testing.assert_allclose(probabilities.sum(dim=1).detach().numpy(), 1.0, rtol=1e-5)


def test_one_trial_trains_checkpoints_and_reports_per_epoch(cleaned, tmp_path):
    data = data_module(cleaned, tmp_path)
    spec, result = fit(data, tmp_path)
    assert result.epochs == 3
    assert result.model_path == tmp_path / "trials" / "trial-0003" / "best.ckpt"
    assert result.value == max(result.history["val/accuracy"])
    for name in ("train/loss", "val/loss", "val/accuracy"):
        assert len(result.history[name]) == 3, f"{name}: one value per epoch"
    assert result.examples_per_s > 0
    # The checkpoint holds the best epoch: reloaded, it scores the trial's value.
    network = load_network(result.model_path, spec, HYPER, "classification", None)
    x, y = data.tensors("val")
    accuracy = float((network(x).argmax(dim=1) == y).float().mean())
    assert accuracy == pytest.approx(result.value, abs=1e-6)


def test_early_stopping_ends_a_trial_that_stops_improving(cleaned, tmp_path):
    frozen = Hyperparams(1e-12, 16, 1, 16, 0.0, 1e-6, "sgd", "relu")
    _, result = fit(data_module(cleaned, tmp_path), tmp_path, frozen, epochs=20, patience=2)
    assert result.epochs == 3  # the first epoch, then two without improvement


def test_a_diverging_trial_raises_diverged(cleaned, tmp_path):
    wild = Hyperparams(10.0, 16, 1, 16, 0.0, 1e-5, "sgd", "relu")
    with pytest.raises(Diverged, match="training loss became nan"):
        fit(data_module(cleaned, tmp_path, scale=1e30), tmp_path, wild)


def test_the_head_stays_in_float32_under_mixed_precision():
    network = build_network(
        ModelSpec(MLP, input_dim=4, outputs=1, depth=1, width=8), "regression", (250_000.0, 1e5)
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = network(torch.randn(3, 4))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    logits = build_network(SPECS[0], "classification")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert logits(torch.randn(2, 64)).dtype == torch.float32


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"workers": 0}, "train_pytorch.workers: expected a whole number >= 1"),
        ({"min_accuracy": "high"}, "train_pytorch.min_accuracy: expected a number >= 0.0"),
    ],
)
def test_bad_pytorch_params_name_the_key(raw, message):
    from components.errors import ParamsError
    from components.training.driver import FrameworkParams

    with pytest.raises(ParamsError, match=message):
        FrameworkParams.from_section(raw, "pytorch")
