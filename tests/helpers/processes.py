"""Finding a stage's worker processes, to fail one of them on purpose."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def descendant_with(parent: int, marker: bytes) -> int | None:
    """The pid of a process under ``parent`` whose environment holds ``marker``, if one runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ and parent in _ancestors(int(entry.name)):
            return int(entry.name)
    return None


def _ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return found


def stage_with_a_worker_killed(
    repo: Path, framework: str, marker: bytes, env: dict[str, str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``bakeoff train`` for ``framework`` in ``repo``; SIGKILL the worker ``marker`` names.

    The worker is killed 5 s after it appears (joined and training by then; a
    kill at any point is a failure anyway); the stage's result is returned.
    """
    command = [
        *(str(Path(sys.executable).parent / "bakeoff"), "train", "--framework", framework),
        *("--data-dir", "data/clean", "--preprocessing", "data/clean/preprocessing.json"),
        *("--schema", "schemas/digits.yaml", "--model-dir", f"models/{framework}"),
        *("--metrics", f"metrics/{framework}.json"),
    ]
    stage = subprocess.Popen(
        command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline, victim = time.monotonic() + timeout_s, None
    while victim is None and time.monotonic() < deadline and stage.poll() is None:
        victim = descendant_with(stage.pid, marker)
        time.sleep(0.5)
    if victim is None:
        stage.kill()
        raise AssertionError(f"no process with {marker!r} started under the stage")
    time.sleep(5)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = stage.communicate(timeout=timeout_s)
    return subprocess.CompletedProcess(command, stage.returncode, stdout, stderr)
