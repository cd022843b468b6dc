"""How source tables are read: a covering index when there is one, else a plain scan, one thread."""

from __future__ import annotations

import sqlite3

from crm_rules.engine.database import connect
from crm_rules.engine.scan_plan import covering_index, from_clause


def _db(tmp_path, *indexes: str):
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id TEXT, order_date TEXT, amount REAL)")
    for sql in indexes:
        conn.execute(sql)
    conn.commit()
    conn.close()
    return connect(path, mode="ro")


def test_a_plain_customer_index_is_not_walked(tmp_path):
    conn = _db(tmp_path, "CREATE INDEX o_c ON orders(customer_id)")
    assert covering_index(conn, "main", "orders", "customer_id", {"order_date", "amount"}) is None
    assert from_clause(conn, "main", "orders", "customer_id", {"order_date", "amount"}).endswith("NOT INDEXED")


def test_a_covering_index_is_used(tmp_path):
    conn = _db(tmp_path, "CREATE INDEX o_cover ON orders(customer_id, order_date, amount)")
    assert covering_index(conn, "main", "orders", "customer_id", {"order_date", "amount"}) == "o_cover"
    assert 'INDEXED BY "o_cover"' in from_clause(conn, "main", "orders", "customer_id", {"amount"})


def test_an_index_not_led_by_the_key_or_partial_does_not_count(tmp_path):
    conn = _db(tmp_path, "CREATE INDEX o_d ON orders(order_date, customer_id, amount)",
               "CREATE INDEX o_p ON orders(customer_id, order_date, amount) WHERE amount > 0")
    assert covering_index(conn, "main", "orders", "customer_id", {"order_date", "amount"}) is None


def test_sorts_run_on_one_thread_so_sums_are_reproducible(tmp_path):
    conn = _db(tmp_path)
    assert conn.execute("PRAGMA threads").fetchone()[0] == 0
