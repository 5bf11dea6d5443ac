"""The trained frameworks as the later stages find them: any ``models/<name>/`` with a card.

Each framework's folder holds a ``model.json`` (:class:`components.contracts.ModelCard`)
beside its native artifact, and its training stage wrote ``metrics/<name>.json``.
The card names the backend that loads the artifact; nothing here knows a
framework by name, so a new framework needs no edit of evaluate, export or register.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from components import backends
from components.backends.base import Backend
from components.contracts import (
    MODEL_CARD,
    ModelCard,
    TrainingMetrics,
    load_model_card,
    load_training_metrics,
)
from components.errors import BakeoffError


@dataclass(frozen=True)
class Competitor:
    """One framework's training outputs: its model folder, card and metrics, and its backend."""

    name: str  # the folder's name: how the comparison, exports and registry call it
    folder: Path
    card: ModelCard
    metrics: TrainingMetrics
    backend: Backend


def add_trained_inputs(parser: argparse.ArgumentParser) -> None:
    """The options of the stages that read every trained model (evaluate, export, register)."""
    parser.add_argument("--data-dir", required=True, help="folder of the clean splits")
    parser.add_argument("--preprocessing", required=True, help="the shared constants (JSON)")
    parser.add_argument(
        "--models",
        required=True,
        help="folder of the trained models: every <framework>/ in it with a model.json",
    )
    parser.add_argument(
        "--metrics", required=True, help="folder of the training metrics, <framework>.json each"
    )


def framework_names(models: Path) -> list[str]:
    """The sub-folders of ``models`` that hold a model card, in name order."""
    return sorted(card.parent.name for card in models.glob(f"*/{MODEL_CARD}"))


def competitor(name: str, models: Path, metrics: Path) -> Competitor:
    """Framework ``name``'s model folder and training metrics, checked, and its backend."""
    folder = models / name
    card = load_model_card(folder)
    return Competitor(
        name,
        folder,
        card,
        load_training_metrics(metrics / f"{name}.json"),
        backends.get(card.framework),
    )


def competitors(models: Path, metrics: Path) -> dict[str, Competitor]:
    """Every framework with a model folder under ``models``, by name."""
    names = framework_names(models)
    if not names:
        raise BakeoffError(
            f"{models}: no <framework>/{MODEL_CARD} in it; run the train stages first"
        )
    return {name: competitor(name, models, metrics) for name in names}


def without_model(models: Path, metrics: Path) -> list[str]:
    """Frameworks whose training metrics exist but whose training never saved a model."""
    found = set(framework_names(models))
    return sorted(path.stem for path in metrics.glob("*.json") if path.stem not in found)


def limit_threads(frameworks: dict[str, Competitor], threads: int) -> None:
    """Give each backend ``threads`` inference threads, once, before any model runs."""
    limited: set[str] = set()
    for one in frameworks.values():
        if one.backend.name not in limited:
            one.backend.limit_threads(threads)
            limited.add(one.backend.name)
