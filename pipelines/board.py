"""What ``bakeoff run`` shows while the stages run, and its closing summary.

Each stage writes progress events (:mod:`components.progress`) to its own file;
:class:`Board` keeps each stage's state from them, and a view shows it: a live
table (rich) on a terminal, or one plain line per event otherwise (CI, cron, a
log file). The frameworks' own output never reaches either: it goes to the
stage's log file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from components import progress

#: Where ``bakeoff run`` writes each stage's output and its events (not tracked).
LOG_DIR = Path("logs")
#: The outputs the closing summary reads, as dvc.yaml names them.
COMPARISON = Path("reports/comparison.json")
REPORT = Path("reports/comparison.md")
REGISTRY = Path("reports/registry.json")

WAITING, RUNNING, DONE, UNCHANGED, FAILED = "waiting", "running", "done", "unchanged", "failed"


def log_path(stage: str) -> Path:
    """The file a stage's whole output goes to."""
    return LOG_DIR / f"{stage}.log"


def events_path(stage: str) -> Path:
    """The file a stage's progress events go to."""
    return LOG_DIR / "events" / f"{stage}.jsonl"


@dataclass
class StageState:
    """One stage as its events describe it."""

    name: str
    state: str = WAITING
    started: float = 0.0
    seconds: float | None = None
    step: str = ""
    trial: int | None = None  # Optuna's number of the trial running
    index: tuple[int, int] | None = None  # its place in the budget: (i, N)
    epoch: tuple[int, int] | None = None  # (e, cap)
    metric: str = ""
    value: float | None = None  # the running trial's last epoch value
    best: float | None = None  # the study's best so far
    command_started: bool = False  # its command said so (DVC did not skip it as unchanged)

    def activity(self) -> str:
        """What the stage is doing now, in a few words."""
        parts = [self.step] if self.step else []
        if self.index is not None:
            parts.append(f"trial {self.index[0]}/{self.index[1]}")
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch[0]}/{self.epoch[1]}")
        if self.value is not None:
            parts.append(f"{self.metric} {self.value:.4f}")
        if self.best is not None:
            parts.append(f"best {self.best:.4f}")
        return " · ".join(parts)

    def elapsed(self, now: float) -> float:
        """Seconds it ran, or has been running."""
        if self.seconds is not None:
            return self.seconds
        return now - self.started if self.state == RUNNING else 0.0


class Board:
    """Every stage of the run and what its events said; each change as a plain line too."""

    def __init__(self, stages: Iterable[str]) -> None:
        self.stages = {name: StageState(name) for name in stages}

    def start(self, name: str) -> str:
        stage = self.stages[name]
        stage.state, stage.started = RUNNING, time.monotonic()
        return "running"

    def finish(self, name: str, status: int, ran: bool) -> str:
        stage = self.stages[name]
        stage.seconds = time.monotonic() - stage.started
        stage.step, stage.epoch, stage.value = "", None, None
        if status != 0:
            stage.state = FAILED
            return f"failed (exit status {status}) after {duration(stage.seconds)}"
        stage.state = DONE if ran else UNCHANGED
        return f"done in {duration(stage.seconds)}" if ran else "unchanged, not run"

    def apply(self, name: str, event: dict[str, Any]) -> str | None:
        """Update ``name`` with one event; the line a plain view prints for it, if any."""
        stage, kind = self.stages[name], event.get("kind")
        if kind == progress.STAGE and event.get("state") == "start":
            stage.command_started = True
            return None
        if kind == progress.STEP:
            stage.step = str(event.get("text", ""))
            return stage.step
        if kind == progress.RESULT:
            return str(event.get("text", ""))
        if kind == progress.TRIAL:
            return self._trial(stage, event)
        if kind == progress.EPOCH:
            return self._epoch(stage, event)
        return None

    def _trial(self, stage: StageState, event: dict[str, Any]) -> str:
        if event.get("state") == "start":
            stage.trial, stage.epoch, stage.value = event.get("trial"), None, None
            stage.index = (int(event.get("index", 0)), int(event.get("of", 0)))
            return f"trial {stage.index[0]}/{stage.index[1]} started (#{stage.trial})"
        if event.get("best") is not None:
            stage.best = float(event["best"])
        stage.epoch, stage.value = None, None  # the table shows the best from here on
        value = event.get("value")
        shown = f": {stage.metric or 'value'} {value:.4f}" if isinstance(value, float) else ""
        best = f"; best {stage.best:.4f}" if stage.best is not None else ""
        place = f"trial {stage.index[0]}/{stage.index[1]}" if stage.index else "trial"
        return f"{place} {event.get('state')}{shown}{best}"

    def _epoch(self, stage: StageState, event: dict[str, Any]) -> str:
        stage.epoch = (int(event.get("epoch", 0)), int(event.get("of", 0)))
        stage.metric = str(event.get("metric") or stage.metric)
        value = event.get("value")
        stage.value = float(value) if isinstance(value, (int, float)) else None
        place = f"trial {stage.index[0]}/{stage.index[1]} " if stage.index else ""
        shown = f": {stage.metric} {stage.value:.4f}" if stage.value is not None else ""
        return (
            f"{place}epoch {stage.epoch[0]}/{stage.epoch[1]}{shown} "
            f"({float(event.get('seconds', 0.0)):.1f} s)"
        )

    def times(self) -> str:
        """How long each stage took, in the run's order."""
        return ", ".join(
            f"{stage.name} {duration(stage.seconds)}"
            if stage.state in (DONE, FAILED) and stage.seconds is not None
            else f"{stage.name} {stage.state}"
            for stage in self.stages.values()
        )


