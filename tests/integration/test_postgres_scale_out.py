"""Scale-out on a real PostgreSQL: a study shared by worker processes, an MLflow server, the UI.

A throwaway PostgreSQL cluster (the Debian package's binaries, which ``bin/setup``
installs) runs on 127.0.0.1 on a free port for the module. Against it:

- the PyTorch stage through ``dvc repro`` with two Optuna worker processes, its
  study in PostgreSQL and its tracking through an MLflow server: every trial is
  recorded once, both workers ran trials, one nested MLflow run per trial;
- an MLflow tracking server with a PostgreSQL backend store and its own
  artifact root: runs, a registered version and its ``champion`` alias land in
  PostgreSQL and the artifact root, and the register stage's ``champion_outputs``
  reads the champion back through the server;
- ``bakeoff ui`` over a ``postgresql://`` ``train.tracking_uri``, on 127.0.0.1 only.

Without PostgreSQL's binaries the tests fail, naming ``bin/setup``. Also here:
the Beam options hook the README's multi-host set-up uses for TFX's data
components (``train_tensorflow.beam_args``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BIN, run, smoke_repository, stage_env

pytestmark = pytest.mark.slow

STAGE = "train@pytorch"
TRIALS = 4
USER = "bakeoff"  # the cluster's superuser; trust authentication, 127.0.0.1 only
DEBIAN_SERVERS = Path("/usr/lib/postgresql")  # <version>/bin/{initdb,pg_ctl,postgres}


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_binaries() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: the newest Debian install, else PATH."""
    installed = sorted(
        DEBIAN_SERVERS.glob("*/bin/initdb"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.parent.name)],
    )
    if installed:
        return installed[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    pytest.fail(
        "PostgreSQL's server binaries (initdb, pg_ctl) are missing: run bin/setup as root, "
        "which installs the Debian package postgresql (or: apt-get install postgresql)"
    )


def server_account() -> dict[str, Any]:
    """subprocess arguments that run PostgreSQL as an unprivileged user.

    The server refuses to run as root; the Debian package creates ``postgres``.
    As any other user, the server runs as that user.
    """
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, and there is no 'postgres' user to run PostgreSQL as")
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def test_missing_postgresql_fails_naming_bin_setup(monkeypatch, tmp_path):
    # CI must run these tests: without the server they fail, they are not skipped.
    monkeypatch.setattr(f"{__name__}.DEBIAN_SERVERS", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="missing: run bin/setup as root"):
        server_binaries()


@dataclass(frozen=True)
class Postgres:
    """A running throwaway cluster."""

    port: int

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one of its databases (psycopg2 is the default driver)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database; its URL."""
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=USER, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    def query(self, database: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of one query, read directly from PostgreSQL."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname=database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            connection.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster for the module, on 127.0.0.1 and a free port, removed afterwards."""
    binaries = server_binaries()
    account = server_account()
    # Not pytest's tmp_path: its parents are private to root, and the server's
    # user must reach the data folder. mkdtemp's folder is private to its owner.
    folder = Path(tempfile.mkdtemp(prefix="bakeoff-postgres-"))
    if account:
        os.chown(folder, account["user"], account["group"])
    data, log = folder / "data", folder / "server.log"
    port = free_port()

    def as_server(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(part) for part in command],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
            **account,
        )
        if check and result.returncode != 0:
            logged = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"{command[0]} failed:\n{result.stdout}{result.stderr}{logged}")
        return result

    # Throwaway data: no fsync. The socket goes to the folder, not /var/run.
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    try:
        as_server(
            binaries / "initdb", "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        as_server(binaries / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")
        yield Postgres(port)
    finally:
        as_server(binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Server:
    """A running HTTP service started by a test."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start(command: list[str], *, port: int, cwd: Path, log: Path, env: dict[str, str]) -> Server:
    """Start ``command`` in its own session and wait until ``/health`` answers on ``port``."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers too are stopped as one group
        )  # fmt: skip
    server = Server(url, process, log)
    deadline = time.monotonic() + 180  # the first start creates MLflow's tables
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop(server)
            pytest.fail(f"{command[0]} exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop(server)
    pytest.fail(f"{command[0]} did not answer in time:\n{log.read_text()[-4000:]}")


def stop(server: Server) -> None:
    """Stop a service and every process it started."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    # Workers that outlived their parent would keep the port and the database.
    with contextlib.suppress(ProcessLookupError):  # none left
        os.killpg(server.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def artifact_root(tmp_path_factory) -> Path:
    """The MLflow server's artifact store (an object store's stand-in)."""
    return tmp_path_factory.mktemp("artifact-store")


@pytest.fixture(scope="module")
def mlflow_server(postgres, artifact_root, tmp_path_factory) -> Iterator[Server]:
    """``mlflow server`` with a PostgreSQL backend store, serving a separate artifact root."""
    backend = postgres.create_database("mlflow")
    port = free_port()
    cwd = tmp_path_factory.mktemp("mlflow-server-cwd")  # nothing may land here
    command = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", artifact_root.as_uri(),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",  # two cores are shared with the trainers
    ]  # fmt: skip
    server = start(
        command, port=port, cwd=cwd, log=cwd.parent / "mlflow-server.log", env=stage_env()
    )
    try:
        yield server
    finally:
        stop(server)
    assert not any(cwd.iterdir()), (
        f"the server wrote into its working folder: {list(cwd.iterdir())}"
    )


@dataclass(frozen=True)
class StageRun:
    """The PyTorch stage, run once against PostgreSQL and the MLflow server."""

    repo: Path
    storage: str
    output: str
    seconds: float


@pytest.fixture(scope="module")
def stage(postgres, mlflow_server, tmp_path_factory) -> StageRun:
    """``dvc repro train@pytorch`` with two workers, the study in PostgreSQL, tracking via HTTP."""

    storage = postgres.create_database("optuna")
    # A smoke budget the two workers share: two trials each, two epochs.
    train = {"trials": TRIALS, "epochs": 2, "patience": 2, "pruner": "none"}
    repo = smoke_repository(
        tmp_path_factory.mktemp("scale-out"),
        train={**train, "storage": storage, "tracking_uri": mlflow_server.url},
        train_pytorch={"workers": 2},
    )
    started = time.monotonic()
    result = run(["dvc", "repro", STAGE], repo)
    return StageRun(repo, storage, result.stdout, time.monotonic() - started)


def trials_in_postgres(postgres: Postgres) -> list[tuple[str, int, str, str]]:
    """(study, number, state, worker) of every trial row, read with SQL from Optuna's tables."""
    rows = postgres.query(
        "optuna",
        """
        SELECT s.study_name, t.number, t.state, a.value_json
        FROM trials t
        JOIN studies s ON s.study_id = t.study_id
        LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'worker'
        ORDER BY t.number
        """,
    )
    return [(study, number, state, json.loads(worker)) for study, number, state, worker in rows]


