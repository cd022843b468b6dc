"""Customer ids stored in two forms in a source table (1 and '1') are one customer, as SQLite's join compares
them; an empty source table and a receivables table dated after the as-of date are noted."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import AS_OF
from small_db import rows
from crm_rules.engine import metric_sql, source_scans
from crm_rules.engine.data_binding import bind
from crm_rules.engine.database import open_for_run
from crm_rules.engine.errors import DataError
from crm_rules.engine.metric_sql import RunDates, compile_metrics
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

# the tester's policy: one sum over orders, two tiers, the demo's optional columns unmapped
REVENUE = """
data:
  customers: {attributes: {region: null, industry: null, account_manager: null, since: null, credit_limit: null}}
  orders: {columns: {cost: null, discount: null}}
metrics:
  revenue: {sum: amount}
tiers:
  levels:
    - {id: big, when: "revenue >= 100"}
    - {id: small, default: true}
"""

RECEIVABLES = """
data:
  customers: {attributes: {region: null, industry: null, account_manager: null, since: null, credit_limit: null}}
metrics:
  collected: {collection_rate: receivables, window: 12 months}
tiers:
  levels:
    - {id: good, when: "collected >= 0.9"}
    - {id: other, default: true}
"""

DAY = "2026-06-30"


@pytest.fixture
def revenue_policy(tmp_path):
    path = tmp_path / "rev.yaml"
    path.write_text(REVENUE, encoding="utf-8")
    return load_policy(path)


def make_db(path, key_type: str, source_type: str, orders: list, customers=((1, "Acme"), (2, "Beta"))):
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE customers (id {key_type}, name TEXT)")
    conn.execute(f"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id {source_type}, order_date TEXT, amount REAL)")
    conn.execute("CREATE INDEX orders_customer ON orders(customer_id)")
    conn.executemany("INSERT INTO customers VALUES (?, ?)", customers)
    conn.executemany("INSERT INTO orders (customer_id, order_date, amount) VALUES (?, ?, ?)", orders)
    conn.commit()
    conn.close()
    return path


def revenues(db, run_id: int) -> dict:
    return dict(rows(db, "SELECT customer_id, revenue FROM crm_metrics WHERE run_id = ?", run_id))


def joined_totals(db) -> dict:
    """What SQLite's own join of the two tables gives each customer."""
    return {cid: total for cid, total in rows(
        db, "SELECT c.id, total(o.amount) FROM customers AS c JOIN orders AS o ON o.customer_id = c.id GROUP BY c.rowid")}


# ---- 1. one customer id in two forms ------------------------------------------------------------------------


def test_the_testers_case_sums_both_forms_into_one_customer(tmp_path, revenue_policy):
    db = make_db(tmp_path / "mixed.db", "INTEGER PRIMARY KEY", "",
                 [(1, "2026-06-01", 100), ("1", "2026-06-02", 50), (2, "2026-06-03", 10)])
    outcome = apply_policy(db, revenue_policy, DAY)
    assert revenues(db, outcome.run_id) == {1: 150.0, 2: 10.0} == joined_totals(db)
    assert outcome.notes == []
    assert dict(rows(db, "SELECT customer_id, tier FROM crm_assignments")) == {1: "big", 2: "small"}


@pytest.mark.parametrize("key_type", ["INTEGER PRIMARY KEY", "INTEGER", "REAL", "NUMERIC"])
@pytest.mark.parametrize("source_type", ["", "TEXT", "BLOB"])
def test_every_form_the_numeric_key_reads_as_the_number_is_that_customer(tmp_path, revenue_policy, key_type,
                                                                          source_type):
    """'1.0', ' 1', '01', '+1', '1e0' are customer 1 to SQLite's comparison with a numeric key, and so to the run;
    '0x1' is not a number to SQLite (an unknown customer, as in SQLite's join)."""
    forms = [1, "1", "1.0", " 1", "01", "+1", "1e0", 2, 2.0, "2"]
    db = make_db(tmp_path / "forms.db", key_type, source_type,
                 [(form, "2026-06-01", 10 ** i) for i, form in enumerate(forms)])
    outcome = apply_policy(db, revenue_policy, DAY)
    assert revenues(db, outcome.run_id) == joined_totals(db) == {1: 1111111.0, 2: 1110000000.0}
    with_hex = make_db(tmp_path / "hex.db", key_type, source_type, [(1, "2026-06-01", 5), ("0x1", "2026-06-01", 7)])
    with pytest.raises(DataError, match=r"table 'orders' has rows for customers that are not in 'customers': '0x1'"):
        apply_policy(with_hex, revenue_policy, DAY)


