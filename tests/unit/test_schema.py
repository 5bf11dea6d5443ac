"""Schema inference, the file round trip, drift, and malformed schema files."""

from __future__ import annotations

import pandas as pd
import pytest

from components.clean.schema import dump_schema, find_drift, infer_schema, load_schema
from components.columns import FLOAT32_MAX
from components.errors import DataError
from tests.conftest import tiny_frame

FEATURES = ("x1", "x2", "colour")


def infer(frame: pd.DataFrame, margin: float = 0.0, task: str = "classification"):
    return infer_schema(
        frame, dataset="tiny", label="label", task=task, features=FEATURES, range_margin=margin
    )


def test_inference_types_ranges_labels_nullability(frame):
    frame.loc[0, "x2"] = None
    schema = infer(frame)
    assert schema.columns["x1"].kind == "number"
    assert schema.columns["colour"].kind == "string"
    assert schema.columns["x1"].minimum == frame["x1"].min()
    assert schema.columns["x1"].maximum == frame["x1"].max()
    assert schema.columns["label"].allowed == (0, 1, 2)
    # Gaps seen at inference do not make a column nullable: the missing policy decides.
    assert schema.columns["x2"].nullable is False
    assert schema.split_key == ("colour", "label", "x1", "x2")


def test_margin_widens_ranges(frame):
    schema = infer(frame, margin=0.5)
    span = frame["x1"].max() - frame["x1"].min()
    assert schema.columns["x1"].minimum == pytest.approx(frame["x1"].min() - span / 2)


def test_a_few_bad_strings_do_not_make_a_column_categorical(frame):
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[0, "x1"] = "n/a"
    assert infer(frame).columns["x1"].kind == "number"


def test_round_trip_through_the_file(tmp_path, frame):
    schema = infer(frame)
    path = tmp_path / "schema.yaml"
    path.write_text(dump_schema(schema, "data/raw/snapshot.parquet"))
    assert path.read_text().startswith(
        "# bakeoff data schema, inferred from data/raw/snapshot.parquet."
    )
    assert load_schema(path) == schema


def test_regression_label_gets_a_range(frame):
    frame["label"] = frame["x1"] * 2
    spec = infer(frame, task="regression").columns["label"]
    assert spec.allowed is None
    assert spec.maximum == pytest.approx(frame["label"].max())


def test_drift(frame):
    schema = infer(frame)
    assert not find_drift(schema, frame, FEATURES)
    drift = find_drift(schema, frame.drop(columns="x2").assign(new=1.0), ("x1", "colour", "new"))
    assert drift.added == ("new",)
    assert drift.removed == ("x2",)
    assert drift.describe() == (
        "column 'new' added (not in the schema); column 'x2' removed (expected by the schema)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping with 'label', 'features' and 'columns'"),
        (
            "label: y\ntask: classification\nfeatures: [a]\ncolumns: {}\n",
            "column 'a': listed in 'features'",
        ),
        (
            "label: y\ntask: sorting\nfeatures: []\ncolumns: {}\n",
            "key 'task': expected classification or regression",
        ),
        (
            "label: y\ntask: regression\nfeatures: []\ncolumns: {y: {type: float}}\n",
            "column 'y': expected 'type: number'",
        ),
        (
            "label: y\ntask: regression\nfeatures: []\ncolumns: {y: {type: number, min: low}}\n",
            "column 'y': 'min': expected a number; found 'low'",
        ),
        (
            "task: regression\nfeatures: []\ncolumns: {}\n",
            "key 'label': expected a str; found None",
        ),
    ],
)
def test_malformed_schema_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_schema(path)
    assert str(err.value).startswith(f"{path.as_posix()}: ")


def test_string_label_classes():
    frame = tiny_frame().assign(label=lambda f: f["label"].map({0: "cat", 1: "dog", 2: "eel"}))
    assert infer(frame).columns["label"].allowed == ("cat", "dog", "eel")


def test_infinite_values_do_not_spoil_the_inferred_range(frame):
    frame.loc[0, "x1"] = float("inf")
    spec = infer(frame).columns["x1"]
    assert spec.maximum == frame["x1"].iloc[1:].max()


@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_values_past_float32_give_a_range_that_stops_at_float32s_limit(frame, margin, tmp_path):
    # Every model takes float32: a range past it would let values reach them as infinity.
    # (The span of +-1e308 overflows float64 too: times a zero margin it was NaN.)
    frame["x1"] = frame["x1"].astype(float)
    frame.loc[0, "x1"], frame.loc[1, "x1"] = 1e308, -1e308
    spec = infer(frame, margin=margin).columns["x1"]
    assert (spec.minimum, spec.maximum) == (-FLOAT32_MAX, FLOAT32_MAX)
    assert isinstance(spec.maximum, float)  # not a 39-digit integer in the YAML
    (tmp_path / "s.yaml").write_text(dump_schema(infer(frame, margin=margin), "t"))
    assert load_schema(tmp_path / "s.yaml").columns["x1"].maximum == spec.maximum


def test_categorical_and_underscored_values_parse_like_pandera():
    from components.columns import as_number, kind_of

    values = pd.Series(["1_000", "12", "x", None], dtype="category")
    assert as_number(values).tolist()[:2] == [1000.0, 12.0]
    assert kind_of(values) == "string"
