"""``data.<source>.where``: a row filter for every metric of a source table (cancelled orders, void invoices).

A filter must grade exactly as the same data without the rows it drops, keep the rows it cannot decide (a NULL
status), leave the SQL of a policy without one as it was, and show what it did: in the run's notes, in explain,
in the rows a data problem lists.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.data_binding import bind
from crm_rules.engine.errors import DataError, PolicyError
from crm_rules.engine.explain import explain_customer
from crm_rules.engine.metric_sql import RunDates, compile_metrics
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.policy_tests import run_policy_tests
from crm_rules.engine.runner import apply_policy
from conftest import AS_OF, stored_metrics

FILTERED = """
extends: base
name: filtered
data:
  orders:
    columns: {status: {column: 状态, type: text}}
    where: "status != '已取消'"
"""
MAPPED_ONLY = """
extends: base
name: filtered
data:
  orders:
    columns: {status: {column: 状态, type: text}}
"""


def _with_status(db: Path) -> Path:
    """A tenth of the orders cancelled, a tenth without a status (NULL), the rest done."""
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE orders ADD COLUMN 状态 TEXT")
    conn.execute("UPDATE orders SET 状态 = CASE id % 10 WHEN 0 THEN '已取消' WHEN 1 THEN NULL ELSE '已完成' END")
    conn.commit()
    conn.close()
    return db


def _policy(tmp_path: Path, text: str, name: str = "policy.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def _grades(db: Path, run_id: int) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT customer_id, tier, subgrade, stage, service_level FROM crm_assignments "
                            "WHERE run_id = ? ORDER BY customer_id", (run_id,)).fetchall()
    finally:
        conn.close()


def _execute(db: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(sql, args).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def test_a_filtered_run_grades_as_the_data_without_the_dropped_rows(demo_db, tmp_path):
    _with_status(demo_db)
    deleted = tmp_path / "deleted.db"
    shutil.copy(demo_db, deleted)
    _execute(deleted, "DELETE FROM orders WHERE 状态 = '已取消'")
    filtered = apply_policy(demo_db, _policy(tmp_path, FILTERED), AS_OF)
    plain = apply_policy(deleted, _policy(tmp_path, MAPPED_ONLY, "mapped.yaml"), AS_OF)
    assert _grades(demo_db, filtered.run_id) == _grades(deleted, plain.run_id)
    assert stored_metrics(demo_db, filtered.run_id) == stored_metrics(deleted, plain.run_id)
    # and the filter changed something: without it the cancelled orders count
    unfiltered = apply_policy(demo_db, _policy(tmp_path, MAPPED_ONLY, "mapped.yaml"), AS_OF)
    assert stored_metrics(demo_db, unfiltered.run_id) != stored_metrics(demo_db, filtered.run_id)


def test_the_run_notes_how_many_rows_the_filter_dropped(demo_db, tmp_path):
    _with_status(demo_db)
    dropped, dated = _execute(demo_db, "SELECT count(CASE WHEN 状态 = '已取消' THEN 1 END), count(*) FROM orders "
                                       "WHERE order_date <= ?", AS_OF)[0]
    outcome = apply_policy(demo_db, _policy(tmp_path, FILTERED), AS_OF)
    note = next(n for n in outcome.notes if n.startswith("data.orders.where"))
    assert note == (f"data.orders.where (status != '已取消') drops {dropped:,} of the {dated:,} rows of 'orders' "
                    f"dated on or before the as-of date {AS_OF}; the metrics read the other {dated - dropped:,}")
    stored = json.loads(_execute(demo_db, "SELECT notes FROM crm_runs WHERE run_id = ?", outcome.run_id)[0][0])
    assert note in stored


def test_a_filter_that_drops_nothing_or_everything_says_so(demo_db, tmp_path):
    _with_status(demo_db)
    none = apply_policy(demo_db, _policy(tmp_path, FILTERED.replace("已取消", 'Cancelled')), AS_OF, dry_run=True)
    assert any("drops none of the" in n and "write the filter with the data's codes" in n for n in none.notes)
    every = apply_policy(demo_db, _policy(tmp_path, FILTERED.replace("status != '已取消'", "amount < -1e300")), AS_OF,
                         dry_run=True)
    note = next(n for n in every.notes if n.startswith("data.orders.where"))
    assert "drops every one of the" in note and "is the filter the right way round?" in note
    # not also "no row is dated on or before the as-of date" (there are such rows: the filter dropped them)
    assert not any("is dated on or before the as-of date" in n and n.startswith("no row") for n in every.notes)


def test_rows_without_a_status_are_kept(tmp_path):
    from small_db import make_db

    db = make_db(tmp_path / "crm.db", [("C1", "一", "华东"), ("C2", "二", "华北")],
                 orders=[("C1", "2026-06-01", 100), ("C1", "2026-06-02", 1000), ("C1", "2026-06-03", 10),
                         ("C2", "2026-06-01", 7)])
    _execute(db, "ALTER TABLE orders ADD COLUMN 状态 TEXT")
    _execute(db, "UPDATE orders SET 状态 = CASE amount WHEN 1000 THEN '已取消' WHEN 10 THEN NULL ELSE '已完成' END")
    outcome = apply_policy(db, _policy(tmp_path, FILTERED), AS_OF)
    metrics = stored_metrics(db, outcome.run_id)
    assert metrics["C1"]["revenue_12m"] == 110 and metrics["C1"]["orders_12m"] == 2  # NULL status kept
    assert metrics["C2"]["revenue_12m"] == 7
    # who wants those out says so
    strict = FILTERED.replace("status != '已取消'", "status is not null and status != '已取消'")
    metrics = stored_metrics(db, apply_policy(db, _policy(tmp_path, strict), AS_OF).run_id)
    assert metrics["C1"]["revenue_12m"] == 100 and metrics["C1"]["orders_12m"] == 1


def test_dropped_rows_are_not_checked_but_the_filter_columns_are(tmp_path):
    from small_db import make_db

    db = make_db(tmp_path / "crm.db", [("C1", "一", "华东")],
                 orders=[("C1", "2026-06-01", 100), ("C1", "2026-06-02", 5), ("C9", "2026-06-03", 10)])
    _execute(db, "ALTER TABLE orders ADD COLUMN 状态 TEXT")
    _execute(db, "ALTER TABLE orders ADD COLUMN 作废 REAL")
    # a cancelled order with text for its amount and one of a customer who does not exist: not the policy's data
    _execute(db, "UPDATE orders SET 状态 = '已取消', amount = '1,000' WHERE amount = 5")
    _execute(db, "UPDATE orders SET 状态 = '已取消' WHERE customer_id = 'C9'")
    outcome = apply_policy(db, _policy(tmp_path, FILTERED), AS_OF)
    assert stored_metrics(db, outcome.run_id)["C1"]["revenue_12m"] == 100
    # a kept row with text in its amount is refused, and the query listing it runs as it is shown
    _execute(db, "UPDATE orders SET amount = 'abc' WHERE amount = 100")
    with pytest.raises(DataError) as info:
        apply_policy(db, _policy(tmp_path, FILTERED), AS_OF)
    message = str(info.value)
    assert "'abc' (customer C1)" in message and "'1,000'" not in message
    # a number column the filter reads is checked in every row, also those it would drop
    _execute(db, "UPDATE orders SET amount = 100 WHERE amount = 'abc'")
    _execute(db, "UPDATE orders SET 作废 = 0")
    _execute(db, "UPDATE orders SET 作废 = 'yes' WHERE customer_id = 'C9'")
    void = ("extends: base\ndata:\n  orders:\n    columns: {void: {column: 作废}}\n    where: \"void = 0\"\n")
    with pytest.raises(DataError) as info:
        apply_policy(db, _policy(tmp_path, void), AS_OF)
    assert "table 'orders', column '作废': 'yes' (customer C9)" in str(info.value)


def test_the_listing_of_bad_rows_runs_as_shown(tmp_path):
    from small_db import make_db

    db = make_db(tmp_path / "crm.db", [("C1", "一", "华东")],
                 orders=[("C1", f"2026-06-{d:02d}", 100) for d in range(1, 9)])
    _execute(db, "ALTER TABLE orders ADD COLUMN 状态 TEXT")
    _execute(db, "UPDATE orders SET 状态 = '已完成', amount = 'x' || id")  # 8 bad rows: 3 shown and a listing
    _execute(db, "UPDATE orders SET 状态 = '已取消' WHERE id = 1")
    with pytest.raises(DataError) as info:
        apply_policy(db, _policy(tmp_path, FILTERED), AS_OF)
    listing = re.search(r"list them with: (SELECT .*)", str(info.value)).group(1)
    assert "'已取消'" in listing and ":ow" not in listing
    assert len(_execute(db, listing)) == 7  # the 7 kept ones, not the cancelled one


def test_explain_says_how_many_of_the_customers_rows_the_filter_dropped(demo_db, tmp_path, cli):
    _with_status(demo_db)
    customer, rows, dropped = _execute(
        demo_db, "SELECT customer_id, count(*), count(CASE WHEN 状态 = '已取消' THEN 1 END) FROM orders "
                 "WHERE order_date <= ? GROUP BY 1 HAVING count(CASE WHEN 状态 = '已取消' THEN 1 END) > 0 "
                 "ORDER BY 1 LIMIT 1", AS_OF)[0]
    policy = _policy(tmp_path, FILTERED)
    expected = [{"source": "orders", "table": "orders", "where": "status != '已取消'", "rows": rows,
                 "dropped": dropped}]
    computed = explain_customer(demo_db, policy, customer, AS_OF)
    assert computed["source"]["path"] == "computed" and computed["source_filters"] == expected
    apply_policy(demo_db, policy, AS_OF)
    stored = explain_customer(demo_db, policy, customer, AS_OF)
    assert stored["source"]["path"] == "stored" and stored["source_filters"] == expected
    result = cli("explain", customer, "--db", demo_db, "--policy", tmp_path / "policy.yaml", "--as-of", AS_OF,
                 ok=True)
    assert f"drops {dropped:,} of the customer's {rows:,} rows of 'orders'" in " ".join(result.output.split())
    # a policy without a filter lists none
    assert explain_customer(demo_db, load_policy("base"), customer, AS_OF)["source_filters"] == []


def test_explain_reads_no_big_table_whole_to_count_the_customers_rows(demo_db, tmp_path, cli, monkeypatch):
    """explain answers in under a second at any size: without an index to find the customer's rows by, a big table
    is not scanned to count them."""
    from crm_rules.engine import source_filters

    _with_status(demo_db)
    policy = _policy(tmp_path, FILTERED)
    customer = "C000002"
    indexes = [name for (name,) in _execute(demo_db, "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                                     "tbl_name = 'orders' AND sql IS NOT NULL")]
    counted = explain_customer(demo_db, policy, customer, AS_OF)["source_filters"][0]
    assert indexes and counted["rows"] > 0  # the demo's orders have an index on the customer
    monkeypatch.setattr(source_filters, "MAX_SCANNED_ROWS", 0)  # every table is "big"
    assert explain_customer(demo_db, policy, customer, AS_OF)["source_filters"][0] == counted  # found by its index
    for name in indexes:
        _execute(demo_db, f'DROP INDEX "{name}"')
    shown = explain_customer(demo_db, policy, customer, AS_OF)["source_filters"][0]
    assert shown == {**counted, "rows": None, "dropped": None}
    out = cli("explain", customer, "--db", demo_db, "--policy", tmp_path / "policy.yaml", "--as-of", AS_OF, ok=True)
    assert ("the customer's rows were not counted: the table is big and has no index on its customer column "
            "(`crm-rules index` proposes one)") in " ".join(out.output.split())


def test_policy_tests_give_the_status_column(tmp_path):
    (tmp_path / "cancel.yaml").write_text(FILTERED, encoding="utf-8")
    (tmp_path / "cancel.test.yaml").write_text("""
