"""The ``bakeoff`` command: one subcommand per stage, plus ``run`` and ``ui``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from components.errors import BakeoffError


def _parser() -> argparse.ArgumentParser:
    from components.clean import cli as clean_cli
    from components.evaluate import cli as evaluate_cli
    from components.export import cli as export_cli
    from components.ingest import cli as ingest_cli
    from components.register import cli as register_cli
    from components.serve import cli as serve_cli
    from components.training import cli as train_cli
    from pipelines import retrain, runner, simulator, ui

    parser = argparse.ArgumentParser(
        prog="bakeoff",
        description="A TFX/Keras model and a PyTorch Lightning model compete on the same data.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, summary in (
        ("ingest", ingest_cli, "read the data source into data/raw (DVC stage 'ingest')"),
        ("clean", clean_cli, "validate, quarantine, split, compute constants (DVC stage 'clean')"),
        (
            "train",
            train_cli,
            "tune and train one framework's model (DVC stage 'train@<framework>')",
        ),
        (
            "evaluate",
            evaluate_cli,
            "score both models on the test split and pick the winner (DVC stage 'evaluate')",
        ),
        (
            "export",
            export_cli,
            "export the winner to every serving format, with parity checks (DVC stage 'export')",
        ),
        (
            "register",
            register_cli,
            "gate the winner against the champion, register and push it (DVC stage 'register')",
        ),
        (
            "serve",
            serve_cli,
            "serve the registry's champion over HTTP (ONNX Runtime), reloading it when it changes",
        ),
        ("run", runner, "run the pipeline (dvc repro), the trainers side by side"),
        (
            "retrain",
            retrain,
            "retrain when new data has landed; the gate decides whether the champion moves",
        ),
        (
            "simulate",
            simulator,
            "append realistic new batches to the landing folder, optionally drifted",
        ),
        ("ui", ui, "open the MLflow UI on 127.0.0.1 over the project's store"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bakeoff`` console script."""
    args = _parser().parse_args(argv)
    try:
        result = args.handler(args)
    except BakeoffError as err:
        print(f"bakeoff {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bakeoff {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
