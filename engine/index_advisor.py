"""``crm-rules index``: propose covering indexes and measure what they gain.

A run computes one ``GROUP BY customer`` per source table.  Without help the
engine reads each table front to back and sorts it (see scan_plan.py); a
*covering* index (customer key first, then every column the run reads) lets
SQLite walk the index alone, already in customer order, which is the fastest
plan there is.  Which columns a run reads depends on the policy, so the
advisor compiles the policy exactly as a run does, and times the very
statement the run would execute, without and with the proposed index.

Measuring needs the index to exist.  The whole advice is one transaction:
each proposed index is built inside a savepoint of it, timed, and rolled
back to the savepoint unless ``--create`` asks to keep it because it helps.
At the end the transaction is committed only when ``--create`` kept an
index, else rolled back.  So the database changes all at once or not at
all: a failure, a lock or Ctrl-C partway leaves it exactly as it was, and
"nothing was changed" is then true.  (Committing each index on its own would
keep a part of them after a failure, for a user to find and drop by hand.)
The connection's authorizer lets it create only indexes named
``crm_rules_*`` and change nothing else.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .data_binding import bind
from .database import connect
from .errors import CrmRulesError, DataError, RunError
from .expr_sql import quote_identifier as q
from .metric_sql import RunDates, SourceAggregation, compile_metrics
from .policy_model import Policy
from .runner import TEMP_CACHE_KIB
from .scan_plan import covering_index
from .user_text import joined

INDEX_PREFIX = "crm_rules_"
MIN_SPEEDUP = 1.1  # below this an index costs disk space and write time for a gain within timing noise
QUICK_SECONDS = 0.2  # statements faster than this are timed five times, slower ones three ...
SLOW_SECONDS = 2.0  # ... and from this on once: a big table is read once per measurement, not five times
SAVEPOINT = "crm_rules_measure"


class IndexAdviceInterrupted(RunError):
    """Ctrl-C during ``crm-rules index``: said with what was (not) changed, and the exit code of an interrupt."""

    exit_code = 130


@dataclass
class SourceAdvice:
    """What the advisor found and measured for one source table (also the JSON shape)."""

    source: str
    table: str
    key: str
    columns: list[str]  # every column the run reads, key first
    rows: int | None = None
    existing_index: str | None = None  # a covering index the engine uses already
    proposed_index: str | None = None
    proposed_sql: str | None = None
    seconds_now: float | None = None
    seconds_with_index: float | None = None
    speedup: float | None = None
    build_seconds: float | None = None
    index_bytes: int | None = None
    helps: bool = False
    created: bool = False
    plan_now: str = ""
    notes: list[str] = field(default_factory=list)


# ---- what a run reads --------------------------------------------------------


def _aggregations(conn: sqlite3.Connection, policy: Policy, dates: RunDates) -> dict[str, SourceAggregation]:
    """source -> the aggregation a run executes for it, compiled now.

    Compiled afresh each time: the engine picks its plan (``NOT INDEXED`` or
    ``INDEXED BY`` a covering index) from the indexes present when it compiles.
    """
    return compile_metrics(policy, bind(conn, "main", policy), dates).sources


# What changes the main database.  A run's authorizer (results_only_authorizer) lets a run write its crm_ tables;
# this connection may not even do that: the user's runs (crm_runs, crm_assignments, ...) are theirs to keep.
_MAIN_CHANGES = {
    sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_REINDEX, sqlite3.SQLITE_ANALYZE, sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE,
}
_SCHEMA_TABLES = ("sqlite_master", "sqlite_schema")  # where CREATE INDEX records the index


def _authorizer():
    """The connection's authorizer: may create ``crm_rules_*`` indexes in main and temp tables, nothing else."""

    def authorize(action, arg1, arg2, dbname, source):
        if action == sqlite3.SQLITE_ALTER_TABLE:
            dbname = arg1  # ALTER TABLE names its database in the first argument
        if action not in _MAIN_CHANGES or dbname != "main":
            return sqlite3.SQLITE_OK  # reads, pragmas, transactions, the temp schema
        if action in (sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_REINDEX):  # CREATE INDEX asks for both
            return sqlite3.SQLITE_OK if (arg1 or "").startswith(INDEX_PREFIX) else sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE) and (arg1 or "").lower() in _SCHEMA_TABLES:
            return sqlite3.SQLITE_OK  # SQLite's own record of the index (SQL cannot write these tables)
        return sqlite3.SQLITE_DENY

    return authorize


