"""Finding a stage's worker processes, to fail one of them on purpose."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def descendant_with(parent: int, marker: bytes) -> int | None:
    """The pid of a process under ``parent`` whose environment holds ``marker``, if one runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ and parent in _ancestors(int(entry.name)):
            return int(entry.name)
    return None


def _ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return found


def stage_with_a_worker_killed(
    repo: Path, framework: str, marker: bytes, env: dict[str, str], timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``bakeoff train`` for ``framework`` in ``repo``; SIGKILL the worker ``marker`` names.

    The worker is killed 5 s after it appears (joined and training by then; a
    kill at any point is a failure anyway); the stage's result is returned.
    """
    command = [
        *(str(Path(sys.executable).parent / "bakeoff"), "train", "--framework", framework),
        *("--data-dir", "data/clean", "--preprocessing", "data/clean/preprocessing.json"),
        *("--schema", "schemas/digits.yaml", "--model-dir", f"models/{framework}"),
        *("--metrics", f"metrics/{framework}.json"),
    ]
    stage = subprocess.Popen(
        command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline, victim = time.monotonic() + timeout_s, None
    while victim is None and time.monotonic() < deadline and stage.poll() is None:
        victim = descendant_with(stage.pid, marker)
        time.sleep(0.5)
    if victim is None:
        stage.kill()
        raise AssertionError(f"no process with {marker!r} started under the stage")
    time.sleep(5)
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = stage.communicate(timeout=timeout_s)
    return subprocess.CompletedProcess(command, stage.returncode, stdout, stderr)


def stage_on_two_processes(folder: Path, framework: str) -> tuple[Path, Any]:
    """``dvc repro train@<framework>`` with ``devices: 2`` on a 2-trial, 2-epoch smoke budget."""
    from tests.conftest import run, smoke_repository

    repo = smoke_repository(
        folder,
        train={"trials": 2, "epochs": 2, "architecture": "mlp", "pruner": "none"},
        **{f"train_{framework}": {"devices": 2}},
    )
    return repo, run(["dvc", "repro", f"train@{framework}"], repo)


def assert_recorded_once(repo: Path, framework: str, stdout: str) -> None:
    """Two trials on two processes: one model, one study of 2 trials, 2 MLflow trial runs
    of 2 epochs each under one parent, and the stage's summary printed once."""
    import json

    import mlflow
    import optuna

    from components.training import tracking

    metrics = json.loads((repo / f"metrics/{framework}.json").read_text())
    assert metrics["trials"] == {"complete": 2, "pruned": 0, "failed": 0, "run": 2}
    assert metrics["runtime"]["applied"]["processes_per_trial"] == 2
    assert (repo / f"models/{framework}/model.json").is_file()
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{repo / 'optuna' / 'studies.db'}")
    assert summary.n_trials == 2
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    trials = [r for r in runs if tracking.TAG_TRIAL in r.data.tags]
    parents = [r for r in runs if r.info.run_id == metrics["mlflow_run_id"]]
    assert len(trials) == 2 and len(parents) == 1
    # Each epoch logged once, by the leading process.
    assert len(client.get_metric_history(trials[0].info.run_id, "val/accuracy")) == 2
    assert stdout.count(f"train@{framework}:") == 1
