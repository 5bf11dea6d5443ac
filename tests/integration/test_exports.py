"""Every serving format of a tiny trained model of each framework, held to the native model."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import asdict

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pandas as pd
import pytest
import torch

from components import backends
from components.backends.base import onnx_runtime
from components.contracts import MODEL_CARD, Label, ModelCard, TrainingMetrics, write_json
from components.export.core import ParityError, output_scale, parity_table, serving_bench
from components.export.parity import Limits, check
from components.training.features import encode, raw_matrix, targets
from tests.helpers.trials import HYPER, data_module, fit, fitted_keras_mlp

pytestmark = pytest.mark.slow


def serving_rows(cleaned) -> pd.DataFrame:
    """The test split plus a row with a gap and one with a category never seen in training."""
    test = cleaned.splits["test"]
    odd = test.head(2).copy()
    odd["x1"] = [np.nan, odd["x1"].iloc[1]]
    odd["colour"] = ["red", "purple"]
    return pd.concat([test, odd], ignore_index=True)


def check_bundle(bundle, frame, constants, formats):
    matrix, truth = raw_matrix(frame, constants), targets(frame, constants)
    assert set(bundle.files) == formats
    assert all(path.exists() for path in bundle.files.values())
    table = parity_table(
        bundle, matrix, truth, task="classification", metric="accuracy", limits=Limits()
    )
    assert {row.format for row in table} == {*formats, "native_eager"}
    for row in table:
        assert row.passed, row
        assert row.rows == len(frame)
        if not row.quantised:
            assert row.max_abs_diff <= 1e-4 and row.argmax_agreement == 1.0
    for call in bundle.runtimes.values():  # one request of one row, too
        assert np.asarray(call(matrix[:1])).shape == (1, 3)
    bench = serving_bench(bundle, matrix, threads=1, repeats=10)
    assert set(bench["formats"]) == {*formats, "native_eager"} - bundle.untimed
    assert bench["untimed"] == sorted(bundle.untimed)
    formats_timed = bench["formats"]
    assert bench["onnx_over_eager_batch_1_p50"] == pytest.approx(
        formats_timed["onnx"]["batch_1"]["p50_ms"]
        / formats_timed["native_eager"]["batch_1"]["p50_ms"]
    )
    return table


def pytorch_model_dir(cleaned, tmp_path):
    """A tiny trained PyTorch stage output, saved by the backend: ``model.pt2``, checkpoint, card."""
    spec, result = fit(data_module(cleaned, tmp_path), tmp_path)
    backend, constants = backends.get("pytorch"), cleaned.preprocessing
    model_dir = tmp_path / "models" / "pytorch"
    model_dir.mkdir(parents=True)
    network = backend.load_best(result.model_path, spec, HYPER, constants)
    artifact, described = backend.save(network, constants, model_dir, result.model_path)
    card = ModelCard.describe(
        constants,
        framework="pytorch",
        artifact=artifact,
        format=described,
        spec=asdict(spec),
        hyperparameters=asdict(HYPER),
    )
    write_json(model_dir / MODEL_CARD, card)
    return model_dir, card


def test_every_pytorch_format_matches_the_trained_network(cleaned, tmp_path):
    model_dir, card = pytorch_model_dir(cleaned, tmp_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    frame = serving_rows(cleaned)
    constants = cleaned.preprocessing
    # Held to the stage's model.pt2, as the export stage does.
    bundle = backends.get("pytorch").export(
        card, model_dir, constants, folder, raw_matrix(frame, constants), 1
    )
    check_bundle(bundle, frame, constants, {"torchscript", "torch_export", "onnx"})


def test_a_failed_parity_check_leaves_the_last_exports_and_reports(cleaned, tmp_path):
    from components.export import cli

    model_dir, _ = pytorch_model_dir(cleaned, tmp_path)
    data = tmp_path / "clean"
    data.mkdir()
    cleaned.splits["test"].to_parquet(data / "test.parquet")
    write_json(tmp_path / "preprocessing.json", cleaned.preprocessing)
    comparison = {
        "winner": "pytorch",
        "metric": "test/accuracy",
        "higher_is_better": True,
        "frameworks": {"pytorch": {"test": {"accuracy": 0.5}}},
    }
    write_json(tmp_path / "comparison.json", comparison)
    (tmp_path / "metrics").mkdir()
    trained = TrainingMetrics(
        framework="pytorch",
        metric="val/accuracy",
        best_val=0.5,
        best_trial=0,
        best_params={},
        best_epochs=1,
        best_fit_seconds=0.0,
        train_examples_per_s=0.0,
        parameters=1,
        training_seconds=0.0,
        test={"accuracy": 0.5},
        trials={"run": 1},
        blessed=True,
        pushed=True,
        mlflow_run_id="r",
    )
    write_json(tmp_path / "metrics" / "pytorch.json", trained)
    outputs = {"out": tmp_path / "exports", "parity": tmp_path / "parity.json"}
    outputs["serving_bench"] = tmp_path / "bench.json"
    arguments = argparse.Namespace(
        params=str(tmp_path / "params.yaml"),
        comparison=str(tmp_path / "comparison.json"),
        framework="winner",
        data_dir=str(data),
        preprocessing=str(tmp_path / "preprocessing.json"),
        models=str(model_dir.parent),
        metrics=str(tmp_path / "metrics"),
        **{key: str(path) for key, path in outputs.items()},
    )
    (tmp_path / "params.yaml").write_text("export: {latency_repeats: 10}\n")
    cli.run(arguments)
    before = {path: path.read_bytes() for path in tmp_path.glob("exports/*")}
    before |= {path: path.read_bytes() for path in outputs.values() if path.is_file()}
    assert len(before) == 6  # manifest, three formats, two reports
    # No float export is bit-exact through ONNX Runtime: a zero tolerance must fail.
    (tmp_path / "params.yaml").write_text("export: {float_tolerance: 0.0}\n")
    with pytest.raises(ParityError, match="pytorch export parity failed, nothing written: onnx"):
        cli.run(arguments)
    after = {path: path.read_bytes() for path in tmp_path.glob("exports/*")}
    after |= {path: path.read_bytes() for path in outputs.values() if path.is_file()}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exports")]


def test_every_tensorflow_format_matches_the_trained_keras_model(cleaned, tmp_path):
    from components.backends.tensorflow.backend import formats
    from components.backends.tensorflow.export import load_keras, raw_module

    constants = cleaned.preprocessing
    model = fitted_keras_mlp(cleaned, epochs=3)
    version = tmp_path / "model" / "1"
    model.save(str(version), save_format="tf")
    frame = serving_rows(cleaned)

    def reference(matrix: np.ndarray) -> np.ndarray:
        # The Keras model on the reference encoding of the same rows (features.encode).
        assert len(matrix) == len(frame)
        return model(encode(frame, constants), training=False).numpy()

    folder = tmp_path / "exports"
    folder.mkdir()
    module = raw_module(load_keras(version), constants)
    bundle = formats(module, folder, 1, reference, "the Keras model on the reference encoding")
    formats = {"savedmodel", "tflite", "tflite_dynamic_range", "onnx", "tfjs"}
    check_bundle(bundle, frame, constants, formats)
    # TF.js in Node.js is held to parity but not timed (a process per call).
    assert bundle.untimed == {"tfjs"} and bundle.skipped == frozenset()
    assert (folder / "tfjs" / "model.json").is_file()


def test_tfjs_can_be_skipped_and_says_so(cleaned, tmp_path):
    from components.backends.tensorflow.backend import formats
    from components.backends.tensorflow.export import raw_module
    from components.backends.tensorflow.fit import compile_model
    from components.training.spec import MLP, ModelSpec

    constants = cleaned.preprocessing
    width = encode(cleaned.splits["train"], constants).shape[1]
    model = compile_model(
        ModelSpec(MLP, input_dim=width, outputs=3, depth=1, width=4), HYPER, "classification"
    )
    module = raw_module(model, constants)
    bundle = formats(module, tmp_path, 1, lambda m: m, "unused", skip=frozenset({"tfjs"}))
    assert "tfjs" not in bundle.files and "tfjs" not in bundle.runtimes
    assert bundle.skipped == {"tfjs"} and bundle.untimed == frozenset()
    assert not (tmp_path / "tfjs").exists()


def test_regression_exports_answer_one_named_value_per_row(cleaned, tmp_path):
    import onnx

    from components.backends.pytorch import export as pt_export
    from components.backends.pytorch.model import build_network
    from components.backends.pytorch.serving import RawFeatureModel
    from components.training.spec import MLP, ModelSpec

    # A regression model in the label's units (prices in the thousands).
    constants = dataclasses.replace(
        cleaned.preprocessing, task="regression", label=Label("y", mean=2000.0, std=300.0)
    )
    frame = serving_rows(cleaned)
    matrix = raw_matrix(frame, constants)
    spec = ModelSpec(MLP, input_dim=encode(frame, constants).shape[1], outputs=1, depth=1, width=8)
    model = RawFeatureModel(build_network(spec, "regression", (2000.0, 300.0)), constants).eval()
    files = pt_export.export(model, matrix, tmp_path)

    (output,) = onnx.load(str(files["onnx"])).graph.output
    assert output.name == "value"
    with torch.inference_mode():
        native = model(torch.from_numpy(matrix)).numpy()
    exported = onnx_runtime(files["onnx"], 1)(matrix)
    assert exported.shape == native.shape == (len(frame),)
    truth = native.reshape(-1) + 1.0
    row = check(
        "onnx",
        native,
        exported,
        truth,
        task="regression",
        metric="rmse",
        quantised=False,
        limits=Limits(),
        scale=output_scale(constants),
    )
    assert row.passed, row
    assert row.exported == pytest.approx(1.0, abs=1e-3)
