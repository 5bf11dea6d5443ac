"""Every row check and policy of the clean stage, and every dataset-level failure."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from components.clean.core import CleanParams, clean
from components.clean.schema import infer_schema
from components.errors import DataError, ParamsError
from components.ingest.sources import SOURCE_FILE, SOURCE_ROW
from tests.conftest import tiny_frame

FEATURES = ("x1", "x2", "colour")


def raw_of(frame: pd.DataFrame, file: str = "batch.csv") -> pd.DataFrame:
    out = frame.copy()
    out[SOURCE_FILE] = file
    out[SOURCE_ROW] = np.arange(1, len(out) + 1)
    return out


def manifest_of(label: str = "label", task: str = "classification", features=FEATURES) -> dict:
    return {"label": label, "task": task, "features": list(features), "source": {"name": "tiny"}}


def params(**overrides) -> CleanParams:
    raw = {"max_quarantine_share": 0.5, **overrides}
    return CleanParams.from_section(raw)


def schema_of(frame: pd.DataFrame, task: str = "classification"):
    return infer_schema(
        frame, dataset="tiny", label="label", task=task, features=FEATURES, range_margin=0.0
    )


def run_clean(frame: pd.DataFrame, schema=None, **overrides):
    good = tiny_frame()
    return clean(
        raw_of(frame),
        manifest_of(),
        schema if schema is not None else schema_of(good),
        params(**overrides),
        snapshot_name="data/raw/snapshot.parquet",
        schema_name="schemas/tiny.yaml",
    )


def test_clean_data_passes_untouched(frame):
    result = run_clean(frame)
    assert result.report["rows"]["quarantined"] == 0
    total = sum(len(part) for part in result.splits.values())
    assert total == len(frame)
    assert set(result.splits) == {"train", "val", "test"}
    joined = pd.concat(result.splits.values()).sort_values("_source_row")
    np.testing.assert_allclose(joined["x1"].to_numpy(), frame["x1"].to_numpy())
    assert joined["label"].dtype == np.int64


# -- missing ---------------------------------------------------------------


def test_missing_drop_quarantines_with_reason(frame):
    frame.loc[4, "x1"] = np.nan
    result = run_clean(frame, policies={"missing": "drop"})
    assert result.report["checks"]["missing"]["rows"] == 1
    assert len(result.quarantine) == 1
    assert result.quarantine.loc[0, SOURCE_ROW] == 5
    assert "missing: x1 expected a value" in result.quarantine.loc[0, "_reason"]


def test_missing_impute_fills_with_train_median(frame):
    frame.loc[4, "x1"] = np.nan
    frame.loc[5, "colour"] = None
    result = run_clean(frame, policies={"missing": "impute"})
    assert result.report["rows"]["quarantined"] == 0
    joined = pd.concat(result.splits.values())
    row = joined[joined[SOURCE_ROW] == 5].iloc[0]
    assert row["x1"] == pytest.approx(result.preprocessing.impute["x1"])
    train = result.splits["train"]
    assert result.preprocessing.impute["x1"] == pytest.approx(
        train.loc[train[SOURCE_ROW] != 5, "x1"].median()
    )
    assert (
        joined.loc[joined[SOURCE_ROW] == 6, "colour"].iloc[0]
        == result.preprocessing.impute["colour"]
    )
    assert result.report["imputed_cells"]["total"] == 2


def test_missing_fail_names_file_row_and_column(frame):
    frame.loc[4, "x2"] = np.nan
    with pytest.raises(DataError) as err:
        run_clean(frame, policies={"missing": "fail"})
    assert str(err.value) == (
        "data/raw/snapshot.parquet: row 5 of batch.csv: column 'x2': missing: expected a value; "
        "found nan (1 row like this; clean.policies.missing is 'fail')"
    )


def test_missing_label_is_never_imputed(frame):
    frame["label"] = frame["label"].astype("float64")
    frame.loc[2, "label"] = np.nan
    result = run_clean(frame, policies={"missing": "impute"})
    assert result.report["rows"]["quarantined"] == 1
    assert "missing: label" in result.quarantine.loc[0, "_reason"]


# -- wrong type ------------------------------------------------------------


def with_text(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


def test_wrong_type_drop(frame):
    result = run_clean(with_text(frame, 7, "x1", "seven"), policies={"wrong_type": "drop"})
    assert result.report["checks"]["wrong_type"]["rows"] == 1
    assert result.report["checks"]["missing"]["rows"] == 0
    assert "wrong_type: x1 expected a number, found 'seven'" in result.quarantine.loc[0, "_reason"]


def test_wrong_type_impute(frame):
    result = run_clean(with_text(frame, 7, "x1", "seven"), policies={"wrong_type": "impute"})
    assert result.report["rows"]["quarantined"] == 0
    joined = pd.concat(result.splits.values())
    assert joined.loc[joined[SOURCE_ROW] == 8, "x1"].iloc[0] == pytest.approx(
        result.preprocessing.impute["x1"]
    )


def test_wrong_type_fail(frame):
    with pytest.raises(
        DataError,
        match=r"row 8 of batch.csv: column 'x1': wrong type: expected a number; found 'seven'",
    ):
        run_clean(with_text(frame, 7, "x1", "seven"), policies={"wrong_type": "fail"})


def test_numbers_written_as_text_are_not_wrong(frame):
    frame["x1"] = frame["x1"].map(str)
    result = run_clean(frame)
    assert result.report["checks"]["wrong_type"]["rows"] == 0


# -- out of range ----------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "quarantined", "value"),
    [("drop", 1, None), ("clip", 0, "max"), ("impute", 0, "median")],
)
def test_out_of_range_policies(frame, policy, quarantined, value):
    schema = schema_of(frame)
    frame.loc[3, "x1"] = 1000.0
    result = run_clean(frame, schema, policies={"out_of_range": policy})
    assert result.report["rows"]["quarantined"] == quarantined
    assert result.report["checks"]["out_of_range"]["by_column"] == {"x1": 1}
    joined = pd.concat(result.splits.values())
    fixed = joined.loc[joined[SOURCE_ROW] == 4, "x1"]
    if value == "max":
        assert fixed.iloc[0] == schema.columns["x1"].maximum
    elif value == "median":
        assert fixed.iloc[0] == pytest.approx(result.preprocessing.impute["x1"])
    else:
        assert fixed.empty


def test_out_of_range_fail_says_expected_and_found(frame):
    schema = schema_of(frame)
    frame.loc[3, "x1"] = -5.0
    with pytest.raises(DataError) as err:
        run_clean(frame, schema, policies={"out_of_range": "fail"})
    message = str(err.value)
    assert "row 4 of batch.csv: column 'x1': out of range" in message
    assert (
        f"expected a value from {schema.columns['x1'].minimum} to {schema.columns['x1'].maximum}"
        in message
    )
    assert "found -5.0" in message


# -- unknown label ---------------------------------------------------------


def test_unknown_label_drop(frame):
    frame.loc[9, "label"] = 7
    result = run_clean(frame)
    assert result.report["checks"]["unknown_label"]["rows"] == 1
    assert (
        "unknown_label: label expected one of [0, 1, 2], found 7"
        in result.quarantine.loc[0, "_reason"]
    )


def test_unknown_label_fail(frame):
    frame.loc[9, "label"] = 7
    with pytest.raises(
        DataError,
        match=r"row 10 of batch.csv: column 'label': unknown label: expected one of \[0, 1, 2\]; found 7",
    ):
        run_clean(frame, policies={"unknown_label": "fail"})


# -- duplicates ------------------------------------------------------------


def test_duplicate_drop_keeps_the_first(frame):
    frame.loc[11] = frame.loc[10]
    result = run_clean(frame)
    assert result.report["checks"]["duplicate"]["rows"] == 1
    assert result.quarantine.loc[0, SOURCE_ROW] == 12


def test_duplicate_keep(frame):
    frame.loc[11] = frame.loc[10]
    result = run_clean(frame, policies={"duplicate": "keep"})
    assert result.report["rows"]["quarantined"] == 0
    joined = pd.concat(result.splits.values())
    # Equal rows hash to the same split, so a repeat never leaks across splits.
    assert joined.loc[joined[SOURCE_ROW].isin([11, 12]), "_row_key"].nunique() == 1


def test_duplicate_fail(frame):
    frame.loc[11] = frame.loc[10]
    with pytest.raises(
        DataError, match=r"row 12 of batch.csv: duplicate: expected a row not seen before"
    ):
        run_clean(frame, policies={"duplicate": "fail"})


# -- dataset-level failures ------------------------------------------------


def test_empty_snapshot_fails(frame):
    with pytest.raises(DataError, match="empty snapshot: expected rows; found 0"):
        run_clean(frame.iloc[:0])


def test_missing_label_column_fails(frame):
    with pytest.raises(DataError, match="column 'label': missing label column"):
        run_clean(frame.drop(columns="label"))


def test_no_usable_rows_fails(frame):
    frame["label"] = 9
    with pytest.raises(
        DataError, match=r"no usable rows: all 60 rows were quarantined \(unknown_label: 60\)"
    ):
        run_clean(frame, max_quarantine_share=1.0)


def test_quarantine_share_above_threshold_fails(frame):
    frame.loc[:9, "label"] = 9
    with pytest.raises(
        DataError,
        match=r"quarantine share 16.7% is above clean.max_quarantine_share 10.0%: 10 of 60 rows",
    ):
        run_clean(frame, max_quarantine_share=0.1)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.assign(extra=1.0), "column 'extra' added (not in the schema)"),
        (lambda f: f.drop(columns="x2"), "column 'x2' removed (expected by the schema)"),
        (
            lambda f: f.assign(x1=["a", "b", "c"] * 20),
            "column 'x1' changed type: expected number, found string",
        ),
    ],
)
def test_schema_drift_fails_unless_allowed(frame, change, expected):
    schema = schema_of(frame)
    drifted = change(frame.copy())
    features = [c for c in drifted.columns if c != "label"]
    kwargs = {
        "snapshot_name": "data/raw/snapshot.parquet",
        "schema_name": "schemas/tiny.yaml",
    }
    with pytest.raises(DataError) as err:
        clean(raw_of(drifted), manifest_of(features=features), schema, params(), **kwargs)
    assert "schema drift against schemas/tiny.yaml" in str(err.value)
    assert expected in str(err.value)
    if "changed type" in expected:
        return  # accepted drift of a type still validates each row against the schema
    # The default split key is every column; a removed column needs a key that stays.
    accepted = clean(
        raw_of(drifted),
        manifest_of(features=features),
        schema,
        params(allow_schema_drift=True, split={"key": ["x1", "label"]}),
        **kwargs,
    )
    assert "extra" not in accepted.splits["train"]
    assert accepted.report["schema"]["drift"]["added" if "added" in expected else "removed"]


def test_schema_label_disagreeing_with_manifest_fails(frame):
    schema = dataclasses.replace(schema_of(frame), label="x2")
    with pytest.raises(
        DataError,
        match=r"schemas/tiny.yaml: label: expected 'label' \(the ingest manifest's\); found 'x2'",
    ):
        run_clean(frame, schema)


def test_empty_split_fails():
    with pytest.raises(
        DataError, match=r"split '(train|val|test)' is empty: 2 usable rows are too few"
    ):
        run_clean(tiny_frame(rows=2))


# -- params ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"policies": {"missing": "guess"}},
            "clean.policies.missing: expected one of drop, impute, fail; found 'guess'",
        ),
        (
            {"policies": {"unknown_label": "impute"}},
            "clean.policies.unknown_label: expected one of drop, fail",
        ),
        ({"policies": {"typo": "drop"}}, "clean.policies.typo: unknown check"),
        (
            {"max_quarantine_share": 2},
            "clean.max_quarantine_share: expected a number from 0 to 1; found 2",
        ),
        ({"split": {"val": 0}}, "clean.split: expected train, val and test fractions above 0"),
        ({"allow_schema_drift": "yes"}, "clean.allow_schema_drift: expected true or false"),
        ({"range_margin": -1}, "clean.range_margin: expected a number >= 0"),
        ({"range_margin": float("nan")}, "clean.range_margin: expected a number >= 0"),
        ({"policies": ["drop"]}, "clean.policies: expected a mapping; found"),
        ({"split": [0.7, 0.15, 0.15]}, "clean.split: expected a mapping"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        CleanParams.from_section(raw)


def test_regression_label_range_is_checked():
    frame = tiny_frame()
    frame["label"] = frame["x1"] * 3.5
    schema = schema_of(frame, task="regression")
    frame.loc[0, "label"] = 1e6
    result = clean(
        raw_of(frame),
        manifest_of(task="regression"),
        schema,
        params(policies={"out_of_range": "clip"}),
        snapshot_name="s",
        schema_name="t",
    )
    # The label is never clipped or imputed: its row is dropped.
    assert result.report["rows"]["quarantined"] == 1
    assert result.preprocessing.label.kind == "number"
    assert "mean" in result.preprocessing.to_dict()["label"]


# -- review findings -------------------------------------------------------


def test_removing_a_key_column_fails_instead_of_moving_every_row(frame):
    schema = schema_of(frame)
    with pytest.raises(
        DataError,
        match=r"split key column 'x2' is missing: without it every row's split would change",
    ):
        clean(
            raw_of(frame.drop(columns="x2")),
            manifest_of(features=["x1", "colour"]),
            schema,
            params(allow_schema_drift=True),
            snapshot_name="s",
            schema_name="t",
        )


def test_the_split_does_not_depend_on_the_order_of_schema_columns(frame):
    schema = schema_of(frame)
    reordered = dataclasses.replace(schema, columns=dict(reversed(list(schema.columns.items()))))
    first, second = run_clean(frame, schema), run_clean(frame, reordered)
    for name in ("train", "val", "test"):
        assert first.splits[name]["_row_key"].tolist() == second.splits[name]["_row_key"].tolist()


def test_an_id_column_can_be_the_split_key(frame):
    frame["id"] = [f"row-{i}" for i in range(len(frame))]
    before = run_clean(frame, split={"key": ["id"]})
    frame.loc[0, "x1"] = frame["x1"].median()  # a corrected value must not move the row
    after = run_clean(frame, split={"key": ["id"]})
    where = lambda result: {  # noqa: E731
        source_row: name for name, part in result.splits.items() for source_row in part[SOURCE_ROW]
    }
    assert where(before) == where(after)


def test_missing_policy_applies_to_gaps_seen_at_inference(frame):
    frame.loc[[3, 4], "x1"] = np.nan
    kwargs = {"snapshot_name": "s", "schema_name": "t"}
    with pytest.raises(DataError, match="missing: expected a value; found nan"):
        clean(raw_of(frame), manifest_of(), None, params(policies={"missing": "fail"}), **kwargs)
    dropped = clean(
        raw_of(frame), manifest_of(), None, params(policies={"missing": "drop"}), **kwargs
    )
    assert dropped.report["checks"]["missing"]["rows"] == 2


def test_infinite_values_are_out_of_range(frame):
    frame.loc[2, "x2"] = np.inf
    result = run_clean(frame)
    assert result.report["checks"]["out_of_range"]["by_column"] == {"x2": 1}
    assert result.report["rows"]["quarantined"] == 1


def test_infinite_values_fail_as_not_finite_when_the_schema_has_no_bounds(frame):
    schema = schema_of(frame)
    schema.columns["x2"] = dataclasses.replace(schema.columns["x2"], minimum=None, maximum=None)
    frame.loc[2, "x2"] = -np.inf
    with pytest.raises(
        DataError,
        match=r"out of range: expected a number within float32's range \(±3.4028235e\+38\); "
        "found -inf",
    ):
        run_clean(frame, schema, policies={"out_of_range": "fail"})


def test_a_good_row_is_not_lost_as_the_repeat_of_a_quarantined_one(frame):
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[11] = frame.loc[10]
    frame.loc[10, "x1"] = "abc"  # wrong type: dropped
    frame.loc[11, "x1"] = None  # missing: imputed, and no repeat of row 10
    result = run_clean(frame, policies={"wrong_type": "drop", "missing": "impute"})
    assert result.report["checks"]["duplicate"]["rows"] == 0
    assert result.quarantine[SOURCE_ROW].tolist() == [11]


def test_clip_cannot_repair_a_value_outside_an_allowed_list(frame):
    schema = schema_of(frame)
    schema.columns["colour"] = dataclasses.replace(
        schema.columns["colour"], allowed=("red", "green")
    )
    result = run_clean(frame, schema, policies={"out_of_range": "clip"}, max_quarantine_share=1.0)
    blue = int((frame["colour"] == "blue").sum())
    assert result.report["rows"]["quarantined"] == blue
    assert "blue" not in pd.concat(result.splits.values())["colour"].tolist()


def test_categorical_columns_from_parquet_are_checked(frame):
    frame["colour"] = frame["colour"].astype("category")
    assert run_clean(frame).report["rows"]["quarantined"] == 0


def test_underscored_number_parses_as_pandera_does(frame):
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[0, "x1"] = "1_000"
    result = run_clean(frame, max_quarantine_share=1.0)
    assert result.report["checks"]["wrong_type"]["rows"] == 0
    assert result.report["checks"]["out_of_range"]["by_column"] == {"x1": 1}


# -- numbers of extreme magnitude ------------------------------------------


@pytest.mark.parametrize("big", [3.4e38, -3.4e38, 1e30])
def test_extreme_magnitudes_within_float32_give_finite_constants(frame, big):
    frame.loc[:9, "x1"] = big
    result = run_clean(frame, schema=schema_of(frame))
    stats = result.preprocessing.to_dict()["stats"]["x1"]
    assert np.isfinite(np.float32(stats["mean"])) and np.isfinite(np.float32(stats["std"]))
    assert stats["std"] > 0
    assert result.report["rows"]["quarantined"] == 0
    json.dumps(result.preprocessing.to_dict(), allow_nan=False)  # what the stage writes


@pytest.mark.parametrize("big", [1e308, -1e308, 1.7e308, 1e39])
def test_values_past_float32_are_out_of_range_even_in_the_inferred_schema(frame, big):
    frame.loc[:3, "x1"] = big
    result = run_clean(frame, schema=schema_of(frame))
    assert result.report["checks"]["out_of_range"]["by_column"] == {"x1": 4}
    assert result.quarantine[SOURCE_ROW].tolist() == [1, 2, 3, 4]
    assert result.quarantine.loc[0, "_reason"] == (
        f"out_of_range: x1 expected a number within float32's range (±3.4028235e+38), found {big!r}"
    )


def test_a_value_past_float32_fails_in_one_line_naming_row_column_and_value(frame):
    schema = schema_of(frame)
    frame.loc[6, "x2"] = 1e39
    with pytest.raises(DataError) as err:
        run_clean(frame, schema, policies={"out_of_range": "fail"})
    assert str(err.value) == (
        "data/raw/snapshot.parquet: row 7 of batch.csv: column 'x2': out of range: expected a "
        "number within float32's range (±3.4028235e+38); found 1e+39 "
        "(1 row like this; clean.policies.out_of_range is 'fail')"
    )


def test_clipping_a_value_past_float32_stops_at_float32s_limit(frame):
    schema = schema_of(frame)
    schema.columns["x1"] = dataclasses.replace(schema.columns["x1"], maximum=1e300)
    frame.loc[3, "x1"] = 1e308
    result = run_clean(frame, schema, policies={"out_of_range": "clip"})
    joined = pd.concat(result.splits.values())
    assert joined.loc[joined[SOURCE_ROW] == 4, "x1"].iloc[0] == np.finfo(np.float32).max


def test_extreme_regression_labels_give_finite_constants(frame):
    frame["label"] = frame["x1"] * 3e37
    result = clean(
        raw_of(frame),
        manifest_of(task="regression"),
        schema_of(frame, task="regression"),
        params(),
        snapshot_name="s",
        schema_name="t",
    )
    label = result.preprocessing.to_dict()["label"]
    assert np.isfinite(np.float32(label["mean"])) and np.isfinite(np.float32(label["std"]))


def test_a_regression_label_past_float32_drops_its_row(frame):
    frame["label"] = frame["x1"] * 2.0
    frame.loc[5, "label"] = 1e300
    result = clean(
        raw_of(frame),
        manifest_of(task="regression"),
        None,
        params(policies={"out_of_range": "clip"}),
        snapshot_name="s",
        schema_name="t",
    )
    assert result.quarantine[SOURCE_ROW].tolist() == [6]
    assert "label expected a number within float32's range" in result.quarantine.loc[0, "_reason"]


def test_standardised_values_past_float32_are_refused_naming_the_row(frame):
    # Finite float32 values whose train deviation is tiny: (x - mean) / scale overflows.
    first = run_clean(frame, split={"key": ["x2"]})
    train = set(first.splits["train"][SOURCE_ROW])
    frame["x1"] = [1e-40 * (i % 2) if i + 1 in train else 0.0 for i in range(len(frame))]
    outside = next(i for i in range(len(frame)) if i + 1 not in train)
    frame.loc[outside, "x1"] = 1.0
    with pytest.raises(DataError) as err:
        run_clean(frame, schema_of(frame), split={"key": ["x2"]})
    assert str(err.value).startswith(
        f"data/raw/snapshot.parquet: row {outside + 1} of batch.csv: column 'x1': preprocessing: "
        "expected a standardised value within float32's range; found (1.0 - "
    )
    assert str(err.value).endswith(
        "beyond it (the train split's mean and scale): the column's values span too many "
        "orders of magnitude"
    )


def test_a_statistic_that_cannot_be_finite_is_refused_naming_the_column(frame):
    # Clipping to a lower bound alone leaves +inf as it was.
    schema = schema_of(frame)
    schema.columns["x2"] = dataclasses.replace(schema.columns["x2"], maximum=None)
    frame.loc[:9, "x2"] = np.inf
    with pytest.raises(
        DataError,
        match=r"^s: column 'x2': preprocessing: expected a mean and standard deviation within "
        r"float32's range over the train split; found mean inf, std nan$",
    ):
        clean(
            raw_of(frame),
            manifest_of(),
            schema,
            params(policies={"out_of_range": "clip"}),
            snapshot_name="s",
            schema_name="t",
        )


# -- classes ---------------------------------------------------------------


def test_a_single_class_label_is_refused(frame):
    frame["label"] = 2
    with pytest.raises(
        DataError,
        match=r"^data/raw/snapshot.parquet: column 'label': classification: expected at least two "
        r"classes; found only 2 in all 60 usable rows$",
    ):
        run_clean(frame, schema=schema_of(frame))


def test_a_single_class_string_label_is_refused_after_quarantine(frame):
    frame["label"] = "yes"
    frame.loc[0, "label"] = None  # a gap in the label: its row is dropped, one class is left
    kwargs = {"snapshot_name": "s", "schema_name": "t"}
    with pytest.raises(
        DataError,
        match=r"^s: column 'label': classification: expected at least two classes; "
        r"found only 'yes' in all 59 usable rows$",
    ):
        clean(raw_of(frame), manifest_of(), None, params(), **kwargs)


BY_X1 = {"split": {"key": ["x1"]}}  # a row's split no longer depends on its label


def split_of(frame: pd.DataFrame) -> pd.Series:
    """Each row's split by its source row."""
    result = run_clean(frame, schema=schema_of(frame), **BY_X1)
    return pd.Series(
        {row: name for name, part in result.splits.items() for row in part[SOURCE_ROW]}
    ).sort_index()


