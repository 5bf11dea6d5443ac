"""The TensorFlow branch end to end: the real TFX pipeline through ``dvc repro`` on digits.

Smoke budget: 2 trials x 1 epoch. Checks the pushed SavedModel answers
raw-feature requests, MLflow has the parent run with nested trials, a rerun is
fully cached, and anomalies stop the pipeline with the feature named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import run

pytestmark = pytest.mark.slow

TRAIN = [
    "bakeoff",
    "train",
    "--framework",
    "tensorflow",
    "--params",
    "params.yaml",
    "--data-dir",
    "data/clean",
    "--preprocessing",
    "data/clean/preprocessing.json",
    "--model-dir",
    "models/tensorflow",
    "--metrics",
    "metrics/tensorflow.json",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.conftest import smoke_repository

    # oneDNN forced off (bakeoff's default is on; the end-to-end test checks that
    # direction), read back in the trainer's process with TensorFlow's own query.
    repo = smoke_repository(
        tmp_path_factory.mktemp("tfx"), runtime={"tensorflow": {"onednn": False, "threads": 1}}
    )
    first = run(["dvc", "repro", "train@tensorflow"], repo)
    return repo, first


def test_the_runtime_settings_reach_the_trainers_process(trained):
    repo, _ = trained
    runtime = json.loads((repo / "metrics" / "tensorflow.json").read_text())["runtime"]
    assert runtime["declared"]["onednn"] is False
    assert runtime["applied"]["onednn"] is False
    assert runtime["applied"]["intra_op_threads"] == 1
    assert runtime["machine"]["cpu"]


def test_the_pipeline_pushes_a_model_that_answers_raw_features(trained):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    from components.contracts import load_model_card

    repo, first = trained
    assert "train@tensorflow:" in first.stdout
    metrics = json.loads((repo / "metrics/tensorflow.json").read_text())
    assert metrics["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "run": 2}
    assert metrics["blessed"] and metrics["pushed"] and not metrics["cached"]
    assert metrics["parameters"] > 0
    assert 0 <= metrics["test/accuracy"] <= 1
    versions = sorted(p for p in (repo / "models/tensorflow").iterdir() if p.is_dir())
    assert len(versions) == 1
    card = load_model_card(repo / "models/tensorflow")
    assert card.framework == "tensorflow" and card.artifact == versions[0].name
    model = tf.saved_model.load(str(versions[0]))
    test = pd.read_parquet(repo / "data/clean/test.parquet")
    raw = {
        name: tf.constant(test[name].to_numpy(np.float32))
        for name in test.columns
        if name.startswith("pixel_")
    }
    probabilities = model.signatures["serving_raw"](**raw)["probabilities"].numpy()
    assert probabilities.shape == (len(test), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float((probabilities.argmax(axis=1) == test["target"].to_numpy()).mean())
    assert accuracy == pytest.approx(metrics["test/accuracy"], abs=1e-6)

    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    name: tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[name])]))
                    for name in raw
                }
            )
        ).SerializeToString()
        for _, row in test.head(5).iterrows()
    ]
    served = model.signatures["serving_default"](examples=tf.constant(examples))[
        "probabilities"
    ].numpy()
    np.testing.assert_allclose(served, probabilities[:5], atol=1e-6)


def test_mlflow_has_the_parent_run_and_its_nested_trials(trained):
    import mlflow

    repo, _ = trained
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["digits"], output_format="pandas")
    parents = runs[runs["tags.bakeoff.stage"] == "train@tensorflow"]
    assert len(parents) == 1
    parent = parents.iloc[0]
    assert parent["status"] == "FINISHED"
    assert parent["tags.bakeoff.git_commit"]
    assert len(parent["tags.bakeoff.dvc_data_hash"]) == 32
    assert parent["tags.bakeoff.tfx_run_id"]
    assert "metrics.test/accuracy" in runs
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert len(children) == 2
    assert set(children["tags.bakeoff.trial_state"]) == {"COMPLETE"}
    assert children["metrics.val/accuracy"].notna().all()
    artifacts = mlflow.artifacts.list_artifacts(run_id=parent["run_id"], artifact_path="optuna")
    assert {Path(a.path).name for a in artifacts} >= {"optuna_history.png"}


def test_a_rerun_with_unchanged_inputs_executes_no_component(trained):
    repo, _ = trained
    again = run([*TRAIN, "--schema", "schemas/digits.yaml"], repo)
    assert "(cached: nothing was trained again)" in again.stdout
    assert json.loads((repo / "metrics/tensorflow.json").read_text())["cached"] is True
    assert len([p for p in (repo / "models/tensorflow").iterdir() if p.is_dir()]) == 1, (
        "a cached run must not push again"
    )


def test_anomalies_stop_the_pipeline_naming_the_feature(trained):
    repo, _ = trained
    schema = yaml.safe_load((repo / "schemas/digits.yaml").read_text())
    schema["columns"]["pixel_3_3"]["max"] = 4
    (repo / "narrow.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    failed = run([*TRAIN, "--schema", "narrow.yaml"], repo, check=False)
    assert failed.returncode == 1
    line = failed.stderr.strip().splitlines()[-1]
    assert line.startswith("bakeoff train: error: ExampleValidator found ")
    assert "feature 'pixel_3_3': Out-of-range values" in line
    assert len([p for p in (repo / "models/tensorflow").iterdir() if p.is_dir()]) == 1


def test_a_model_below_the_threshold_is_not_pushed(trained):
    repo, _ = trained
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train_tensorflow"]["min_accuracy"] = 0.9999
    (repo / "strict.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    strict = [*TRAIN, "--schema", "schemas/digits.yaml"]
    strict[strict.index("params.yaml")] = "strict.yaml"
    result = run(strict, repo)
    assert "not blessed, not saved" in result.stdout
    metrics = json.loads((repo / "metrics/tensorflow.json").read_text())
    assert metrics["blessed"] is False and metrics["pushed"] is False
    assert len([p for p in (repo / "models/tensorflow").iterdir() if p.is_dir()]) == 1


def test_the_same_pipeline_compiles_for_kubeflow_pipelines_v2(trained):
    repo, _ = trained
    result = run(
        ["bakeoff", "compile-tfx", "--image", "example.org/bakeoff:test", "--output", "kfp.json"],
        repo,
    )
    assert "Kubeflow Pipelines V2 spec -> kfp.json" in result.stdout
    spec = json.loads((repo / "kfp.json").read_text())["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    components = {
        "FileBasedExampleGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    }
    assert components <= set(tasks), sorted(tasks)
    assert any(name.startswith("latest_blessed_model_resolver") for name in tasks)
    executors = spec["deploymentSpec"]["executors"]
    images = {one["container"]["image"] for one in executors.values() if "container" in one}
    assert images == {"example.org/bakeoff:test"}

    def constant(task: str, name: str) -> dict:
        value = tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]
        return json.loads(value["stringValue"])

    # The project's parameters, as the local run has them.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    job = constant("Trainer", "custom_config")["job"]
    assert job["tuning"]["trials"] == params["train"]["trials"] == 2
    assert job["tuning"]["epochs"] == params["train"]["epochs"]
    assert constant("Transform", "custom_config")["constants"]["dataset"] == "digits"
    change = constant("Evaluator", "eval_config")["metrics_specs"][0]["metrics"][1]["threshold"]
    assert change["change_threshold"]["absolute"] == -params["train_tensorflow"]["max_drop"]
