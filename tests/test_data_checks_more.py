"""Data checks: customer attributes of type number and bool, bad rows named and counted, ids equal as text."""

from __future__ import annotations

import re
import sqlite3

import pytest

from conftest import AS_OF, file_digest
from small_db import rows
from crm_rules.engine import data_checks
from crm_rules.engine.data_binding import bind
from crm_rules.engine.data_checks import check_customers, row_column
from crm_rules.engine.database import RunConnection
from crm_rules.engine.errors import DataError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

TIERS = """
metrics:
  revenue_12m: {sum: amount, window: 12 months}
tiers:
  levels:
    - {id: A, when: "%s"}
    - {id: B, default: true}
"""


def policy_file(tmp_path, when: str, data: str = "", name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text((f"data:\n{data}\n" if data else "") + TIERS % when, encoding="utf-8")
    return load_policy(path)


def sql(db, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def refused(db, policy) -> str:
    digest = file_digest(db)
    with pytest.raises(DataError) as info:
        apply_policy(db, policy, AS_OF)
    assert file_digest(db) == digest, "a run stopped by its data writes nothing"
    return str(info.value)


def problem_lines(message: str) -> list[str]:
    return [line[len("  - "):] for line in message.splitlines() if line.startswith("  - ")]


def listed_rows(db, message: str, label: str) -> list[tuple]:
    """Rows that the query given after ``label``'s "... and N more" line lists."""
    line = next(x for x in problem_lines(message) if x.startswith(label + ": ... and "))
    return rows(db, line.split("list them with: ", 1)[1])


# --- 1. number and bool attributes ------------------------------------------------------------------------


def test_text_in_a_number_attribute_of_a_condition_is_a_data_error(tmp_path, demo_db):
    sql(demo_db, "UPDATE customers SET credit_limit = 'lots' WHERE id = 'C000020'")
    message = refused(demo_db, policy_file(tmp_path, "credit_limit > 1_000_000"))
    assert problem_lines(message) == ["table 'customers', column 'credit_limit': 'lots' (customer C000020) is not a number"]
    assert "hint: store numbers as numbers" in message


def test_text_in_a_number_attribute_a_plugin_reads_is_a_data_error(demo_db):
    # the base policy's credit check reads credit_limit (it stored 'lots' as the customer's limit)
    sql(demo_db, "UPDATE customers SET credit_limit = 'lots' WHERE id = 'C000020'")
    message = refused(demo_db, load_policy("base"))
    assert "table 'customers', column 'credit_limit': 'lots' (customer C000020) is not a number" in message


def test_a_number_stored_as_text_is_an_error_too(tmp_path, demo_db):
    # a column declared TEXT: '5000' > 1000000 is true (the number is compared as text), so such a
    # number is as wrong in a condition as 'lots'
    sql(demo_db, "ALTER TABLE customers ADD COLUMN limit_text TEXT",
        "UPDATE customers SET limit_text = credit_limit WHERE id <> 'C000003'", "UPDATE customers SET limit_text = '' "
        "WHERE id = 'C000003'")
    policy = policy_file(tmp_path, "lim > 1_000_000", "  customers: {attributes: {lim: {column: limit_text, type: number}}}")
    lines = problem_lines(refused(demo_db, policy))
    assert re.fullmatch(r"table 'customers', column 'limit_text' \(attribute 'lim'\): '\d+\.0' \(customer C000001\) "
                        r"is text, not a number \(a number stored as text compares as text: '5000' > '1000000'\)", lines[0])
    assert ("table 'customers', column 'limit_text' (attribute 'lim'): '' (customer C000003) is not a number but "
            "empty text (store NULL for a value that is unknown)") in lines
    assert lines[-1].startswith("table 'customers', column 'limit_text' (attribute 'lim'): ... and 297 more "
                                "(300 customers in all); list them with: SELECT rowid, * FROM \"customers\" AS r WHERE ")
    assert len(listed_rows(demo_db, "\n".join("  - " + x for x in lines), "table 'customers', column 'limit_text' "
                                                                         "(attribute 'lim')")) == 300


def test_many_bad_values_are_counted_and_listable(tmp_path, demo_db):
    sql(demo_db, "ALTER TABLE customers ADD COLUMN score",
        "UPDATE customers SET score = CASE WHEN rowid % 6 = 0 THEN 'high' ELSE 2 END")
    policy = policy_file(tmp_path, "score > 3", "  customers: {attributes: {score: {column: score, type: number}}}")
    message = refused(demo_db, policy)
    lines = problem_lines(message)
    assert len(lines) == 4 and all(x.endswith("is not a number") and "'high'" in x for x in lines[:3])
    assert "... and 47 more (50 customers in all)" in lines[3]
    assert sorted(r[0] for r in listed_rows(demo_db, message, "table 'customers', column 'score'")) == list(range(6, 301, 6))


def test_number_attributes_hold_numbers_or_null(tmp_path, demo_db):
    sql(demo_db, "ALTER TABLE customers ADD COLUMN score", "UPDATE customers SET score = rowid % 5",
        "UPDATE customers SET score = 4.5 WHERE id = 'C000001'", "UPDATE customers SET score = NULL WHERE id = 'C000002'")
    policy = policy_file(tmp_path, "score > 3", "  customers: {attributes: {score: {column: score, type: number}}}")
    run = apply_policy(demo_db, policy, AS_OF).run_id
    tiers = dict(rows(demo_db, "SELECT customer_id, tier FROM crm_assignments WHERE run_id = ?", run))
    assert tiers["C000001"] == "A" and tiers["C000002"] == "B"
    assert sum(t == "A" for t in tiers.values()) == 1 + sum(1 for i in range(3, 301) if i % 5 == 4)


def test_an_attribute_the_policy_does_not_read_is_not_checked(tmp_path, demo_db):
    # credit_limit is mapped (a default) but nothing here reads it
    sql(demo_db, "UPDATE customers SET credit_limit = 'n/a' WHERE id = 'C000020'")
    assert apply_policy(demo_db, policy_file(tmp_path, "revenue_12m > 100000"), AS_OF).summary["customers"] == 300


@pytest.mark.parametrize("value", ["'yes'", "'true'", "2", "'1.0'", "x'01'"])
def test_a_bool_attribute_holds_1_0_or_null(tmp_path, demo_db, value):
    sql(demo_db, "ALTER TABLE customers ADD COLUMN vip", "UPDATE customers SET vip = rowid % 2",
        "UPDATE customers SET vip = NULL WHERE id = 'C000002'", f"UPDATE customers SET vip = {value} WHERE id = 'C000007'")
    policy = policy_file(tmp_path, "vip = true", "  customers: {attributes: {vip: {column: vip, type: bool}}}")
    shown = {"'yes'": "'yes'", "'true'": "'true'", "2": "2", "'1.0'": "'1.0'", "x'01'": "b'\\x01'"}[value]
    message = refused(demo_db, policy)
    assert problem_lines(message) == [f"table 'customers', column 'vip': {shown} (customer C000007) is not true or false "
                                      f"(store 1 for true, 0 for false)"]
    assert "hint: store true as 1 and false as 0" in message


def test_a_bool_attribute_of_1_and_0_grades(tmp_path, demo_db):
    sql(demo_db, "ALTER TABLE customers ADD COLUMN vip INTEGER", "UPDATE customers SET vip = rowid % 2",
        "UPDATE customers SET vip = NULL WHERE id = 'C000003'")
    policy = policy_file(tmp_path, "vip", "  customers: {attributes: {vip: {column: vip, type: bool}}}")
    run = apply_policy(demo_db, policy, AS_OF).run_id
    assert rows(demo_db, "SELECT count(*) FROM crm_assignments WHERE run_id = ? AND tier = 'A'", run) == [(149,)]


def test_a_customer_without_an_id_is_named_by_its_row(demo_db):
    sql(demo_db, "CREATE TABLE c2 AS SELECT * FROM customers", "UPDATE c2 SET id = NULL WHERE rowid IN (5, 9)")
    policy_path = demo_db.parent / "p.yaml"
    policy_path.write_text("data:\n  customers: {table: c2}\n" + TIERS % "revenue_12m > 1", encoding="utf-8")
    lines = problem_lines(refused(demo_db, load_policy(policy_path)))
    assert lines == ["table 'c2', column 'id': empty (NULL) in rowid 5; every customer needs an id",
                     "table 'c2', column 'id': empty (NULL) in rowid 9; every customer needs an id"]


def test_the_customers_are_checked_in_one_scan(tmp_path, demo_db):
    """Each check of the customers table is one more expression of one scan, not a scan of its own."""
    sql(demo_db, "ALTER TABLE customers ADD COLUMN vip INTEGER", "ALTER TABLE customers ADD COLUMN score REAL")
    policy = policy_file(tmp_path, "vip or score > 2 or credit_limit > 5",
                         "  customers: {attributes: {vip: {column: vip, type: bool}, score: {column: score, type: number}}}")
    conn = sqlite3.connect(demo_db)
    try:
        binding = bind(conn, "main", policy)
        assert {"vip", "score", "credit_limit"} <= binding.used
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        check_customers(RunConnection(conn, "main", "main", demo_db, demo_db), policy, binding)
    finally:
        conn.close()
    assert len(statements) == 2  # is the table empty; is any row bad
    checked = statements[1]
    assert all(s in checked for s in ('r."id" IS NULL', 'r."vip" NOT IN (0, 1)', "r.\"score\" >= ''",
                                      "r.\"credit_limit\" >= ''", 'r."created_at"'))


def test_bad_attribute_sql_per_type():
    conn = sqlite3.connect(":memory:")
    values = [1, 0, 1.0, 2, -3.5, None, "1", "yes", "", "5000", b"\x01"]
    conn.execute("CREATE TABLE t (v)")
    conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])

    def bad(type_):
        return [r[0] for r in conn.execute(f"SELECT v FROM t AS r WHERE {data_checks.bad_attribute_sql('r.v', type_)}")]

    assert bad("number") == ["1", "yes", "", "5000", b"\x01"]
    assert bad("bool") == [2, -3.5, "1", "yes", "", "5000", b"\x01"]
    assert data_checks.bad_attribute_sql("r.v", "text") is None


