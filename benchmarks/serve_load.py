"""Load on ``bakeoff serve`` over localhost: requests/s and latency at batch 1 and 32.

Starts ``bakeoff serve`` as a subprocess on a free localhost port against the
registry's champion (the project's registry unless ``--tracking-uri`` /
``--model-name`` say otherwise), waits for ``/health``, then sends
``POST /predict`` from client threads, each on its own keep-alive
``http.client`` connection, with bodies built from real rows (the clean test
split, cycling). Each scenario (batch size x client threads) stops at a
request count or a time limit, whichever comes first; the first requests of
each are a warm-up and not counted.

Figures per scenario: requests/s, rows/s, p50/p99 latency as the client sees
it. For comparison, the bare ONNX Runtime call on the same batches in this
process (same thread count, after the server has stopped), so the cost of HTTP,
parsing, validation and serialisation shows as a ratio of latencies.

Client and server share this machine's cores: with few cores the client's own
work is part of what is measured, and other load on the machine moves the
figures; compare ratios taken in one run.

    .venv/bin/python benchmarks/serve_load.py [--requests 2000] [--seconds 20] \\
        [--clients 1 4] [--batches 1 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "serve_load.json"
WARM_UP = 20  # requests per scenario before timing starts
BODIES = 64  # distinct bodies per batch size, cycled


def free_port() -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(args: argparse.Namespace, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``bakeoff serve`` on ``port``, polling rarely so that the poller stays out of the figures.

    Its stderr goes to ``log``, a file: a pipe nobody reads could fill and stall the server.
    """
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)]
    command += ["--threads", str(args.threads), "--poll-s", "60"]
    if args.tracking_uri:
        command += ["--tracking-uri", args.tracking_uri]
    if args.model_name:
        command += ["--model-name", args.model_name]
    return subprocess.Popen(command, cwd=ROOT, stderr=log)


def wait_ready(
    server: subprocess.Popen[bytes], port: int, log: IO[bytes], limit_s: float = 180
) -> dict[str, Any]:
    """The server's metadata once ``/health`` answers; exits if the server dies or never answers."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise SystemExit(f"bakeoff serve exited:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                pass
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=5) as answer:
                return dict(json.load(answer))
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"bakeoff serve did not answer on port {port} within {limit_s:.0f} s")


def records(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The test split's rows as request records: the model's columns, JSON-ready values."""
    columns = metadata["input"]["columns"]
    categorical = metadata["input"]["categorical"]
    test = pd.read_parquet(ROOT / "data" / "clean" / "test.parquet", columns=columns)
    rows = test.to_dict("records")
    for row in rows:
        for name in columns:
            row[name] = str(row[name]) if name in categorical else float(row[name])
    return rows


def bodies(rows: list[dict[str, Any]], batch: int) -> list[bytes]:
    """Request bodies of ``batch`` consecutive rows each, cycling through the rows."""
    return [
        json.dumps(
            {"records": [rows[(start * batch + i) % len(rows)] for i in range(batch)]}
        ).encode()
        for start in range(BODIES)
    ]


