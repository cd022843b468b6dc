"""Open the user's database the way a run needs it.

Opening never creates a database by accident (a typo in ``--db`` must not
leave an empty file behind), and a file that is not SQLite is reported as
such rather than as a confusing SQL error later.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import DataError, UsageError
from .expr_sql import quote_identifier

BUSY_TIMEOUT_MS = 10_000


def _uri(path: Path, mode: str) -> str:
    return f"file:{quote(str(path.resolve()))}?mode={mode}"


def _check_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DataError(f"{path}: not a SQLite database ({exc})", hint="pass the path of a SQLite database file") from None


def connect(path: Path, *, mode: str = "rw", must_exist: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are begun explicitly."""
    path = Path(path)
    if must_exist and not path.is_file():
        if path.exists():
            raise UsageError(f"{path}: is not a file")
        raise UsageError(f"{path}: database not found", hint="check the --db path, or create one with `crm-rules demo`")
    try:
        conn = sqlite3.connect(_uri(path, mode), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.OperationalError as exc:
        raise DataError(f"{path}: cannot open database ({exc})") from None
    _check_sqlite(conn, path)
    return conn


@dataclass
class RunConnection:
    """One connection that reads the source schema and writes the results schema."""

    conn: sqlite3.Connection
    source_schema: str
    results_schema: str
    source_path: Path
    results_path: Path

    def close(self) -> None:
        self.conn.close()


def open_for_run(db: Path, results_db: Path | None = None, *, write: bool = True) -> RunConnection:
    """Source and results in one database, or results in a separate one (source opened read-only)."""
    if results_db is None:
        conn = connect(db, mode="rw" if write else "ro")
        return RunConnection(conn, "main", "main", Path(db), Path(db))
    source = connect(db, mode="ro")  # validates the source file before anything is created
    source.close()
    conn = connect(results_db, mode="rwc" if write else "ro", must_exist=not write)
    conn.execute(f"ATTACH DATABASE ? AS {quote_identifier('src')}", (_uri(Path(db), "ro"),))
    return RunConnection(conn, "src", "main", Path(db), Path(results_db))