def test_two_workers_share_one_study_and_record_every_trial_once(stage, postgres):
    import optuna

    assert f"{STAGE}:" in stage.output
    metrics = json.loads((stage.repo / "metrics/pytorch.json").read_text())
    assert metrics["trials"] == {"complete": TRIALS, "pruned": 0, "failed": 0, "run": TRIALS}
    rows = trials_in_postgres(postgres)
    assert len({study for study, *_ in rows}) == 1, "one study"
    assert [number for _, number, _, _ in rows] == list(range(TRIALS)), "each trial once"
    assert {state for _, _, state, _ in rows} == {"COMPLETE"}
    workers = [worker for *_, worker in rows]
    assert len(set(workers)) == 2, f"both worker processes ran trials: {workers}"
    assert {worker.split(":")[0] for worker in workers} == {socket.gethostname()}
    # Optuna reads back the same study from the PostgreSQL URL.
    (summary,) = optuna.get_all_study_summaries(stage.storage)
    study = optuna.load_study(study_name=summary.study_name, storage=stage.storage)
    assert sorted(t.number for t in study.trials) == list(range(TRIALS))
    assert study.best_trial.number == metrics["best_trial"]


def test_each_trial_has_one_nested_run_in_the_servers_postgres_store(
    stage, postgres, mlflow_server
):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name("digits")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("bakeoff.stage") == STAGE]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert sorted(int(r.data.tags["bakeoff.optuna_trial"]) for r in children) == list(range(TRIALS))
    assert {r.info.status for r in children} == {"FINISHED"}
    # The same runs, as rows of the server's backend store.
    rows = postgres.query(
        "mlflow",
        """
        SELECT r.run_uuid, r.status FROM runs r
        JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId'
        WHERE t.value = %s
        """,
        parent,
    )
    assert sorted(run_id for run_id, _ in rows) == sorted(r.info.run_id for r in children)


