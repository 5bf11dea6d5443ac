"""A DVC remote round trip: push a repository's outputs, restore them in a fresh clone.

The S3 case runs moto's server mode (an S3 API on 127.0.0.1) with dummy
credentials, so the real ``dvc push`` / ``dvc pull`` go through DVC's S3 client
(s3fs, aiobotocore) without reaching the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import BIN, stage_env

BUCKET = "bakeoff-dvc"


def s3_env(folder: Path, **extra: str) -> dict[str, str]:
    """The stage environment with dummy AWS credentials and nothing that could reach AWS.

    Inherited AWS settings (a profile, a session token, an endpoint) are dropped
    and the config files are an empty one in ``folder``, so only these values
    count; instance metadata is off, so botocore never probes 169.254.169.254.
    """
    empty = folder / "aws-config-empty"
    empty.touch()
    env = {key: value for key, value in stage_env().items() if not key.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
    }
    return env | extra


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """moto's S3 API on a free 127.0.0.1 port, with one empty bucket; yields its endpoint URL."""
    program = BIN / "moto_server"
    if not program.exists():
        raise AssertionError(
            f"{program} not found: moto[server] is in the dev extra; run bin/setup"
        )
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(program), "-H", "127.0.0.1", "-p", str(port)],
            env=s3_env(log.parent),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError):
                tail = log.read_text()[-2000:]
                assert server.poll() is None, f"moto_server exited ({server.returncode}):\n{tail}"
                assert time.monotonic() < deadline, f"moto_server did not answer in 60 s:\n{tail}"
                time.sleep(0.2)
        _s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _s3_client(endpoint: str) -> Any:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client("s3", endpoint_url=endpoint)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def locked_outputs(repo: Path) -> dict[str, dict[str, Any]]:
    """Every output of every stage as ``dvc.lock`` records it (path, md5, size, nfiles)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out for stage in lock["stages"].values() for out in stage.get("outs", [])}


def _file_hashes(root: Path) -> dict[str, str]:
    """The md5 of every file at or under ``root``, by path relative to it."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {
        path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for path in files
    }


def commit_and_clone(repo: Path, env: dict[str, str]) -> Path:
    """Commit everything in ``repo`` (a copied one has no commit) and clone it beside it.

    The clone carries ``dvc.lock`` and the committed DVC config, but no DVC cache
    and none of the git-ignored outputs: only a remote can bring those back.
    """
    git = ["git", "-c", "user.name=bakeoff test", "-c", "user.email=test@bakeoff.invalid"]
    _run(["git", "add", "-A"], repo, env)
    _run([*git, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "outputs pushed"], repo, env)
    clone = repo.parent / f"{repo.name}-clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], repo.parent, env)
    assert any(not (clone / path).exists() for path in locked_outputs(repo)), (
        "a clone already has every output: nothing left for dvc pull to restore"
    )
    return clone


def check_restored(repo: Path, clone: Path, env: dict[str, str]) -> None:
    """Every output ``dvc.lock`` records is in ``clone`` as in ``repo``, and DVC agrees.

    Each file of each output has the original's md5, a file output the md5 the
    lock records, a folder output the lock's file count; ``dvc status`` in the
    clone (which hashes the workspace again) is clean.
    """
    outputs = locked_outputs(repo)
    assert outputs, f"{repo / 'dvc.lock'} records no outputs"
    for path, out in outputs.items():
        restored = clone / path
        assert restored.exists(), f"dvc pull did not restore {path}"
        hashes = _file_hashes(restored)
        assert hashes == _file_hashes(repo / path), f"{path} differs from the pushed one"
        if out["md5"].endswith(".dir"):
            assert len(hashes) == out["nfiles"], (path, len(hashes), out["nfiles"])
        else:
            assert hashes == {".": out["md5"]}, f"{path}: not the md5 dvc.lock records"
    assert json.loads(_run([str(BIN / "dvc"), "status", "--json"], clone, env)) == {}


def push_and_pull(repo: Path, env: dict[str, str]) -> Path:
    """``dvc push`` to the repository's default remote, then restore a fresh clone by ``dvc pull``.

    Returns the clone, checked by :func:`check_restored`.
    """
    dvc = str(BIN / "dvc")
    _run([dvc, "push"], repo, env)
    # The remote holds every cached object the workspace references.
    assert json.loads(_run([dvc, "status", "--cloud", "--json"], repo, env)) == {}
    clone = commit_and_clone(repo, env)
    _run([dvc, "pull"], clone, env)
    check_restored(repo, clone, env)
    return clone


def check_push_and_pull(repo: Path) -> None:
    """The graph's outputs go to an S3 API on localhost and a fresh clone gets them all back."""
    with s3_server(repo.parent / "moto_server.log") as endpoint:
        env = s3_env(repo.parent)
        dvc = str(BIN / "dvc")
        _run([dvc, "remote", "add", "--default", "s3", f"s3://{BUCKET}/dvc"], repo, env)
        _run([dvc, "remote", "modify", "s3", "endpointurl", endpoint], repo, env)
        push_and_pull(repo, env)
        stored = _s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix="dvc/files/md5/")
        assert stored["KeyCount"] > 0, "dvc push stored nothing in the bucket"
