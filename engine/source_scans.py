"""Run the sources' GROUP BYs and row checks at the same time, on every core.

The scans of orders, receivables, interactions and contracts, and the checks
of their rows, do not depend on one another, and at a million customers each
keeps one core busy for seconds to tens of seconds: SQLite runs a statement on
one core.  So they are jobs in a queue, biggest first, and the run's own
connection and worker processes each take the next job as soon as they are
free (list scheduling: no estimate of a job's time needs to be right, only
their order roughly so).  The run's connection writes straight into its temp
tables; a worker runs its jobs on a read-only connection to the same file,
each into a scratch database in a temporary folder, which the run's
connection then copies into its temp tables.  Processes, not threads:
SQLite's memory accounting takes a global lock, and two threads scanning at
once ran barely faster than one after the other (measured: 1.65-2.1 s for two
scans of 1.1 s each; two processes: 1.2-1.6 s).

The queue is a small SQLite database in that folder; taking a job is one
``UPDATE ... RETURNING`` in an immediate transaction, so no two processes take
the same job.  A worker that fails empties the queue, so the others stop
soon; the run then raises its error.  A worker costs a process start, which
only pays off for big tables: smaller sources are scanned by the run's
connection and a thread of the run with a connection of its own
(scan_thread), where the lock costs less than the start would, and the
smallest by the run's connection alone.  The source is only read, and the
scratch files are deleted whatever happens.

Even when the run is killed (SIGKILL, the machine's out-of-memory killer):
its workers exit at once (scan_worker), and the folder it leaves is removed
by the next run that starts workers (:class:`ScratchFolder`).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import scan_thread, scan_worker
from .database import BUSY_TIMEOUT_MS, file_uri
from .expr_sql import quote_identifier as q
from .metric_sql import SourceAggregation
from .statement import Statement

try:
    import fcntl
except ImportError:  # Windows: folders left by a killed run stay (the system's disk clean-up removes them)
    fcntl = None

SCRATCH = scan_worker.SCRATCH
HERE = scan_worker.HERE  # the queue's owner of the jobs the run's connection takes

#: Rows the jobs besides the biggest must read to be worth a worker (scans and checks of this many take
#: about half a second).
MIN_WORKER_ROWS = 500_000

#: Rows the jobs besides the biggest must read to be worth a thread of the run (scan_thread), below
#: MIN_WORKER_ROWS: its connection and in-memory database cost about a millisecond.
MIN_THREAD_ROWS = 20_000

#: The folders of runs' workers in the temporary directory: (scans, window sorts).
FOLDER_PREFIXES = ("crm-rules-scan-", "crm-rules-windows-")
OWNER = "owner.json"  # in such a folder: which process on which machine made it, locked while it lives


class ScratchFolder:
    """A new folder in the temporary directory for a run's workers, removed by :meth:`close` (or ``with``).

    If the process is killed before, the next one to make such a folder removes it.  That must never remove the
    folder of a run still going, on this machine or another sharing the directory, of this user or another: a
    folder is stale only when its owner file is locked no more (the system drops a process's locks when it ends,
    however it ends; a pid could be reused, a lock cannot outlive its process), and the owner file says it was
    made on this machine since it last started (another one's locks need not be visible here).
    """

    def __init__(self, prefix: str) -> None:
        remove_stale_folders()
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._owner = _claim(self.path / OWNER)

    def __enter__(self) -> "ScratchFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._owner is not None:
            self._owner.close()  # after the files: until then, nobody else may take the folder for stale
            self._owner = None


def _machine() -> dict:
    """This machine since it last started: its kernel's boot id where there is one, and its name."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip() or None  # shared by containers on one kernel, as their locks are
    except OSError:
        boot = None
    return {"boot": boot, "host": os.uname().nodename if hasattr(os, "uname") else None}


def _claim(path: Path):
    """The owner file ``path``, created, locked and filled in; keep it open as long as the folder is in use."""
    if fcntl is None:
        return None
    try:
        owner = open(path, "w", encoding="utf-8")
    except OSError:
        return None
    try:
        fcntl.flock(owner, fcntl.LOCK_EX)  # waits only while another run looks at the still empty file
        json.dump({**_machine(), "pid": os.getpid()}, owner)
        owner.flush()
    except OSError:
        owner.close()  # not locked: the folder is never taken for stale; close() still removes it
        return None
    return owner


def remove_stale_folders(directory: str | None = None) -> list[Path]:
    """Remove the worker folders in ``directory`` (default: the temporary directory) that runs killed on this
    machine left; the removed ones.  Those of runs still going, of other machines, other users or older
    versions of crm-rules (no owner file) stay."""
    if fcntl is None:
        return []
    directory = directory or tempfile.gettempdir()
    me, removed = None, []
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(FOLDER_PREFIXES)]
    except OSError:
        return []
    for entry in entries:
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            owner = open(os.path.join(entry.path, OWNER), encoding="utf-8")
        except OSError:
            continue  # not ours, or being made, or already gone
        with owner:
            try:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # locked: its run is going
            try:
                made = json.loads(owner.read())
            except (OSError, ValueError):
                continue  # empty: its run has not locked it yet
            me = me or _machine()
            if not isinstance(made, dict) or made.get("pid") == os.getpid():
                continue  # (on NFS a lock does not exclude its own process)
            if made.get("boot") != me["boot"] or (me["boot"] is None and made.get("host") != me["host"]):
                continue  # another machine's, or this one's before it restarted: cannot tell
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


