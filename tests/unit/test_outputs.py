"""Staged outputs replace the old ones only when the whole stage succeeds."""

from __future__ import annotations

import pytest

from components.outputs import staged_outputs


def test_success_replaces_every_output(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with staged_outputs() as outputs:
        outputs.write_text(tmp_path / "a.txt", "new a")
        outputs.write_json(tmp_path / "sub" / "b.json", {"k": 1})
    assert (tmp_path / "a.txt").read_text() == "new a"
    assert (tmp_path / "sub" / "b.json").read_text() == '{\n  "k": 1\n}\n'
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []


def test_failure_leaves_old_outputs_and_no_debris(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    with pytest.raises(RuntimeError), staged_outputs() as outputs:
        outputs.write_text(tmp_path / "a.txt", "new a")
        raise RuntimeError("stage failed after writing")
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert list(tmp_path.iterdir()) == [tmp_path / "a.txt"]