# --- 2. bad rows: each named, then how many in all ---------------------------------------------------------


def test_null_customer_ids_and_bad_dates_are_named_by_row_and_counted(demo_db):
    sql(demo_db, "UPDATE orders SET customer_id = NULL WHERE id IN (10, 20, 30, 40)",
        "UPDATE orders SET order_date = '03/05/2026' WHERE id BETWEEN 100 AND 138")
    message = refused(demo_db, load_policy("base"))
    lines = problem_lines(message)
    assert lines[:4] == [f"table 'orders', column 'customer_id': empty (NULL) in row id {i}; every row needs a customer id"
                         for i in (10, 20, 30)] + [
        "table 'orders', column 'customer_id': ... and 1 more (4 rows in all); list them with: "
        "SELECT * FROM \"orders\" AS r WHERE r.\"customer_id\" IS NULL"]
    assert [x for x in lines if "order_date" in x][:3] == [
        f"table 'orders', column 'order_date': '03/05/2026' (customer {c}) is not a YYYY-MM-DD date (row id {i})"
        for c, i in rows(demo_db, "SELECT customer_id, id FROM orders WHERE id BETWEEN 100 AND 102 ORDER BY id")]
    # a few bad dates: listed by their values, a query to read, not the check's SQL (which ran to 800 characters)
    assert ("table 'orders', column 'order_date': ... and 36 more (39 rows in all); list them with: "
            "SELECT * FROM \"orders\" AS r WHERE r.\"order_date\" IN ('03/05/2026')") in message
    assert [r[0] for r in listed_rows(demo_db, message, "table 'orders', column 'customer_id'")] == [10, 20, 30, 40]
    assert [r[0] for r in listed_rows(demo_db, message, "table 'orders', column 'order_date'")] == list(range(100, 139))


