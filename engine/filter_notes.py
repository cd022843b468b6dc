"""A note when a metric's ``where`` keeps no row of its source: the policy's codes are not the data's.

The shipped policies count complaints with ``kind = 'complaint'``.  Data that writes the kind '投诉' or
'Complaint' gives every customer 0 complaints, the risk and churn rules that read them grade on nothing, and the
run looks like any other.  A filter that keeps no row of a source that has rows is rarely meant, so the run says
so, with the values the data holds in the columns the filter compares, which is usually the fix itself.

The run has already computed the answer: each source's GROUP BY has, per customer, the aggregates that read the
filter, and a customer with a value there had a row it kept.  One ``EXISTS`` per filtered metric over that table
(one row per customer, and the first customer with a value ends it) settles the common case.  Only when no customer
has a value is the source itself read: one scan counts its rows up to the as-of date and those each suspect filter
keeps; a filter that keeps rows older than its metric's window is a rare event (nothing this year), not a code
mismatch, and gets no note.  Then one GROUP BY per compared column lists what the data holds.
"""

from __future__ import annotations

import sqlite3

from . import expr_ast as ast
from .data_binding import Binding
from .data_mapping import WINDOW_FIELD, Table
from .expr_sql import quote_identifier as q
from .expr_types import DATE, NUMBER
from .metric_sql import MetricFilter, MetricPlan
from .policy_model import Policy
from .user_text import joined

VALUES = 5  # values of a text column a note lists, the most frequent first


def unmatched_filter_notes(conn: sqlite3.Connection, policy: Policy, binding: Binding, plan: MetricPlan, as_of: str,
                           skip: set[str] = frozenset()) -> list[str]:
    """A note per source some of whose metrics' filters keep none of its rows dated on or before ``as_of``, while
    it has such rows; ``skip``: sources already noted as empty or without a row by then."""
    notes = []
    for source, filters in plan.filters.items():
        if source in skip:
            continue
        agg = plan.sources[source]
        suspects = [f for f in filters if not conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {agg.target} WHERE {' OR '.join(f.found)})").fetchone()[0]]
        if not suspects:
            continue
        t = policy.data.sources[source]
        table = binding.table(t.table)
        params = {**agg.query.params, "as_of": as_of,
                  "as_of_next": conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]}
        dated = f"r.{q(t.columns[WINDOW_FIELD[source]].column)} < :as_of_next"
        if agg.filter is not None:  # the rows of the source's own filter only (its params are the scan's)
            dated = f"{dated} AND {agg.filter.sql}"
        counts = ", ".join(f"count(CASE WHEN {f.sql} THEN 1 END)" for f in suspects)
        rows, *kept = conn.execute(f"SELECT count(*), {counts} FROM {table} AS r WHERE {dated}", params).fetchone()
        if not rows:
            continue
        unmatched = [f for f, n in zip(suspects, kept) if not n]
        if unmatched:
            others = [f for f in filters if f not in unmatched]
            notes.append(_note(conn, t, table, dated, params, unmatched, others, rows, as_of,
                               agg.filter.path if agg.filter is not None else None))
    return notes


def _note(conn: sqlite3.Connection, t: Table, table: str, dated: str, params: dict, filters: list[MetricFilter],
          others: list[MetricFilter], rows: int, as_of: str, source_filter: str | None = None) -> str:
    """One note for a source's ``filters`` that keep none of its ``rows``: the metrics and their filters, what the
    columns they compare with literals hold, then the fix; ``others``: the source's filters that keep rows;
    ``source_filter``: the source's own filter (data.<source>.where), whose rows these are."""
    by_text: dict[str, list[str]] = {}
    for f in filters:
        by_text.setdefault(f.where.text, []).append(f.metric)
    metrics = [joined(names) for names in by_text.values()]
    one = len(filters) == 1
    if len(by_text) == 1:
        what = f"{'metric' if one else 'metrics'} {metrics[0]}: where {next(iter(by_text))} keeps"
    else:
        what = f"metrics {joined([f'{names} (where {text})' for names, text in zip(metrics, by_text)])} keep"
    compared = _compared([f.where.node for f in filters], t)
    holds = [_holds(conn, table, dated, params, name, t.columns[name].column, t.columns[name].type)
             for name in compared]
    have = f" have {' and '.join(holds)}" if holds else ""
    kept = f" that {source_filter} keeps" if source_filter else ""
    return (f"{what} no row of {t.table!r} dated on or before the as-of date {as_of} (its {rows:,} rows{kept}{have}), so "
            f"{'it is' if one else 'they are'} empty or 0 for every customer; "
            f"{_fix(conn, t, table, dated, params, compared, _compared([f.where.node for f in others], t))}")


