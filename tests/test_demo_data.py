"""The demo database must be reproducible and must look like a real customer base."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from crm_rules.engine import demo_data
from crm_rules.engine.demo_data import DEMO_AS_OF, generate_demo_database
from crm_rules.engine.errors import UsageError

TABLES = ("customers", "orders", "receivables", "interactions", "contracts")
# Content digest (as in _content_hash) of customers=300, seed=11 before customers.lead_source was added; the
# other columns must not move.  If you change the generator on purpose, recompute it.
PINNED_BEFORE_LEAD_SOURCES = "6db81744c7bf24636af220f45184c2751358761eb84e7f541c78edface6bbf20"
AS_OF = date.fromisoformat(DEMO_AS_OF)


def _days_before(days: int) -> str:
    return (AS_OF - timedelta(days=days)).isoformat()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[sqlite3.Connection, dict]:
    """The default-size database, generated once: most properties only hold at realistic sizes."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    counts = generate_demo_database(path)
    conn = sqlite3.connect(path)
    yield conn, counts
    conn.close()


def _one(conn: sqlite3.Connection, sql: str, *params: object) -> object:
    return conn.execute(sql, params).fetchone()[0]


def _content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for table in TABLES:
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY id"):
                digest.update(repr(row).encode())
    return digest.hexdigest()


# --- reproducibility and file handling ----------------------------------------


def test_same_seed_gives_identical_content(tmp_path: Path) -> None:
    generate_demo_database(tmp_path / "a.db", customers=300, seed=11)
    generate_demo_database(tmp_path / "b.db", customers=300, seed=11)
    generate_demo_database(tmp_path / "c.db", customers=300, seed=12)
    assert _content_hash(tmp_path / "a.db") == _content_hash(tmp_path / "b.db")
    assert _content_hash(tmp_path / "a.db") != _content_hash(tmp_path / "c.db")


