"""Whether the difference between two models on the same rows is real.

- A paired bootstrap: resample the test rows with replacement, score both
  models on the same resample, and take percentiles of the difference.
- McNemar's test on the paired correctness of two classifiers: only the rows
  where exactly one of them is right carry information. Exact (binomial) when
  those rows are few, the chi-square with continuity correction otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

# Below this many discordant rows the chi-square approximation is poor.
EXACT_BELOW = 25


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of ``a - b``."""

    difference: float  # on the whole test split
    low: float
    high: float
    level: float
    resamples: int

    def excludes_zero(self) -> bool:
        """Whether the interval says the models differ."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers on the same rows."""

    only_a: int  # rows only model a got right
    only_b: int  # rows only model b got right
    statistic: float
    p_value: float
    exact: bool


def paired_bootstrap(
    metric: Callable[[np.ndarray], float],
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``metric(a[rows]) - metric(b[rows])`` over resampled rows.

    ``a`` and ``b`` hold per-row material in the same row order (for example
    each model's predictions stacked with the labels); ``metric`` maps such an
    array of rows to a number.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(
            f"paired samples must have equal, non-zero length; found {len(a)}, {len(b)}"
        )
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for index in range(resamples):
        rows = rng.integers(0, len(a), len(a))
        differences[index] = metric(a[rows]) - metric(b[rows])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Interval(float(metric(a) - metric(b)), float(low), float(high), level, resamples)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's test on two boolean arrays: was each row classified right by a, by b."""
    correct_a = np.asarray(correct_a, dtype=bool)
    correct_b = np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired results differ in shape: {correct_a.shape}, {correct_b.shape}")
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    discordant = only_a + only_b
    if discordant == 0:
        return McNemar(0, 0, 0.0, 1.0, exact=True)
    if discordant < EXACT_BELOW:
        p_value = stats.binomtest(only_a, discordant, 0.5).pvalue
        return McNemar(only_a, only_b, float(min(only_a, only_b)), float(p_value), exact=True)
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant
    return McNemar(only_a, only_b, statistic, float(stats.chi2.sf(statistic, 1)), exact=False)
