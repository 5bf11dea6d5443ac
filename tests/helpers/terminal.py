"""Running a command in a pseudo-terminal, as a user's shell would, and reading its screen."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from tests.conftest import stage_env

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def terminal_run(command: list[str], cwd: Path, timeout_s: float = 900) -> tuple[int, str]:
    """Run ``command`` with a pseudo-terminal for its input and output: its status and output."""
    leader, follower = pty.openpty()
    env = {**stage_env(), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: every process using it has ended
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"{' '.join(command)} ran past {timeout_s} s")
    finally:
        os.close(leader)
    return process.wait(), b"".join(chunks).decode("utf-8", errors="replace")


def plain(screen: str) -> str:
    """A terminal's output without its escape codes and carriage returns."""
    return _ESCAPE.sub("", screen).replace("\r", "")