def test_a_text_key_keeps_sqlites_comparison(tmp_path, revenue_policy):
    """A TEXT key is not compared as a number with a column of no affinity: the number 1 is not customer '1'
    to SQLite's join, so it is an unknown customer, as before; never a "not unique" error."""
    db = make_db(tmp_path / "text.db", "TEXT PRIMARY KEY", "", [("1", "2026-06-01", 100), (1, "2026-06-02", 50)],
                 customers=(("1", "Acme"),))
    with pytest.raises(DataError) as info:
        apply_policy(db, revenue_policy, DAY)
    assert "has rows for customers that are not in 'customers': 1" in str(info.value)
    assert "; 1 is '1' in 'customers' (text there, a number here): store the ids of both tables as text" in str(info.value)
    assert "not unique" not in str(info.value)
    # a TEXT source column stores the number as text: one customer
    typed = make_db(tmp_path / "typed.db", "TEXT PRIMARY KEY", "TEXT", [("1", "2026-06-01", 100), (1, "2026-06-02", 50)],
                    customers=(("1", "Acme"),))
    assert revenues(typed, apply_policy(typed, revenue_policy, DAY).run_id) == {"1": 150.0}


def test_the_window_and_the_as_of_cut_apply_to_the_regrouped_rows(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(REVENUE.replace("revenue: {sum: amount}", "revenue: {sum: amount, window: 1 month}\n"
                                                               "  orders_n: {count: orders}"), encoding="utf-8")
    db = make_db(tmp_path / "w.db", "INTEGER PRIMARY KEY", "",
                 [(1, "2026-06-10", 100), ("1", "2026-06-11", 50), ("01", "2025-01-01", 7),  # before the window
                  ("1", "2026-07-02", 1000), (2, "2026-06-03", 10)])  # after the as-of date
    outcome = apply_policy(db, load_policy(path), DAY)
    assert dict(rows(db, "SELECT customer_id, revenue || '/' || orders_n FROM crm_metrics WHERE run_id = ?",
                     outcome.run_id)) == {1: "150.0/3", 2: "10.0/1"}


def _scans(db, policy):
    """A run's compiled plan and its connection, the sources scanned."""
    rc = open_for_run(db, write=False)
    conn = rc.conn
    plan = compile_metrics(policy, bind(conn, "main", policy), RunDates(DAY, "2026-07-01", conn))
    source_scans.run_scans(conn, db, list(plan.sources.values()), {"as_of": DAY, "as_of_next": "2026-07-01"}, 1024,
                           workers=0)
    return rc, plan


@pytest.mark.parametrize("source_type, forms", [("", [1, 2, 3, 2]), ("TEXT", ["1", "2", "3", "2", "10"])])
def test_ids_in_one_form_are_not_regrouped(tmp_path, revenue_policy, source_type, forms):
    """The normal case costs the index the join needs anyway, not a regrouping: no second pass over the orders."""
    db = make_db(tmp_path / "one.db", "INTEGER PRIMARY KEY", source_type, [(f, "2026-06-01", 1) for f in forms],
                 customers=[(i, str(i)) for i in range(1, 11)])
    rc, plan = _scans(db, revenue_policy)
    try:
        seen = []
        rc.conn.set_trace_callback(seen.append)
        metric_sql.number_ids(rc.conn, list(plan.sources.values()), {"as_of": DAY, "as_of_next": "2026-07-01"})
        assert seen == [plan.sources["orders"].number_index().sql]
    finally:
        rc.close()


@pytest.mark.parametrize("key_type, source_type", [("TEXT", ""), ("TEXT", "TEXT"), ("INTEGER", "INTEGER"), ("", "")])
def test_ids_the_join_does_not_read_as_numbers_are_left_as_they_are(tmp_path, revenue_policy, key_type, source_type):
    db = make_db(tmp_path / "plain.db", key_type, source_type, [("1", "2026-06-01", 1)])
    rc, plan = _scans(db, revenue_policy)
    try:
        assert plan.sources["orders"].merge is None
        assert "a_orders._cid = c.\"id\"" in plan.statements[1].sql  # the plain join, by the scan's own index
    finally:
        rc.close()


def test_the_join_looks_customers_up_by_an_index(tmp_path, revenue_policy):
    """The plain index of ids of no affinity is of no use to a numeric key's join (a scan of the aggregates per
    customer); the index of the ids as numbers is."""
    db = make_db(tmp_path / "plan.db", "INTEGER PRIMARY KEY", "", [(1, "2026-06-01", 1), ("2", "2026-06-01", 1)])
    rc, plan = _scans(db, revenue_policy)
    try:
        metric_sql.number_ids(rc.conn, list(plan.sources.values()), {"as_of": DAY, "as_of_next": "2026-07-01"})
        create = next(op for op in plan.statements if getattr(op, "sql", "").startswith("CREATE TEMP TABLE"))
        query = create.sql.split(" AS\n", 1)[1]
        steps = [row[3] for row in rc.conn.execute("EXPLAIN QUERY PLAN " + query, {**create.params, "as_of": DAY})]
        assert any("a_orders USING INDEX _crm_agg_orders_number" in step for step in steps), steps
    finally:
        rc.close()


def test_only_the_groups_of_one_customer_are_regrouped(tmp_path, revenue_policy):
    db = make_db(tmp_path / "few.db", "INTEGER PRIMARY KEY", "",
                 [(1, "2026-06-01", 1), ("1", "2026-06-01", 2), (2, "2026-06-01", 4), ("3", "2026-06-01", 8)],
                 customers=[(1, "a"), (2, "b"), (3, "c")])
    rc, plan = _scans(db, revenue_policy)
    try:
        agg = plan.sources["orders"]
        metric_sql.number_ids(rc.conn, [agg], {"as_of": DAY, "as_of_next": "2026-07-01"})
        # 1 and '1' are one group now; the text '3' alone was left as it was (the join reads it as 3)
        assert rc.conn.execute(f"SELECT quote(_cid), revenue FROM {agg.target} ORDER BY 1").fetchall() == [
            ("'3'", 8), ("1", 3), ("2", 4)]
        assert rc.conn.execute(f"SELECT count(*) FROM temp.sqlite_master WHERE name = '{agg.mixed_name}'").fetchone() == (0,)
    finally:
        rc.close()


def test_a_customer_joined_twice_is_blamed_on_the_source_not_on_the_customers_table(tmp_path, revenue_policy,
                                                                                   monkeypatch):
    """Were two forms of one id left in two groups, the message names the source table, column, forms and rows."""
    monkeypatch.setattr(metric_sql, "number_ids", lambda *args: None)
    db = make_db(tmp_path / "twice.db", "INTEGER PRIMARY KEY", "",
                 [(1, "2026-06-01", 100), ("1", "2026-06-02", 50), (2, "2026-06-03", 10), ("02", "2026-06-03", 1)])
    with pytest.raises(DataError) as info:
        apply_policy(db, revenue_policy, DAY)
    message = str(info.value)
    assert "not unique in table 'customers'" not in message
    assert message.splitlines()[1:3] == [
        "  - table 'orders', column 'customer_id': customer 1 is stored as 1 (a number: row id 1) and '1' (text: row id 2)",
        "  - table 'orders', column 'customer_id': customer 2 is stored as 2 (a number: row id 3) and '02' (text: row id 4)"]
    assert message.startswith("2 customer(s) of table 'customers' match more than one form of their id")
    assert "store each customer id in one form" in info.value.hint


def test_duplicates_in_the_customers_table_are_still_its_own(tmp_path, revenue_policy):
    db = make_db(tmp_path / "dupes.db", "INTEGER", "", [(1, "2026-06-01", 100), ("1", "2026-06-02", 50)],
                 customers=((1, "Acme"), (1, "Acme again"), (2, "Beta")))
    with pytest.raises(DataError, match=r"customer ids are not unique in table 'customers': 1 \(2 times: rowid 1 Acme, rowid 2 Acme again\)"):
        apply_policy(db, revenue_policy, DAY)


def test_duplicated_ids_name_each_row_with_its_customer_name(tmp_path, cli):
    """The rowids alone do not tell which row to keep: each row is followed by the name the policy maps
    (data.customers.name); a row without a name is named by its rowid alone."""
    path = tmp_path / "rev.yaml"
    path.write_text(REVENUE, encoding="utf-8")
    db = make_db(tmp_path / "dupes.db", "TEXT", "", [("KH0012", "2026-06-01", 100)],
                 customers=(("KH0012", "宁波徐记装饰"), ("KH0007", "杭州"), ("KH0012", "宁波徐记装饰工程有限公司"),
                            ("KH0009", None), ("KH0009", "  ")))
    result = cli("apply", "--db", db, "-p", path, "--as-of", DAY)
    assert result.exit_code != 0
    assert ("customer ids are not unique in table 'customers': 'KH0009' (2 times: rowid 4, rowid 5), 'KH0012' "
            "(2 times: rowid 1 宁波徐记装饰, rowid 3 宁波徐记装饰工程有限公司)") in " ".join(result.output.split())
    assert not rows(db, "SELECT name FROM sqlite_master WHERE name LIKE 'crm_%'")


# ---- 2. an empty source table --------------------------------------------------------------------------------


def test_an_empty_orders_table_is_noted(tmp_path, revenue_policy):
    """An empty orders table (a header-only export, the wrong table mapped) grades everyone lowest; the run is
    valid, so it says so, without blaming a failed import (an import is all or nothing)."""
    db = make_db(tmp_path / "empty.db", "INTEGER PRIMARY KEY", "", [])
    outcome = apply_policy(db, revenue_policy, DAY)
    assert outcome.notes == [
        "the table 'orders' is empty (no rows at all): its metrics (revenue) are empty for every customer, as if "
        "nobody had any; if that is not so, the likely causes are an export of a period with no rows, a file of only "
        "its header imported, or data.orders.table naming the wrong table: import the file with the rows (crm-rules "
        "import FILE --db DB --table orders --replace) or map data.orders.table to the table that holds them"]
    assert dict(rows(db, "SELECT customer_id, tier FROM crm_assignments")) == {1: "small", 2: "small"}
    (stored,) = rows(db, "SELECT notes FROM crm_runs WHERE run_id = ?", outcome.run_id)[0]
    assert "the table 'orders' is empty" in stored
    assert "import that failed" not in stored


def test_a_header_only_import_is_noted_and_the_run_does_not_blame_a_failed_import(tmp_path, cli, revenue_policy):
    """The operator's own header-only import: import says it emptied the table; the run's note then gives the
    header-only file as a likely cause, never a failed import."""
    db = make_db(tmp_path / "empty.db", "INTEGER PRIMARY KEY", "", [(1, "2026-06-01", 100)])
    csv = tmp_path / "orders.csv"
    csv.write_text("id,customer_id,order_date,amount\n", encoding="utf-8")
    imported = cli("import", csv, "--db", db, "--table", "orders", "--replace", ok=True)
    assert "holds no rows, only its header" in imported.output
    applied = cli("apply", "--db", db, "-p", tmp_path / "rev.yaml", "--as-of", DAY, ok=True)
    said = " ".join(applied.output.split())
    assert "the table 'orders' is empty (no rows at all)" in said
    assert "a file of only its header imported" in said and "import that failed" not in said


def test_empty_tables_and_tables_dated_later_are_two_notes(demo_db):
    conn = sqlite3.connect(demo_db)
    conn.execute("DELETE FROM contracts")
    conn.commit()
    conn.close()
    empty = ("the table 'contracts' is empty (no rows at all): its metrics (actions.exit_barriers.params.contractual) "
             "are empty for every customer, as if nobody had any; if that is not so, the likely causes are an export "
             "of a period with no rows, a file of only its header imported, or data.contracts.table naming the wrong "
             "table: import the file with the rows (crm-rules import FILE --db DB --table contracts --replace) or map "
             "data.contracts.table to the table that holds them")  # a plugin's metric, named by its policy entry
    assert apply_policy(demo_db, load_policy("base"), AS_OF).notes == [empty]
    notes = apply_policy(demo_db, load_policy("base"), "2000-01-01").notes
    assert notes[1:] == [empty, "no row of 'interactions' (by date), 'orders' (by order_date), 'receivables' (by "
                         "issue_date) is dated on or before the as-of date 2000-01-01: their metrics are empty for "
                         "every customer; is --as-of right?"]


# ---- 3. receivables are placed in time by their issue date ---------------------------------------------------


def test_receivables_issued_after_the_as_of_date_are_noted(cli, demo_db):
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", "2000-01-01", "--json", ok=True)
    assert ("no row of 'contracts' (by start_date), 'interactions' (by date), 'orders' (by order_date), "
            "'receivables' (by issue_date) is dated on or before the as-of date 2000-01-01") in result.output


def _receivables_db(path, issued: str, due: str):
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT);
        CREATE TABLE receivables (id INTEGER PRIMARY KEY, customer_id TEXT, issue_date TEXT, due_date TEXT,
                                  amount REAL, paid_amount REAL, paid_date TEXT);
        INSERT INTO customers VALUES ('a', 'A');""")
    conn.execute("INSERT INTO receivables VALUES (1, 'a', ?, ?, 100, NULL, NULL)", (issued, due))
    conn.commit()
    conn.close()
    return path


def test_receivables_are_dated_by_their_issue_date_not_their_due_date(tmp_path):
    """The collection rate's window is cut by due dates; the note still judges by the issue date it names."""
    path = tmp_path / "r.yaml"
    path.write_text(RECEIVABLES, encoding="utf-8")
    policy = load_policy(path)
    issued_before_due_after = _receivables_db(tmp_path / "a.db", "2026-06-01", "2026-07-31")
    assert apply_policy(issued_before_due_after, policy, DAY).notes == []
    issued_after = _receivables_db(tmp_path / "b.db", "2026-07-15", "2026-08-14")
    assert apply_policy(issued_after, policy, DAY).notes == [
        "no row of 'receivables' (by issue_date) is dated on or before the as-of date 2026-06-30: its metrics are "
        "empty for every customer; is --as-of right?"]


