"""Which devices each concurrently running training stage may use.

``bakeoff run`` starts the training stages at the same time; left alone, each
framework would claim every GPU (TensorFlow reserves nearly all of a GPU's
memory up front) and one CPU thread per core. :func:`plan` gives each stage the
environment variables that keep them apart. Nothing here imports a framework:
the plan is made before any trainer starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from components.backends.base import CPU_SHARE_VARIABLE
from components.backends.base import (
    available_cpus as available_cpus,  # one definition, for the runner
)

#: The trainers size their CPU thread pools from this when their params leave it at 0.
CPU_THREADS_VARIABLE = CPU_SHARE_VARIABLE

_SMI_TIMEOUT_S = 5.0


def plan(stages: Sequence[str], gpus: Sequence[str], cpus: int) -> dict[str, dict[str, str]]:
    """The environment variables to add for each stage running at the same time as the others.

    With at least as many GPUs as stages, each stage gets a disjoint round-robin
    share in ``CUDA_VISIBLE_DEVICES``; with fewer (one, say) the stages share them,
    one each, and TensorFlow is told to grow its memory instead of reserving it
    all. Without GPUs, the ``cpus`` cores are split evenly between the stages.
    """
    if not stages:
        return {}
    if not gpus:
        threads = str(max(1, cpus // len(stages)))
        # OMP_NUM_THREADS bounds PyTorch's and NumPy's OpenMP pools, which would
        # otherwise each take every core the other trainer is using too.
        return {
            stage: {CPU_THREADS_VARIABLE: threads, "OMP_NUM_THREADS": threads} for stage in stages
        }
    if len(gpus) >= len(stages):
        return {
            stage: {"CUDA_VISIBLE_DEVICES": ",".join(gpus[index :: len(stages)])}
            for index, stage in enumerate(stages)
        }
    return {
        stage: {
            "CUDA_VISIBLE_DEVICES": gpus[index % len(gpus)],
            # A shared GPU: TensorFlow's default reservation of the whole memory
            # would starve the other framework on the same device.
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        }
        for index, stage in enumerate(stages)
    }


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs the trainers may use, as ``CUDA_VISIBLE_DEVICES`` entries.

    A ``CUDA_VISIBLE_DEVICES`` already in the environment is the user's choice and
    is the list (empty when set to ""); otherwise ``nvidia-smi`` is asked, and no
    ``nvidia-smi`` (or one that fails) means no GPUs.
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        return _parse_visible_devices(chosen)
    smi = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if smi is None:
        return []
    try:
        result = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _parse_visible_devices(value: str) -> list[str]:
    devices: list[str] = []
    for entry in (part.strip() for part in value.split(",")):
        # CUDA stops at the first invalid index, and "-1" is the usual way to hide all.
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices
