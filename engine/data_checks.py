"""Checks of the user's data that a run cannot do without.

SQLite reads 'abc' as 0 and skips a row whose date is NULL without a word;
a grade computed from such data would look fine and be wrong.  Each source's
rows are checked by a scan that runs beside the metrics' scans (source_scans),
and answers yes or no; only when it finds something do we look up examples
to show.
"""

from __future__ import annotations

import sqlite3

from .data_binding import Binding
from .data_mapping import WINDOW_FIELD
from .database import RunConnection
from .errors import DataError
from .expr_sql import quote_identifier as q
from .expr_types import DATE
from .metric_sql import BAD_ROWS, CID, MetricPlan, bad_date_sql, matched_column
from .policy_model import Policy

EXAMPLES = 3


def _fail(problems: list[str], hint: str) -> None:
    if problems:
        raise DataError("the data cannot be used as it is:\n  - " + "\n  - ".join(problems), hint=hint)


def check_customers(rc: RunConnection, policy: Policy, binding: Binding) -> None:
    """Before any metric: the customers table has rows, ids, and readable date attributes."""
    conn, cust = rc.conn, policy.data.customers
    table, key = binding.table(cust.table), q(cust.key)
    if conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
        raise DataError(f"the customers table {cust.table!r} is empty: there is nobody to grade",
                        hint="import your customers first (crm-rules import customers.csv --db ... --table customers)")
    problems = []
    missing = conn.execute(f"SELECT count(*) FROM {table} WHERE {key} IS NULL").fetchone()[0]
    if missing:
        problems.append(f"table {cust.table!r}: {missing} customer(s) have no id (column {cust.key!r})")
    for name, column in binding.attributes.items():
        if column.type != DATE:
            continue
        for cid, value in conn.execute(f"SELECT {key}, {q(column.column)} FROM {table} "
                                       f"WHERE {bad_date_sql(q(column.column))} LIMIT {EXAMPLES}"):
            problems.append(f"table {cust.table!r}, column {column.column!r} (attribute {name!r}): "
                            f"{value!r} (customer {cid}) is not a YYYY-MM-DD date")
    _fail(problems, "fix the rows (dates as text 'YYYY-MM-DD'), or map the attribute to another column")


def check_rows(rc: RunConnection, policy: Policy, binding: Binding, plan: MetricPlan, as_of: str) -> list[str]:
    """After the scans: no unreadable rows, ids are unique (then the per-customer table has its index by
    id), and every row's customer exists.

    Returns notes on data that a run can use but that point to a mistyped ``--as-of``: a year too early
    grades everyone on nothing, or customers before they joined, and the run looks as valid as any other.
    """
    conn, problems = rc.conn, []
    for source, table in plan.checks.items():
        if not conn.execute(f"SELECT total({BAD_ROWS}) FROM {table}").fetchone()[0]:
            continue
        t = policy.data.sources[source]
        for column, what, sql in plan.problems[source]:
            rows = conn.execute(f"SELECT r.{q(t.key)}, r.{q(column)} FROM {binding.table(t.table)} AS r "
                                f"WHERE {sql} LIMIT {EXAMPLES}").fetchall()
            for cid, value in rows:
                if what.startswith("has no"):
                    problems.append(f"table {t.table!r}, column {column!r}: empty (NULL) for customer {cid}; "
                                    f"every row needs {what[len('has no '):]}" if cid is not None else
                                    f"table {t.table!r}, column {column!r}: empty (NULL); every row needs {what[len('has no '):]}")
                else:
                    problems.append(f"table {t.table!r}, column {column!r}: {value!r} (customer {cid}) {what}")
    _fail(problems, "store dates as text 'YYYY-MM-DD' and numbers as numbers: fix or remove these rows, or re-import them")
    try:  # the index explain and overrides find a customer by; building it is the check, the examples come after
        conn.execute(plan.key_index().sql)
    except sqlite3.IntegrityError:
        dupes = conn.execute(f"SELECT {CID}, count(*) FROM {plan.table} GROUP BY {CID} HAVING count(*) > 1 "
                             f"LIMIT {EXAMPLES}").fetchall()
        ids = ", ".join(f"{d[0]!r} ({d[1]} times)" for d in dupes)
        raise DataError(f"customer ids are not unique in table {policy.data.customers.table!r}: {ids}",
                        hint=f"make data.customers.id name a column whose values are unique (now {policy.data.customers.key!r})"
                        ) from None
    customers = binding.table(policy.data.customers.table)
    key = q(policy.data.customers.key)
    # Ids are unique now, so an aggregate has a row of an unknown customer exactly when it has more rows
    # than the customers the join found in it: one pass over the customers instead of a lookup per row.
    sources = list(plan.aggregates)
    # The same pass counts the customers who joined after the as-of date (a "since" later than it).
    since = [f"total({q('since')} > :as_of)"] if "since" in plan.attributes else []
    found = list(conn.execute(f"SELECT {', '.join([f'total({q(matched_column(s))})' for s in sources] + since)} "
                              f"FROM temp.{q(plan.base)}", {"as_of": as_of}).fetchone() if sources or since else ())
    notes = []
    if since and (joined_later := int(found.pop())):
        notes.append(f"{joined_later:,} customer(s) joined after the as-of date {as_of} (their "
                     f"{binding.attributes['since'].column!r} is later): they are graded before they existed, "
                     f"with a negative tenure; is --as-of right?")
    empty = []  # tables with rows of which the as-of cut left none (rows of unknown customers would be left)
    for source, matched in zip(sources, found):
        table = plan.aggregates[source]
        t = policy.data.sources[source]
        if not matched and plan.sources[source].rows:
            empty.append(f"{t.table!r} (by {t.columns[WINDOW_FIELD[source]].column})")
        if conn.execute(f"SELECT count({CID}) FROM {table}").fetchone()[0] == matched:
            continue
        orphans = conn.execute(f"SELECT a.{CID} FROM {table} AS a WHERE a.{CID} IS NOT NULL AND NOT EXISTS "
                               f"(SELECT 1 FROM {customers} AS c WHERE c.{key} = a.{CID}) LIMIT {EXAMPLES + 1}").fetchall()
        if orphans:
            ids = ", ".join(repr(o[0]) for o in orphans[:EXAMPLES]) + (", ..." if len(orphans) > EXAMPLES else "")
            problems.append(f"table {t.table!r} has rows for customers that are not in {policy.data.customers.table!r}: {ids}")
    _fail(problems, "add the missing customers, or remove their rows (a typo in an id?)")
    if empty:
        notes.append(f"no row of {', '.join(sorted(empty))} is dated on or before the as-of date {as_of}: "
                     f"{'its' if len(empty) == 1 else 'their'} metrics are empty for every customer; is --as-of right?")
    return notes
