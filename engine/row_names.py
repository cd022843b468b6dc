"""How a message names a row of the user's table: by its own key, never by the customer id many rows share."""

from __future__ import annotations

import sqlite3

from .expr_sql import quote_identifier as q


def row_column(conn: sqlite3.Connection, schema: str, table: str, key: str) -> str | None:
    """The column that tells a row of ``table`` from the others, to name a bad row by: the table's own
    one-column primary key (an INTEGER PRIMARY KEY is the rowid itself), else the rowid, else (a view, a
    WITHOUT ROWID table) a column named id; never ``key`` (the customer id, which many rows share), and
    None when there is nothing of the sort."""
    info = conn.execute(f"PRAGMA {q(schema)}.table_info({q(table)})").fetchall()
    pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
    if len(pk) == 1 and pk[0].lower() != key.lower():
        return pk[0]
    kind = conn.execute(f"SELECT type FROM {q(schema)}.sqlite_master WHERE name = ? COLLATE NOCASE", (table,)).fetchone()
    if kind is not None and kind[0] == "table":
        try:
            conn.execute(f"SELECT rowid FROM {q(schema)}.{q(table)} LIMIT 0")
            return "rowid"
        except sqlite3.OperationalError:  # WITHOUT ROWID
            pass
    named_id = [r[1] for r in info if r[1].lower() == "id" and r[1].lower() != key.lower()]
    return named_id[0] if named_id else None


def row_name(column: str, value) -> str:
    return f"rowid {value}" if column.lower() == "rowid" else f"row {column} {value!r}"
