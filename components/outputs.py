"""Writing a stage's outputs so that a failure leaves the previous ones in place.

Each output is written to a temporary sibling first; only when every output of
the stage has been written are they moved over the old ones (``os.replace`` is
atomic on one file system). DVC's ``persist: true`` keeps DVC from deleting the
old outputs before the stage runs, so together a failed run changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class StagedOutputs:
    """Collects temporary files and moves them into place on :meth:`commit`."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def path_for(self, target: str | Path) -> Path:
        """Return a fresh temporary path next to ``target`` to write it to."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(handle)
        # mkstemp creates files readable by the owner only; outputs get the usual mode.
        os.chmod(name, 0o666 & ~_umask())
        temporary = Path(name)
        self._staged.append((temporary, target))
        return temporary

    def write(self, target: str | Path, writer: Callable[[Path], None]) -> None:
        """Stage ``target`` by calling ``writer`` with its temporary path."""
        writer(self.path_for(target))

    def write_json(self, target: str | Path, payload: Any) -> None:
        """Stage a JSON document, formatted stably so equal content gives equal bytes."""
        # allow_nan=False: NaN and Infinity are not JSON; writing them would be a bug.
        text = (
            json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
            + "\n"
        )
        self.write_text(target, text)

    def write_text(self, target: str | Path, text: str) -> None:
        """Stage a UTF-8 text file."""
        self.path_for(target).write_text(text, encoding="utf-8")

    def commit(self) -> None:
        """Move every staged file over its target."""
        for temporary, target in self._staged:
            os.replace(temporary, target)
        self._staged.clear()

    def discard(self) -> None:
        """Delete every staged file; the targets are untouched."""
        for temporary, _ in self._staged:
            temporary.unlink(missing_ok=True)
        self._staged.clear()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Stage outputs in the block; commit them if it succeeds, discard them if it raises."""
    staged = StagedOutputs()
    try:
        yield staged
    except BaseException:
        staged.discard()
        raise
    staged.commit()


@contextmanager
def staged_directory(target: str | Path) -> Iterator[Path]:
    """A fresh folder to fill in the block; it replaces ``target`` only if the block succeeds.

    The old folder is moved aside, the new one moved in, and only then the old
    one deleted, so at every moment one complete version is in place or aside.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.chmod(staging, 0o777 & ~_umask())
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
