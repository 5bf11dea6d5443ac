"""The register stage's core: gate the winner against the champion, register it, push it.

The gate scores the champion and the new model with the same runtime (ONNX
Runtime, on each version's ONNX artifact) on the current test split, so a
champion of either framework can be compared with a winner of either.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.errors import BakeoffError
from components.evaluate import metrics as scoring
from components.evaluate.models import batched
from components.export.parity import metric_of
from components.export.runtimes import onnx_runtime
from components.register.gate import CHAMPION, Decision, decide
from components.training import tracking
from components.training.features import feature_order, raw_matrix, targets

ONNX_PATH = "onnx"  # artifact folder of each registered version's run
TAG_TRAINING_RUN = "bakeoff.training_run"
TAG_COMPARISON_RUN = "bakeoff.comparison_run"
TAG_ALIAS = "bakeoff.gate"


@dataclass(frozen=True)
class RegisterParams:
    """The ``register`` section of params.yaml, unpacked."""

    model_name: str
    tolerance: float


@dataclass(frozen=True)
class Scored:
    """A model's score on the current test split, or why it has none."""

    score: float | None
    version: str | None = None
    unscorable: str | None = None


class Unscorable(BakeoffError):
    """A registered model that cannot be scored on today's data, and why."""


def serving_inputs(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The input description of an export's manifest, in the shape ``raw_matrix`` reads.

    Each version is scored with its own vocabularies: a retrain on new data
    may order a categorical feature's values differently.
    """
    columns = list(manifest["input"]["columns"])
    categorical = dict(manifest["input"].get("categorical") or {})
    return {
        "numeric": [c for c in columns if c not in categorical],
        "categorical": [c for c in columns if c in categorical],
        "vocabularies": categorical,
    }


def score_export(
    onnx_file: Path,
    manifest: Mapping[str, Any],
    frame: pd.DataFrame,
    constants: Mapping[str, Any],
    metric: str,
) -> float:
    """``metric`` of an export (its ONNX file, through ONNX Runtime) on the raw rows of ``frame``."""
    if sorted(manifest["input"]["columns"]) != sorted(feature_order(constants)):
        raise Unscorable("takes other input columns than today's data")
    task = constants["task"]
    if task == "classification":
        classes = [str(c) for c in constants["label"]["classes"]]
        if manifest["output"].get("probabilities") != classes:
            raise Unscorable("predicts other classes than today's data has")
    elif "value" not in manifest["output"]:
        raise Unscorable("is not a regression model")
    matrix = raw_matrix(frame, serving_inputs(manifest))
    call = onnx_runtime(onnx_file, threads=1)
    return metric_of(task, metric, batched(call, matrix), targets(frame, constants))


def champion_score(
    client: Any, name: str, score: Callable[[Path, Mapping[str, Any]], float]
) -> Scored:
    """The current champion's score on today's test split; none when there is no champion.

    ``score`` takes the champion's ONNX file and its manifest.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return Scored(None)
    number = str(version.version)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            folder = Path(client.download_artifacts(version.run_id, ONNX_PATH, scratch))
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (MlflowException, OSError, ValueError) as error:
            return Scored(
                None, number, f"(version {number}) has no readable ONNX artifact: {error}"
            )
        try:
            return Scored(score(folder / "model.onnx", manifest), number)
        except Unscorable as reason:
            return Scored(None, number, f"(version {number}) {reason}")


def gate(new: float, champion: Scored, *, metric: str, tolerance: float) -> Decision:
    """The gate's decision for the new model's score against the champion's."""
    return decide(
        new,
        champion.score,
        metric=f"test/{metric}",
        higher_is_better=scoring.HIGHER_IS_BETTER[metric],
        tolerance=tolerance,
        relative=metric in ("rmse", "mae"),
        champion_version=champion.version,
        unscorable=champion.unscorable,
    )


def description(comparison: Mapping[str, Any], decision: Decision) -> str:
    """The registered version's description: the comparison summary and the gate's reason."""
    lines = [
        f"Winner of the {comparison['dataset']} bake-off: {comparison['winner']}. {comparison['reason']}."
    ]
    metric = comparison["metric"].split("/", 1)[1]
    for name, values in sorted(comparison["frameworks"].items()):
        latency = values["latency"]["batch_1"]["p50_ms"]
        lines.append(
            f"{name}: {comparison['metric']} {values['test'][metric]:.4f}, batch-1 p50 {latency:.3f} ms, {values['size_bytes']:,} bytes."
        )
    difference = comparison["difference"]
    low, high = difference["interval"]
    lines.append(
        f"{difference['a']} - {difference['b']}: {difference['value']:+.4f}, "
        f"{difference['level']:.0%} CI [{low:+.4f}, {high:+.4f}]"
        + (
            f"; McNemar p = {difference['mcnemar']['p_value']:.3g}"
            if "mcnemar" in difference
            else ""
        )
        + "."
    )
    if comparison.get("fairness"):
        lines.append("Fairness rules broken: " + "; ".join(comparison["fairness"]) + ".")
    lines.append(f"Gate: {decision.reason}.")
    return "\n".join(lines)


def push(
    exports: Path, manifest: Mapping[str, Any], serving_dir: Path, name: str, version: str
) -> Path:
    """Copy the exports to ``<serving_dir>/<name>/<version>/``; an existing version is never replaced.

    A TensorFlow SavedModel goes at the top of the version folder, where
    TF Serving looks; every other format and the manifest lie beside it.
    """
    target = serving_dir / name / version
    if target.exists():
        raise BakeoffError(
            f"{target}: version {version} of {name} was already pushed; the serving "
            "directory never overwrites a version (was the registry reset?)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
    try:
        for entry in manifest["formats"].values():
            source = exports / entry["path"]
            if source.is_dir():
                shutil.copytree(source, staging, dirs_exist_ok=True)
            else:
                shutil.copy2(source, staging / source.name)
        pushed = json.loads(json.dumps(manifest))
        for entry in pushed["formats"].values():
            source = exports / entry["path"]
            entry["path"] = "." if source.is_dir() else source.name
        (staging / "manifest.json").write_text(json.dumps(pushed, indent=2) + "\n")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def version_tags(
    training_run: Any, comparison: Mapping[str, Any], framework: str, root: Path
) -> dict[str, str]:
    """Tags linking a registered version to its code, data, runs, study and trial."""
    tags = training_run.data.tags
    return {
        tracking.TAG_COMMIT: tracking.git_commit(root),
        tracking.TAG_DATA_HASH: tags.get(tracking.TAG_DATA_HASH, ""),
        tracking.TAG_FRAMEWORK: framework,
        tracking.TAG_STUDY: tags.get(tracking.TAG_STUDY, ""),
        tracking.TAG_TRIAL: str(comparison["frameworks"][framework]["best_trial"]),
        TAG_TRAINING_RUN: training_run.info.run_id,
        TAG_COMPARISON_RUN: comparison.get("mlflow_run_id") or "",
    }
