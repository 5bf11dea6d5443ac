"""``bakeoff run``: execute the DVC graph of this repository, the trainers side by side.

DVC decides what is out of date from ``dvc.yaml`` and ``dvc.lock``; this runs the
same stages as ``dvc repro`` would, in three steps:

1. ``dvc repro`` of the stages the training stages depend on;
2. one ``dvc --wait-for-lock repro -s train@<framework>`` per training stage, all
   at once, each with its share of the devices (:mod:`pipelines.devices`);
3. when they all succeeded, ``dvc repro`` of the rest.

This is DVC's documented way of running independent branches in parallel
(several ``dvc repro`` processes in one workspace). DVC releases its repository
lock while a stage's command runs and holds it while it records the stage, so
each process writes its own ``dvc.lock`` entry. ``-s`` keeps a process from
checking the upstream stages again, whose outputs the other process holds a read
lock on; ``--wait-for-lock`` makes a trainer that ends while the other process is
recording wait its turn instead of failing after DVC's default three seconds and
losing its run.

Each stage's whole output (DVC's and the frameworks') goes to
``logs/<stage>.log``; what the run shows comes from the progress events the
stages write (:mod:`pipelines.board`): a live table on a terminal, one line per
event otherwise, then a closing summary. A failed stage's last log lines are
repeated. ``--verbose`` streams everything instead, as ``dvc repro`` would: one
plain ``dvc repro`` with fewer than two training stages, the training stages'
lines behind their names otherwise. ``--serial`` is one plain ``dvc repro``.
Stage commands find the ``bakeoff`` command of the interpreter running this.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from components import progress
from pipelines import board, devices

#: The foreach stage in dvc.yaml whose items are the frameworks.
TRAINING_PREFIX = "train@"
#: The stage that writes every format of the winner (some need tools outside the lock).
EXPORT = "export"

# How many of a failed stage's last output lines to repeat in the summary.
_TAIL_LINES = 8
# Seconds an interrupted stage gets to stop before it is terminated.
_INTERRUPT_GRACE_S = 10.0
# Seconds between looks at the running stages' events.
_POLL_S = 0.2


@dataclass(frozen=True)
class Plan:
    """The stages ``dvc repro <targets>`` would consider, split into the three steps."""

    before: tuple[str, ...]
    training: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def concurrent(self) -> bool:
        """Whether there is more than one training stage to run side by side."""
        return len(self.training) > 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff run``."""
    parser.add_argument(
        "stages",
        nargs="*",
        help="stages to bring up to date, as for dvc repro (default: all)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rerun the stages even if nothing changed"
    )
    parser.add_argument(
        "--serial",
        action="store_true",
        help="run one plain dvc repro, one stage after another, with no device split",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="stream every stage's whole output (DVC's and the frameworks') instead of progress",
    )


def stage_environment() -> dict[str, str]:
    """The environment for DVC's stage commands: this interpreter's scripts first on PATH."""
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def split_stages(order: Sequence[str], upstream: Mapping[str, set[str]]) -> Plan:
    """Split the stages DVC would run, in DVC's order, around the training stages.

    ``upstream`` maps each stage to every stage it depends on, directly or not.
    Stages that neither feed nor are training stages go last, after training.
    """
    training = tuple(stage for stage in order if stage.startswith(TRAINING_PREFIX))
    feeding = set().union(*(upstream.get(stage, set()) for stage in training))
    before = tuple(stage for stage in order if stage in feeding and stage not in training)
    after = tuple(stage for stage in order if stage not in feeding and stage not in training)
    return Plan(before, training, after)


def plan_stages(root: Path, targets: Sequence[str] = ()) -> Plan:
    """Ask DVC which stages ``dvc repro <targets>`` would consider in ``root``, and split them.

    Costs about a second and a half: importing DVC and building its index.
    """
    import networkx as nx
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    # DVC reads targets and names stages relative to the working directory.
    with _working_directory(root), Repo() as repo:
        graph = get_active_graph(repo.index.graph)
        stages = collect_stages(repo, list(targets) or ["dvc.yaml"])
        order = plan_repro(graph, stages)
        # DVC's graph points from a stage to the stages it depends on.
        upstream = {
            stage.addressing: {other.addressing for other in nx.descendants(graph, stage)}
            for stage in order
        }
        return split_stages([stage.addressing for stage in order], upstream)


