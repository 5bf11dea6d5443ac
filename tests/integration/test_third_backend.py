"""A framework the later stages have never heard of goes through evaluate, export and register.

Three softmax regressions (``tests/helpers/linear_backend.py``), registered as
three backends, are trained on the tiny table's clean splits; the stages run
in this process on their own argument parsers, with an SQLite MLflow store in
``tmp_path``. No edit of any stage, and neither TensorFlow nor torch, is needed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from components import backends
from components.backends.base import EAGER
from components.contracts import (
    load_comparison,
    load_export_manifest,
    load_parity,
    load_registry_record,
    write_json,
)
from components.evaluate import cli as evaluate_cli
from components.export import cli as export_cli
from components.register import cli as register_cli
from tests.helpers.linear_backend import LinearBackend, write_trained

# Three strengths of L2 regularisation: three competitors of one kind.
COMPETITORS = {"linear_free": 0.0, "linear_some": 5.0, "linear_strong": 500.0}
FRAMEWORK_PACKAGES = ("tensorflow", "torch")


def stage(module: object, arguments: list[str]) -> None:
    """Run one stage's ``run`` on a Namespace built by the stage's own parser."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)  # type: ignore[attr-defined]
    run: Callable[[argparse.Namespace], None] = module.run  # type: ignore[attr-defined]
    run(parser.parse_args(arguments))


@pytest.fixture
def project(cleaned, tmp_path, monkeypatch):
    """A working folder with the clean data, three trained models and a smoke params.yaml."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data" / "clean"
    data.mkdir(parents=True)
    for split, frame in cleaned.splits.items():
        frame.to_parquet(data / f"{split}.parquet")
    write_json(data / "preprocessing.json", cleaned.preprocessing)
    (tmp_path / "params.yaml").write_text(
        "train: {metric: val/accuracy, tracking_uri: 'sqlite:///mlflow/mlflow.db'}\n"
        "evaluate: {resamples: 200, latency_repeats: 10}\n"
        "export: {latency_repeats: 10}\n"
        "register: {model_name: auto}\n"
    )
    window = (1_000, 2_000)  # trained side by side
    for name, l2 in COMPETITORS.items():
        backend = LinearBackend(name)
        backends.register(backend)
        write_trained(
            tmp_path / "models",
            tmp_path / "metrics",
            backend,
            cleaned.splits,
            cleaned.preprocessing,
            l2=l2,
            window=window,
        )
    previous = mlflow.get_tracking_uri()
    yield tmp_path
    for name in COMPETITORS:
        backends.unregister(name)
    # Leave no tracking URI or experiment of this store to later tests in this process.
    mlflow.set_tracking_uri(previous)
    mlflow.tracking.fluent._active_experiment_id = None


def test_a_third_backend_goes_through_evaluate_export_and_register(project: Path):
    loaded_before = set(sys.modules)
    common = ["--params", "params.yaml", "--data-dir", "data/clean"]
    common += ["--preprocessing", "data/clean/preprocessing.json"]
    trained = ["--models", "models", "--metrics", "metrics"]
    stage(
        evaluate_cli,
        [
            *common,
            *trained,
            "--comparison",
            "reports/comparison.json",
            "--report",
            "reports/comparison.md",
            "--figures",
            "reports/figures",
        ],
    )
    comparison = load_comparison(project / "reports" / "comparison.json")
    assert set(comparison.frameworks) == set(COMPETITORS)
    leader = comparison.leader
    assert set(comparison.differences) == set(COMPETITORS) - {leader}
    for name, difference in comparison.differences.items():
        assert (difference.a, difference.b) == (name, leader)
        assert difference.low <= difference.value <= difference.high
        assert difference.p_value is not None  # McNemar's test, as for two
    assert comparison.winner in COMPETITORS and comparison.runner_up in COMPETITORS
    assert comparison.fairness == ()
    report = (project / "reports" / "comparison.md").read_text()
    assert all(f"| {name} |" in report for name in COMPETITORS)  # every framework's row
    assert (project / "reports" / "figures" / "learning_curves.png").is_file()

    stage(
        export_cli,
        [
            *common,
            *trained,
            "--comparison",
            "reports/comparison.json",
            "--out",
            "exports",
            "--parity",
            "reports/parity.json",
            "--serving-bench",
            "reports/serving_bench.json",
        ],
    )
    parity = load_parity(project / "reports" / "parity.json")
    assert parity.passed and parity.framework == comparison.winner
    assert {row.format for row in parity.rows} == {"onnx", EAGER}
    manifest = load_export_manifest(project / "exports")
    assert manifest.framework == comparison.winner
    assert (project / "exports" / manifest.formats["onnx"]).is_file()
    assert manifest.layout.columns == tuple(cleaned_columns(project))
    assert manifest.layout.classes == ("0", "1", "2")

    stage(
        register_cli,
        [
            *common,
            *trained,
            "--exports",
            "exports",
            "--comparison",
            "reports/comparison.json",
            "--report",
            "reports/comparison.md",
            "--parity",
            "reports/parity.json",
            "--serving-dir",
            "serving",
            "--out",
            "reports/registry.json",
        ],
    )
    record = load_registry_record(project / "reports" / "registry.json")
    assert (record.version, record.alias, record.promoted) == ("1", "champion", True)
    assert record.framework == comparison.winner
    assert record.tags["bakeoff.optuna_study"] == f"{comparison.winner}-study"
    assert (project / "serving" / record.model_name / "1" / "model.onnx").is_file()

    imported = {module.split(".")[0] for module in set(sys.modules) - loaded_before}
    assert not imported & set(FRAMEWORK_PACKAGES)


def cleaned_columns(project: Path) -> list[str]:
    from components.contracts import load_constants

    return load_constants(project / "data" / "clean" / "preprocessing.json").feature_order