def test_many_different_bad_dates_are_listed_by_the_check(demo_db):
    """Over ten different bad values the listing is the check itself: still every bad row, and only those."""
    sql(demo_db, "UPDATE orders SET order_date = printf('%02d/05/2026', id - 99) WHERE id BETWEEN 100 AND 114",
        "UPDATE orders SET order_date = '2026-02-30' WHERE id BETWEEN 115 AND 118",
        "UPDATE orders SET order_date = '2026-01-05T10:00:00+08:00' WHERE id BETWEEN 119 AND 123")
    message = refused(demo_db, load_policy("base"))
    offsets, others = [line.split("list them with: ", 1)[1] for line in problem_lines(message)
                       if line.startswith("table 'orders', column 'order_date': ... and ")]
    # the time-zone offsets are a problem of their own, listed by their one value
    assert offsets == "SELECT * FROM \"orders\" AS r WHERE r.\"order_date\" IN ('2026-01-05T10:00:00+08:00')"
    assert others.startswith("SELECT * FROM \"orders\" AS r WHERE ((date(")
    assert [r[0] for r in rows(demo_db, offsets)] == list(range(119, 124))
    assert [r[0] for r in rows(demo_db, others)] == list(range(100, 119))


def test_three_bad_rows_or_fewer_need_no_total(demo_db):
    sql(demo_db, "UPDATE orders SET amount = NULL WHERE id IN (827, 828)")
    lines = problem_lines(refused(demo_db, load_policy("base")))
    cids = dict(rows(demo_db, "SELECT id, customer_id FROM orders WHERE id IN (827, 828)"))
    assert lines == [f"table 'orders', column 'amount': empty (NULL) in row id {i} (customer {cids[i]}); every row needs an amount"
                     for i in (827, 828)]


