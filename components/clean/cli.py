"""``bakeoff clean``: validate the snapshot, quarantine bad rows, write the splits and constants."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from components import progress
from components.clean.core import CleanParams, clean
from components.clean.schema import dump_schema, load_schema
from components.errors import DataError
from components.outputs import staged_outputs
from components.params import load_params, section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the stage's options (paths match dvc.yaml)."""
    parser.add_argument(
        "--params", default="params.yaml", help="params file with a 'clean' section"
    )
    parser.add_argument("--snapshot", required=True, help="Parquet snapshot written by ingest")
    parser.add_argument("--manifest", required=True, help="JSON manifest written by ingest")
    parser.add_argument(
        "--schema", required=True, help="schema YAML: read if present, else inferred and written"
    )
    parser.add_argument("--out-dir", required=True, help="folder for train/val/test.parquet")
    parser.add_argument(
        "--preprocessing", required=True, help="JSON of the shared preprocessing constants"
    )
    parser.add_argument(
        "--quarantine", required=True, help="Parquet of the dropped rows with their reasons"
    )
    parser.add_argument(
        "--report", required=True, help="JSON data-quality report (a DVC metrics file)"
    )


def run(args: argparse.Namespace) -> None:
    """Run the stage; on any error every previous output stays as it was."""
    params = CleanParams.from_section(section(load_params(args.params), "clean"))
    manifest = _read_manifest(Path(args.manifest))
    raw = _read_snapshot(Path(args.snapshot))
    schema_path = Path(args.schema)
    schema = load_schema(schema_path) if schema_path.exists() else None
    result = clean(
        raw,
        manifest,
        schema,
        params,
        snapshot_name=Path(args.snapshot).as_posix(),
        schema_name=schema_path.as_posix(),
    )
    out_dir = Path(args.out_dir)
    with staged_outputs() as outputs:
        for name, frame in result.splits.items():
            frame.to_parquet(outputs.path_for(out_dir / f"{name}.parquet"), index=False)
        result.quarantine.to_parquet(outputs.path_for(args.quarantine), index=False)
        outputs.write_json(args.preprocessing, result.preprocessing.to_dict())
        outputs.write_json(args.report, result.report)
        if result.schema_inferred:
            outputs.write_text(
                schema_path, dump_schema(result.schema, Path(args.snapshot).as_posix())
            )
    rows = result.report["rows"]
    progress.say(
        f"clean: {rows['kept']} of {rows['input']} rows kept "
        f"(train {rows['train']}, val {rows['val']}, test {rows['test']}), "
        f"{rows['quarantined']} quarantined -> {args.quarantine}"
        + (f"; schema inferred -> {schema_path}" if result.schema_inferred else "")
    )
    for note in result.notes:
        progress.say(f"clean: note: {note}")


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path.as_posix(), "manifest not found; run the ingest stage first") from None
    except ValueError as err:
        raise DataError(path.as_posix(), f"unreadable manifest: {err}") from None
    for key in ("label", "task", "features"):
        if key not in manifest:
            raise DataError(path.as_posix(), f"manifest has no '{key}'; run the ingest stage again")
    return manifest


def _read_snapshot(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(path.as_posix(), "snapshot not found; run the ingest stage first") from None
    except Exception as err:  # pyarrow raises several unrelated types for a damaged file
        raise DataError(
            path.as_posix(), f"unreadable snapshot: {str(err).splitlines()[0]}"
        ) from None