def _index_columns(agg: SourceAggregation, key: str) -> list[str]:
    """The columns the statement reads in the index's order: key first, then the others sorted."""
    others = {c for c in agg.columns if c.lower() != key.lower()}
    return [key] + sorted(others, key=lambda c: (c.lower(), c))


def _params(agg: SourceAggregation, dates: RunDates | None) -> dict:
    values = {"as_of": dates.as_of if dates else None, "as_of_next": dates.as_of_next if dates else None}
    return {**agg.statement.params, **values}


def _plan(conn: sqlite3.Connection, agg: SourceAggregation, dates: RunDates) -> str:
    """SQLite's query plan of the statement, e.g. 'SCAN r USING COVERING INDEX x' (shows what the engine uses)."""
    rows = conn.execute(f"EXPLAIN QUERY PLAN {agg.statement.sql}", _params(agg, dates)).fetchall()
    return "; ".join(r[3] for r in rows)


# ---- measuring ---------------------------------------------------------------


def _run_once(conn: sqlite3.Connection, agg: SourceAggregation, dates: RunDates) -> float:
    conn.execute(f"DROP TABLE IF EXISTS {agg.target}")
    start = time.perf_counter()
    conn.execute(agg.statement.sql, _params(agg, dates))
    elapsed = time.perf_counter() - start
    conn.execute(f"DROP TABLE {agg.target}")
    return elapsed


def time_statement(conn: sqlite3.Connection, agg: SourceAggregation, dates: RunDates) -> float:
    """Seconds of the statement: the fastest of five runs when it is quick, three when moderate, one when slow.

    The fastest, not the mean: other programs on the machine only ever add
    time.  A single run of a quick statement is mostly noise; repeating a
    slow one (a ten-million-row table) would make the advice take minutes.
    """
    return time_statements(conn, [agg], dates)[0]


def time_statements(conn: sqlite3.Connection, aggs: list[SourceAggregation], dates: RunDates) -> list[float]:
    """Seconds of each statement, timed in turns (A B A B ...) so a change in the machine's load hits all alike."""
    times = [[_run_once(conn, a, dates)] for a in aggs]
    slowest = max(t[0] for t in times)
    repeat = 5 if slowest < QUICK_SECONDS else 3 if slowest < SLOW_SECONDS else 1
    for _ in range(repeat - 1):
        for a, t in zip(aggs, times):
            t.append(_run_once(conn, a, dates))
    return [min(t) for t in times]


def _free_index_name(conn: sqlite3.Connection, table: str, reserved: set[str] = frozenset()) -> str:
    """``crm_rules_<table>_cover``, or ``..._cover_2`` etc. when that name is taken (never drop anything).

    ``reserved``: names (lower case) proposed for other sources in this advice, whose indexes were rolled back;
    two sources read from one table must not be told to create two different indexes of the same name.
    """
    taken = {r[0].lower() for r in conn.execute("SELECT name FROM main.sqlite_master")} | set(reserved)
    base = f"{INDEX_PREFIX}{table}_cover"
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def index_sql(name: str, table: str, columns: list[str]) -> str:
    """The ``CREATE INDEX`` statement for a covering index (columns in order, key first)."""
    return f"CREATE INDEX {q(name)} ON {q(table)}({', '.join(q(c) for c in columns)})"


