"""Open the user's database the way a run needs it.

Opening never creates a database by accident (a typo in ``--db`` must not
leave an empty file behind), and a file that is not SQLite is reported as
such rather than as a confusing SQL error later.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import DataError, UsageError
from .expr_sql import quote_identifier

BUSY_TIMEOUT_MS = 10_000


def file_uri(path: Path, mode: str) -> str:
    """The URI SQLite opens ``path`` by in ``mode`` (ro, rw, rwc), whatever characters the path has."""
    return f"file:{quote(str(path.resolve()))}?mode={mode}"


def _check_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise DataError(f"{path}: the database is locked by another program",
                            hint="run again when the other program is done") from None
        raise DataError(f"{path}: cannot read the database ({exc})") from None
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
        conn = sqlite3.connect(file_uri(path, mode), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.OperationalError as exc:
        raise DataError(f"{path}: cannot open database ({exc})") from None
    _check_sqlite(conn, path)
    return conn


def table_columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str] | None:
    """The column names of a table or view of ``schema`` (temp included), or None when there is none."""
    row = conn.execute(
        f"SELECT 1 FROM {quote_identifier(schema)}.sqlite_master WHERE type IN ('table','view') AND name = ?", (table,)
    ).fetchone()
    if row is None:
        return None
    return [r[1] for r in conn.execute(f"PRAGMA {quote_identifier(schema)}.table_info({quote_identifier(table)})")]


def use_wal(conn: sqlite3.Connection, schema: str) -> None:
    """Switch ``schema`` to WAL so readers (BI tools, Datasette) keep reading while a run is written.

    The switch needs every other connection off the file, and SQLite answers
    "locked" at once instead of calling the busy handler; two runs finishing
    together would then fail. So the switch is retried for as long as any
    other wait for the database would last.
    """
    pragma = f"PRAGMA {quote_identifier(schema)}.journal_mode"
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while conn.execute(pragma).fetchone()[0].lower() != "wal":
        try:
            if conn.execute(f"{pragma} = WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if time.monotonic() > deadline:  # still held by another program: let the write report it as locked
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


# Actions that change a table, and which argument of the authorizer callback names the table.
_WRITES = {
    sqlite3.SQLITE_INSERT: 0, sqlite3.SQLITE_UPDATE: 0, sqlite3.SQLITE_DELETE: 0,
    sqlite3.SQLITE_CREATE_TABLE: 0, sqlite3.SQLITE_DROP_TABLE: 0, sqlite3.SQLITE_CREATE_VIEW: 0,
    sqlite3.SQLITE_DROP_VIEW: 0, sqlite3.SQLITE_CREATE_INDEX: 1, sqlite3.SQLITE_DROP_INDEX: 1,
    sqlite3.SQLITE_ALTER_TABLE: 1, sqlite3.SQLITE_CREATE_TRIGGER: 1, sqlite3.SQLITE_DROP_TRIGGER: 1,
}
_SQLITE_INTERNAL = ("sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_sequence")


def results_only_authorizer(schema: str) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    """An authorizer that lets the run write only its own crm_ tables (and temp tables) in ``schema``.

    The user's tables live in the same database when no --results-db is
    given; this makes writing them impossible for the connection, whatever
    SQL a policy or plugin manages to produce.
    """

    def authorize(action: int, arg1: str | None, arg2: str | None, dbname: str | None, _source: str | None) -> int:
        if action == sqlite3.SQLITE_ALTER_TABLE:
            dbname = arg1  # ALTER TABLE names its database in the first argument
        if action not in _WRITES or dbname != schema:
            return sqlite3.SQLITE_OK
        table = (arg1, arg2)[_WRITES[action]] or ""
        if table.startswith("crm_") or table in _SQLITE_INTERNAL:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize


@dataclass
class RunConnection:
    """One connection that reads the source schema and, once a run is written, the results schema."""

    conn: sqlite3.Connection
    source_schema: str
    results_schema: str
    source_path: Path
    results_path: Path
    results_attached: bool = True

    def attach_results(self) -> None:
        """A separate results database is created (if new) only when there is a run to write."""
        if not self.results_attached:
            self.conn.execute(f"ATTACH DATABASE ? AS {quote_identifier(self.results_schema)}",
                              (file_uri(self.results_path, "rwc"),))
            self.results_attached = True

    def results_exist(self) -> bool:
        """Whether results tables are already there (a failed run is only recorded next to earlier runs)."""
        if not self.results_attached and not self.results_path.exists():
            return False
        self.attach_results()
        return self.conn.execute(f"SELECT 1 FROM {quote_identifier(self.results_schema)}.sqlite_master "
                                 f"WHERE name = 'crm_runs'").fetchone() is not None

    @property
    def recorded_source(self) -> str:
        """The source database as a run records it: absolute, so that it is found from any directory."""
        return str(self.source_path.resolve())

    def close(self) -> None:
        self.conn.close()


def open_for_run(db: Path, results_db: Path | None = None, *, write: bool = True) -> RunConnection:
    """Source and results in one database, or results in a separate one (source opened read-only)."""
    if results_db is None:
        conn = connect(db, mode="rw" if write else "ro")
        if write:
            conn.set_authorizer(results_only_authorizer("main"))
        return RunConnection(conn, "main", "main", Path(db), Path(db))
    results_db = Path(results_db)
    if results_db.is_dir():
        raise UsageError(f"--results-db {results_db}: is a directory, expected a database file")
    if not results_db.parent.is_dir():
        raise UsageError(f"--results-db {results_db}: the directory {results_db.parent} does not exist",
                         hint="create it first, or give a path in an existing directory")
    if results_db.exists():
        connect(results_db, mode="rw").close()  # validates an existing results file up front
    conn = connect(db, mode="ro")  # the source, read-only; computing needs only temp tables
    return RunConnection(conn, "main", "results", Path(db), results_db, results_attached=False)
