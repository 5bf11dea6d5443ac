"""Real ``dvc push`` and ``dvc pull`` of a two-stage graph: to the project's default
local remote, and to an S3 API served on localhost (moto).

The graph is a tiny stand-in for the project's (a file, a folder, an uncached
metric, a second stage reading the first), so the round trip takes seconds; the
end-to-end test runs the same check on the real graph's outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run, stage_env
from tests.helpers.remote import check_push_and_pull, push_and_pull

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
