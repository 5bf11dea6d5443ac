"""Inference timing of models behind one call each: serving matrix in, outputs out.

Every runtime is timed the same way, with its thread count fixed by the
caller: single-row requests cycling through real test rows (p50 and p99 of
each call), and full batches (rows per second). The models are timed
together, interleaved: in each of several rounds every model times a block of
requests, in an order that rotates from round to round, so that a busy moment
of a shared machine falls on all of them rather than on whichever ran then.
Each figure carries a bootstrap interval over the rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], Any]
BATCH = 256
RESAMPLES = 2000  # bootstrap resamples of the rounds


@dataclass(frozen=True)
class Ratio:
    """One model's batch-1 p50 over another's, with its paired bootstrap interval."""

    value: float  # on every timed request
    low: float
    high: float
    level: float
    resamples: int


@dataclass(frozen=True)
class Timings:
    """Every timed request of an interleaved profile, in seconds, by model and round."""

    single: Mapping[str, np.ndarray]  # name -> (rounds, requests per round), batch-1
    full: Mapping[str, np.ndarray]  # name -> (rounds, requests per round), batch-256
    order: tuple[tuple[str, ...], ...]  # the order the models were visited in, each round

    @property
    def rounds(self) -> int:
        """How many rounds were timed."""
        return len(self.order)

    def summary(
        self, *, level: float = 0.95, seed: int = 0, resamples: int = RESAMPLES
    ) -> dict[str, dict[str, Any]]:
        """Each model's batch-1 p50/p99 and batch-256 p50 and examples/s, with intervals.

        The interval is a percentile bootstrap over rounds: each resample draws
        ``rounds`` whole rounds with replacement (the same draws for every model)
        and recomputes the figure on their requests. Requests within one round
        share the machine's state, so rounds, not requests, are the independent units.
        """
        picks = _picks(self.rounds, resamples, seed)
        profiles = {}
        for name in self.single:
            one, many = self.single[name], self.full[name]
            p50, p99 = np.percentile(one, [50, 99])
            drawn_50, drawn_99 = _resampled(one, picks, [50, 99])
            full_p50 = float(np.percentile(many, 50))
            (drawn_full,) = _resampled(many, picks, [50])
            profiles[name] = {
                "batch_1": {
                    "p50_ms": float(p50 * 1e3),
                    "p99_ms": float(p99 * 1e3),
                    "p50_ms_interval": _bounds(drawn_50 * 1e3, level),
                    "p99_ms_interval": _bounds(drawn_99 * 1e3, level),
                    "repeats": int(one.size),
                    "rounds": self.rounds,
                },
                f"batch_{BATCH}": {
                    "p50_ms": full_p50 * 1e3,
                    "p50_ms_interval": _bounds(drawn_full * 1e3, level),
                    "examples_per_s": BATCH / full_p50,
                    "examples_per_s_interval": _bounds(BATCH / drawn_full, level),
                    "repeats": int(many.size),
                    "rounds": self.rounds,
                },
            }
        return profiles

    def ratio_interval(
        self, a: str, b: str, *, level: float = 0.95, seed: int = 0, resamples: int = RESAMPLES
    ) -> Ratio:
        """Batch-1 p50 of ``a`` over that of ``b``, with a bootstrap interval over rounds.

        Paired: both medians of a resample come from the same drawn rounds, in
        which the two models were timed side by side. With the same ``seed`` the
        draws are those of :meth:`summary`.
        """
        for name in (a, b):
            if name not in self.single:
                raise KeyError(f"no timings of {name!r}; timed: {', '.join(self.single)}")
        picks = _picks(self.rounds, resamples, seed)
        (over,) = _resampled(self.single[a], picks, [50])
        (under,) = _resampled(self.single[b], picks, [50])
        value = float(np.percentile(self.single[a], 50) / np.percentile(self.single[b], 50))
        low, high = _bounds(over / under, level)
        return Ratio(value, low, high, level, resamples)


def method(rounds: int, level: float) -> str:
    """How the latency figures and their intervals were obtained, in one phrase."""
    return (
        f"interleaved timing, {rounds} rounds, {level:.0%} percentile bootstrap interval "
        "over rounds"
    )


def time_interleaved(
    calls: Mapping[str, Predict],
    rows: np.ndarray,
    *,
    repeats: int = 200,
    rounds: int = 5,
    warmup: int = 20,
) -> Timings:
    """Time every call on ``rows`` in ``rounds`` interleaved rounds; every request's seconds.

    Each call is warmed first. Each round then visits the calls in turn, the
    order rotated by one each round, and times a block of ``repeats // rounds``
    single-row requests (cycling through ``rows``) and a block of batch-256
    requests of each (at least one of each per round).
    """
    if not calls:
        raise ValueError("no models to time")
    if len(rows) == 0:
        raise ValueError("no rows to time the model on")
    if rounds < 1 or repeats < 1:
        raise ValueError(f"expected at least one round and one repeat; found {rounds}, {repeats}")
    names = list(calls)
    singles = [rows[index : index + 1] for index in range(min(len(rows), repeats))]
    full = np.resize(rows, (BATCH, rows.shape[1])).astype(rows.dtype)
    per_round = max(1, repeats // rounds)
    full_per_round = max(1, repeats // 10 // rounds)  # a batch costs some ten single rows
    for name in names:
        _block(calls[name], singles, 0, warmup)
        _block(calls[name], [full], 0, min(warmup, max(2, warmup // 10)))
    single = {name: np.empty((rounds, per_round)) for name in names}
    many = {name: np.empty((rounds, full_per_round)) for name in names}
    order = []
    for index in range(rounds):
        shift = index % len(names)
        visits = tuple(names[shift:] + names[:shift])
        for name in visits:
            single[name][index] = _block(calls[name], singles, index * per_round, per_round)
            many[name][index] = _block(calls[name], [full], 0, full_per_round)
        order.append(visits)
    return Timings(single, many, tuple(order))


def _block(call: Predict, batches: list[np.ndarray], start: int, count: int) -> np.ndarray:
    """The seconds of ``count`` requests, cycling through ``batches`` from ``start``."""
    seconds = np.empty(count)
    for index in range(count):
        batch = batches[(start + index) % len(batches)]
        begin = time.perf_counter()
        call(batch)
        seconds[index] = time.perf_counter() - begin
    return seconds


def _picks(rounds: int, resamples: int, seed: int) -> np.ndarray:
    """The rounds each bootstrap resample draws, with replacement: (resamples, rounds)."""
    return np.random.default_rng(seed).integers(0, rounds, (resamples, rounds))


def _resampled(seconds: np.ndarray, picks: np.ndarray, percentiles: list[float]) -> np.ndarray:
    """The percentiles of every resample's requests: (len(percentiles), resamples)."""
    drawn = seconds[picks].reshape(len(picks), -1)
    return np.percentile(drawn, percentiles, axis=1)


def _bounds(values: np.ndarray, level: float) -> list[float]:
    """The central ``level`` percentile interval of bootstrap values, as [low, high]."""
    if not 0 < level < 1:
        raise ValueError(f"expected an interval level between 0 and 1; found {level!r}")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]
