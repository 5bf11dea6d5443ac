"""The ``bakeoff`` command: one subcommand per stage, plus running, retraining and serving."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from components import progress
from components.errors import BakeoffError

#: Each subcommand: its name, the module with its ``add_arguments`` and ``run``, its summary.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("ingest", "components.ingest.cli", "read the data source into data/raw (DVC stage 'ingest')"),
    (
        "clean",
        "components.clean.cli",
        "validate, quarantine, split, compute constants (DVC stage 'clean')",
    ),
    (
        "train",
        "pipelines.train",
        "tune and train one framework's model (DVC stage 'train@<framework>')",
    ),
    (
        "refit",
        "components.refit.cli",
        "train every best configuration in every framework, timed (DVC stage 'refit')",
    ),
    (
        "evaluate",
        "components.evaluate.cli",
        "score both models on the test split and pick the winner (DVC stage 'evaluate')",
    ),
    (
        "export",
        "components.export.cli",
        "export the winner to every serving format, with parity checks (DVC stage 'export')",
    ),
    (
        "register",
        "components.register.cli",
        "gate the winner against the champion, register and push it (DVC stage 'register')",
    ),
    (
        "serve",
        "components.serve.cli",
        "serve the registry's champion over HTTP (ONNX Runtime), reloading it when it changes",
    ),
    ("run", "pipelines.runner", "run the pipeline (dvc repro), the trainers side by side"),
    (
        "tensorboard",
        "pipelines.tensorboard",
        "open TensorBoard on 127.0.0.1 over every trial of both trainers",
    ),
    (
        "compile-tfx",
        "pipelines.tfx_compile",
        "compile the TensorFlow stage's TFX pipeline for Kubeflow Pipelines / Vertex (no run)",
    ),
    (
        "retrain",
        "pipelines.retrain",
        "retrain when new data has landed; the gate decides whether the champion moves",
    ),
    (
        "simulate",
        "pipelines.simulator",
        "append realistic new batches to the landing folder, optionally drifted",
    ),
    ("ui", "pipelines.ui", "open the MLflow UI on 127.0.0.1 over the project's store"),
)


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The command line for ``argv``: only the chosen subcommand's module is imported.

    Importing every stage's module (pandas, MLflow, ...) costs seconds; an idle
    ``bakeoff retrain`` or ``bakeoff --help`` should not pay for the others.
    """
    chosen = next((word for word in argv if not word.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="bakeoff",
        description="A TFX/Keras model and a PyTorch Lightning model compete on the same data.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name, summary in COMMANDS:
        command = commands.add_parser(name, help=summary, description=summary)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bakeoff`` console script."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = _parser(arguments).parse_args(arguments)
    progress.emit(progress.STAGE, state="start", command=args.command)
    status = 1
    try:
        params = getattr(args, "params", None)
        if params and Path(params).is_file():
            from components.backends import apply_runtime

            apply_runtime(params)  # before the stage imports any framework
        status = int(args.handler(args) or 0)
    except BakeoffError as err:
        print(f"bakeoff {args.command}: error: {err}", file=sys.stderr)
        progress.emit(progress.RESULT, text=f"error: {err}")
    except KeyboardInterrupt:
        print(f"bakeoff {args.command}: interrupted", file=sys.stderr)
        status = 130
    finally:
        progress.emit(progress.STAGE, state="end", command=args.command, status=status)
    return status


if __name__ == "__main__":
    sys.exit(main())
