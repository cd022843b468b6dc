"""Bad dates in the source's own date columns (``data.<source>.columns`` declared ``type: date``) that a filter reads.

``cancelled_at > as_of()`` compares text: '03/05/2026' or '2026-13-01' would keep or drop its row wrongly without a
word.  The run's row check refuses such values as it refuses a bad order date, in the same pass: in every row for a
column the source's filter reads, in the rows it keeps for one that only a metric reads.  NULL is no date, and fine.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.data_binding import bind
from crm_rules.engine.metric_sql import RunDates, compile_metrics
from crm_rules.engine.policy_model import load_policy
from conftest import AS_OF, stored_metrics
from small_db import make_db

SOURCE_FILTER = """
extends: base
name: cancelled
data:
  orders:
    columns: {cancelled_at: {column: 取消日期, type: date}, status: {column: 状态, type: text}}
    where: "cancelled_at is null or cancelled_at > as_of()"
"""
METRIC_FILTER = """
extends: base
name: cancelled
data:
  orders:
    columns: {cancelled_at: {column: 取消日期, type: date}, status: {column: 状态, type: text}}
metrics:
  revenue_12m: {sum: amount, window: 12 months, where: "cancelled_at is null"}
"""
# the source's filter reads the status only; the metric's filter reads the cancellation date
BOTH_FILTERS = METRIC_FILTER.replace("metrics:", "    where: \"status is null or status != '作废'\"\nmetrics:", 1)
MAPPED_ONLY = """
extends: base
name: cancelled
data:
  orders:
    columns: {cancelled_at: {column: 取消日期, type: date}, status: {column: 状态, type: text}}