def test_a_single_class_in_the_train_split_is_refused(frame):
    where = split_of(frame)
    train = (where == "train").to_numpy()
    frame["label"] = np.where(train, 0, 1)
    with pytest.raises(
        DataError,
        match=r"column 'label': classification: expected at least two classes in the train "
        rf"split; found only 0 in its {train.sum()} rows \(2 classes in all usable rows",
    ):
        run_clean(frame, schema=schema_of(frame), **BY_X1)


def test_a_class_absent_from_the_train_split_is_refused(frame):
    where = split_of(frame)
    rare = int(np.flatnonzero((where != "train").to_numpy())[0])
    frame.loc[rare, "label"] = 7
    with pytest.raises(
        DataError,
        match=r"column 'label': classification: expected every class in the train split; "
        r"class 7 has 1 usable row, none in train",
    ):
        run_clean(frame, schema=schema_of(frame), **BY_X1)


def test_classes_are_not_checked_for_regression(frame):
    frame["label"] = 4.5
    result = clean(
        raw_of(frame),
        manifest_of(task="regression"),
        schema_of(frame, task="regression"),
        params(),
        snapshot_name="s",
        schema_name="t",
    )
    assert result.preprocessing.to_dict()["label"]["std"] == 0.0


def test_numbers_beyond_float_range_written_as_text_are_out_of_range(frame):
    frame["x2"] = frame["x2"].astype(object)
    frame.loc[4, "x2"] = "1e309"  # reads as inf
    frame.loc[5, "x2"] = "-inf"
    result = run_clean(frame)
    assert result.report["checks"]["out_of_range"]["by_column"] == {"x2": 2}
    assert result.report["checks"]["wrong_type"]["rows"] == 0
    assert sorted(result.quarantine[SOURCE_ROW]) == [5, 6]


