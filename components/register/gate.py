"""The champion gate: does the new winner take the ``champion`` alias?

Both models are scored by the caller on the current test split with the same
runtime. The new model is promoted unless it is worse than the champion by
more than ``tolerance`` (in the metric's units; for RMSE, relative to the
champion's). With no champion, or one that cannot read today's inputs, it is
promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Decision:
    promote: bool
    alias: str  # champion or challenger
    reason: str


def decide(
    score: float,
    champion: float | None,
    *,
    metric: str,
    higher_is_better: bool,
    tolerance: float,
    relative: bool = False,
    champion_version: str | None = None,
    unscorable: str | None = None,
) -> Decision:
    """Promote ``score`` over ``champion`` unless it is worse by more than ``tolerance``.

    ``relative`` measures the loss as a share of the champion's value (for
    error metrics such as RMSE). ``unscorable`` says why the champion could
    not be scored on the current data, which promotes.
    """
    if unscorable:
        return Decision(True, CHAMPION, f"promoted: the champion {unscorable}")
    if champion is None:
        return Decision(True, CHAMPION, "promoted: no champion yet (first registration)")
    loss = (champion - score) if higher_is_better else (score - champion)
    if relative and champion:
        loss /= abs(champion)
    held = f"version {champion_version}" if champion_version else "the champion"
    comparison = f"{metric} {score:.4f} against {held}'s {champion:.4f} on the current test split"
    limit = f"{tolerance:.2%}" if relative else f"{tolerance:g}"
    if loss <= tolerance:
        return Decision(True, CHAMPION, f"promoted: {comparison}; not worse by more than {limit}")
    return Decision(
        False, CHALLENGER, f"kept {held} as champion: {comparison} is worse by more than {limit}"
    )
