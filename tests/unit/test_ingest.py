"""Reading sources, harmonising batches, inferring label and task, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.errors import DataError, ParamsError
from components.ingest import sources
from components.ingest.core import (
    IngestParams,
    combine,
    infer_label,
    infer_task,
    ingest,
    manifest,
    source_files,
)
from tests.conftest import tiny_frame


def params_for(**raw) -> IngestParams:
    return IngestParams.from_section(raw)


@pytest.mark.parametrize(
    ("name", "rows", "task", "shape"),
    [
        ("digits", 1797, "classification", (8, 8)),
        ("wine", 178, "classification", None),
        ("breast_cancer", 569, "classification", None),
        ("iris", 150, "classification", None),
        ("diabetes", 442, "regression", None),
    ],
)
def test_builtin_sets_load_offline(name, rows, task, shape):
    snapshot = ingest(params_for(source="builtin", builtin=name))
    assert len(snapshot.frame) == rows
    assert snapshot.label == "target"
    assert snapshot.task == task
    assert snapshot.image_shape == shape
    assert all(column.isidentifier() for column in snapshot.frame.columns)
    assert snapshot.files[0].path == f"sklearn:{name}"
    assert len(snapshot.files[0].sha256) == 64


def test_csv_file_source(tmp_path):
    path = tmp_path / "table.csv"
    tiny_frame().to_csv(path, index=False)
    snapshot = ingest(params_for(source="file", path=str(path)), shown_root=tmp_path)
    assert snapshot.label == "label"
    assert snapshot.task == "classification"
    assert snapshot.features == ("x1", "x2", "colour")
    assert snapshot.files[0].path == "table.csv"
    assert snapshot.frame[sources.SOURCE_ROW].tolist()[:3] == [1, 2, 3]


def test_landing_folder_reads_every_batch_in_name_order(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    frame = tiny_frame()
    frame.iloc[:30].to_parquet(landing / "b.parquet", index=False)
    frame.iloc[30:].to_csv(landing / "a.csv", index=False)
    (landing / "README.md").write_text("not data")
    (landing / ".hidden.csv").write_text("x\n1\n")
    snapshot = ingest(params_for(source="landing", path=str(landing)), shown_root=tmp_path)
    assert [f.path for f in snapshot.files] == ["landing/a.csv", "landing/b.parquet"]
    assert len(snapshot.frame) == 60
    assert snapshot.frame[sources.SOURCE_FILE].iloc[0] == "landing/a.csv"


def test_declared_label_task_features_and_ignore(tmp_path):
    path = tmp_path / "t.csv"
    tiny_frame().assign(id=range(60)).to_csv(path, index=False)
    snapshot = ingest(
        params_for(source="file", path=str(path), label="x2", task="regression", ignore=["id"])
    )
    assert snapshot.label == "x2"
    assert snapshot.task == "regression"
    assert snapshot.features == ("x1", "colour", "label")


def test_combine_makes_disagreeing_columns_text():
    numbers = tiny_frame(4).assign(**{sources.SOURCE_FILE: "a", sources.SOURCE_ROW: 1})
    texts = numbers.assign(x1=["1.5", "oops", None, "2"])
    ints = numbers.assign(x2=[1, 2, 3, 4])
    combined = combine(
        [sources.Batch(None, numbers), sources.Batch(None, texts), sources.Batch(None, ints)]
    )
    assert combined["x1"].dropna().map(type).eq(str).all()
    assert combined["x1"].iloc[4:8].tolist() == ["1.5", "oops", None, "2"]
    assert combined["x2"].dtype == np.float64
    assert list(combined.columns)[-2:] == [sources.SOURCE_FILE, sources.SOURCE_ROW]


@pytest.mark.parametrize(
    ("columns", "label"),
    [(["a", "Target", "b"], "Target"), (["a", "class"], "class"), (["a", "b", "z"], "z")],
)
def test_infer_label(columns, label):
    assert infer_label(columns) == label


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b"], "classification"),
        ([0, 1, 1, 0], "classification"),
        ([0.5, 1.2, 3.3], "regression"),
        (list(range(100)), "regression"),
        ([True, False], "classification"),
    ],
)
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


# -- bad input ---------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: file not found"):
        ingest(params_for(source="file", path=str(tmp_path / "nope.csv")), shown_root=tmp_path)


def test_unsupported_suffix(tmp_path):
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"t.xlsx: expected a .csv or .parquet file; found '.xlsx'"):
        ingest(params_for(source="file", path=str(tmp_path / "t.xlsx")), shown_root=tmp_path)


def test_empty_csv(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(
        DataError, match=r"^e.csv: empty file: expected a header and rows; found nothing$"
    ):
        ingest(params_for(source="file", path=str(tmp_path / "e.csv")), shown_root=tmp_path)


def test_header_only_csv(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,label\n")
    with pytest.raises(DataError, match=r"^h.csv: empty table: expected rows; found 0 rows$"):
        ingest(params_for(source="file", path=str(tmp_path / "h.csv")), shown_root=tmp_path)


def test_unreadable_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"^bad.parquet: unreadable: "):
        ingest(params_for(source="file", path=str(tmp_path / "bad.parquet")), shown_root=tmp_path)


def test_ragged_csv(tmp_path):
    (tmp_path / "r.csv").write_text("a,b\n1,2\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"^r.csv: unreadable: Error tokenizing data"):
        ingest(params_for(source="file", path=str(tmp_path / "r.csv")), shown_root=tmp_path)


def test_empty_landing_folder(tmp_path):
    (tmp_path / "landing").mkdir()
    with pytest.raises(
        DataError,
        match=r"^landing: empty landing folder: expected .csv or .parquet files; found none$",
    ):
        ingest(params_for(source="landing", path=str(tmp_path / "landing")), shown_root=tmp_path)


def test_declared_label_missing(tmp_path):
    tiny_frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        DataError, match=r"t.csv: missing label column: expected 'price'; found columns"
    ):
        ingest(
            params_for(source="file", path=str(tmp_path / "t.csv"), label="price"),
            shown_root=tmp_path,
        )


def test_reserved_column_names(tmp_path):
    tiny_frame().assign(_source_row=1).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        DataError,
        match=r"t.csv: column '_source_row': the column name is reserved for bakeoff's own columns",
    ):
        ingest(params_for(source="file", path=str(tmp_path / "t.csv")), shown_root=tmp_path)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"source": "s3"}, "ingest.source: expected one of builtin, file, landing; found 's3'"),
        ({"builtin": "mnist"}, "ingest.builtin: expected one of digits, wine"),
        ({"source": "file"}, "ingest.path: expected a path for source 'file'; found None"),
        ({"image_shape": [8]}, r"ingest.image_shape: expected \[height, width\] or null"),
        ({"task": "ranking"}, "ingest.task: expected one of classification, regression, auto"),
        ({"image_shape": [3, 3]}, "ingest.image_shape: 3x3 does not match the 64 features"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        ingest(IngestParams.from_section(raw))


def test_manifest_records_what_was_read():
    snapshot = ingest(params_for(source="builtin", builtin="wine"))
    written = manifest(snapshot, "data/raw/snapshot.parquet", "abc", "2026-01-01T00:00:00+00:00")
    assert written["dataset"] == "wine"
    assert written["rows"] == 178
    assert written["columns"] == 14
    assert written["label"] == "target"
    assert written["source"] == {"kind": "builtin", "name": "wine"}
    assert written["files"][0]["rows"] == 178
    assert "target" in written["column_types"]
    assert Path(written["snapshot"]["path"]).name == "snapshot.parquet"


def test_repeated_csv_header(tmp_path):
    (tmp_path / "d.csv").write_text("x1,x1,label\n1,2,0\n")
    with pytest.raises(DataError, match=r"^d.csv: expected unique column names; found 'x1' twice$"):
        ingest(params_for(source="file", path=str(tmp_path / "d.csv")), shown_root=tmp_path)


def test_repeated_parquet_field_fails_cleanly(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(
        DataError, match=r"^d.parquet: expected unique column names; found 'a' twice$"
    ):
        ingest(params_for(source="file", path=str(tmp_path / "d.parquet")), shown_root=tmp_path)


def test_a_stray_text_value_does_not_make_a_regression_label_a_class(tmp_path):
    frame = tiny_frame(200).assign(label=lambda f: (f["x1"] * 7.3).round(2).astype(object))
    frame.loc[5, "label"] = "?"
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert ingest(params_for(source="file", path=str(tmp_path / "t.csv"))).task == "regression"


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["x1", "label"], "ingest.features: the label 'label' cannot also be a feature"),
        (["x1", "x1"], "ingest.features: 'x1' is listed more than once"),
    ],
)
def test_bad_feature_lists(tmp_path, features, message):
    tiny_frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ParamsError, match=message):
        ingest(params_for(source="file", path=str(tmp_path / "t.csv"), features=features))


def test_user_columns_starting_with_an_underscore_are_data(tmp_path):
    tiny_frame().rename(columns={"x1": "_x1"}).to_csv(tmp_path / "t.csv", index=False)
    assert "_x1" in ingest(params_for(source="file", path=str(tmp_path / "t.csv"))).features


# -- CSV files as people export them -----------------------------------------


def read_csv_text(tmp_path: Path, text: str | bytes, **raw) -> pd.DataFrame:
    path = tmp_path / "export.csv"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return ingest(params_for(source="file", path=str(path), **raw), shown_root=tmp_path).frame


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_detected(tmp_path, delimiter):
    rows = ["a,b,colour,label", "1.5,2,red,0", "2.5,3,blue,1", "3.5,4,red,0"]
    frame = read_csv_text(tmp_path, "\n".join(r.replace(",", delimiter) for r in rows) + "\n")
    assert list(frame.columns[:4]) == ["a", "b", "colour", "label"]
    assert frame["a"].tolist() == [1.5, 2.5, 3.5]


def test_a_byte_order_mark_is_stripped_from_a_semicolon_file(tmp_path):
    frame = read_csv_text(tmp_path, "\ufeffa;b;label\r\n1,5;2;x\r\n3;4;y\r\n".encode())
    assert list(frame.columns[:3]) == ["a", "b", "label"]
    assert frame["a"].tolist() == ["1,5", "3"]


def test_quoted_fields_keep_embedded_newlines_and_delimiters(tmp_path):
    text = 'note,x,label\n"two\nlines, one comma",1,a\n"plain",2,b\n"say ""hi""",3,a\n'
    frame = read_csv_text(tmp_path, text)
    assert frame["note"].tolist() == ["two\nlines, one comma", "plain", 'say "hi"']
    assert frame["x"].tolist() == [1, 2, 3]
    assert frame[sources.SOURCE_ROW].tolist() == [1, 2, 3]


