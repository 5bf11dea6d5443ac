"""Shared fixtures: tiny in-memory tables and a throwaway copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tiny_frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    """Two numeric features, one categorical, a three-class label; no bad values."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.uniform(0, 10, rows).round(3),
            "x2": rng.normal(5, 2, rows).round(3),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "label": rng.integers(0, 3, rows),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    """A fresh tiny table per test."""
    return tiny_frame()


@pytest.fixture(scope="module")
def cleaned():
    """The tiny table through the clean stage's core: splits and preprocessing constants."""
    from components.clean.core import CleanParams, clean

    frame = tiny_frame(300).assign(_source_file="t.csv", _source_row=range(1, 301))
    frame.loc[3, "x1"] = np.nan  # imputed by clean; at serving a gap is filled the same way
    manifest = {
        "label": "label",
        "task": "classification",
        "features": ["x1", "x2", "colour"],
        "dataset": "tiny",
    }
    return clean(
        frame, manifest, None, CleanParams.from_section({}), snapshot_name="s", schema_name="t"
    )


def stage_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's scripts first, no DVC analytics."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd`` and capture its output."""
    result = subprocess.run(
        command, cwd=cwd, env=stage_env(), capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def copy_repository(folder: Path) -> Path:
    """Copy the repository's tracked and untracked-but-not-ignored files into a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    copy = folder / "repo"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    run(["git", "init", "-q"], copy)
    return copy


#: The smoke budget: the graph and the stages are the real ones, the tuning is tiny.
SMOKE: dict[str, dict[str, Any]] = {
    "train": {"trials": 2, "epochs": 1},
    "refit": {"epochs": 2, "repeats": 2},
    "evaluate": {"seeds": 2},
}


def set_params(repo: Path, **sections: dict[str, Any]) -> None:
    """Update sections of a copied repository's params.yaml (each key replaced, others kept)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        params.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def smoke_repository(folder: Path, **sections: dict[str, Any]) -> Path:
    """A copy of the repository on the smoke budget, with ``sections`` of params updated."""
    copy = copy_repository(folder)
    set_params(copy, **{name: dict(values) for name, values in SMOKE.items()})
    set_params(copy, **sections)
    return copy


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway copy of the repository for one test."""
    return copy_repository(tmp_path)
