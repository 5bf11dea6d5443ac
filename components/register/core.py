"""The register stage's core: gate the winner against the champion, register it, push it.

The gate scores the champion and the new model with the same runtime (ONNX
Runtime, on each version's ONNX artifact) on the current test split, so a
champion of any framework can be compared with a winner of any, and tests the
new model's improvement row by row (:mod:`components.register.gate`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components import params
from components.backends.base import batched, onnx_runtime
from components.contracts import (
    CHAMPION_PENDING,
    Comparison,
    Constants,
    ContractError,
    ExportManifest,
    ModelCard,
    ServingLayout,
    TrainingMetrics,
    read_json,
    write_json,
)
from components.errors import BakeoffError, ParamsError
from components.evaluate import metrics as scoring
from components.evaluate.stats import Interval, Resampling, paired_bootstrap, per_row
from components.export.parity import metric_of
from components.register.gate import CHAMPION, Decision, decide
from components.training import tracking
from components.training.features import raw_matrix

ONNX_PATH = "onnx"  # artifact folder of each registered version's run
TAG_TRAINING_RUN = "bakeoff.training_run"
TAG_COMPARISON_RUN = "bakeoff.comparison_run"
TAG_ALIAS = "bakeoff.gate"


@dataclass(frozen=True)
class RegisterParams:
    """The ``register`` section of params.yaml, unpacked."""

    model_name: str
    min_improvement: float  # in the metric's units, better-is-positive
    resamples: int = 2000  # evaluate.resamples, evaluate.level, evaluate.seed: the
    level: float = 0.95  # one setting of every bootstrap of the verdict
    seed: int = 0

    @classmethod
    def from_section(
        cls, raw: Mapping[str, Any], dataset: str, evaluate: Mapping[str, Any] | None = None
    ) -> RegisterParams:
        """The section, checked; ``model_name: auto`` is ``bakeoff-<dataset>``."""
        name = raw.get("model_name", "auto")
        if not isinstance(name, str) or not name.strip():
            raise ParamsError("register.model_name", f"expected a name or auto; found {name!r}")
        if "tolerance" in raw:
            raise ParamsError(
                "register.tolerance",
                "replaced by register.min_improvement (the gate now promotes only a shown "
                "improvement, never a loss within a tolerance); rename it",
            )
        resampling = Resampling.from_section(evaluate or {})
        return cls(
            model_name=f"bakeoff-{dataset}" if name == "auto" else name,
            min_improvement=params.number(
                raw.get("min_improvement", 0.0), "register.min_improvement", 0.0, finite=True
            ),
            resamples=resampling.resamples,
            level=resampling.level,
            seed=resampling.seed,
        )


@dataclass(frozen=True)
class Scored:
    """A model's score on the current test split, or why it has none."""

    score: float | None
    version: str | None = None
    unscorable: str | None = None


class Unscorable(BakeoffError):
    """A registered model that cannot be scored on today's data, and why."""


def score_export(
    onnx_file: Path,
    manifest: Mapping[str, Any],
    frame: pd.DataFrame,
    constants: Constants,
) -> np.ndarray:
    """An export's outputs (its ONNX file, through ONNX Runtime) on the raw rows of ``frame``."""
    try:
        layout = ServingLayout.from_manifest(manifest, onnx_file.parent / "manifest.json")
    except ContractError as error:
        raise Unscorable(f"has a manifest this version cannot read ({error})") from None
    if sorted(layout.columns) != sorted(constants.feature_order):
        raise Unscorable("takes other input columns than today's data")
    if constants.classification:
        if layout.classes != tuple(str(c) for c in constants.label.classes):
            raise Unscorable("predicts other classes than today's data has")
    elif layout.classification:
        raise Unscorable("is not a regression model")
    # Today's rows, laid out with the version's own columns and vocabularies.
    own = replace(
        constants,
        numeric=layout.numeric,
        categorical=layout.categorical,
        vocabularies=layout.vocabularies,
    )
    call = onnx_runtime(onnx_file, threads=1)
    return batched(call, raw_matrix(frame, own))


def champion_outputs(
    client: Any, name: str, answer: Callable[[Path, Mapping[str, Any]], np.ndarray]
) -> tuple[Scored, np.ndarray | None]:
    """The current champion on today's test split: its version, and its outputs or why none.

    ``answer`` takes the champion's ONNX file and its parsed manifest. The
    score is left for :func:`gate` to fill in.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return Scored(None), None
    number = str(version.version)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            folder = Path(client.download_artifacts(version.run_id, ONNX_PATH, scratch))
            manifest = read_json(folder / "manifest.json", f"the register stage (version {number})")
        except (MlflowException, OSError, BakeoffError) as error:
            return Scored(
                None, number, f"(version {number}) has no readable ONNX artifact: {error}"
            ), None
        try:
            return Scored(None, number), answer(folder / "model.onnx", manifest)
        except Unscorable as reason:
            return Scored(None, number, f"(version {number}) {reason}"), None


@dataclass(frozen=True)
class Gated:
    """The gate's decision with the figures it rests on."""

    decision: Decision
    score: float  # the new model's metric on today's test split
    champion: Scored  # with its score when it had outputs
    improvement: Interval | None  # new over champion, better-is-positive


