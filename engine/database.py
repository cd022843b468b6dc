"""Open the user's database the way a run needs it.

Opening never creates a database by accident (a typo in ``--db`` must not
leave an empty file behind), and a file that is not SQLite is reported as
such rather than as a confusing SQL error later.  A damaged file (SQLite's
SQLITE_CORRUPT or SQLITE_NOTADB, wherever in the file and whenever a
statement or a row meets it) is a DataError naming the file and what to do,
for every command: the connections :func:`connect` opens report it so.
"""

from __future__ import annotations

import functools
import os
import shlex
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .errors import DamagedDatabaseError, DataError, UsageError
from .file_kinds import CSV, UTF16, XLS, XLSX, YAML, kind_of
from .expr_sql import quote_identifier
from .output_file import part_of_database, refuse_read_only
from . import wal_tidy

BUSY_TIMEOUT_MS = 10_000


def temp_dirs() -> list[str]:
    """The folders a run's temporary files go to: SQLite's work tables, then the worker processes' folders.

    A run writes nothing to the database while it computes, so a full disk then is one of these, which need
    not be the database's disk: SQLite picks its folder as its unix VFS does (SQLITE_TMPDIR, TMPDIR, then
    /var/tmp before /tmp), Python's tempfile another way (TMPDIR, then /tmp).  Named, the operator frees
    the right disk or points TMPDIR elsewhere, instead of moving the results with --results-db, which
    changes nothing.
    """
    workers = tempfile.gettempdir()
    if os.name == "nt":  # SQLite's Windows VFS asks GetTempPath, as tempfile does
        return [workers]
    sqlite = "."
    for folder in (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"), "/var/tmp", "/usr/tmp", "/tmp"):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            sqlite = folder
            break
    return list(dict.fromkeys([sqlite, workers]))


def file_uri(path: Path, mode: str) -> str:
    """The URI SQLite opens ``path`` by in ``mode`` (ro, rw, rwc), whatever characters the path has."""
    return f"file:{quote(str(path.resolve()))}?mode={mode}"


# The primary result codes of a damaged file (``sqlite_errorcode`` is the extended code, e.g. SQLITE_CORRUPT_INDEX),
# and their messages: a worker process's error comes back with its message alone (source_scans.wait_worker).
_DAMAGE_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_DAMAGE_MESSAGES = ("database disk image is malformed", "file is not a database", "malformed database schema")


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying a database file is damaged (corrupt pages, a broken header)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return type(exc) is sqlite3.DatabaseError and str(exc).startswith(_DAMAGE_MESSAGES)


def damaged(path: object, exc: BaseException, files: set[Path] | None = None) -> DamagedDatabaseError:
    """The error of a damaged database file ``path`` (as the user named it); its ``files`` are the resolved
    paths of the file (``files``: of the files, when it could not be told which of them)."""
    shown = shlex.quote(str(path))
    return DamagedDatabaseError(
        f"{path}: the database is damaged ({exc})",
        hint=f"check it with `sqlite3 {shown} \"PRAGMA integrity_check\"`; restore it from a backup, or save "
             f"what is still readable with `sqlite3 {shown} .recover | sqlite3 recovered.db`",
        files=frozenset(files if files is not None else {Path(str(path)).resolve()}))


def _damaged_file(conn: sqlite3.Connection) -> tuple[str, set[Path]]:
    """Which file of ``conn`` (main and attached) is damaged: as the user named it, and resolved.

    One file is the one.  Of several, each is checked (``quick_check``), smallest first, until one
    is found damaged: this runs only once a run or a reader has already failed."""
    names = getattr(conn, "files", {})
    files = [(name, file) for _, name, file in sqlite3.Cursor(conn).execute("PRAGMA database_list") if file]
    if len(files) > 1:
        files.sort(key=lambda f: Path(f[1]).stat().st_size if Path(f[1]).exists() else 0)
        for name, file in files:
            try:
                verdict = sqlite3.Cursor(conn).execute(f"PRAGMA {quote_identifier(name)}.quick_check(1)").fetchone()
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    continue
                verdict = (str(exc),)
            if verdict is not None and verdict[0] != "ok":
                files = [(name, file)]
                break
    return " or ".join(names.get(file, file) for _, file in files) or "the database", {Path(f) for _, f in files}


def _raise_if_damaged(conn: sqlite3.Connection, exc: sqlite3.DatabaseError) -> None:
    if is_damage(exc):
        shown, files = _damaged_file(conn)
        raise damaged(shown, exc, files) from None


def _reporting_damage(method: Callable) -> Callable:
    """``method`` of sqlite3.Cursor, raising the DataError of a damaged file (``damaged``) instead of SQLite's."""
    @functools.wraps(method)
    def reporting(self, *args):
        try:
            return method(self, *args)
        except sqlite3.DatabaseError as exc:
            _raise_if_damaged(self.connection, exc)
            raise
    return reporting


class _Cursor(sqlite3.Cursor):
    """A cursor whose statements and rows report a damaged file as a DataError naming it, not a traceback."""

    execute = _reporting_damage(sqlite3.Cursor.execute)
    executemany = _reporting_damage(sqlite3.Cursor.executemany)
    executescript = _reporting_damage(sqlite3.Cursor.executescript)
    fetchone = _reporting_damage(sqlite3.Cursor.fetchone)
    fetchmany = _reporting_damage(sqlite3.Cursor.fetchmany)
    fetchall = _reporting_damage(sqlite3.Cursor.fetchall)

    def __iter__(self):
        return self._rows()

    def _rows(self):
        # the plain fetchone per row (a Python __next__ would cost twice as much per row of a big export)
        try:
            yield from iter(functools.partial(sqlite3.Cursor.fetchone, self), None)
        except sqlite3.DatabaseError as exc:
            _raise_if_damaged(self.connection, exc)
            raise


class _Connection(sqlite3.Connection):
    """The connection of :func:`connect`: its cursors report a damaged file as a DataError naming the file.

    ``files`` maps each database file's resolved path to the path as the user gave it (for messages);
    ``read_only`` holds the files it reads read-only, whose -wal/-shm files closing tidies (wal_tidy)."""

    files: dict[str, str]
    read_only: list[str]

    def close(self):
        super().close()
        tidy, self.read_only = getattr(self, "read_only", []), []
        for key in tidy:
            wal_tidy.closed(key)

    def cursor(self, factory=None):
        return super().cursor(factory or _Cursor)

    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, parameters, /):
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script, /):
        return self.cursor().executescript(script)


