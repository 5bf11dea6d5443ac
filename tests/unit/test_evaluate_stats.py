"""The verdict's metric code and statistics, against scikit-learn and known tables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from components.evaluate import metrics, stats


def probabilities(rows: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes))
    labels = (logits + rng.normal(scale=1.5, size=logits.shape)).argmax(axis=1)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_scikit_learn(seed):
    p, labels = probabilities(200, 4, seed)
    labels[labels == 3] = 2  # class 3 never true: its recall is 0, not an error
    got = metrics.classification(p, labels)
    predicted = p.argmax(axis=1)
    everyone = list(range(4))
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert got["macro_f1"] == pytest.approx(
        sk.f1_score(labels, predicted, average="macro", labels=everyone, zero_division=0)
    )
    assert got["log_loss"] == pytest.approx(sk.log_loss(labels, p, labels=everyone))
    np.testing.assert_allclose(
        got["precision"],
        sk.precision_score(labels, predicted, average=None, labels=everyone, zero_division=0),
    )
    np.testing.assert_allclose(
        got["recall"],
        sk.recall_score(labels, predicted, average=None, labels=everyone, zero_division=0),
    )
    assert (
        got["confusion_matrix"] == sk.confusion_matrix(labels, predicted, labels=everyone).tolist()
    )


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    actual = rng.normal(150, 70, 300)
    predicted = actual + rng.normal(0, 20, 300)
    got = metrics.regression(predicted, actual)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(actual, predicted)))
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(actual, predicted))
    assert got["r2"] == pytest.approx(sk.r2_score(actual, predicted))


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 labels for 2 predictions"):
        metrics.classification(np.full((2, 2), 0.5), np.array([0, 1, 1]))


def table(only_a: int, only_b: int, both: int = 40, neither: int = 10):
    """Paired correctness with the given discordant counts."""
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return np.array(a), np.array(b)


def test_mcnemar_exact_on_a_small_table():
    # 0 against 5 discordant rows: two-sided binomial p = 2 * 0.5**5.
    result = stats.mcnemar(*table(0, 5))
    assert (result.only_a, result.only_b, result.exact) == (0, 5, True)
    assert result.p_value == pytest.approx(0.0625)
    assert stats.mcnemar(*table(3, 3)).p_value == pytest.approx(1.0)


def test_mcnemar_chi_square_on_a_large_table():
    # 121 against 59 discordant rows: (|121 - 59| - 1)^2 / 180 = 20.672, p = 5.45e-6.
    result = stats.mcnemar(*table(121, 59))
    assert not result.exact
    assert result.statistic == pytest.approx(20.672, abs=1e-3)
    assert result.p_value == pytest.approx(5.45e-6, rel=1e-2)


def test_mcnemar_with_no_disagreement_finds_nothing():
    assert stats.mcnemar(*table(0, 0)).p_value == 1.0


def test_bootstrap_of_identical_models_is_zero():
    right = (np.random.default_rng(0).random(300) < 0.8).astype(float)
    for interval in (stats.paired_bootstrap(right, right), stats.seeds_and_rows(right, right)):
        assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)
        assert not interval.excludes_zero()


def test_bootstrap_separates_a_clearly_better_model_and_is_seeded():
    rng = np.random.default_rng(1)
    better = (rng.random(500) < 0.95).astype(float)
    worse = (rng.random(500) < 0.70).astype(float)
    interval = stats.paired_bootstrap(better, worse, resamples=500)
    assert interval.excludes_zero() and interval.low > 0.15
    assert interval.low < interval.difference < interval.high
    assert interval == stats.paired_bootstrap(better, worse, resamples=500)
    wider = stats.paired_bootstrap(better, worse, resamples=500, level=0.99)
    assert wider.high - wider.low > interval.high - interval.low


def test_the_interval_is_scipys_and_the_root_is_taken_for_rmse():
    rng = np.random.default_rng(3)
    squared_a, squared_b = rng.random(200) * 4, rng.random(200) * 9
    interval = stats.paired_bootstrap(squared_a, squared_b, root=True, resamples=500)
    assert interval.difference == pytest.approx(
        np.sqrt(squared_a.mean()) - np.sqrt(squared_b.mean())
    )
    assert interval.high < 0  # a's RMSE is clearly the smaller
    from scipy import stats as scipy_stats

    expected = scipy_stats.bootstrap(
        (squared_a, squared_b),
        lambda x, y, axis: np.sqrt(x.mean(axis)) - np.sqrt(y.mean(axis)),
        paired=True,
        n_resamples=500,
        method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval
    assert (interval.low, interval.high) == pytest.approx(tuple(expected))


def test_the_spread_over_seeds_widens_the_interval_of_the_same_rows():
    rng = np.random.default_rng(4)
    rows = 400
    # Per seed, a model is right on a random 90% (a) or 88% (b) of the rows.
    steady_a = np.tile(rng.random(rows) < 0.90, (3, 1)).astype(float)
    steady_b = np.tile(rng.random(rows) < 0.88, (3, 1)).astype(float)
    seedy_a = (rng.random((3, rows)) < np.array([[0.84], [0.90], [0.96]])).astype(float)
    one = stats.seeds_and_rows(steady_a, steady_b, resamples=500)
    spread = stats.seeds_and_rows(seedy_a, steady_b, resamples=500)
    assert spread.high - spread.low > one.high - one.low
    assert spread == stats.seeds_and_rows(seedy_a, steady_b, resamples=500)  # seeded


def test_seeds_must_answer_the_same_rows():
    with pytest.raises(ValueError, match="200 and 100 rows"):
        stats.seeds_and_rows(np.ones((2, 200)), np.ones((3, 100)))


def test_bootstrap_of_close_models_includes_zero():
    rng = np.random.default_rng(2)
    a = rng.random(200) < 0.9
    b = a.copy()
    b[:3] = ~b[:3]  # three rows of difference in 200
    a, b = a.astype(float), b.astype(float)
    assert not stats.paired_bootstrap(a, b, resamples=500).excludes_zero()
    assert not stats.seeds_and_rows(a, b, resamples=500).excludes_zero()


def test_the_bootstrap_in_batches_gives_the_same_interval(monkeypatch):
    generator = np.random.default_rng(3)
    a = (generator.random(5000) < 0.8).astype(float)
    b = (generator.random(5000) < 0.78).astype(float)
    whole = stats.paired_bootstrap(a, b, resamples=500)
    monkeypatch.setattr(stats, "RESAMPLED_AT_ONCE", 7 * 5000)  # 7 resamples per call
    assert stats.resample_batch(5000) == 7
    assert stats.paired_bootstrap(a, b, resamples=500) == whole
