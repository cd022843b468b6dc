"""A source's row filter, ``data.<source>.where``: which rows of a table exist to the policy.

ERP tables keep cancelled orders, void invoices and deleted interactions beside the live ones, flagged in a
status column.  A metric's ``where`` filters one metric; the source's filter applies to every metric of the source
at once (the policy's, the shipped ones it inherits, a plugin's helper metrics) without a view in the user's
database, which some cannot create and whose rows have no rowid to name in a data problem.

A row is dropped only when the condition is false.  ``status != '已取消'`` is NULL for a row without a status, and
SQL's WHERE would drop it silently: a user reads the filter as "leave out the cancelled ones", so a row the
condition cannot decide is kept (``coalesce(condition, 1)``).  Who wants such rows out says so:
``status is not null and status != '已取消'``.

Everything that reads a source's rows takes the filter from here: the scans and row checks (metric_sql), the
notes on metrics' filters (filter_notes) and on the rows dropped (data_checks), the largest rows of an overflowing
sum (number_overflow), explain's count of a customer's dropped rows, and the report's aging of receivables.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .data_mapping import WINDOW_FIELD, Table
from .expr_ast import names_in
from .expr_parser import parse_expression
from .expr_sql import SqlParams, quote_identifier as q, to_sql


@dataclass(frozen=True)
class RowFilter:
    """A source's filter compiled for its rows (alias ``r`` unless told otherwise)."""

    source: str
    text: str  # as the policy writes it
    sql: str  # true for a row the filter keeps (true or NULL condition), with ``params``
    params: dict
    columns: frozenset[str]  # the table's columns it reads

    @property
    def path(self) -> str:
        return f"data.{self.source}.where"

    def drops(self) -> str:
        """SQL true for a row the filter drops."""
        return f"NOT {self.sql}"

    def shown(self, sql: str, dates: dict | None = None) -> str:
        """``sql`` (which may contain this filter) as a query a user can paste into sqlite3: see written_out."""
        return written_out(sql, {**self.params, **(dates or {})})


def compile_filter(table: Table, resolve: Callable[[str], str] | None = None, alias: str | None = "r") -> RowFilter | None:
    """The filter of source ``table`` (None without one); ``resolve``: the SQL of a logical column, by default the
    column of ``alias`` (or bare, for ``alias=None``).

    Its literals get parameters of their own (``ow0`` for orders), so that adding the filter to a statement changes
    no other placeholder of it.
    """
    if table.where is None:
        return None
    node = table.where.node

    def column(name: str) -> str:
        col = q(table.columns[name].column)
        return f"{alias}.{col}" if alias else col

    params = SqlParams(prefix=f"{table.concept[0]}w")
    condition = to_sql(node, resolve or column, params)
    return RowFilter(table.concept, table.where.text, f"coalesce({condition}, 1)", dict(params.values),
                     frozenset(table.columns[n].column for n in names_in(node) if n in table.columns))


def from_document(table: Table, section: Any) -> Table:
    """``table`` with the filter a stored policy document writes for it (the run checked it when it ran)."""
    from .policy_model import Expr  # policy_model parses and checks filters of policies being loaded

    spec = section.get(table.concept) if isinstance(section, dict) else None
    text = spec.get("where") if isinstance(spec, dict) else None
    if isinstance(text, str):
        table.where = Expr(text, parse_expression(text), ("data", table.concept, "where"))
    return table


_PLACEHOLDER = re.compile(r"(\"(?:[^\"]|\"\")*\"|'(?:[^']|'')*')|:([A-Za-z_][A-Za-z0-9_]*)")


def written_out(sql: str, params: dict) -> str:
    """``sql`` with its named parameters written as SQL literals: a query shown to a user to list rows must run
    as it stands.  Only for showing: the engine binds every value.  Quoted identifiers and strings of the engine's
    SQL are passed over, so a column named ``"a:b"`` stays as it is."""
    def literal(match: re.Match) -> str:
        if match.group(1) is not None or match.group(2) not in params:
            return match.group(0)
        return sql_literal(params[match.group(2)])

    return _PLACEHOLDER.sub(literal, sql)


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    return "'" + str(value).replace("'", "''") + "'"


def dropped_note(rf: RowFilter, table: str, dropped: int, rows: int, as_of: str) -> str:
    """The run's note on what a source's filter dropped, counted in the scan that checks its rows."""
    what = f"{rf.path} ({rf.text})"
    of = f"the {rows:,} rows of {table!r} dated on or before the as-of date {as_of}"
    if not rows:
        return f"{what} had no row of {table!r} to filter: none is dated on or before the as-of date {as_of}"
    if not dropped:
        return (f"{what} drops none of {of}: expected if there is no such row; otherwise write the filter with the "
                f"data's codes")
    if dropped == rows:
        return (f"{what} drops every one of {of}: every metric over {table!r} is empty or 0 for every customer; "
                f"is the filter the right way round?")
    return f"{what} drops {dropped:,} of {of}; the metrics read the other {rows - dropped:,}"


def customer_rows(conn: sqlite3.Connection, sources: dict[str, Table], table_sql: Callable[[str], str], key: Any,
                  as_of: str) -> list[dict]:
    """For explain: per filtered source, the customer's rows dated on or before ``as_of`` and how many of them the
    filter drops (a lookup by the source's customer column); None for both when the table has no index to find
    them by and is too big to read whole (MAX_SCANNED_ROWS)."""
    from .metric_sql import approximate_rows  # (metric_sql compiles the filters with this module)

    out = []
    as_of_next = conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]
    for source, t in sources.items():
        rf = compile_filter(t)
        if rf is None:
            continue
        dated = f"r.{q(t.columns[WINDOW_FIELD[source]].column)} < :as_of_next"
        sql = (f"SELECT count(*), count(CASE WHEN {rf.drops()} THEN 1 END) FROM {table_sql(t.table)} AS r "
               f"WHERE r.{q(t.key)} = :_customer AND {dated}")
        params = {**rf.params, "_customer": key, "as_of": as_of, "as_of_next": as_of_next}
        entry = {"source": source, "table": t.table, "where": rf.text, "rows": None, "dropped": None}
        if _looked_up(conn, sql, params) or approximate_rows(conn, table_sql(t.table)) <= MAX_SCANNED_ROWS:
            entry["rows"], entry["dropped"] = conn.execute(sql, params).fetchone()
        out.append(entry)
    return out


#: explain counts a customer's rows of a table without an index on its customer column up to this size: a scan
#: of it takes about a tenth of a second; explain of one customer answers in under a second at any size.
MAX_SCANNED_ROWS = 500_000


def _looked_up(conn: sqlite3.Connection, sql: str, params: dict) -> bool:
    """Whether SQLite finds the rows of ``sql`` through an index rather than by reading the whole table."""
    steps = [str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    return (any(step.startswith("SEARCH") for step in steps)
            and not any(step.startswith("SCAN") or "AUTOMATIC" in step for step in steps))
