"""The two training stages at the same time (``bakeoff run``) versus one after the other (``dvc repro``).

In a throwaway copy of the repository, on the default data (digits), with the
same budget for both modes: the real stages, DVC and all. Before each
measurement the training outputs, Optuna studies, Lightning checkpoints and
TFX pipeline root are deleted (and TFX caching is off), so each mode trains
both frameworks from scratch and does the same work; ingest and clean are up
to date and cost both modes the same DVC check.

Figure: wall time of ``bakeoff run`` divided by that of plain ``dvc repro``
(goal <= 0.8), on this machine's cores.

    .venv/bin/python benchmarks/parallel_training.py [--trials 6] [--epochs 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "parallel_training.json"
FRAMEWORKS = ("tensorflow", "pytorch")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def prepare(folder: Path, trials: int, epochs: int) -> Path:
    """A working copy with the benchmark's budget, its data stages already run."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import copy_repository

    repo = copy_repository(folder)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(trials=trials, epochs=epochs)
    params["train_tensorflow"]["cache"] = False
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["dvc", "repro", "clean"], cwd=repo, env=_env(), check=True, capture_output=True)
    return repo


def reset(repo: Path) -> None:
    """Forget every trace of training, so the next run trains both frameworks from scratch."""
    for name in ("optuna", "lightning", "tfx", *(f"models/{f}" for f in FRAMEWORKS)):
        shutil.rmtree(repo / name, ignore_errors=True)
    for framework in FRAMEWORKS:
        (repo / "metrics" / f"{framework}.json").unlink(missing_ok=True)


def timed(repo: Path, command: list[str]) -> dict:
    """Wall time of one mode, and what each stage reported."""
    reset(repo)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=repo, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    metrics = {
        framework: json.loads((repo / "metrics" / f"{framework}.json").read_text())
        for framework in FRAMEWORKS
    }
    return {
        "wall_s": wall,
        "trials": {f: m["trials"] for f, m in metrics.items()},
        "training_s": {f: m["training_seconds"] for f, m in metrics.items()},
    }


def main() -> None:
    """Measure both modes, print and write the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trial budget of each framework")
    parser.add_argument("--epochs", type=int, default=10, help="epoch cap per trial")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each mode")
    args = parser.parse_args()
    modes = {"serial": ["dvc", "repro"], "concurrent": ["bakeoff", "run"]}
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as tmp:
        repo = prepare(Path(tmp), args.trials, args.epochs)
        for round_ in range(args.rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for mode in order:
                runs[mode].append(timed(repo, modes[mode]))
                print(
                    f"{mode}: {runs[mode][-1]['wall_s']:.1f} s {runs[mode][-1]['trials']}",
                    flush=True,
                )
    walls = {mode: statistics.median(r["wall_s"] for r in runs[mode]) for mode in modes}
    ratio = walls["concurrent"] / walls["serial"]
    report = {
        "benchmark": "parallel_training",
        "goal": "ratio <= 0.8",
        "cpus": len(os.sched_getaffinity(0)),
        "trials": args.trials,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "serial_s": walls["serial"],
        "concurrent_s": walls["concurrent"],
        "ratio": ratio,
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"serial {walls['serial']:.1f} s, concurrent {walls['concurrent']:.1f} s: "
        f"ratio {ratio:.2f} (goal <= 0.8); written to {RESULTS}"
    )


if __name__ == "__main__":
    main()
