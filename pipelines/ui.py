"""``bakeoff ui``: the MLflow UI over the project's tracking store, on 127.0.0.1 by default.

The store is the one the trainers log to, ``train.tracking_uri`` in params.yaml:
an SQLite file (the default), a database URL (PostgreSQL, MySQL: several hosts
logging to one backend store), or the URL of an MLflow tracking server, which
already has its own UI, so nothing is started.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from components.errors import ParamsError
from components.params import load_params
from components.training import tracking
from pipelines.runner import stage_environment

# SQLAlchemy dialects MLflow accepts as a backend store (``dialect+driver://``).
DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
PROJECT_ARTIFACTS = Path("mlflow") / "artifacts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``bakeoff ui``."""
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params file whose train.tracking_uri names the store (default: params.yaml)",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="a folder holding mlflow.db and artifacts/ to open instead of train.tracking_uri",
    )
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default 1, enough for one person; mlflow's own default is 4)",
    )


def store_uri(args: argparse.Namespace, root: Path) -> str:
    """The tracking URI to open: ``--store``'s database, else params' ``train.tracking_uri``.

    A missing params file means the default store, so the UI opens in any
    checkout; a params file without the key means the same.
    """
    if args.store is not None:
        return f"sqlite:///{Path(args.store).resolve() / 'mlflow.db'}"
    params_file = Path(args.params)
    raw = load_params(params_file).get("train") if params_file.exists() else None
    return tracking.tracking_uri(tracking.configured_uri(raw, str(params_file)), root)


def ui_command(
    uri: str, *, root: Path, host: str, port: int, workers: int = 1, mlflow: str = "mlflow"
) -> list[str] | None:
    """The ``mlflow ui`` command line over ``uri``, or None when ``uri`` is a server already.

    New experiments get their artifacts next to an SQLite file (``mlflow.db``
    and ``artifacts/`` in one folder, as the project lays out ``mlflow/``), or
    in the project's ``mlflow/artifacts`` for a database server. Experiments
    the trainers created carry their own artifact location either way.
    """
    if tracking.is_server(uri):
        return None
    scheme = urlsplit(uri).scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        database = Path(uri[len("sqlite:///") :])
        artifacts: Path | None = database.parent / "artifacts"
    elif scheme in DATABASES:
        artifacts = root / PROJECT_ARTIFACTS
    elif scheme in ("", "file"):  # MLflow's file store keeps artifacts in its own folder
        artifacts = None
    else:
        raise ParamsError(
            "train.tracking_uri",
            f"expected sqlite:///, a database URL ({', '.join(DATABASES[1:])}), a folder or "
            f"an http(s):// tracking server; found {redact(uri)!r}",
        )
    # Each server process imports MLflow again: on a small machine four (mlflow's
    # default) take seconds longer to start than one, which serves one reader well.
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    command += ["--workers", str(workers)]
    if artifacts is not None:
        command += ["--default-artifact-root", artifacts.resolve().as_uri()]
    return command


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def run(args: argparse.Namespace) -> int:
    """Start ``mlflow ui`` in the foreground until interrupted (or point at the server)."""
    root = Path.cwd()
    uri = store_uri(args, root)
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = ui_command(
        uri, root=root, host=args.host, port=args.port, workers=args.workers, mlflow=mlflow
    )
    if command is None:
        print(f"train.tracking_uri is an MLflow tracking server; its UI is at {redact(uri)}")
        return 0
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    print(f"MLflow UI on http://{args.host}:{args.port} over {redact(uri)}", flush=True)
    return subprocess.run(command, env=stage_environment(), check=False).returncode
