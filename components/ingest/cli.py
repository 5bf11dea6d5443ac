"""``bakeoff ingest``: read the source in params.yaml, write the snapshot and its manifest."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from components import progress
from components.ingest.core import IngestParams, ingest, manifest
from components.ingest.sources import sha256_of
from components.outputs import staged_outputs
from components.params import load_params, section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the stage's options (paths match dvc.yaml)."""
    parser.add_argument(
        "--params", default="params.yaml", help="params file with an 'ingest' section"
    )
    parser.add_argument("--snapshot", required=True, help="Parquet snapshot to write")
    parser.add_argument("--manifest", required=True, help="JSON manifest to write")


def run(args: argparse.Namespace) -> None:
    """Run the stage; on any error the old snapshot and manifest stay as they were."""
    params = IngestParams.from_section(section(load_params(args.params), "ingest"))
    snapshot = ingest(params, shown_root=Path.cwd())
    manifest_path = Path(args.manifest)
    with staged_outputs() as outputs:
        snapshot_tmp = outputs.path_for(args.snapshot)
        snapshot.frame.to_parquet(snapshot_tmp, index=False, engine="pyarrow")
        digest = sha256_of(snapshot_tmp)
        written = manifest(
            snapshot, Path(args.snapshot).as_posix(), digest, _ingested_at(manifest_path, digest)
        )
        outputs.write_json(manifest_path, written)
    progress.say(
        f"ingest: {written['rows']} rows x {written['columns']} columns from "
        f"{len(written['files'])} file(s) -> {args.snapshot} (label '{snapshot.label}', {snapshot.task})"
    )


def _ingested_at(manifest_path: Path, digest: str) -> str:
    # The same data keeps the time it was first ingested, so rerunning on an
    # unchanged source rewrites the manifest byte for byte and DVC sees no change.
    try:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if previous["snapshot"]["sha256"] == digest:
            return str(previous["ingested_at"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (
        dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
        if epoch
        else dt.datetime.now(dt.timezone.utc)
    )
    return now.replace(microsecond=0).isoformat()
