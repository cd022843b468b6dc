"""Source scans in worker processes give exactly what one connection gives, and fail as cleanly."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest

from crm_rules.engine import runner, source_scans
from crm_rules.engine.data_binding import bind
from crm_rules.engine.database import open_for_run
from crm_rules.engine.demo_data import DEMO_AS_OF
from crm_rules.engine.metric_sql import RunDates, SourceAggregation, compile_metrics
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.sql_layers import Statement

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
        assert sorted(a.name for a in done) == sorted(a.name for a in plan.sources.values())
        return {a.name: conn.execute(f"SELECT * FROM {a.target} ORDER BY _cid").fetchall() for a in plan.sources.values()}
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


def _agg(name: str, rows: int, sql: str = "SELECT 1 AS _cid") -> SourceAggregation:
    return SourceAggregation(name, Statement(sql), frozenset(), rows)


def test_lanes_put_the_biggest_scan_on_the_run_connection_and_balance_the_rest():
    lanes = source_scans.lanes([_agg("a", 10), _agg("b", 1000), _agg("c", 600), _agg("d", 500)], 2)
    assert [[a.name for a in lane] for lane in lanes] == [["b", "a"], ["c", "d"]]
    assert len(source_scans.lanes([_agg("a", 5)], 4)) == 1


def test_a_failing_worker_scan_raises_the_sqlite_error_and_leaves_no_scratch_files(demo_db, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conn = sqlite3.connect(demo_db)
    bad = _agg("_crm_agg_bad", 10, "SELECT no_such_column FROM orders")
    good = _agg("_crm_agg_good", 1000, "SELECT customer_id AS _cid FROM orders GROUP BY 1")
    with pytest.raises(sqlite3.OperationalError, match="no such column: no_such_column"):
        source_scans.run_scans(conn, demo_db, [good, bad], {}, 1024, workers=1, min_worker_rows=0)
    assert list(tmp_path.glob("crm-rules-scan-*")) == []
    conn.close()


def test_small_sources_are_scanned_on_the_run_connection(demo_db, monkeypatch):
    monkeypatch.setattr(source_scans, "start_worker", lambda *a: pytest.fail("no worker process for small tables"))
    assert _scanned(demo_db, workers=0)
    conn = sqlite3.connect(demo_db)
    source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_x", 10), _agg("_crm_agg_y", 5)], {}, 1024, workers=3)
    assert conn.execute("SELECT * FROM temp._crm_agg_y").fetchall() == [(1,)]
    conn.close()


def test_an_aggregate_two_metrics_need_is_computed_once(demo_db):
    """The churn plugin's last order date and recency_days are both date(MAX(order_date)) before the as-of date."""
    conn = sqlite3.connect(demo_db)
    policy = load_policy("base")
    plan = compile_metrics(policy, bind(conn, "main", policy), RunDates(DEMO_AS_OF, "2026-07-01", conn))
    select = plan.sources["orders"].query.sql
    assert select.count('date(MAX(CASE WHEN r."order_date" < :as_of_next THEN r."order_date" END))') == 1
    conn.close()


def test_a_failing_scan_on_the_run_connection_stops_the_workers(demo_db, monkeypatch):
    started = []
    plain = source_scans.start_worker
    monkeypatch.setattr(source_scans, "start_worker", lambda *a: started.append(plain(*a)) or started[-1])
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
            "SELECT max(i) AS _cid FROM n")  # minutes of work, unless stopped
    conn = sqlite3.connect(demo_db)
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        source_scans.run_scans(conn, demo_db, [_agg("_crm_agg_bad", 1000, "SELECT no_such_column FROM orders"),
                                               _agg("_crm_agg_slow", 10, slow)], {}, 1024, workers=1, min_worker_rows=0)
    assert len(started) == 1 and started[0].returncode is not None  # killed, not left running
    conn.close()
