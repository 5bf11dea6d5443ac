"""The champion gate against a real MLflow Model Registry (SQLite, in tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from components.register import core
from components.register.gate import CHALLENGER, CHAMPION

COLUMNS = ["a", "b"]
MATRIX = np.array([[2.0, 0.0], [0.0, 2.0], [3.0, 1.0], [1.0, 3.0]], dtype=np.float32)
TRUTH = np.array([0, 1, 0, 1])


def onnx_model(folder: Path, weights: list[list[float]], columns: list[str]) -> Path:
    """A two-class softmax over a fixed linear map, exported to ONNX with its manifest."""
    folder.mkdir(parents=True)
    layer = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weights))
    model = torch.nn.Sequential(layer, torch.nn.Softmax(dim=1))
    torch.onnx.export(
        model,
        (torch.from_numpy(MATRIX),),
        str(folder / "model.onnx"),
        input_names=["inputs"],
        output_names=["probabilities"],
        dynamic_axes={"inputs": {0: "batch"}},
        dynamo=False,
    )
    (folder / "manifest.json").write_text(json.dumps({"input": {"columns": columns}}))
    return folder


def score(path: Path) -> float:
    return core.score_onnx(path, MATRIX, TRUTH, "classification", "accuracy")


@pytest.fixture
def client(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # Artifacts in tmp_path too: MLflow's default root is ./mlruns in the working folder.
    mlflow.create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("gate")
    return mlflow.MlflowClient(uri)


def register(client, folder: Path, alias: str) -> str:
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), core.ONNX_PATH)
        mlflow.log_text("placeholder", "model/MLmodel")
    version = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("m", alias, version.version)
    return str(version.version)


def test_the_gate_reads_the_champion_from_the_registry(client, tmp_path):
    client.create_registered_model("m")
    assert core.champion_score(client, "m", COLUMNS, score) == core.Scored(None)

    right = onnx_model(tmp_path / "right", [[1.0, 0.0], [0.0, 1.0]], COLUMNS)  # all 4 right
    assert score(right / "model.onnx") == 1.0
    version = register(client, right, CHAMPION)
    champion = core.champion_score(client, "m", COLUMNS, score)
    assert champion == core.Scored(1.0, version)

    wrong = onnx_model(tmp_path / "wrong", [[0.0, 1.0], [1.0, 0.0]], COLUMNS)  # all 4 wrong
    kept = core.gate(score(wrong / "model.onnx"), champion, metric="accuracy", tolerance=0.005)
    assert (kept.promote, kept.alias) == (False, CHALLENGER)
    assert f"kept version {version} as champion" in kept.reason
    promoted = core.gate(0.997, champion, metric="accuracy", tolerance=0.005)
    assert (promoted.promote, promoted.alias) == (True, CHAMPION)


def test_a_champion_trained_on_other_columns_is_replaced(client, tmp_path):
    client.create_registered_model("m")
    register(client, onnx_model(tmp_path / "old", [[1.0, 0.0], [0.0, 1.0]], ["x", "y"]), CHAMPION)
    champion = core.champion_score(client, "m", COLUMNS, score)
    assert champion.score is None and "other input columns" in champion.unscorable
    decision = core.gate(0.1, champion, metric="accuracy", tolerance=0.0)
    assert decision.promote and "other input columns" in decision.reason


def test_push_never_overwrites_a_version(tmp_path):
    exports = tmp_path / "exports"
    onnx_model(exports, [[1.0, 0.0], [0.0, 1.0]], COLUMNS)
    manifest = {"formats": {"onnx": {"path": "model.onnx"}}}
    target = core.push(exports, manifest, tmp_path / "serving", "m", "1")
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "model.onnx"]
    with pytest.raises(core.BakeoffError, match="never overwrites"):
        core.push(exports, manifest, tmp_path / "serving", "m", "1")
    assert [p.name for p in (tmp_path / "serving" / "m").iterdir()] == ["1"]
