"""Choosing the winner: the metric named in params, then a declared tie-break.

The leader is the framework best on the metric. Every other framework's
paired bootstrap interval against the leader says whether the data can tell
them apart: one whose interval includes zero is tied with the leader. Among
the tied set, the winner is the one with the faster batch-1 inference (native
runtime, p50) when it is faster than every other by more than
``latency_margin``; otherwise, among those within the margin of the fastest,
the smaller model on disk; otherwise, so the rule always decides, the
framework first in alphabetical order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.evaluate.stats import Interval


@dataclass(frozen=True)
class Candidate:
    """What the selection rule reads of one framework's model."""

    framework: str
    score: float  # the selection metric on the test split
    latency_ms: float  # batch-1 p50 in its native runtime
    size_bytes: int


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
    return _tie_break(tied, tie, latency_margin)


def _tie_break(tied: list[Candidate], tie: str, latency_margin: float) -> Selection:
    """Latency beyond the margin, then size, then name, among the tied set."""
    by_latency = sorted(tied, key=lambda c: (c.latency_ms, c.framework))
    fast = by_latency[0]
    close = [c for c in tied if c.latency_ms <= fast.latency_ms * (1 + latency_margin)]
    if len(close) == 1:
        slow = by_latency[1]
        return Selection(
            fast.framework,
            slow.framework,
            "latency",
            f"{tie}; faster batch-1 inference: {fast.latency_ms:.3f} ms against "
            f"{slow.latency_ms:.3f} ms",
        )
    by_size = sorted(close, key=lambda c: (c.size_bytes, c.framework))
    small, large = by_size[0], by_size[1]
    if small.size_bytes < large.size_bytes:
        return Selection(
            small.framework,
            large.framework,
            "size",
            f"{tie}; latency within {latency_margin:.0%}; smaller model: "
            f"{small.size_bytes:,} bytes against {large.size_bytes:,}",
        )
    return Selection(
        small.framework, large.framework, "name", f"{tie}; same latency and size; by name"
    )


def select(
    a: Candidate,
    b: Candidate,
    interval: Interval,
    *,
    metric: str,
    higher_is_better: bool,
    latency_margin: float = 0.1,
) -> Selection:
    """The winner of ``a`` and ``b``; ``interval`` is the bootstrap interval of ``a - b``."""
    a_leads = (interval.difference > 0) == higher_is_better
    leader, rival = (a, b) if a_leads else (b, a)
    return choose(
        leader,
        [(rival, interval if rival is a else negated(interval))],
        metric=metric,
        higher_is_better=higher_is_better,
        latency_margin=latency_margin,
    )


def negated(interval: Interval) -> Interval:
    """The interval of ``b - a`` from that of ``a - b`` (exact: only signs change)."""
    return Interval(
        -interval.difference, -interval.high, -interval.low, interval.level, interval.resamples
    )