def not_a_database(path: Path, exc: sqlite3.DatabaseError, option: str = "--db") -> DataError:
    """The error for a file SQLite cannot read as a database, saying what it is instead when that can be told.

    SQLite says "file is not a database" of a policy given as --db (the options swapped), of a CSV file or
    workbook meant to be imported first and of a CSV export named as --results-db; each gets its own fix.
    """
    kind = kind_of(path)
    load = "crm-rules import FILE.csv --db DATABASE.db --table NAME loads a CSV file into a database"
    fixes = {
        YAML: f"{option} names the SQLite database; a YAML policy goes to --policy/-p (were the two swapped?)",
        CSV: (f"{option} is the database the runs are written to; crm-rules export --format csv --out FILE writes "
              f"a run as CSV" if option == "--results-db" else load),
        XLSX: f"save each sheet as 'CSV UTF-8'; {load}",
        XLS: f"save each sheet as 'CSV UTF-8'; {load}",
        UTF16: f"save it as 'CSV UTF-8'; {load}",
    }
    hint = "pass the path of a SQLite database file"
    if kind not in fixes:
        return DataError(f"{path}: not a SQLite database ({exc})", hint=hint)
    return DataError(f"{path}: not a SQLite database but {kind.what}", hint=f"{hint}; {fixes[kind]}")


def _read_hint(path: Path, text: str) -> str | None:
    """Why SQLite would write to read: a database in WAL mode (each one crm-rules has written a run to) is read
    through its -shm file beside it, which SQLite creates, even for a reader, when it is not there.  The user
    cannot make the copy themselves: sqlite3 needs that -shm file as well."""
    if "readonly" not in text and "read-only" not in text:
        return None
    folder = path.resolve().parent
    copy = f"sqlite3 {shlex.quote(str(path))} \"VACUUM INTO '{path.stem}-copy.db'\""
    return (f"the database is in WAL mode: reading it needs its {path.name}-shm file in {folder}, which this user "
            f"cannot create or write; give the user write access to the folder (not necessarily to the file), or let "
            f"a user who can write it make a copy to read ({copy}: a copy is not in WAL mode, and reads from any "
            f"folder)")


