"""Trials on several processes: Lightning's DDP strategy, started and joined through ``torchrun``.

``train_pytorch.devices`` processes on each of ``train_pytorch.num_nodes``
hosts train every trial together: gloo on CPUs, NCCL on GPUs. Rank 0 runs the
training driver as one process would (the Optuna study, MLflow, the model
folder, the metrics); before each trial it announces the trial, and the other
ranks follow it through Optuna's ``TorchDistributedTrial`` (the trial's number
and parameters, then each epoch's pruning decision, broadcast from rank 0), so
each trial is recorded once and every rank stops at the same epoch.

On one host the stage starts its processes itself, with torch's elastic
launcher (what ``torchrun --standalone`` runs). On several, each host runs
``torchrun`` with a shared rendezvous (the command is in the README); the stage
then finds itself inside a launched group and joins it.

The data are split the way one process would see them: every rank draws the
same permutation and takes its share of each global mini-batch of
``batch_size`` rows, and validation runs on the whole split on every rank, so
the ranks' metrics and decisions agree without a reduction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from components.errors import BakeoffError, ParamsError

#: Set by torchrun (and by the elastic launcher) in every process it starts.
LAUNCHED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
#: How long a rank waits for the others at a collective: rank 0 tests and saves
#: the model while the others wait for its next announcement.
WAIT = timedelta(hours=2)
_TRIAL, _DONE = "trial", "done"


@dataclass(frozen=True)
class Topology:
    """``train_pytorch.devices`` and ``num_nodes``: processes (or GPUs) per host, and hosts."""

    devices: int = 1
    num_nodes: int = 1

    @classmethod
    def from_section(cls, raw: Mapping[str, Any]) -> Topology:
        """Check ``train_pytorch``'s keys; several processes and Optuna workers exclude each other."""
        from components.params import whole

        topology = cls(
            devices=whole(raw.get("devices", 1), "train_pytorch.devices", 1),
            num_nodes=whole(raw.get("num_nodes", 1), "train_pytorch.num_nodes", 1),
        )
        if topology.world > 1 and int(raw.get("workers", 1) or 1) > 1:
            raise ParamsError(
                "train_pytorch.workers",
                "Optuna worker processes and DDP (devices or num_nodes above 1) are "
                "alternatives; set workers: 1 or devices: 1 and num_nodes: 1",
            )
        return topology

    @property
    def world(self) -> int:
        """Processes training each trial."""
        return self.devices * self.num_nodes


@dataclass(frozen=True)
class Rank:
    """This process's place in a launched group."""

    rank: int
    world: int
    local_rank: int
    local_world: int

    @property
    def leads(self) -> bool:
        """Rank 0 runs the driver: the study, MLflow, the outputs."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Rank | None:
        """The group torchrun launched this process into, or None outside one."""
        environ = os.environ if environ is None else environ
        if not all(name in environ for name in LAUNCHED):
            return None
        rank, world, local, local_world = (int(environ[name]) for name in LAUNCHED)
        return cls(rank, world, local, local_world)


def launch(topology: Topology, argv: Sequence[str]) -> None:
    """Run ``python -m pipelines.cli <argv>`` on ``topology.devices`` processes of this host.

    One host only: several hosts start ``torchrun`` on each (the README's
    command). A failed process ends the others; the stage fails with one line
    naming it (its own error is printed above by the process itself).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if topology.num_nodes > 1:
        raise ParamsError(
            "train_pytorch.num_nodes",
            f"{topology.num_nodes} hosts: start the stage on each host with torchrun "
            "(README, 'Training on several processes'); bakeoff starts processes on this host only",
        )
    # The elastic agent logs each start and stop at INFO/WARNING; the stage's own lines suffice.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=topology.devices,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # what torchrun --standalone uses: a free port
        max_restarts=0,
        monitor_interval=0.5,
    )
    try:
        elastic_launch(config, sys.executable)("-u", "-m", "pipelines.cli", *argv)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        raise BakeoffError(
            f"train@pytorch: DDP process rank {rank} of {topology.world} failed with exit code "
            f"{failure.exitcode}; the other processes were stopped (its error is above)"
        ) from None


@contextlib.contextmanager
def joined(rank: Rank, accelerator: str) -> Iterator[Group]:
    """Join the launched group's process group for the stage; rank 0 releases the others at the end."""
    import torch.distributed as dist

    backend = "nccl" if accelerator == "gpu" else "gloo"
    if accelerator == "gpu":
        import torch

        torch.cuda.set_device(rank.local_rank)
    dist.init_process_group(backend, timeout=WAIT)
    group = Group(rank)
    try:
        yield group
        if rank.leads:
            group.announce(_DONE)
    finally:
        # A rank that fails skips the release: the launcher stops the others.
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


class Group:
    """Rank 0's announcements of each trial, and the other ranks' loop that follows them."""

    def __init__(self, rank: Rank) -> None:
        self.rank = rank

    def announce(self, what: str) -> str:
        """Rank 0 says what comes next (a trial, or the end); the others hear it."""
        import torch.distributed as dist

        message = [what if self.rank.leads else None]
        dist.broadcast_object_list(message, src=0)
        return str(message[0])

    def shared_trial(self, trial: Any) -> Any:
        """Rank 0's Optuna trial as every rank sees it (announced first on rank 0)."""
        from optuna_integration import TorchDistributedTrial

        if self.rank.leads:
            self.announce(_TRIAL)
            return TorchDistributedTrial(trial)
        return TorchDistributedTrial(None)

    def next_trial(self) -> Any:
        """The other ranks: rank 0's next trial, or None when it says the study is done."""
        return self.shared_trial(None) if self.announce("") == _TRIAL else None
