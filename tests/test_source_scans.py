"""Source scans in worker processes give exactly what one connection gives, and fail as cleanly."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import pytest

from crm_rules.engine import runner, scan_thread, scan_worker, source_scans
from crm_rules.engine.data_binding import bind
from crm_rules.engine.database import open_for_run
from crm_rules.engine.demo_data import DEMO_AS_OF
from crm_rules.engine.metric_sql import RunDates, SourceAggregation, compile_metrics
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.statement import Statement

from small_db import assignments


def _scanned(db: Path, workers: int) -> dict[str, list]:
    rc = open_for_run(db, write=False)
    try:
        conn = rc.conn
        next_day = conn.execute("SELECT date(?, '+1 day')", (DEMO_AS_OF,)).fetchone()[0]
        policy = load_policy("base")
        plan = compile_metrics(policy, bind(conn, "main", policy), RunDates(DEMO_AS_OF, next_day, conn))
        done = []
        source_scans.run_scans(conn, db, list(plan.sources.values()), {"as_of": DEMO_AS_OF, "as_of_next": next_day},
                               1024, done=done.append, workers=workers, min_worker_rows=0)
        tables = [a.name for a in plan.sources.values()] + [a.check_name for a in plan.sources.values()]
        assert sorted(done) == sorted(tables)
        return {name: conn.execute(f"SELECT * FROM temp.{name} ORDER BY 1").fetchall() for name in tables}
    finally:
        rc.close()


def test_workers_compute_the_same_aggregates(demo_db):
    assert _scanned(demo_db, workers=2) == _scanned(demo_db, workers=0)


def test_a_run_with_workers_writes_the_same_run(demo_db, monkeypatch):
    policy = load_policy("base")
    serial = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    plain = source_scans.run_scans
    monkeypatch.setattr(runner, "run_scans", lambda *a, **k: plain(*a, **{**k, "workers": 1, "min_worker_rows": 0}))
    parallel = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    assert parallel.summary == serial.summary
    before, after = assignments(demo_db, serial.run_id), assignments(demo_db, parallel.run_id)
    assert after == before


def _agg(name: str, rows: int, sql: str = "SELECT 1 AS _cid", check: str | None = None) -> SourceAggregation:
    return SourceAggregation(name, Statement(sql), frozenset(), rows, Statement(check) if check else None,
                             cost=rows * 11, check_cost=rows * 3)


def test_jobs_are_the_scans_and_the_row_checks_biggest_first():
    queue = source_scans.jobs([_agg("_crm_agg_a", 10, check="SELECT 0 AS _bad_rows"), _agg("_crm_agg_b", 1000),
                               _agg("_crm_agg_c", 600, check="SELECT 0 AS _bad_rows")])
    assert [(j.name, j.cost) for j in queue] == [("_crm_agg_b", 11000), ("_crm_agg_c", 6600), ("_crm_check_c", 1800),
                                                 ("_crm_agg_a", 110), ("_crm_check_a", 30)]
    assert [j.index is not None for j in queue] == [True, True, False, True, False]  # checks are one row


def test_each_job_of_the_queue_is_taken_once_by_whoever_is_free(tmp_path):
    path = tmp_path / "queue.db"
    scan_worker.create_queue(path, [(f"t{i}", f"SELECT {i}", {"i": i}) for i in range(200)])
    taken: dict[str, list] = {}

    def take(owner):
        with scan_worker.Queue(path, 10) as queue:
            taken[owner] = list(iter(lambda: queue.take(owner), None))

    threads = [threading.Thread(target=take, args=(f"p{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [job[0] for jobs in taken.values() for job in jobs]
    assert sorted(names) == sorted(f"t{i}" for i in range(200))  # every job, none twice
    assert all(job[2] == {"i": int(job[0][1:])} for jobs in taken.values() for job in jobs)
    assert all(jobs == sorted(jobs, key=lambda j: int(j[0][1:])) for jobs in taken.values())  # in queue order
    with scan_worker.Queue(path, 10) as queue:
        assert {owner for owner in queue.owners().values()} <= set(taken)


def test_a_failing_job_leaves_the_rest_of_the_queue_to_nobody(tmp_path):
    path = tmp_path / "queue.db"
    scan_worker.create_queue(path, [("a", "SELECT 1", {}), ("b", "SELECT 2", {}), ("c", "SELECT 3", {})])
    with scan_worker.Queue(path, 10) as queue:
        assert queue.take("w") == ("a", "SELECT 1", {})
        queue.fail()
        assert queue.take("run") is None
        assert queue.owners() == {"a": "w", "b": scan_worker.FAILED, "c": scan_worker.FAILED}


def test_a_failing_worker_scan_raises_the_sqlite_error_and_leaves_no_scratch_files(demo_db, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conn = sqlite3.connect(demo_db)
    bad = _agg("_crm_agg_bad", 10, "SELECT no_such_column FROM orders")
    busy = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT max(i) AS _cid FROM n")  # a second or so: the worker takes the bad job meanwhile
    good = _agg("_crm_agg_good", 1000, busy)
    with pytest.raises(sqlite3.OperationalError, match="no such column: no_such_column"):
        source_scans.run_scans(conn, demo_db, [good, bad], {}, 1024, workers=1, min_worker_rows=0)
    assert list(tmp_path.glob("crm-rules-scan-*")) == []
    conn.close()


def test_small_sources_are_scanned_on_the_run_connection(demo_db, monkeypatch):
    monkeypatch.setattr(source_scans, "start_worker", lambda *a, **k: pytest.fail("no worker process for small tables"))
    assert _scanned(demo_db, workers=0)
    conn = sqlite3.connect(demo_db)
    source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_x", 10), _agg("_crm_agg_y", 5)], {}, 1024, workers=3)
    assert conn.execute("SELECT * FROM temp._crm_agg_y").fetchall() == [(1,)]
    conn.close()


def _base_scans(db) -> dict[str, str]:
    """source -> the SELECT of its GROUP BY, as the base policy compiles on ``db``."""
    conn = sqlite3.connect(db)
    policy = load_policy("base")
    plan = compile_metrics(policy, bind(conn, "main", policy), RunDates(DEMO_AS_OF, "2026-07-01", conn))
    conn.close()
    return {source: agg.query.sql for source, agg in plan.sources.items()}


def test_an_aggregate_two_metrics_need_is_computed_once(demo_db):
    """The churn plugin's last order date and recency_days are both date(MAX(order_date)) before the as-of date."""
    assert _base_scans(demo_db)["orders"].count('date(MAX(r."order_date"))') == 1


