"""A command that only reads a database leaves the database's folder as it found it.

``apply`` keeps the database in WAL mode (database.use_wal).  Reading a WAL database
needs its ``-wal`` and ``-shm`` files, so a read-only connection (``mode=ro``) creates
them when they are missing; but only a connection that may write can remove them: on
closing, the last connection to the file checkpoints the (empty) log and deletes both.
A read-only connection leaves them behind, and ``explain``, ``runs`` or ``export`` would
leave two new files next to the user's ``crm.db``.

Reading stays read-only here (the connection that reads can never write the file).  When
the last of this process's read-only connections to a file closes, and the files were not
there when the first of them opened, a connection that may write opens the file, reads
one value and closes: SQLite's own close then removes the files, or keeps them while any
other program has the database open (they are then that program's).  An empty log
writes nothing to the database, so its bytes stay as they were.  Files that were there
before are left alone: they may be another program's, or hold its changes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

COMPANIONS = ("-wal", "-shm")

_lock = threading.Lock()
_open: Counter[str] = Counter()  # this process's read-only connections, per database file (resolved)
_ours: set[str] = set()  # files that had no -wal/-shm when the first of those connections opened


def _companions_exist(key: str) -> bool:
    return any(Path(key + suffix).exists() for suffix in COMPANIONS)


def opening(path: Path) -> str:
    """Call before opening ``path`` read-only; pass what it returns to :func:`closed` once the connection is closed."""
    key = str(Path(path).resolve())
    with _lock:
        if _open[key] == 0 and not _companions_exist(key):
            _ours.add(key)
        _open[key] += 1
    return key


def closed(key: str) -> None:
    """A read-only connection to ``key`` (from :func:`opening`) is closed: the last one lets SQLite remove the
    -wal/-shm files that reading created."""
    with _lock:
        _open[key] -= 1
        if _open[key] > 0:
            return
        del _open[key]
        if key not in _ours:
            return
        _ours.discard(key)
        if _companions_exist(key):
            _let_sqlite_remove(key)


def _let_sqlite_remove(key: str) -> None:
    """Open ``key`` as a connection that may write, read, and close: SQLite removes the -wal and -shm files when
    that connection is the last one to the database.  Best effort: what stays is what any reader leaves."""
    from .database import file_uri  # (database imports this module)

    try:
        conn = sqlite3.connect(file_uri(Path(key), "rw"), uri=True, isolation_level=None, timeout=1)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # a read opens the log: only then does closing remove it
    except sqlite3.Error:
        pass
    finally:
        conn.close()