def test_the_stages_artifacts_went_to_the_servers_artifact_root(stage, artifact_root):
    names = {path.name for path in artifact_root.rglob("*") if path.is_file()}
    assert {"optuna_history.png", "MLmodel"} <= names, sorted(names)
    local = stage.repo / "mlflow" / "artifacts"
    assert not local.exists() or not any(local.rglob("*")), "artifacts stayed on the client"


@dataclass(frozen=True)
class Served:
    """What the project's tracking code put on the server by its URL."""

    experiment_id: str
    run_id: str
    model: str
    version: str


ONNX_BYTES = b"stands in for an ONNX file"
MANIFEST = {"input": {"columns": ["x1"]}, "output": {"value": "y"}}


@pytest.fixture(scope="module")
def served(mlflow_server, tmp_path_factory) -> Served:
    """Through the server: an experiment, a run with params, metrics and the ONNX artifact
    the register stage reads, a registered version holding the ``champion`` alias."""
    import mlflow

    from components.training import tracking

    previous = mlflow.get_tracking_uri()
    onnx = tmp_path_factory.mktemp("served") / "onnx"
    onnx.mkdir()
    (onnx / "model.onnx").write_bytes(ONNX_BYTES)
    (onnx / "manifest.json").write_text(json.dumps(MANIFEST))
    name = "bakeoff-served"
    try:
        # The project's own call, given the server's URL; no artifact root of its
        # own, so the server's (proxied) root is used.
        experiment_id = tracking.use_experiment(mlflow_server.url, "served", None)
        with mlflow.start_run() as run:
            mlflow.log_params({"learning_rate": 0.001, "depth": 2})
            mlflow.log_metric("val/accuracy", 0.97, step=1)
            mlflow.log_artifacts(str(onnx), "onnx")
        # A version of the run's files (register_model wants an MLflow model;
        # the register stage's gate reads only the ONNX folder).
        client = mlflow.MlflowClient()
        client.create_registered_model(name)
        version = client.create_model_version(
            name, f"{run.info.artifact_uri}/onnx", run_id=run.info.run_id
        )
        client.set_registered_model_alias(name, "champion", version.version)
    finally:
        # Leave no server URL or experiment behind for later tests in this process.
        mlflow.set_tracking_uri(previous)
        mlflow.tracking.fluent._active_experiment_id = None
    return Served(experiment_id, run.info.run_id, name, str(version.version))


