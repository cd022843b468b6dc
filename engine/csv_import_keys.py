"""Which CSV lines broke a PRIMARY KEY or UNIQUE key of the table an import appends to.

SQLite only says "UNIQUE constraint failed: customers.id": not which row, not which value, not whether the
other row is in the file or already in the table.  With thousands of rows the user cannot find it.  Only an
append meets a key (a table ``import`` creates has none), and only a failed one needs to know, so nothing is
checked up front: once the insert has failed and been rolled back, the file's keys are loaded into a
temporary table (the temp schema: the database file is not touched) with the table's column types, and
SQLite itself finds the duplicates, with each key's own collation, so they are exactly the ones it refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import DataError
from .csv_reader import show

_SCRATCH = "temp._crm_import_keys"
_MAX_LISTED = 10
_BATCH_ROWS = 5_000


@dataclass(frozen=True)
class _Key:
    kind: str  # PRIMARY KEY or UNIQUE
    columns: list[tuple[str, str, str]]  # (column, declared type, collation)

    @property
    def names(self) -> str:
        names = [name for name, _, _ in self.columns]
        return names[0] if len(names) == 1 else f"({', '.join(names)})"


def duplicate_keys(conn: sqlite3.Connection, table: str, columns: list[str],
                   numbered_rows: Iterable[tuple[int, list[object]]], display: str) -> DataError | None:
    """The error naming the lines whose key is also on an earlier line or already in ``table``; None if none is.

    ``columns`` are the file's columns in its order, ``numbered_rows`` its rows as they are inserted, each with
    the line it starts on.  Any SQLite error here (a collation this connection lacks) gives None: the caller
    then reports SQLite's own message.
    """
    try:
        keys = _unique_keys(conn, table)
        if not keys:
            return None
        positions = {name.lower(): i for i, name in enumerate(columns)}
        needed = list(dict.fromkeys((name, kind) for key in keys for name, kind, _ in key.columns))
        if any(name.lower() not in positions for name, _ in needed):
            return None
        slot = {name: f"k{i}" for i, (name, _) in enumerate(needed)}
        conn.execute(f"DROP TABLE IF EXISTS {_SCRATCH}")
        conn.execute(f"CREATE TABLE {_SCRATCH} (line INTEGER, "
                     + ", ".join(f"{slot[name]} {_declared(kind)}" for name, kind in needed) + ")")
        picks = [positions[name.lower()] for name, _ in needed]
        insert = f"INSERT INTO {_SCRATCH} VALUES ({', '.join('?' * (len(needed) + 1))})"
        batch = []
        for line, row in numbered_rows:
            batch.append([line, *(row[i] for i in picks)])
            if len(batch) >= _BATCH_ROWS:
                conn.executemany(insert, batch)
                batch.clear()
        conn.executemany(insert, batch)
        problems, hit = [], []
        for key in keys:
            found = _within_file(conn, key, slot) + _in_table(conn, table, key, slot)
            problems += found
            hit += [key] if found else []
    except sqlite3.Error:
        return None
    finally:
        try:
            conn.execute(f"DROP TABLE IF EXISTS {_SCRATCH}")
        except sqlite3.Error:
            pass
    if not problems:
        return None
    problems = sorted(set(problems))
    lines = [f"{display}:{line}: {message}" for line, message in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"... and {len(problems) - _MAX_LISTED} more")
    n = len(problems)
    what = " and ".join(f"{key.kind} {key.names}" for key in hit)
    return DataError(
        "\n".join([f"cannot import {display}: {n} duplicate key{'s' if n != 1 else ''} in table {table!r} "
                   f"({what}), nothing was imported", *lines]),
        hint=f"table {table!r} may hold each {' and each '.join(key.names for key in hit)} only once: remove or "
             "correct the duplicate rows in the file; --append only adds rows, it never updates a row the table "
             "already has")


def _unique_keys(conn: sqlite3.Connection, table: str) -> list[_Key]:
    """The table's keys over plain columns: its PRIMARY KEY and UNIQUE constraints and unique indexes.

    A partial index or one over an expression is left out: its duplicates are not a plain comparison of values.
    """
    info = conn.execute("SELECT cid, name, type, pk FROM pragma_table_info(?)", (table,)).fetchall()
    declared = {cid: (name, kind) for cid, name, kind, _ in info}
    keys = []
    for index, unique, origin, partial in conn.execute(
            'SELECT name, "unique", origin, partial FROM pragma_index_list(?)', (table,)).fetchall():
        if not unique or partial:
            continue
        parts = conn.execute("SELECT cid, coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno",
                             (index,)).fetchall()
        if not parts or any(cid not in declared for cid, _ in parts):
            continue
        keys.append(_Key("PRIMARY KEY" if origin == "pk" else "UNIQUE",
                         [(*declared[cid], coll or "BINARY") for cid, coll in parts]))
    pk = [(name, kind) for _, name, kind, order in info if order]
    if len(pk) == 1 and pk[0][1].upper() == "INTEGER" and not any(key.kind == "PRIMARY KEY" for key in keys):
        keys.insert(0, _Key("PRIMARY KEY", [(*pk[0], "BINARY")]))  # the rowid itself: no index of its own
    return keys


def _declared(kind: str) -> str:
    """The declared type, so that the scratch column converts values with the same affinity as the table's."""
    return kind if kind and all(c.isalnum() or c in " _()," for c in kind) else ""


def _collate(collation: str) -> str:
    return 'COLLATE "' + collation.replace('"', '""') + '"'


def _within_file(conn: sqlite3.Connection, key: _Key, slot: dict[str, str]) -> list[tuple[int, str]]:
    cols = [slot[name] for name, _, _ in key.columns]
    partition = ", ".join(f"{c} {_collate(coll)}" for c, (_, _, coll) in zip(cols, key.columns))
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)  # NULLs never clash in a key
    found = conn.execute(
        f"SELECT line, first, {', '.join(cols)} FROM (SELECT line, {', '.join(cols)}, "
        f"min(line) OVER (PARTITION BY {partition}) AS first FROM {_SCRATCH} WHERE {present}) "
        "WHERE line <> first ORDER BY line").fetchall()
    return [(line, f"{key.names} {_value(values)} is also on line {first}") for line, first, *values in found]


def _in_table(conn: sqlite3.Connection, table: str, key: _Key, slot: dict[str, str]) -> list[tuple[int, str]]:
    cols = [slot[name] for name, _, _ in key.columns]
    same = " AND ".join(f't."{name.replace(chr(34), chr(34) * 2)}" = r.{c} {_collate(coll)}'
                        for c, (name, _, coll) in zip(cols, key.columns))
    present = " AND ".join(f"r.{c} IS NOT NULL" for c in cols)
    quoted = '"' + table.replace('"', '""') + '"'
    found = conn.execute(
        f"SELECT r.line, {', '.join('r.' + c for c in cols)} FROM {_SCRATCH} r WHERE {present} "
        f"AND EXISTS (SELECT 1 FROM main.{quoted} t WHERE {same}) ORDER BY r.line").fetchall()
    return [(line, f"{key.names} {_value(values)} is already in table {table!r}") for line, *values in found]


def _value(values: list[object]) -> str:
    shown = [show(v) if isinstance(v, str) else str(v) for v in values]
    return shown[0] if len(shown) == 1 else f"({', '.join(shown)})"
