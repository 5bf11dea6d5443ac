"""``bakeoff serve`` as a real server on localhost, over a real MLflow registry in tmp_path.

A tiny ONNX classifier (two numeric features, one categorical) is registered
as champion; the server runs as a subprocess and every request is real HTTP.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.contracts import ServingLayout
from components.errors import BakeoffError, ParamsError
from components.register.core import ONNX_PATH
from components.register.gate import CHAMPION
from components.serve import cli
from components.training.features import raw_matrix
from tests.conftest import ROOT, stage_env

NAME = "tiny-serve"
MAX_BATCH = 16
POLL_S = 0.3
MANIFEST = {
    "framework": "pytorch",
    "input": {
        "name": "inputs",
        "dtype": "float32",
        "columns": ["a", "colour", "b"],
        "categorical": {"colour": ["blue", "red"]},
    },
    "output": {"probabilities": ["x", "y", "z"]},
}
GOOD = {"a": 1.5, "colour": "red", "b": -2.0}
RECORDS = [GOOD, {"a": 0, "colour": "blue", "b": 3}, {"a": -4.25, "colour": "purple", "b": 0.5}]


# --- the registry and the server -------------------------------------------------------


def onnx_model(folder: Path, seed: int) -> Path:
    """A linear softmax classifier over the serving matrix [a, b, colour position], as ONNX."""
    import torch

    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    linear = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(linear, torch.nn.Softmax(dim=1))
    torch.onnx.export(
        model,
        (torch.zeros(2, 3),),
        str(folder / "model.onnx"),
        input_names=["inputs"],
        output_names=["probabilities"],
        dynamic_axes={"inputs": {0: "batch"}},
        dynamo=False,
    )
    (folder / "manifest.json").write_text(json.dumps(MANIFEST))
    return folder


class Registry:
    """An MLflow registry (SQLite, artifacts in tmp_path) holding one registered model."""

    def __init__(self, folder: Path) -> None:
        import mlflow

        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlflow.db'}"
        # A client, not mlflow's global state: other tests' tracking URI is left alone.
        self.client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.experiment = self.client.create_experiment(
            "serve", artifact_location=(folder / "artifacts").as_uri()
        )
        self.client.create_registered_model(NAME)

    def register(self, model: Path, accuracy: float, *, champion: bool = True) -> str:
        """Log ``model`` as a run's ONNX artifact, register it, and make it champion."""
        run_id = self.client.create_run(self.experiment).info.run_id
        self.client.log_artifacts(run_id, str(model), ONNX_PATH)
        self.client.log_metric(run_id, "test/accuracy", accuracy)
        self.client.set_terminated(run_id)
        version = self.client.create_model_version(NAME, f"runs:/{run_id}/model", run_id)
        if champion:
            self.client.set_registered_model_alias(NAME, CHAMPION, version.version)
        return str(version.version)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(registry: Registry, port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.cli",
        "serve",
        "--tracking-uri",
        registry.uri,
        "--model-name",
        NAME,
        "--port",
        str(port),
        "--poll-s",
        str(POLL_S),
        "--max-batch",
        str(MAX_BATCH),
        *extra,
    ]


class Server:
    """A ``bakeoff serve`` subprocess and plain HTTP requests to it."""

    def __init__(self, registry: Registry, cwd: Path) -> None:
        self.port = free_port()
        env = stage_env() | {"PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            serve_command(registry, self.port),
            cwd=cwd,  # no params.yaml there: the two overrides are all it needs
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, limit_s: float = 90) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise AssertionError(f"bakeoff serve exited ({self.process.returncode}):\n{output}")
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"bakeoff serve did not answer within {limit_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(payload)
        except ValueError:
            return response.status, payload.decode(errors="replace")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def predict(self, records: Any) -> tuple[int, Any]:
        return self.request("POST", "/predict", json.dumps({"records": records}).encode())

    def wait_for(self, check, limit_s: float = 10 * POLL_S + 10) -> dict[str, Any]:
        """``/health`` once ``check(health)`` holds; polls a bounded number of times."""
        deadline = time.monotonic() + limit_s
        while True:
            health = self.get("/health")[1]
            if check(health) or time.monotonic() > deadline:
                return dict(health)
            time.sleep(POLL_S / 3)


@pytest.fixture
def started() -> Iterator[list[Server]]:
    """Servers a test starts; each one is stopped however the test ends."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def start(started: list[Server], registry: Registry, cwd: Path) -> Server:
    server = Server(registry, cwd)
    started.append(server)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Iterator[tuple[Server, Registry, Path]]:
    """One server over a registry whose champion (version 1) is the tiny classifier."""
    folder = tmp_path_factory.mktemp("serve")
    registry = Registry(folder)
    model = onnx_model(folder / "v1", seed=1)
    registry.register(model, 0.9)
    server = Server(registry, folder)
    try:
        server.wait_ready()
        yield server, registry, model
    finally:
        server.stop()


def onnx_probabilities(model: Path, records: list[dict[str, Any]]) -> np.ndarray:
    """The ONNX model run directly on the batch path's matrix of ``records``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model / "model.onnx"))
    matrix = raw_matrix(pd.DataFrame(records), ServingLayout.from_manifest(MANIFEST))
    return session.run(None, {"inputs": matrix})[0]