as_of: 2026-06-30
cases:
  - name: a cancelled big order does not count
    orders:
      - {date: -10d, amount: 900_000, status: 已取消}
      - {date: -20d, amount: 1_000, status: 已完成}
      - {date: -30d, amount: 2_000}
    expect: {revenue_12m: 3_000, orders_12m: 2, tier: A}
  - name: only cancelled orders
    orders: [{date: -10d, amount: 900_000, status: 已取消}]
    expect: {revenue_12m: 0, orders_12m: 0}
""", encoding="utf-8")
    report = run_policy_tests([tmp_path / "cancel.test.yaml"])
    assert report["failed"] == 0 and report["passed"] == 2, report["failures"]


def test_a_child_replaces_or_removes_the_inherited_filter(tmp_path):
    (tmp_path / "parent.yaml").write_text(FILTERED, encoding="utf-8")
    child = _policy(tmp_path, "extends: parent.yaml\nname: child\ndata:\n  orders:\n    where: \"status = '已完成'\"\n",
                    "child.yaml")
    assert child.data.sources["orders"].where.text == "status = '已完成'"
    assert child.data.sources["orders"].columns["status"].column == "状态"  # the rest of data still merges
    gone = _policy(tmp_path, "extends: parent.yaml\nname: gone\ndata:\n  orders:\n    where: null\n", "gone.yaml")
    assert gone.data.sources["orders"].where is None
    kept = _policy(tmp_path, "extends: parent.yaml\nname: kept\ndata:\n  orders:\n    columns: {channel: {column: 渠道, type: text}}\n",
                   "kept.yaml")
    assert kept.data.sources["orders"].where.text == "status != '已取消'"
    assert len({child.sha256, gone.sha256, kept.sha256, load_policy(tmp_path / "parent.yaml").sha256}) == 4
    # an error in the inherited filter names the parent's file
    (tmp_path / "parent.yaml").write_text(FILTERED.replace("status !=", "stauts !="), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "kept.yaml")
    assert f"{tmp_path / 'parent.yaml'}:7:13: data.orders.where: unknown orders column 'stauts'" in str(info.value)


def test_a_sources_file_may_hold_the_filter(tmp_path):
    (tmp_path / "sources.yaml").write_text("orders:\n  columns: {status: {column: 状态, type: text}}\n"
                                           "  where: \"stauts != '已取消'\"\n", encoding="utf-8")
    (tmp_path / "p.yaml").write_text("data: sources.yaml\ntiers:\n  levels: [{id: A, default: true}]\n",
                                     encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "p.yaml")
    assert (f"{tmp_path / 'sources.yaml'}:3:11: data.orders.where: unknown orders column 'stauts'; did you mean "
            f"'status'?") in str(info.value)


def test_a_missing_filter_column_names_the_filter(demo_db, tmp_path, cli):
    policy = tmp_path / "policy.yaml"
    policy.write_text(FILTERED, encoding="utf-8")
    result = cli("validate", policy, "--db", demo_db)
    assert result.exit_code == 1
    assert (f"{policy}:6:32: table 'orders' has no column '状态' (data.orders.columns.status, needed by source filter "
            f"data.orders.where)") in " ".join(result.output.split())


def _compiled(db: Path, policy) -> dict:
    conn = sqlite3.connect(db)
    try:
        dates = RunDates(AS_OF, "2026-07-01", conn)
        return compile_metrics(policy, bind(conn, "main", policy), dates).sources
    finally:
        conn.close()


def test_a_policy_without_a_filter_compiles_as_before(demo_db, tmp_path):
    """The filter adds its condition to the scan's WHERE and nothing else: the same statement without it is the
    statement of the policy without a filter, placeholders and all."""
    _with_status(demo_db)
    plain = _compiled(demo_db, _policy(tmp_path, MAPPED_ONLY))
    filtered = _compiled(demo_db, _policy(tmp_path, FILTERED, "filtered.yaml"))
    for agg in plain.values():
        statements = [agg.query, agg.check] + ([agg.merge] if agg.merge else [])
        assert agg.filter is None
        assert not any("_dropped" in s.sql or ":ow" in s.sql or "状态" in s.sql for s in statements)
    orders = filtered["orders"]
    condition = "coalesce((r.\"状态\" != :ow0), 1)"
    assert orders.filter.sql == condition and orders.query.params["ow0"] == "已取消"
    assert f"AND {condition}\nGROUP BY" in orders.query.sql or f"WHERE {condition}\nGROUP BY" in orders.query.sql
    unfiltered = orders.query.sql.replace(f" AND {condition}", "").replace(f"\nWHERE {condition}", "")
    assert unfiltered == plain["orders"].query.sql.replace("r.\"状态\"", "")
    assert {k: v for k, v in orders.query.params.items() if k != "ow0"} == plain["orders"].query.params
    assert "状态" in orders.columns  # the covering index crm-rules index proposes holds it
    for source in ("receivables", "interactions", "contracts"):  # unfiltered sources are untouched
        assert filtered[source].query == plain[source].query and filtered[source].check == plain[source].check


def test_ids_read_as_numbers_are_regrouped_from_the_rows_the_filter_keeps(tmp_path):
    """A customers key of numeric affinity and an untyped orders column holding 1 and '1': the groups of one
    customer are regrouped from their rows (metric_sql.number_ids), through the filter too."""
    db = tmp_path / "crm.db"
    _execute(db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    _execute(db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id, order_date TEXT, amount REAL, status TEXT)")
    _execute(db, "INSERT INTO customers VALUES (1, 'one'), (2, 'two')")
    for row in [(1, "2026-01-01", 50, "ok"), ("1", "2026-02-01", 70, "ok"), ("1", "2026-03-01", 1000, "void"),
                (2, "2026-03-01", 30, "void"), (2, "2026-03-02", 5, None)]:
        _execute(db, "INSERT INTO orders (customer_id, order_date, amount, status) VALUES (?, ?, ?, ?)", *row)
    policy = _policy(tmp_path, """
