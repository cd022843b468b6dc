"""A note when the data stops long before the as-of date: a stale copy graded as of today.

A nightly job that reads yesterday's export grades well.  One that reads an export nobody refreshed for months
grades every customer as lapsed and declining, and the run looks as valid as any other.  The sign is in the
recency metrics the run computes anyway: when even the most recent customer last ordered months before the as-of
date, nobody ordered since, which is a business closed or data not current.  The check is one ``min()`` per
recency metric in the pass over the per-customer table that the data checks make anyway.
"""

from __future__ import annotations

from datetime import date, timedelta

from .expr_sql import quote_identifier as q
from .policy_model import Policy

STALE_DAYS = 60  # a monthly export, read at the end of the next month, is still current


def recency_metrics(policy: Policy) -> list[str]:
    """The first recency metric (in days) the policy defines on each source: the ones whose minimum tells when
    that source's latest row is."""
    first: dict[str, str] = {}
    for m in policy.metrics.values():
        if m.kind == "recency" and not m.internal:
            first.setdefault(m.source, m.name)
    return list(first.values())


def terms(policy: Policy) -> list[str]:
    """SQL aggregates for the pass over the per-customer table, one per :func:`recency_metrics`."""
    return [f"min({q(name)})" for name in recency_metrics(policy)]


def stale_notes(policy: Policy, as_of: str, minimums: list) -> list[str]:
    """A note per source whose most recent row (by its recency metric) is more than STALE_DAYS before ``as_of``."""
    notes = []
    for name, days in zip(recency_metrics(policy), minimums):
        if days is None or days <= STALE_DAYS:
            continue
        days = int(days)
        last = (date.fromisoformat(as_of) - timedelta(days=days)).isoformat()
        table = policy.data.sources[policy.metrics[name].source].table
        notes.append(f"the latest row of {table!r} that {name} counts is dated {last}, {days:,} days before the "
                     f"as-of date {as_of}: every customer is graded as inactive since then; is the data current, and "
                     f"is --as-of right? (to grade as of the data's end: --as-of {last})")
    return notes
