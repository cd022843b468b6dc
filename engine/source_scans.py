"""Run the sources' GROUP BYs at the same time, each in a process of its own.

The scans of orders, receivables, interactions and contracts do not depend on
one another, and at a million customers each keeps one core busy for seconds
to tens of seconds: SQLite runs a statement on one core.  So the biggest scan
runs on the run's own connection, straight into its temp table, while worker
processes run the others on read-only connections to the same file, each into
a scratch database in a temporary folder, which the run's connection then
copies into its temp tables.  Processes, not threads: SQLite's memory
accounting takes a global lock, and two threads scanning at once ran barely
faster than one after the other (measured: 1.65-2.1 s for two scans of 1.1 s
each; two processes: 1.2-1.6 s).

Small sources are scanned one after the other on the run's connection: a
worker costs a process start, which only pays off for big tables.  The
source is only read, the scratch files are deleted whatever happens, and a
failed scan stops the others.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import scan_worker
from .database import BUSY_TIMEOUT_MS, file_uri
from .expr_sql import quote_identifier as q
from .metric_sql import SourceAggregation

SCRATCH = scan_worker.SCRATCH

#: Rows a worker's scans must have between them to be worth a process (a scan of this many takes about 0.5 s).
MIN_WORKER_ROWS = 200_000


def lanes(sources: list[SourceAggregation], count: int) -> list[list[SourceAggregation]]:
    """``sources`` spread over at most ``count`` lanes, biggest first, each to the lane with the fewest rows so far.

    Lane 0, the run's own connection, gets the biggest scan: it needs no copy afterwards.
    """
    out: list[list[SourceAggregation]] = [[] for _ in range(max(1, min(count, len(sources))))]
    load = [0] * len(out)
    for agg in sorted(sources, key=lambda a: -a.rows):
        lane = load.index(min(load))
        out[lane].append(agg)
        load[lane] += max(agg.rows, 1)
    return out


def run_scans(conn: sqlite3.Connection, source: Path, sources: list[SourceAggregation], dates: dict,
              cache_kib: int, done: Callable[[SourceAggregation], None] = lambda agg: None,
              workers: int | None = None, min_worker_rows: int = MIN_WORKER_ROWS) -> None:
    """Create each source's aggregate table (``agg.target``) and its index in ``conn``'s temp schema.

    ``workers``: processes besides ``conn`` at most (default: one per further core).
    """
    if workers is None:
        workers = (os.cpu_count() or 1) - 1
    for agg in sources:
        conn.execute(f"DROP TABLE IF EXISTS {agg.target}")
    mine, *others = lanes(sources, workers + 1)
    for lane in [lane for lane in others if sum(a.rows for a in lane) < min_worker_rows]:
        others.remove(lane)
        mine += lane
    if not others:
        _scan_here(conn, mine, dates, done)
        return
    with tempfile.TemporaryDirectory(prefix="crm-rules-scan-") as folder:
        scratches = [Path(folder) / f"scan{i}.db" for i in range(len(others))]
        workers_started = [
            start_worker(file_uri(source, "ro"), path, [(a.name, a.query.sql, {**a.query.params, **dates}) for a in work],
                         cache_kib)
            for path, work in zip(scratches, others)]
        try:
            _scan_here(conn, mine, dates, done)
            for process in workers_started:
                wait_worker(process)
        finally:
            for process in workers_started:
                stop_worker(process)  # running still: this scan failed or was interrupted
        for path, work in zip(scratches, others):
            conn.execute(f"ATTACH DATABASE ? AS {SCRATCH}", (file_uri(path, "ro"),))
            try:
                for agg in work:
                    _finish(conn, agg, f"CREATE TEMP TABLE {agg.target} AS SELECT * FROM {SCRATCH}.{q(agg.name)}", {}, done)
            finally:
                conn.execute(f"DETACH DATABASE {SCRATCH}")


def start_worker(source_uri: str, scratch: Path, work: list[tuple[str, str, dict]], cache_kib: int) -> subprocess.Popen:
    """A process running each ``(table, select, params)`` of ``work`` on ``source_uri`` into table ``table`` of
    the new database ``scratch`` (scan_worker); wait for it with :func:`wait_worker`."""
    job = {"source": source_uri, "scratch": file_uri(scratch, "rwc"), "cache_kib": cache_kib,
           "timeout_s": BUSY_TIMEOUT_MS / 1000, "work": work}
    job_file = scratch.with_suffix(".json")
    job_file.write_text(json.dumps(job), encoding="utf-8")
    return subprocess.Popen([sys.executable, scan_worker.__file__, str(job_file)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")


def stop_worker(process: subprocess.Popen) -> None:
    """Kill a worker that is still running (the run failed or was interrupted) and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def wait_worker(process: subprocess.Popen) -> None:
    """Wait for a worker; its SQLite error is raised here as the same exception the work would raise in-process."""
    out, err = process.communicate()
    if process.returncode == 0:
        return
    try:
        failure = json.loads(out)
    except ValueError:
        raise RuntimeError(f"a worker process failed (exit code {process.returncode}):\n{err.strip()}") from None
    raise getattr(sqlite3, failure["kind"], sqlite3.OperationalError)(failure["error"])


def _scan_here(conn: sqlite3.Connection, work: list[SourceAggregation], dates: dict,
               done: Callable[[SourceAggregation], None]) -> None:
    for agg in work:
        _finish(conn, agg, agg.statement.sql, {**agg.statement.params, **dates}, done)


def _finish(conn: sqlite3.Connection, agg: SourceAggregation, sql: str, params: dict,
            done: Callable[[SourceAggregation], None]) -> None:
    conn.execute(sql, params)
    conn.execute(agg.index().sql)
    done(agg)