def _pages_in_use(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA main.page_count").fetchone()[0] - conn.execute("PRAGMA main.freelist_count").fetchone()[0]


def _index_bytes(conn: sqlite3.Connection, name: str) -> int | None:
    """Size of an existing index from the dbstat table, when this SQLite has it."""
    try:
        return conn.execute("SELECT sum(pgsize) FROM dbstat('main') WHERE name = ?", (name,)).fetchone()[0]
    except sqlite3.OperationalError:
        return None


def _stale_notes(conn: sqlite3.Connection, table: str, columns: list[str]) -> list[str]:
    """Indexes made by this command earlier that no longer cover what the policy reads (e.g. a new metric)."""
    notes = []
    for row in conn.execute(f"PRAGMA main.index_list({q(table)})").fetchall():
        name = row[1]
        if not name.startswith(INDEX_PREFIX):
            continue
        held = {r[2].lower() for r in conn.execute(f"PRAGMA main.index_info({q(name)})") if r[2]}
        missing = [c for c in columns if c.lower() not in held]
        if missing:
            notes.append(f"index {name} does not hold {', '.join(missing)}, so this policy cannot use it; "
                         f"drop it if no other policy needs it")
    return notes


def _measure_with_index(conn: sqlite3.Connection, advice: SourceAdvice, now: SourceAggregation, policy: Policy,
                        dates: RunDates, keep: bool) -> None:
    """Build the proposed index in a savepoint of the advice's transaction, time the run's statement without and
    with it, and roll back to the savepoint, or (``keep`` and it helps) keep it for the advice's commit.

    The statement is compiled again once the index exists, so it is the
    engine's own choice of plan that is timed, not one forced here.  The
    statement of today's plan says ``NOT INDEXED``, so it reads the table the
    same way while the index exists, and the two are timed in turns.  On an
    error the savepoint is left alone: SQLite may have rolled back the whole
    transaction already, and the caller rolls back whatever is left.
    """
    conn.execute(f"SAVEPOINT {SAVEPOINT}")
    before = _pages_in_use(conn)
    start = time.perf_counter()
    conn.execute(advice.proposed_sql)
    advice.build_seconds = time.perf_counter() - start
    advice.index_bytes = (_pages_in_use(conn) - before) * conn.execute("PRAGMA main.page_size").fetchone()[0]
    indexed = _aggregations(conn, policy, dates)[advice.source]
    used = covering_index(conn, "main", advice.table, advice.key, set(advice.columns))
    if used != advice.proposed_index:  # pragma: no cover - the proposal and the engine's test disagree: a bug
        raise AssertionError(f"the engine would not use {advice.proposed_index} on {advice.table} (it picks {used!r})")
    advice.seconds_now, advice.seconds_with_index = time_statements(conn, [now, indexed], dates)
    advice.speedup = advice.seconds_now / advice.seconds_with_index if advice.seconds_with_index > 0 else None
    advice.helps = advice.speedup is not None and advice.speedup >= MIN_SPEEDUP
    if keep and advice.helps:
        conn.execute(f"RELEASE {SAVEPOINT}")  # part of the advice's transaction now: created when it commits
        advice.created = True
    else:
        conn.execute(f"ROLLBACK TO {SAVEPOINT}")
        conn.execute(f"RELEASE {SAVEPOINT}")


# ---- the command -------------------------------------------------------------


def _open(db: Path) -> sqlite3.Connection:
    """A writable connection with the advisor's authorizer; fails now, not after minutes of timing,
    when the database is read-only or another program is writing to it."""
    conn = connect(db, mode="rw")
    try:
        conn.set_authorizer(_authorizer())
        conn.execute("BEGIN IMMEDIATE")  # waits for a writer (busy timeout), then fails as locked
        version = conn.execute("PRAGMA main.user_version").fetchone()[0]
        conn.execute(f"PRAGMA main.user_version = {int(version)}")  # a write that changes nothing, rolled back
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        conn.close()
        raise _error(db, exc) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _drop_hint(names: list[str]) -> str:
    return "if you do not want them: " + "; ".join(f"DROP INDEX {q(n)}" for n in names)


def _outcome(kept: list[str] | None, planned: list[str]) -> tuple[str, str | None]:
    """What a failure left: the end of its message and a hint (for the rare failure after the commit)."""
    if kept is None:
        return (f"could not check whether {', '.join(planned)} were created; look for indexes named "
                f"{INDEX_PREFIX}* in the database", _drop_hint(planned))
    if not kept:
        return "nothing was changed", None
    return f"{', '.join(kept)} {'was' if len(kept) == 1 else 'were'} created and kept", _drop_hint(kept)


def _error(db: Path, exc: sqlite3.Error, kept: list[str] | None = (), planned: list[str] = ()) -> CrmRulesError:
    text = str(exc)
    changed, drop = _outcome(list(kept) if kept is not None else None, list(planned))
    if "locked" in text or "busy" in text:
        error = DataError(f"{db}: the database is locked by another program ({text}); {changed}",
                          hint="another program is using the database; run again when it is done")
    elif "readonly" in text or "read-only" in text:
        error = DataError(f"{db}: the database is read-only ({text}); measuring builds each index in a "
                          f"transaction that is rolled back, which needs write access; {changed}",
                          hint="run crm-rules index on a writable copy of the database")
    elif "full" in text:
        error = RunError(f"{db}: no room to build an index ({text}); {changed}",
                         hint="an index needs about as much space as the columns it holds, and --create needs "
                              "room for all the indexes it keeps at once; free some disk space")
    elif "disk I/O" in text:
        error = RunError(f"{db}: could not measure the indexes ({text}); {changed}",
                         hint="the disk may be full or failing, or a limit on the size of files "
                              "(ulimit -f, a quota) was reached")
    else:
        error = RunError(f"{db}: could not measure the indexes ({text}); {changed}")
    if drop:
        error.hint = f"{error.hint}; {drop}" if error.hint else drop
    return error


def _interrupted(db: Path, kept: list[str] | None, planned: list[str]) -> IndexAdviceInterrupted:
    changed, drop = _outcome(kept, planned)
    return IndexAdviceInterrupted(f"{db}: interrupted; {changed}", hint=drop)


def _roll_back(conn: sqlite3.Connection, planned: list[str], commit_tried: bool) -> list[str] | None:
    """Roll back what is left of the advice's transaction; the indexes of ``planned`` that exist afterwards
    (None: unknown).

    Only a commit makes an index last, and a failed or interrupted commit is
    all or nothing too; so when none was tried nothing was changed.  After an
    I/O error SQLite ends the transaction itself but leaves the journal to be
    played back by the next read: the read here does that now, so no hot
    journal is left for the next program to find (and to need write access
    for).  Should even that fail, the next program that opens the database
    rolls the transaction back: uncommitted, it changed nothing.
    """
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
    if conn.in_transaction:
        return []  # not even rolled back, so certainly not committed
    try:
        present = {r[0].lower() for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'index'")}
    except sqlite3.Error:
        return None if commit_tried and planned else []
    if not commit_tried:
        return []
    return [n for n in planned if n.lower() in present]


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def advise_indexes(db: Path, policy: Policy, as_of: str, *, create: bool = False) -> dict:
    """Covering-index advice for every source table the policy reads, with measured timings.

    Returns ``{"db", "policy", "policy_sha256", "as_of", "create", "changed", "created", "sources": [...]}``
    (one ``SourceAdvice`` as a dict per source).  Without ``create`` the
    database is left exactly as it was; with it, the indexes that help are
    committed together at the end, or (on any failure) none is.
    """
    try:
        conn = _open(db)
    except KeyboardInterrupt:
        raise _interrupted(db, [], []) from None
    sources: list[SourceAdvice] = []
    commit_tried = False
    try:
        conn.execute(f"PRAGMA temp.cache_size = -{TEMP_CACHE_KIB}")  # as in a run, so the timings are a run's
        as_of_next = conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]
        dates = RunDates(as_of, as_of_next, conn)
        conn.execute("BEGIN IMMEDIATE")  # the whole advice is one transaction: all or nothing
        reserved: set[str] = set()
        for source in list(_aggregations(conn, policy, dates)):
            sources.append(_advise_source(conn, policy, dates, source, create, reserved))
        if any(a.created for a in sources):
            commit_tried = True
            _commit(conn)
        else:
            conn.execute("ROLLBACK")
    except BaseException as exc:
        planned = [a.proposed_index for a in sources if a.created]
        kept = _roll_back(conn, planned, commit_tried)
        if isinstance(exc, sqlite3.Error):
            raise _error(db, exc, kept, planned) from None
        if isinstance(exc, KeyboardInterrupt):
            raise _interrupted(db, kept, planned) from None
        raise
    finally:
        conn.close()
    created = [a.proposed_index for a in sources if a.created]
    return {"db": str(db), "policy": policy.name, "policy_sha256": policy.sha256, "as_of": as_of, "create": create,
            "changed": bool(created), "created": created, "sources": [asdict(a) for a in sources]}


def _advise_source(conn: sqlite3.Connection, policy: Policy, dates: RunDates, source: str, create: bool,
                   reserved: set[str]) -> SourceAdvice:
    # Compiled now, not before the advice began: an index kept for an earlier source on the same table
    # changes the plan a run picks, and the statement timed must be the one a run would execute.
    agg = _aggregations(conn, policy, dates)[source]
    spec = policy.data.sources[source]
    columns = _index_columns(agg, spec.key)
    advice = SourceAdvice(source, spec.table, spec.key, columns)
    kind = conn.execute("SELECT type, sql FROM main.sqlite_master WHERE name = ? COLLATE NOCASE",
                        (spec.table,)).fetchone()
    virtual = bool(kind and kind[0] == "table" and re.match(r"\s*CREATE\s+VIRTUAL\b", kind[1] or "", re.I))
    advice.rows = conn.execute(f"SELECT count(*) FROM main.{q(spec.table)}").fetchone()[0]
    advice.plan_now = _plan(conn, agg, dates)
    advice.existing_index = covering_index(conn, "main", spec.table, spec.key, set(columns))
    if advice.existing_index is not None or virtual or (kind and kind[0] == "view"):
        advice.seconds_now = time_statement(conn, agg, dates)
        if advice.existing_index is not None:
            advice.index_bytes = _index_bytes(conn, advice.existing_index)
        elif virtual:
            advice.notes.append("a virtual table: SQLite cannot index it")
        else:
            advice.notes.append("a view: an index belongs on the table it reads")
        return advice
    advice.notes += _stale_notes(conn, spec.table, columns)
    advice.proposed_index = _free_index_name(conn, spec.table, reserved)
    reserved.add(advice.proposed_index.lower())
    advice.proposed_sql = index_sql(advice.proposed_index, spec.table, columns)
    _measure_with_index(conn, advice, agg, policy, dates, keep=create)
    if not advice.helps:
        advice.notes.append(f"the index gains less than {MIN_SPEEDUP:.2f}× here; not worth its disk space"
                            + ("; not created" if create else ""))
    return advice


# ---- terminal output ---------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""  # pragma: no cover


def _index_cell(a: dict) -> str:
    """The covering index a run uses, else whether one is proposed or was created (or "none": nothing to propose).

    A proposed index is named in the SQL printed below the table, not here: its name (``crm_rules_<table>_cover``)
    would take the width the numbers need, and in an 80-column terminal it was folded five letters a line.
    """
    from .user_text import escape

    if a["existing_index"]:
        return escape(a["existing_index"])
    if not a["proposed_index"]:
        return "none"
    return "[green]created[/green]" if a["created"] else "proposed"


def _tables(names: list[str]) -> str:
    return joined(list(dict.fromkeys(names)))  # two sources may read one table


def _nothing_to_propose(sources: list[dict]) -> str:
    """What the run did when it proposed no index: nothing, and why (covering indexes exist, or views)."""
    if not sources:
        return "nothing was changed: the policy reads no source table, so no index can make its run faster"
    covered = [a["table"] for a in sources if a["existing_index"]]
    other = [a["table"] for a in sources if not a["existing_index"]]
    if not other:
        every = "the table the policy reads has" if len(sources) == 1 else "every table the policy reads has"
        return f"nothing was changed: {every} a covering index a run uses already, so there is no index to propose"
    reasons = []
    if covered:
        reasons.append(f"{_tables(covered)} {'has' if len(set(covered)) == 1 else 'have'} a covering index "
                       f"a run uses already")
    reasons.append(f"{_tables(other)} cannot be indexed (see the note{'s' if len(set(other)) > 1 else ''} above)")
    return "nothing was changed, as there is no index to propose: " + "; ".join(reasons)


def print_index_advice(console, result: dict) -> None:
    """The advice as one row per source, the SQL of each proposed index, and what was (not) changed."""
    from .user_text import escape

    from .render import fmt_number
    from .terminal_table import print_indented, titled_table

    n = len(result["sources"])
    tables = "the table the policy reads" if n == 1 else f"the {n} tables the policy reads"
    what = "the policy reads no source table" if n == 0 else \
        f"{'a covering index' if n == 1 else 'covering indexes'} for {tables}"
    # the prose lines wrap at spaces (at 60 columns the terminal broke them inside a word); the SQL stays one line
    print_indented(console, f"[b]{escape(result['policy'])}[/b] as of {result['as_of']} on {escape(result['db'])}: {what}")
    if n == 0:  # an empty table would say nothing more
        print_indented(console, escape(_nothing_to_propose([])))
        return
    # index names wrap; table names, numbers and headers stay whole
    table = titled_table("Reading each table for the run's GROUP BY", "Table", "Rows>", "Index", "Now s>",
                         "Indexed s>", "Speed-up>", "Index size>",
                         whole=("Table", "Rows", "Now s", "Indexed s", "Speed-up", "Index size"))
    for a in result["sources"]:
        name = escape(a["table"]) + ("" if a["table"] == a["source"] else f" ({escape(a['source'])})")
        # truncated, not rounded: 1.099 shown as 1.10× would contradict "gains less than 1.10×"
        speedup = "—" if a["speedup"] is None else f"{math.floor(a['speedup'] * 100) / 100:.2f}×"
        table.add_row(name, fmt_number(a["rows"]), _index_cell(a), _seconds(a["seconds_now"]),
                      _seconds(a["seconds_with_index"]), f"[b]{speedup}[/b]" if a["helps"] else speedup,
                      _size(a["index_bytes"]))
    console.print(table)
    proposed = [a for a in result["sources"] if a["proposed_sql"]]
    if proposed:
        print_indented(console, "Proposed indexes (key first, then every column the run reads):")
        for a in proposed:
            verdict = "created" if a["created"] else "helps" if a["helps"] else "does not help"
            console.print(f"  {a['proposed_sql']};  -- {verdict}", highlight=False, markup=False)
    for a in result["sources"]:
        for note in a["notes"]:
            print_indented(console, escape(f"note: {a['table']}: {note}"))
    if not proposed:  # no index was built, timed or rolled back: there was none to propose
        print_indented(console, escape(_nothing_to_propose(result["sources"])))
        return
    if result["create"]:
        if result["created"]:
            print_indented(console, escape(f"created {', '.join(result['created'])}; runs now read "
                                           f"{'this table' if len(result['created']) == 1 else 'these tables'} "
                                           f"through {'it' if len(result['created']) == 1 else 'them'}"))
        else:
            print_indented(console, "created nothing: no proposed index makes the run faster; the database is "
                                    "unchanged")
        return
    print_indented(console, "nothing was changed: each proposed index was built inside a transaction, timed and "
                            "rolled back" + ("; run again with --create to keep the ones that help"
                                             if any(a["helps"] for a in proposed) else ""))
