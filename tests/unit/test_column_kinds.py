"""Column kinds in real tables: constants, row ids, dates, booleans, codes, large vocabularies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.clean.core import CleanParams, clean
from components.clean.schema import dump_schema, find_drift, infer_schema, load_schema
from components.columns import SOURCE_FILE, SOURCE_ROW
from components.errors import DataError, ParamsError
from components.ingest.core import IngestParams, ingest, manifest
from components.training.features import encode
from tests.conftest import ROOT, tiny_frame
from tests.helpers import messy

FEATURES = ("x1", "x2", "colour")
NOTE = "(set ingest.ignore: ['{}'] to silence this note)"


def run_clean(frame: pd.DataFrame, features=FEATURES, schema=None, image_shape=None, **raw):
    """The clean core on ``frame`` as read from batch.csv (label 'label', classification)."""
    framed = frame.assign(**{SOURCE_FILE: "batch.csv", SOURCE_ROW: np.arange(1, len(frame) + 1)})
    found = {
        "label": "label",
        "task": "classification",
        "features": list(features),
        "dataset": "tiny",
        "image_shape": image_shape,
    }
    params = CleanParams.from_section({"policies": {"missing": "impute"}, **raw})
    return clean(framed, found, schema, params, snapshot_name="s", schema_name="schemas/tiny.yaml")


def infer(frame: pd.DataFrame, features=FEATURES, **kwargs):
    return infer_schema(
        frame,
        dataset="tiny",
        label="label",
        task="classification",
        features=features,
        range_margin=0.0,
        **kwargs,
    )


# -- the messy table, through ingest's reading and clean's core --------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_messy_export_gets_the_right_features_and_notes(tmp_path, seed):
    path = tmp_path / "export.csv"
    messy.messy_frame(400, seed).to_csv(path, index=False)
    snapshot = ingest(IngestParams.from_section({"source": "file", "path": str(path)}), tmp_path)
    assert snapshot.label == messy.LABEL
    assert snapshot.task == "classification"
    found = manifest(snapshot, "data/raw/snapshot.parquet", "0" * 64, "2024-01-01T00:00:00+00:00")
    params = CleanParams.from_section({"policies": {"missing": "impute"}})
    result = clean(snapshot.frame, found, None, params, snapshot_name="s", schema_name="t")
    constants = result.preprocessing

    assert constants.features == messy.FEATURES
    assert set(result.schema.ignored) == set(messy.NOT_FEATURES)
    assert constants.categorical == (messy.CATEGORY, messy.BOOLEAN, messy.HIGH_CARDINALITY)
    assert sorted(constants.vocabularies[messy.BOOLEAN]) == ["False", "True"]
    assert sorted(constants.vocabularies[messy.CATEGORY]) == ["Biscoe", "Dream", "Torgersen"]
    assert len(constants.vocabularies[messy.HIGH_CARDINALITY]) == 100
    assert constants.label.classes == messy.CLASSES
    for column in messy.NOT_FEATURES:
        assert sum(f"column '{column}' is not a feature: " in n for n in result.notes) == 1
    assert any("'observer' has" in note and "keeps the 100 most" in note for note in result.notes)
    assert result.report["schema"]["ignored"] == result.schema.ignored
    assert result.report["rows"]["quarantined"] == 0
    for stat in constants.stats.values():
        assert np.isfinite(np.float32([stat.mean, stat.std, stat.scale])).all()
    matrix = encode(result.splits["train"], constants)
    assert matrix.dtype == np.float32 and np.isfinite(matrix).all()
    # The schema file keeps every name, the unicode ones readable.
    text = dump_schema(result.schema, "data/raw/snapshot.parquet")
    assert "Île" in text and "Adélie" in text
    (tmp_path / "schema.yaml").write_text(text, encoding="utf-8")
    assert load_schema(tmp_path / "schema.yaml") == result.schema


def test_the_messy_table_is_learnable_from_its_numeric_features():
    frame = messy.messy_frame(600, 0).dropna(subset=["Culmen Length (mm)"])
    numeric = ["Culmen Length (mm)", "Body Mass (g)", "culmen.depth", "delta-15 N", "Flipper"]
    values = frame[numeric].to_numpy()
    values = (values - values.mean(axis=0)) / values.std(axis=0)
    labels = frame[messy.LABEL].map(messy.CLASSES.index).to_numpy()
    train, test = np.arange(len(frame)) % 4 != 0, np.arange(len(frame)) % 4 == 0
    centres = np.stack([values[train & (labels == k)].mean(axis=0) for k in range(3)])
    guess = np.argmin(((values[test][:, None, :] - centres) ** 2).sum(axis=2), axis=1)
    assert (guess == labels[test]).mean() > 0.8  # chance: 1/3


def test_the_messy_table_is_seeded_and_has_its_awkward_names():
    first, again = messy.messy_frame(50, 7), messy.messy_frame(50, 7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(messy.messy_frame(50, 8))
    names = list(first.columns)
    assert {"a b", "a_b", "Flipper", "flipper", "Île", "humidity %", "2nd measure"} <= set(names)
    assert max(len(name) for name in names) > 100
    assert names[-1] == messy.LABEL


# -- not features: the notes, word for word ------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("const", lambda n: np.full(n, 7.0), "constant (every value is 7)"),
        ("const", lambda n: ["v1"] * n, "constant (every value is 'v1')"),
        ("const", lambda n: [None] * n, "constant (every row is a gap)"),
        (
            "order id",
            lambda n: [f"A{i:04d}" for i in range(n)],
            "looks like a row id (60 distinct values in 60 rows)",
        ),
        ("row", lambda n: np.arange(101, 101 + n), "looks like a row counter (101, 102, ... 160)"),
        (
            "when",
            lambda n: [f"2024-03-{1 + i % 28:02d}T12:{i % 60:02d}:00" for i in range(n)],
            "holds dates or timestamps (e.g. '2024-03-01T12:00:00'); derive numeric columns from "
            "it upstream to use it",
        ),
    ],
)
def test_columns_that_are_not_features_get_one_note_each(frame, column, values, reason):
    frame[column] = values(len(frame))
    result = run_clean(frame, features=(*FEATURES, column))
    assert result.schema.ignored == {column: reason}
    assert result.notes == (f"column '{column}' is not a feature: {reason} {NOTE.format(column)}",)
    assert column not in result.preprocessing.features
    assert column not in result.splits["train"]
    assert column not in result.schema.split_key


def test_the_notes_repeat_from_the_schema_file_until_the_column_is_in_ingest_ignore(frame):
    frame["id"] = [f"A{i:04d}" for i in range(len(frame))]
    schema = run_clean(frame, features=(*FEATURES, "id")).schema
    again = run_clean(frame, features=(*FEATURES, "id"), schema=schema)
    assert again.notes == (
        "column 'id' is not a feature: looks like a row id (60 distinct values in 60 rows) "
        + NOTE.format("id"),
    )
    assert not find_drift(schema, frame, (*FEATURES, "id"))  # an ignored column is not 'added'
    assert run_clean(frame, features=FEATURES, schema=schema).notes == ()


def test_a_name_with_a_quote_is_shown_as_yaml_reads_it(frame):
    frame["it's"] = 1
    note = run_clean(frame, features=(*FEATURES, "it's")).notes[0]
    assert note.endswith("(set ingest.ignore: ['it''s'] to silence this note)")


@pytest.mark.parametrize(
    "values",
    [
        lambda n: [f"item {i % 57}" for i in range(n)],  # 57 of 60 distinct: 95%, not more
        lambda n: np.arange(n) * 2,  # counts in twos: a measurement, not a row counter
        lambda n: np.arange(n) + 0.5,
        lambda n: [f"2024-03-{1 + i % 28:02d}" if i % 5 else "soon" for i in range(n)],  # 80%
        lambda n: [f"{1 + i % 12}/3/2024" for i in range(n)],  # not year first: text
    ],
)
def test_columns_that_are_features(frame, values):
    frame["c"] = values(len(frame))
    result = run_clean(frame, features=(*FEATURES, "c"), max_categories=1000)
    assert result.schema.ignored == {}
    assert "c" in result.preprocessing.features


def test_few_rows_of_distinct_text_are_not_an_id():
    frame = tiny_frame(19).assign(name=[f"n{i}" for i in range(19)])
    assert infer(frame, features=(*FEATURES, "name")).ignored == {}


def test_parquet_timestamps_are_dates(frame):
    frame["seen"] = pd.date_range("2024-01-01", periods=len(frame), freq="h")
    reason = infer(frame, features=(*FEATURES, "seen")).ignored["seen"]
    assert reason.startswith("holds dates or timestamps (e.g. '2024-01-01 00:00:00')")


def test_timestamps_with_offsets_and_gaps_are_dates(frame):
    stamps = [f"2024-03-01 10:{i:02d}:00+01:00" for i in range(len(frame))]
    stamps[3] = None
    stamps[4] = "2024-03-01T10:04:00Z"
    frame["seen"] = stamps
    assert "seen" in infer(frame, features=(*FEATURES, "seen")).ignored


def test_an_image_keeps_every_pixel_even_a_constant_one(frame):
    frame["x3"] = 0.0
    result = run_clean(frame, features=("x1", "x2", "x3", "colour"), image_shape=[2, 2])
    assert result.schema.ignored == {}
    assert not [note for note in result.notes if "x3" in note]
    assert result.preprocessing.stats["x3"].scale == 1.0


def test_digits_schema_still_loads_with_its_constant_pixels():
    schema = load_schema(ROOT / "schemas" / "digits.yaml")
    assert len(schema.features) == 64
    assert schema.ignored == {}
    assert schema.columns["pixel_0_0"].maximum == 0


def test_a_column_constant_in_the_train_split_stays_a_feature_with_a_note(frame):
    # Every serving signature takes every schema feature, and new rows may vary.
    first = run_clean(frame, split={"key": ["x1"]})
    train = set(first.splits["train"][SOURCE_ROW])
    frame["x3"] = [5.0 if row in train else float(row) for row in range(1, len(frame) + 1)]
    result = run_clean(frame, features=(*FEATURES, "x3"), split={"key": ["x1"]})
    assert result.notes == (
        f"column 'x3' is constant in the train split (every value is 5 in its {len(train)} "
        "rows): it teaches the models nothing until new rows vary",
    )
    assert result.report["constant_in_train"] == {"x3": "every value is 5"}
    assert result.preprocessing.features == (*FEATURES, "x3")
    assert result.preprocessing.stats["x3"].scale == 1.0


def test_no_feature_left_is_refused_in_one_line(frame):
    frame["x1"], frame["x2"], frame["colour"] = 1.0, None, "red"
    with pytest.raises(DataError) as err:
        run_clean(frame)
    assert str(err.value) == (
        "s: no features left to train on: 'x1' constant (every value is 1); "
        "'x2' constant (every row is a gap); 'colour' constant (every value is 'red')"
    )


def test_the_ignored_list_in_a_schema_file_is_checked(tmp_path, frame):
    frame["id"] = [f"A{i:04d}" for i in range(len(frame))]
    schema = infer(frame, features=(*FEATURES, "id"))
    path = tmp_path / "s.yaml"
    path.write_text(dump_schema(dataclasses.replace(schema, ignored={"x1": "why"}), "t"))
    with pytest.raises(DataError, match=r"column 'x1': listed in 'ignored' and also as a feature"):
        load_schema(path)
    path.write_text(dump_schema(schema, "t").replace("  id: looks", "  - id: looks"))
    with pytest.raises(DataError, match=r"key 'ignored': expected a mapping of column to reason"):
        load_schema(path)


# -- vocabularies --------------------------------------------------------------------------


def test_a_large_vocabulary_keeps_the_most_frequent_and_says_so(frame):
    frame["city"] = [f"c{i % 8}" if i < 40 else f"rare{i}" for i in range(len(frame))]
    result = run_clean(frame, features=(*FEATURES, "city"), max_categories=3)
    train = result.splits["train"]["city"]
    distinct = train.nunique()
    assert result.notes == (
        f"column 'city' has {distinct} distinct values in the train split; its vocabulary keeps "
        "the 3 most frequent (clean.max_categories), the others share the out-of-vocabulary slot",
    )
    by_frequency = sorted(train.value_counts().items(), key=lambda item: (-item[1], item[0]))
    assert result.preprocessing.vocabularies["city"] == tuple(v for v, _ in by_frequency[:3])
    rare = pd.DataFrame({**{c: [frame[c].iloc[0]] for c in FEATURES}, "city": ["rare59"]})
    one_hot = encode(rare, result.preprocessing)[0, -4:]  # three known values, then the other
    assert one_hot.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_no_note_below_the_cap(frame):
    assert run_clean(frame, max_categories=3).notes == ()


@pytest.mark.parametrize("bad", [0, -1, 2.5, "many", True])
def test_max_categories_is_a_whole_number_of_at_least_one(bad):
    with pytest.raises(ParamsError, match=r"clean\.max_categories: expected a whole number >= 1"):
        CleanParams.from_section({"max_categories": bad})


# -- booleans and integer codes ------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        lambda n: np.arange(n) % 3 == 0,  # pandas bool
        lambda n: [None if i == 4 else i % 3 == 0 for i in range(n)],  # objects, with a gap
        lambda n: pd.array([None if i == 4 else i % 3 == 0 for i in range(n)], dtype="boolean"),
    ],
)
def test_a_boolean_is_a_category_and_its_gap_is_imputed(frame, values):
    frame["flag"] = values(len(frame))
    result = run_clean(frame, features=(*FEATURES, "flag"))
    assert result.schema.columns["flag"].kind == "string"
    assert "flag" in result.preprocessing.categorical
    assert sorted(result.preprocessing.vocabularies["flag"]) == ["False", "True"]
    assert result.preprocessing.impute["flag"] == "False"  # two thirds of the rows
    joined = pd.concat(result.splits.values())
    assert set(joined["flag"]) == {"False", "True"}
    assert result.report["rows"]["quarantined"] == 0


def test_yes_no_text_from_a_csv_is_a_category(tmp_path):
    path = tmp_path / "t.csv"
    tiny_frame().assign(member=["yes", "no", "", "yes"] * 15).to_csv(path, index=False)
    snapshot = ingest(IngestParams.from_section({"source": "file", "path": str(path)}), tmp_path)
    found = manifest(snapshot, "s.parquet", "0" * 64, "now")
    params = CleanParams.from_section({"policies": {"missing": "impute"}})
    result = clean(snapshot.frame, found, None, params, snapshot_name="s", schema_name="t")
    assert sorted(result.preprocessing.vocabularies["member"]) == ["no", "yes"]


def test_an_integer_column_declared_text_is_a_category(tmp_path, frame):
    frame["zip"] = np.array([10115, 80331, 20095])[np.arange(len(frame)) % 3]
    features = (*FEATURES, "zip")
    path = tmp_path / "tiny.yaml"
    path.write_text(dump_schema(infer(frame, features=features), "t"))
    edited = path.read_text().replace(
        "  zip: {type: number, nullable: false, min: 10115, max: 80331}",
        "  zip: {type: string}",
    )
    assert edited != path.read_text()
    path.write_text(edited)
    frame.loc[5, "zip"] = None  # read as float64 now; still the integers as text
    result = run_clean(frame, features=features, schema=load_schema(path))
    assert result.report["schema"]["drift"]["retyped"] == []
    assert "zip" in result.preprocessing.categorical
    assert sorted(result.preprocessing.vocabularies["zip"]) == ["10115", "20095", "80331"]


def test_a_text_column_that_turns_numeric_is_still_drift(frame):
    schema = infer(frame)
    assert find_drift(schema, frame.assign(x1=frame["x1"].map(str)), FEATURES).retyped == ()
    drift = find_drift(schema, frame.assign(x1=["a", "b", "c"] * 20), FEATURES)
    assert drift.retyped == (("x1", "number", "string"),)


def test_the_clean_cli_prints_each_note(tmp_path, capsys, frame):
    import argparse
    import json

    from components.clean import cli

    frame["id"] = [f"A{i:04d}" for i in range(len(frame))]
    frame.assign(**{SOURCE_FILE: "b.csv", SOURCE_ROW: range(1, 61)}).to_parquet(
        tmp_path / "snapshot.parquet"
    )
    (tmp_path / "manifest.json").write_text(
        json.dumps({"label": "label", "task": "classification", "features": [*FEATURES, "id"]})
    )
    (tmp_path / "params.yaml").write_text("clean: {policies: {missing: impute}}\n")
    cli.run(
        argparse.Namespace(
            params=str(tmp_path / "params.yaml"),
            snapshot=str(tmp_path / "snapshot.parquet"),
            manifest=str(tmp_path / "manifest.json"),
            schema=str(tmp_path / "tiny.yaml"),
            out_dir=str(tmp_path / "clean"),
            preprocessing=str(tmp_path / "clean" / "preprocessing.json"),
            quarantine=str(tmp_path / "quarantine.parquet"),
            report=str(tmp_path / "report.json"),
        )
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "clean: note: column 'id' is not a feature: looks like a row id (60 distinct values in "
        "60 rows) (set ingest.ignore: ['id'] to silence this note)"
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["notes"] == [lines[-1].removeprefix("clean: note: ")]
    assert "ignored:\n  id: looks like a row id" in Path(tmp_path / "tiny.yaml").read_text()
