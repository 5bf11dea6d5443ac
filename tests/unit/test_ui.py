"""``bakeoff ui``: the MLflow UI command it builds for each kind of ``train.tracking_uri``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from components.errors import ParamsError
from pipelines import ui


def args(tmp_path: Path, tracking_uri: str | None = None, **overrides) -> argparse.Namespace:
    params = tmp_path / "params.yaml"
    if tracking_uri is not None:
        params.write_text(yaml.safe_dump({"train": {"tracking_uri": tracking_uri}}))
    parser = argparse.ArgumentParser()
    ui.add_arguments(parser)
    namespace = parser.parse_args(["--params", str(params)])
    for key, value in overrides.items():
        setattr(namespace, key, value)
    return namespace


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_defaults_bind_loopback_on_5000_with_one_worker(tmp_path):
    namespace = args(tmp_path)
    assert (namespace.host, namespace.port, namespace.store) == ("127.0.0.1", 5000, None)
    command = ui.ui_command(
        "sqlite:////x/mlflow.db", root=tmp_path, host=namespace.host, port=namespace.port
    )
    assert command is not None and option(command, "--workers") == "1"


def test_a_relative_sqlite_uri_opens_that_database_with_its_artifacts_beside_it(tmp_path):
    uri = ui.store_uri(args(tmp_path, "sqlite:///track/runs.db"), tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'track' / 'runs.db'}"
    command = ui.ui_command(uri, root=tmp_path, host="127.0.0.1", port=5000)
    assert command is not None
    assert command[:2] == ["mlflow", "ui"]
    assert option(command, "--backend-store-uri") == uri
    assert option(command, "--default-artifact-root") == (tmp_path / "track/artifacts").as_uri()
    assert (option(command, "--host"), option(command, "--port")) == ("127.0.0.1", "5000")


def test_without_a_params_file_the_project_store_is_opened(tmp_path):
    uri = ui.store_uri(args(tmp_path), tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def test_store_overrides_params(tmp_path):
    namespace = args(tmp_path, "postgresql://db/mlflow", store=str(tmp_path / "elsewhere"))
    assert ui.store_uri(namespace, tmp_path) == f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://bakeoff:secret@db.internal:5432/mlflow",
        "postgresql+psycopg2://bakeoff@127.0.0.1:5433/mlflow",
        "mysql+pymysql://user@db/mlflow",
    ],
)
def test_a_database_url_becomes_the_backend_store(tmp_path, uri):
    assert ui.store_uri(args(tmp_path, uri), tmp_path) == uri  # used as it is
    command = ui.ui_command(uri, root=tmp_path, host="127.0.0.1", port=5001, mlflow="/v/mlflow")
    assert command is not None
    assert command[:2] == ["/v/mlflow", "ui"]
    assert option(command, "--backend-store-uri") == uri
    # Experiments the trainers create carry their own location; new ones go to the project's.
    assert option(command, "--default-artifact-root") == (tmp_path / "mlflow/artifacts").as_uri()
    assert option(command, "--host") == "127.0.0.1"


@pytest.mark.parametrize("uri", ["http://mlflow.internal:5000", "https://mlflow.example.com"])
def test_a_tracking_server_needs_no_ui_started(tmp_path, uri, monkeypatch, capsys):
    assert ui.ui_command(uri, root=tmp_path, host="127.0.0.1", port=5000) is None

    def refuse(*_args, **_kwargs):
        raise AssertionError("nothing should be started for a server URI")

    monkeypatch.setattr(ui.subprocess, "run", refuse)
    assert ui.run(args(tmp_path, uri)) == 0
    assert f"its UI is at {uri}" in capsys.readouterr().out


def test_a_file_store_is_opened_as_it_is(tmp_path):
    command = ui.ui_command("file:///srv/mlruns", root=tmp_path, host="127.0.0.1", port=5000)
    assert command is not None
    assert option(command, "--backend-store-uri") == "file:///srv/mlruns"
    assert "--default-artifact-root" not in command


def test_an_unknown_scheme_names_the_key_and_hides_the_password(tmp_path):
    with pytest.raises(ParamsError, match=r"train.tracking_uri: expected sqlite:///") as err:
        ui.ui_command("databricks://user:pw@workspace", root=tmp_path, host="h", port=1)
    assert "pw" not in str(err.value)


def test_a_tracking_uri_that_is_not_a_string_names_the_key(tmp_path):
    with pytest.raises(ParamsError, match=r"train.tracking_uri: expected a URL; found 5"):
        ui.store_uri(args(tmp_path, 5), tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://u:s3cr%40t@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
    ],
)
def test_passwords_are_not_printed(uri, shown):
    assert ui.redact(uri) == shown


def test_run_starts_mlflow_ui_over_params_store_with_the_project_environment(
    tmp_path, monkeypatch, capsys
):
    started = {}

    class Done:
        returncode = 0

    def fake_run(command, env, check):
        started.update(command=command, env=env)
        return Done()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ui.subprocess, "run", fake_run)
    uri = "postgresql://bakeoff:pw@127.0.0.1:5433/mlflow"
    assert ui.run(args(tmp_path, uri, port=5055, workers=3)) == 0
    assert option(started["command"], "--backend-store-uri") == uri
    assert option(started["command"], "--port") == "5055"
    assert option(started["command"], "--workers") == "3"
    assert started["command"][0].endswith("/mlflow")  # the venv's, next to this interpreter
    assert started["env"]["PATH"].split(":")[0] == str(Path(started["command"][0]).parent)
    out = capsys.readouterr().out
    assert "http://127.0.0.1:5055" in out
    assert "pw" not in out