def test_a_class_with_fewer_rows_than_splits_is_refused_with_its_counts(frame):
    where = split_of(frame)
    in_train = np.flatnonzero((where == "train").to_numpy())[:2]
    frame.loc[in_train, "label"] = 7
    with pytest.raises(DataError) as err:
        run_clean(frame, schema=schema_of(frame), **BY_X1)
    assert str(err.value) == (
        "data/raw/snapshot.parquet: column 'label': classification: expected at least 3 usable "
        "rows of every class (one per split); class 7 has 2 (train 2, val 0, test 0; add rows "
        "of it, or leave it out of the schema's allowed labels)"
    )


def test_a_class_missing_from_val_or_test_is_a_note(frame):
    where = split_of(frame)
    in_train = np.flatnonzero((where == "train").to_numpy())[:3]
    frame.loc[in_train, "label"] = 7
    result = run_clean(frame, schema=schema_of(frame), **BY_X1)
    assert (
        "column 'label': class 7 has 3 rows in train but none in val or test: its per-class "
        "scores there are missing"
    ) in result.notes
    assert result.report["notes"] == list(result.notes)


def test_the_removed_clean_schema_key_is_refused_naming_the_new_place():
    with pytest.raises(ParamsError) as err:
        CleanParams.from_section({"schema": "schemas/digits.yaml"})
    assert str(err.value) == (
        "params.yaml: clean.schema: removed: the schema is now schemas/<ingest.name>.yaml; "
        "delete the key (and name the schema file after ingest.name)"
    )


def test_the_project_params_pass_clean_and_name_no_schema():
    import yaml

    from tests.conftest import ROOT

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert "schema" not in raw["clean"]
    assert CleanParams.from_section(raw["clean"]).max_categories == 100
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "--schema schemas/${ingest.name}.yaml" in stages["clean"]["cmd"]
    assert "--schema schemas/${ingest.name}.yaml" in stages["train"]["do"]["cmd"]