def test_rows_of_a_table_without_a_primary_key_are_named_by_rowid(tmp_path, demo_db):
    sql(demo_db, "CREATE TABLE sales AS SELECT customer_id, order_date, amount FROM orders",
        "UPDATE sales SET amount = 'abc' WHERE rowid = 7")
    policy_path = tmp_path / "p.yaml"
    policy_path.write_text("data:\n  orders: {table: sales, columns: {cost: null, discount: null}}\n"
                           + TIERS % "revenue_12m > 1", encoding="utf-8")
    (cid,), = rows(demo_db, "SELECT customer_id FROM sales WHERE rowid = 7")
    assert problem_lines(refused(demo_db, load_policy(policy_path))) == [
        f"table 'sales', column 'amount': 'abc' (customer {cid}) is not a number (rowid 7)"]


def test_which_column_names_a_row():
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        CREATE TABLE int_pk (id INTEGER PRIMARY KEY, customer_id);
        CREATE TABLE text_pk (order_no TEXT PRIMARY KEY, customer_id);
        CREATE TABLE no_pk (customer_id, amount);
        CREATE TABLE keyed_by_customer (id TEXT PRIMARY KEY, name);
        CREATE TABLE no_rowid (order_no TEXT, line INTEGER, customer_id, PRIMARY KEY (order_no, line)) WITHOUT ROWID;
        CREATE VIEW with_id AS SELECT id AS ID, customer_id FROM int_pk;
        CREATE VIEW without_id AS SELECT customer_id FROM int_pk;
    """)
    assert row_column(conn, "main", "int_pk", "customer_id") == "id"
    assert row_column(conn, "main", "text_pk", "customer_id") == "order_no"
    assert row_column(conn, "main", "no_pk", "customer_id") == "rowid"
    assert row_column(conn, "main", "keyed_by_customer", "id") == "rowid"  # the customer id is no row's own name
    assert row_column(conn, "main", "no_rowid", "customer_id") is None
    assert row_column(conn, "main", "with_id", "customer_id") == "ID"
    assert row_column(conn, "main", "without_id", "customer_id") is None


def test_a_view_without_an_id_gives_one_line_and_the_total(tmp_path, demo_db):
    sql(demo_db, "CREATE VIEW sales AS SELECT customer_id, order_date, amount FROM orders",
        "UPDATE orders SET customer_id = NULL WHERE id IN (10, 20, 30, 40)")
    policy_path = tmp_path / "p.yaml"
    policy_path.write_text("data:\n  orders: {table: sales, columns: {cost: null, discount: null}}\n"
                           + TIERS % "revenue_12m > 1", encoding="utf-8")
    message = refused(demo_db, load_policy(policy_path))
    assert problem_lines(message) == [
        "table 'sales', column 'customer_id': empty (NULL) in a row; every row needs a customer id",
        "table 'sales', column 'customer_id': ... and 3 more (4 rows in all); list them with: "
        "SELECT * FROM \"sales\" AS r WHERE r.\"customer_id\" IS NULL"]


def test_unknown_customers_are_counted(demo_db):
    sql(demo_db, *[f"INSERT INTO orders (customer_id, order_date, amount, cost, discount) "
                   f"VALUES ('X{i}', '2026-05-01', 10, 5, 0)" for i in range(5)])
    message = refused(demo_db, load_policy("base"))
    assert "table 'orders' has rows for customers that are not in 'customers': 'X0', 'X1', 'X2' and 2 more " \
           "(5 unknown customer ids in all; list them with: SELECT DISTINCT" in message
    listing = message.split("list them with: ", 1)[1].split("\n", 1)[0][:-1]  # less the ")" of "(5 ... in all"
    assert sorted(r[0] for r in rows(demo_db, listing)) == [f"X{i}" for i in range(5)]


# --- 3. ids unique, also as text ---------------------------------------------------------------------------


def untyped_customers(db, *extra: str) -> None:
    """Table c2: the demo's customers in a table whose columns have no type (a number stays a number)."""
    sql(db, "CREATE TABLE c2 (id, name, region, industry, created_at, account_manager, credit_limit, lead_source)",
        "INSERT INTO c2 SELECT * FROM customers", *extra)


