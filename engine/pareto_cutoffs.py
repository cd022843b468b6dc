"""The value of the tier metric at which one customer enters a Pareto tier, every other customer as they are.

A Pareto tier holds the customers with less than ``up_to`` of the total ahead of them.  "The lowest
revenue in A now" is no cut-off for the customer being explained: their own revenue is part of the
total, and moving it moves everyone's shares.  With a:50, b:30, c:15, d:5 and A up to 0.8, b at 29
still has 50/94 < 0.8 ahead and stays A, though 30 is the lowest revenue in A; c needs only 15.01, not
30, to join it.  The cut-off is found from the others' values, sorted: between two of them the share
ahead of the customer is (sum of the values above) / (their total + the customer's own value), which
falls as the value rises, so the first interval where it drops below ``up_to`` holds the cut-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .policy_model import Policy


@dataclass(frozen=True)
class Cutoff:
    """In the tier (or a better one) exactly when the value is above ``value`` (or equal to it, ``inclusive``)."""

    value: float
    inclusive: bool = False

    def admits(self, value: float) -> bool:
        return value > self.value or (self.inclusive and value == self.value)

    @property
    def least(self) -> float:
        """The least amount in cents that enters: "≥ 11.26" for a cut-off above 11.25, which stays true to the
        cent where a rounded "> 11.25" would not (above 4.476, 4.48 would read as "> 4.48")."""
        if self.inclusive:
            return self.value
        return round(math.floor(round(self.value * 100, 6)) / 100 + 0.01, 2)


def levels(policy: Policy) -> list[tuple[str, float | None]]:
    """(tier, cut) in the order of the levels: ``up_to`` of pareto, ``top`` of quantile and top_n; None for the
    levels without one (the rest, zero_value)."""
    key = "up_to" if policy.tier_method == "pareto" else "top"
    return [(level["id"], level.get(key)) for level in (policy.document.get("tiers") or {}).get("levels") or []]


def cutoff(others_desc: Sequence[float], share: float) -> Cutoff:
    """The cut-off of a tier up to ``share`` for a customer against ``others_desc``: every other customer's
    positive value, largest first (the customer's own value left out)."""
    total = math.fsum(others_desc)
    ahead, upper, i = 0.0, math.inf, 0
    while i < len(others_desc):
        value = others_desc[i]
        # between this value (inclusive) and the one above it, `ahead` is what lies above: in the tier when
        # ahead / (total + x) < share, that is x > ahead / share - total
        x = ahead / share - total
        if x >= value:
            return Cutoff(x) if x < upper else Cutoff(upper, inclusive=True)
        while i < len(others_desc) and others_desc[i] == value:  # equal values are peers, none ahead of another
            ahead += others_desc[i]
            i += 1
        upper = value
    x = max(ahead / share - total, 0.0)  # below every other customer (and a tier needs more than 0)
    return Cutoff(x) if x < upper else Cutoff(upper, inclusive=True)


def cutoffs(policy: Policy, others_desc: Sequence[float]) -> dict[str, Cutoff]:
    """Tier -> its cut-off, for the tiers with an ``up_to``."""
    return {tier: cutoff(others_desc, share) for tier, share in levels(policy) if share is not None}


def others(values_desc: Sequence[float], own: float | None) -> list[float]:
    """The positive values of every customer but one, largest first, from all of them (``values_desc``)."""
    rest = [v for v in values_desc if v is not None and v > 0]
    if own is not None and own > 0:
        try:
            rest.remove(own)
        except ValueError:  # (the values were read as stored, the customer's own may be rounded differently)
            pass
    return rest


def rank_cutoff(others_desc: Sequence[float], method: str, top: float) -> Cutoff:
    """The cut-off of a quantile or top_n tier for a customer against ``others_desc`` (every other customer's
    positive value, largest first).

    The tier's rule is on the customer's rank, 1 + the others strictly ahead: ``rank <= top`` (top_n), or
    ``(rank - 1) / population < top`` (quantile; the population counts the customers with a positive value,
    the customer among them).  Both allow at most some number k of others ahead, so the customer is in the tier
    from the value of the (k+1)-th other on (equal values share a rank), or with any positive value when there
    are no more than k others."""
    if method == "top_n":
        allowed = int(top) - 1
    else:  # the largest k with k / population < top, in the floating point the rule's SQL uses
        population = len(others_desc) + 1
        allowed = max(int(top * population) + 1, 0)
        while allowed > 0 and not allowed / population < top:
            allowed -= 1
    if allowed < len(others_desc):
        return Cutoff(others_desc[allowed], inclusive=True)
    return Cutoff(0.0)


def rank_cutoffs(policy: Policy, others_desc: Sequence[float]) -> dict[str, Cutoff]:
    """Tier -> its cut-off, for the quantile or top_n tiers with a ``top``."""
    return {tier: rank_cutoff(others_desc, policy.tier_method, top) for tier, top in levels(policy) if top is not None}
