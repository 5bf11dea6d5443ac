"""Progress events: what a running stage is doing, as JSON lines for ``bakeoff run`` to show.

``bakeoff run`` names one file per stage in ``BAKEOFF_EVENTS`` and reads it while
the stage writes it (:mod:`pipelines.board`); nothing there reads the frameworks'
own output. Without the variable (``dvc repro``, a test) :func:`emit` does nothing.

Each event is one JSON object on one line, written with a single ``write`` to a
file opened for appending, so the processes of one stage (study workers, DDP
ranks) never interleave within a line.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

#: The environment variable naming the stage's events file.
EVENTS = "BAKEOFF_EVENTS"

# Kinds of event, with the fields each carries besides ``time`` and ``kind``.
STAGE = "stage"  # state: start | end; command; status (end)
STEP = "step"  # text: what the stage is doing now (a TFX component, scoring the best trial)
TRIAL = "trial"  # trial (Optuna's number), state: start | complete | pruned | fail;
#                  index and of (start: the i-th of the budget's N); value, best (end)
EPOCH = "epoch"  # trial, epoch (from 1), of (the cap), metric, value, seconds
RESULT = "result"  # text: one line of the stage's outcome, as it prints it


def emit(kind: str, **fields: Any) -> None:
    """Append one event to the stage's events file, when ``bakeoff run`` asked for one.

    Progress is never worth a failed stage: an unwritable file loses the event.
    """
    path = os.environ.get(EVENTS)
    if not path:
        return
    record = {"time": round(time.time(), 3), "kind": kind, **fields}
    line = (json.dumps(record, default=str) + "\n").encode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        os.write(descriptor, line)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def say(text: str) -> None:
    """Print one line of the stage's outcome, and send it as a :data:`RESULT` event."""
    print(text, flush=True)
    emit(RESULT, text=text)
