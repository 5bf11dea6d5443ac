"""The export stage's core: hold every format of the winner to its reference, time each, describe them.

The backend writes the formats (:meth:`components.backends.base.Backend.export`);
this module is the same for every framework. Nothing is written unless every
export passes its parity check; the caller stages the folder, so a failed
check leaves the last good exports in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from components.backends.base import EAGER, Bundle, batched
from components.contracts import Constants, ExportManifest, ModelCard, ServingLayout
from components.errors import BakeoffError
from components.evaluate.latency import method, time_interleaved
from components.export.parity import Limits, Parity, check
from components.training.features import target_scale

ONNX = "onnx"  # the format register scores and serve answers with; every backend writes it
EAGER_RUNTIME = "the framework's own model called eagerly"


class ParityError(BakeoffError):
    """An export does not reproduce the native model closely enough."""


def parity_table(
    bundle: Bundle,
    matrix: np.ndarray,
    truth: np.ndarray,
    *,
    task: str,
    metric: str,
    limits: Limits,
    scale: float = 1.0,
) -> list[Parity]:
    """Every export (and the eager model) against the reference, on every test row."""
    native = batched(bundle.reference, matrix)
    return [
        check(
            name,
            native,
            batched(call, matrix),
            truth,
            task=task,
            metric=metric,
            quantised=name in bundle.quantised,
            limits=limits,
            scale=scale,
        )
        for name, call in bundle.runtimes.items()
    ]


def output_scale(constants: Constants) -> float:
    """What a float export's difference is measured in: the label's deviation for regression."""
    scale = target_scale(constants)
    return float(scale[1]) if scale and scale[1] > 0 else 1.0


def failures(table: list[Parity]) -> list[Parity]:
    """The rows that broke their limit."""
    return [row for row in table if not row.passed]


def describe_failure(framework: str, failed: list[Parity]) -> str:
    """One line naming each failed export and by how much it missed."""
    parts = [
        f"{row.format}: max |diff| {row.max_abs_diff:.3g}, {row.metric} {row.exported:.4f} "
        f"against {row.native:.4f} (limit: {row.limit})"
        for row in failed
    ]
    return f"{framework} export parity failed, nothing written: " + "; ".join(parts)


def check_bundle(name: str, bundle: Bundle, folder: Path) -> None:
    """Refuse a bundle the later stages cannot use: no ONNX file, or a file outside ``folder``."""
    if ONNX not in bundle.files:
        raise BakeoffError(
            f"export: {name}'s backend ({bundle.framework}) wrote no '{ONNX}' format; "
            "register scores and serve answers with the ONNX file"
        )
    for format_name, path in bundle.files.items():
        if not path.resolve().is_relative_to(folder.resolve()):
            raise BakeoffError(
                f"export: {name}'s backend wrote its '{format_name}' format to {path}, "
                f"outside the export folder {folder}"
            )


def runtime_name(bundle: Bundle, name: str) -> str:
    """What serves format ``name``, as the backend describes it."""
    return bundle.runtime_names.get(name) or (EAGER_RUNTIME if name == EAGER else name)


def serving_bench(
    bundle: Bundle,
    matrix: np.ndarray,
    threads: int,
    repeats: int,
    *,
    rounds: int = 5,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Batch-1 p50/p99 and batch-256 throughput of every timed format in its own runtime.

    The formats are timed together, interleaved over ``rounds`` rounds; every
    figure, and ONNX over eager, carries a bootstrap interval over the rounds.
    """
    timed = {name: call for name, call in bundle.runtimes.items() if name not in bundle.untimed}
    timings = time_interleaved(timed, matrix, repeats=repeats, rounds=rounds)
    profiles = timings.summary(level=level, seed=seed)
    formats = {name: {"runtime": runtime_name(bundle, name), **profiles[name]} for name in timed}
    ratio, interval = None, None
    if ONNX in formats and EAGER in formats:
        paired = timings.ratio_interval(ONNX, EAGER, level=level, seed=seed)
        ratio, interval = paired.value, [paired.low, paired.high]
    return {
        "framework": bundle.framework,
        "threads": threads,
        "test_rows": len(matrix),
        "rounds": rounds,
        "level": level,
        "method": method(rounds, level),
        "formats": formats,
        "onnx_over_eager_batch_1_p50": ratio,
        "onnx_over_eager_batch_1_p50_interval": interval,
        # Checked for parity, not timed: their runtime answers from another process.
        "untimed": sorted(bundle.untimed & set(bundle.runtimes)),
    }


def manifest(
    name: str,
    bundle: Bundle,
    card: ModelCard,
    folder: Path,
    table: list[Parity],
    source: Mapping[str, Any],
) -> ExportManifest:
    """What the export folder holds, how to call each file, and the model card's layout."""
    return ExportManifest(
        framework=name,
        formats={fmt: path.relative_to(folder).as_posix() for fmt, path in bundle.files.items()},
        source=dict(source),
        layout=ServingLayout.of_card(card),
        backend=card.framework,
        runtimes={fmt: runtime_name(bundle, fmt) for fmt in bundle.files},
        quantised=frozenset(bundle.quantised & set(bundle.files)),
        parity_reference=bundle.reference_name,
        parity=tuple(table),
    )
