"""How a source table is read for its per-customer GROUP BY.

SQLite's default plan for ``GROUP BY customer_id`` on a table with an index
on customer_id walks that index and fetches every row from the table in index
order: one random page read per row.  On ten million orders that takes about
four times as long as reading the table front to back and sorting (measured
in bench/).  Only an index that holds every column the query reads (a
covering index) beats the scan, because then the table is never touched and
no sort is needed.  So: use a covering index when the user has one, else
forbid the index walk with NOT INDEXED.  ``crm-rules index`` proposes the
covering index.

Each sort runs on one thread on purpose: with ``PRAGMA threads`` the rows of
one customer reach SUM() in an order that depends on thread timing, so the
last bits of a floating-point sum (and with them a tie at a Pareto cut) could
differ between two runs on the same data.  A run must be reproducible.  The
cores are used instead by scanning different tables at the same time
(source_scans), which changes no sum.
"""

from __future__ import annotations

import sqlite3

from .expr_sql import quote_identifier as q


def covering_index(conn: sqlite3.Connection, schema: str, table: str, key: str, columns: set[str]) -> str | None:
    """Name of an index whose first column is ``key`` and that holds all of ``columns``, if any."""
    needed = {c.lower() for c in columns} | {key.lower()}
    for row in conn.execute(f"PRAGMA {q(schema)}.index_list({q(table)})").fetchall():
        name, partial = row[1], row[4] if len(row) > 4 else 0
        if partial:
            continue  # a partial index does not hold every row
        info = conn.execute(f"PRAGMA {q(schema)}.index_xinfo({q(name)})").fetchall()
        keyed = [r[2] for r in sorted(info, key=lambda r: r[0]) if r[5] and r[2] is not None]
        if keyed and keyed[0].lower() == key.lower() and needed <= {c.lower() for c in keyed}:
            return name
    return None


def from_clause(conn: sqlite3.Connection, schema: str, table: str, key: str, columns: set[str]) -> str:
    """``FROM`` clause (alias ``r``) with the fastest plan for a GROUP BY on ``key``."""
    source = f"{q(schema)}.{q(table)}"
    index = covering_index(conn, schema, table, key, columns)
    if index is not None:
        return f"FROM {source} AS r INDEXED BY {q(index)}"
    return f"FROM {source} AS r NOT INDEXED"
