"""The part of a source scan (source_scans) or a window sort (window_workers) that runs in a worker
process, as a script of its own (and, for small scans, in a thread of the run: scan_thread).

It imports nothing but the standard library, so that the process starts in a
few tens of milliseconds and needs neither the package nor the caller's main
module (source_scans runs this file with the same Python).  The work comes as
a JSON file named on the command line: a list of statements, and a queue of
jobs shared with the run and the other workers (:class:`Queue`); a failure
goes back as JSON on stdout, with exit code 1.

A worker does not outlive its run: the run holds the writing end of a pipe
whose reading end the worker inherits (the job's ``lifeline``), and a thread
of the worker waits on it.  The system closes that end when the run's process
ends, however it ends (SIGKILL too), and the worker exits at once, even in
the middle of a statement (SQLite runs without Python's lock).
"""

from __future__ import annotations

import _thread  # not threading: a third of the worker's start-up time for one thread
import json
import os
import sqlite3
import sys

SCRATCH = "_crm_scratch"
HERE = "run"  # the queue's owner of the jobs the run's own connection takes
FAILED = "failed"  # the owner of the jobs nobody will run, because one failed
ORPHANED = 3  # the exit code of a worker whose run ended before it (nobody reads it: the system reaps the process)


def create_queue(path, work: list[tuple[str, str, dict]]) -> None:
    """A new queue database at ``path`` holding ``work`` as ``(table, select, params)`` jobs, taken in this order."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # a scratch file: nothing to recover
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT, select_sql TEXT, params TEXT, owner TEXT)")
        conn.executemany("INSERT INTO jobs (name, select_sql, params) VALUES (?, ?, ?)",
                         [(name, select, json.dumps(params)) for name, select, params in work])
    finally:
        conn.close()


class Queue:
    """The jobs of :func:`create_queue`, which several processes take one at a time, each job once."""

    def __init__(self, path, timeout_s: float) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=timeout_s)

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def take(self, owner: str) -> tuple[str, str, dict] | None:
        """The next job nobody has taken, now ``owner``'s: ``(table, select, params)``; None when there is none."""
        self.conn.execute("BEGIN IMMEDIATE")  # the write lock first: two processes never read the same next job
        try:
            row = self.conn.execute(
                "UPDATE jobs SET owner = ? WHERE id = (SELECT min(id) FROM jobs WHERE owner IS NULL) "
                "RETURNING name, select_sql, params", (owner,)).fetchone()
        finally:
            self.conn.execute("COMMIT")
        return None if row is None else (row[0], row[1], json.loads(row[2]))

    def fail(self) -> None:
        """Leave the jobs nobody has taken to nobody: the others stop after the job they are on."""
        self.conn.execute("UPDATE jobs SET owner = ? WHERE owner IS NULL", (FAILED,))

    def owners(self) -> dict[str, str]:
        """table -> who took its job."""
        return dict(self.conn.execute("SELECT name, owner FROM jobs"))


def open_scratch(source_uri: str, scratch_uri: str, cache_kib: int, timeout_s: float,
                 check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection reading the source, with the scratch database its jobs' tables go into attached."""
    conn = sqlite3.connect(source_uri, uri=True, isolation_level=None, timeout=timeout_s,
                           check_same_thread=check_same_thread)
    try:
        conn.execute(f"PRAGMA temp.cache_size = -{cache_kib}")
        conn.execute(f"ATTACH DATABASE ? AS {SCRATCH}", (scratch_uri,))
        conn.execute(f"PRAGMA {SCRATCH}.journal_mode = OFF")  # a scratch file: nothing to recover
        conn.execute(f"PRAGMA {SCRATCH}.synchronous = OFF")
    except BaseException:
        conn.close()
        raise
    return conn


def run_jobs(conn: sqlite3.Connection, work: list[tuple[str, str, dict]], queue=None, owner: str = "") -> None:
    """Run each ``(table, select, params)`` of ``work``, then each job taken from ``queue`` (anything with
    :meth:`Queue.take`) as ``owner``, into table ``table`` of the scratch database of :func:`open_scratch`."""
    for table, select, params in work:
        conn.execute(f'CREATE TABLE {SCRATCH}."{table}" AS {select}', params)
    while queue is not None and (job := queue.take(owner)) is not None:
        table, select, params = job
        conn.execute(f'CREATE TABLE {SCRATCH}."{table}" AS {select}', params)


def scan(source_uri: str, scratch_uri: str, work: list[tuple[str, str, dict]], cache_kib: int,
         timeout_s: float, queue: Queue | None = None, owner: str = "") -> None:
    """Run each ``(table, select, params)`` of ``work``, then each job taken from ``queue`` as ``owner``, on the
    source into table ``table`` of a new scratch database."""
    conn = open_scratch(source_uri, scratch_uri, cache_kib, timeout_s)
    try:
        run_jobs(conn, work, queue, owner)
    finally:
        conn.close()


def exit_with_parent(fd: int) -> None:
    """Exit as soon as the pipe ``fd`` reads end of file: the run (the only holder of its other end) is gone."""

    def watch() -> None:
        try:
            while os.read(fd, 64):
                pass  # the run never writes: only the end of the file matters
        except OSError:
            pass
        os._exit(ORPHANED)  # no clean-up: the scratch files belong to the run, whose folder a later run removes

    _thread.start_new_thread(watch, ())


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    if job.get("lifeline") is not None:
        exit_with_parent(job["lifeline"])
    queue = Queue(job["queue"], job["timeout_s"]) if job.get("queue") else None
    try:
        scan(job["source"], job["scratch"], job["work"], job["cache_kib"], job["timeout_s"], queue, job.get("owner", ""))
    except sqlite3.Error as exc:
        if queue is not None:
            queue.fail()
        json.dump({"error": str(exc), "kind": type(exc).__name__}, sys.stdout)
        return 1
    finally:
        if queue is not None:
            queue.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
