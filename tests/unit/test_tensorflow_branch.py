"""The TensorFlow branch's pieces without a pipeline: Transform parity, one trial, divergence."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import optuna
import pandas as pd
import pytest

from components.backends.base import SplitArrays
from components.contracts import SPLITS, Constants
from components.training import features
from components.training.search import Hyperparams
from components.training.spec import MLP, ModelSpec
from components.training.study import Diverged
from tests.helpers.trials import HYPER, fit_settings


def test_transform_applies_exactly_the_shared_constants(cleaned):
    import tensorflow as tf

    from components.backends.tensorflow.transform_module.preprocessing import (
        INPUTS,
        LABEL,
        preprocessing_fn,
    )

    constants = cleaned.preprocessing
    test = cleaned.splits["test"].copy()
    test.loc[test.index[0], "colour"] = (
        "purple"  # not in the vocabulary: the out-of-vocabulary slot
    )
    test.loc[test.index[1], "x2"] = np.nan  # a gap at serving time: the train median
    raw = {
        name: tf.constant(
            test[name].to_numpy().reshape(-1, 1).astype(np.float32 if name != "colour" else object)
        )
        for name in ("x1", "x2", "colour")
    }
    raw["label"] = tf.constant(test["label"].to_numpy().reshape(-1, 1))
    out = preprocessing_fn(raw, {"constants": constants.to_dict()})
    expected = features.encode(test, constants)
    assert np.abs(out[INPUTS].numpy() - expected).max() <= 1e-5
    assert out[INPUTS].numpy()[0, -1] == 1.0  # 'purple'
    np.testing.assert_array_equal(out[LABEL].numpy(), features.targets(test, constants))


def arrays(cleaned):
    c = cleaned.preprocessing
    parts = [cleaned.splits[name] for name in SPLITS]
    return SplitArrays(
        *[fn(part, c) for part in parts for fn in (features.encode, features.targets)]
    )


def fit(data, tmp_path, hyper=HYPER, number=3, **overrides):
    from components.backends.tensorflow.fit import fit_trial

    spec = ModelSpec(MLP, input_dim=data.x_train.shape[1], outputs=3, depth=1, width=16)
    trial = optuna.trial.FixedTrial({}, number=number)
    settings = fit_settings(tmp_path, **overrides)
    return fit_trial(trial, hyper, spec, data=data, settings=settings)


def test_one_trial_trains_saves_and_reports_per_epoch(cleaned, tmp_path):
    result = fit(arrays(cleaned), tmp_path)
    assert result.epochs == 3
    assert result.model_path == tmp_path / "trial-0003.keras"
    assert result.model_path.exists()
    assert result.value == max(result.history["val/accuracy"])
    for name in ("train/loss", "train/accuracy", "val/loss", "val/accuracy"):
        assert len(result.history[name]) == 3, f"{name}: one value per epoch"


def test_a_diverging_trial_raises_diverged(cleaned, tmp_path):
    data = arrays(cleaned)
    huge = SplitArrays(
        data.x_train * 1e30, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test
    )
    wild = Hyperparams(10.0, 16, 1, 16, 0.0, 1e-5, "sgd", "relu")
    with pytest.raises(Diverged, match="training loss became nan"):
        fit(huge, tmp_path, wild, number=0)


def test_tfmd_schema_keeps_bakeoff_columns_out_of_the_features(cleaned):
    from tensorflow_metadata.proto.v0 import schema_pb2

    from components.backends.tensorflow.tfx_schema import tfmd_schema

    proto = tfmd_schema(cleaned.schema)
    by_name = {feature.name: feature for feature in proto.feature}
    assert by_name["x1"].type == schema_pb2.FLOAT
    assert by_name["x1"].float_domain.max == pytest.approx(cleaned.schema.columns["x1"].maximum)
    assert by_name["colour"].type == schema_pb2.BYTES
    assert by_name["label"].int_domain.max == 2
    assert by_name["_row_key"].lifecycle_stage == schema_pb2.DEBUG_ONLY


def test_parquet_executor_keeps_zeros():
    from components.backends.tensorflow.parquet_executor import to_example

    example = to_example({"x": 0.0, "n": 0, "s": "", "missing": None})
    feature = example.features.feature
    assert list(feature["x"].float_list.value) == [0.0]
    assert list(feature["n"].int64_list.value) == [0]
    assert list(feature["s"].bytes_list.value) == [b""]
    assert feature["missing"].WhichOneof("kind") is None


def test_row_groups_encode_to_the_per_row_examples(tmp_path):
    import pyarrow.parquet as pq
    import tensorflow as tf

    from components.backends.tensorflow.parquet_executor import to_example, to_examples

    frame = pd.DataFrame(
        {
            "x": [0.0, 1.5, np.nan, -2.25],
            "n": [0, 3, -1, 7],
            "flag": [True, False, True, False],
            "s": ["", "a", None, "é"],
            "small": pd.array([1, None, 3, 0], dtype="Int8"),
            "kind": pd.Categorical(["b", "a", "b", None]),
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    table = pq.read_table(tmp_path / "t.parquet")
    encoded = [tf.train.Example.FromString(serialized) for serialized in to_examples(table)]
    assert encoded == [to_example(row) for row in table.to_pylist()]
    assert encoded[2].features.feature["x"].WhichOneof("kind") is None  # a gap stays missing
    assert to_examples(table.slice(0, 0)) == []


def test_encode_layout():
    constants = Constants.from_dict(
        {
            "task": "classification",
            "numeric": ["a"],
            "categorical": ["c"],
            "stats": {"a": {"mean": 1.0, "std": 2.0, "scale": 2.0}},
            "impute": {"a": 5.0, "c": "x"},
            "vocabularies": {"c": ["x", "y"]},
            "label": {"name": "l", "classes": [0, 1]},
        }
    )
    frame = pd.DataFrame({"a": [3.0, np.nan], "c": ["y", "zz"]})
    np.testing.assert_allclose(features.encode(frame, constants), [[1.0, 0, 1, 0], [2.0, 0, 0, 1]])
    assert features.input_dim(constants) == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"min_accuracy": "high"},
            "train_tensorflow.min_accuracy: expected a number >= 0.0; found 'high'",
        ),
        ({"cache": 1}, "train_tensorflow.cache: expected true or false; found 1"),
    ],
)
def test_bad_tensorflow_params_name_the_key(raw, message):
    from components.errors import ParamsError
    from components.training.driver import FrameworkParams
    from pipelines.tfx_runner import TfxParams

    with pytest.raises(ParamsError, match=message):
        FrameworkParams.from_section(raw, "tensorflow")
        TfxParams.from_section(raw)


def test_a_cnn_without_image_features_is_refused(tmp_path, cleaned):
    import argparse
    import json

    import yaml

    from components.errors import ParamsError
    from pipelines.train import run as train

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"architecture": "cnn"}}))
    (tmp_path / "pre.json").write_text(json.dumps(cleaned.preprocessing.to_dict()))
    args = argparse.Namespace(
        framework="tensorflow",
        params=str(tmp_path / "params.yaml"),
        data_dir=str(tmp_path),
        preprocessing=str(tmp_path / "pre.json"),
        schema="unused.yaml",
        model_dir=str(tmp_path / "m"),
        metrics=str(tmp_path / "m.json"),
    )
    with pytest.raises(
        ParamsError,
        match=r"train.architecture: cnn needs image features \(ingest.image_shape\); found none",
    ):
        train(args)
