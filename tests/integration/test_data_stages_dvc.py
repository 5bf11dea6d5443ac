"""The ingest and clean stages through real ``dvc repro clean`` on a throwaway copy of the repository.

Each ``dvc repro`` names the ``clean`` stage: the training stages after it have
their own tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import run, set_params, tiny_frame

pytestmark = pytest.mark.slow

OUTPUTS = [
    "data/raw/snapshot.parquet",
    "data/raw/manifest.json",
    "data/clean/train.parquet",
    "data/clean/val.parquet",
    "data/clean/test.parquet",
    "data/clean/preprocessing.json",
    "data/quarantine/quarantine.parquet",
    "reports/data_quality.json",
]


def contents(repo: Path, paths: list[str]) -> dict[str, bytes]:
    return {path: (repo / path).read_bytes() for path in paths}


def use_landing(repo: Path) -> Path:
    set_params(
        repo,
        ingest={"name": "tiny", "source": "landing", "path": "data/landing"},
    )
    return repo / "data" / "landing"


def splits_by_key(repo: Path) -> pd.Series:
    parts = [
        pd.read_parquet(repo / f"data/clean/{name}.parquet", columns=["_row_key"]).assign(
            split=name
        )
        for name in ("train", "val", "test")
    ]
    return pd.concat(parts).set_index("_row_key")["split"]


def test_repro_on_the_default_data_is_reproducible(repo):
    first = run(["dvc", "repro", "clean"], repo)
    assert "Running stage 'ingest'" in first.stdout
    assert "Running stage 'clean'" in first.stdout
    report = json.loads((repo / "reports/data_quality.json").read_text())
    assert report["rows"]["input"] == 1797
    assert report["rows"]["train"] + report["rows"]["val"] + report["rows"]["test"] == 1797
    produced = contents(repo, OUTPUTS)

    again = run(["dvc", "repro", "clean"], repo)
    assert "Running stage" not in again.stdout
    assert contents(repo, OUTPUTS) == produced

    forced = run(["dvc", "repro", "--force", "clean"], repo)
    assert "Running stage 'ingest'" in forced.stdout
    assert contents(repo, OUTPUTS) == produced, "the same source must give byte-identical outputs"
    assert "up to date" in run(["dvc", "status", "--with-deps", "clean"], repo).stdout


def test_a_new_landing_batch_changes_the_manifest_and_keeps_every_rows_split(repo):
    landing = use_landing(repo)
    tiny_frame(400, seed=1).to_csv(landing / "batch-001.csv", index=False)
    run(["dvc", "repro", "clean"], repo)
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["data/landing/batch-001.csv"]
    assert (repo / "schemas/tiny.yaml").exists()
    before = splits_by_key(repo)

    tiny_frame(300, seed=2).to_csv(landing / "batch-002.csv", index=False)
    status = run(["dvc", "status", "--with-deps", "clean"], repo).stdout
    assert "ingest" in status and "data/landing" in status
    run(["dvc", "repro", "clean"], repo)
    changed = json.loads((repo / "data/raw/manifest.json").read_text())
    assert changed != manifest
    assert [f["path"] for f in changed["files"]][-1] == "data/landing/batch-002.csv"
    assert changed["rows"] == 700
    after = splits_by_key(repo)
    assert len(after) > len(before)
    assert after.loc[before.index].equals(before), "an existing row moved to another split"
    assert (landing / "batch-001.csv").read_text() == tiny_frame(400, seed=1).to_csv(index=False)


def test_a_failed_stage_leaves_the_last_good_outputs(repo):
    landing = use_landing(repo)
    tiny_frame(400, seed=1).to_csv(landing / "batch-001.csv", index=False)
    run(["dvc", "repro", "clean"], repo)
    good = contents(repo, [*OUTPUTS, "dvc.lock", "schemas/tiny.yaml"])

    (landing / "batch-002.csv").write_text("x1,x2,colour,label\n1,2,red,0\n1,2,3,4,5,6\n")
    failed = run(["dvc", "repro", "clean"], repo, check=False)
    assert failed.returncode != 0
    assert (
        "bakeoff ingest: error: data/landing/batch-002.csv: unreadable: Error tokenizing data"
        in failed.stderr
    )
    assert contents(repo, [*OUTPUTS, "dvc.lock", "schemas/tiny.yaml"]) == good


def test_schema_drift_stops_clean_with_one_line(repo):
    landing = use_landing(repo)
    tiny_frame(400, seed=1).to_csv(landing / "batch-001.csv", index=False)
    run(["dvc", "repro", "clean"], repo)
    clean_outputs = [path for path in OUTPUTS if not path.startswith("data/raw")]
    good = contents(repo, clean_outputs)

    tiny_frame(50, seed=3).assign(extra=np.arange(50)).to_csv(
        landing / "batch-002.csv", index=False
    )
    failed = run(["dvc", "repro", "clean"], repo, check=False)
    assert failed.returncode != 0
    errors = [
        line for line in failed.stderr.splitlines() if line.startswith("bakeoff clean: error:")
    ]
    assert errors == [
        "bakeoff clean: error: data/raw/snapshot.parquet: schema drift against schemas/tiny.yaml: "
        "column 'extra' added (not in the schema) "
        "(accept it with clean.allow_schema_drift: true, or edit the schema)"
    ]
    assert contents(repo, clean_outputs) == good


def test_too_many_bad_rows_stop_clean(repo):
    landing = use_landing(repo)
    tiny_frame(400, seed=1).to_csv(landing / "batch-001.csv", index=False)
    run(["dvc", "repro", "clean"], repo)
    good = contents(repo, [path for path in OUTPUTS if not path.startswith("data/raw")])
    tiny_frame(100, seed=4).assign(label=7).to_csv(landing / "batch-002.csv", index=False)
    failed = run(["dvc", "repro", "clean"], repo, check=False)
    assert "quarantine share 20.0% is above clean.max_quarantine_share 10.0%" in failed.stderr
    assert "unknown_label: 100" in failed.stderr
    assert contents(repo, list(good)) == good


def test_bad_params_fail_with_the_key(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["ingest"]["source"] = "ftp"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    failed = run(
        ["bakeoff", "ingest", "--snapshot", "s.parquet", "--manifest", "m.json"], repo, check=False
    )
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        "bakeoff ingest: error: params.yaml: ingest.source: "
        "expected one of builtin, file, landing; found 'ftp'"
    )


def test_a_spreadsheet_export_is_read_and_a_one_class_label_refused(repo):
    landing = use_landing(repo)
    messy = tiny_frame(400, seed=1)
    messy["colour"] = messy["colour"].astype(object)
    messy.loc[:19, "colour"] = "None"  # a category, not a gap
    messy.loc[20, "colour"] = "dark\nred; quoted"
    messy.loc[[30, 31], "x1"] = np.nan
    export = landing / "export.csv"
    messy.to_csv(export, sep=";", index=False, na_rep="NA", encoding="utf-8-sig")
    run(["dvc", "repro", "clean"], repo)
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert manifest["features"] == ["x1", "x2", "colour"]
    assert manifest["rows"] == 400
    report = json.loads((repo / "reports/data_quality.json").read_text())
    assert report["checks"]["missing"]["by_column"] == {"x1": 2}
    assert report["rows"]["kept"] == 400
    vocabulary = json.loads((repo / "data/clean/preprocessing.json").read_text())["vocabularies"]
    assert "None" in vocabulary["colour"]
    snapshot = pd.read_parquet(repo / "data/raw/snapshot.parquet")
    assert snapshot["colour"].tolist()[18:21] == ["None", "None", "dark\nred; quoted"]

    messy.assign(label=0).to_csv(export, sep=";", index=False, na_rep="NA", encoding="utf-8-sig")
    failed = run(["dvc", "repro", "clean"], repo, check=False)
    errors = [line for line in failed.stderr.splitlines() if "error:" in line]
    assert errors == [
        "bakeoff clean: error: data/raw/snapshot.parquet: column 'label': classification: "
        "expected at least two classes; found only 0 in all 400 usable rows"
    ]