def gate(
    task: str,
    metric: str,
    new: np.ndarray,
    champion: tuple[Scored, np.ndarray | None],
    truth: np.ndarray,
    own: RegisterParams,
) -> Gated:
    """Score both on today's rows and decide: promoted only on a shown improvement."""
    scored, outputs = champion
    score = metric_of(task, metric, new, truth)
    improvement = None
    if outputs is not None:
        scored = replace(scored, score=metric_of(task, metric, outputs, truth))
        new_rows, old_rows = per_row(metric, new, truth), per_row(metric, outputs, truth)
        better, worse = (
            (new_rows, old_rows) if scoring.HIGHER_IS_BETTER[metric] else (old_rows, new_rows)
        )
        improvement = paired_bootstrap(
            better,
            worse,
            root=metric == "rmse",
            resamples=own.resamples,
            level=own.level,
            seed=own.seed,
        )
    decision = decide(
        score,
        scored.score,
        improvement,
        metric=f"test/{metric}",
        min_improvement=own.min_improvement,
        champion_version=scored.version,
        unscorable=scored.unscorable,
    )
    return Gated(decision, score, scored, improvement)


def champion_line(decision: Decision, before: Scored, version: str, framework: str) -> str:
    """The verdict's last line, once the gate has decided (a Markdown list item)."""
    if not decision.moves_alias:
        held = f"version {before.version}" if before.version else "none yet"
        return (
            f"- **Champion**: unchanged ({held}); version {version} ({framework}) is registered "
            f"without an alias: {decision.reason.removeprefix('no alias moved: ')}."
        )
    if decision.promote:
        return (
            f"- **Champion**: version {version} ({framework}) takes over: "
            f"{decision.reason.removeprefix('promoted: ')}."
        )
    evidence = decision.reason.split(" as champion: ", 1)[-1]
    return (
        f"- **Champion**: unchanged (version {before.version}); version {version} ({framework}) "
        f"is registered as {decision.alias}: {evidence}."
    )


def with_champion(report: str, line: str) -> str:
    """The evaluate stage's report with its pending champion line replaced by ``line``."""
    if CHAMPION_PENDING not in report:
        return report + "\n" + line + "\n"
    return report.replace(CHAMPION_PENDING, line, 1)


def description(comparison: Comparison, decision: Decision) -> str:
    """The registered version's description: the comparison summary and the gate's reason."""
    lines = [
        f"Winner of the {comparison.dataset} bake-off: {comparison.winner}. {comparison.reason}."
    ]
    for name, values in sorted(comparison.frameworks.items()):
        lines.append(
            f"{name}: {comparison.metric} {values.score:.4f}, batch-1 p50 "
            f"{values.latency_ms:.3f} ms, {values.size_bytes:,} bytes."
        )
    difference = comparison.difference
    if difference is not None:
        lines.append(
            f"{difference.a} - {difference.b}: {difference.value:+.4f}, "
            f"{difference.level:.0%} CI [{difference.low:+.4f}, {difference.high:+.4f}]"
            + (f"; McNemar p = {difference.p_value:.3g}" if difference.p_value is not None else "")
            + "."
        )
    if comparison.fairness:
        lines.append("Fairness rules broken: " + "; ".join(comparison.fairness) + ".")
    lines.append(f"Gate: {decision.reason}.")
    return "\n".join(lines)


def push(
    exports: Path, manifest: ExportManifest, serving_dir: Path, name: str, version: str
) -> Path:
    """Copy the exports to ``<serving_dir>/<name>/<version>/``; an existing version is never replaced.

    A SavedModel goes at the top of the version folder, where model servers look
    for it; every other format (a file, or a folder such as TF.js's model.json and
    shards, which keeps its name) and the manifest lie beside it.
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
        pushed = {}
        for format_name, relative in manifest.formats.items():
            source = exports / relative
            if source.is_dir() and (source / "saved_model.pb").is_file():
                shutil.copytree(source, staging, dirs_exist_ok=True)
                pushed[format_name] = "."
            elif source.is_dir():
                shutil.copytree(source, staging / source.name)
                pushed[format_name] = source.name
            else:
                shutil.copy2(source, staging / source.name)
                pushed[format_name] = source.name
        write_json(staging / "manifest.json", replace(manifest, formats=pushed))
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def version_tags(
    trained: TrainingMetrics, card: ModelCard, comparison: Comparison, framework: str, root: Path
) -> dict[str, str]:
    """Tags linking a registered version to its code, data, runs, study and trial.

    All from files: the framework's training metrics and model card, and the comparison.
    """
    return {
        tracking.TAG_COMMIT: tracking.git_commit(root),
        tracking.TAG_DATA_HASH: trained.data_hash,
        tracking.TAG_FRAMEWORK: framework,
        tracking.TAG_STUDY: trained.study or card.study,
        tracking.TAG_TRIAL: str(trained.best_trial),
        TAG_TRAINING_RUN: trained.mlflow_run_id,
        TAG_COMPARISON_RUN: comparison.mlflow_run_id,
        **tracking.experiment_tags(),
    }
