"""One queued DVC experiment on the graph, end to end (README, "Experiments (dvc exp)").

Called by the main end-to-end test once ``bakeoff run`` has brought the copied
repository up to date, so the experiment reruns only what its params change.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import run

EXPERIMENT = "smoke-exp"
#: Another search space on a smaller budget, so the studies are new ones. Adam at a
#: learning rate this high clears the quality gates (test accuracy 0.5) in one
#: trial of one epoch; the seeded first draw with SGD did not.
OVERRIDES = (
    "train.trials=1",
    "train.search.width=[64,128]",
    "train.search.optimizer=[adam]",
    "train.search.learning_rate=[0.001,0.01]",
)
FRAMEWORKS = ("tensorflow", "pytorch")


@dataclass(frozen=True)
class Before:
    """The main repository's registry and TFX metadata before the experiment."""

    model_name: str
    champion: str
    versions: frozenset[str]
    metadata_mtime: int

    @classmethod
    def of(cls, repo: Path) -> Before:
        """Read them from ``repo``."""
        client = _client(repo)
        name = json.loads((repo / "reports" / "registry.json").read_text())["model_name"]
        return cls(
            name,
            str(client.get_model_version_by_alias(name, "champion").version),
            frozenset(str(v.version) for v in client.search_model_versions(f"name='{name}'")),
            (repo / "tfx" / "metadata.sqlite").stat().st_mtime_ns,
        )


def check_queued_experiment(repo: Path) -> float:
    """Queue and run one experiment; check what it shows, plots and records; its seconds.

    The experiment runs in DVC's temporary copy (``.dvc/tmp/exps``): its MLflow
    runs and Optuna studies must land in this repository's stores, tagged with
    its name, its TFX metadata must stay in the copy, and the registry's
    champion must not move.
    """
    started = time.monotonic()
    before = Before.of(repo)
    run(["git", "add", "-A"], repo)
    git = ["git", "-c", "user.name=bakeoff tests", "-c", "user.email=tests@bakeoff.invalid"]
    # Empty when an earlier check has committed them already (the remote's round trip does).
    run([*git, "commit", "-q", "--allow-empty", "-m", "the smoke run's results"], repo)
    queued = ["dvc", "exp", "run", "--queue", "--name", EXPERIMENT]
    run([*queued, *(part for one in OVERRIDES for part in ("-S", one))], repo)
    # Not `dvc exp run --run-all`: it exits 0 when an experiment failed, and waits
    # for the worker to go idle, which it never does once the worker's idle monitor
    # has died (a JSONDecodeError reading a half-written message of kombu's
    # filesystem broker, seen under load); so the queue is started, watched, stopped.
    run(["dvc", "queue", "start"], repo)
    try:
        state = _wait_for_experiment(repo)
    finally:
        run(["dvc", "queue", "stop"], repo, check=False)
    logs = run(["dvc", "queue", "logs", EXPERIMENT], repo, check=False).stdout
    assert state == "Success", f"{EXPERIMENT}: {state}\n{logs[-5000:]}"
    assert "Running stage 'train@pytorch'" in logs, logs[-3000:]
    assert "Running stage 'ingest'" not in logs  # its inputs came from the cache
    check_experiment_records(repo, before)
    seconds = time.monotonic() - started
    print(f"check_queued_experiment: {seconds:.0f} s")
    return seconds


def check_experiment_records(repo: Path, before: Before) -> None:
    """What ``dvc exp show`` and ``dvc plots diff`` give for the run experiment, and its records."""
    import optuna

    # dvc exp show: both frameworks' test metrics, the winner and the verdict.
    shown = _experiment(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    metrics = {name: one["data"] for name, one in shown["metrics"].items()}
    params = shown["params"]["params.yaml"]["data"]["train"]
    assert (params["trials"], params["search"]["width"]) == (1, [64, 128])
    for framework in FRAMEWORKS:
        assert 0 <= metrics[f"metrics/{framework}.json"]["test/accuracy"] <= 1
        assert metrics[f"metrics/{framework}.json"]["trials"]["complete"] == 1
    comparison = metrics["reports/comparison.json"]
    assert comparison["winner"] in FRAMEWORKS
    assert comparison["verdict"].endswith(
        f"{comparison['winner']} ships (decided by {comparison['decided_by']})"
    )
    for framework in FRAMEWORKS:
        assert 0 <= comparison["frameworks"][framework]["test"]["accuracy"] <= 1

    # The experiment's version is registered, tagged, and holds no alias; nothing pushed.
    record = metrics["reports/registry.json"]  # dvc exp show leaves out null values
    assert (record["alias"], record["promoted"], record["experiment"]) == (
        "none",
        False,
        EXPERIMENT,
    )
    assert record["reason"].startswith(f"no alias moved: DVC experiment {EXPERIMENT}")
    assert record.get("pushed_to") is None and record["version"] not in before.versions
    client = _client(repo)
    champion = client.get_model_version_by_alias(before.model_name, "champion")
    assert str(champion.version) == before.champion
    version = client.get_model_version(before.model_name, record["version"])
    assert version.tags["bakeoff.dvc_experiment"] == EXPERIMENT and not version.aliases

    # Its MLflow runs are in this repository's store, tagged with its name.
    found = client.search_runs(
        [client.get_experiment_by_name("digits").experiment_id],
        filter_string=f"tags.`bakeoff.dvc_experiment` = '{EXPERIMENT}'",
        max_results=1000,
    )
    stages = {one.data.tags.get("bakeoff.stage") for one in found}
    assert {"train@tensorflow", "train@pytorch", "evaluate", "register"} <= stages, stages
    assert any(one.data.tags.get("bakeoff.optuna_trial") == "0" for one in found)

    # Its Optuna studies too, each with its one trial; its TFX metadata stayed in the copy.
    storage = f"sqlite:///{repo / 'optuna' / 'studies.db'}"
    for framework in FRAMEWORKS:
        study = metrics[f"metrics/{framework}.json"]["study"]
        assert len(optuna.load_study(study_name=study, storage=storage).trials) == 1
    assert (repo / "tfx" / "metadata.sqlite").stat().st_mtime_ns == before.metadata_mtime

    # dvc plots diff renders both revisions' figures, and they differ.
    out = repo.parent / "plots-diff"  # outside the repository: leaves its status alone
    diff = ["dvc", "plots", "diff", "HEAD", EXPERIMENT, "--json", "-o", str(out)]
    plots = json.loads(run(diff, repo).stdout)["data"]
    figures = sorted(name for name in plots if name.startswith("reports/figures/"))
    assert {"learning_curves.png", "confusion_matrices.png"} <= {Path(f).name for f in figures}
    for name in figures:
        drawn = {rev: Path(one["url"]) for one in plots[name] for rev in one["revisions"]}
        assert set(drawn) == {"HEAD", EXPERIMENT}, (name, drawn)
        assert drawn["HEAD"].read_bytes() != drawn[EXPERIMENT].read_bytes(), name


def _wait_for_experiment(repo: Path, timeout_s: float = 1800) -> str:
    """Poll ``dvc queue status`` until the experiment ended; its final status."""
    deadline = time.monotonic() + timeout_s
    state = "not listed"
    while time.monotonic() < deadline:
        listed = run(["dvc", "queue", "status"], repo, check=False).stdout.splitlines()
        states = [line.split()[-1] for line in listed if f" {EXPERIMENT} " in line]
        state = states[0] if states else state
        if state in ("Success", "Failed"):
            return state
        time.sleep(5)
    return f"still {state} after {timeout_s:.0f} s"


def _client(repo: Path) -> Any:
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")


def _experiment(shown: list[dict[str, Any]]) -> dict[str, Any]:
    """The data of the experiment named :data:`EXPERIMENT` in ``dvc exp show --json``."""
    for baseline in shown:
        for group in baseline.get("experiments") or []:
            for one in group.get("revs") or []:
                if one.get("name") == EXPERIMENT:
                    assert one.get("error") is None, one["error"]
                    data: dict[str, Any] = one["data"]
                    return data
    raise AssertionError(f"no experiment {EXPERIMENT} in dvc exp show: {shown}")
