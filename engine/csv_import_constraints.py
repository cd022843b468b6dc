"""The lines of a CSV file that a table's constraints refuse (NOT NULL, CHECK, FOREIGN KEY), named for the user.

SQLite's message ("NOT NULL constraint failed: orders.customer_id") says which
rule, not which of a hundred thousand lines broke it.  After an append fails,
the rows are inserted again one at a time in a transaction that is rolled back,
so the lines come with the message: only on that failure, never on the way in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .errors import DataError

EXAMPLES = 3


def refused_lines(conn: sqlite3.Connection, table: str, columns: list[str],
                  numbered_rows: Iterable[tuple[int, list[object]]], display: str) -> DataError | None:
    """The error naming the first lines the table refuses and how many it refuses in all; None if it takes
    every line one at a time (the failure was another one, which the caller reports as SQLite gave it)."""
    names = ", ".join(_quote(name) for name in columns)
    insert = f"INSERT INTO {_quote(table)} ({names}) VALUES ({', '.join('?' for _ in columns)})"
    shown: list[str] = []
    rules: dict[str, None] = {}
    total = 0
    try:
        conn.execute("BEGIN")
        for line, row in numbered_rows:
            conn.execute("SAVEPOINT crm_row")
            try:
                conn.execute(insert, row)
            except sqlite3.IntegrityError as exc:
                total += 1
                rules.setdefault(_rule(str(exc)))
                if len(shown) < EXAMPLES:
                    shown.append(f"{display}:{line}: {exc}{_empty(str(exc), columns, row)}")
            conn.execute("ROLLBACK TO crm_row")
            conn.execute("RELEASE crm_row")
    except sqlite3.Error:
        return None
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    if not total:
        return None
    more = f"\n  ... and {total - len(shown):,} more ({total:,} lines in all)" if total > len(shown) else ""
    return DataError(f"table {table!r} refuses {total:,} line(s) of {display}; nothing was imported:\n  "
                     + "\n  ".join(shown) + more, hint=_hint(rules, table))


def _rule(message: str) -> str:
    """'NOT NULL', 'CHECK', 'FOREIGN KEY', 'UNIQUE' or the message itself."""
    return next((rule for rule in ("NOT NULL", "CHECK", "FOREIGN KEY", "UNIQUE") if message.startswith(rule)), message)


def _empty(message: str, columns: list[str], row: list[object]) -> str:
    """" (the line has no 'cid')" for a NOT NULL failure of a column the line leaves empty."""
    if not message.startswith("NOT NULL"):
        return ""
    column = message.rsplit(".", 1)[-1]
    position = next((i for i, name in enumerate(columns) if name.lower() == column.lower()), None)
    return f" (the line has no {column!r})" if position is not None and row[position] is None else ""


def _hint(rules: dict[str, None], table: str) -> str:
    advice = {
        "NOT NULL": "fill in the empty values the table requires",
        "CHECK": f"correct the values the table's CHECK constraint refuses (its CREATE TABLE shows it: .schema {table})",
        "FOREIGN KEY": "add the rows these lines refer to first (e.g. the customers), or correct the references",
        "UNIQUE": "remove the lines whose key is already taken",
    }
    return "; ".join(advice.get(rule, f"correct the lines ({rule})") for rule in rules) + ", then import again"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
