"""The shared preprocessing constants equal the train split's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.clean.preprocessing import constants, impute_values, moments
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
    # Kept only as an image's pixel (elsewhere a constant column is not a feature).
    train = tiny_frame(20).assign(x1=3.0)
    schema = infer_schema(
        train,
        dataset="t",
        label="label",
        task="classification",
        features=("x1",),
        range_margin=0,
        image=True,
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


def test_moments_equal_pandas_on_ordinary_columns():
    rng = np.random.default_rng(0)
    for scale in (1e-6, 1.0, 1e6):
        column = pd.Series(rng.normal(3, 2, 500) * scale)
        assert moments(column) == (float(column.mean()), float(column.std(ddof=0)))


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [
        ([1e308, -1e308], 0.0, 1e308),
        ([2.0**1020] * 3, 2.0**1020, 0.0),
        ([1e200, 0.0], 5e199, 5e199),
        ([1e-310, 3e-310], 2e-310, 1e-310),
        ([0.0, 0.0], 0.0, 0.0),
    ],
)
def test_moments_of_extreme_magnitudes_are_finite(values, mean, std):
    found = moments(pd.Series(values))
    assert found == pytest.approx((mean, std), rel=1e-9, abs=0)


def test_extreme_values_give_a_finite_scale():
    train = tiny_frame(20)
    train.loc[:4, "x1"] = 1e308
    schema = infer_schema(
        train, dataset="t", label="label", task="classification", features=("x1",), range_margin=0
    )
    stats = constants(train, schema, impute_values(train, schema), None)["stats"]["x1"]
    assert np.isfinite([stats["mean"], stats["std"], stats["scale"]]).all()
    assert stats["scale"] == stats["std"] > 0
