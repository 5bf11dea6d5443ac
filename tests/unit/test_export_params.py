"""The export section's per-format tolerances and skipped formats, and how parity.json records them."""

from __future__ import annotations

import numpy as np
import pytest

from components.contracts import ParityReport, load_parity, write_json
from components.errors import ParamsError
from components.export.cli import limits_from, skip_from
from components.export.parity import Limits, check


def test_a_format_has_its_own_tolerance_and_the_rest_the_float_one():
    limits = limits_from({"float_tolerance": 1e-5, "tolerances": {"tfjs": 1e-3}})
    assert limits.float_limit("tfjs") == 1e-3
    assert limits.float_limit("onnx") == 1e-5
    assert limits_from({}).tolerances == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"tolerances": [1e-3]}, "export.tolerances: expected a mapping"),
        ({"tolerances": {"tfjs": -1}}, r"export.tolerances.tfjs: expected a number >= 0.0"),
        ({"tolerances": {"tfjs": "small"}}, "export.tolerances.tfjs"),
    ],
)
def test_a_bad_tolerance_is_one_line_naming_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        limits_from(raw)


def test_the_own_tolerance_decides_the_check():
    native = np.array([[0.2, 0.8], [0.6, 0.4]])
    exported = native + 5e-4
    arguments = {"task": "classification", "metric": "accuracy", "quantised": False}
    loose = Limits(tolerances={"tfjs": 1e-3})
    row = check("tfjs", native, exported, np.array([1, 0]), limits=loose, **arguments)
    assert row.passed and row.limit == "max |diff| <= 0.001"
    row = check("onnx", native, exported, np.array([1, 0]), limits=loose, **arguments)
    assert not row.passed and row.limit == "max |diff| <= 0.0001"


def test_only_optional_formats_can_be_skipped():
    assert skip_from({}) == frozenset()
    assert skip_from({"skip_formats": ["tfjs"]}) == {"tfjs"}
    with pytest.raises(
        ParamsError, match=r"only optional formats can be skipped \(tfjs\); found onnx"
    ):
        skip_from({"skip_formats": ["onnx"]})
    with pytest.raises(ParamsError, match=r"export\.skip_formats: expected a list of formats"):
        skip_from({"skip_formats": "tfjs"})


def test_parity_json_records_own_tolerances_and_skipped_formats(tmp_path):
    report = ParityReport(
        "tensorflow", 1e-4, 0.01, (), tolerances={"tfjs": 1e-3}, skipped=("tfjs",)
    )
    write_json(tmp_path / "parity.json", report)
    data = report.to_dict()
    assert data["limits"]["tolerances"] == {"tfjs": 1e-3}
    assert data["skipped"] == {"tfjs": "export.skip_formats"}
    assert load_parity(tmp_path / "parity.json") == report
    # A report written before either existed still loads.
    write_json(
        tmp_path / "old.json",
        {**data, "limits": {"float_tolerance": 1e-4, "max_metric_drop": 0.01}, "skipped": None},
    )
    assert load_parity(tmp_path / "old.json").skipped == ()