def test_the_tracking_server_keeps_runs_and_registry_in_postgres(served, postgres, mlflow_server):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    run = client.get_run(served.run_id)
    assert run.data.params == {"learning_rate": "0.001", "depth": "2"}
    assert run.data.metrics == {"val/accuracy": 0.97}
    champion = client.get_model_version_by_alias(served.model, "champion")
    assert (str(champion.version), champion.run_id) == (served.version, served.run_id)
    # The rows behind those answers are in the server's PostgreSQL database.
    assert postgres.query(
        "mlflow", "SELECT experiment_id, status FROM runs WHERE run_uuid = %s", served.run_id
    ) == [(int(served.experiment_id), "FINISHED")]
    assert postgres.query(
        "mlflow", "SELECT key, value FROM params WHERE run_uuid = %s ORDER BY key", served.run_id
    ) == [("depth", "2"), ("learning_rate", "0.001")]
    assert postgres.query(
        "mlflow", "SELECT key, value, step FROM metrics WHERE run_uuid = %s", served.run_id
    ) == [("val/accuracy", 0.97, 1)]
    assert postgres.query(
        "mlflow", "SELECT name, alias, version FROM registered_model_aliases"
    ) == [(served.model, "champion", int(served.version))]


def test_artifacts_go_to_the_artifact_root_and_the_register_stage_reads_them_back(
    served, mlflow_server, artifact_root
):
    import numpy as np
    from mlflow import MlflowClient

    from components.register.core import Scored, champion_outputs

    stored = {p.relative_to(artifact_root).as_posix() for p in artifact_root.rglob("model.onnx")}
    assert f"{served.experiment_id}/{served.run_id}/artifacts/onnx/model.onnx" in stored
    assert not (Path.cwd() / "mlartifacts").exists() and not (Path.cwd() / "mlruns").exists()
    read: dict[str, Any] = {}

    answers = np.array([[0.9, 0.1]])

    def answer(onnx_file: Path, manifest: dict[str, Any]) -> np.ndarray:
        read.update(onnx=onnx_file.read_bytes(), manifest=manifest)
        return answers

    client = MlflowClient(mlflow_server.url)
    found, outputs = champion_outputs(client, served.model, answer)
    assert found == Scored(None, served.version) and outputs is answers
    assert read == {"onnx": ONNX_BYTES, "manifest": MANIFEST}


def test_a_new_experiment_created_by_a_stage_keeps_its_artifacts_on_the_server(
    mlflow_server, tmp_path
):
    import mlflow
    from mlflow import MlflowClient

    from components.training import tracking

    previous = mlflow.get_tracking_uri()
    try:
        experiment_id = tracking.prepare_stores(
            mlflow_server.url, f"sqlite:///{tmp_path / 'optuna.db'}", "fresh", tmp_path
        )
    finally:
        mlflow.set_tracking_uri(previous)
        mlflow.tracking.fluent._active_experiment_id = None
    location = MlflowClient(mlflow_server.url).get_experiment(experiment_id).artifact_location
    assert location.startswith("mlflow-artifacts:"), location


def outward_address() -> str | None:
    """This host's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a documentation address; UDP connect only routes
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def test_bakeoff_ui_opens_the_postgres_store_from_params_on_loopback_only(
    served, postgres, tmp_path
):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"tracking_uri": postgres.url("mlflow")}}))
    port = free_port()
    command = [str(BIN / "bakeoff"), "ui", "--params", str(params), "--port", str(port)]
    ui = start(command, port=port, cwd=tmp_path, log=tmp_path / "ui.log", env=stage_env())
    try:
        query = f"{ui.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=served"
        with urllib.request.urlopen(query, timeout=30) as answer:
            experiment = json.load(answer)["experiment"]
        # The experiment the server created: the UI reads the same PostgreSQL store.
        assert experiment["experiment_id"] == served.experiment_id
        address = outward_address()
        if address is not None:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, port), timeout=5).close()
    finally:
        stop(ui)
    assert f"over {postgres.url('mlflow')}" in ui.log.read_text()


def test_beam_options_from_params_follow_and_override_the_direct_runners():
    """``train_tensorflow.beam_args`` pick the runner of TFX's data components past one machine."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    from components.errors import ParamsError
    from pipelines.tfx_pipeline import DIRECT_RUNNER_ARGS
    from pipelines.tfx_runner import TfxParams as TensorflowParams

    assert TensorflowParams.from_section({}).beam_args == ()
    extra = ["--runner=FlinkRunner", "--flink_master=flink:8081", "--direct_num_workers=2"]
    own = TensorflowParams.from_section({"beam_args": extra})
    # As the stage builds the pipeline's options: the defaults, then params'.
    options = PipelineOptions([*DIRECT_RUNNER_ARGS, *own.beam_args])
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2  # the last value wins
    assert options.get_all_options()["flink_master"] == "flink:8081"
    with pytest.raises(ParamsError, match=r"train_tensorflow.beam_args: expected a list of Beam"):
        TensorflowParams.from_section({"beam_args": "--runner=FlinkRunner"})