def _fix(conn: sqlite3.Connection, t: Table, table: str, dated: str, params: dict, compared: dict[str, list],
         elsewhere: dict[str, list]) -> str:
    """What the codes the filters compare text columns with tell: written otherwise in the data ('Complaint' for
    'complaint'), or absent from it.  When every code of the source's filters is absent (the data writes '投诉' where
    the policy has 'complaint'), the codes differ; when some are in the data (the policy's 'visit' is), the data
    uses the policy's codes, and an absent one may just not have happened yet."""
    missing, near, used = [], [], []
    for name, literals in compared.items():
        column = t.columns[name]
        if column.type in (NUMBER, DATE):
            continue
        texts = list(dict.fromkeys(v for v in literals + elsewhere.get(name, []) if isinstance(v, str)))
        absent = _absent(conn, table, dated, params, column.column, texts) if texts else []
        present = [repr(literal) for literal in texts if literal not in absent]
        if present:
            used.append(f"{name} {joined(present)}")
        absent = [v for v in dict.fromkeys(literals) if v in absent]
        if absent:
            missing.append(f"{name} {joined([repr(literal) for literal in absent], 'or')}")
            near += _spelled_otherwise(conn, table, dated, params, column.column, absent)
    if near:
        return (f"the data writes {', '.join(repr(v) for v, _ in near)} where the filter has "
                f"{', '.join(dict.fromkeys(repr(lit) for _, lit in near))} (other capitals or spaces): write the "
                f"filter as the data spells it")
    if missing and not used:
        return (f"no row has {joined(missing, 'or')}: the policy's codes and the data's differ; write the filter "
                f"with the data's codes, or map them to the policy's in a view")
    if missing:
        return (f"no row has {joined(missing, 'or')}, though the data writes {joined(used)} as the policy does: "
                f"expected if there is no such row yet; otherwise write the filter with the data's code")
    return "is the filter right for this data? (if no such row exists yet, this is expected)"


def _compared(nodes: list[ast.Node], t: Table) -> dict[str, list]:
    """The source's fields that ``nodes`` compare with a constant (a literal, a date(...)), and the literals
    compared with each, in the order written."""
    found: dict[str, list] = {}

    def field(n: ast.Node) -> str | None:
        if isinstance(n, ast.Call) and len(n.args) == 1:  # lower(kind) = 'complaint'
            n = n.args[0]
        return n.name if isinstance(n, ast.Name) and n.name in t.columns else None

    def constant(n: ast.Node) -> bool:
        return not ast.names_in(n)

    for n in (n for node in nodes for n in ast.walk(node)):
        pairs: list[tuple[ast.Node, list[ast.Node]]] = []
        if isinstance(n, ast.Compare):
            pairs = [(n.left, [n.right]), (n.right, [n.left])]
        elif isinstance(n, ast.InList):
            pairs = [(n.operand, list(n.items))]
        elif isinstance(n, ast.Between):
            pairs = [(n.operand, [n.low, n.high])]
        for side, others in pairs:
            name = field(side)
            if name is not None and all(constant(o) for o in others):
                found.setdefault(name, []).extend(o.value for o in others if isinstance(o, ast.Literal))
    return found


def _holds(conn: sqlite3.Connection, table: str, dated: str, params: dict, name: str, column: str, type_: str) -> str:
    """What the column holds in the rows up to the as-of date: its range for numbers and dates, its most frequent
    values for text ("kind '投诉', '拜访' and 3 more")."""
    col = f"r.{q(column)}"
    label = name if name == column else f"{name} ({column!r})"
    if type_ in (NUMBER, DATE):
        low, high = conn.execute(f"SELECT min({col}), max({col}) FROM {table} AS r WHERE {dated}", params).fetchone()
        if low is None:
            return f"no {label} (NULL in every row)"
        return f"{label} {_value(low)}" if low == high else f"{label} from {_value(low)} to {_value(high)}"
    found = conn.execute(f"SELECT v, count(*) OVER () FROM (SELECT {col} AS v, count(*) AS n FROM {table} AS r "
                         f"WHERE {dated} GROUP BY 1) ORDER BY n DESC, v LIMIT {VALUES}", params).fetchall()
    values = ", ".join(_value(v) for v, _ in found)
    more = found[0][1] - len(found) if found else 0
    return f"{label} {values}" + (f" and {more:,} more" if more else "")


def _absent(conn: sqlite3.Connection, table: str, dated: str, params: dict, column: str,
            literals: list[str]) -> list[str]:
    """The ``literals`` that no row up to the as-of date has in ``column``: the codes the data does not use."""
    marks = ", ".join(f":_lit{i}" for i in range(len(literals)))
    found = {value for (value,) in conn.execute(
        f"SELECT DISTINCT r.{q(column)} FROM {table} AS r WHERE {dated} AND r.{q(column)} IN ({marks})",
        {**params, **{f"_lit{i}": literal for i, literal in enumerate(literals)}})}
    return [literal for literal in literals if literal not in found]


def _spelled_otherwise(conn: sqlite3.Connection, table: str, dated: str, params: dict, column: str,
                       literals: list[str]) -> list[tuple[str, str]]:
    """(the data's value, the filter's literal) for values that differ from a literal only in capitals or spaces
    around it: 'Complaint' for 'complaint', which SQLite's = tells apart."""
    if not literals:
        return []
    col = f"r.{q(column)}"
    # keyed as SQLite lowers and trims them (ASCII letters, spaces), as the query compares them
    keys = {conn.execute("SELECT lower(trim(?))", (literal,)).fetchone()[0]: literal for literal in literals}
    marks = ", ".join(f":_lit{i}" for i in range(len(keys)))
    found = conn.execute(f"SELECT DISTINCT {col}, lower(trim({col})) FROM {table} AS r WHERE {dated} "
                         f"AND typeof({col}) = 'text' AND lower(trim({col})) IN ({marks}) LIMIT {VALUES}",
                         {**params, **{f"_lit{i}": key for i, key in enumerate(keys)}}).fetchall()
    return [(value, keys[key]) for value, key in found if value not in literals]


def _value(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.15g}"
