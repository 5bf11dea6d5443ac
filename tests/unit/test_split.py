"""Hash-based splitting: deterministic, stable when rows arrive, near the requested fractions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.clean.split import SplitSpec, assign, row_keys
from tests.conftest import tiny_frame

SPEC = SplitSpec(0.7, 0.15, 0.15, "bakeoff")


def test_same_rows_same_splits():
    frame = tiny_frame(200)
    first = assign(row_keys(frame, SPEC.salt), SPEC)
    second = assign(row_keys(frame.copy(), SPEC.salt), SPEC)
    np.testing.assert_array_equal(first, second)


def test_a_rows_split_does_not_depend_on_other_rows():
    old = tiny_frame(200, seed=1)
    new = pd.concat([tiny_frame(300, seed=2), old.iloc[::-1]], ignore_index=True)
    before = assign(row_keys(old, SPEC.salt), SPEC)
    after = assign(row_keys(new, SPEC.salt), SPEC)[300:][::-1]
    np.testing.assert_array_equal(before, after)


def test_fractions_are_close_on_many_rows():
    counts = (
        np.bincount(assign(row_keys(tiny_frame(20_000), SPEC.salt), SPEC), minlength=3) / 20_000
    )
    np.testing.assert_allclose(counts, [0.7, 0.15, 0.15], atol=0.02)


def test_salt_reshuffles():
    frame = tiny_frame(500)
    a = assign(row_keys(frame, "one"), SPEC)
    b = assign(row_keys(frame, "two"), SPEC)
    assert (a != b).mean() > 0.2


def test_unnormalised_fractions():
    assert SplitSpec(7, 1.5, 1.5, "s").bounds() == SPEC.bounds()
