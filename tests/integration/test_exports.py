"""Every serving format of a tiny trained model of each framework, held to the native model."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pandas as pd
import pytest

from components.export.core import export_pytorch, export_tensorflow, parity_table, serving_bench
from components.export.parity import Limits
from components.training.features import encode, raw_matrix, targets
from tests.unit.test_pytorch_branch import HYPER, data_module, fit

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
    assert set(bench["formats"]) == {*formats, "native_eager"}
    assert bench["onnx_over_eager_batch_1_p50"] > 0
    return table


def test_every_pytorch_format_matches_the_trained_network(cleaned, tmp_path):
    spec, result = fit(data_module(cleaned, tmp_path), tmp_path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy2(result.model_path, model_dir / "best.ckpt")
    description = {"spec": asdict(spec), "hyperparameters": asdict(HYPER)}
    (model_dir / "model.json").write_text(json.dumps(description))
    folder = tmp_path / "exports"
    folder.mkdir()
    frame = serving_rows(cleaned)
    constants = cleaned.preprocessing
    bundle = export_pytorch(model_dir, constants, folder, raw_matrix(frame, constants), 1)
    check_bundle(bundle, frame, constants, {"torchscript", "torch_export", "onnx"})


def test_every_tensorflow_format_matches_the_trained_keras_model(cleaned, tmp_path):
    from components.train_tensorflow.fit import compile_model
    from components.training.spec import MLP, ModelSpec

    constants = cleaned.preprocessing
    train = cleaned.splits["train"]
    x, y = encode(train, constants), targets(train, constants)
    spec = ModelSpec(MLP, input_dim=x.shape[1], outputs=3, depth=1, width=16)
    model = compile_model(spec, HYPER, "classification")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    version = tmp_path / "model" / "1"
    model.save(str(version), save_format="tf")
    frame = serving_rows(cleaned)

    def reference(matrix: np.ndarray) -> np.ndarray:
        # The Keras model on the reference encoding of the same rows (features.encode).
        assert len(matrix) == len(frame)
        return model(encode(frame, constants), training=False).numpy()

    folder = tmp_path / "exports"
    folder.mkdir()
    bundle = export_tensorflow(version, constants, folder, 1, reference)
    formats = {"savedmodel", "tflite", "tflite_dynamic_range", "onnx"}
    check_bundle(bundle, frame, constants, formats)
