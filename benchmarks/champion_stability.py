"""Forced reruns on unchanged data never move the champion; a clearly better model does.

In a throwaway copy of the repository, on the default data (digits), with a
small budget (``--trials``, ``--epochs``, ``evaluate.seeds`` ``--seeds``):

1. ``bakeoff run``: version 1 takes the ``champion`` alias.
2. ``--forced`` times ``bakeoff run --force``, each after deleting every trace
   of training (Optuna studies, TFX pipeline root, Lightning checkpoints,
   models), so that both frameworks train again from scratch on the same data
   and each run's verdict, tie-break and gate meet whatever noise the machine
   brings. Each registers a new version; the figure is whether the alias
   stayed on version 1, every later version was registered as ``challenger``
   with its reason, and the champion's test score (on the same test split)
   never went down.
3. A control, so that a gate that never promotes cannot pass: in a second copy
   a deliberately weak champion (one trial of ``--weak-epochs`` epoch), then
   the same budget as above; the second version must be promoted.

Writes every run's decision (version, alias, reason, the improvement's
interval, the champion's score) and the machine to
``benchmarks/results/champion_stability.json`` and prints them; exits 1 when a
rule did not hold.

    .venv/bin/python benchmarks/champion_stability.py [--forced 4] [--trials 2]
        [--epochs 5] [--seeds 2] [--weak-epochs 1] [--out PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, and its test helpers' copy of it
RESULTS = ROOT / "benchmarks" / "results" / "champion_stability.json"
FRAMEWORKS = ("tensorflow", "pytorch")


def prepare(folder: Path, **train: int) -> Path:
    """A working copy of the repository with ``train`` in params and a small refit."""
    from tests.conftest import copy_repository, set_params

    repo = copy_repository(folder)
    set_params(repo, train=train, refit={"epochs": 2, "repeats": 2})
    return repo


def forget_training(repo: Path) -> None:
    """Every trace of training gone: the next run trains both frameworks from scratch."""
    for name in ("optuna", "lightning", "tfx", *(f"models/{f}" for f in FRAMEWORKS)):
        shutil.rmtree(repo / name, ignore_errors=True)


def run(repo: Path, *command: str) -> dict:
    """One pipeline run; the register stage's record and the champion after it."""
    from tests.conftest import stage_env

    started = time.perf_counter()
    result = subprocess.run(
        ["bakeoff", "run", *command], cwd=repo, env=stage_env(), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"bakeoff run {' '.join(command)} failed:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    record = json.loads((repo / "reports" / "registry.json").read_text())
    comparison = json.loads((repo / "reports" / "comparison.json").read_text())
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias(record["model_name"], "champion")
    before = record["champion_before"]
    champion_score = record["score"] if record["promoted"] else before["score"]
    row = {
        "wall_s": round(wall, 1),
        "version": record["version"],
        "framework": record["framework"],
        "alias": record["alias"],
        "promoted": record["promoted"],
        "reason": record["reason"],
        "improvement": record.get("improvement"),
        "score": record["score"],
        "champion_version": str(champion.version),
        "champion_score": champion_score,
        "verdict": {
            "winner": comparison["winner"],
            "decided_by": comparison["decided_by"],
            "tied": comparison["tied_with_leader"],
            "seeds": {n: f["seeds"]["scores"] for n, f in comparison["frameworks"].items()},
        },
    }
    print(
        f"run: version {row['version']} ({row['framework']}, {row['verdict']['decided_by']}) "
        f"{row['alias']}; champion version {row['champion_version']} at "
        f"{row['champion_score']:.4f}; {row['reason']} [{wall:.0f} s]",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--forced", type=int, default=4, help="forced reruns after the first")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=2, help="evaluate.seeds")
    parser.add_argument("--weak-epochs", type=int, default=1, help="the control's weak champion")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from benchmarks.framework_settings import _cpu
    from components.backends.base import machine

    budget = {"trials": args.trials, "epochs": args.epochs}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bakeoff-champion-") as scratch:
        repo = prepare(Path(scratch) / "stability", **budget)
        from tests.conftest import set_params

        set_params(repo, evaluate={"seeds": args.seeds})
        runs = [run(repo)]
        for _ in range(args.forced):
            forget_training(repo)
            runs.append(run(repo, "--force"))
        first = runs[0]
        for later in runs[1:]:
            if later["champion_version"] != first["version"]:
                failures.append(f"the champion moved to version {later['champion_version']}")
            if later["alias"] != "challenger":
                failures.append(f"version {later['version']} took the alias: {later['reason']}")
        scores = [one["champion_score"] for one in runs]
        if any(after < before for before, after in itertools.pairwise(scores)):
            failures.append(f"the champion's score went down: {scores}")

        control = prepare(Path(scratch) / "control", trials=1, epochs=args.weak_epochs)
        set_params(
            control,
            evaluate={"seeds": args.seeds},
            train_tensorflow={"min_accuracy": 0.0},
            train_pytorch={"min_accuracy": 0.0},
        )
        weak = run(control)
        set_params(control, train=budget)
        forget_training(control)
        better = run(control)
        if not better["promoted"]:
            failures.append(f"the clearly better version was not promoted: {better['reason']}")

    figures = {
        "command": "benchmarks/champion_stability.py " + " ".join(argv or sys.argv[1:]),
        "machine": {**machine(), **_cpu()},
        "budget": {**budget, "seeds": args.seeds},
        "forced_runs": runs,
        "control": {"weak": weak, "better": better},
        "champion_scores": scores,
        "held": not failures,
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"champion_stability: {'held' if not failures else 'FAILED: ' + '; '.join(failures)}")
    print(f"written to {args.out}")
    raise SystemExit(0 if not failures else 1)


if __name__ == "__main__":
    main()
