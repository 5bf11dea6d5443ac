"""``bakeoff run``: execute the DVC graph of this repository.

DVC decides what is out of date from ``dvc.yaml`` and ``dvc.lock``; this only
makes sure the stages find the ``bakeoff`` command of the interpreter running it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff run``."""
    parser.add_argument("stages", nargs="*", help="stages to bring up to date (default: all)")
    parser.add_argument(
        "--force", action="store_true", help="rerun the stages even if nothing changed"
    )


def stage_environment() -> dict[str, str]:
    """The environment for DVC's stage commands: this interpreter's scripts first on PATH."""
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def run(args: argparse.Namespace) -> int:
    """Run ``dvc repro`` for the requested stages and return its exit status."""
    command = [str(Path(sys.executable).parent / "dvc"), "repro", *args.stages]
    if args.force:
        command.append("--force")
    return subprocess.run(command, env=stage_environment(), check=False).returncode