def c2_policy(tmp_path):
    return policy_file(tmp_path, "revenue_12m >= 100000", "  customers: {table: c2}")


def test_the_number_2_and_the_text_2_are_one_id(tmp_path, demo_db):
    untyped_customers(demo_db, "INSERT INTO c2 (id, name, created_at, credit_limit) VALUES "
                               "(2, 'two', '2020-01-01', 5), ('2', 'two again', '2020-01-01', 5)")
    message = refused(demo_db, c2_policy(tmp_path))
    assert message.startswith("customer ids are not unique in table 'c2' when read as text (a number and the same "
                              "text are one id to explain and export): 2 (a number; rowid 301 two) and '2' (text; rowid 302 two again)\n")
    assert "store every id as text" in message
    assert not rows(demo_db, "SELECT name FROM sqlite_master WHERE name LIKE 'crm_%'")


def test_ids_equal_as_text_are_counted(tmp_path, demo_db):
    pairs = [f"({i}, 'n', '2020-01-01'), ('{i}', 'n', '2020-01-01')" for i in range(5)]
    untyped_customers(demo_db, f"INSERT INTO c2 (id, name, created_at) VALUES {', '.join(pairs)}",
                      "INSERT INTO c2 (id, name, created_at) VALUES (2.5, 'r', '2020-01-01'), ('2.5', 't', '2020-01-01')")
    message = refused(demo_db, c2_policy(tmp_path))
    assert ": 0 (a number; rowid 301 n) and '0' (text; rowid 302 n), 1 (a number; rowid 303 n) and '1' (text; rowid 304 n), " \
           "2 (a number; rowid 305 n) and '2' (text; rowid 306 n) and 3 more (6 pairs in all; list them with: SELECT" in message
    listing = message.split("list them with: ", 1)[1].split("\n", 1)[0][:-1]
    assert len(rows(demo_db, listing)) == 12


def test_ids_of_two_types_that_differ_as_text_are_fine(tmp_path, demo_db):
    untyped_customers(demo_db, "INSERT INTO c2 (id, name, created_at) VALUES (2, 'two', '2020-01-01'), "
                               "('02', 'oh two', '2020-01-01'), (7, 'seven', '2020-01-01')")
    assert apply_policy(demo_db, c2_policy(tmp_path), AS_OF).summary["customers"] == 303


def test_exact_duplicates_name_their_rows_and_total(tmp_path, demo_db):
    untyped_customers(demo_db, "INSERT INTO c2 SELECT * FROM customers WHERE rowid <= 5")
    message = refused(demo_db, c2_policy(tmp_path))
    names = dict(rows(demo_db, "SELECT rowid, name FROM customers WHERE rowid <= 3"))
    assert message.startswith(f"customer ids are not unique in table 'c2': 'C000001' (2 times: rowid 1 {names[1]}, "
                              f"rowid 301 {names[1]}), 'C000002' (2 times: rowid 2 {names[2]}, rowid 302 {names[2]}), "
                              f"'C000003' (2 times: rowid 3 {names[3]}, rowid 303 {names[3]}) and "
                              "2 more (5 ids in all; list them with: SELECT")


def test_a_run_does_not_import_the_csv_import():
    """The data checks name numbers written with thousands separators by csv_decimal_comma's pattern: taken from
    csv_import, it made every run import sqlite_utils (and pandas, where installed), 0.3 s of start-up."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    package_parent = str(Path(data_checks.__file__).parents[2])
    script = "import sys, crm_rules.engine.runner; print(sorted({'sqlite_utils', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))})
    assert out.stdout.strip() == "[]"
