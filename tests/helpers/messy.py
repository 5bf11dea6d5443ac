"""A seeded messy table, as people export them from spreadsheets and databases."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLASSES = ("Adélie", "Chinstrap", "Gentoo")
LONG_NAME = (
    "mean of the three repeated measurements of the culmen depth taken by the second field "
    "team, in millimetres (calibrated)"
)
#: The columns that should become features, and those that should not (with their kind).
FEATURES = (
    "Culmen Length (mm)",
    "Body Mass (g)",
    "flipper/body ratio",
    "culmen.depth",
    "delta-15 N",
    "humidity %",
    "Île",
    "2nd measure",
    "a b",
    "a_b",
    "Flipper",
    "flipper",
    LONG_NAME,
    "is adult",
    "observer",
)
NOT_FEATURES = {
    "record id": "row id",
    "row no.": "row counter",
    "observed on": "dates",
    "survey version": "constant",
}
LABEL = "Species"
HIGH_CARDINALITY = "observer"
BOOLEAN = "is adult"
CATEGORY = "Île"


def messy_frame(rows: int, seed: int) -> pd.DataFrame:
    """A table of ``rows`` rows that exercises every column kind; the same seed, the same table.

    Write it with ``to_csv(path, index=False)``: its gaps then read back as gaps.
    It covers:

    - headers with spaces, parentheses, a slash, a dot, a dash, ``%``, a unicode
      letter (``Île``), a leading digit (``2nd measure``), one longer than 100
      characters (``LONG_NAME``), a pair that collides once sanitised (``a b``,
      ``a_b``) and a pair that differs only in case (``Flipper``, ``flipper``);
    - numeric features whose means depend on the class (the label is learnable
      from them well above chance) and one without signal (``humidity %``);
    - a string category (``Île``, the island, also related to the class), a
      boolean (``is adult``: True/False), a high-cardinality string
      (``observer``, about half as many values as rows);
    - columns that are not features (``NOT_FEATURES``): a text row id
      (``record id``), a row counter (``row no.``, 1, 2, 3, ...), ISO dates
      (``observed on``) and a constant (``survey version``);
    - gaps: empty cells (NaN) in numeric, boolean and date columns, and the
      literal ``NA`` in the category;
    - a 3-class string label, ``Species``, last, with a unicode class name (``Adélie``).
    """
    rng = np.random.default_rng(seed)
    species = rng.integers(0, len(CLASSES), rows)

    def signal(means: tuple[float, float, float], noise: float) -> np.ndarray:
        return (np.asarray(means)[species] + rng.normal(0, noise, rows)).round(3)

    def with_gaps(values: np.ndarray, share: float = 0.03) -> np.ndarray:
        values = values.astype(object)
        values[rng.random(rows) < share] = None
        return values

    islands = np.array(["Biscoe", "Dream", "Torgersen"])[
        np.where(rng.random(rows) < 0.7, species, rng.integers(0, 3, rows))
    ].astype(object)
    islands[rng.random(rows) < 0.03] = "NA"
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D")
    dates = np.array(days.strftime("%Y-%m-%d"), dtype=object)
    dates[rng.random(rows) < 0.02] = None
    return pd.DataFrame(
        {
            "record id": [f"R-{n:06d}" for n in rng.permutation(rows) + 1000],
            "row no.": np.arange(1, rows + 1),
            "Culmen Length (mm)": with_gaps(signal((38.8, 48.8, 47.5), 2.5)).astype(float),
            "Body Mass (g)": signal((3700.0, 3730.0, 5080.0), 420.0),
            "flipper/body ratio": signal((0.051, 0.053, 0.043), 0.003),
            "culmen.depth": signal((18.3, 18.4, 15.0), 1.0),
            "delta-15 N": signal((8.8, 9.4, 8.2), 0.4),
            "humidity %": rng.uniform(40, 95, rows).round(1),
            "Île": islands,
            "2nd measure": signal((1.0, 3.0, 2.0), 0.8),
            "a b": signal((0.0, 1.0, 0.5), 0.5),
            "a_b": rng.normal(10, 3, rows).round(2),
            "Flipper": signal((190.0, 196.0, 217.0), 6.5),
            "flipper": signal((-1.0, 0.0, 1.0), 0.7),
            LONG_NAME: signal((18.0, 18.5, 15.0), 1.1),
            "is adult": with_gaps(rng.random(rows) < 0.8),
            "observer": [f"obs-{k:03d}" for k in rng.integers(0, max(rows // 2, 1), rows)],
            "observed on": dates,
            "survey version": np.full(rows, 2),
            LABEL: np.array(CLASSES, dtype=object)[species],
        }
    )
