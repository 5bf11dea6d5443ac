"""PyTorch networks from the shared spec, and the LightningModule that trains one trial.

The networks mirror ``components.backends.tensorflow.model.build_model`` layer for
layer (same widths, kernels, pooling, dropout placement, initialisation), so a
spec has the same parameter count in both frameworks; tests assert it.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from components.training.search import Hyperparams
from components.training.spec import CNN, ModelSpec

KERAS_EPSILON = 1e-7
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class Standardised(nn.Module):
    """A regression head's output in the label's units: ``mean + std * z`` (Keras ``Rescaling``)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std) or 1.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Rescale the standardised prediction."""
        return self.mean + self.std * z


class Float32(nn.Module):
    """Runs its layers in float32 even under mixed precision, as the Keras heads do.

    A float16 head would round a regression value to three digits and overflow
    labels above 65,504. Outside autocast (serving, exports) it is its layers.
    """

    def __init__(self, layers: nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layers' output, computed in float32."""
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self.layers(x.float())
        return self.layers(x)


def build_network(
    spec: ModelSpec, task: str, target: tuple[float, float] | None = None
) -> nn.Sequential:
    """The network for a spec, taking the preprocessed vector and returning logits (or values).

    Classification returns logits (the loss applies the softmax, as Keras'
    softmax + cross-entropy does in one); regression returns the value in the
    label's units, through the same standardising head as the Keras model.
    """
    activation = ACTIVATIONS[spec.activation]
    layers: list[nn.Module] = []
    if spec.kind == CNN:
        assert spec.image_shape is not None
        layers.append(nn.Unflatten(1, (1, *spec.image_shape)))
        channels = 1
        for filters, pooled in spec.conv_blocks():
            layers += [nn.Conv2d(channels, filters, 3, padding=1), activation()]
            if pooled:
                layers.append(nn.MaxPool2d(2))
            channels = filters
        # Keras flattens channels-last; the order differs, the size does not.
        layers += [nn.Flatten(), nn.Dropout(spec.dropout)]
        layers += [nn.Linear(spec.flat_size(), spec.width), activation()]
        last = spec.width
    else:
        last = spec.input_dim
        for units in spec.hidden_units():
            layers += [nn.Linear(last, units), activation(), nn.Dropout(spec.dropout)]
            last = units
    head: list[nn.Module] = [nn.Linear(last, spec.outputs if task == "classification" else 1)]
    if task != "classification":
        mean, std = target or (0.0, 1.0)
        head += [nn.Flatten(0), Standardised(mean, std)]
    network = nn.Sequential(*layers, Float32(nn.Sequential(*head)))
    _initialise_like_keras(network)
    return network