def test_counts_match_tables(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, counts = demo
    assert set(counts) == set(TABLES)
    for table in TABLES:
        assert counts[table] == _one(conn, f"SELECT count(*) FROM {table}")
    assert counts["customers"] == 2000


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    path.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        generate_demo_database(path, customers=10)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.db"]


def test_failure_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(demo_data, "_insert_chunk", explode)
    with pytest.raises(RuntimeError):
        generate_demo_database(tmp_path / "demo.db", customers=10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("customers", [0, -5, 2.5, True])
def test_rejects_bad_customer_count(tmp_path: Path, customers: object) -> None:
    with pytest.raises(UsageError, match="customers"):
        generate_demo_database(tmp_path / "demo.db", customers=customers)
    assert list(tmp_path.iterdir()) == []


def test_rejects_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        generate_demo_database(tmp_path / "nowhere" / "demo.db", customers=10)


def test_schema_types_and_indexes(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, _ = demo
    expected = {
        "customers": [("id", "TEXT", 1), ("name", "TEXT", 0), ("region", "TEXT", 0), ("industry", "TEXT", 0),
                      ("created_at", "TEXT", 0), ("account_manager", "TEXT", 0), ("credit_limit", "REAL", 0),
                      ("lead_source", "TEXT", 0)],
        "orders": [("id", "INTEGER", 1), ("customer_id", "TEXT", 0), ("order_date", "TEXT", 0),
                   ("amount", "REAL", 0), ("cost", "REAL", 0), ("discount", "REAL", 0)],
        "receivables": [("id", "INTEGER", 1), ("customer_id", "TEXT", 0), ("order_id", "INTEGER", 0),
                        ("issue_date", "TEXT", 0), ("due_date", "TEXT", 0), ("amount", "REAL", 0),
                        ("paid_amount", "REAL", 0), ("paid_date", "TEXT", 0)],
        "interactions": [("id", "INTEGER", 1), ("customer_id", "TEXT", 0), ("date", "TEXT", 0),
                         ("kind", "TEXT", 0), ("note", "TEXT", 0)],
        "contracts": [("id", "INTEGER", 1), ("customer_id", "TEXT", 0), ("kind", "TEXT", 0),
                      ("start_date", "TEXT", 0), ("end_date", "TEXT", 0)],
    }
    for table, columns in expected.items():
        info = conn.execute("SELECT name, type, pk FROM pragma_table_info(?)", (table,)).fetchall()
        assert info == columns
        if table != "customers":
            indexed = [
                row[0]
                for (index,) in conn.execute("SELECT name FROM pragma_index_list(?)", (table,))
                for row in conn.execute("SELECT name FROM pragma_index_info(?)", (index,))
            ]
            assert "customer_id" in indexed


# --- realism ------------------------------------------------------------------------


def test_revenue_follows_pareto(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, _ = demo
    revenue = [
        row[0]
        for row in conn.execute(
            "SELECT coalesce(sum(o.amount), 0) AS revenue FROM customers c"
            " LEFT JOIN orders o ON o.customer_id = c.id AND o.order_date > ?"
            " GROUP BY c.id ORDER BY revenue DESC",
            (_days_before(3 * 365 + 1),),
        )
    ]
    top = sum(revenue[: len(revenue) // 5]) / sum(revenue)
    assert 0.65 <= top <= 0.90


def test_orders_per_customer_and_window(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, counts = demo
    assert 15 <= counts["orders"] / counts["customers"] <= 25
    first, last = conn.execute("SELECT min(order_date), max(order_date) FROM orders").fetchone()
    assert _days_before(3 * 366) <= first <= _days_before(3 * 365 - 30)
    assert last <= DEMO_AS_OF


def test_bigger_customers_order_more_often(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, _ = demo
    rows = conn.execute(
        "SELECT count(*), sum(amount) FROM orders GROUP BY customer_id ORDER BY sum(amount) DESC"
    ).fetchall()
    fifth = len(rows) // 5
    top_orders = sum(n for n, _ in rows[:fifth]) / fifth
    bottom_orders = sum(n for n, _ in rows[-fifth:]) / fifth
    assert top_orders > 2 * bottom_orders


def test_lifecycle_mix(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, counts = demo
    total = counts["customers"]
    new = _one(conn, "SELECT count(*) FROM customers WHERE created_at > ?", _days_before(183))
    old = _one(conn, "SELECT count(*) FROM customers WHERE created_at < ?", _days_before(3 * 365))
    lost = _one(
        conn,
        "SELECT count(*) FROM customers c WHERE coalesce("
        "(SELECT max(order_date) FROM orders o WHERE o.customer_id = c.id), '') < ?",
        _days_before(365),
    )
    declining = _one(
        conn,
        "SELECT count(*) FROM (SELECT sum(order_date > ?) AS recent,"
        " sum(order_date > ? AND order_date <= ?) AS before FROM orders GROUP BY customer_id)"
        " WHERE before >= 4 AND recent <= before / 2.0",
        _days_before(182), _days_before(365), _days_before(182),
    )
    growing = _one(
        conn,
        "SELECT count(*) FROM (SELECT sum(order_date > ?) AS recent,"
        " sum(order_date > ? AND order_date <= ?) AS early FROM orders GROUP BY customer_id)"
        " WHERE early >= 2 AND recent >= 2 * early",
        _days_before(365), _days_before(3 * 365), _days_before(2 * 365),
    )
    assert 0.07 <= new / total <= 0.14
    assert 0.08 <= lost / total <= 0.16
    assert old / total >= 0.3
    assert declining / total >= 0.05
    assert growing / total >= 0.03


def test_receivables_tell_a_payment_story(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, counts = demo
    assert 0.9 * counts["orders"] <= counts["receivables"] <= counts["orders"]
    mismatched = _one(
        conn,
        "SELECT count(*) FROM receivables r JOIN orders o ON o.id = r.order_id"
        " WHERE o.customer_id != r.customer_id OR o.amount != r.amount OR o.order_date != r.issue_date"
        " OR julianday(r.due_date) - julianday(r.issue_date) NOT IN (30, 60, 90)",
    )
    assert mismatched == 0
    overdue_customers = _one(
        conn,
        "SELECT count(DISTINCT customer_id) FROM receivables WHERE due_date < ? AND paid_amount < amount",
        DEMO_AS_OF,
    )
    assert 0.02 * counts["customers"] <= overdue_customers <= 0.35 * counts["customers"]
    assert _one(conn, "SELECT count(*) FROM receivables WHERE paid_date > due_date") > 0
    assert _one(conn, "SELECT count(*) FROM receivables WHERE paid_amount > 0 AND paid_amount < amount") > 0
    assert _one(conn, "SELECT count(*) FROM receivables WHERE paid_date IS NULL AND paid_amount != 0") == 0
    on_time = _one(conn, "SELECT avg(paid_date <= due_date) FROM receivables WHERE paid_date IS NOT NULL")
    assert on_time > 0.6


def test_amounts(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, _ = demo
    for amount, cost, discount in conn.execute("SELECT amount, cost, discount FROM orders LIMIT 5000"):
        assert amount > 0 and cost > 0 and discount >= 0
        assert round(amount, 2) == amount and round(cost, 2) == cost and round(discount, 2) == discount
    loss_making = _one(conn, "SELECT avg(cost > amount) FROM orders")
    assert 0.005 < loss_making < 0.1
    assert _one(conn, "SELECT avg(discount > 0) FROM orders") > 0.1


def test_names_regions_and_managers(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, counts = demo
    chinese = _one(conn, "SELECT count(*) FROM customers WHERE name LIKE '%公司'")
    assert 0.25 <= chinese / counts["customers"] <= 0.42
    regions = {row[0] for row in conn.execute("SELECT DISTINCT region FROM customers")}
    assert regions == {"华东", "华南", "华北", "西南", "North America", "Europe"}
    managers = [row[0] for row in conn.execute("SELECT DISTINCT account_manager FROM customers")]
    assert 3 <= len(managers) <= 12
    assert any(not name.isascii() for name in managers)
    assert _one(conn, "SELECT count(DISTINCT industry) FROM customers") >= 5


def test_lead_sources(demo: tuple[sqlite3.Connection, dict]) -> None:
    """Every lead source occurs; big accounts come from trade shows more often than from bare price inquiries."""
    conn, counts = demo
    shares = dict(conn.execute("SELECT lead_source, count(*) * 1.0 / ? FROM customers GROUP BY 1", (counts["customers"],)))
    assert set(shares) == {"trade_show", "b2b_inquiry", "price_inquiry", "referral", "outbound", None}
    assert all(0.05 <= shares[s] <= 0.45 for s in shares if s is not None)
    assert shares[None] <= 0.05  # only customers from before lead sources were recorded
    assert _one(conn, "SELECT count(*) FROM customers WHERE lead_source IS NULL AND created_at >= '2017-01-01'") == 0
    by_size = dict(conn.execute(
        "SELECT big, avg(lead_source = 'trade_show') - avg(lead_source = 'price_inquiry') FROM"
        " (SELECT c.lead_source, sum(o.amount) >= 300000 AS big FROM customers c"
        "  JOIN orders o ON o.customer_id = c.id WHERE c.lead_source IS NOT NULL GROUP BY c.id) GROUP BY big"))
    assert by_size[1] > 0.1 and by_size[0] < 0


def test_lead_sources_do_not_change_the_other_columns(tmp_path: Path) -> None:
    """Lead sources come from a random stream of their own: the same seed gives the same other rows as before."""
    generate_demo_database(tmp_path / "a.db", customers=300, seed=11)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        digest = hashlib.sha256()
        for table in TABLES:
            columns = "id, name, region, industry, created_at, account_manager, credit_limit" if table == "customers" else "*"
            for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY id"):
                digest.update(repr(row).encode())
    assert digest.hexdigest() == PINNED_BEFORE_LEAD_SOURCES


def test_interactions_and_contracts(demo: tuple[sqlite3.Connection, dict]) -> None:
    conn, _ = demo
    kinds = {row[0] for row in conn.execute("SELECT DISTINCT kind FROM interactions")}
    assert kinds == {"visit", "call", "complaint", "referral", "event"}
    assert {row[0] for row in conn.execute("SELECT DISTINCT kind FROM contracts")} == {"framework", "annual", "service"}
    expiring = _one(
        conn,
        "SELECT count(*) FROM contracts WHERE end_date > ? AND end_date <= ?",
        DEMO_AS_OF,
        (AS_OF + timedelta(days=90)).isoformat(),
    )
    expired = _one(conn, "SELECT count(*) FROM contracts WHERE end_date < ?", DEMO_AS_OF)
    assert expiring > 0 and expired > 0
    assert _one(conn, "SELECT count(*) FROM contracts WHERE end_date < start_date") == 0


def test_no_event_after_as_of(demo: tuple[sqlite3.Connection, dict]) -> None:
    """Due dates and contract end dates may lie ahead; everything that *happened* may not."""
    conn, _ = demo
    happened = {
        "customers": ["created_at"],
        "orders": ["order_date"],
        "receivables": ["issue_date", "paid_date"],
        "interactions": ["date"],
        "contracts": ["start_date"],
    }
    for table, columns in happened.items():
        for column in columns:
            assert _one(conn, f"SELECT max({column}) FROM {table}") <= DEMO_AS_OF, (table, column)
    for table, column in [("orders", "order_date"), ("receivables", "due_date"), ("contracts", "end_date")]:
        for (value,) in conn.execute(f"SELECT {column} FROM {table} LIMIT 2000"):
            assert date.fromisoformat(value).isoformat() == value
