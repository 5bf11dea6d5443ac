"""The TensorFlow.js export: the real converter (.venv-tfjs) and @tensorflow/tfjs in Node.js.

A tiny Keras model goes through the same plain-tensor module (``raw_module``)
and SavedModel as the TFLite and ONNX exports; Node.js answers on every test
row within the tfjs tolerance, and a perturbed input or model breaks it, so
the check can fail.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest

from components.errors import BakeoffError
from components.export.parity import Limits, check
from components.training.features import raw_matrix, targets
from tests.helpers.trials import fitted_keras_mlp

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # params.yaml export.tolerances.tfjs


@pytest.fixture(scope="module")
def converted(cleaned, tmp_path_factory):
    """A fitted tiny Keras MLP saved as TFX saves it, its serving module and TF.js graph model."""
    import tensorflow as tf

    from components.backends.tensorflow import export as tf_export
    from components.backends.tensorflow import tfjs

    constants = cleaned.preprocessing
    model = fitted_keras_mlp(cleaned, epochs=2)
    folder = tmp_path_factory.mktemp("tfjs")
    # The TFX Trainer tracks the Transform layer, with tables over vocabulary
    # files, on the model it pushes; the converter cannot freeze a SavedModel
    # that carries them, so the export must leave them behind (load_keras).
    vocabulary = folder / "vocabulary.txt"
    vocabulary.write_text("blue\nred\n")
    model.tft_layer = _lookup_module(tf, str(vocabulary))
    model.save(str(folder / "pushed"), save_format="tf")
    module = tf_export.raw_module(tf_export.load_keras(folder / "pushed"), constants)
    saved = tf_export.save(module, folder)
    return module, tfjs.convert(saved, folder)


def _lookup_module(tf, path):
    """A tracked module with a file-backed table, as TF Transform's layer has."""

    class Lookup(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.asset = tf.saved_model.Asset(path)
            initializer = tf.lookup.TextFileInitializer(
                self.asset,
                tf.string,
                tf.lookup.TextFileIndex.WHOLE_LINE,
                tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER,
            )
            self.table = tf.lookup.StaticHashTable(initializer, -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, names):
            return self.table.lookup(names)

    return Lookup()


def serving_matrix(cleaned) -> np.ndarray:
    """The test split's serving matrix plus a gap and a category never seen in training."""
    constants = cleaned.preprocessing
    matrix = raw_matrix(cleaned.splits["test"], constants)
    odd = matrix[:2].copy()
    odd[0, 0] = np.nan
    odd[1, -1] = 99.0  # one-hot's unknown slot
    return np.concatenate([matrix, odd])


def parity(name, native, exported, truth):
    return check(
        name,
        native,
        exported,
        truth,
        task="classification",
        metric="accuracy",
        quantised=False,
        limits=Limits(tolerances={name: TOLERANCE}),
    )


def test_tfjs_in_node_matches_the_keras_model_and_the_check_can_fail(cleaned, converted):
    from components.backends.tensorflow import tfjs
    from components.backends.tensorflow.export import eager_runtime

    module, folder = converted
    model = json.loads((folder / tfjs.MODEL).read_text())
    assert model["format"] == "graph-model"
    assert list(model["signature"]["inputs"]) == ["inputs"]
    matrix = serving_matrix(cleaned)
    truth = np.concatenate([targets(cleaned.splits["test"], cleaned.preprocessing), [0, 0]])
    native = eager_runtime(module)(matrix)
    run = tfjs.runtime(folder)

    exported = run(matrix)
    row = parity("tfjs", native, exported, truth)
    assert exported.shape == native.shape == (len(matrix), 3)
    assert row.passed and row.argmax_agreement == 1.0, row
    assert row.limit == f"max |diff| <= {TOLERANCE:g}"
    assert run(matrix[:1]).shape == (1, 3)

    # A shifted column reaches the softmax: the same check fails.
    shifted = matrix.copy()
    shifted[:, 0] += 0.5
    assert not parity("tfjs", native, run(shifted), truth).passed

    # So does a perturbed weight in the converted model's shard (a new runtime loads it).
    perturb_first_kernel(folder)
    assert not parity("tfjs", native, tfjs.runtime(folder)(matrix), truth).passed


def perturb_first_kernel(folder) -> None:
    """Add 0.05 to the first float32 matrix among the graph model's weights."""
    manifest = json.loads((folder / "model.json").read_text())["weightsManifest"]
    (group,) = manifest
    (shard,) = group["paths"]  # a tiny model is one shard
    data = bytearray((folder / shard).read_bytes())
    offset = 0
    for weight in group["weights"]:
        count = int(np.prod(weight["shape"])) if weight["shape"] else 1
        size = count * {"float32": 4, "int32": 4}[weight["dtype"]]
        if weight["dtype"] == "float32" and len(weight["shape"]) == 2:
            values = np.frombuffer(bytes(data[offset : offset + size]), "<f4") + 0.05
            data[offset : offset + size] = values.astype("<f4").tobytes()
            (folder / shard).write_bytes(bytes(data))
            return
        offset += size
    raise AssertionError(f"no float32 matrix among {[w['name'] for w in group['weights']]}")


def test_a_broken_model_fails_in_one_line(tmp_path):
    from components.backends.tensorflow import tfjs

    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(BakeoffError, match=r"^export: node parity.mjs failed \(exit 2\): ") as err:
        tfjs.runtime(tmp_path)(np.zeros((2, 3), np.float32))
    message = str(err.value)
    assert message.endswith(
        "model.json: expected a TF.js graph model (modelTopology, weightsManifest)"
    )
    assert "\n" not in message


def test_missing_tools_stop_before_anything_is_written(tmp_path, monkeypatch):
    from components.backends.tensorflow import export as tf_export
    from components.backends.tensorflow import tfjs

    monkeypatch.setattr(tfjs, "CONVERTER", tfjs.ROOT / ".venv-tfjs" / "bin" / "absent")
    monkeypatch.setenv("PATH", str(tmp_path))  # no node
    with pytest.raises(BakeoffError) as err:
        tf_export.export(object(), tmp_path)
    message = str(err.value)
    assert message.startswith("export: the TensorFlow.js export needs the converter .venv-tfjs/")
    assert "Node.js (`node` is not on PATH)" in message
    assert message.endswith("run `make setup`, or set export.skip_formats: [tfjs] in params.yaml")
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []
