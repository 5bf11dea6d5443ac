"""The README's main command on the embedded default data, in a fresh copy of the repository."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.contracts import load_constants
from tests.conftest import SMOKE, run, set_params, stage_env
from tests.helpers.experiments import check_queued_experiment
from tests.helpers.remote import check_push_and_pull
from tests.helpers.terminal import plain, terminal_run

pytestmark = pytest.mark.slow


def test_bakeoff_run_brings_the_graph_up_to_date(repo):
    set_params(repo, **SMOKE)
    result = run(["bakeoff", "run"], repo)  # output to a pipe: one plain line per event
    check_progress(repo, result.stdout, result.stderr)
    assert "up to date" in run(["dvc", "status"], repo).stdout
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    data = next(iter(metrics.values()))["data"]
    quality = data["reports/data_quality.json"]["data"]
    assert data["metrics/tensorflow.json"]["data"]["trials"]["complete"] == 2
    assert data["metrics/pytorch.json"]["data"]["trials"]["complete"] == 2
    # bakeoff's runtime settings reached both trainers' processes, read back from
    # the frameworks themselves: oneDNN on (TensorFlow's IsMklEnabled; its default
    # is off on CPUs without AVX-512) and each trainer on its share of the cores.
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    tensorflow = data["metrics/tensorflow.json"]["data"]["runtime"]
    assert tensorflow["declared"]["onednn"] is True
    assert tensorflow["applied"]["onednn"] is True
    assert tensorflow["applied"]["intra_op_threads"] == share
    pytorch = data["metrics/pytorch.json"]["data"]["runtime"]
    assert pytorch["applied"]["intra_op_threads"] == share
    assert pytorch["machine"]["cpu"] == tensorflow["machine"]["cpu"]
    check_costs(repo)
    assert quality["rows"]["input"] == 1797
    assert quality["schema"]["inferred"] is False, (
        "the committed schema must be the one validated against"
    )
    check_verdict(repo)
    check_a_tie_keeps_the_champion(repo)
    check_tensorboard(repo)
    check_push_and_pull(repo)
    check_tensorflow_exports_to_tfjs(repo)
    check_queued_experiment(repo)
    check_live_progress(repo)  # last: it raises the PyTorch study's budget


def check_progress(repo: Path, out: str, err: str) -> None:
    """The trainers' trials and epochs as lines behind their stage; the frameworks' noise in logs."""
    for framework in ("tensorflow", "pytorch"):
        stage = f"[train@{framework}]"
        assert f"{stage} train@{framework}: " in out  # the stage's own result line
        for trial in (1, 2):
            assert f"{stage} trial {trial}/2 started" in out
            assert f"{stage} trial {trial}/2 epoch 1/1: val/accuracy " in out
            assert re.search(rf"^{re.escape(stage)} trial {trial}/2 complete: ", out, re.M)
    assert "[train@tensorflow] TFX Trainer" in out  # the TFX component running
    assert "[clean] done in " in out
    assert "Running stage 'clean'" in (repo / "logs" / "clean.log").read_text()
    # Every line is bakeoff run's own: stage lines, its messages, its closing summary.
    assert all(re.match(r"(\[[^\]]+\] |bakeoff run: |  \w+: )", line) for line in out.splitlines())
    for line in ("bakeoff run: finished in ", "  verdict:  ", "  champion: ", "  stages:   "):
        assert line in out
    logs = "".join(path.read_text() for path in (repo / "logs").glob("*.log"))
    assert "Warning" in logs and "Warning" not in out + err  # TensorFlow's, Google's, Optuna's


def check_live_progress(repo: Path) -> None:
    """On a terminal: a live table of the stages, the ended trials above it, then the summary."""
    set_params(repo, train={"trials": 3})  # one more PyTorch trial; the study resumes

    status, screen = terminal_run(["bakeoff", "run", "train@pytorch"], repo)

    text = plain(screen)
    assert status == 0, text
    assert "\x1b[" in screen  # drawn with the terminal's escape codes
    assert "[train@pytorch] trial 3/3 complete: val/accuracy " in text
    assert "trial 3/3 · epoch 1/1 · val/accuracy " in text  # a frame of the live table
    assert "[train@pytorch] train@pytorch: " in text
    assert "bakeoff run: finished in " in text
    assert "Warning" not in text


def check_tensorflow_exports_to_tfjs(repo) -> None:
    """The export stage on the TFX-trained model, whichever won: TF.js among its checked formats."""
    out = repo.parent / "tensorflow-exports"
    result = run(
        [
            *("bakeoff", "export", "--framework", "tensorflow", "--params", "params.yaml"),
            *("--comparison", "reports/comparison.json", "--data-dir", "data/clean"),
            *("--preprocessing", "data/clean/preprocessing.json", "--models", "models"),
            *("--metrics", "metrics", "--out", str(out), "--parity", str(out) + "-parity.json"),
            *("--serving-bench", str(out) + "-bench.json"),
        ],
        repo,
    )
    assert "export: tfjs" in result.stdout and "not timed" in result.stdout
    parity = json.loads(Path(str(out) + "-parity.json").read_text())
    (tfjs,) = [row for row in parity["rows"] if row["format"] == "tfjs"]
    assert tfjs["passed"] and tfjs["argmax_agreement"] == 1.0, tfjs
    assert tfjs["max_abs_diff"] <= parity["limits"]["tolerances"]["tfjs"]
    assert (out / "tfjs" / "model.json").is_file()
    assert json.loads(Path(str(out) + "-bench.json").read_text())["untimed"] == ["tfjs"]


def check_a_tie_keeps_the_champion(repo) -> None:
    """The same winner registered again ties with itself: the champion stays, the alias too."""
    comparison = json.loads((repo / "reports" / "comparison.json").read_text())
    for name, one in comparison["frameworks"].items():
        assert (one["seeds"]["count"], one["seeds"]["source"]) == (2, "refit"), name
    assert (repo / "reports" / "comparison.md").read_text().split("\n")[2] == "## Verdict"
    result = run(["dvc", "repro", "--single-item", "--force", "register"], repo)
    assert "Running stage 'evaluate'" not in result.stdout
    record = json.loads((repo / "reports" / "registry.json").read_text())
    assert (record["version"], record["alias"], record["promoted"]) == ("2", "challenger", False)
    assert "a tie keeps the champion" in record["reason"], record["reason"]
    assert record["improvement"]["low"] <= 0
    assert "Champion: unchanged (version 1); version 2" in result.stdout

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(record["model_name"], "champion").version) == "1"
    logged = client.download_artifacts(
        record["mlflow_run_id"], "reports/comparison.md", str(repo.parent)
    )
    verdict = Path(logged).read_text().split("## Evidence")[0]
    assert "**Champion**: unchanged (version 1)" in verdict


def check_costs(repo) -> None:
    """The refit measured both frameworks on each best configuration; the report names it all."""
    refit = json.loads((repo / "reports" / "refit.json").read_text())
    assert {fit["framework"] for fit in refit["fits"]} == {"tensorflow", "pytorch"}
    for entry in refit["summary"].values():
        assert set(entry["rates"]) == {"tensorflow", "pytorch"}
        for rate in entry["rates"].values():
            low, high = rate["interval"]
            assert 0 < low <= rate["examples_per_s"] <= high
        assert entry["ratios"][0]["pairs"] == 2
    costs = json.loads((repo / "reports" / "comparison.json").read_text())["costs"]
    for cost in costs["frameworks"].values():
        assert cost["trial_epochs"] >= 2 and cost["fixed_seconds"] > 0
        assert cost["peak_memory_mb"]["refit"] > 0
    report = (repo / "reports" / "comparison.md").read_text()
    assert "## Training cost" in report and "## Runtime settings" in report
    assert "onednn True" in report and refit["method"] in report


def check_tensorboard(repo) -> None:
    """Every trial of both trainers wrote per-epoch scalars; bakeoff tensorboard serves them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = repo / "logs" / "tensorboard"
    runs = sorted(path.relative_to(logs).as_posix() for path in logs.glob("*/trial-*"))
    for framework in ("tensorflow", "pytorch"):
        # A study's name is <data set>-<framework>-<fingerprint>.
        trials = [run for run in runs if run.split("/")[0].split("-")[-2] == framework]
        assert len(trials) == 2, runs  # the smoke budget's two trials
        events = EventAccumulator(str(logs / trials[0]))
        events.Reload()
        assert [s.step for s in events.Scalars("val/accuracy")] == [0]  # one epoch, logged
    port = free_port()
    server = subprocess.Popen(
        ["bakeoff", "tensorboard", "--port", str(port)],
        cwd=repo,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, served = time.monotonic() + 60, None
        while served is None and time.monotonic() < deadline:
            try:
                address = f"http://127.0.0.1:{port}/data/runs"
                served = json.loads(urllib.request.urlopen(address, timeout=5).read())
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert served is not None and sorted(served) == runs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_verdict(repo) -> None:
    """The run ended with a comparison, checked exports and a registered champion that serves."""
    comparison = json.loads((repo / "reports" / "comparison.json").read_text())
    assert comparison["winner"] in ("tensorflow", "pytorch")
    assert (repo / "reports" / "comparison.md").read_text().startswith("# bakeoff: digits")
    parity = json.loads((repo / "reports" / "parity.json").read_text())
    assert parity["framework"] == comparison["winner"]
    assert all(row["passed"] for row in parity["rows"])
    if comparison["winner"] == "tensorflow":  # TF.js is TensorFlow's: converted, run in Node.js
        assert "tfjs" in {row["format"] for row in parity["rows"]}
        assert parity["limits"]["tolerances"]["tfjs"] == 1e-4 and parity["skipped"] == {}
    bench = json.loads((repo / "reports" / "serving_bench.json").read_text())
    assert "onnx" in bench["formats"] and "native_eager" in bench["formats"]
    record = json.loads((repo / "reports" / "registry.json").read_text())
    assert (record["version"], record["alias"], record["promoted"]) == ("1", "champion", True)
    pushed = repo / record["pushed_to"]
    assert (pushed / "manifest.json").is_file() and (pushed / "model.onnx").is_file()

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    champion = client.get_model_version_by_alias(record["model_name"], "champion")
    assert str(champion.version) == "1"
    assert champion.tags["bakeoff.framework"] == comparison["winner"]
    assert champion.tags["bakeoff.optuna_study"] and champion.tags["bakeoff.training_run"]
    assert "Gate: promoted" in champion.description

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}")
    try:
        info = mlflow.models.get_model_info(f"models:/{record['model_name']}@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    columns = load_constants(repo / "data" / "clean" / "preprocessing.json").feature_order
    assert info.signature.inputs.input_names() == columns

    # `mlflow models serve` answers a real prediction request for the champion.
    port = free_port()
    env = stage_env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}"}
    server = subprocess.Popen(
        [
            "mlflow",
            "models",
            "serve",
            "-m",
            f"models:/{record['model_name']}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # The registered model takes the users' columns by name, raw values as in the data.
        columns = load_constants(repo / "data" / "clean" / "preprocessing.json").feature_order
        rows = pd.read_parquet(repo / "data" / "clean" / "test.parquet").head(4)[columns]
        body = json.dumps({"dataframe_records": json.loads(rows.to_json(orient="records"))})
        body = body.encode()
        deadline = time.monotonic() + 180
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "mlflow models serve exited"
                assert time.monotonic() < deadline, "mlflow models serve did not answer"
                time.sleep(2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    probabilities = np.asarray(answer["predictions"])
    assert probabilities.shape == (4, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
