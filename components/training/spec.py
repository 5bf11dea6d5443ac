"""The architecture family both frameworks build, and its parameter count.

Both the Keras and the Lightning builders read a :class:`ModelSpec` and must
produce exactly :func:`parameter_count` trainable parameters; tests assert it.

- ``mlp``: ``depth`` hidden layers narrowing from ``width`` (halving, at least
  8 units), each followed by the activation and dropout; the seeds'
  ``Dense(128) -> Dense(64) -> Dense(10)`` is ``mlp(depth=2, width=128)``.
- ``cnn``: for image features. ``depth`` blocks of a 3x3 'same' convolution with
  ``width`` filters (doubling per block up to ``max_filters``), the activation
  and a 2x2 max-pool while the image is at least 2 pixels high and wide; then
  flatten, dropout and one dense layer of ``width`` units before the head.
  Without the bound, digits' 8x8 images reached 256/512/1024 filters and 6.2M
  parameters, a network 12x costlier per example that scored no better.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MLP = "mlp"
CNN = "cnn"
KERNEL = 3
MIN_UNITS = 8


@dataclass(frozen=True)
class ModelSpec:
    """One point of the architecture family, with the shapes of its input and output."""

    kind: str
    input_dim: int
    outputs: int
    depth: int
    width: int
    activation: str = "relu"
    dropout: float = 0.0
    image_shape: tuple[int, int] | None = None
    max_filters: int | None = None  # CNN filters stop doubling here (None: no bound)

    def __post_init__(self) -> None:
        if self.kind not in (MLP, CNN):
            raise ValueError(f"kind: expected {MLP} or {CNN}; found {self.kind!r}")
        if self.kind == CNN and (
            self.image_shape is None or self.image_shape[0] * self.image_shape[1] != self.input_dim
        ):
            raise ValueError(
                f"a cnn needs an image_shape covering the {self.input_dim} inputs; found {self.image_shape}"
            )
        if self.depth < 1 or self.width < 1 or self.outputs < 1:
            raise ValueError("depth, width and outputs must be at least 1")

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> ModelSpec:
        """A spec from its JSON form (``model.json``'s ``spec``)."""
        values = dict(fields)
        if values.get("image_shape") is not None:
            values["image_shape"] = tuple(values["image_shape"])
        return cls(**values)

    def hidden_units(self) -> list[int]:
        """Widths of the MLP's hidden layers."""
        return [max(MIN_UNITS, self.width // 2**layer) for layer in range(self.depth)]

    def conv_blocks(self) -> list[tuple[int, bool]]:
        """(filters, pooled) per CNN block; pooling stops when the image is down to 1 pixel."""
        assert self.image_shape is not None
        height, width = self.image_shape
        blocks = []
        for block in range(self.depth):
            pooled = height >= 2 and width >= 2
            filters = self.width * 2**block
            blocks.append((min(filters, self.max_filters or filters), pooled))
            if pooled:
                height, width = height // 2, width // 2
        return blocks

    def flat_size(self) -> int:
        """Number of values entering the CNN's dense layer."""
        assert self.image_shape is not None
        height, width = self.image_shape
        blocks = self.conv_blocks()
        for _, pooled in blocks:
            if pooled:
                height, width = height // 2, width // 2
        return height * width * blocks[-1][0]


def parameter_count(spec: ModelSpec) -> int:
    """Trainable parameters of the model a spec describes (weights and biases)."""
    if spec.kind == MLP:
        sizes = [spec.input_dim, *spec.hidden_units(), spec.outputs]
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    total = 0
    channels = 1
    for filters, _ in spec.conv_blocks():
        total += (KERNEL * KERNEL * channels + 1) * filters
        channels = filters
    total += (spec.flat_size() + 1) * spec.width
    total += (spec.width + 1) * spec.outputs
    return total
