"""`crm-rules index`: covering-index advice, measured without changing the database unless --create."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from rich.cells import cell_len

import crm_rules.engine.database as database
import crm_rules.engine.index_advisor as advisor
from crm_rules.engine.scan_plan import covering_index

from conftest import AS_OF, file_digest, stored_metrics
from small_db import make_db

SOURCES = ("contracts", "interactions", "orders", "receivables")


def schema(db) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def advice(cli, db, *extra, policy="base") -> dict:
    result = cli("index", "--db", db, "-p", policy, "--as-of", AS_OF, "--json", *extra, ok=True)
    return json.loads(result.output)


def by_table(result: dict) -> dict:
    return {a["table"]: a for a in result["sources"]}


@pytest.fixture
def tiny_db(tmp_path):
    return make_db(tmp_path / "tiny.db", [("c1", "Alpha", "north"), ("c2", "Beta", "south")],
                   orders=[("c1", "2026-05-01", 100, 40), ("c2", "2026-06-01", 80), ("c1", "2025-01-10", 30)],
                   receivables=[("c1", "2026-05-01", "2026-05-31", 100, 100, "2026-05-20")],
                   interactions=[("c2", "2026-06-02", "visit")],
                   contracts=[("c1", "2026-01-01", "2026-12-31")])


@pytest.fixture
def every_index_helps(monkeypatch):
    """Timings of a few thousand rows are noise; these tests are about what is created, not about the gain."""
    monkeypatch.setattr(advisor, "MIN_SPEEDUP", 0.0)


def test_advice_changes_nothing_and_proposes_an_index_per_table(cli, demo_db):
    before_schema, before_bytes = schema(demo_db), file_digest(demo_db)
    result = cli("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    assert schema(demo_db) == before_schema
    assert file_digest(demo_db) == before_bytes  # rolled back: not even a page differs
    out = result.output
    assert "nothing was changed" in out and "rolled back" in out
    assert ('CREATE INDEX "crm_rules_orders_cover" ON "orders"'
            '("customer_id", "amount", "cost", "discount", "order_date")') in out
    for table in SOURCES:
        assert f"crm_rules_{table}_cover" in out
    rows = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(cell_len(line) for line in rows) <= 80  # fits the 80 columns rich assumes for a pipe
    assert sum("│ proposed │" in line for line in rows) == len(SOURCES)  # each name is in its SQL, not folded here


def test_json_reports_columns_timings_and_sizes(cli, demo_db):
    result = advice(cli, demo_db)
    assert result["policy"] == "base" and result["as_of"] == AS_OF
    assert result["create"] is False and result["changed"] is False and result["created"] == []
    tables = by_table(result)
    assert sorted(tables) == list(SOURCES)
    receivables = tables["receivables"]
    assert receivables["columns"] == ["customer_id", "amount", "due_date", "issue_date", "paid_amount", "paid_date"]
    for a in tables.values():
        assert a["existing_index"] is None and a["proposed_index"] == f"crm_rules_{a['table']}_cover"
        assert a["proposed_sql"].startswith(f'CREATE INDEX "{a["proposed_index"]}" ON "{a["table"]}"("customer_id"')
        assert a["rows"] > 0 and a["seconds_now"] > 0 and a["seconds_with_index"] > 0 and a["speedup"] > 0
        assert a["index_bytes"] > 0 and a["created"] is False
        assert "NOT INDEXED" not in a["plan_now"] and "SCAN r" in a["plan_now"]  # the plan SQLite reports


def test_create_keeps_the_indexes_and_the_engine_then_uses_them(cli, demo_db, every_index_helps):
    before = {r for r in schema(demo_db)}
    first = cli("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--create", ok=True)
    assert "created crm_rules_contracts_cover, crm_rules_interactions_cover" in first.output
    assert "nothing was changed" not in first.output
    added = {r[1] for r in schema(demo_db)} - {r[1] for r in before}
    assert added == {f"crm_rules_{t}_cover" for t in SOURCES}

    again = advice(cli, demo_db)
    assert again["changed"] is False
    conn = sqlite3.connect(demo_db)
    try:
        for table, a in by_table(again).items():
            assert a["existing_index"] == f"crm_rules_{table}_cover" and a["proposed_index"] is None
            assert covering_index(conn, "main", table, "customer_id", set(a["columns"])) == a["existing_index"]
            assert f"USING COVERING INDEX {a['existing_index']}" in a["plan_now"]
            assert a["index_bytes"] > 0
    finally:
        conn.close()


def test_a_run_with_the_indexes_grades_as_without(cli, demo_db, every_index_helps):
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    cli("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--create", ok=True)
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    conn = sqlite3.connect(demo_db)
    try:
        runs = [conn.execute("SELECT customer_id, tier, subgrade, stage, service_level FROM crm_assignments "
                             "WHERE run_id = ? ORDER BY customer_id", (run,)).fetchall() for run in (1, 2)]
    finally:
        conn.close()
    assert [r[:5] for r in runs[0]] == [r[:5] for r in runs[1]] and runs[0]
    # The index hands each customer's rows to SUM in another order, so a float sum may differ in its last bit.
    metrics = [stored_metrics(demo_db, run) for run in (1, 2)]
    assert list(metrics[0]) == list(metrics[1])
    for customer, was in metrics[0].items():
        now = metrics[1][customer]
        assert list(now) == list(was)
        for name, value in was.items():
            if isinstance(value, float):
                assert now[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
            else:
                assert now[name] == value, name


def test_create_keeps_nothing_that_does_not_help(cli, tiny_db, monkeypatch):
    monkeypatch.setattr(advisor, "MIN_SPEEDUP", 1e9)
    before = schema(tiny_db)
    result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, "--create", ok=True)
    assert "created nothing" in result.output and "does not help" in result.output
    assert schema(tiny_db) == before


def test_a_users_own_covering_index_is_recognised(cli, tiny_db):
    conn = sqlite3.connect(tiny_db)
    conn.execute("CREATE INDEX mine ON interactions(customer_id, kind, date, note)")  # wider, other order: still covers
    conn.close()
    tables = by_table(advice(cli, tiny_db))
    assert tables["interactions"]["existing_index"] == "mine" and tables["interactions"]["proposed_sql"] is None
    assert tables["orders"]["existing_index"] is None and tables["orders"]["proposed_index"] == "crm_rules_orders_cover"


def test_an_outdated_index_of_ours_is_kept_and_named(cli, tiny_db):
    conn = sqlite3.connect(tiny_db)
    conn.execute("CREATE INDEX crm_rules_orders_cover ON orders(customer_id, amount)")  # made for a smaller policy
    conn.close()
    result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, ok=True)
    assert "crm_rules_orders_cover does not hold cost, discount, order_date" in result.output
    assert 'CREATE INDEX "crm_rules_orders_cover_2" ON "orders"' in result.output  # never drops anything
    assert "crm_rules_orders_cover" in {r[1] for r in schema(tiny_db)}


def test_chinese_table_names_are_quoted_and_aligned(cli, tmp_path):
    db = make_db(tmp_path / "zh.db", [("c1", "华东贸易有限公司", "华东")], orders=[("c1", "2026-05-01", 1200)])
    conn = sqlite3.connect(db)
    conn.execute('ALTER TABLE orders RENAME TO "订单 表"')
    conn.close()
    policy = tmp_path / "p.yaml"
    policy.write_text("data: {orders: {table: 订单 表}}\n"
                      "metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
                      "tiers:\n  levels:\n    - {id: A, label: 重点, when: 'revenue_12m >= 1000'}\n"
                      "    - {id: B, default: true}\n", encoding="utf-8")
    result = advice(cli, db, policy=policy)
    (a,) = result["sources"]
    assert a["proposed_sql"] == ('CREATE INDEX "crm_rules_订单 表_cover" ON "订单 表"'
                                 '("customer_id", "amount", "order_date")')
    table = cli("index", "--db", db, "-p", policy, "--as-of", AS_OF, ok=True).output.splitlines()
    rows = [line for line in table if line[:1] in "┏┃┡│└"]
    assert any("订单 表" in line for line in rows)
    assert len({cell_len(line) for line in rows}) == 1  # wide characters counted as two columns


def test_the_connection_may_create_only_its_own_indexes(tiny_db):
    conn = advisor._open(tiny_db)
    try:
        for sql in ("DROP TABLE contracts", "CREATE INDEX other ON orders(amount)", "ALTER TABLE orders ADD x",
                    "DELETE FROM orders", "CREATE TABLE t (x)"):
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                conn.execute(sql)
        conn.execute("BEGIN")
        conn.execute("CREATE INDEX crm_rules_probe ON orders(customer_id)")
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute("DROP INDEX crm_rules_probe")  # not even its own: nothing is ever dropped
        conn.execute("ROLLBACK")
    finally:
        conn.close()


# ---- errors ------------------------------------------------------------------


def _patched_connect(monkeypatch, setup):
    real = advisor.connect

    def patched(*args, **kwargs):
        conn = real(*args, **kwargs)
        setup(conn)
        return conn

    monkeypatch.setattr(advisor, "connect", patched)


def test_read_only_database_is_a_clean_error(cli, tiny_db, monkeypatch):
    before = file_digest(tiny_db)
    _patched_connect(monkeypatch, lambda conn: conn.execute("PRAGMA query_only = ON"))
    result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the database is read-only" in result.output and "writable copy" in result.output
    assert file_digest(tiny_db) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes read-only files")
def test_read_only_file_is_a_clean_error(cli, tiny_db):
    tiny_db.chmod(0o444)
    result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF)
    assert result.exit_code == 1 and "read-only" in result.output


def test_locked_database_is_a_clean_error(cli, tiny_db, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(tiny_db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writing
    try:
        result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "locked by another program" in result.output and "run again when it is done" in result.output


def test_bad_arguments_are_clean_errors(cli, tiny_db, tmp_path):
    for args, message in [
        (("--db", tmp_path / "missing.db", "-p", "base"), "database not found"),
        (("--db", tiny_db, "-p", "no_such_policy"), "no_such_policy"),
        (("--db", tiny_db, "-p", "base", "--as-of", "30.06.2026"), "is not a date"),
    ]:
        result = cli("index", *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_a_policy_the_data_cannot_serve_is_a_clean_error(cli, tiny_db, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("data: {orders: {columns: {margin: margin}}}\n"
                      "metrics: {m: {sum: margin, window: 12 months}}\n"
                      "tiers:\n  levels:\n    - {id: A, when: 'm > 0'}\n    - {id: B, default: true}\n", encoding="utf-8")
    result = cli("index", "--db", tiny_db, "-p", policy, "--as-of", AS_OF)
    assert result.exit_code == 1 and "margin" in result.output and "Traceback" not in result.output


def test_not_a_database_is_a_clean_error(cli, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all " * 100)
    result = cli("index", "--db", junk, "-p", "base", "--as-of", AS_OF)
    assert result.exit_code == 1 and "not a SQLite database" in result.output
