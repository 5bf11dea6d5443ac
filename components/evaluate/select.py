"""Choosing the winner: the metric named in params, then a declared tie-break.

The leader is the framework best on the metric (its mean over the training
seeds). Every other framework's bootstrap interval against the leader, over
seeds and test rows, says whether the data can tell them apart: one whose
interval includes zero is tied with the leader. A cost breaks a tie only when
its evidence is beyond doubt: the fastest batch-1 inference (native runtime,
p50) wins when the interval of every other tied model's p50 over its own
(interleaved timing rounds, bootstrapped) lies wholly above ``1 +
margin``; otherwise, among the tied, the smallest model on disk wins when
every other is larger by more than the margin (sizes are exact, not
measured); otherwise, so the rule always decides, the framework first in
alphabetical order. Which rule decided, and on what evidence, is in the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from components.evaluate.stats import Interval


@dataclass(frozen=True)
class Candidate:
    """What the selection rule reads of one framework's model."""

    framework: str
    score: float  # the selection metric on the test split
    latency_ms: float  # batch-1 p50 in its native runtime
    size_bytes: int


# (slower, faster) -> the interval (low, high) of slower's batch-1 p50 over faster's.
LatencyRatio = Callable[[str, str], tuple[float, float]]


def exact_latency(candidates: Sequence[Candidate]) -> LatencyRatio:
    """Ratios of latencies known without noise (no interval): for rules checked on known inputs."""
    latency = {c.framework: c.latency_ms for c in candidates}

    def ratio(slower: str, faster: str) -> tuple[float, float]:
        value = latency[slower] / latency[faster]
        return value, value

    return ratio


@dataclass(frozen=True)
class Selection:
    winner: str
    runner_up: str
    decided_by: str  # metric | latency | size | name (evaluate adds: eligibility)
    reason: str


def ranked(candidates: Sequence[Candidate], *, higher_is_better: bool) -> list[Candidate]:
    """``candidates`` best first on the metric; equal scores in name order."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted(candidates, key=lambda c: (sign * c.score, c.framework))


def choose(
    leader: Candidate,
    rivals: Sequence[tuple[Candidate, Interval]],
    *,
    metric: str,
    higher_is_better: bool,
    latency_ratio: LatencyRatio,
    latency_margin: float = 0.1,
) -> Selection:
    """The winner of ``leader`` and ``rivals``, each rival with its interval of ``rival - leader``."""
    if not rivals:
        raise ValueError(f"{leader.framework} has no rival to be chosen against")
    intervals = {rival.framework: interval for rival, interval in rivals}
    tied = [leader, *(rival for rival, interval in rivals if not interval.excludes_zero())]
    level = rivals[0][1].level
    if len(tied) == 1:
        runner = ranked([rival for rival, _ in rivals], higher_is_better=higher_is_better)[0]
        interval = intervals[runner.framework]
        others = " (as does every other framework's against it)" if len(rivals) > 1 else ""
        return Selection(
            leader.framework,
            runner.framework,
            "metric",
            f"{metric} {leader.score:.4f} against {runner.score:.4f} ({runner.framework}); "
            f"the {level:.0%} interval of the difference {runner.framework} - {leader.framework} "
            f"[{interval.low:+.4f}, {interval.high:+.4f}] excludes zero{others}",
        )
    bounds = ", ".join(
        f"{c.framework} [{intervals[c.framework].low:+.4f}, {intervals[c.framework].high:+.4f}]"
        for c in tied[1:]
    )
    tie = (
        f"{metric} "
        + ", ".join(f"{c.framework} {c.score:.4f}" for c in tied)
        + f": a tie, the {level:.0%} interval against {leader.framework} includes zero "
        f"({bounds})"
    )
    return _tie_break(tied, tie, latency_ratio, latency_margin)


def _tie_break(
    tied: list[Candidate], tie: str, latency_ratio: LatencyRatio, margin: float
) -> Selection:
    """Latency beyond the margin on its interval, then size beyond the margin, then name."""
    fast, *others = sorted(tied, key=lambda c: (c.latency_ms, c.framework))
    bounds = {c.framework: latency_ratio(c.framework, fast.framework) for c in others}
    slow = min(others, key=lambda c: (bounds[c.framework][0], c.framework))
    low, high = bounds[slow.framework]
    evidence = (
        f"{slow.framework}'s batch-1 p50 {slow.latency_ms:.3f} ms over {fast.framework}'s "
        f"{fast.latency_ms:.3f} ms: {slow.latency_ms / fast.latency_ms:.2f}x "
        f"[{low:.2f}, {high:.2f}]"
    )
    if low > 1 + margin:
        return Selection(
            fast.framework,
            slow.framework,
            "latency",
            f"{tie}; faster batch-1 inference: {evidence}, beyond the {margin:.0%} margin",
        )
    latency = f"latency not shown to differ by more than {margin:.0%} ({evidence})"
    small, *larger = sorted(tied, key=lambda c: (c.size_bytes, c.framework))
    large = min(larger, key=lambda c: (c.size_bytes, c.framework))
    if large.size_bytes > small.size_bytes * (1 + margin):
        return Selection(
            small.framework,
            large.framework,
            "size",
            f"{tie}; {latency}; smaller model: {small.size_bytes:,} bytes against "
            f"{large.size_bytes:,}, beyond the {margin:.0%} margin",
        )
    first, second, *_ = sorted(tied, key=lambda c: c.framework)
    return Selection(
        first.framework,
        second.framework,
        "name",
        f"{tie}; {latency}; sizes within {margin:.0%} ({small.size_bytes:,} and "
        f"{large.size_bytes:,} bytes); by name",
    )


def select(
    a: Candidate,
    b: Candidate,
    interval: Interval,
    *,
    metric: str,
    higher_is_better: bool,
    latency_ratio: LatencyRatio | None = None,
    latency_margin: float = 0.1,
) -> Selection:
    """The winner of ``a`` and ``b``; ``interval`` is the bootstrap interval of ``a - b``.

    ``latency_ratio`` defaults to the candidates' latencies taken as exact.
    """
    a_leads = (interval.difference > 0) == higher_is_better
    leader, rival = (a, b) if a_leads else (b, a)
    return choose(
        leader,
        [(rival, interval if rival is a else negated(interval))],
        metric=metric,
        higher_is_better=higher_is_better,
        latency_ratio=latency_ratio or exact_latency([a, b]),
        latency_margin=latency_margin,
    )


def negated(interval: Interval) -> Interval:
    """The interval of ``b - a`` from that of ``a - b`` (exact: only signs change)."""
    return Interval(
        -interval.difference, -interval.high, -interval.low, interval.level, interval.resamples
    )
