"""The hand-written SQLite aggregation the zen and rule-engine peers start from.

A rules engine grades one customer at a time; someone has to turn the raw
order ledger into one input row per customer first.  This is that query,
written the way an engineer tuning it by hand would: one scan of the orders
table computing every order aggregate at once, joined to the customers, with
the Pareto share of revenue as a window function.  It computes exactly the
metrics base.yaml's rules read (nothing else, so the peers are not charged
for metrics that only the plugins and actions need), with the same
definitions as crm-rules (engine/metric_sql.py), so every difference the
verification finds is a difference in the rules, not in the data.

`FROM orders NOT INDEXED ... GROUP BY customer_id` is deliberate: by default
SQLite walks the customer_id index and fetches each order by rowid, which
on large tables is several times slower than one sequential scan and a sort
(which PRAGMA threads lets it spread over two cores).

Money sums are rounded to the cent.  A floating-point SUM depends on the
order rows arrive in, and with PRAGMA threads the sorter hands a customer's
orders over in a different order from run to run: on the 100k benchmark
database, C0099635's nine orders add up to 3052.2, 3052.2000000000003 or
3052.2000000000007, so whether it ties C0084814 (two orders, 3052.2) at the
80% Pareto cut, and so C0084814's tier (A or B), changed between runs.
Amounts are in cents, so the sum rounded to the cent is the exact sum,
whatever the order.  crm-rules sums without rounding; the two agree unless
one of its sums lands a few units in the last place off the cent where that
splits a tie at a tier cut.

The query assumes clean data (ISO dates, amounts with at most two
decimals), as the benchmark generator writes it; crm-rules additionally
counts and reports unreadable rows, which a hand-written query would not.
"""

from __future__ import annotations

import sqlite3

from crm_rules.engine.date_windows import shifted, window_start

# Columns of each input row, in SELECT order: the names the policy's conditions use.
COLUMNS = ("customer_id", "revenue_12m", "profit_12m", "margin_12m", "recency_days", "tenure_years",
           "revenue_prev_12m_trend", "_tier_share")


AGGREGATE_SQL = """
WITH o AS (
    SELECT customer_id,
           round(SUM(CASE WHEN order_date >= :start_12m THEN amount END), 2) AS revenue,
           round(SUM(CASE WHEN order_date >= :start_12m THEN amount - cost END), 2) AS profit,
           round(SUM(CASE WHEN order_date >= :start_6m THEN amount END), 2) AS last_6m,
           round(SUM(CASE WHEN order_date >= :start_12m AND order_date < :start_6m THEN amount END), 2) AS prior_6m,
           MAX(order_date) AS last_order
    FROM orders NOT INDEXED
    WHERE order_date < :as_of_next
    GROUP BY customer_id
),
m AS (
    SELECT c.id AS customer_id,
           coalesce(o.revenue, 0) AS revenue_12m,
           coalesce(o.profit, 0) AS profit_12m,
           CAST(coalesce(o.profit, 0) AS REAL) / NULLIF(coalesce(o.revenue, 0), 0) AS margin_12m,
           CAST(julianday(:as_of) - julianday(o.last_order) AS INTEGER) AS recency_days,
           round((julianday(:as_of) - julianday(date(c.created_at))) / 365.25, 2) AS tenure_years,
           CASE WHEN o.prior_6m > 0 THEN coalesce(o.last_6m, 0) * 1.0 / o.prior_6m - 1 END AS revenue_prev_12m_trend
    FROM customers AS c LEFT JOIN o ON o.customer_id = c.id
)
SELECT m.*,
       -- share of positive revenue held by customers strictly ahead (ties form one group)
       CASE WHEN revenue_12m > 0 THEN
           coalesce(SUM(CASE WHEN revenue_12m > 0 THEN revenue_12m END) OVER (
               ORDER BY revenue_12m DESC GROUPS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
           * 1.0 / SUM(CASE WHEN revenue_12m > 0 THEN revenue_12m END) OVER ()
       END AS _tier_share
FROM m
"""


def window_params(conn: sqlite3.Connection, as_of: str) -> dict[str, str]:
    """The date bounds of the query: the windows are the engine's definition (a month-end stays a month-end)."""
    return {"as_of": as_of, "as_of_next": shifted(as_of, 1, "days"), "start_12m": window_start(as_of, 12, "months"),
            "start_6m": window_start(as_of, 6, "months")}


def connect(db: str) -> sqlite3.Connection:
    """Read-only connection with the settings the aggregation is fastest with.

    Two sorter threads; the default page cache, because a 200 MB one
    (cache_size = -200000) made the query slower, 2.15 s against 1.63 s
    (median of 4 on the 100k-customer benchmark database).
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("PRAGMA threads = 2")
    return conn


def aggregate(conn: sqlite3.Connection, as_of: str) -> list[dict]:
    """One dict per customer, keyed by COLUMNS: the input rows a per-customer rules engine takes."""
    cursor = conn.execute(AGGREGATE_SQL, window_params(conn, as_of))
    names = tuple(d[0] for d in cursor.description)
    assert names == COLUMNS, names
    return [dict(zip(names, row)) for row in cursor]
