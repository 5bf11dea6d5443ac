"""``bakeoff tensorboard``: TensorBoard over every trial of both trainers, on 127.0.0.1 by default.

Each trial writes its per-epoch scalars (``train/loss``, ``val/*``, the epoch's
seconds) to ``logs/tensorboard/<study>/trial-NNNN``; a study's name says its
data set and framework, so the two frameworks' trials sit side by side.

TensorBoard's own server (``tensorboard.program`` with its default plugins, what
the ``tensorboard`` command runs), in this process. TensorBoard 2.16 imports
``pkg_resources``: the lock holds setuptools below 81, which still has it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from components.errors import BakeoffError
from components.training.driver import TENSORBOARD_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff tensorboard``."""
    parser.add_argument(
        "--logdir",
        default=TENSORBOARD_DIR,
        help=f"the event files' folder (default: {TENSORBOARD_DIR})",
    )
    parser.add_argument("--port", type=int, default=6006, help="port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")


def server(logdir: Path, host: str, port: int) -> Any:
    """TensorBoard's server over ``logdir``, configured, not yet started."""
    from tensorboard import default, program

    board = program.TensorBoard(plugins=default.get_plugins())
    board.configure(logdir=str(logdir), host=host, port=port)
    return board


def run(args: argparse.Namespace) -> int:
    """Start TensorBoard in the foreground until it is stopped."""
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise BakeoffError(f"{logdir}: no TensorBoard event files yet; train first (bakeoff run)")
    print(f"bakeoff tensorboard: http://{args.host}:{args.port} over {logdir}", flush=True)
    return int(server(logdir, args.host, args.port).main())
