"""``bakeoff train --framework NAME``: the options both training stages share, and dispatch.

Each framework's own entry (``components.train_<name>.cli.run``) is imported
only when chosen, so the PyTorch stage never loads TensorFlow and vice versa.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import resource
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.errors import ParamsError
from components.training import tracking
from components.training.features import input_dim
from components.training.search import TuningParams
from components.training.spec import CNN, MLP

FRAMEWORKS = ("tensorflow", "pytorch")
BUDGET = ("trials", "timeout_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the stage's options (paths match dvc.yaml)."""
    parser.add_argument("--framework", required=True, choices=FRAMEWORKS, help="which trainer")
    parser.add_argument(
        "--params", default="params.yaml", help="params file with 'train' and 'train_<framework>'"
    )
    parser.add_argument(
        "--data-dir", required=True, help="folder of the clean train/val/test.parquet"
    )
    parser.add_argument(
        "--preprocessing", required=True, help="the shared preprocessing constants (JSON)"
    )
    parser.add_argument("--schema", required=True, help="the project's data schema (YAML)")
    parser.add_argument("--model-dir", required=True, help="folder the trained model is saved to")
    parser.add_argument("--metrics", required=True, help="JSON metrics file to write")


def run(args: argparse.Namespace) -> None:
    """Run the chosen framework's stage."""
    importlib.import_module(f"components.train_{args.framework}.cli").run(args)


def architecture_for(tuning: TuningParams, constants: Mapping[str, Any]) -> str:
    """The architecture the params ask for: a CNN for image features unless told otherwise."""
    shape = constants.get("image_shape")
    architecture = tuning.architecture or (CNN if shape else MLP)
    if architecture != CNN:
        return architecture
    if not shape:
        raise ParamsError(
            "train.architecture", "cnn needs image features (ingest.image_shape); found none"
        )
    if shape[0] * shape[1] != input_dim(constants):
        raise ParamsError(
            "train.architecture",
            f"cnn needs every input to be a pixel: image_shape {shape} covers "
            f"{shape[0] * shape[1]} values, the features encode to {input_dim(constants)}",
        )
    return architecture


def code_hash(root: Path, packages: tuple[str, ...]) -> str:
    """A hash of a trainer's code (the packages under ``components/``)."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / "components" / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def inputs_hash(data_dir: Path, preprocessing: Path) -> str:
    """The DVC-style hash of what a trainer reads: the three splits and the constants."""
    from components.clean.split import SPLITS

    return tracking.data_hash([data_dir / f"{split}.parquet" for split in SPLITS] + [preprocessing])


def study_name(dataset: str, framework: str, tuning_raw: Mapping[str, Any], *inputs: Any) -> str:
    """The Optuna study of a stage run: the same inputs resume it, others start a new one.

    The budget (``trials``, ``timeout_s``) is left out: raising it extends the
    study instead of starting over.
    """
    tuning = {key: value for key, value in tuning_raw.items() if key not in BUDGET}
    fingerprint = hashlib.sha256(
        json.dumps([tuning, *inputs], sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    return f"{dataset}-{framework}-{fingerprint}"


def cpu_threads(configured: int) -> int:
    """The CPU threads a trainer may use: its params' value, else the runner's share, else 0.

    ``bakeoff run`` sets ``BAKEOFF_CPU_THREADS`` when trainers run side by side
    on CPUs, so that together they do not ask for more threads than cores.
    0 lets the framework decide.
    """
    if configured:
        return configured
    share = os.environ.get("BAKEOFF_CPU_THREADS", "")
    return int(share) if share.isdigit() else 0


def peak_memory_mb() -> float:
    """Peak resident memory of this process or of any child it waited for, in MiB.

    Trials run in this process (or, with Optuna workers, in children), so this
    is the stage's peak memory of training, framework and data included.
    """
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(self_kb, children_kb) / 1024, 1)
