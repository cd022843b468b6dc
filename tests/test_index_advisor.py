"""`crm-rules index`: covering-index advice, measured without changing the database unless --create."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from rich.cells import cell_len

try:
    import resource
except ImportError:  # not on Windows
    resource = None

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
    assert "crm_rules_orders_cover does not hold cost, discount, order_date" in " ".join(result.output.split())
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


# ---- all or nothing: a failure partway changes nothing, and says so truthfully -----------------------------


def _index_names(db) -> set[str]:
    return {r[1] for r in schema(db) if r[0] == "index" and r[1].startswith("crm_rules_")}


def _on_timing(monkeypatch, call: int, action):
    """Run ``action`` when the advisor times its ``call``-th statement (source 1 is measured by then)."""
    real, calls = advisor.time_statements, []

    def timed(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(advisor, "time_statements", timed)


def test_a_full_disk_partway_keeps_no_index(cli, demo_db, every_index_helps, monkeypatch):
    # Room for the indexes of contracts and interactions (about 140 pages), not for the one of orders: with a
    # commit per index the first two stayed in the database while the message said "nothing was changed".
    before_schema, before_bytes = schema(demo_db), file_digest(demo_db)
    _patched_connect(monkeypatch, lambda conn: conn.execute(
        f"PRAGMA main.max_page_count = {conn.execute('PRAGMA main.page_count').fetchone()[0] + 150}"))
    result = cli("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--create")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no room to build an index" in result.output and "nothing was changed" in result.output
    assert schema(demo_db) == before_schema and file_digest(demo_db) == before_bytes


@pytest.mark.skipif(resource is None, reason="no file size limits here")
def test_a_disk_error_partway_leaves_the_file_byte_for_byte(cli, demo_db, every_index_helps, monkeypatch):
    # A real I/O error (the file may not grow past a limit, as with `ulimit -f`) in rollback-journal mode, while
    # the page cache spills the third index into the file: SQLite then ends the transaction itself and leaves a
    # hot journal, to be played back here, not by whichever program opens the database next.
    sizes = {a["table"]: a["index_bytes"] for a in advice(cli, demo_db)["sources"]}
    conn = sqlite3.connect(demo_db)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    before = file_digest(demo_db)
    _patched_connect(monkeypatch, lambda conn: conn.execute("PRAGMA main.cache_size = 20"))
    room = sizes["contracts"] + sizes["interactions"] + sizes["orders"] // 2
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(demo_db) + room, hard))
    try:
        result = cli("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--create")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "(disk I/O error); nothing was changed" in result.output
    assert "ulimit -f" in result.output  # the hint names what a disk I/O error often is
    assert not os.path.exists(f"{demo_db}-journal")
    assert file_digest(demo_db) == before and _index_names(demo_db) == set()


def test_ctrl_c_partway_keeps_no_index_and_says_so(cli, tiny_db, every_index_helps, monkeypatch):
    before = file_digest(tiny_db)

    def interrupt():
        raise KeyboardInterrupt

    _on_timing(monkeypatch, 3, interrupt)
    result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, "--create")
    assert result.exit_code == 130, result.output  # the exit code of an interrupt, as before
    assert "interrupted; nothing was changed" in result.output and "Traceback" not in result.output
    assert file_digest(tiny_db) == before and _index_names(tiny_db) == set()


def test_ctrl_c_right_after_the_commit_names_the_indexes_kept(cli, tiny_db, every_index_helps, monkeypatch):
    real = advisor._commit

    def commit_then_interrupt(conn):
        real(conn)
        raise KeyboardInterrupt  # Ctrl-C while COMMIT ran: Python raises it once the commit is done

    monkeypatch.setattr(advisor, "_commit", commit_then_interrupt)
    result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, "--create")
    assert result.exit_code == 130
    names = sorted(f"crm_rules_{t}_cover" for t in SOURCES)
    assert _index_names(tiny_db) == set(names)
    assert f"interrupted; {', '.join(names)} were created and kept" in result.output
    assert 'DROP INDEX "crm_rules_orders_cover"' in result.output and "nothing was changed" not in result.output


def test_a_reader_at_the_commit_fails_it_and_no_index_is_kept(cli, tiny_db, every_index_helps, monkeypatch):
    # Rollback-journal mode: the commit must wait for readers.  One that starts while the second table is measured
    # makes the commit fail as locked; with a commit per index the first one stayed, said to be "nothing".
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    reader = sqlite3.connect(tiny_db, isolation_level=None)

    def start_reading():
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM customers").fetchone()

    _on_timing(monkeypatch, 2, start_reading)
    try:
        result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, "--create")
    finally:
        reader.close()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "locked by another program" in result.output and "nothing was changed" in result.output
    assert _index_names(tiny_db) == set()


def test_no_other_program_can_write_between_two_indexes(cli, tiny_db, every_index_helps, monkeypatch):
    # The advice holds the write lock from its start to its commit.  With a transaction per index, a program
    # that took the lock between two of them made the next one fail as locked, the first one kept.
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    other = sqlite3.connect(tiny_db, isolation_level=None, timeout=0)
    refused = []
    real_plan, plans = advisor._plan, []

    def plan_then_try_to_write(*args):
        plans.append(1)
        if len(plans) == 2:  # the second table, its first statement
            try:
                other.execute("BEGIN IMMEDIATE")  # kept until the advice is done
            except sqlite3.OperationalError as exc:
                refused.append(str(exc))
        return real_plan(*args)

    monkeypatch.setattr(advisor, "_plan", plan_then_try_to_write)
    try:
        result = cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, "--create")
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    assert result.exit_code == 0, result.output
    assert refused == ["database is locked"]
    assert _index_names(tiny_db) == {f"crm_rules_{t}_cover" for t in SOURCES}


# ---- what the end of the output says --------------------------------------------------------------------------


def test_when_every_index_exists_nothing_is_said_to_be_rolled_back(cli, tiny_db, every_index_helps):
    cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, "--create", ok=True)
    before = file_digest(tiny_db)
    for extra in ((), ("--create",)):
        out = " ".join(cli("index", "--db", tiny_db, "-p", "base", "--as-of", AS_OF, *extra, ok=True).output.split())
        assert ("nothing was changed: every table the policy reads has a covering index a run uses already, "
                "so there is no index to propose") in out
        assert "rolled back" not in out and "created nothing" not in out and "--create" not in out
    assert file_digest(tiny_db) == before


def _orders_policy(tmp_path, table: str):
    policy = tmp_path / "p.yaml"
    policy.write_text(f"data: {{orders: {{table: {table}}}}}\n"
                      "metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
                      "tiers:\n  levels:\n    - {id: A, when: 'revenue_12m >= 100'}\n    - {id: B, default: true}\n",
                      encoding="utf-8")
    return policy


def test_a_view_gets_no_index_and_the_end_says_why(cli, tiny_db, tmp_path):
    conn = sqlite3.connect(tiny_db)
    conn.execute("CREATE VIEW recent_orders AS SELECT * FROM orders")
    conn.close()
    out = " ".join(cli("index", "--db", tiny_db, "-p", _orders_policy(tmp_path, "recent_orders"), "--as-of", AS_OF,
                       ok=True).output.split())  # the prose lines wrap to the terminal
    assert "note: recent_orders: a view: an index belongs on the table it reads" in out
    assert ("nothing was changed, as there is no index to propose: recent_orders cannot be indexed "
            "(see the note above)") in out
    assert "rolled back" not in out


def test_a_virtual_table_is_noted_not_an_error(cli, tiny_db, tmp_path):
    conn = sqlite3.connect(tiny_db)
    conn.execute("CREATE VIRTUAL TABLE orders_text USING fts5(customer_id, order_date, amount)")
    conn.execute("INSERT INTO orders_text SELECT customer_id, order_date, amount FROM orders")
    conn.commit()
    conn.close()
    before = file_digest(tiny_db)
    result = cli("index", "--db", tiny_db, "-p", _orders_policy(tmp_path, "orders_text"), "--as-of", AS_OF,
                 "--create")
    assert result.exit_code == 0, result.output  # was: "virtual tables may not be indexed", and no advice at all
    assert "note: orders_text: a virtual table: SQLite cannot index it" in " ".join(result.output.split())
    assert file_digest(tiny_db) == before


def test_two_sources_on_one_table_get_two_names(cli, tmp_path):
    db = make_db(tmp_path / "events.db", [("c1", "Alpha", "north")])
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE events (customer_id TEXT, day TEXT, amount REAL, kind TEXT)")
    conn.execute("INSERT INTO events VALUES ('c1', '2026-05-01', 100, 'visit')")
    conn.commit()
    conn.close()
    policy = tmp_path / "p.yaml"
    policy.write_text("data:\n  orders: {table: events, date: day}\n  interactions: {table: events, date: day}\n"
                      "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
                      "  visits_12m: {count: interactions, where: \"kind = 'visit'\", window: 12 months}\n"
                      "tiers:\n  levels:\n    - {id: A, when: 'revenue_12m >= 100'}\n    - {id: B, default: true}\n",
                      encoding="utf-8")
    names = [a["proposed_index"] for a in advice(cli, db, policy=policy)["sources"]]
    assert sorted(names) == ["crm_rules_events_cover", "crm_rules_events_cover_2"]  # was the same name twice


def test_the_connection_may_not_touch_the_users_runs(tiny_db):
    conn = sqlite3.connect(tiny_db)
    conn.execute("CREATE TABLE crm_runs (run_id INTEGER, status TEXT)")
    conn.execute("CREATE INDEX crm_runs_status ON crm_runs(status)")
    conn.execute("INSERT INTO crm_runs VALUES (1, 'succeeded')")
    conn.commit()
    conn.close()
    before = file_digest(tiny_db)
    conn = advisor._open(tiny_db)
    try:
        for sql in ("DELETE FROM crm_runs", "UPDATE crm_runs SET status = 'x'", "INSERT INTO crm_runs VALUES (2, 'x')",
                    "DROP TABLE crm_runs", "CREATE TABLE crm_x (x)", "DROP INDEX crm_runs_status",
                    "CREATE INDEX crm_other ON crm_runs(run_id)", "ALTER TABLE crm_runs ADD x", "ANALYZE",
                    "REINDEX crm_runs_status"):
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                conn.execute(sql)
        conn.execute("CREATE TEMP TABLE scratch AS SELECT * FROM crm_runs")  # reading them, into temp: fine
    finally:
        conn.close()
    assert file_digest(tiny_db) == before


def test_a_policy_that_reads_no_table_gets_no_empty_table(cli, tiny_db, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics: {limit: {attribute: credit_limit}}\n"
                      "tiers:\n  levels:\n    - {id: A, when: 'limit >= 100'}\n    - {id: B, default: true}\n",
                      encoding="utf-8")
    out = cli("index", "--db", tiny_db, "-p", policy, "--as-of", AS_OF, ok=True).output
    assert "the policy reads no source table" in out and "rolled back" not in out and "┏" not in out
