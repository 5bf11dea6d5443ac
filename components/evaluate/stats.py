"""Whether the difference between two models on the same rows is real.

- ``paired_bootstrap``: two models, one fit each, on the same test rows: SciPy's
  ``stats.bootstrap`` with ``paired=True`` (the same resampled rows for both),
  percentile interval. Not BCa: on 0/1 differences with few discordant rows
  its skew correction excludes zero where McNemar's exact test does not come
  near (3 rows of 200, all for one model: BCa [+0.005, +0.040], exact p = 0.25),
  and the gate must not promote on that. The register stage's gate reads it.
- ``seeds_and_rows``: two frameworks, several training seeds each, on the same
  test rows: the difference of their mean score over seeds. Written here,
  because SciPy's bootstrap resamples one axis and this array has two crossed
  ones (seed x row): it is Owen's pigeonhole bootstrap (A. B. Owen, "The
  pigeonhole bootstrap", Annals of Applied Statistics 1(2), 2007), which
  resamples the rows (the same rows for both frameworks) and, independently,
  each framework's seeds (seed k of one framework has nothing in common with
  seed k of another), with a percentile interval. Owen shows it slightly
  overstates the variance of such a mean: erring, as the verdict should,
  towards a tie. The evaluate stage's verdict reads it.
- McNemar's test on the paired correctness of two classifiers: only the rows
  where exactly one of them is right carry information. Exact (binomial) when
  those rows are few, the chi-square with continuity correction otherwise.
  Written on SciPy's ``binomtest`` and ``chi2``: the library that has it
  (statsmodels) is not in the locked set, and four lines do not justify it.

Both bootstraps take each row's share of the metric (``per_row``), so that a
resample's metric is their mean, or for RMSE the root of their mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from components.errors import ParamsError
from components.evaluate.metrics import EPSILON
from components.params import fraction, whole

# Below this many discordant rows the chi-square approximation is poor.
EXACT_BELOW = 25
# Resamples drawn at once by seeds_and_rows (a resamples x rows array of counts each).
CHUNK = 250


@dataclass(frozen=True)
class Resampling:
    """How every bootstrap of the verdict resamples: ``evaluate``'s resamples, level and seed.

    The evaluate stage's verdict and the register stage's gate read the same keys.
    """

    resamples: int = 2000
    level: float = 0.95
    seed: int = 0

    @classmethod
    def from_section(cls, raw: Mapping[str, Any]) -> Resampling:
        """The three keys of the ``evaluate`` section, checked."""
        level = fraction(raw.get("level", 0.95), "evaluate.level")
        if not 0 < level < 1:
            raise ParamsError(
                "evaluate.level", f"expected a number between 0 and 1; found {raw.get('level')!r}"
            )
        return cls(
            resamples=whole(raw.get("resamples", 2000), "evaluate.resamples", 100),
            level=level,
            seed=whole(raw.get("seed", 0), "evaluate.seed", 0),
        )


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


def aggregate(root: bool) -> Callable[..., np.ndarray]:
    """A metric from its rows' shares along ``axis``: their mean, or its root (RMSE)."""

    def mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sqrt(values.mean(axis=axis)) if root else values.mean(axis=axis)

    return mean


#: Resampled values held at once: SciPy's bootstrap otherwise draws every
#: resample in one array (2000 x 150,000 test rows: 7 GiB at its peak).
RESAMPLED_AT_ONCE = 2**23


def resample_batch(rows: int) -> int:
    """Resamples per vectorised call, so that memory stays flat as the test split grows.

    The draws are the same whatever the batch (one generator, drawn in turn),
    so the interval is too.
    """
    return max(1, RESAMPLED_AT_ONCE // max(1, rows))


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    root: bool = False,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``metric(a) - metric(b)`` over the rows, resampled in pairs.

    ``a`` and ``b`` are each row's share of the metric for two models, in the
    same row order. A difference with no spread to resample (two models that
    agree on every row) is its own interval.
    """
    a, b = _paired_rows(a, b)
    mean = aggregate(root)
    difference = float(mean(a) - mean(b))
    if np.ptp(a - b) == 0 and (not root or np.ptp(a) == 0):
        return Interval(difference, difference, difference, level, resamples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (a, b),
            lambda x, y, axis: mean(x, axis) - mean(y, axis),
            paired=True,
            vectorized=True,
            n_resamples=resamples,
            confidence_level=level,
            method="percentile",
            random_state=np.random.default_rng(seed),
            batch=resample_batch(len(a)),
        )
    low, high = (float(bound) for bound in result.confidence_interval)
    if not (np.isfinite(low) and np.isfinite(high)):  # every resample gave the same value
        low = high = difference
    return Interval(difference, low, high, level, resamples)


def seeds_and_rows(
    a: np.ndarray,
    b: np.ndarray,
    *,
    root: bool = False,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of the difference of two frameworks' mean metric over their seeds.

    ``a`` and ``b`` are (seeds, rows) arrays of each row's share of the metric,
    one line per training seed, the rows in the same order for both; the
    frameworks may have different numbers of seeds. One seed each is the
    plain paired bootstrap of the rows, with a percentile interval.
    """
    a, b = (
        np.atleast_2d(np.asarray(a, dtype=np.float64)),
        np.atleast_2d(np.asarray(b, dtype=np.float64)),
    )
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two frameworks answer {a.shape[1]} and {b.shape[1]} rows")
    _paired_rows(a[0], b[0])
    mean = aggregate(root)
    difference = float(mean(a).mean() - mean(b).mean())
    rng = np.random.default_rng(seed)
    rows = a.shape[1]
    differences = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        count = min(CHUNK, resamples - start)
        # Each resample's row counts, so that a seed's resampled metric is a weighted mean.
        picks = rng.integers(0, rows, (count, rows))
        weights = np.zeros((count, rows))
        np.add.at(weights, (np.arange(count)[:, None], picks), 1.0)
        sides = []
        for values in (a, b):
            per_seed = weights @ values.T / rows  # (resamples, seeds): each seed's mean share
            if root:
                per_seed = np.sqrt(per_seed)
            chosen = rng.integers(0, values.shape[0], (count, values.shape[0]))
            sides.append(np.take_along_axis(per_seed, chosen, axis=1).mean(axis=1))
        differences[start : start + count] = sides[0] - sides[1]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return Interval(difference, float(low), float(high), level, resamples)


def per_row(metric: str, output: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each row's share of ``metric`` (accuracy, log_loss or rmse), so that a sample's metric
    is their mean (RMSE: the root of their mean)."""
    if metric == "accuracy":
        return (output.argmax(1) == truth).astype(np.float64)
    if metric == "log_loss":
        chosen = output[np.arange(len(truth)), truth].astype(np.float64)
        return -np.log(np.clip(chosen, EPSILON, 1.0))
    if metric == "rmse":
        return (output.astype(np.float64).reshape(-1) - truth.astype(np.float64)) ** 2
    raise ValueError(f"no per-row shares of {metric!r}: accuracy, log_loss or rmse")


def _paired_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(
            f"paired samples must have equal, non-zero length; found {len(a)}, {len(b)}"
        )
    return a, b


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
