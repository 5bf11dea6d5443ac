"""Per-epoch bookkeeping both frameworks' callbacks share: values, wall time, divergence.

A framework's own callback calls :meth:`EpochLog.begin` and :meth:`EpochLog.end`
from its epoch hooks; the recording, the MLflow logging, the TensorBoard event
file and the check for a non-finite loss are written once, here. The event
file is TensorBoard's own format, written with its own writer (no framework's
summary API), so both frameworks' trials sit side by side under one log folder.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components import progress
from components.training.study import Diverged


@dataclass
class EpochLog:
    """Each epoch's ``split/metric`` values and seconds (validation included)."""

    log_to_mlflow: bool = True
    events: Path | None = None  # a TensorBoard run folder for each epoch's scalars
    trial: int | None = None  # the trial whose epochs are progress events (None: not sent)
    epochs: int = 0  # the epoch cap, for "epoch e of N"
    metric: str = ""  # the optimised ``split/metric``, the value a progress event shows
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    diverged: bool = False
    _began: float = 0.0
    _writer: Any = None

    def begin(self) -> None:
        """An epoch starts."""
        self._began = time.perf_counter()

    def end(self, values: dict[str, float], epoch: int) -> bool:
        """An epoch ended with ``values``; True when training must stop (the loss diverged)."""
        self.seconds.append(time.perf_counter() - self._began)
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        if self.log_to_mlflow:
            import mlflow

            mlflow.log_metrics(values, step=epoch)
        if self.events is not None:
            self._write_events(values, epoch)
        if self.trial is not None:
            progress.emit(
                progress.EPOCH,
                trial=self.trial,
                epoch=epoch + 1,
                of=self.epochs,
                metric=self.metric,
                value=values.get(self.metric),
                seconds=round(self.seconds[-1], 2),
            )
        if not math.isfinite(values.get("train/loss", 0.0)):
            self.diverged = True
        return self.diverged

    def _write_events(self, values: dict[str, float], epoch: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        if self._writer is None:
            assert self.events is not None
            self.events.mkdir(parents=True, exist_ok=True)
            self._writer = EventFileWriter(str(self.events))
        scalars = [Summary.Value(tag=name, simple_value=value) for name, value in values.items()]
        scalars.append(Summary.Value(tag="epoch_seconds", simple_value=self.seconds[-1]))
        self._writer.add_event(
            Event(wall_time=time.time(), step=epoch, summary=Summary(value=scalars))
        )
        self._writer.flush()  # visible in a running TensorBoard after each epoch

    def check(self, trial: int) -> list[float]:
        """The training losses; raises :class:`Diverged` when there are none or one is not finite."""
        losses = self.history.get("train/loss", [])
        if self.diverged or not losses or not all(math.isfinite(v) for v in losses):
            raise Diverged(
                f"trial {trial}: training loss became {losses[-1] if losses else 'undefined'}"
            )
        return losses

    def best(self, metric: str, maximise: bool) -> float:
        """The best value of ``metric`` over the epochs."""
        values = self.history[metric]
        return float(max(values) if maximise else min(values))