@pytest.mark.parametrize("customer, order, said", [
    ("K00001  ", "K00001", "'K00001' is 'K00001  ' in 'customers' (with spaces around it): trim the ids, e.g. "
                           "UPDATE \"customers\" SET \"id\" = trim(\"id\")"),
    ("K00001", " K00001", "' K00001' is 'K00001' in 'customers' (without the spaces): trim the ids, e.g. "
                          "UPDATE \"orders\" SET \"customer_id\" = trim(\"customer_id\")"),
    ("K00001", "k00001", "'k00001' is 'K00001' in 'customers' (in other capitals): write each id the same way"),
])
def test_an_unknown_id_that_is_a_customer_written_otherwise_says_how(tmp_path, revenue_policy, customer, order, said):
    # an operator who sees K00001 in both tables cannot tell from "not in 'customers'" alone what is wrong
    db = make_db(tmp_path / "ids.db", "TEXT PRIMARY KEY", "TEXT", [(order, "2026-06-01", 100)], customers=((customer, "Acme"),))
    with pytest.raises(DataError) as info:
        apply_policy(db, revenue_policy, DAY)
    assert said in str(info.value)


@pytest.mark.parametrize("stored", [True, False])
def test_explaining_an_id_stored_with_spaces_suggests_it(tmp_path, cli, stored):
    import small_db

    db = small_db.make_db(tmp_path / "s.db", [("K00001 ", "Acme", "r")], orders=[("K00001 ", "2026-06-01", 10)])
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  revenue: {sum: amount}\ntiers:\n  levels: [{id: A, default: true}]\n")
    if stored:
        cli("apply", "--db", db, "-p", policy, "--as-of", AS_OF, ok=True)
    result = cli("explain", "k00001", "--db", db, "-p", policy, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "customer 'k00001' not found in table 'customers'" in result.output
    assert "hint: did you mean 'K00001 '? (the id is stored so: 'K00001 ' on the command line)" in result.output