def _initialise_like_keras(network: nn.Module) -> None:
    # Keras starts Dense and Conv2D with Glorot-uniform weights and zero biases;
    # torch's defaults differ. Equal starts keep the comparison about training.
    for module in network.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def trainable_parameters(network: nn.Module) -> int:
    """Number of trainable parameters (compare with ``spec.parameter_count``)."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


class TrialModule(pl.LightningModule):
    """One trial's network with its optimiser, loss and ``split/metric`` logging.

    Profiling showed Lightning's per-step machinery (hooks, the optimiser
    closure, the batch fetcher) costing as much as a small MLP's step itself.
    So each Lightning step receives a chunk of whole mini-batches and steps the
    optimiser once per mini-batch (manual optimisation, through Lightning's
    optimiser wrapper and ``manual_backward``, so precision plugins still
    apply): the same updates on the same batches, the per-step cost shared by
    many. Epoch metrics are summed on the device and logged once per epoch.
    """

    def __init__(
        self, network: nn.Module, hyper: Hyperparams, task: str, *, compiled: bool = False
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.network = network
        # A compiled forward of the same network (a function, so the checkpoint's keys stay the network's).
        self._compiled = torch.compile(network.forward) if compiled else None
        self.hyper = hyper
        self.task = task
        self._sums: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (classification) or values (regression) for preprocessed inputs."""
        return self._compiled(x) if self._compiled is not None else self.network(x)

    def _loss(self, output: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if self.task == "classification":
            return nn.functional.cross_entropy(output.float(), y, reduction=reduction)
        return nn.functional.mse_loss(output.float(), y, reduction=reduction)

    def _add(self, name: str, value: torch.Tensor) -> None:
        self._sums[name] = self._sums[name] + value if name in self._sums else value

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """One optimisation step per mini-batch of the chunk; sums the loss for ``train/loss``."""
        if len(batch) == 3:
            self._shared_step(*batch)
            return
        x, y = batch
        wrapped = self.optimizers()
        assert isinstance(wrapped, pl.core.optimizer.LightningOptimizer)
        # In full precision Lightning's optimiser wrapper and manual_backward
        # only call hooks bakeoff does not use, at ~0.1 ms per mini-batch; with
        # mixed precision they scale the loss, so they are kept.
        direct = str(self.trainer.precision) in ("32-true", "32")
        optimizer: Any = wrapped.optimizer if direct else wrapped
        backward = torch.Tensor.backward if direct else self.manual_backward
        total = torch.zeros((), device=x.device)
        for x_batch, y_batch in zip(
            x.split(self.hyper.batch_size), y.split(self.hyper.batch_size), strict=True
        ):
            optimizer.zero_grad()
            loss = self._loss(self(x_batch), y_batch)
            backward(loss)
            optimizer.step()
            total += loss.detach() * len(y_batch)
        self._add("train/loss", total)
        self._add("train/count", torch.tensor(len(y), device=x.device))

    def _shared_step(self, x: torch.Tensor, y: torch.Tensor, size: torch.Tensor) -> None:
        """DDP: this rank's share of one mini-batch of ``size`` rows, one step.

        The share's summed loss times ``world / size``, averaged over the ranks
        by DDP, is the whole batch's mean loss: the same gradient as one process,
        whatever the shares' sizes (an empty share adds zero). Every rank steps,
        through ``manual_backward``, which lets DDP reduce the gradients.
        """
        optimizer = self.optimizers()
        assert isinstance(optimizer, pl.core.optimizer.LightningOptimizer)
        optimizer.zero_grad()
        summed = self._loss(self(x), y, reduction="sum")
        self.manual_backward(summed * (self.trainer.world_size / float(size)))
        optimizer.step()
        self._add("train/loss", summed.detach())
        self._add("train/count", torch.tensor(len(y), device=x.device))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Accumulate ``val/loss`` and ``val/accuracy`` (or ``val/rmse``) over the epoch."""
        x, y = batch
        output = self(x)
        self._add("val/loss", self._loss(output, y) * len(y))
        self._add("val/count", torch.tensor(len(y), device=output.device))
        if self.task == "classification":
            self._add("val/correct", (output.argmax(dim=1) == y).sum())
        else:
            self._add("val/squared", ((output.float() - y) ** 2).sum())

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's metrics under their ``split/metric`` names.

        The training loss is logged here too: validation ends each training
        epoch, and callbacks' ``on_train_epoch_end`` run before the module's.
        """
        metrics = {}
        shared = self.trainer.world_size > 1
        if "train/count" in self._sums:
            loss, count = self._sums.pop("train/loss"), self._sums.pop("train/count")
            if shared:  # each rank summed its shares; the epoch's loss is over every row
                loss = self.trainer.strategy.reduce(loss, reduce_op="sum")
                count = self.trainer.strategy.reduce(count, reduce_op="sum")
            metrics["train/loss"] = loss / count
        if "val/count" in self._sums:
            count = self._sums.pop("val/count").float()
            metrics["val/loss"] = self._sums.pop("val/loss") / count
            if self.task == "classification":
                metrics["val/accuracy"] = self._sums.pop("val/correct").float() / count
            else:
                metrics["val/rmse"] = torch.sqrt(self._sums.pop("val/squared") / count)
        # Every rank validates the whole split, so the values agree already;
        # sync_dist (a mean of equal values) only keeps Lightning from warning.
        self.log_dict(metrics, sync_dist=shared)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The trial's optimiser; weight decay means what it means in the Keras branch.

        ``adamw`` decays decoupled; ``adam`` and ``sgd`` add ``weight_decay * w``
        to the gradient (Keras: an L2 penalty of ``wd / 2``). SGD uses momentum
        0.9 in both frameworks, and Adam's epsilon is Keras' 1e-7.
        """
        hyper = self.hyper
        params = self.parameters()
        if hyper.optimizer == "adamw":
            return torch.optim.AdamW(
                params, lr=hyper.learning_rate, weight_decay=hyper.weight_decay, eps=KERAS_EPSILON
            )
        if hyper.optimizer == "adam":
            return torch.optim.Adam(
                params, lr=hyper.learning_rate, weight_decay=hyper.weight_decay, eps=KERAS_EPSILON
            )
        return torch.optim.SGD(
            params, lr=hyper.learning_rate, momentum=0.9, weight_decay=hyper.weight_decay
        )