# --- the module's server ---------------------------------------------------------------


@pytest.mark.slow
def test_health_and_metadata_describe_the_champion(tiny):
    server, _, _ = tiny
    status, health = server.get("/health")
    assert status == 200
    assert (health["status"], health["model"], health["version"]) == ("ok", NAME, "1")
    status, metadata = server.get("/metadata")
    assert status == 200
    assert (metadata["model"], metadata["version"], metadata["framework"]) == (NAME, "1", "pytorch")
    assert metadata["metrics"] == {"test/accuracy": 0.9}
    assert metadata["aliases"] == [CHAMPION]
    assert metadata["input"]["columns"] == ["a", "colour", "b"]
    assert metadata["input"]["categorical"] == {"colour": ["blue", "red"]}
    assert metadata["output"] == {"classes": ["x", "y", "z"]}
    assert metadata["max_batch"] == MAX_BATCH and metadata["loaded_at"]


@pytest.mark.slow
def test_a_good_batch_gets_onnx_runtimes_probabilities(tiny):
    server, _, model = tiny
    status, answer = server.predict(RECORDS)
    assert status == 200, answer
    assert (answer["model"], answer["version"]) == (NAME, "1")
    expected = onnx_probabilities(model, RECORDS)
    got = np.array([[p["probabilities"][c] for c in "xyz"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    assert [p["class"] for p in answer["predictions"]] == ["xyz"[i] for i in expected.argmax(1)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            [GOOD, {**GOOD, "a": "1.5"}],
            422,
            'records[1].a: expected a finite number, found a string "1.5"',
        ),
        ([GOOD, {"a": 1.0, "colour": "red"}], 422, "records[1].b: missing feature"),
        ([{**GOOD, "b": float("nan")}], 422, "records[0].b: expected a finite number, found NaN"),
        (
            [{**GOOD, "a": float("inf")}],
            422,
            "records[0].a: expected a finite number, found Infinity",
        ),
        (
            [{**GOOD, "a": -float("inf")}],
            422,
            "records[0].a: expected a finite number, found -Infinity",
        ),
        ([{**GOOD, "a": None}], 422, "records[0].a: expected a finite number, found null"),
        ([{**GOOD, "b": True}], 422, "records[0].b: expected a finite number, found true"),
        (
            [{**GOOD, "colour": 1}],
            422,
            "records[0].colour: expected a string (a category), found 1",
        ),
        (
            [{**GOOD, "colour": None}],
            422,
            "records[0].colour: expected a string (a category), found null",
        ),
        ([{**GOOD, "label": "x"}], 422, "records[0].label: unknown field"),
        (
            [GOOD, GOOD, "row"],
            422,
            'records[2]: expected an object of features, found a string "row"',
        ),
        (
            [GOOD] * (MAX_BATCH + 1),
            413,
            f"records: {MAX_BATCH + 1} records, over the limit of {MAX_BATCH}",
        ),
        ([], 422, "records: empty"),
        (b'{"records": [{"a": 1.5,', 400, "body: not valid JSON"),
        (
            b'{"records": {"a": 1.5}}',
            422,
            "records: expected a list of records (objects), found an object",
        ),
        (
            b'{"records": "a=1"}',
            422,
            'records: expected a list of records (objects), found a string "a=1"',
        ),
        (b'[{"a": 1.5}]', 422, 'body: expected an object {"records": [...]}, found a list'),
        (b'{"rows": []}', 422, "rows: unknown field"),
        (b"{}", 422, "records: missing"),
        (b"", 400, "body: not valid JSON"),
    ],
    ids=[
        "wrong-type",
        "missing-feature",
        "nan",
        "infinity",
        "minus-infinity",
        "null",
        "bool",
        "number-for-category",
        "null-category",
        "extra-field",
        "record-not-object",
        "oversize-batch",
        "empty-batch",
        "malformed-json",
        "records-object",
        "records-string",
        "list-body",
        "wrong-field",
        "no-records",
        "empty-body",
    ],
)
def test_a_bad_request_gets_a_4xx_naming_the_field(tiny, body, status, message):
    server, _, _ = tiny
    if isinstance(body, bytes):
        answered, error = server.request("POST", "/predict", body)
    else:
        answered, error = server.predict(body)  # json.dumps writes NaN and Infinity literals
    assert answered == status, error
    assert error["detail"].startswith(message), error
    assert error["errors"][0].startswith(message)


@pytest.mark.slow
def test_a_body_over_the_byte_limit_is_refused_unread(tiny):
    server, _, _ = tiny
    status, error = server.request("POST", "/predict", b" " * (2 * 1024 * 1024))
    assert status == 413 and error["detail"].startswith("body: ")


@pytest.mark.slow
def test_it_listens_on_loopback_only_by_default(tiny):
    server, _, _ = tiny
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    listening = set()
    for line in table.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == server.port:  # 0A: LISTEN
            listening.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    assert listening == {"127.0.0.1"}


@pytest.mark.slow
def test_other_methods_and_paths_are_refused(tiny):
    server, _, _ = tiny
    assert server.get("/predict")[0] == 405
    assert server.get("/nowhere")[0] == 404


# --- a champion that moves -------------------------------------------------------------


@pytest.mark.slow
def test_a_new_champion_is_served_without_a_restart(tmp_path, started):
    registry = Registry(tmp_path)
    registry.register(onnx_model(tmp_path / "v1", seed=1), 0.9)
    server = start(started, registry, tmp_path)
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def keep_asking() -> None:  # requests all through the swaps: none may fail or mix versions
        while not stop.is_set():
            try:
                status, answer = server.predict(RECORDS)
            except OSError as error:  # a dropped connection counts as a failed request
                answers.append((0, str(error)))
                continue
            answers.append((status, answer.get("version") if status == 200 else str(answer)))

    asking = threading.Thread(target=keep_asking)
    asking.start()
    try:
        second = onnx_model(tmp_path / "v2", seed=2)
        assert registry.register(second, 0.95) == "2"
        health = server.wait_for(lambda health: health["version"] == "2")
        assert health["version"] == "2" and health["registry"] == "ok"

        # A champion that cannot be loaded: version 2 keeps answering and /health says why.
        broken = tmp_path / "v3"
        broken.mkdir()
        (broken / "model.onnx").write_bytes(b"not an onnx model")
        (broken / "manifest.json").write_text(json.dumps(MANIFEST))
        assert registry.register(broken, 0.99) == "3"
        health = server.wait_for(lambda health: "version 3" in health["registry"])
        assert health["version"] == "2" and "version 3" in health["registry"], health

        # The alias gone: the last version loaded keeps answering.
        registry.client.delete_registered_model_alias(NAME, CHAMPION)
        health = server.wait_for(lambda health: "alias" in health["registry"])
        assert health["version"] == "2" and "no 'champion' alias" in health["registry"], health
    finally:
        stop.set()
        asking.join()
    assert answers and all(status == 200 for status, _ in answers), answers[:5]
    versions = [version for _, version in answers]
    assert versions == sorted(versions) and versions[-1] == "2"  # 1s, then 2s, nothing else

    status, answer = server.predict(RECORDS)
    assert (status, answer["version"]) == (200, "2")
    got = np.array([[p["probabilities"][c] for c in "xyz"] for p in answer["predictions"]])
    np.testing.assert_allclose(got, onnx_probabilities(second, RECORDS), rtol=1e-6, atol=0)
    assert server.get("/metadata")[1]["metrics"] == {"test/accuracy": 0.95}


# --- starting (in this process: these never get as far as serving) ---------------------


def serve_here(registry: Registry, port: int, capsys) -> tuple[int, str]:
    """``bakeoff serve`` run through the console script's ``main``; its code and stderr."""
    from pipelines.cli import main

    code = main(serve_command(registry, port)[3:])
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_no_champion_at_start_is_one_line(tmp_path, capsys):
    registry = Registry(tmp_path)
    registry.register(onnx_model(tmp_path / "v1", seed=1), 0.9, champion=False)
    code, stderr = serve_here(registry, free_port(), capsys)
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"bakeoff serve: error: registered model '{NAME}' has no version with the alias "
        "'champion' (run the pipeline's register stage first, or pass --model-name)"
    )


