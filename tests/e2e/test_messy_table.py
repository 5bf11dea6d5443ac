"""A table as people export it, through the whole graph under its own column names.

``tests.helpers.messy.messy_frame`` writes headers with spaces, parentheses,
slashes, a pair that collides after sanitising (``a b``, ``a_b``), a pair
differing only in case and a unicode name, among other kinds of columns. The
smoke run goes through both trainers, evaluate, the winner's exports and the
registry; the other framework is exported explicitly, so both frameworks'
exports hold parity; then ``bakeoff serve`` answers a request keyed by the
original names.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from components.contracts import load_constants, load_model_card
from tests.conftest import SMOKE, run, smoke_repository, stage_env
from tests.helpers.messy import messy_frame

pytestmark = pytest.mark.slow

#: Headers a spreadsheet or database can produce that no framework takes as they are.
AWKWARD = ("Body Mass (g)", "Culmen Length (mm)", "a b", "a_b", "Flipper", "flipper", "Île")


def test_a_messy_table_runs_end_to_end_under_its_own_names(tmp_path):
    repo = smoke_repository(
        tmp_path,
        ingest={
            "name": "messy",
            "source": "file",
            "path": "data/landing/messy.csv",
            "label": "Species",
            "image_shape": None,
        },
        train={**SMOKE["train"], "epochs": 2},
        refit={**SMOKE["refit"], "repeats": 1},
        evaluate={"seeds": 1},
        # Smoke models are not good models: this tests the names, not the quality bars.
        train_tensorflow={"min_accuracy": 0.0, "max_drop": 1.0},
        train_pytorch={"min_accuracy": 0.0},
    )
    (repo / "data/landing").mkdir(parents=True, exist_ok=True)
    messy_frame(400, seed=0).to_csv(repo / "data/landing/messy.csv", index=False)

    run(["bakeoff", "run"], repo)

    constants = load_constants(repo / "data/clean/preprocessing.json")
    assert set(AWKWARD) <= set(constants.features)
    schema = (repo / "schemas/messy.yaml").read_text(encoding="utf-8")
    assert "Body Mass (g):" in schema
    for framework in ("tensorflow", "pytorch"):
        card = load_model_card(repo / "models" / framework)
        assert card.columns == tuple(constants.feature_order)
        internal = card.internal_names
        # Told apart inside every framework, where case does not count (SavedModel signatures).
        assert len({name.lower() for name in internal.values()}) == len(internal)
        assert internal["a_b"] == "a_b" and internal["flipper"] == "flipper"

    comparison = json.loads((repo / "reports/comparison.json").read_text())
    other = next(name for name in comparison["frameworks"] if name != comparison["winner"])
    run(
        [
            "bakeoff",
            "export",
            "--comparison",
            "reports/comparison.json",
            "--data-dir",
            "data/clean",
            "--preprocessing",
            "data/clean/preprocessing.json",
            "--models",
            "models",
            "--metrics",
            "metrics",
            "--framework",
            other,
            "--out",
            "exports_other",
            "--parity",
            "reports/parity_other.json",
            "--serving-bench",
            "reports/serving_bench_other.json",
        ],
        repo,
    )
    for folder, parity in (("exports", "parity.json"), ("exports_other", "parity_other.json")):
        rows = json.loads((repo / "reports" / parity).read_text())["rows"]
        assert rows and all(row["passed"] for row in rows), rows
        manifest = json.loads((repo / folder / "manifest.json").read_text())
        assert manifest["input"]["columns"] == constants.feature_order
        assert set(manifest["input"]["internal_names"]) == set(constants.feature_order)

    check_the_registered_model_takes_the_original_names(repo, constants)
    check_tf_examples_use_the_original_names(repo, constants)
    check_serve_answers_the_original_names(repo, constants)


def check_the_registered_model_takes_the_original_names(repo, constants) -> None:
    """The MLflow signature and input example name the users' columns; predict takes them."""
    import mlflow

    record = json.loads((repo / "reports/registry.json").read_text())
    uri = f"models:/{record['model_name']}/{record['version']}"
    test = pd.read_parquet(repo / "data/clean/test.parquet").head(6)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    try:
        info = mlflow.models.get_model_info(uri)
        answer = np.asarray(mlflow.pyfunc.load_model(uri).predict(test[constants.feature_order]))
    finally:
        mlflow.set_tracking_uri(previous)
    assert info.signature.inputs.input_names() == constants.feature_order
    assert info.saved_input_example_info is not None
    assert answer.shape == (6, len(constants.label.classes))
    np.testing.assert_allclose(answer.sum(axis=1), 1.0, atol=1e-4)


def check_tf_examples_use_the_original_names(repo, constants) -> None:
    """TF Serving's signature parses tf.Examples keyed by the users' names; both signatures agree."""
    import tensorflow as tf

    card = load_model_card(repo / "models/tensorflow")
    model = tf.saved_model.load(str(repo / "models/tensorflow" / card.artifact))
    test = pd.read_parquet(repo / "data/clean/test.parquet").head(8)
    examples = []
    for _, row in test.iterrows():
        feature = {}
        for name in constants.numeric:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[row[name]]))
        for name in constants.categorical:
            value = str(row[name]).encode()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        examples.append(example.SerializeToString())
    parsed = model.signatures["serving_default"](examples=tf.constant(examples))
    raw = {
        card.internal_names[name]: tf.constant(
            test[name].to_numpy(np.float32) if name in constants.numeric else test[name].astype(str)
        )
        for name in constants.feature_order
    }
    direct = model.signatures["serving_raw"](**raw)
    np.testing.assert_allclose(
        parsed["probabilities"].numpy(), direct["probabilities"].numpy(), atol=1e-6
    )


def check_serve_answers_the_original_names(repo, constants) -> None:
    """``bakeoff serve`` lists the original names and answers a request keyed by them."""
    record = json.loads((repo / "reports/registry.json").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "bakeoff",
            "serve",
            "--tracking-uri",
            f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}",
            "--model-name",
            record["model_name"],
            "--port",
            str(port),
        ],
        cwd=repo,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        metadata = wait_for_metadata(server, port)
        assert metadata["input"]["columns"] == constants.feature_order
        test = pd.read_parquet(repo / "data/clean/test.parquet").head(3)
        records = json.loads(test[constants.feature_order].to_json(orient="records"))
        assert set(AWKWARD) <= set(records[0])
        body = json.dumps({"records": records}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    classes = {str(value) for value in constants.label.classes}
    assert [prediction["class"] in classes for prediction in answer["predictions"]] == [True] * 3


def wait_for_metadata(server: subprocess.Popen, port: int, limit_s: float = 120) -> dict:
    """``GET /metadata`` once the server answers."""
    deadline = time.monotonic() + limit_s
    while True:
        assert server.poll() is None, f"bakeoff serve exited ({server.returncode})"
        try:
            url = f"http://127.0.0.1:{port}/metadata"
            return json.loads(urllib.request.urlopen(url, timeout=10).read())
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "bakeoff serve did not answer"
            time.sleep(1)
