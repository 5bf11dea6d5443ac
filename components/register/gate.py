"""The champion gate: does the new winner take the ``champion`` alias?

Both models are scored by the caller on the current test split with the same
runtime. The incumbent stays unless beaten: the new model is promoted only
when the lower bound of the paired bootstrap interval of its improvement over
the champion (new - champion; champion - new for error metrics) is above zero
and at least ``min_improvement``, in the metric's units. A tie keeps the
champion, whichever framework won the bake-off, so no chain of runs can lower
the champion's score on the same test split. With no champion, or one that
cannot read today's inputs, the new model is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.evaluate.stats import Interval

CHAMPION = "champion"
CHALLENGER = "challenger"
NO_ALIAS = "none"  # a DVC experiment's version: registered, no alias moved


@dataclass(frozen=True)
class Decision:
    promote: bool
    alias: str  # champion, challenger, or none (a DVC experiment's version)
    reason: str

    @property
    def moves_alias(self) -> bool:
        """Whether registering the version moves an alias to it."""
        return self.alias != NO_ALIAS


def in_experiment(decision: Decision, experiment: str | None) -> Decision:
    """The gate's ``decision`` as it stands inside DVC experiment ``experiment``, if any.

    An experiment never moves an alias: the registry's champion (and the
    challenger beside it) follow the graph run in the repository, not a trial
    of params that may never be committed. The version is registered and tagged
    with the experiment; the reason keeps what the gate found.
    """
    if experiment is None:
        return decision
    return Decision(
        False,
        NO_ALIAS,
        f"no alias moved: DVC experiment {experiment} registers its version without one "
        "(an experiment never moves the champion; the graph run outside `dvc exp` decides); "
        f"the gate found: {decision.reason}",
    )


def decide(
    score: float,
    champion: float | None,
    improvement: Interval | None,
    *,
    metric: str,
    min_improvement: float,
    champion_version: str | None = None,
    unscorable: str | None = None,
) -> Decision:
    """Promote ``score`` over ``champion`` only when ``improvement`` shows it better.

    ``improvement`` is the interval of the new model's gain over the champion
    on the same rows (positive: better, whatever the metric's direction).
    ``unscorable`` says why the champion could not be scored on the current
    data, which promotes.
    """
    if unscorable:
        return Decision(True, CHAMPION, f"promoted: the champion {unscorable}")
    if champion is None or improvement is None:
        return Decision(True, CHAMPION, "promoted: no champion yet (first registration)")
    held = f"version {champion_version}" if champion_version else "the champion"
    evidence = (
        f"{metric} {score:.4f} against {held}'s {champion:.4f} on the current test split; "
        f"improvement {improvement.difference:+.4f}, {improvement.level:.0%} interval "
        f"[{improvement.low:+.4f}, {improvement.high:+.4f}]"
    )
    minimum = f" and at least {min_improvement:g}" if min_improvement > 0 else ""
    if improvement.low > 0 and improvement.low >= min_improvement:
        return Decision(
            True, CHAMPION, f"promoted: {evidence}: the lower bound is above zero{minimum}"
        )
    shortfall = (
        "no improvement shown (the lower bound is not above zero)"
        if improvement.low <= 0
        else f"the improvement shown is less than register.min_improvement {min_improvement:g}"
    )
    return Decision(
        False,
        CHALLENGER,
        f"kept {held} as champion: {evidence}: {shortfall}; a tie keeps the champion",
    )