def reproduce(
    root: Path,
    targets: Sequence[str] = (),
    force: bool = False,
    serial: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    verbose: bool = False,
    live: bool | None = None,
) -> int:
    """Bring ``targets`` (default: every stage) up to date in ``root``; the exit status.

    Progress and the closing summary go to ``out`` (a live table when ``live``,
    by default when ``out`` is a terminal), what failed to ``err``. ``verbose``:
    DVC's own output goes straight through and the training stages' lines are
    copied to ``out`` behind their stage's name.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    params = root / "params.yaml"
    skip = preflight(params) if params.is_file() else None
    env = stage_environment()
    serial_command = ["repro", *targets, *_force(force)]
    if serial:
        if skip is not None and not targets:
            export_tools(skip)
        return _dvc(serial_command, root, env)
    from dvc.exceptions import DvcException

    try:
        plan = plan_stages(root, targets)
    except (DvcException, ImportError) as error:
        # dvc repro itself will say what is wrong with the pipeline, in its words;
        # an ImportError is a DVC whose planning functions moved.
        _say(err, f"cannot plan the run ({error}); running dvc repro serially")
        return _dvc(serial_command, root, env)
    if skip is not None and EXPORT in plan.after:
        export_tools(skip)
    if not verbose:
        return _run_with_progress(plan, root, env, force, out, err, live)
    if not plan.concurrent:
        return _dvc(serial_command, root, env)

    if plan.before:
        status = _dvc(["repro", *_force(force), *plan.before], root, env)
        if status != 0:
            return status
    failed = _train(plan.training, root, env, force, out)
    if failed:
        for stage, (status, tail) in failed.items():
            _say(err, f"{stage} failed (dvc exit status {status}); its last lines:")
            err.writelines(f"[{stage}] {line}\n" for line in tail)
        _say(err, f"error: {', '.join(failed)} failed; the later stages were not run")
        return next(iter(failed.values()))[0]
    if force and plan.after:
        # A forced `dvc repro <targets>` would run the stages just run once more.
        return _dvc(["repro", "-s", "--force", *plan.after], root, env)
    # Runs whatever is left; with nothing left DVC reports that all is up to date.
    return _dvc(["repro", *targets], root, env)


def preflight(params_file: Path) -> frozenset[str]:
    """The sections of the stages after the studies, checked before any stage runs; the skipped formats.

    Their stages read them only once both studies are over; a key refused there
    would cost the whole tuning budget first. Raises the stage's own ParamsError.
    Returns ``export.skip_formats``, for :func:`export_tools`.
    """
    from components.evaluate.stats import Resampling
    from components.export.cli import limits_from, skip_from
    from components.params import load_params
    from components.refit.cli import params_from, seeds_from
    from components.register.core import RegisterParams

    params = load_params(params_file)
    evaluate = params.get("evaluate") or {}
    limits_from(params.get("export") or {})
    skip = skip_from(params.get("export") or {})
    params_from(params.get("refit") or {})
    seeds_from(evaluate)
    Resampling.from_section(evaluate)
    RegisterParams.from_section(params.get("register") or {}, "preflight", evaluate)
    return skip


def export_tools(skip: frozenset[str]) -> None:
    """Every framework's export tools but the ``skip``ped formats' (the winner is not known yet).

    Raises the backend's one-line BakeoffError naming what is missing and the fix.
    """
    from components import backends

    for name in backends.names():
        backends.get(name).check_export_tools(skip)


def run(args: argparse.Namespace) -> int:
    """Run the requested stages, the training stages side by side; the exit status."""
    return reproduce(
        Path.cwd(), args.stages, force=args.force, serial=args.serial, verbose=args.verbose
    )


def _run_with_progress(
    plan: Plan,
    root: Path,
    env: Mapping[str, str],
    force: bool,
    out: TextIO,
    err: TextIO,
    live: bool | None,
) -> int:
    """Each stage in its own ``dvc repro -s``, the trainers together; progress from their events."""
    stages = [*plan.before, *plan.training, *plan.after]
    steps: list[tuple[str, ...]] = [(stage,) for stage in plan.before]
    steps += [plan.training] if plan.training else []
    steps += [(stage,) for stage in plan.after]
    training, shares = _training_environments(plan.training, env)
    envs = {stage: training.get(stage, dict(env)) for stage in stages}
    state = board.Board(stages)
    failed: dict[str, int] = {}
    began = time.monotonic()
    with board.view_for(out, state, live) as view:
        for stage in plan.training:
            view.line(None, f"{stage} gets {shares[stage]}")
        for step in steps:
            failed = _run_step(step, root, envs, force, state, view)
            if failed:
                break
    for stage, status in failed.items():
        log = board.log_path(stage)
        _say(err, f"{stage} failed (dvc exit status {status}); the last lines of {log}:")
        err.writelines(f"[{stage}] {line}\n" for line in board.tail(root / log, _TAIL_LINES))
    if failed:
        later = [name for name, one in state.stages.items() if one.state == board.WAITING]
        _say(err, f"stages: {state.times()}")
        _say(
            err,
            f"error: {', '.join(failed)} failed"
            + (f"; not run: {', '.join(later)}" if later else ""),
        )
        return next(iter(failed.values()))
    for line in board.summary(root, state, time.monotonic() - began):
        out.write(f"bakeoff run: {line}\n" if not line.startswith(" ") else f"{line}\n")
    out.flush()
    return 0


def _run_step(
    stages: Sequence[str],
    root: Path,
    envs: Mapping[str, Mapping[str, str]],
    force: bool,
    state: board.Board,
    view: board.PlainView | board.LiveView,
) -> dict[str, int]:
    """Run ``stages`` together, each with its output in its log; the failed ones' statuses."""
    command = _stage_command(force)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    events: dict[str, board.Events] = {}
    recorded = {stage: _locked_entry(root, stage) for stage in stages}
    for stage in stages:
        log = root / board.log_path(stage)
        log.parent.mkdir(parents=True, exist_ok=True)
        events[stage] = board.Events(root / board.events_path(stage))
        events[stage].reset()
        env = {**envs[stage], progress.EVENTS: str(events[stage].path)}
        with log.open("wb") as handle:
            processes[stage] = subprocess.Popen(
                [*command, stage],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                # Its own process group: an interrupt reaches DVC and the stage command
                # together, whether the terminal or a kill sent it (see _interrupt).
                start_new_session=True,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        view.started(stage, state.start(stage))
    statuses: dict[str, int] = {}
    try:
        while len(statuses) < len(processes):
            for stage, process in processes.items():
                if stage in statuses:
                    continue
                status = process.poll()
                for event in events[stage].new():  # what it wrote up to its end, too
                    view.event(stage, event, state.apply(stage, event))
                if status is None:
                    continue
                # A stage killed by a signal reports it negated; a shell would say 128 + signal.
                statuses[stage] = 128 - status if status < 0 else status
                ran = (
                    force
                    or state.stages[stage].command_started
                    or (_locked_entry(root, stage) != recorded[stage])
                )
                view.line(stage, state.finish(stage, statuses[stage], ran))
            view.refresh()
            time.sleep(_POLL_S)
    except KeyboardInterrupt:
        _interrupt(list(processes.values()))
        raise
    return {stage: status for stage, status in statuses.items() if status != 0}


def _locked_entry(root: Path, stage: str) -> object:
    """What dvc.lock records of ``stage`` (a changed entry: DVC ran it)."""
    import yaml

    try:
        locked = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    except FileNotFoundError:
        return None
    return (locked.get("stages") or {}).get(stage)


def _train(
    stages: Sequence[str], root: Path, env: Mapping[str, str], force: bool, out: TextIO
) -> dict[str, tuple[int, list[str]]]:
    envs, shares = _training_environments(stages, env)
    for stage in stages:
        _say(out, f"starting {stage} with {shares[stage]}")
    command = _stage_command(force)
    return _run_concurrently({stage: [*command, stage] for stage in stages}, root, envs, out)


def _training_environments(
    stages: Sequence[str], env: Mapping[str, str]
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Each training stage's environment with its share of the devices, and that share in words."""
    shares = devices.plan(stages, devices.visible_gpus(env), devices.available_cpus())
    # Unbuffered: a Python trainer's lines would otherwise reach their pipe or log in blocks.
    envs = {stage: {"PYTHONUNBUFFERED": "1", **env, **shares[stage]} for stage in stages}
    described = {
        stage: " ".join(f"{key}={value}" for key, value in sorted(shares[stage].items()))
        for stage in stages
    }
    return envs, described


def _stage_command(force: bool) -> list[str]:
    """``dvc repro`` of one stage alone, waiting its turn for DVC's lock; the stage name follows.

    -s: the upstream stages are up to date by then, and checking them again would
    need locks on outputs the other trainers are reading.
    """
    return [_dvc_executable(), "--wait-for-lock", "repro", "-s", *_force(force)]


def _run_concurrently(
    commands: Mapping[str, list[str]],
    root: Path,
    envs: Mapping[str, Mapping[str, str]],
    out: TextIO,
) -> dict[str, tuple[int, list[str]]]:
    """Start every command, copy their output line by line, and wait for all of them.

    Returns each failed stage's exit status and last lines. One stage failing does
    not stop the others: what they finish, DVC records.
    """
    write_lock = threading.Lock()
    processes: dict[str, subprocess.Popen[str]] = {}
    tails: dict[str, deque[str]] = {}
    readers: list[threading.Thread] = []
    for stage, command in commands.items():
        process = subprocess.Popen(
            command,
            cwd=root,
            env=dict(envs[stage]),
            stdin=subprocess.DEVNULL,
            # Its own process group: an interrupt reaches DVC and the stage command
            # together, whether the terminal or a kill sent it (see _interrupt).
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Text mode reads "\r" as a line end too, so progress bars come out as lines.
            text=True,
            errors="replace",
            bufsize=1,
        )
        processes[stage] = process
        tails[stage] = deque(maxlen=_TAIL_LINES)
        reader = threading.Thread(
            target=_copy_lines,
            args=(stage, process, out, write_lock, tails[stage]),
            daemon=True,
        )
        reader.start()
        readers.append(reader)
    try:
        statuses = {stage: process.wait() for stage, process in processes.items()}
    except KeyboardInterrupt:
        _interrupt(list(processes.values()))
        raise
    for reader in readers:
        reader.join()
    # A stage killed by a signal reports it negated; a shell would say 128 + signal.
    return {
        stage: (128 - status if status < 0 else status, list(tails[stage]))
        for stage, status in statuses.items()
        if status != 0
    }


def _copy_lines(
    stage: str,
    process: subprocess.Popen[str],
    out: TextIO,
    write_lock: threading.Lock,
    tail: deque[str],
) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        tail.append(line)
        # One whole line at a time, so the stages' lines never mix mid-line.
        with write_lock:
            out.write(f"[{stage}] {line}\n")
            out.flush()
    process.stdout.close()


def _interrupt(processes: Sequence[subprocess.Popen[Any]]) -> None:
    # Each stage runs in a process group of its own, out of the terminal's reach, so
    # Ctrl-C is passed on here, to DVC and its stage command alike; a stage that
    # does not stop within the grace period is terminated.
    deadline = time.monotonic() + _INTERRUPT_GRACE_S
    for wanted in (signal.SIGINT, signal.SIGTERM):
        for process in processes:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, wanted)
        for process in processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        process.wait()


def _dvc(arguments: list[str], root: Path, env: Mapping[str, str]) -> int:
    return subprocess.run(
        [_dvc_executable(), *arguments], cwd=root, env=dict(env), check=False
    ).returncode


def _dvc_executable() -> str:
    return str(Path(sys.executable).parent / "dvc")


def _force(force: bool) -> list[str]:
    return ["--force"] if force else []


def _say(out: TextIO, message: str) -> None:
    out.write(f"bakeoff run: {message}\n")
    out.flush()


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
