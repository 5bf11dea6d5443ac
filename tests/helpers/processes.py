"""Finding a stage's worker processes, to fail one of them on purpose."""

from __future__ import annotations

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
