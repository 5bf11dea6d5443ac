"""The model users get: raw features in, probabilities (or the value) out.

The shared preprocessing runs inside the module, in tensor operations that
TorchScript, ``torch.export`` and ONNX all take: gaps are filled with the
imputation values, numeric features standardised, categorical features
one-hot encoded with an out-of-vocabulary slot.

Input: the serving matrix of ``components.training.features.raw_matrix``: the
numeric features as they are (NaN for a gap), then each categorical feature as
its position in the vocabulary (``constants.vocabularies``); NaN is a gap
and any other position is out of vocabulary. ``raw_matrix`` builds it from
a table of raw values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from components.contracts import Constants


class RawFeatureModel(nn.Module):
    """The trained network with the shared preprocessing in front and softmax behind."""

    fill: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    fill_positions: torch.Tensor

    def __init__(self, network: nn.Module, constants: Constants) -> None:
        super().__init__()
        numeric = list(constants.numeric)
        categorical = list(constants.categorical)
        impute, stats = constants.impute, constants.stats
        vocabularies = constants.vocabularies
        self.network = network
        self.classification = constants.classification
        self.numeric = len(numeric)
        self.sizes = [len(vocabularies[name]) for name in categorical]
        self.register_buffer("fill", _floats([impute[name] for name in numeric]))
        self.register_buffer("mean", _floats([stats[name].mean for name in numeric]))
        self.register_buffer("scale", _floats([stats[name].scale for name in numeric]))
        # A categorical gap takes the imputed value's vocabulary position.
        self.register_buffer(
            "fill_positions",
            _floats([_position(vocabularies[name], impute[name]) for name in categorical]),
        )

    def preprocess(self, raw: torch.Tensor) -> torch.Tensor:
        """The preprocessed vector (what ``features.encode`` computes) for raw inputs."""
        numeric = raw[:, : self.numeric]
        parts = [(torch.where(torch.isnan(numeric), self.fill, numeric) - self.mean) / self.scale]
        for column, size in enumerate(self.sizes):
            position = raw[:, self.numeric + column]
            position = torch.where(torch.isnan(position), self.fill_positions[column], position)
            slots = torch.arange(size + 1, dtype=raw.dtype, device=raw.device)
            known = (position >= 0) & (position < size) & (position == torch.floor(position))
            position = torch.where(known, position, torch.full_like(position, float(size)))
            parts.append((position.unsqueeze(1) == slots).to(raw.dtype))
        return torch.cat(parts, dim=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Class probabilities (classification) or the predicted value, per row."""
        output = self.network(self.preprocess(raw))
        return torch.softmax(output, dim=1) if self.classification else output


def _floats(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _position(vocabulary: Sequence[str], value: Any) -> float:
    text = str(value)
    return float(vocabulary.index(text)) if text in vocabulary else -1.0