@dataclass(frozen=True)
class ScanJob:
    """One statement of the scan phase: temp table ``name`` from ``select``, run on the source."""

    name: str
    select: Statement
    cost: int  # rough units (SourceAggregation.cost): the queue starts the biggest first
    rows: int
    index: Statement | None = None  # built on the run's connection once the table is there

    @property
    def target(self) -> str:
        return f"temp.{q(self.name)}"


def jobs(sources: list[SourceAggregation]) -> list[ScanJob]:
    """Each source's GROUP BY and its row check, biggest first (ties by name, for the same order every run)."""
    out = []
    for agg in sources:
        # ids the join reads as numbers are looked up by metric_sql.number_ids' index: the plain one would go unused
        out.append(ScanJob(agg.name, agg.query, agg.cost, agg.rows, agg.index() if agg.merge is None else None))
        if agg.check is not None:
            out.append(ScanJob(agg.check_name, agg.check, agg.check_cost, agg.rows))
    return sorted(out, key=lambda job: (-job.cost, job.name))


def run_scans(conn: sqlite3.Connection, source: Path, sources: list[SourceAggregation], dates: dict,
              cache_kib: int, done: Callable[[str], None] = lambda name: None,
              workers: int | None = None, min_worker_rows: int = MIN_WORKER_ROWS,
              min_thread_rows: int = MIN_THREAD_ROWS) -> None:
    """Create each source's aggregate table (``agg.target``, with its index) and row check table in ``conn``'s
    temp schema; ``done`` is called with each table's name once it is there.

    ``workers``: processes besides ``conn`` at most (default: one per further core); below ``min_worker_rows``
    one thread instead (from ``min_thread_rows``), below that none.
    """
    if workers is None:
        workers = (os.cpu_count() or 1) - 1
    queue = jobs(sources)
    for job in queue:
        conn.execute(f"DROP TABLE IF EXISTS {job.target}")
    by_name = {job.name: job for job in queue}
    rest = sum(job.rows for job in queue[1:])
    if workers < 1 or rest < min_worker_rows:
        # a thread when it pays off and this SQLite can share an in-memory database (scan_thread), else in turn
        threaded = workers >= 1 and rest >= min_thread_rows and scan_thread.scan_with_thread(
            conn, file_uri(source, "ro"), _work(queue, dates), cache_kib, BUSY_TIMEOUT_MS / 1000,
            run_here=lambda name: _run_here(conn, by_name[name], dates, done),
            copied=lambda name: _finish(conn, by_name[name], done))
        if not threaded:
            for job in queue:
                _run_here(conn, job, dates, done)
        return
    with ScratchFolder(FOLDER_PREFIXES[0]) as scratch:
        folder = scratch.path
        queue_file = Path(folder) / "queue.db"
        scan_worker.create_queue(queue_file, _work(queue, dates))
        scratches = [Path(folder) / f"scan{i}.db" for i in range(min(workers, len(queue) - 1))]
        started = [start_worker(file_uri(source, "ro"), path, [], cache_kib, queue=queue_file) for path in scratches]
        try:
            with scan_worker.Queue(queue_file, BUSY_TIMEOUT_MS / 1000) as mine:
                while (taken := mine.take(HERE)) is not None:
                    _run_here(conn, by_name[taken[0]], dates, done)
            for process in started:
                wait_worker(process)
        finally:
            for process in started:
                stop_worker(process)  # running still: a job here failed or was interrupted
        with scan_worker.Queue(queue_file, BUSY_TIMEOUT_MS / 1000) as finished:
            taken_by = finished.owners()
        for path in scratches:
            conn.execute(f"ATTACH DATABASE ? AS {SCRATCH}", (file_uri(path, "ro"),))
            try:
                for name in [name for name, owner in taken_by.items() if owner == path.name]:
                    conn.execute(f"CREATE TEMP TABLE {q(name)} AS SELECT * FROM {SCRATCH}.{q(name)}")
                    _finish(conn, by_name[name], done)
            finally:
                conn.execute(f"DETACH DATABASE {SCRATCH}")