def _host(storage: str, tracking_db: str, host: str, trials: int, started, wait_for=None) -> None:
    """One host's stage: its own process, host name and tracking store, the shared study.

    With ``wait_for``, its trials finish only once that event is set (at most 120 s).
    """
    import time as clock
    from unittest import mock

    from components.training import tracking
    from components.training.search import TuningParams
    from components.training.study import StudyPlan, TrialResult, run_study

    def fit(trial, hyper, spec):
        started.set()  # this host has a trial RUNNING in the shared study
        if wait_for is not None:
            wait_for.wait(120)
        clock.sleep(1.5)
        return TrialResult(value=hyper.learning_rate, epochs=1, model_path=Path(host))

    tracking.use_experiment(f"sqlite:///{tracking_db}", "hosts", Path(tracking_db).parent)
    plan = StudyPlan(
        name="hosts-pytorch-shared",
        storage=storage,
        framework="pytorch",
        metric="val/accuracy",
        architecture="mlp",
        input_dim=4,
        outputs=3,
        image_shape=None,
        trial_dir=Path(tracking_db).parent,
    )
    with mock.patch("socket.gethostname", return_value=host):
        run_study(plan, TuningParams.from_section({"trials": trials, "seed": 3}), fit)


def test_a_second_host_joins_a_running_study_and_both_stop_at_the_budget(postgres, tmp_path):
    import multiprocessing

    storage = postgres.create_database("hosts")
    context = multiprocessing.get_context("spawn")
    first_running = context.Event()
    second_running = context.Event()
    budget = 6
    # The first host's first trial stays RUNNING until the second host runs one, so
    # the second joins a live study however slowly its process starts.
    first = context.Process(
        target=_host,
        args=(
            storage,
            str(tmp_path / "a" / "mlflow.db"),
            "host-a",
            budget,
            first_running,
            second_running,
        ),
    )
    second = context.Process(
        target=_host,
        args=(storage, str(tmp_path / "b" / "mlflow.db"), "host-b", budget, second_running),
    )
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first.start()
    try:
        assert first_running.wait(120), "the first host never started a trial"
        second.start()  # joins while the first host's trial is RUNNING
        assert second_running.wait(120), "the second host never started a trial"
        first.join(300)
        second.join(300)
    finally:
        for process in (first, second):
            if process.is_alive():
                process.kill()
    # Before the fix the second host failed the first one's running trial and the
    # first crashed reporting it ("Cannot tell a FAIL trial").
    assert (first.exitcode, second.exitcode) == (0, 0)
    rows = postgres.query(
        "hosts",
        """
        SELECT t.number, t.state, a.value_json FROM trials t
        LEFT JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'worker'
        ORDER BY t.number
        """,
    )
    states = [state for _, state, _ in rows]
    assert set(states) == {"COMPLETE"}, rows
    # Each host stops once the study has spent the budget; at most the trial the
    # other host had in flight goes over it.
    assert budget <= len(rows) <= budget + 1, rows
    hosts = {json.loads(worker).split(":")[0] for _, _, worker in rows}
    assert hosts == {"host-a", "host-b"}
