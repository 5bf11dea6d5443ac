"""Runtime settings: declared per framework in params, applied before the framework is imported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from components.backends.base import CPU_SHARE_VARIABLE, RuntimeSettings, runtime_settings
from components.errors import ParamsError

ROOT = Path(__file__).resolve().parents[2]


def test_the_defaults_are_bakeoffs_settings():
    settings = RuntimeSettings.from_section(None, "tensorflow")
    assert settings.onednn is True
    assert settings.compile is False
    assert settings.matmul_precision == "highest"


def test_params_yaml_declares_every_setting_of_both_frameworks():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for framework in ("tensorflow", "pytorch"):
        declared = set(params["runtime"][framework])
        assert declared <= set(RuntimeSettings().declared())
        assert {
            "threads",
            "inter_op_threads",
            "compile",
            "mixed_precision",
            "matmul_precision",
        } <= declared


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"threads": -1}, "runtime.tensorflow.threads: expected a whole number >= 0; found -1"),
        ({"onednn": "yes"}, "runtime.tensorflow.onednn: expected true, false or default"),
        ({"onednn": 1}, "runtime.tensorflow.onednn: expected true, false or default"),
        ({"compile": "xla"}, "runtime.tensorflow.compile: expected true or false"),
        ({"matmul_precision": "low"}, "runtime.tensorflow.matmul_precision: expected one of"),
        ({"thread": 2}, r"runtime.tensorflow: unknown setting\(s\) \['thread'\]"),
    ],
)
def test_bad_settings_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        RuntimeSettings.from_section(raw, "tensorflow")


def test_threads_left_at_zero_take_the_runners_share(monkeypatch):
    monkeypatch.setenv(CPU_SHARE_VARIABLE, "3")
    params = {"runtime": {"pytorch": {"threads": 0}, "tensorflow": {"threads": 2}}}
    assert runtime_settings(params, "pytorch").threads == 3
    assert runtime_settings(params, "tensorflow").threads == 2  # declared wins


def test_the_tensorflow_environment_says_what_params_say():
    from components.backends import get

    backend = get("tensorflow")
    on = backend.environment(RuntimeSettings(onednn=True, threads=2))
    assert on["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert on["TF_NUM_INTRAOP_THREADS"] == "2"
    assert backend.environment(RuntimeSettings(onednn=False))["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert "TF_ENABLE_ONEDNN_OPTS" not in backend.environment(RuntimeSettings(onednn="default"))
    # Read back in the trainer's own process, both directions, with TensorFlow's
    # IsMklEnabled: tests/integration/test_tfx_pipeline.py (off), tests/e2e (on).


def test_the_command_applies_every_frameworks_settings_before_any_import(tmp_path, monkeypatch):
    from components.backends import apply_runtime

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"runtime": {"tensorflow": {"onednn": False}}}))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.delenv(CPU_SHARE_VARIABLE, raising=False)
    assert apply_runtime(params) == {
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
