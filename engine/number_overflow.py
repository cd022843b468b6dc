"""Sums beyond the largest number a float holds (about 1.8e308).

A wrong amount in the data (1e308, an exponent typed into a spreadsheet, an
infinity some program stored) makes a customer's sum infinite, and one
infinite value poisons every figure computed over all customers: a Pareto
share of x / ∞ is 0 for everyone and every customer came out in the lowest
tier, with exit 0.  A run that has such a sum stops, naming the metric, the
customers and their largest rows; no real sum of money comes near the limit.

The test is one ``total()`` per metric that can overflow, in the pass over the
per-customer table that check_rows makes anyway: a total is infinite (or NaN,
which SQLite reads as NULL) exactly when some customer's value is, or when all
of them add up beyond the limit, which breaks the Pareto share just the same.
"""

from __future__ import annotations

import math
import sqlite3

from .data_binding import Binding
from .expr_ast import names_in
from .expr_sql import quote_identifier as q
from .expr_types import NUMBER
from .metric_sql import CID
from .policy_model import Metric, Policy
from .row_names import row_column, row_name
from .source_filters import compile_filter
from .yaml_source import format_path

#: Metric kinds whose value is a sum, an average or an extreme of a source's amounts, which can be infinite.
_OVERFLOWING = ("sum", "avg", "min", "max", "trend", "outstanding", "overdue")
#: SQLite reads 9e999 as +infinity.
_INFINITE = "(t.{0} >= 9e999 OR t.{0} <= -9e999)"
EXAMPLES = 3


def overflowing(policy: Policy) -> list[Metric]:
    """The metrics of the per-customer table whose values can be infinite."""
    return [m for m in policy.metrics.values() if m.source and m.type == NUMBER and m.kind in _OVERFLOWING]


def total_sql(metric: Metric) -> str:
    """The term of the per-customer table's pass that is infinite or NULL when ``metric`` overflows."""
    return f"total({q(metric.name)})"


def problems(conn: sqlite3.Connection, policy: Policy, binding: Binding, base: str,
             metrics: list[Metric], totals: list, dates: dict | None = None) -> list[str]:
    """A line per group of metrics whose total over the customers (``totals``, from the pass) is not a finite
    number: metrics summed from the same rows (revenue, its trend, profit) overflow together, for the same
    customers, and are named together.  ``dates``: the run's ``as_of`` and ``as_of_next``, which a source's
    filter may read."""
    found: dict[tuple[str, str], list[str]] = {}  # (whom, which rows) -> metrics
    for metric, total in zip(metrics, totals):
        if total is not None and math.isfinite(total):
            continue
        col = q(metric.name)
        infinite = _INFINITE.format(col)
        count = conn.execute(f"SELECT count(*) FROM {base} AS t WHERE {infinite}").fetchone()[0]
        if count:
            rows = conn.execute(f"SELECT t.{CID}, t.{col} FROM {base} AS t WHERE {infinite} "
                                f"LIMIT {EXAMPLES}").fetchall()
            more = f" and {count - len(rows):,} more" if count > len(rows) else ""
            whom = (f"infinite (beyond 1.8e308, the largest number) for {count:,} customer(s): "
                    f"{', '.join(repr(cid) for cid, _ in rows)}{more}")
        else:  # every value is finite, but they add up beyond the limit: a Pareto share of them is 0 for all
            rows = conn.execute(f"SELECT t.{CID}, t.{col} FROM {base} AS t ORDER BY abs(t.{col}) DESC "
                                f"LIMIT {EXAMPLES}").fetchall()
            whom = ("add up to more than 1.8e308 (the largest number) over all customers, which makes a share of "
                    "their total 0 for everyone; the largest are "
                    + ", ".join(f"{cid!r} ({_number(value)})" for cid, value in rows))
        where = _largest_rows(conn, policy, binding, metric, rows[0][0], dates or {})
        found.setdefault((whom, where), []).append(format_path(metric.path) if metric.internal else metric.name)
    return [f"{'metric' if len(names) == 1 else 'metrics'} {', '.join(names)}: {whom}{where}"
            for (whom, where), names in found.items()]


def _largest_rows(conn: sqlite3.Connection, policy: Policy, binding: Binding, metric: Metric, cid, dates: dict) -> str:
    """'; the largest amount of customer 'C1' in 'orders': id 19 (1e+308), ...': the rows to look at first, of
    those the source's filter keeps (the others are in no sum)."""
    t = policy.data.sources[metric.source]
    names = sorted(names_in(metric.operand.node)) if metric.operand else ["amount"]
    columns = [t.columns[n].column for n in names if n in t.columns and t.columns[n].type == NUMBER]
    if not columns:
        return ""
    column = columns[0]
    row_col = row_column(conn, binding.schema, t.table, t.key)
    row_sql = f"r.{q(row_col)}" if row_col else "NULL"
    rf = compile_filter(t)
    kept = "" if rf is None else f" AND {rf.sql}"
    rows = conn.execute(f"SELECT {row_sql}, r.{q(column)} FROM {binding.table(t.table)} AS r "
                        f"WHERE r.{q(t.key)} = :_customer{kept} ORDER BY abs(r.{q(column)}) DESC LIMIT {EXAMPLES}",
                        {**(rf.params if rf else {}), **dates, "_customer": cid}).fetchall()
    if not rows:
        return ""
    named = ", ".join(f"{row_name(row_col, row)} ({_number(value)})" if row_col else _number(value) for row, value in rows)
    return f"; the largest {column!r} of customer {cid!r} in {t.table!r}: {named}"


def _number(value) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else repr(value)
