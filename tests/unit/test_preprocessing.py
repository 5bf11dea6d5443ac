"""The shared preprocessing constants equal the train split's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.clean.preprocessing import constants, impute_values
from components.clean.schema import infer_schema
from tests.conftest import tiny_frame


def test_constants_match_the_train_split():
    train = tiny_frame(100)
    train.loc[0, "x1"] = 1.0
    schema = infer_schema(
        train,
        dataset="t",
        label="label",
        task="classification",
        features=("x1", "x2", "colour"),
        range_margin=0,
    )
    result = constants(train, schema, impute_values(train, schema), None)
    assert result["stats"]["x1"]["mean"] == pytest.approx(train["x1"].mean())
    assert result["stats"]["x2"]["std"] == pytest.approx(np.std(train["x2"].to_numpy()))
    counts = train["colour"].value_counts()
    assert result["vocabularies"]["colour"][0] == counts.idxmax()
    assert sorted(result["vocabularies"]["colour"]) == sorted(counts.index)
    assert result["label"]["classes"] == [0, 1, 2]
    assert result["numeric"] == ["x1", "x2"]
    assert result["categorical"] == ["colour"]


def test_constant_feature_gets_unit_scale():
    train = tiny_frame(20).assign(x1=3.0)
    schema = infer_schema(
        train, dataset="t", label="label", task="classification", features=("x1",), range_margin=0
    )
    stats = constants(train, schema, impute_values(train, schema), None)["stats"]["x1"]
    assert stats == {"mean": 3.0, "std": 0.0, "scale": 1.0}


def test_vocabulary_ties_break_by_value():
    train = pd.DataFrame({"c": ["b", "a", "b", "a", "z"], "label": [0, 1, 0, 1, 0]})
    schema = infer_schema(
        train, dataset="t", label="label", task="classification", features=("c",), range_margin=0
    )
    assert constants(train, schema, impute_values(train, schema), None)["vocabularies"]["c"] == [
        "a",
        "b",
        "z",
    ]
