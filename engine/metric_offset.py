"""Which metrics take an ``offset`` (a window that ends before the as-of date), and why the others do not.

An offset moves a window back: the metric is then what a run as of the window's last day would compute (the same
period last year, for a year-on-year comparison).  That is clear only for a metric that is computed over a window of
rows.  The others measure something *on* the as-of date (the days since the last order, what is open or overdue, the
days left on a contract, the time since the customer joined) or are computed from other metrics; moving "their window"
would mean one of several things, so the policy is asked to say which, and the message names the way to write it.
"""

from __future__ import annotations

from typing import Callable

from . import date_windows
from .expr_types import with_article

#: The kinds computed over a window of rows, which end ``offset`` earlier (trend: its window and the one before it).
OFFSET_KINDS = frozenset({"sum", "avg", "min", "max", "count_distinct", "count", "repurchase_rate", "trend",
                          "collection_rate", "on_time_rate"})

_EXAMPLE = "window: 3 months, offset: 12 months"


def _source(spec: dict, kind: str) -> str:
    source = spec.get(kind)
    return "" if source in (None, "orders") else f", from: {source}"


def _population(name: str, spec: dict, kind: str) -> str:
    return (f"a {kind} compares the customers by metric {spec.get(kind)!r} as the run computes it; give `offset` to "
            f"the metric it reads (a metric of its own, e.g. `{{sum: amount, {_EXAMPLE}}}`), not to the {kind}")


_WHY: dict[str, Callable[[str, dict, str], str]] = {
    "recency": lambda name, spec, kind: (
        "a recency counts the days from the last row to the as-of date, which an earlier window does not change "
        "into anything clear; for the day of the last row of an earlier period write "
        f"`{{max: date{_source(spec, kind)}, {_EXAMPLE}}}`"),
    "tenure": lambda name, spec, kind: (
        f"a tenure is the time up to the as-of date, with no window; a year earlier it was a year less: write "
        f"`{{expr: {name} - {({'days': 365, 'months': 12}).get(spec.get(kind), 1)}}}`"),
    "overdue": lambda name, spec, kind: (
        "overdue receivables are those open and past due on the as-of date, with no window; for the invoices due in "
        f"an earlier period write `{{on_time_rate: receivables, {_EXAMPLE}}}` or `{{collection_rate: receivables, "
        f"{_EXAMPLE}}}`"),
    "outstanding": lambda name, spec, kind: (
        "the outstanding amount is what is open on the as-of date, with no window; for what was invoiced in an "
        f"earlier period write `{{sum: amount, from: receivables, {_EXAMPLE}}}`"),
    "contract_days_left": lambda name, spec, kind: (
        "it counts the days from the as-of date to a contract's end, with no window; for the contracts that started "
        f"in an earlier period write `{{count: contracts, {_EXAMPLE}}}`"),
    "expr": lambda name, spec, kind: (
        "an expr is computed from other metrics, each with its own window; give `offset` to the metrics it reads, "
        f"e.g. `{{count: orders, {_EXAMPLE}}}`"),
    "attribute": lambda name, spec, kind: "a customer attribute is one value per customer, with no window to move",
    "rank": _population, "percentile": _population, "ntile": _population, "cumulative_share": _population,
}


def refused(name: str, kind: str, spec: dict) -> str | None:
    """Why metric ``name`` of ``kind`` cannot have an offset, and what to write instead; None when it can."""
    if kind in OFFSET_KINDS:
        return None
    why = _WHY.get(kind)
    reason = why(name, spec, kind) if why is not None else "it has no window to move back"
    return f"'offset' does not apply to {with_article(kind)} metric: {reason}"


def without_window(spec: dict) -> str | None:
    """Why an offset of a metric of every row (``window: all``, the default) is refused, or None when it has a window.

    "Every row up to a year ago" is a reading of it, but an offset written without a window is far more often a
    window left out, and a lifetime total a year old is rarely what a grade needs; a window says which period."""
    if spec.get("window", "all") != "all":
        return None
    offset = spec.get("offset")
    return (f"an offset moves the end of a window back from the as-of date, but this metric has no window "
            f"({'`window: all`' if 'window' in spec else 'no `window`'}: every row up to the as-of date); write the "
            f"period that ends {offset} before it, e.g. `window: 3 months, offset: {offset}`")


def window_dates(spec: object, as_of: str) -> tuple[str, str] | None:
    """(first day, last day) of the window of a metric with an offset or a calendar window, as of ``as_of``; None
    for any other metric.

    A report of a run as of 2026-06-30 that shows "revenue" read from a quarter a year before must say so: the
    name and label of a metric need not.  A calendar window's dates change with the as-of date too ("year to
    date" is five months and a half on June 15th), so they are shown as well."""
    if not isinstance(spec, dict):
        return None
    window, offset = spec.get("window", "all"), spec.get("offset")
    if not isinstance(window, str) or window == "all":
        return None
    if isinstance(offset, str):
        return date_windows.offset_window(as_of, window, offset)
    if date_windows.calendar_months(window) is not None:
        return date_windows.offset_window(as_of, window, None)
    return None


def period(spec: object) -> str:
    """The rows a metric reads, in words: `12 months`, `3 months ending 12 months before the as-of date`, `year to
    date as of 1y before the as-of date`, `all rows`; for telling two definitions of one metric apart (``crm-rules
    diff``)."""
    spec = spec if isinstance(spec, dict) else {}
    window, offset = spec.get("window", "all"), spec.get("offset")
    text = "all rows" if window == "all" else f"{window}"
    if offset and date_windows.calendar_months(window) is not None:  # the period that holds the moved end
        return f"{text} as of {offset} before the as-of date"
    return f"{text} ending {offset} before the as-of date" if offset else text
