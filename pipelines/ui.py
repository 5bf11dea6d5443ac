"""``bakeoff ui``: the MLflow UI over the project's tracking store, on 127.0.0.1 only."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pipelines.runner import stage_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff ui``."""
    parser.add_argument(
        "--store", default="mlflow", help="folder of the tracking database and artifacts"
    )
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")


def run(args: argparse.Namespace) -> int:
    """Start ``mlflow ui`` in the foreground until interrupted."""
    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "ui",
        "--backend-store-uri",
        f"sqlite:///{store / 'mlflow.db'}",
        "--default-artifact-root",
        (store / "artifacts").as_uri(),
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print(f"MLflow UI on http://{args.host}:{args.port} over {store}")
    return subprocess.run(command, env=stage_environment(), check=False).returncode