def _check_sqlite(conn: sqlite3.Connection, path: Path, option: str = "--db") -> None:
    try:
        sqlite3.Cursor(conn).execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise DataError(f"{path}: the database is locked by another program",
                            hint="run again when the other program is done") from None
        raise DataError(f"{path}: cannot read the database ({exc})", hint=_read_hint(path, str(exc))) from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        if (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF == sqlite3.SQLITE_CORRUPT:  # NOTADB: not SQLite
            raise damaged(path, exc) from None
        raise not_a_database(path, exc, option) from None


def connect(path: Path, *, mode: str = "rw", must_exist: bool = True, option: str = "--db") -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are begun explicitly.

    ``option``: the command-line option ``path`` came from, for the hint when it does not exist."""
    path = Path(path)
    if must_exist and not path.is_file():
        if path.exists():
            raise UsageError(f"{path}: is not a file")
        hint = (f"check the {option} path, or create one with `crm-rules demo`" if option == "--db"
                else f"check the {option} path")
        raise UsageError(f"{path}: database not found", hint=hint)
    reading = wal_tidy.opening(path) if mode == "ro" else None
    try:
        conn = sqlite3.connect(file_uri(path, mode), uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                               factory=_Connection)
    except sqlite3.OperationalError as exc:
        if reading is not None:
            wal_tidy.closed(reading)
        raise DataError(f"{path}: cannot open database ({exc})") from None
    conn.files = {str(path.resolve()): str(path)}
    conn.read_only = [reading] if reading is not None else []
    _check_sqlite(conn, path, option)
    return conn


def attach_read_only(conn: sqlite3.Connection, path: Path, schema: str) -> None:
    """Attach ``path`` read-only to a connection of :func:`connect` as ``schema``; closing the connection
    tidies the -wal/-shm files reading it created, as for the main file (wal_tidy)."""
    path = Path(path)
    reading = wal_tidy.opening(path)
    try:
        conn.execute(f"ATTACH DATABASE ? AS {quote_identifier(schema)}", (file_uri(path, "ro"),))
    except BaseException:
        wal_tidy.closed(reading)
        raise
    conn.files[str(path.resolve())] = str(path)
    conn.read_only.append(reading)


def named_file(conn: sqlite3.Connection, schema: str = "main") -> str:
    """The file of ``schema`` as the user named it (a connection of :func:`connect`), else its full path: for
    messages that must say which database they looked in.  ``schema`` may be quoted (as in SQL)."""
    if schema.startswith('"') and schema.endswith('"'):
        schema = schema[1:-1].replace('""', '"')
    for _, name, file in sqlite3.Cursor(conn).execute("PRAGMA database_list"):
        if name == schema:
            return getattr(conn, "files", {}).get(file, file) or schema
    return schema


def table_columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str] | None:
    """The column names of a table or view of ``schema`` (temp included), or None when there is none.

    SQLite's names are case-insensitive (ASCII letters only, as NOCASE compares): `Customers` is `customers`."""
    row = conn.execute(
        f"SELECT 1 FROM {quote_identifier(schema)}.sqlite_master WHERE type IN ('table','view') "
        f"AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    if row is None:
        return None
    return [r[1] for r in conn.execute(f"PRAGMA {quote_identifier(schema)}.table_info({quote_identifier(table)})")]


def use_wal(conn: sqlite3.Connection, schema: str) -> bool:
    """Switch ``schema`` to WAL so readers (BI tools, Datasette) keep reading while a run is written.

    The switch needs every other connection off the file, readers included (a
    read transaction holds a shared lock of a rollback-journal database), and
    SQLite answers "locked" at once instead of calling the busy handler; two
    runs finishing together would then fail. So the switch is retried for as
    long as any other wait for the database would last.  Whether ``schema``
    is in WAL mode now: if not, another program still has the file in a
    transaction, and a reader's shared lock will hold the commit up too.
    """
    pragma = f"PRAGMA {quote_identifier(schema)}.journal_mode"
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while conn.execute(pragma).fetchone()[0].lower() != "wal":
        try:
            if conn.execute(f"{pragma} = WAL").fetchone()[0].lower() == "wal":
                return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
        if time.monotonic() > deadline:  # still held by another program: let the write report it as locked
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
    return True


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
    SQL a policy or plugin manages to produce.  A table of the user's that has
    a results table's name is found before a run writes (results_store.check_own_tables).
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
    results_wal: bool | None = None  # whether use_wal got the results into WAL mode (None: not tried yet)

    def attach_results(self) -> None:
        """A separate results database is created (if new) only when there is a run to write."""
        if not self.results_attached:
            try:  # a plain cursor: the file that fails to attach is not in the connection's list yet
                sqlite3.Cursor(self.conn).execute(f"ATTACH DATABASE ? AS {quote_identifier(self.results_schema)}",
                                                  (file_uri(self.results_path, "rwc"),))
            except sqlite3.DatabaseError as exc:
                if is_damage(exc):
                    raise damaged(self.results_path, exc) from None
                raise
            getattr(self.conn, "files", {})[str(self.results_path.resolve())] = str(self.results_path)
            self.results_attached = True

    def results_exist(self) -> bool:
        """Whether results tables are already there (a failed run is only recorded next to earlier runs)."""
        if not self.results_attached and not self.results_path.exists():
            return False
        self.attach_results()
        return self.conn.execute(f"SELECT 1 FROM {quote_identifier(self.results_schema)}.sqlite_master "
                                 f"WHERE type = 'table' AND name = 'crm_runs'").fetchone() is not None

    @property
    def recorded_source(self) -> str:
        """The source database as a run records it: absolute, so that it is found from any directory."""
        return str(self.source_path.resolve())

    def close(self) -> None:
        self.conn.close()


def _refuse_unwritable(path: Path, option: str) -> None:
    """A run's results database must be writable before the run computes (minutes on a large database), not
    found read-only when it writes.  An existing file its owner made read-only is refused as an --out file is
    (the mode bits count for root too); a new one needs a folder this user can write, where SQLite said only
    "unable to open database: file:...?mode=rwc"."""
    in_place = option == "--db"  # the runs go into the data's own database
    other = ("write the runs to another database with --results-db FILE" if in_place
             else "give another --results-db")
    if path.exists():
        refuse_read_only(path, option, hint=f"make it writable (chmod u+w {shlex.quote(str(path))}), or {other}")
        return
    folder = path.resolve().parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{option} {path}: cannot create it in {folder}, which this user cannot write; nothing was "
                        f"written", hint=f"make the folder writable, or {other} in a folder you can write")


def open_for_run(db: Path, results_db: Path | None = None, *, write: bool = True) -> RunConnection:
    """Source and results in one database, or results in a separate one (source opened read-only)."""
    if results_db is None:
        if write and Path(db).is_file():  # (before a connection that may write: it would leave -wal/-shm files)
            _refuse_unwritable(Path(db), "--db")
        conn = connect(db, mode="rw" if write else "ro")
        if write:
            conn.set_authorizer(results_only_authorizer("main"))
        return RunConnection(conn, "main", "main", Path(db), Path(db))
    results_db = Path(results_db)
    if part := part_of_database(results_db, db):  # its -wal, -shm or -journal file: SQLite removes or rewrites it
        raise UsageError(f"--results-db {results_db} is {part}the --db database ({db})",
                         hint="give a database file of its own for the results, e.g. --results-db results.db, or "
                              "leave --results-db out to keep them in the --db database")
    if results_db.is_dir():
        raise UsageError(f"--results-db {results_db}: is a directory, expected a database file")
    if not results_db.parent.is_dir():
        raise UsageError(f"--results-db {results_db}: the directory {results_db.parent} does not exist",
                         hint="create it first, or give a path in an existing directory")
    if write:
        _refuse_unwritable(results_db, "--results-db")
    if results_db.exists():
        connect(results_db, mode="rw", option="--results-db").close()  # validates an existing results file up front
    conn = connect(db, mode="ro")  # the source, read-only; computing needs only temp tables
    return RunConnection(conn, "main", "results", Path(db), results_db, results_attached=False)
