"""The champion gate against a real MLflow Model Registry (SQLite, in tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from components.contracts import Constants, ExportManifest, ServingLayout, load_export_manifest
from components.register import core
from components.register.gate import CHALLENGER, CHAMPION

# Today's data: the label is 0 for red and 1 for blue; 'blue' is now the
# most frequent colour, so it comes first in today's vocabulary.
FRAME = pd.DataFrame(
    {"a": [1.0, 2.0, 3.0, 4.0], "colour": ["red", "blue", "red", "blue"], "label": [0, 1, 0, 1]}
)
CONSTANTS = Constants.from_dict(
    {
        "task": "classification",
        "numeric": ["a"],
        "categorical": ["colour"],
        "stats": {"a": {"mean": 2.5, "std": 1.1, "scale": 1.1}},
        "vocabularies": {"colour": ["blue", "red"]},
        "impute": {"a": 2.5, "colour": "blue"},
        "label": {"name": "label", "classes": [0, 1]},
    }
)


def onnx_model(folder: Path, blue: int, vocabulary: list[str], columns=("a", "colour")) -> Path:
    """A classifier answering ``blue`` for position ``vocabulary.index('blue')``, else the other class."""
    folder.mkdir(parents=True)
    blue_position = float(vocabulary.index("blue"))
    sign = 1.0 if blue == 1 else -1.0

    class Model(torch.nn.Module):
        def forward(self, raw):
            is_blue = (raw[:, 1:2] == blue_position).float()
            logit = sign * (10 * is_blue - 5)  # class 1 when blue (or not blue, sign -1)
            return torch.softmax(torch.cat([-logit, logit], dim=1), dim=1)

    torch.onnx.export(
        Model(),
        (torch.zeros(2, 2),),
        str(folder / "model.onnx"),
        input_names=["inputs"],
        output_names=["probabilities"],
        dynamic_axes={"inputs": {0: "batch"}},
        dynamo=False,
    )
    manifest = {
        "input": {"columns": list(columns), "categorical": {"colour": vocabulary}},
        "output": {"probabilities": ["0", "1"]},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


TRUTH = FRAME["label"].to_numpy()
OWN = core.RegisterParams("m", min_improvement=0.0, resamples=200)


def answer(onnx_file: Path, manifest):
    return core.score_export(onnx_file, manifest, FRAME, CONSTANTS)


def outputs(folder: Path):
    return answer(folder / "model.onnx", json.loads((folder / "manifest.json").read_text()))


def gate(new, champion):
    return core.gate("classification", "accuracy", new, champion, TRUTH, OWN)


@pytest.fixture
def client(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # Artifacts in tmp_path too: MLflow's default root is ./mlruns in the working folder.
    mlflow.create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("gate")
    client = mlflow.MlflowClient(uri)
    client.create_registered_model("m")
    return client


def register(client, folder: Path, alias: str) -> str:
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder), core.ONNX_PATH)
    version = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("m", alias, version.version)
    return str(version.version)


def test_the_gate_reads_the_champion_from_the_registry(client, tmp_path):
    assert core.champion_outputs(client, "m", answer) == (core.Scored(None), None)
    right = onnx_model(tmp_path / "right", blue=1, vocabulary=["blue", "red"])
    wrong = onnx_model(tmp_path / "wrong", blue=0, vocabulary=["blue", "red"])
    version = register(client, wrong, CHAMPION)
    champion = core.champion_outputs(client, "m", answer)
    assert champion[0] == core.Scored(None, version)

    # The same model again is a tie: the champion stays, the new version is a challenger.
    kept = gate(outputs(wrong), champion)
    assert (kept.decision.promote, kept.decision.alias) == (False, CHALLENGER)
    assert f"kept version {version} as champion" in kept.decision.reason
    assert kept.champion == core.Scored(0.0, version) and kept.score == 0.0
    # Right on every row where the champion is wrong: shown better, promoted.
    promoted = gate(outputs(right), champion)
    assert (promoted.decision.promote, promoted.decision.alias) == (True, CHAMPION)
    assert promoted.improvement is not None and promoted.improvement.low == 1.0


def test_the_champion_is_scored_with_its_own_vocabulary(client, tmp_path):
    # Trained when red came first: with today's positions it would get every row wrong.
    old = onnx_model(tmp_path / "old", blue=1, vocabulary=["red", "blue"])
    version = register(client, old, CHAMPION)
    gated = gate(outputs(old), core.champion_outputs(client, "m", answer))
    assert gated.champion == core.Scored(1.0, version)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"input": {"columns": ["x", "colour"], "categorical": {}}}, "other input columns"),
        ({"output": {"probabilities": ["0", "1", "2"]}}, "other classes"),
        ({"output": {"scores": ["0", "1"]}}, "a manifest this version cannot read"),
    ],
)
def test_a_champion_that_cannot_read_todays_data_is_replaced(client, tmp_path, change, reason):
    folder = onnx_model(tmp_path / "old", blue=1, vocabulary=["blue", "red"])
    manifest = json.loads((folder / "manifest.json").read_text()) | change
    (folder / "manifest.json").write_text(json.dumps(manifest))
    register(client, folder, CHAMPION)
    champion = core.champion_outputs(client, "m", answer)
    assert champion[1] is None and reason in champion[0].unscorable
    new = onnx_model(tmp_path / "new", blue=1, vocabulary=["blue", "red"])
    decision = gate(outputs(new), champion).decision
    assert decision.promote and reason in decision.reason


def test_push_never_overwrites_a_version(tmp_path):
    exports = onnx_model(tmp_path / "exports", blue=1, vocabulary=["blue", "red"])
    saved = exports / "saved_model"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"pb")
    web = exports / "tfjs"  # a folder format that is not a SavedModel keeps its folder
    web.mkdir()
    (web / "model.json").write_text("{}")
    manifest = ExportManifest(
        framework="any",
        formats={"onnx": "model.onnx", "savedmodel": "saved_model", "tfjs": "tfjs"},
        source={},
        layout=ServingLayout(("a", "colour"), {"colour": ("blue", "red")}, classes=("0", "1")),
    )
    target = core.push(exports, manifest, tmp_path / "serving", "m", "1")
    names = sorted(p.name for p in target.iterdir())
    assert names == ["manifest.json", "model.onnx", "saved_model.pb", "tfjs"]  # TF Serving layout
    assert (target / "tfjs" / "model.json").is_file()
    pushed = load_export_manifest(target)
    assert pushed.formats == {"onnx": "model.onnx", "savedmodel": ".", "tfjs": "tfjs"}
    assert pushed.layout == manifest.layout
    with pytest.raises(core.BakeoffError, match="never overwrites"):
        core.push(exports, manifest, tmp_path / "serving", "m", "1")
    assert [p.name for p in (tmp_path / "serving" / "m").iterdir()] == ["1"]
