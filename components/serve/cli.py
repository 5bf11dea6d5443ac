"""``bakeoff serve``: the registry's champion over HTTP, on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.errors import BakeoffError, ParamsError
from components.params import load_params, number, whole
from components.training import tracking

STAGE = "serve"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeParams:
    """The ``serve`` section of params.yaml, unpacked, with the command line's overrides."""

    host: str
    port: int
    max_batch: int
    poll_s: float
    threads: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options; each one left out comes from params.yaml's ``serve`` section."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument(
        "--model-name",
        help="registered model to serve (default: register.model_name; auto: bakeoff-<data set>)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking/registry URI (default: train.tracking_uri, sqlite:///mlflow/mlflow.db)",
    )
    parser.add_argument(
        "--host",
        help="address to listen on (default 127.0.0.1; anything else is reachable from other "
        "machines, with no authentication)",
    )
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument(
        "--max-batch", type=int, help="most records per request; more get 413 (default 1024)"
    )
    parser.add_argument(
        "--poll-s",
        type=float,
        help="seconds between checks of the champion alias; a new champion is loaded "
        "without a restart (default 5)",
    )
    parser.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads per request (default 1)"
    )


def params_from(raw: dict[str, Any], args: argparse.Namespace) -> ServeParams:
    """The ``serve`` section, checked, with any option given on the command line taking its place."""

    def pick(key: str) -> Any:
        given = getattr(args, key)
        return given if given is not None else raw.get(key, _DEFAULTS[key])

    host = pick("host")
    if not isinstance(host, str) or not host.strip():
        raise ParamsError("serve.host", f"expected an address such as 127.0.0.1; found {host!r}")
    port = whole(pick("port"), "serve.port", 0)
    if port > 65535:
        raise ParamsError("serve.port", f"expected a port from 0 to 65535; found {port}")
    return ServeParams(
        host=host.strip(),
        port=port,
        max_batch=whole(pick("max_batch"), "serve.max_batch", 1),
        poll_s=number(pick("poll_s"), "serve.poll_s", 0.01, finite=True),
        threads=whole(pick("threads"), "serve.threads", 1),
    )


_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8000,
    "max_batch": 1024,
    "poll_s": 5.0,
    "threads": 1,
}


def registry_of(args: argparse.Namespace, params: dict[str, Any]) -> tuple[str, str]:
    """The tracking URI (a relative SQLite path made absolute) and the model name to serve."""
    from components.ingest.core import IngestParams
    from components.register.core import RegisterParams

    uri = _absolute_sqlite(args.tracking_uri or tracking.configured_uri(params.get("train")))
    if args.model_name:
        return uri, args.model_name
    dataset = IngestParams.from_section(params.get("ingest") or {}).name
    return uri, RegisterParams.from_section(params.get("register") or {}, dataset).model_name


def _absolute_sqlite(uri: str) -> str:
    """A relative ``sqlite:///`` path made absolute, and refused when no database is there.

    MLflow would create an empty store at a wrong path and then report "no such
    model"; the path is the clearer thing to report.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    database = Path(uri[len(prefix) :])
    database = database if database.is_absolute() else (Path.cwd() / database).resolve()
    if not database.is_file():
        raise BakeoffError(f"{database}: no MLflow database there (tracking URI {uri})")
    return prefix + str(database)


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, so that a taken port is one clear line, not a traceback."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise BakeoffError(f"cannot listen on {host}:{port}: {error}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise BakeoffError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> None:
    """Load the champion, start the poller and serve until interrupted."""
    import mlflow
    import uvicorn

    from components.serve.app import create_app
    from components.serve.champion import Champion

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    log = logging.getLogger("bakeoff.serve")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    both_given = args.model_name and args.tracking_uri
    params = {} if both_given and not Path(args.params).exists() else load_params(args.params)
    own = params_from(params.get(STAGE) or {}, args)
    uri, name = registry_of(args, params)
    # The port first: a taken one fails in a second, before the model is downloaded.
    sock = _listen(own.host, own.port)
    try:
        champion = Champion(
            mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri),
            name,
            threads=own.threads,
            max_batch=own.max_batch,
        )
        model = champion.load()
        host, port = sock.getsockname()[:2]
        if own.host not in LOOPBACK:
            log.warning(
                "serve: listening on %s, reachable from other machines; there is no authentication",
                own.host,
            )
        champion.start_polling(own.poll_s)
        log.info(
            "serve: %s version %s (%s) on http://%s:%d; champion alias checked every %g s",
            name,
            model.version,
            model.framework,
            f"[{host}]" if ":" in host else host,
            port,
            own.poll_s,
        )
        config = uvicorn.Config(
            create_app(champion), log_level="warning", access_log=False, timeout_graceful_shutdown=5
        )
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            champion.stop()
    finally:
        sock.close()