def test_a_declared_delimiter_is_used(tmp_path):
    text = "a,b;label\n1,5;x\n2,5;y\n"
    assert sources.sniff_delimiter(text) == ","  # both fit; detection prefers the comma
    frame = read_csv_text(tmp_path, text, delimiter=";")
    assert list(frame.columns[:2]) == ["a,b", "label"]
    assert frame["a,b"].tolist() == ["1,5", "2,5"]


def test_a_header_read_as_one_joined_column_names_the_fix(tmp_path):
    with pytest.raises(
        DataError,
        match=r"^export.csv: expected columns separated by ','; found one column named "
        r"'a;b;label' \(set ingest.delimiter, e.g. to ';'\)$",
    ):
        read_csv_text(tmp_path, "a;b;label\n1;2;0\n3;4;1\n", delimiter=",")


def test_only_the_declared_markers_are_gaps(tmp_path):
    text = "kind,x,label\nNone,1,a\nnan,NA,b\nN/A,null,a\n,2,b\n-,#N/A,a\n"
    frame = read_csv_text(tmp_path, text)
    assert frame["kind"].tolist()[0] == "None" and frame["kind"].tolist()[4] == "-"
    assert frame["kind"].isna().tolist() == [False, True, True, True, False]
    assert frame["x"].isna().tolist() == [False, True, True, False, True]
    assert frame["x"].dtype == np.float64


