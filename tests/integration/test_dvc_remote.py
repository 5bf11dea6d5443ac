"""Real ``dvc push`` and ``dvc pull`` of a two-stage graph: to the project's default
local remote, to an S3 API served on localhost (moto), and through the retrain
workflow's own steps.

The graph is a tiny stand-in for the project's (a file, a folder, an uncached
metric, a second stage reading the first), so the round trip takes seconds; the
end-to-end test runs the same check on the real graph's outputs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT, run, stage_env
from tests.helpers.remote import (
    BUCKET,
    check_push_and_pull,
    check_restored,
    commit_and_clone,
    push_and_pull,
    s3_env,
    s3_server,
)

pytestmark = pytest.mark.slow

MAKE = """\
from pathlib import Path
parts = Path("data/parts")
parts.mkdir(parents=True, exist_ok=True)
for i in range(3):
    (parts / f"part-{i}.txt").write_text(f"{i}\\n" * (i + 1))
Path("data/numbers.txt").write_text("1 2 3\\n")
Path("metrics.json").write_text('{"rows": 3}\\n')
"""

TOTAL = """\
from pathlib import Path
numbers = Path("data/numbers.txt").read_text().split()
Path("data/total.txt").write_text(f"{sum(map(int, numbers))}\\n")
"""

DVC_YAML = """\
stages:
  make:
    cmd: python make.py
    deps: [make.py]
    outs: [data/parts, data/numbers.txt]
    metrics:
      - metrics.json:
          cache: false
  total:
    cmd: python total.py
    deps: [total.py, data/numbers.txt]
    outs: [data/total.txt]
"""


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    """A git + DVC repository with the project's DVC config, its two stages run."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    shutil.copy2(ROOT / ".dvcignore", repo / ".dvcignore")
    (repo / "make.py").write_text(MAKE)
    (repo / "total.py").write_text(TOTAL)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    run(["dvc", "repro"], repo)
    assert (repo / "data" / "total.txt").read_text() == "6\n"
    return repo


def test_outputs_round_trip_through_an_s3_api_on_localhost(graph):
    check_push_and_pull(graph)


def test_a_bucket_that_does_not_exist_fails_the_push_saying_so(graph, tmp_path):
    dvc = str(BIN / "dvc")
    with s3_server(tmp_path / "moto_server.log") as endpoint:
        env = s3_env(tmp_path)
        for command in (
            ["remote", "add", "--default", "s3", "s3://no-such-bucket/dvc"],
            ["remote", "modify", "s3", "endpointurl", endpoint],
        ):
            subprocess.run([dvc, *command], cwd=graph, env=env, check=True, capture_output=True)
        pushed = subprocess.run(
            [dvc, "push"], cwd=graph, env=env, capture_output=True, text=True, check=False
        )
    assert pushed.returncode != 0
    assert "The specified bucket does not exist" in pushed.stderr, pushed.stderr


def test_the_default_remote_is_a_folder_in_the_users_data_home(graph, tmp_path):
    home = tmp_path / "home"
    env = stage_env() | {"HOME": str(home)}
    assert run(["dvc", "remote", "default"], graph).stdout.strip() == "local"
    clone = push_and_pull(graph, env)
    stored = home / ".local" / "share" / "bakeoff" / "dvc-remote" / "files" / "md5"
    # Three part files, numbers.txt, total.txt and the folder's .dir listing.
    assert len([path for path in stored.rglob("*") if path.is_file()]) == 6
    # The clone's config names the folder as written (~), so each user gets their own.
    assert "~/.local/share/bakeoff/dvc-remote" in (clone / ".dvc" / "config").read_text()


def workflow_steps() -> dict[str, dict]:
    """The retrain workflow's steps by name."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "retrain.yml").read_text())
    return {step["name"]: step for step in workflow["jobs"]["retrain"]["steps"] if "name" in step}


def run_step(script: str, repo: Path, env: dict[str, str]) -> str:
    """A step's shell script as GitHub Actions runs it (bash -e, pipefail); its stdout."""
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{script}\nfailed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def runner(repo: Path, script: str, **variables: str) -> tuple[dict[str, str], str]:
    """A fresh runner's environment after the step ``script`` (and what it wrote to
    ``$GITHUB_ENV``), and the step's output. ``repo`` gets the project's .venv."""
    (repo / ".venv").symlink_to(ROOT / ".venv")
    github_env = repo.parent / f"{repo.name}.github_env"
    github_env.touch()
    env = s3_env(repo.parent, GITHUB_ENV=str(github_env), **variables)
    output = run_step(script, repo, env)
    return env | dict(line.split("=", 1) for line in github_env.read_text().splitlines()), output


def test_the_retrain_workflow_carries_outputs_between_runners(graph, tmp_path):
    steps = workflow_steps()
    choose = steps["Choose the DVC remote"]["run"]
    restore = steps["Restore the last run's outputs"]
    keep = steps["Keep dvc.lock, the reports and the history"]["run"]
    [push] = [line for line in keep.splitlines() if "dvc push" in line]
    assert keep.index("dvc push") < keep.index("git commit"), "push before the commit names it"
    (graph / ".gitignore").write_text("/.venv\n")

    # Without a shared remote the committed one-machine default is no use: a warning, no pull.
    env, output = runner(graph, choose, REMOTE="", ENDPOINT="")
    assert "::warning::no shared DVC remote" in output and "BAKEOFF_DVC_SHARED" not in env
    (graph / ".venv").unlink()

    with s3_server(tmp_path / "moto_server.log") as endpoint:
        remote = {"REMOTE": f"s3://{BUCKET}/retrain", "ENDPOINT": endpoint}
        env, _ = runner(graph, choose, **remote)
        assert env["BAKEOFF_DVC_SHARED"] == "1"
        run_step(push, graph, env)
        clone = commit_and_clone(graph, env)
        env, _ = runner(clone, choose, **remote)
        assert restore["if"] == "${{ env.BAKEOFF_DVC_SHARED == '1' }}"
        assert env["BAKEOFF_DVC_SHARED"] == "1"
        run_step(restore["run"], clone, env)
        check_restored(graph, clone, env)
