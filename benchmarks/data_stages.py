"""Ingest + clean of a synthetic 64-feature table at 100,000 and 1,000,000 rows.

Each stage runs in its own process, as under DVC, through its real entry code
(reading the Parquet source, writing the snapshot, validating, splitting,
writing every output), timed inside the process so interpreter start and
imports are not counted; peak memory is each process's max RSS. Prints and writes rows/s, peak memory (max RSS) and the time ratio of
the large size to the small one, which stays near 10 when cost is linear.

    .venv/bin/python benchmarks/data_stages.py [--sizes 100000 1000000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUMERIC = 60
CATEGORICAL = 4
RESULTS = ROOT / "benchmarks" / "results" / "data_stages.json"


def synthetic(rows: int, seed: int = 0) -> pd.DataFrame:
    """60 numeric and 4 categorical features, a 10-class label, and a realistic sprinkle of bad rows."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        np.clip(rng.normal(0, 1, (rows, NUMERIC)), -4, 4).round(4),
        columns=[f"f{i:02d}" for i in range(NUMERIC)],
    )
    levels = np.array([f"level_{i}" for i in range(8)])
    for i in range(CATEGORICAL):
        frame[f"c{i}"] = levels[rng.integers(0, len(levels), rows)]
    frame["label"] = rng.integers(0, 10, rows)
    bad = max(1, rows // 1000)  # 0.1% of rows each: a missing cell, an out-of-range cell, a repeat
    numbers = frame.iloc[:, :NUMERIC].to_numpy()
    numbers[rng.integers(0, rows, bad), rng.integers(0, NUMERIC, bad)] = np.nan
    numbers[rng.integers(0, rows, bad), rng.integers(0, NUMERIC, bad)] = 50.0
    frame.iloc[:, :NUMERIC] = numbers
    repeats = rng.integers(0, rows, bad)
    frame.iloc[rng.integers(0, rows, bad)] = frame.iloc[repeats].to_numpy()
    return frame


def prepare(folder: Path, rows: int) -> None:
    """Write the source table, params.yaml and a schema whose ranges exclude the injected values."""
    from components.clean.schema import dump_schema, infer_schema

    frame = synthetic(rows)
    frame.to_parquet(folder / "source.parquet", index=False)
    features = tuple(c for c in frame.columns if c != "label")
    sample = synthetic(10_000, seed=1).dropna()
    sample = sample[(sample[list(features[:NUMERIC])].abs() <= 4).all(axis=1)]
    schema = infer_schema(
        sample,
        dataset="synthetic",
        label="label",
        task="classification",
        features=features,
        range_margin=0.25,
    )
    (folder / "schema.yaml").write_text(dump_schema(schema, "a clean synthetic sample"))
    params = {
        "ingest": {"source": "file", "path": str(folder / "source.parquet"), "label": "label"},
        "clean": {"policies": {"missing": "impute"}, "max_quarantine_share": 0.1},
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def worker(folder: Path, stage: str) -> dict[str, float]:
    """Run one stage's entry code in this process; return its time and this process's peak memory."""
    from components.clean import cli as clean_cli
    from components.ingest import cli as ingest_cli

    params = str(folder / "params.yaml")
    snapshot = str(folder / "raw" / "snapshot.parquet")
    manifest = str(folder / "raw" / "manifest.json")
    started = time.perf_counter()
    if stage == "ingest":
        ingest_cli.run(argparse.Namespace(params=params, snapshot=snapshot, manifest=manifest))
    else:
        clean_cli.run(
            argparse.Namespace(
                params=params,
                snapshot=snapshot,
                manifest=manifest,
                schema=str(folder / "schema.yaml"),
                out_dir=str(folder / "clean"),
                preprocessing=str(folder / "clean" / "preprocessing.json"),
                quarantine=str(folder / "quarantine.parquet"),
                report=str(folder / "data_quality.json"),
            )
        )
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": _peak_rss_mib()}


def _peak_rss_mib() -> float:
    # VmHWM belongs to this process image; ru_maxrss on Linux carries over the
    # parent's peak across fork and exec, and the parent made the whole table.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(rows: int, repeats: int) -> dict[str, float]:
    """Fastest of ``repeats`` runs at one size, each stage in a fresh process as DVC runs it."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-") as tmp:
        folder = Path(tmp)
        prepare(folder, rows)
        for _ in range(repeats):
            run = {}
            for stage in ("ingest", "clean"):
                result = subprocess.run(
                    [sys.executable, __file__, "--worker", str(folder), "--stage", stage],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                run[stage] = json.loads(result.stdout.strip().splitlines()[-1])
            report = json.loads((folder / "data_quality.json").read_text())
            runs.append(
                {
                    "ingest_s": run["ingest"]["seconds"],
                    "clean_s": run["clean"]["seconds"],
                    "total_s": run["ingest"]["seconds"] + run["clean"]["seconds"],
                    "ingest_peak_rss_mib": run["ingest"]["peak_rss_mib"],
                    "clean_peak_rss_mib": run["clean"]["peak_rss_mib"],
                    "peak_rss_mib": max(r["peak_rss_mib"] for r in run.values()),
                    "quarantined": report["rows"]["quarantined"],
                    "imputed_cells": report["imputed_cells"]["total"],
                }
            )
    best = min(runs, key=lambda run: run["total_s"])
    best["rows"] = rows
    best["rows_per_s"] = rows / best["total_s"]
    best["repeats"] = repeats
    return best


def main() -> None:
    """Measure every size, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="row counts"
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs per size; the fastest counts")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=("ingest", "clean"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS), help="JSON file to write")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.stage)))
        return
    sizes = {}
    for rows in args.sizes:
        sizes[str(rows)] = measure(rows, args.repeats)
        r = sizes[str(rows)]
        print(
            f"{rows:>9,} rows: ingest {r['ingest_s']:6.2f} s  clean {r['clean_s']:6.2f} s  "
            f"total {r['total_s']:6.2f} s  {r['rows_per_s']:>9,.0f} rows/s  "
            f"peak {r['ingest_peak_rss_mib']:,.0f} / {r['clean_peak_rss_mib']:,.0f} MiB"
        )
    small, large = min(args.sizes), max(args.sizes)
    result = {
        "benchmark": "ingest + clean, synthetic 64 features (60 numeric, 4 categorical), 10 classes",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "sizes": sizes,
        f"time_ratio_{large}_to_{small}": sizes[str(large)]["total_s"]
        / sizes[str(small)]["total_s"],
        "row_ratio": large / small,
    }
    print(
        f"time ratio {large:,} / {small:,} rows: {result[f'time_ratio_{large}_to_{small}']:.2f} (linear: {large / small:.0f})"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