def test_rows_after_the_as_of_date_are_dropped_before_the_sort_when_no_aggregate_counts_them(demo_db):
    scans = _base_scans(demo_db)
    assert '\nWHERE r."order_date" < :as_of_next\n' in scans["orders"]
    assert scans["orders"].count(":as_of_next") == 1  # no aggregate tests it again
    # receivables: outstanding amounts cut on the issue date, collection rates on the due date: nothing shared
    assert "WHERE" not in scans["receivables"] and 'r."issue_date" < :as_of_next' in scans["receivables"]


def test_a_failing_scan_on_the_run_connection_stops_the_workers(demo_db, monkeypatch):
    started = []
    plain = source_scans.start_worker
    monkeypatch.setattr(source_scans, "start_worker", lambda *a, **k: started.append(plain(*a, **k)) or started[-1])
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
            "SELECT max(i) AS _cid FROM n")  # minutes of work, unless stopped
    conn = sqlite3.connect(demo_db)
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_bad", 1000, "SELECT no_such_column FROM orders"),
                                               _agg("_crm_agg_slow", 10, slow)], {}, 1024, workers=1, min_worker_rows=0)
    assert len(started) == 1 and started[0].returncode is not None  # killed, not left running
    conn.close()



def _threaded(**kwargs):
    """run_scans with the thread of scan_thread whatever the sizes (and never a worker process)."""
    return {"workers": 1, "min_worker_rows": 10 ** 12, "min_thread_rows": 0, **kwargs}


