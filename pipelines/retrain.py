"""``bakeoff retrain``: retrain when new data has landed, and keep a history of every attempt.

One attempt:

1. takes the retrain lock, a non-blocking ``flock`` on a file in ``.dvc/tmp``: a
   second retrain started while one runs is refused at once and says whose lock
   it is (the kernel drops the lock with its process, so a killed retrain
   leaves no stale lock behind);
2. compares the data source in ``params.yaml``'s ``ingest`` section with the
   files the last ingest recorded in its manifest (paths and sha256); when
   nothing was added, changed or removed it stops there, in about a second;
3. otherwise brings the DVC graph up to date as ``bakeoff run`` does, the
   trainers side by side; the register stage's gate decides whether the
   ``champion`` alias moves;
4. appends one JSON line to the retraining history (time, data hash, both
   frameworks' test metrics, the winner, promoted or not and why), and tags
   every MLflow run the attempt made, and the version it registered, with the
   attempt's id.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from components.contracts import (
    Comparison,
    RegistryRecord,
    load_comparison,
    load_registry_record,
)
from components.errors import BakeoffError

T = TypeVar("T")

if TYPE_CHECKING:
    from components.ingest.core import IngestParams

#: Exit status of a retrain refused because another one holds the lock (EX_TEMPFAIL:
#: a scheduler may try again later).
LOCKED_STATUS = 75
TAG_RETRAIN = "bakeoff.retrain"


class Locked(BakeoffError):
    """Another retrain holds the lock."""


@dataclass(frozen=True)
class DataCheck:
    """How the data source differs from what the last ingest read."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    first: bool = False  # nothing was ingested yet

    @property
    def new(self) -> bool:
        """Whether there is anything to retrain on."""
        return self.first or bool(self.added or self.changed or self.removed)

    def describe(self) -> str:
        """One line for the console and the history."""
        if not self.new:
            return "no new data since the last ingest"
        parts = [
            f"{label} {', '.join(paths)}"
            for label, paths in (
                ("added", self.added),
                ("changed", self.changed),
                ("removed", self.removed),
            )
            if paths
        ]
        return (
            "new data: " + "; ".join(parts) + (" (nothing ingested before)" if self.first else "")
        )


def compare_sources(current: Mapping[str, str], manifest: Mapping[str, Any] | None) -> DataCheck:
    """Compare the source's files now (path to sha256) with the last ingest's manifest."""
    if manifest is None:
        return DataCheck(added=tuple(sorted(current)), first=True)
    recorded = {entry["path"]: entry["sha256"] for entry in manifest.get("files", [])}
    return DataCheck(
        added=tuple(sorted(set(current) - set(recorded))),
        changed=tuple(sorted(p for p in current if p in recorded and current[p] != recorded[p])),
        removed=tuple(sorted(set(recorded) - set(current))),
    )


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the retrain lock at ``path`` while the block runs; :class:`Locked` if it is taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open's descriptors are not inherited: the stages' processes never hold the lock.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 200).decode(errors="replace").strip() or "unknown holder"
        os.close(descriptor)
        raise Locked(
            f"another retrain is running ({holder}; lock {path}); this one did nothing"
        ) from None
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} since {_now()}\n".encode())
        yield
    finally:
        os.close(descriptor)


def append_history(path: Path, entry: Mapping[str, Any]) -> None:
    """Append one attempt to the JSON Lines history, in one write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def outcome_of(
    status: int, before: RegistryRecord | None, after: RegistryRecord | None
) -> dict[str, Any]:
    """What a pipeline run did to the registry, from its exit status and the register records."""
    if status != 0:
        return {"outcome": "failed", "reason": f"the pipeline failed (exit status {status})"}
    if after is None or (before is not None and before.mlflow_run_id == after.mlflow_run_id):
        return {
            "outcome": "unchanged",
            "reason": "the pipeline was up to date after ingest and clean; no version was registered",
        }
    return {
        "outcome": "retrained",
        "version": after.version,
        "winner": after.framework,
        "alias": after.alias,
        "promoted": after.promoted,
        "reason": after.reason,
    }


def frameworks_of(comparison: Comparison | None) -> dict[str, Any]:
    """Each framework's scalar test metrics in a comparison report."""
    if comparison is None:
        return {}
    return {
        name: {f"test/{key}": value for key, value in compared.test.items()}
        for name, compared in comparison.frameworks.items()
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff retrain``; the paths match dvc.yaml."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument(
        "--manifest", default="data/raw/manifest.json", help="the ingest stage's manifest"
    )
    parser.add_argument(
        "--comparison", default="reports/comparison.json", help="the evaluate stage's comparison"
    )
    parser.add_argument(
        "--registry", default="reports/registry.json", help="the register stage's record"
    )
    parser.add_argument(
        "--history",
        default="reports/retrain_history.jsonl",
        help="the retraining history: one JSON line per attempt, appended",
    )
    parser.add_argument(
        "--lock", default=".dvc/tmp/bakeoff-retrain.lock", help="the lock file of retraining"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only say whether there is new data to retrain on"
    )


