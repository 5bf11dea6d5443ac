"""Choosing the winner: the metric named in params, then a declared tie-break.

A difference whose bootstrap interval includes zero is a tie: the data cannot
tell the two models apart. A tie goes to the model with the faster batch-1
inference (native runtime, p50) when one is faster by more than
``latency_margin``; otherwise to the smaller model on disk; otherwise, so the
rule always decides, to the framework first in alphabetical order.
"""

from __future__ import annotations

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
    if interval.excludes_zero():
        a_better = (interval.difference > 0) == higher_is_better
        winner, loser = (a, b) if a_better else (b, a)
        return Selection(
            winner.framework,
            loser.framework,
            "metric",
            f"{metric} {winner.score:.4f} against {loser.score:.4f}; the "
            f"{interval.level:.0%} interval of the difference "
            f"[{interval.low:+.4f}, {interval.high:+.4f}] excludes zero",
        )
    tie = (
        f"{metric} {a.framework} {a.score:.4f}, {b.framework} {b.score:.4f}: a tie, the "
        f"{interval.level:.0%} interval [{interval.low:+.4f}, {interval.high:+.4f}] includes zero"
    )
    fast, slow = (a, b) if a.latency_ms <= b.latency_ms else (b, a)
    if slow.latency_ms > fast.latency_ms * (1 + latency_margin):
        return Selection(
            fast.framework,
            slow.framework,
            "latency",
            f"{tie}; faster batch-1 inference: {fast.latency_ms:.3f} ms against "
            f"{slow.latency_ms:.3f} ms",
        )
    small, large = (a, b) if a.size_bytes <= b.size_bytes else (b, a)
    if small.size_bytes < large.size_bytes:
        return Selection(
            small.framework,
            large.framework,
            "size",
            f"{tie}; latency within {latency_margin:.0%}; smaller model: "
            f"{small.size_bytes:,} bytes against {large.size_bytes:,}",
        )
    first, second = sorted((a, b), key=lambda candidate: candidate.framework)
    return Selection(
        first.framework, second.framework, "name", f"{tie}; same latency and size; by name"
    )