def start_worker(source_uri: str, scratch: Path, work: list[tuple[str, str, dict]], cache_kib: int,
                 queue: Path | None = None) -> subprocess.Popen:
    """A process running each ``(table, select, params)`` of ``work``, then each job it takes from ``queue``,
    on ``source_uri`` into table ``table`` of the new database ``scratch`` (scan_worker); wait for it with
    :func:`wait_worker`."""
    lifeline = os.pipe() if os.name == "posix" else None  # the worker exits when this process's end closes
    job = {"source": source_uri, "scratch": file_uri(scratch, "rwc"), "cache_kib": cache_kib,
           "timeout_s": BUSY_TIMEOUT_MS / 1000, "work": work, "queue": str(queue) if queue else None,
           "owner": scratch.name, "lifeline": lifeline[0] if lifeline else None}
    job_file = scratch.with_suffix(".json")
    try:
        job_file.write_text(json.dumps(job), encoding="utf-8")
        process = subprocess.Popen([sys.executable, scan_worker.__file__, str(job_file)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                   pass_fds=lifeline[:1] if lifeline else ())
    except BaseException:
        if lifeline:
            os.close(lifeline[1])
        raise
    finally:
        if lifeline:
            os.close(lifeline[0])  # the worker's end (its own copy stays open in it)
    # this process's end: not inherited by other processes it starts, closed when the worker has ended or
    # when this process ends, however it ends
    process.lifeline = open(lifeline[1], "wb", buffering=0) if lifeline else None
    return process


def stop_worker(process: subprocess.Popen) -> None:
    """Kill a worker that is still running (the run failed or was interrupted) and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdout, process.stderr, getattr(process, "lifeline", None)):
        if stream is not None:
            stream.close()


def wait_worker(process: subprocess.Popen) -> None:
    """Wait for a worker; its SQLite error is raised here as the same exception the work would raise in-process."""
    out, err = process.communicate()
    if getattr(process, "lifeline", None) is not None:
        process.lifeline.close()  # only now that the worker has ended: it exits when that end closes
    if process.returncode == 0:
        return
    try:
        failure = json.loads(out)
    except ValueError:
        raise RuntimeError(f"a worker process failed (exit code {process.returncode}):\n{err.strip()}") from None
    raise getattr(sqlite3, failure["kind"], sqlite3.OperationalError)(failure["error"])


def _work(queue: list[ScanJob], dates: dict) -> list[tuple[str, str, dict]]:
    """The jobs as another connection runs them: ``(table, select, params)``."""
    return [(job.name, job.select.sql, {**job.select.params, **dates}) for job in queue]


def _run_here(conn: sqlite3.Connection, job: ScanJob, dates: dict, done: Callable[[str], None]) -> None:
    conn.execute(f"CREATE TEMP TABLE {q(job.name)} AS\n{job.select.sql}", {**job.select.params, **dates})
    _finish(conn, job, done)


def _finish(conn: sqlite3.Connection, job: ScanJob, done: Callable[[str], None]) -> None:
    if job.index is not None:
        conn.execute(job.index.sql)
    done(job.name)