def run(args: argparse.Namespace) -> int:
    """Retrain if new data has landed; the exit status (75 when another retrain runs)."""
    root = Path.cwd()
    started = time.time()
    attempt = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    entry: dict[str, Any] = {"id": attempt, "time": _now(started)}
    history = Path(args.history)
    try:
        with exclusive(Path(args.lock)):
            try:
                return _attempt(args, root, started, attempt, entry)
            except BaseException as error:
                # The attempt still gets its line: a schedule's failures are history too.
                entry.setdefault("outcome", "failed")
                entry.setdefault("reason", str(error) or type(error).__name__)
                raise
            finally:
                if not args.dry_run:
                    entry["seconds"] = round(time.time() - started, 1)
                    append_history(history, entry)
    except Locked as refused:
        print(f"bakeoff retrain: {refused}", file=sys.stderr)
        if not args.dry_run:
            append_history(history, {**entry, "outcome": "refused", "reason": str(refused)})
        return LOCKED_STATUS


def _attempt(
    args: argparse.Namespace, root: Path, started: float, attempt: str, entry: dict[str, Any]
) -> int:
    from components.ingest.core import IngestParams, source_files
    from components.params import load_params, section

    params = load_params(args.params)
    ingest = IngestParams.from_section(section(params, "ingest"))
    manifest_path = Path(args.manifest)
    manifest = _read_json(manifest_path)
    check = compare_sources(source_files(ingest, shown_root=root), manifest)
    entry.update(data=check.describe(), dataset=ingest.name)
    if not check.new:
        entry.update(outcome="no_new_data", data_sha256=_snapshot_hash(manifest))
        print(f"bakeoff retrain: {check.describe()} ({_source(ingest, root)}); nothing to do")
        return 0
    print(f"bakeoff retrain: {check.describe()}; running the pipeline")
    if args.dry_run:
        return 0

    from pipelines import runner

    before = _optional(load_registry_record, Path(args.registry))
    status = runner.reproduce(root)
    after = _optional(load_registry_record, Path(args.registry))
    entry.update(data_sha256=_snapshot_hash(_read_json(manifest_path)))
    entry.update(outcome_of(status, before, after))
    if entry["outcome"] == "retrained":
        entry["frameworks"] = frameworks_of(_optional(load_comparison, Path(args.comparison)))
    registered = after if entry["outcome"] == "retrained" else None
    try:
        entry["mlflow_runs_tagged"] = _tag_runs(
            params, root, ingest.name, started, attempt, registered
        )
    except Exception as error:  # bookkeeping: a tracking server that is down loses no history
        entry["mlflow_runs_tagged"] = f"not tagged: {error}"
        print(f"bakeoff retrain: could not tag the MLflow runs: {error}", file=sys.stderr)
    _summarise(entry, sys.stdout)
    return status


def _tag_runs(
    params: Mapping[str, Any],
    root: Path,
    dataset: str,
    started: float,
    attempt: str,
    registered: RegistryRecord | None,
) -> int:
    """Tag the runs this attempt made (those started since) and the version it registered."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.params import section
    from components.training import tracking
    from components.training.search import TuningParams

    uri = tracking.tracking_uri(
        TuningParams.from_section(section(params, "train")).tracking_uri, root
    )
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(dataset or "bakeoff")
    if experiment is None:
        return 0
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.start_time >= {int(started * 1000)}",
        max_results=10_000,
    )
    for found in runs:
        client.set_tag(found.info.run_id, TAG_RETRAIN, attempt)
    if registered is not None:
        version = registered.version
        try:
            client.set_model_version_tag(registered.model_name, version, TAG_RETRAIN, attempt)
        except MlflowException as error:
            print(f"bakeoff retrain: could not tag version {version}: {error}", file=sys.stderr)
    return len(runs)


def _summarise(entry: Mapping[str, Any], out: TextIO) -> None:
    if entry["outcome"] == "retrained":
        metrics = "; ".join(
            f"{name} " + ", ".join(f"{key} {value:.4f}" for key, value in sorted(values.items()))
            for name, values in sorted(entry.get("frameworks", {}).items())
        )
        out.write(
            f"bakeoff retrain: version {entry['version']} ({entry['winner']}) is "
            f"{entry['alias']}: {entry['reason']}\n"
        )
        if metrics:
            out.write(f"bakeoff retrain: test metrics: {metrics}\n")
    else:
        out.write(f"bakeoff retrain: {entry['outcome']}: {entry['reason']}\n")
    out.flush()


def _source(ingest: IngestParams, root: Path) -> str:
    from components.ingest.core import shown_path

    if ingest.source == "builtin":
        return f"built-in data set {ingest.builtin}"
    return f"{ingest.source} {shown_path(ingest.path, root)}"


def _snapshot_hash(manifest: Mapping[str, Any] | None) -> str | None:
    return None if manifest is None else manifest.get("snapshot", {}).get("sha256")


def _optional(load: Callable[[Path], T], path: Path) -> T | None:
    """A contract file, or None when it does not exist yet (a first run)."""
    return load(path) if path.is_file() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise BakeoffError(f"{path}: not valid JSON ({error})") from error


def _now(seconds: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if seconds is None else seconds, dt.timezone.utc)
    return moment.replace(microsecond=0).isoformat()
