"""The serving API's request checks: every bad input refused with its record and field named."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.contracts import ServingLayout
from components.serve.champion import ServedModel
from components.serve.inputs import (
    MAX_LISTED,
    InputError,
    InputSpec,
    describe,
    parse_body,
    to_matrix,
)
from components.training.features import raw_matrix

# A categorical column between two numeric ones: the manifest's order is not the matrix's.
MANIFEST = {
    "framework": "pytorch",
    "input": {
        "name": "inputs",
        "dtype": "float32",
        "columns": ["a", "colour", "b"],
        "categorical": {"colour": ["blue", "red"]},
    },
    "output": {"probabilities": ["no", "yes"]},
}
GOOD = {"a": 1.5, "colour": "red", "b": -2}
RAW = "__raw__"  # stands for a literal written into the body as it is


def spec(max_batch: int = 8, manifest: dict[str, Any] = MANIFEST) -> InputSpec:
    return InputSpec.from_manifest(manifest, max_batch)


def body(records: Any, raw: str | None = None, **extra: Any) -> bytes:
    text = json.dumps({"records": records, **extra})
    return (text.replace(f'"{RAW}"', raw) if raw is not None else text).encode()


def read(payload: bytes, checked: InputSpec | None = None) -> np.ndarray:
    checked = checked or spec()
    return to_matrix(parse_body(payload, checked), checked)


def refused(payload: bytes, checked: InputSpec | None = None) -> InputError:
    with pytest.raises(InputError) as caught:
        read(payload, checked)
    return caught.value


def test_good_records_give_the_batch_paths_matrix():
    records = [
        GOOD,
        {"b": 0, "colour": "blue", "a": 3},  # any key order; integers are numbers
        {"a": -1e-3, "colour": "green", "b": 3.0e38},  # unseen colour; near float32's largest
    ]
    matrix = read(body(records))
    expected = raw_matrix(pd.DataFrame(records), ServingLayout.from_manifest(MANIFEST))
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, expected)
    assert matrix[:, 2].tolist() == [
        1.0,
        0.0,
        -1.0,
    ]  # the colour's position; -1: not in the vocabulary


@pytest.mark.parametrize(
    ("manifest_input", "record"),
    [
        ({"columns": ["a"], "categorical": {}}, {"a": 2.0}),  # one numeric column
        ({"columns": ["c"], "categorical": {"c": ["x", "y"]}}, {"c": "y"}),  # no numeric column
        (
            {"columns": ["a", "b", "c", "d"], "categorical": {"c": ["x"], "d": ["y", "z"]}},
            {"a": 1, "b": 2.5, "c": "x", "d": "z"},
        ),
    ],
)
def test_any_mix_of_columns_matches_the_batch_path(manifest_input, record):
    manifest = {**MANIFEST, "input": manifest_input}
    checked = spec(manifest=manifest)
    matrix = read(body([record, record]), checked)
    expected = raw_matrix(pd.DataFrame([record, record]), ServingLayout.from_manifest(manifest))
    np.testing.assert_array_equal(matrix, expected)


def with_value(field: str, value: Any) -> list[dict[str, Any]]:
    """Two records, the second with ``field`` set to ``value``."""
    return [GOOD, {**GOOD, field: value}]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            body(with_value("a", "1.5")),
            'records[1].a: expected a finite number, found a string "1.5"',
        ),
        (body(with_value("a", True)), "records[1].a: expected a finite number, found true"),
        (body(with_value("b", False)), "records[1].b: expected a finite number, found false"),
        (body(with_value("a", None)), "records[1].a: expected a finite number, found null"),
        (body(with_value("a", float("nan"))), "records[1].a: expected a finite number, found NaN"),
        (
            body(with_value("a", RAW), "Infinity"),
            "records[1].a: expected a finite number, found Infinity",
        ),
        (
            body(with_value("b", RAW), "-Infinity"),
            "records[1].b: expected a finite number, found -Infinity",
        ),
        (
            body(with_value("a", RAW), "1e400"),
            "records[1].a: expected a finite number, found Infinity",
        ),
        (body(with_value("a", 10**400)), "records[1].a: expected a finite number, found 1000"),
        (
            body(with_value("a", 1e39)),
            "records[1].a: expected a finite number within float32's range",
        ),
        (body(with_value("a", [1.0])), "records[1].a: expected a finite number, found a list"),
        (
            body(with_value("a", {"v": 1})),
            "records[1].a: expected a finite number, found an object",
        ),
        (
            body(with_value("colour", 3)),
            "records[1].colour: expected a string (a category), found 3",
        ),
        (
            body(with_value("colour", None)),
            "records[1].colour: expected a string (a category), found null",
        ),
        (
            body(with_value("colour", True)),
            "records[1].colour: expected a string (a category), found true",
        ),
        (
            body(with_value("colour", ["red"])),
            "records[1].colour: expected a string (a category), found a list",
        ),
        (body([GOOD, {"a": 1.0, "colour": "red"}]), "records[1].b: missing feature"),
        (body([GOOD, {**GOOD, "id": 7}]), "records[1].id: unknown field"),
        (body([GOOD, [1.5, "red", 2]]), "records[1]: expected an object of features, found a list"),
        (body([GOOD, None]), "records[1]: expected an object of features, found null"),
    ],
    ids=[
        "string-for-number",
        "true",
        "false",
        "null",
        "nan",
        "infinity",
        "minus-infinity",
        "overflowing-float",
        "huge-integer",
        "beyond-float32",
        "list-for-number",
        "object-for-number",
        "number-for-category",
        "null-category",
        "bool-category",
        "list-category",
        "missing-feature",
        "extra-field",
        "record-not-object",
        "record-null",
    ],
)
def test_a_bad_value_is_refused_naming_its_record_and_field(payload, message):
    error = refused(payload)
    assert error.status == 422
    assert error.messages[0].startswith(message), error.messages
    assert str(error).startswith(message)
    assert error.body() == {"detail": str(error), "errors": error.messages}


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b'{"records": [', 400, "body: not valid JSON"),
        (b"", 400, "body: not valid JSON"),
        (b"\xff\xfe\x00garbage", 400, "body: not valid JSON"),
        (b"[" * 20_000 + b"]" * 20_000, 400, "body: not valid JSON"),  # nested too deep
        (
            json.dumps([GOOD]).encode(),
            422,
            'body: expected an object {"records": [...]}, found a list',
        ),
        (b'"records"', 422, "body: expected an object"),
        (json.dumps({"rows": [GOOD]}).encode(), 422, "rows: unknown field"),
        (json.dumps({}).encode(), 422, "records: missing"),
        (body({"a": 1.0}), 422, "records: expected a list of records (objects), found an object"),
        (body("abc"), 422, 'records: expected a list of records (objects), found a string "abc"'),
        (body(None), 422, "records: expected a list of records (objects), found null"),
        (body([GOOD], model="x"), 422, "model: unknown field"),
        (body([]), 422, "records: empty"),
        (body([GOOD] * 9), 413, "records: 9 records, over the limit of 8 per request"),
    ],
    ids=[
        "malformed",
        "empty-body",
        "not-utf8",
        "too-deep",
        "list-body",
        "string-body",
        "no-records-field",
        "empty-object",
        "records-object",
        "records-string",
        "records-null",
        "extra-top-level-field",
        "empty-batch",
        "oversize-batch",
    ],
)
def test_a_bad_body_is_refused(payload, status, message):
    error = refused(payload)
    assert (error.status, error.messages[0][: len(message)]) == (status, message)


def test_a_body_past_the_byte_limit_is_refused_before_it_is_parsed():
    checked = spec(max_batch=1)
    payload = b'{"records": [' + b" " * checked.max_body_bytes + b"]}"
    error = refused(payload, checked)
    assert error.status == 413 and error.messages[0].startswith("body: ")
    assert "over the limit" in error.messages[0]


def test_every_problem_of_a_record_is_listed_and_a_long_list_is_cut():
    error = refused(body([{"colour": 1, "extra": 0}]))
    assert error.messages == [
        "records[0].a: missing feature",
        "records[0].colour: expected a string (a category), found 1",
        "records[0].b: missing feature",
        "records[0].extra: unknown field; the model's features are listed by GET /metadata",
    ]
    many = refused(body([{"a": None, "colour": "red", "b": None}] * 8))
    assert len(many.messages) == MAX_LISTED and many.more == 16 - MAX_LISTED
    assert str(many) == f"records[0].a: expected a finite number, found null (and {16 - 1} more)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
        (2.5, "2.5"),
        (7, "7"),
        ("x" * 50, 'a string "' + "x" * 40 + '"...'),
        ({}, "an object"),
    ],
)
def test_values_are_shown_as_json_writes_them(value, shown):
    assert describe(value) == shown


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch"):
        spec(max_batch=0)


def served(classes: tuple[str, ...] | None, output: np.ndarray) -> ServedModel:
    manifest = {
        **MANIFEST,
        "output": {"probabilities": list(classes)} if classes else {"value": "y"},
    }
    return ServedModel(
        name="m",
        version="3",
        framework="pytorch",
        run_id="r",
        spec=spec(manifest=manifest),
        classes=classes,
        predict=lambda matrix: output[: len(matrix)],
        layout=ServingLayout.from_manifest(manifest),
        metrics={"test/accuracy": 0.9},
        aliases=("champion",),
        tags={},
        description="",
        loaded_at="2026-01-01T00:00:00+00:00",
    )


def test_a_classifier_answers_each_record_with_its_class_and_probabilities():
    model = served(("no", "yes"), np.array([[0.25, 0.75], [0.5, 0.5]], np.float32))
    answer = model.answer(read(body([GOOD, GOOD])))
    assert answer == {
        "model": "m",
        "version": "3",
        "predictions": [
            {"class": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
            {"class": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
        ],
    }
    metadata = model.metadata()
    assert (metadata["task"], metadata["output"]) == ("classification", {"classes": ["no", "yes"]})
    assert metadata["input"]["categorical"] == {"colour": ["blue", "red"]}


@pytest.mark.parametrize("shape", [(2,), (2, 1)])
def test_a_regression_model_answers_one_value_per_record(shape):
    model = served(None, np.array([1.5, -2.0], np.float32).reshape(shape))
    answer = model.answer(read(body([GOOD, GOOD])))
    assert answer["predictions"] == [{"value": 1.5}, {"value": -2.0}]
    assert model.metadata()["output"] == {"value": "y"}
