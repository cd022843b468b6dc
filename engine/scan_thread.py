"""A small scan phase on two cores without a worker process: a thread of the run with a connection of its own.

Below ``source_scans.MIN_WORKER_ROWS`` a worker process costs more than it
saves (its start and the copy back through a file), so the run's connection
used to run every job in turn on one core while the other stayed idle.  A
thread with a second connection to the source starts in a millisecond, and
SQLite runs a statement without Python's lock.  At these sizes the two
connections hardly contend for SQLite's global memory lock, which made two
threads barely faster than one at millions of rows (source_scans): measured
at 10,000 customers and 100,000 orders, the four scan jobs of
``bench/peer_rules.yaml`` took 0.16 s this way against 0.26 s in turn, and at
ten times that 2.6 s against 3.7 s.

The thread writes its tables into an in-memory database (SQLite's ``memdb``
VFS, named for this scan alone), which the run's connection attaches and
copies from once the thread is done: no file to write, and nothing left
behind when the run is killed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from itertools import count

from . import scan_worker
from .expr_sql import quote_identifier as q

THREAD = "thread"  # the owner of the jobs the thread takes
_scans = count()  # tells apart the in-memory databases of scans that run at once in one process


class JobList:
    """:class:`scan_worker.Queue` within one process: jobs taken in order, each once, by whoever is free."""

    def __init__(self, work: list[tuple[str, str, dict]]) -> None:
        self._work = list(work)
        self._lock = threading.Lock()
        self.owners: dict[str, str] = {}  # table -> who took its job

    def take(self, owner: str) -> tuple[str, str, dict] | None:
        with self._lock:
            if not self._work:
                return None
            job = self._work.pop(0)
            self.owners[job[0]] = owner
            return job

    def fail(self) -> None:
        """Leave the jobs nobody has taken to nobody: the other side stops after the job it is on."""
        with self._lock:
            self._work.clear()


def scan_with_thread(conn: sqlite3.Connection, source_uri: str, work: list[tuple[str, str, dict]], cache_kib: int,
                     timeout_s: float, run_here: Callable[[str], None], copied: Callable[[str], None]) -> bool:
    """Run the ``(table, select, params)`` jobs of ``work``, each into ``conn``'s temp table ``table``: those
    the run's connection takes by ``run_here(table)``, the others on a thread's connection to ``source_uri``,
    then copied into ``conn`` and handed to ``copied(table)``.

    False, with nothing run, when this SQLite has no in-memory database to share (before 3.36).
    """
    scratch = f"file:/crm-rules-scan-{os.getpid()}-{next(_scans)}?vfs=memdb"
    try:
        helper = scan_worker.open_scratch(source_uri, scratch, cache_kib, timeout_s, check_same_thread=False)
    except sqlite3.OperationalError:
        return False
    jobs, failed = JobList(work), []

    def thread_jobs() -> None:
        try:
            scan_worker.run_jobs(helper, [], jobs, THREAD)
        except BaseException as exc:  # the run's connection raises it, once it has stopped too
            jobs.fail()
            failed.append(exc)

    thread = threading.Thread(target=thread_jobs, name="crm-rules scan", daemon=True)
    try:
        job = jobs.take(scan_worker.HERE)  # the biggest job: its temp table needs no copy
        thread.start()
        try:
            while job is not None:
                run_here(job[0])
                job = jobs.take(scan_worker.HERE)
        except BaseException:
            jobs.fail()
            while thread.is_alive():  # again until it stops: a statement that had not begun misses an interrupt
                helper.interrupt()  # its error is the run's no more
                thread.join(0.05)
            raise
        finally:
            thread.join()
        if failed:
            raise failed[0]
        conn.execute(f"ATTACH DATABASE ? AS {scan_worker.SCRATCH}", (scratch,))
        try:
            for table in [table for table, owner in jobs.owners.items() if owner == THREAD]:
                conn.execute(f"CREATE TEMP TABLE {q(table)} AS SELECT * FROM {scan_worker.SCRATCH}.{q(table)}")
                copied(table)
        finally:
            conn.execute(f"DETACH DATABASE {scan_worker.SCRATCH}")
    finally:
        helper.close()  # the last connection to the in-memory database: its memory is freed
    return True