def test_the_gap_markers_are_a_param(tmp_path):
    frame = read_csv_text(tmp_path, "kind,x,label\nNA,?,a\nb,1,b\n", na_values=["?"])
    assert frame["kind"].tolist() == ["NA", "b"]
    assert frame["x"].isna().tolist() == [True, False]


def test_a_declared_encoding_is_used(tmp_path):
    text = "name,x,label\ncafé,1,a\nnaïve,2,b\n".encode("latin-1")
    frame = read_csv_text(tmp_path, text, encoding="latin-1")
    assert frame["name"].tolist() == ["café", "naïve"]


def test_bytes_the_encoding_cannot_decode_name_the_param(tmp_path):
    with pytest.raises(
        DataError,
        match=r"^export.csv: expected text in utf-8 \(set ingest.encoding\); "
        r"found byte b'\\xe9' at byte 16$",
    ):
        read_csv_text(tmp_path, "name,x,label\ncaf\xe9,1,a\n".encode("latin-1"))


def test_the_recorded_hash_is_of_the_files_bytes_as_they_are(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa;label\n1;x\n2;y\n".encode())
    params = params_for(source="file", path=str(path))
    snapshot = ingest(params, shown_root=tmp_path)
    assert snapshot.files[0].sha256 == sources.sha256_of(path)
    assert source_files(params, tmp_path) == {"bom.csv": sources.sha256_of(path)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"encoding": "klingon"}, "ingest.encoding: expected a text encoding such as utf-8"),
        ({"encoding": "base64"}, "ingest.encoding: expected a text encoding such as utf-8"),
        ({"delimiter": ";;"}, r"ingest.delimiter: expected 'auto' or one character such as"),
        ({"delimiter": '"'}, r"ingest.delimiter: expected 'auto' or one character such as"),
        ({"na_values": "NA"}, r"ingest.na_values: expected a list of strings that mark a gap"),
        ({"na_values": [None]}, r"ingest.na_values: expected a list of strings that mark a gap"),
    ],
)
def test_bad_csv_params_name_the_key(raw, message):
    with pytest.raises(ParamsError, match=message):
        IngestParams.from_section(raw)