"""


def _execute(db: Path, sql: str, *args) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(sql, args).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def _db(tmp_path: Path, cancelled: dict[int, object], status: dict[int, str] | None = None) -> Path:
    """Two customers: C1's orders of 100, 1000 and 10 (ids 1 to 3), C2's of 7 (id 4); ``cancelled``: order id ->
    its 取消日期 (NULL for the others), ``status``: order id -> its 状态."""
    db = make_db(tmp_path / "crm.db", [("C1", "一", "华东"), ("C2", "二", "华北")],
                 orders=[("C1", "2026-06-01", 100), ("C1", "2026-06-02", 1000), ("C1", "2026-06-03", 10),
                         ("C2", "2026-06-01", 7)])
    _execute(db, "ALTER TABLE orders ADD COLUMN 取消日期 TEXT")
    _execute(db, "ALTER TABLE orders ADD COLUMN 状态 TEXT")
    for order, value in cancelled.items():
        _execute(db, "UPDATE orders SET 取消日期 = ? WHERE id = ?", value, order)
    for order, value in (status or {}).items():
        _execute(db, "UPDATE orders SET 状态 = ? WHERE id = ?", value, order)
    return db


def _policy_file(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _apply(cli, db: Path, policy: Path):
    return cli("apply", "--db", db, "--policy", policy, "--as-of", AS_OF)


def _nothing_written(db: Path) -> bool:
    tables = {name for (name,) in _execute(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    return "crm_runs" not in tables or not _execute(db, "SELECT count(*) FROM crm_runs")[0][0]


def _one_line(output: str) -> str:
    return " ".join(output.split())


@pytest.mark.parametrize("value", ["03/05/2026", "2026-13-01", "2026-02-30", "20260305", "2026-06-01T07:00:00+08:00"])
@pytest.mark.parametrize("policy", [SOURCE_FILTER, METRIC_FILTER], ids=["source filter", "metric filter"])
def test_a_bad_date_a_filter_reads_fails_the_run_and_writes_nothing(tmp_path, cli, policy, value):
    db = _db(tmp_path, {2: value})
    result = _apply(cli, db, _policy_file(tmp_path, policy))
    assert result.exit_code == 1, result.output
    output = _one_line(result.output)
    problem = "has a time-zone offset, which is not supported" if "+08:00" in value else "is not a YYYY-MM-DD date"
    assert f"table 'orders', column '取消日期': {value!r} (customer C1) {problem} (row id 2)" in output
    assert "hint:" in output and ("store dates as text 'YYYY-MM-DD'" in output or "time-zone offsets" in output)
    assert "Traceback" not in result.output
    assert _nothing_written(db)


def test_a_bad_date_the_source_filter_reads_is_refused_also_in_a_row_it_drops(tmp_path, cli):
    """The filter cannot be worked out for that row: whether it is dropped is what the bad date decides."""
    db = _db(tmp_path, {2: "2026-13-01", 3: "2026-05-01"})
    result = _apply(cli, db, _policy_file(tmp_path, SOURCE_FILTER))
    assert result.exit_code == 1
    assert "'2026-13-01' (customer C1) is not a YYYY-MM-DD date (row id 2)" in _one_line(result.output)
    assert _nothing_written(db)


def test_a_date_only_a_metric_reads_is_checked_in_the_rows_the_source_filter_keeps(tmp_path, cli):
    # order 2 is void (the source's filter drops it): its bad cancellation date is nobody's data
    db = _db(tmp_path, {2: "2026-13-01", 3: "2026-06-02"}, status={2: "作废"})
    policy = _policy_file(tmp_path, BOTH_FILTERS)
    result = _apply(cli, db, policy)
    assert result.exit_code == 0, result.output
    assert stored_metrics(db)["C1"]["revenue_12m"] == 100  # order 3 cancelled, order 2 void
    # once the order is live again, its date is read, and refused
    _execute(db, "UPDATE orders SET 状态 = NULL WHERE id = 2")
    result = _apply(cli, db, policy)
    assert result.exit_code == 1
    assert "table 'orders', column '取消日期': '2026-13-01' (customer C1) is not a YYYY-MM-DD date (row id 2)" in \
        _one_line(result.output)


def test_nulls_pass_and_the_filter_reads_the_as_of_date(tmp_path, cli):
    """Orders cancelled on or before the as-of date are left out; one cancelled after it was live on that day."""
    db = _db(tmp_path, {2: "2026-06-15", 3: "2026-07-02"})  # order 4 and order 1: NULL, not cancelled
    result = _apply(cli, db, _policy_file(tmp_path, SOURCE_FILTER))
    assert result.exit_code == 0, result.output
    metrics = stored_metrics(db)
    assert metrics["C1"]["revenue_12m"] == 110 and metrics["C1"]["orders_12m"] == 2
    assert metrics["C2"]["revenue_12m"] == 7
    assert "drops 1 of the 4 rows of 'orders'" in _one_line(result.output)
    # a day later, the order cancelled on 2026-07-02 still counts; on that day, no more
    for as_of, revenue in (("2026-07-01", 110), ("2026-07-02", 100)):
        cli("apply", "--db", db, "--policy", tmp_path / "policy.yaml", "--as-of", as_of, ok=True)
        assert stored_metrics(db)["C1"]["revenue_12m"] == revenue


def test_a_good_run_grades_as_the_data_without_the_cancelled_rows(tmp_path, cli):
    db = _db(tmp_path, {2: "2026-06-15 10:30:00", 3: None})
    filtered = tmp_path / "filtered"
    filtered.mkdir()
    plain = _db(filtered, {})
    _execute(plain, "DELETE FROM orders WHERE id = 2")
    cli("apply", "--db", db, "--policy", _policy_file(tmp_path, SOURCE_FILTER), "--as-of", AS_OF, ok=True)
    cli("apply", "--db", plain, "--policy", _policy_file(tmp_path, MAPPED_ONLY, "mapped.yaml"), "--as-of", AS_OF,
        ok=True)
    assert stored_metrics(db) == stored_metrics(plain)


def test_empty_text_is_not_no_date(tmp_path, cli):
    db = _db(tmp_path, {2: ""})
    result = _apply(cli, db, _policy_file(tmp_path, SOURCE_FILTER))
    assert result.exit_code == 1
    output = _one_line(result.output)
    assert "'' (customer C1) is empty text or a zero date, not a date (NULL is no date) (row id 2)" in output
    assert 'UPDATE "orders" SET "取消日期" = NULL' in output


def test_dates_written_year_first_get_the_import_that_stores_them(tmp_path, cli):
    db = _db(tmp_path, {1: "2026/06/15", 2: "2026/05/01", 3: "2026/07/01"})
    result = _apply(cli, db, _policy_file(tmp_path, SOURCE_FILTER))
    assert result.exit_code == 1
    output = _one_line(result.output)
    assert "'orders' holds '取消日期' dates written year first ('2026/06/15' is stored as '2026-06-15')" in output
    assert "--type '取消日期=date'" in output  # quoted for the shell


@pytest.mark.parametrize("policy", [SOURCE_FILTER, BOTH_FILTERS], ids=["source filter", "metric filter"])
def test_the_listing_of_many_bad_dates_runs_as_shown(tmp_path, cli, policy):
    db = make_db(tmp_path / "crm.db", [("C1", "一", "华东")],
                 orders=[("C1", f"2026-06-{d:02d}", 100) for d in range(1, 9)])
    _execute(db, "ALTER TABLE orders ADD COLUMN 取消日期 TEXT")
    _execute(db, "ALTER TABLE orders ADD COLUMN 状态 TEXT")
    _execute(db, "UPDATE orders SET 取消日期 = '06/0' || id || '/2026'")  # 8 bad rows: 3 shown and a listing
    _execute(db, "UPDATE orders SET 状态 = '作废' WHERE id = 1")  # dropped by BOTH_FILTERS' source filter
    result = _apply(cli, db, _policy_file(tmp_path, policy))
    assert result.exit_code == 1
    listing = re.search(r"list them with: (SELECT .*)", result.output).group(1)
    assert ":ow" not in listing and ":as_of" not in listing
    assert len(_execute(db, listing)) == (8 if policy is SOURCE_FILTER else 7)
    # by the values, not by the check's SQL of several hundred characters; under the source's filter when only
    # the rows it keeps were checked
    assert 'r."取消日期" IN (' in listing and "julianday" not in listing
    assert ("'作废'" in listing) == (policy is BOTH_FILTERS)


def test_a_metrics_own_date_column_is_checked_too(tmp_path, cli):
    """A metric that aggregates such a column (the last cancellation) reads it as a date as well."""
    text = MAPPED_ONLY + "metrics:\n  last_cancelled: {max: cancelled_at, window: 12 months}\n"
    db = _db(tmp_path, {2: "2026-13-01"})
    result = _apply(cli, db, _policy_file(tmp_path, text))
    assert result.exit_code == 1
    assert "table 'orders', column '取消日期': '2026-13-01' (customer C1) is not a YYYY-MM-DD date" in \
        _one_line(result.output)


def _checks(conn: sqlite3.Connection, path: Path) -> tuple[dict, dict]:
    policy = load_policy(path)
    plan = compile_metrics(policy, bind(conn, "main", policy), RunDates(AS_OF, conn.execute("SELECT date(?, '+1 day')", (AS_OF,)).fetchone()[0], conn))
    return ({s: (a.query.sql, a.check.sql) for s, a in plan.sources.items()},
            {s: [(column, what) for column, what, _ in problems] for s, problems in plan.problems.items()})


def test_a_policy_that_reads_no_such_column_compiles_to_the_same_sql(tmp_path):
    db = _db(tmp_path, {})
    conn = sqlite3.connect(db)
    try:
        base = _checks(conn, _policy_file(tmp_path, "extends: base\nname: cancelled\n", "plain.yaml"))
        # declaring the column without reading it checks nothing more
        assert _checks(conn, _policy_file(tmp_path, MAPPED_ONLY, "mapped.yaml")) == base
        # reading it adds one date check of it to the orders' row check, and none to another source's
        added = ("取消日期", "is not a YYYY-MM-DD date")
        for text in (METRIC_FILTER, SOURCE_FILTER):
            problems = _checks(conn, _policy_file(tmp_path, text))[1]
            assert added in problems["orders"] and [p for p in problems["orders"] if p != added] == base[1]["orders"]
            assert {s: p for s, p in problems.items() if s != "orders"} == \
                {s: p for s, p in base[1].items() if s != "orders"}
    finally:
        conn.close()


def test_validate_db_reads_the_schema_and_leaves_the_dates_to_the_run(tmp_path, cli):
    """validate --db checks that the column exists (named with the filter that needs it), not its values."""
    db = _db(tmp_path, {2: "2026-13-01"})
    policy = _policy_file(tmp_path, SOURCE_FILTER)
    assert cli("validate", policy, "--db", db).exit_code == 0
    missing = _policy_file(tmp_path, SOURCE_FILTER.replace("column: 取消日期", "column: 取消时间"), "missing.yaml")
    result = cli("validate", missing, "--db", db)
    assert result.exit_code != 0
    assert "table 'orders' has no column '取消时间'" in _one_line(result.output)
    assert "data.orders.where" in _one_line(result.output)


UNTYPED = SOURCE_FILTER.replace("cancelled_at: {column: 取消日期, type: date}", "cancelled_at: 取消日期").replace(
    "cancelled_at is null or cancelled_at > as_of()", "cancelled_at is null")


def test_a_column_of_dates_mapped_without_its_type_is_told_to_take_it(tmp_path, cli):
    """A column of data.<source>.columns without a type is a number: validate --db (the column is declared TEXT)
    and the run (every value is a date) give the type as the fix, not only an import that stores numbers."""
    db = _db(tmp_path, {2: "2026-06-15"})
    policy = _policy_file(tmp_path, UNTYPED)
    fix = "give it its type: data.orders.columns.cancelled_at: {column: 取消日期, type: date} (or type: text)"
    result = cli("validate", policy, "--db", db)
    assert result.exit_code == 1
    output = _one_line(result.output)
    assert "table 'orders', column '取消日期' is declared TEXT" in output and fix in output
    result = _apply(cli, db, policy)
    assert result.exit_code == 1
    output = _one_line(result.output)
    assert "'2026-06-15' (customer C1) is not a number (row id 2)" in output
    assert f"data.orders.columns.cancelled_at names a column of dates, not of numbers; if the policy reads it as a " \
           f"date, {fix}; otherwise map it" in output
    assert _nothing_written(db)
    # a field of the source is a number whatever the mapping says: no type to give it
    result = cli("validate", _policy_file(tmp_path, "extends: base\ndata:\n  orders: {amount: 取消日期}\n", "amount.yaml"),
                 "--db", db)
    assert result.exit_code == 1 and "give it its type" not in result.output


def test_every_source_is_checked_alike(tmp_path, cli):
    """Receivables written off on a date: the same check, on that table."""
    db = make_db(tmp_path / "crm.db", [("C1", "一", "华东")], orders=[("C1", "2026-06-01", 100)],
                 receivables=[("C1", "2026-05-01", "2026-05-31", 100, 100, "2026-05-20"),
                              ("C1", "2026-05-02", "2026-06-01", 50, None, None)])
    _execute(db, "ALTER TABLE receivables ADD COLUMN 核销日期 TEXT")
    _execute(db, "UPDATE receivables SET 核销日期 = '2026.06.10' WHERE id = 2")
    policy = _policy_file(tmp_path, "extends: base\ndata:\n  receivables:\n"
                                    "    columns: {written_off_at: {column: 核销日期, type: date}}\n"
                                    "    where: \"written_off_at is null or written_off_at > as_of()\"\n")
    result = _apply(cli, db, policy)
    assert result.exit_code == 1
    assert "table 'receivables', column '核销日期': '2026.06.10' (customer C1) is not a YYYY-MM-DD date (row id 2)" \
        in _one_line(result.output)
    _execute(db, "UPDATE receivables SET 核销日期 = '2026-06-10' WHERE id = 2")
    result = _apply(cli, db, policy)
    assert result.exit_code == 0, result.output
    assert "data.receivables.where (written_off_at is null or written_off_at > as_of()) drops 1 of the 2 rows" in \
        _one_line(result.output)