@pytest.mark.slow
def test_a_taken_port_is_one_line(tmp_path, capsys):
    registry = Registry(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = serve_here(registry, port, capsys)
    assert code == 1
    last = stderr.strip().splitlines()[-1]
    assert (
        last == f"bakeoff serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


# --- options and params (no server) ----------------------------------------------------


def options(**given: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([f"--{key.replace('_', '-')}={value}" for key, value in given.items()])


def test_options_override_the_serve_section_and_defaults_fill_the_rest():
    params = cli.params_from({"port": 9000, "poll_s": 2, "threads": 2}, options(port=8001))
    assert params == cli.ServeParams(
        host="127.0.0.1", port=8001, max_batch=1024, poll_s=2.0, threads=2
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"port": 70000}, "serve.port"),
        ({"max_batch": 0}, "serve.max_batch"),
        ({"poll_s": "often"}, "serve.poll_s"),
        ({"threads": 0}, "serve.threads"),
        ({"host": ""}, "serve.host"),
    ],
)
def test_a_bad_serve_section_names_its_key(section, key):
    with pytest.raises(ParamsError, match=key):
        cli.params_from(section, options())


def test_the_registry_comes_from_params_like_the_register_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow").mkdir()
    (tmp_path / "mlflow" / "mlflow.db").touch()
    params = {"ingest": {"name": "wine"}, "train": {"tracking_uri": "sqlite:///mlflow/mlflow.db"}}
    uri, name = cli.registry_of(options(), params)
    assert (uri, name) == (f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", "bakeoff-wine")
    params["register"] = {"model_name": "mine"}
    assert cli.registry_of(options(), params)[1] == "mine"
    assert cli.registry_of(options(model_name="other"), params)[1] == "other"
    with pytest.raises(BakeoffError, match="no MLflow database there"):
        cli.registry_of(options(tracking_uri="sqlite:///elsewhere.db"), params)