data:
  customers: {attributes: {region: null, industry: null, account_manager: null, since: null, credit_limit: null}}
  orders:
    columns: {cost: null, discount: null, status: {column: status, type: text}}
    where: "status != 'void'"
metrics:
  revenue: {sum: amount}
  orders_n: {count: orders}
tiers:
  levels: [{id: A, when: "revenue > 100"}, {id: B, default: true}]
""")
    assert _compiled(db, policy)["orders"].merge is not None
    outcome = apply_policy(db, policy, AS_OF)
    metrics = stored_metrics(db, outcome.run_id)
    assert metrics[1] == {"revenue": 120, "orders_n": 2} and metrics[2] == {"revenue": 5, "orders_n": 1}
    assert [g[:2] for g in _grades(db, outcome.run_id)] == [(1, "A"), (2, "B")]


def test_a_metric_filter_note_counts_only_the_rows_the_source_keeps(demo_db, tmp_path):
    """A metric whose where keeps none of the rows the source's filter keeps is noted, with those rows."""
    policy = _policy(tmp_path, """
extends: base
data:
  interactions:
    where: "kind != 'complaint'"
""")
    outcome = apply_policy(demo_db, policy, AS_OF, dry_run=True)
    kept = _execute(demo_db, "SELECT count(*) FROM interactions WHERE kind != 'complaint' AND date <= ?", AS_OF)[0][0]
    note = next(n for n in outcome.notes if "complaints_12m" in n)
    assert f"(its {kept:,} rows that data.interactions.where keeps have kind" in note


def test_the_reports_aging_reads_the_receivables_the_filter_keeps(demo_db, tmp_path):
    from crm_rules.engine.report_data import _aging_from_source

    _execute(demo_db, "ALTER TABLE receivables ADD COLUMN voided INTEGER")
    _execute(demo_db, "UPDATE receivables SET voided = (id % 3 = 0)")
    document = {"data": {"receivables": {"columns": {"void": {"column": "voided", "type": "bool"}},
                                         "where": "not void"}}}
    filtered, every = _aging_from_source(demo_db, document, AS_OF), _aging_from_source(demo_db, {}, AS_OF)
    _execute(demo_db, "DELETE FROM receivables WHERE voided")
    assert filtered == _aging_from_source(demo_db, {}, AS_OF) != every