def test_a_thread_computes_the_same_aggregates(demo_db, monkeypatch):
    monkeypatch.setattr(source_scans, "start_worker", lambda *a, **k: pytest.fail("a thread, not a worker process"))
    owners = []
    plain = scan_thread.JobList.take
    monkeypatch.setattr(scan_thread.JobList, "take", lambda self, owner: owners.append(owner) or plain(self, owner))
    plain_scans = source_scans.run_scans
    monkeypatch.setattr(source_scans, "run_scans", lambda *a, **k: plain_scans(*a, **{**k, **_threaded()}))
    assert _scanned(demo_db, workers=1) == _scanned(demo_db, workers=0)
    assert scan_thread.THREAD in owners and scan_worker.HERE in owners
    assert not [t for t in threading.enumerate() if t.name == "crm-rules scan"]


def test_a_run_with_a_scan_thread_writes_the_same_run(demo_db, monkeypatch):
    policy = load_policy("base")
    serial = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    plain = source_scans.run_scans
    monkeypatch.setattr(runner, "run_scans", lambda *a, **k: plain(*a, **{**k, **_threaded()}))
    threaded = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    assert threaded.summary == serial.summary
    assert assignments(demo_db, threaded.run_id) == assignments(demo_db, serial.run_id)


_SLOW = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
         "SELECT max(i) AS _cid FROM n")  # minutes of work, unless stopped


def test_a_failing_job_of_the_thread_raises_its_error_on_the_run(demo_db):
    conn = sqlite3.connect(demo_db)
    busy = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
            "SELECT max(i) AS _cid FROM n")  # the run's connection is busy while the thread takes the bad job
    with pytest.raises(sqlite3.OperationalError, match="no such column: no_such_column"):
        source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_busy", 1000, busy),
                                               _agg("_crm_agg_bad", 10, "SELECT no_such_column FROM orders"),
                                               _agg("_crm_agg_never", 5)], {}, 1024, **_threaded())
    assert not [t for t in threading.enumerate() if t.name == "crm-rules scan"]
    assert conn.execute("SELECT name FROM temp.sqlite_master WHERE name = '_crm_agg_never'").fetchall() == []
    conn.close()


def test_a_failing_scan_on_the_run_connection_interrupts_the_thread(demo_db):
    conn = sqlite3.connect(demo_db)
    started = time.perf_counter()
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_bad", 1000, "SELECT no_such_column FROM orders"),
                                               _agg("_crm_agg_slow", 10, _SLOW)], {}, 1024, **_threaded())
    assert time.perf_counter() - started < 60  # not the minutes the thread's statement would take
    assert not [t for t in threading.enumerate() if t.name == "crm-rules scan"]
    conn.close()


def test_without_shared_in_memory_databases_the_run_connection_scans_alone(demo_db, monkeypatch):
    def no_memdb(*args, **kwargs):
        raise sqlite3.OperationalError("no such vfs: memdb")

    monkeypatch.setattr(scan_worker, "open_scratch", no_memdb)
    conn = sqlite3.connect(demo_db)
    source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_x", 10), _agg("_crm_agg_y", 5)], {}, 1024, **_threaded())
    assert conn.execute("SELECT * FROM temp._crm_agg_y").fetchall() == [(1,)]
    conn.close()


def test_scans_of_several_runs_at_once_use_in_memory_databases_of_their_own(demo_db):
    results, errors = {}, []

    def scan(n):
        try:
            conn = sqlite3.connect(demo_db)
            source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_x", 10, f"SELECT {n} AS _cid"),
                                                   _agg("_crm_agg_y", 5, f"SELECT {n} + 100 AS _cid")],
                                   {}, 1024, **_threaded())
            results[n] = conn.execute("SELECT * FROM temp._crm_agg_x, temp._crm_agg_y").fetchall()
            conn.close()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=scan, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == {n: [(n, n + 100)] for n in range(4)}
