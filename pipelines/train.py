"""``bakeoff train --framework NAME``: the DVC stage ``train@<framework>``.

Every framework runs the same training driver; its backend says who runs the
driver: this process, or the TFX pipeline's Trainer. A framework's backend is
imported only when chosen, so the PyTorch stage never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from components import backends, progress
from components.backends.base import IN_PROCESS, TFX

#: The module whose ``run_stage(job, backend, model_dir, metrics, schema)`` runs each kind of stage.
ORCHESTRATORS = {IN_PROCESS: "components.training.driver", TFX: "pipelines.tfx_runner"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the stage's options (paths match dvc.yaml)."""
    parser.add_argument(
        "--framework", required=True, choices=backends.names(), help="which backend trains"
    )
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
    """Resolve the job from params and paths, run the framework's stage, print its summary."""
    from components.training import driver

    backend = backends.get(args.framework)
    job = driver.prepare(
        args.framework, args.params, Path(args.data_dir), Path(args.preprocessing), Path.cwd()
    )
    orchestrator = importlib.import_module(ORCHESTRATORS[backend.orchestrator])
    metrics = orchestrator.run_stage(
        job, backend, Path(args.model_dir), Path(args.metrics), Path(args.schema)
    )
    if metrics is not None:  # None: other processes of the stage (DDP's rank 0) wrote them
        progress.say(driver.describe(metrics))
