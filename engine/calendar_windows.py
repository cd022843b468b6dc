"""Which metrics take a calendar window (`year to date`, `quarter to date`, `month to date`), and why two do not.

A calendar window is a set of rows like any other window (date_windows.period_start says where it starts), so
every kind that reads the rows of a window takes one: sum, avg, min, max, count_distinct, count, recency (the last
row in the period so far), collection_rate and on_time_rate (the invoices due in it).  Two kinds read more than
the rows: a trend compares its window with "the window before", and a repurchase_rate counts the window's months.
Neither is defined for a period to date without a choice a reader could not see in the policy (the previous
quarter to the same day, or all of it?  the month still running, counted as a month or not?), so they are refused
with the way to write what is usually meant.
"""

from __future__ import annotations

from . import date_windows


def _trend(name: str, spec: dict) -> str:
    window = spec["window"].strip()
    short = {"year to date": "ytd", "quarter to date": "qtd", "month to date": "mtd"}[window]
    return (f"a trend compares its window with the window before it, which a {window} does not define (the previous "
            f"{window.split()[0]} to the same day, or all of it?); for the change against the same period last year "
            f"write two metrics, `revenue_{short}: {{sum: {spec['trend']}, window: {window}}}` and "
            f"`revenue_{short}_ly: {{sum: {spec['trend']}, window: {window}, offset: 1y}}`, and "
            f"`{{expr: revenue_{short} / revenue_{short}_ly - 1}}`; for a trend of a window of fixed length write "
            f"e.g. `window: 3 months`")


def _repurchase_rate(name: str, spec: dict) -> str:
    window = spec["window"].strip()
    return (f"a repurchase_rate is the share of its window's months with a purchase, and a {window} ends in a month "
            f"still running (as of June 15th, half of June), which would count as a month without a purchase "
            f"until the customer buys in it; write a window of whole months, e.g. "
            f"`window: 6 months` (as of a month's last day its months are calendar months), or count the orders "
            f"so far with `{{count: {spec['repurchase_rate']}, window: {window}}}`")


_WHY = {"trend": _trend, "repurchase_rate": _repurchase_rate}


def refused(name: str, kind: str, spec: dict) -> str | None:
    """Why metric ``name`` of ``kind`` cannot have its calendar window, and what to write instead; None when it can
    (or when its window is not a calendar one)."""
    if date_windows.calendar_months(spec.get("window")) is None or kind not in _WHY:
        return None
    return f"{spec['window'].strip()!r} does not apply to a {kind} metric: {_WHY[kind](name, spec)}"