@pytest.mark.parametrize("name", ["my data", "../x", "a/b", "-x"])
def test_the_name_is_a_file_name_as_it_names_the_schema(name):
    with pytest.raises(ParamsError) as err:
        params_for(name=name)
    assert str(err.value) == (
        "params.yaml: ingest.name: expected letters, digits, '.', '-' or '_' (the schema is "
        f"schemas/<ingest.name>.yaml); found {name!r}"
    )
    assert params_for(name="penguins-2024_v1.2").name == "penguins-2024_v1.2"


def test_booleans_across_batches_stay_true_and_false(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    frame = tiny_frame().assign(member=[True, False, True] * 20)
    frame.iloc[:30].to_parquet(landing / "a.parquet", index=False)
    with_gap = frame.iloc[30:].astype({"member": object})
    with_gap.loc[31, "member"] = None
    with_gap.to_csv(landing / "b.csv", index=False)
    snapshot = ingest(params_for(source="landing", path=str(landing)), shown_root=tmp_path)
    assert set(snapshot.frame["member"].dropna()) == {"True", "False"}
    assert snapshot.frame["member"].isna().sum() == 1


@pytest.mark.parametrize(
    ("values", "found"),
    [
        ([[1, 2], [3]], "found ndarray '[1 2]'"),
        ([b"\x00\x01", b"ab"], "found bytes \"b'\\\\x00\\\\x01'\""),
        ([{"a": 1}, {"a": 2}], "found dict \"{'a': 1}\""),
    ],
)
def test_a_column_of_lists_maps_or_bytes_is_refused_naming_it(tmp_path, values, found):
    # Parquet holds them; no framework takes one as a single feature.
    frame = tiny_frame(20).assign(nested=values * 10)
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError) as err:
        ingest(params_for(source="file", path=str(tmp_path / "t.parquet")))
    message = str(err.value)
    assert "t.parquet: row 1: column 'nested': expected one number or text per cell" in message
    assert found in message and "in 20 rows" in message and "ingest.ignore" in message
    # Listed in ingest.ignore, the column is left alone.
    ingest(params_for(source="file", path=str(tmp_path / "t.parquet"), ignore=["nested"]))
