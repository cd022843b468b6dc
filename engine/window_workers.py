"""Window sorts in a worker process while the run's connection goes on with the rest.

After the source scans, a run is one connection's work, and one core idles.  At
a million customers the biggest part of that work is sorting: eight window
orderings (a quintile, a percentile, a Pareto share each) at 2-3 s apiece.  A
sort that reads only the base table (customers and their aggregates) needs
nothing the layers compute, so as soon as that table exists a worker process
can take some of them: the columns they read are copied into a scratch
database (about half a second for a million rows), the worker runs the very
same SELECT on it (scan_worker, the script the source scans use) into scratch
tables in ``_rid`` order, and when the run reaches a sort it gave away it
copies the rows into the temp table the layer reads (an append).  The worker
takes the sorts the run needs last, so the run rarely waits for it.  The run
reads that narrow copy for the sorts it keeps as well: scanning the wide view
of every metric costs more than the copy (at 1M customers the run's three
sorts took 8.0 s instead of 10.0 s, the copy 0.25 s more).

The values are the same as in-process: the same SQL over the same rows in the
same order, by the same SQLite library, and only window functions whose
values depend on the sorted rows alone (ranks, ntiles, running aggregates)
are given away.  Small populations keep every sort: a process start and the
copies cost more than they save.  So does a run with a single sort to give:
it would only wait for the worker.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

from .database import file_uri, table_columns
from .expr_sql import quote_identifier as q
from .plugin_sql import BatchOp
from .metric_sql import approximate_rows
from .source_scans import FOLDER_PREFIXES, SCRATCH, ScratchFolder, start_worker, stop_worker, wait_worker
from .statement import Statement

#: Customers a run must have for sorts to go to a worker (a sort of this many takes about 0.5 s).
MIN_WORKER_ROWS = 200_000
EXPORT = "_crm_window_export"


class WindowWorker:
    """Gives part of a run's window sorts to a worker process; one per run, closed when the run is done."""

    def __init__(self, base: str, cache_kib: int, min_rows: int | None = None, workers: int | None = None) -> None:
        self.base = base  # the temp table (unqualified) of one row per customer that the sorts read
        self.cache_kib = cache_kib
        self.min_rows = MIN_WORKER_ROWS if min_rows is None else min_rows
        self.workers = (os.cpu_count() or 1) - 1 if workers is None else workers
        self.sorts: list[Statement] = []
        self.given: set[str] = set()  # tables the worker computes
        self.local: set[str] = set()  # tables the run computes from the worker's copy of the columns
        self.conn: sqlite3.Connection | None = None  # the run's, while the copy is attached to it
        self.scratch: ScratchFolder | None = None
        self.process: subprocess.Popen | None = None

    def wrap(self, operations: list) -> list:
        """``operations`` with each window sort replaced by an operation that runs it here or collects it."""
        out = []
        for op in operations:
            if isinstance(op, Statement) and op.sort is not None:
                self.sorts.append(op)
                out.append(BatchOp(lambda conn, dates, op=op: self._sort(conn, op, dates), op.sql))
            else:
                out.append(op)
        return out

    def start(self) -> BatchOp:
        """The operation that starts the worker: place it right after the base table is created."""
        return BatchOp(self._start, f"start a worker for window sorts of {self.base}")

    def _start(self, conn: sqlite3.Connection, dates: dict) -> None:
        if self.workers < 1:
            return
        have = set(table_columns(conn, "temp", self.base) or []) | {"_rid"}
        movable = [op for op in self.sorts if op.sort.columns is not None and op.sort.columns <= have]
        if len(movable) < 2 or approximate_rows(conn, f"temp.{q(self.base)}") < self.min_rows:
            return  # one sort: the run would only wait for the worker, and pay the copies besides
        given = movable[len(movable) // 2:]  # the later half (the bigger one, when odd): the run needs them last
        columns = sorted(set().union(*(op.sort.columns for op in movable)) - {"_rid"})
        self.scratch = ScratchFolder(FOLDER_PREFIXES[1])
        export = self.scratch.path / "base.db"
        conn.execute(f"ATTACH DATABASE ? AS {EXPORT}", (file_uri(export, "rwc"),))
        try:
            conn.execute(f"PRAGMA {EXPORT}.journal_mode = OFF")
            conn.execute(f"PRAGMA {EXPORT}.synchronous = OFF")
            conn.execute(f"CREATE TABLE {EXPORT}.base AS SELECT rowid AS _rid, "
                         f"{', '.join(q(c) for c in columns)} FROM temp.{q(self.base)} ORDER BY rowid")
        finally:
            conn.execute(f"DETACH DATABASE {EXPORT}")
        work = [(op.sort.table, op.sort.query("main.base"), {**op.params, **dates}) for op in given]
        self.process = start_worker(file_uri(export, "ro"), self.scratch.path / "sorts.db", work, self.cache_kib)
        self.given = {op.sort.table for op in given}
        self.local = {op.sort.table for op in movable} - self.given
        conn.execute(f"ATTACH DATABASE ? AS {EXPORT}", (file_uri(export, "ro"),))
        self.conn = conn

    def _sort(self, conn: sqlite3.Connection, op: Statement, dates: dict) -> None:
        if op.sort.table in self.local:
            conn.execute(op.sort.insert(f"{EXPORT}.base"), {**op.params, **dates})
            return
        if op.sort.table not in self.given:
            conn.execute(op.sql, {**op.params, **dates})
            return
        if self.process.returncode is None:  # not waited for yet
            wait_worker(self.process)
        conn.execute(f"ATTACH DATABASE ? AS {SCRATCH}", (file_uri(self.scratch.path / "sorts.db", "ro"),))
        try:
            conn.execute(f"INSERT INTO temp.{q(op.sort.table)} SELECT * FROM {SCRATCH}.{q(op.sort.table)}")
        finally:
            conn.execute(f"DETACH DATABASE {SCRATCH}")

    def close(self) -> None:
        """Stop the worker if the run ended before it did (an error), detach the copy and delete the scratch files."""
        if self.process is not None:
            stop_worker(self.process)
        if self.conn is not None:
            try:
                self.conn.execute(f"DETACH DATABASE {EXPORT}")
            except sqlite3.Error:
                pass  # a failing run's error is what the user must see; the file goes with its folder below
            self.conn = None
        if self.scratch is not None:
            self.scratch.close()