def load(
    port: int, payloads: list[bytes], clients: int, count: int, seconds: float
) -> dict[str, Any]:
    """Send ``count`` requests (or for ``seconds``, whichever ends first) from ``clients`` threads."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    sent = [0]
    clock = {"began": 0.0, "stop_at": 0.0}

    def set_clock() -> None:  # run once, when every client has warmed up, before any goes on
        clock["began"] = time.perf_counter()
        clock["stop_at"] = clock["began"] + seconds

    start = threading.Barrier(clients, action=set_clock)

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        for i in range(WARM_UP):
            connection.request("POST", "/predict", payloads[(offset + i) % len(payloads)], headers)
            connection.getresponse().read()
        start.wait()
        own = []
        i = offset
        while time.perf_counter() < clock["stop_at"]:
            with lock:
                if sent[0] >= count:
                    break
                sent[0] += 1
            began = time.perf_counter()
            connection.request("POST", "/predict", payloads[i % len(payloads)], headers)
            response = connection.getresponse()
            body = response.read()
            own.append(time.perf_counter() - began)
            if response.status != 200:
                errors.append(f"{response.status}: {body[:200]!r}")
            i += 1
        connection.close()
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client, args=(n * 7,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - clock["began"]
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
    return {"requests": len(latencies), "seconds": elapsed, **summary(latencies, elapsed)}


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    """Rate and latency percentiles (ms) of a list of request times in seconds."""
    values = np.array(latencies) * 1000
    return {
        "requests_per_s": len(values) / elapsed,
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
    }


def bare_model(args: argparse.Namespace, name: str) -> Any:
    """The served version loaded in this process as the server loads it (same threads)."""
    import mlflow

    from components.serve.champion import champion_version, load_version
    from components.serve.cli import _absolute_sqlite

    uri = _absolute_sqlite(args.tracking_uri or "sqlite:///mlflow/mlflow.db")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    return load_version(
        client, name, champion_version(client, name), threads=args.threads, max_batch=1024
    )


def bare_onnx(args: argparse.Namespace, model: Any, payloads: list[bytes]) -> dict[str, Any]:
    """The ONNX Runtime call alone on the same batches, in this process, as the server makes it."""
    from components.serve.inputs import parse_body, to_matrix

    matrices = [to_matrix(parse_body(body, model.spec), model.spec) for body in payloads]
    for matrix in matrices[:WARM_UP]:
        model.predict(matrix)
    times: list[float] = []
    ends = time.perf_counter() + args.seconds
    while len(times) < args.requests and time.perf_counter() < ends:
        matrix = matrices[len(times) % len(matrices)]
        began = time.perf_counter()
        model.predict(matrix)
        times.append(time.perf_counter() - began)
    result: dict[str, Any] = {"calls": len(times), **summary(times, sum(times))}
    result["calls_per_s"] = result.pop("requests_per_s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="registry to serve from (default: the project's)")
    parser.add_argument("--model-name", help="registered model (default: the project's)")
    parser.add_argument("--requests", type=int, default=2000, help="most requests per scenario")
    parser.add_argument("--seconds", type=float, default=20, help="most seconds per scenario")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4], help="client threads")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 32], help="records per request"
    )
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads of the server")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    load_before = os.getloadavg()
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = start_server(args, port, log)
        scenarios = []
        bare = {}
        try:
            metadata = wait_ready(server, port, log)
            rows = records(metadata)
            model = bare_model(args, metadata["model"])
            for batch in args.batches:
                payloads = bodies(rows, batch)
                # Timed while the server is idle, right before its HTTP figures: the same
                # conditions, as far as a shared machine allows.
                bare[batch] = bare_onnx(args, model, payloads)
                for clients in args.clients:
                    result = load(port, payloads, clients, args.requests, args.seconds)
                    result = {"batch": batch, "clients": clients, **result}
                    result["rows_per_s"] = result["requests_per_s"] * batch
                    scenarios.append(result)
                    print(
                        f"batch {batch:>3}, {clients} client(s): {result['requests']:>5} requests in "
                        f"{result['seconds']:5.1f} s, {result['requests_per_s']:8.1f} req/s, "
                        f"{result['rows_per_s']:9.1f} rows/s, p50 {result['p50_ms']:7.2f} ms, "
                        f"p99 {result['p99_ms']:7.2f} ms"
                    )
                alone = next(
                    s
                    for s in scenarios
                    if s["batch"] == batch and s["clients"] == min(args.clients)
                )
                bare[batch]["http_over_bare_p50"] = alone["p50_ms"] / bare[batch]["p50_ms"]
                print(
                    f"batch {batch:>3}, bare ONNX Runtime call: p50 {bare[batch]['p50_ms']:7.2f} ms, "
                    f"p99 {bare[batch]['p99_ms']:7.2f} ms; HTTP p50 ({min(args.clients)} client) / "
                    f"bare p50: {bare[batch]['http_over_bare_p50']:.2f}"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    result_ = {
        "model": metadata["model"],
        "version": metadata["version"],
        "framework": metadata["framework"],
        "features": len(metadata["input"]["columns"]),
        "server": "bakeoff serve (uvicorn with h11, one process), 127.0.0.1",
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "limits": {"requests": args.requests, "seconds": args.seconds, "warm_up": WARM_UP},
        "http_over_bare_p50": {str(b): values["http_over_bare_p50"] for b, values in bare.items()},
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "scenarios": scenarios,
        "bare_onnx": {str(batch): values for batch, values in bare.items()},
        "note": "client and server share the machine's cores, and other work ran on them "
        "(load_average, 1 minute); latency is as the client sees it",
    }
    RESULT.write_text(json.dumps(result_, indent=2) + "\n")
    print(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