class Events:
    """A stage's events file, read as it grows: whole lines only."""

    def __init__(self, path: Path) -> None:
        self.path, self._offset, self._partial = path, 0, b""

    def reset(self) -> None:
        """Start the file empty, for a new run of its stage."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")
        self._offset, self._partial = 0, b""

    def new(self) -> Iterator[dict[str, Any]]:
        """The events appended since the last call."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not an event: whatever wrote it, it is not shown
            if isinstance(event, dict):
                yield event


class PlainView:
    """One line per change, each behind its stage's name: for pipes, CI and log files."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def line(self, stage: str | None, text: str) -> None:
        prefix = f"[{stage}] " if stage else "bakeoff run: "
        self.out.write(f"{prefix}{text}\n")
        self.out.flush()

    def started(self, stage: str, text: str) -> None:
        self.line(stage, text)

    def event(self, stage: str, event: dict[str, Any], text: str | None) -> None:
        if text:
            self.line(stage, text)

    def refresh(self) -> None:
        return None


class LiveView:
    """A table of the stages, redrawn in place, with the stages' results printed above it."""

    def __init__(self, out: TextIO, board: Board) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=out, highlight=False)
        self.board = board
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._table())
        self.live.__exit__(None, None, None)

    def line(self, stage: str | None, text: str) -> None:
        prefix = f"[{stage}] " if stage else "bakeoff run: "
        self.console.print(prefix + text, markup=False)

    def started(self, stage: str, text: str) -> None:
        self.refresh()  # the table says so

    def event(self, stage: str, event: dict[str, Any], text: str | None) -> None:
        # Results and ended trials stay above the table; the rest only updates its cells.
        kind = event.get("kind")
        ended = kind == progress.TRIAL and event.get("state") != "start"
        if text and (kind == progress.RESULT or ended):
            self.line(stage, text)
        self.live.update(self._table(), refresh=True)  # every event drawn, however short-lived

    def refresh(self) -> None:
        self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("stage", "state", "progress", "time"):
            table.add_column(column, no_wrap=column != "progress")
        for stage in self.board.stages.values():
            seconds = stage.elapsed(now)
            table.add_row(
                Text(stage.name),
                Text(stage.state, style=_STYLES.get(stage.state, "")),
                Text(stage.activity()),
                Text(duration(seconds) if seconds else ""),
            )
        return table


# Cells are rich Text, not markup: a line printed above the table without markup
# would otherwise show a redrawn table's markup as text.
_STYLES = {RUNNING: "yellow", DONE: "green", FAILED: "red", UNCHANGED: "dim", WAITING: "dim"}


def view_for(out: TextIO, board: Board, live: bool | None = None) -> PlainView | LiveView:
    """A live table on a terminal, plain lines anywhere else."""
    if live is None:
        from rich.console import Console

        live = Console(file=out).is_terminal
    return LiveView(out, board) if live else PlainView(out)


def duration(seconds: float | None) -> str:
    """``8.2 s``, ``3 min 05 s``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def summary(root: Path, board: Board, seconds: float) -> list[str]:
    """The closing lines: verdict, champion, where to look, how long each stage took.

    Read from the outputs the stages wrote (whether this run wrote them or an
    earlier one, they are the graph's current results).
    """
    from components.contracts import ContractError, load_comparison, load_registry_record

    lines = [f"finished in {duration(seconds)}"]
    if (root / COMPARISON).is_file():
        try:
            comparison = load_comparison(root / COMPARISON)
            lines.append(
                f"  verdict:  {comparison.winner} wins on {comparison.metric} "
                f"({comparison.decided_by}): {comparison.reason}"
            )
        except ContractError as err:
            lines.append(f"  verdict:  unreadable ({err})")
    if (root / REGISTRY).is_file():
        try:
            lines.append(f"  champion: {_champion(load_registry_record(root / REGISTRY))}")
        except ContractError as err:
            lines.append(f"  champion: unreadable ({err})")
    if (root / REPORT).is_file():
        lines.append(f"  report:   {REPORT.as_posix()}")
    lines.append(
        "  look:     make ui (MLflow, http://127.0.0.1:5000) · bakeoff tensorboard (trials)"
    )
    lines.append(f"  stages:   {board.times()}")
    lines.append(f"  logs:     {(LOG_DIR / '<stage>.log').as_posix()}")
    return lines


def _champion(record: Any) -> str:
    before = record.champion_before.get("version")
    named = f"{record.model_name} version {record.version} ({record.framework})"
    if record.experiment:
        return f"{named}, from DVC experiment {record.experiment}; no alias moved: {record.reason}"
    if record.promoted:
        moved = f"alias moved from version {before}" if before else "alias set"
        return f"{named} is the champion; {moved}: {record.reason}"
    kept = f"version {before}" if before else "the champion"
    return f"{named} is {record.alias}; alias stays on {kept}: {record.reason}"


def tail(path: Path, lines: int) -> Sequence[str]:
    """The last non-empty ``lines`` of a log file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
