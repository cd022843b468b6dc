"""Peer: the pandas script a competent data analyst would write for base.yaml, end to end.

Read the raw tables (only the columns needed), compute the metrics with a
groupby, the Pareto share with a sort and a running sum, then tiers,
sub-grades, stages and service levels with np.select.  The thresholds are
written out by hand, as an analyst would copy them from the policy; nothing
is generated from crm-rules' policy model.

Three details an analyst must get right to agree with crm-rules to the last
customer:
  - Pareto share with ties: customers with equal revenue share one rank, so
    each one's share is what the customers strictly ahead of them hold.  On
    the 100k benchmark database 13,510 customers share their 12-month revenue
    with another, and a plain cumsum minus own revenue puts one of them
    (C0099635) in the wrong tier.  The running sum is taken row by row in descending order,
    as SQLite's window SUM does, and each tie group takes the sum before its
    first row (summing a tie group first rounds differently, by about 1e-14).
  - Money sums are rounded to the cent, as in peer_sql: whether two
    customers tie must not depend on the order the additions happened in
    (see peer_sql's docstring for the customer this decides).
  - Window bounds: "12 months ending on the as-of date" starts the day after
    (as-of - 12 months) in SQLite's date arithmetic, which normalises an
    impossible date forward (2026-02-31 is 2026-03-03) where pandas'
    DateOffset clips it (2026-02-28).  The bounds are therefore asked from
    SQLite, one query, instead of computed with DateOffset.
Missing values follow SQL: NaN compares false in np.select conditions, as
NULL makes a SQL CASE skip a rule (the conditions contain no negation).

credit_check_outcome, the verdict of crm-rules' 6C credit plugin, is an
input: it is read from the reference run's crm_metrics, not
re-implemented.
"""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pandas as pd

from peers import PeerRun

BOUNDS_SQL = "SELECT date(:as_of, '-12 months', '+1 day') AS start_12m, date(:as_of, '-6 months', '+1 day') AS start_6m"


def read_inputs(conn: sqlite3.Connection, as_of: str, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers, orders up to the as-of date, credit outcome per customer from the crm-rules run)."""
    customers = pd.read_sql_query("SELECT id AS customer_id, created_at FROM customers", conn)
    orders = pd.read_sql_query("SELECT customer_id, order_date, amount, cost FROM orders WHERE order_date <= :as_of",
                               conn, params={"as_of": as_of})
    credit = pd.read_sql_query(
        "SELECT customer_id, credit_check_outcome FROM crm_metrics WHERE run_id = :run", conn, params={"run": run_id})
    return customers, orders, credit


def order_metrics(orders: pd.DataFrame, start_12m: pd.Timestamp, start_6m: pd.Timestamp) -> pd.DataFrame:
    """Per customer: 12-month revenue and profit, the two 6-month halves, the last order date."""
    date = pd.to_datetime(orders["order_date"], format="%Y-%m-%d")
    in_12m, in_6m = date >= start_12m, date >= start_6m
    per_order = pd.DataFrame({
        "customer_id": orders["customer_id"],
        "revenue": orders["amount"].where(in_12m),
        "profit": (orders["amount"] - orders["cost"]).where(in_12m),
        "last_6m": orders["amount"].where(in_6m),
        "prior_6m": orders["amount"].where(in_12m & ~in_6m),
    })
    grouped = per_order.groupby("customer_id", sort=False)
    # min_count: a customer with no order in a window gets NaN (SQL's NULL), not 0; sums to the cent (see above)
    sums = grouped.sum(min_count=1).round(2)
    sums["last_order"] = date.groupby(orders["customer_id"], sort=False).max()
    return sums


def pareto_share(revenue: pd.Series) -> pd.Series:
    """Share of positive revenue held by the customers strictly ahead (ties grouped); NaN when revenue <= 0."""
    positive = revenue[revenue > 0].sort_values(ascending=False, kind="stable")
    running = positive.cumsum()
    before = running.shift(1, fill_value=0.0)
    first_of_tie = positive.ne(positive.shift())
    ahead = before.where(first_of_tie).ffill()
    return (ahead / positive.sum()).reindex(revenue.index)


def metrics(customers: pd.DataFrame, orders: pd.DataFrame, as_of: str, bounds: dict) -> pd.DataFrame:
    day = pd.Timestamp(as_of)
    m = customers.merge(order_metrics(orders, pd.Timestamp(bounds["start_12m"]), pd.Timestamp(bounds["start_6m"])),
                        how="left", left_on="customer_id", right_index=True)
    m["revenue_12m"] = m["revenue"].fillna(0.0)
    m["profit_12m"] = m["profit"].fillna(0.0)
    m["margin_12m"] = m["profit_12m"] / m["revenue_12m"].where(m["revenue_12m"] != 0)
    m["recency_days"] = (day - m["last_order"]).dt.days
    m["tenure_years"] = ((day - pd.to_datetime(m["created_at"], format="%Y-%m-%d")).dt.days / 365.25).round(2)
    m["revenue_prev_12m_trend"] = m["last_6m"].fillna(0.0) / m["prior_6m"].where(m["prior_6m"] != 0) - 1
    m["tier_share"] = pareto_share(m["revenue_12m"])
    return m


def grade(m: pd.DataFrame) -> dict[str, np.ndarray]:
    """Tier, sub-grade, stage and service level as in policies/base.yaml (first matching rule wins)."""
    rev, share, margin = m["revenue_12m"], m["tier_share"], m["margin_12m"]
    recency, trend, tenure = m["recency_days"], m["revenue_prev_12m_trend"], m["tenure_years"]
    tier = np.select([(rev > 0) & (share < 0.80), (rev > 0) & (share < 0.95)], ["A", "B"], "C")
    strategic = (rev >= 500_000) | ((rev >= 200_000) & (margin >= 0.3))
    subgrade = np.select([(tier == "A") & strategic, tier == "A"], ["A1", "A2"], None)
    stage = np.select(
        [recency.isna() | (recency > 365), (recency > 120) | (trend <= -0.3), tenure < 0.5, (tenure < 2) | (trend >= 0.2)],
        ["lost", "decline", "identification", "development"], "stable")
    on_hold = m["credit_check_outcome"].isin(["hold", "block"])
    service = np.select(
        [(tier == "C") & on_hold, (tier == "A") & (stage == "decline"), tier == "A", tier == "B", tier == "C"],
        ["C-prepayment", "A-recovery", "A-key", "B-growth", "C-standard"], None)
    # Plain arrays, not a DataFrame: pandas 3 would infer its string dtype and turn None into NaN.
    return {"customer_id": m["customer_id"].to_numpy(), "tier": tier, "subgrade": subgrade,
            "stage": stage, "service_level": service}


def run(db: str, as_of: str, run_id: int) -> PeerRun:
    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    bounds = dict(zip(("start_12m", "start_6m"), conn.execute(BOUNDS_SQL, {"as_of": as_of}).fetchone()))
    customers, orders, credit = read_inputs(conn, as_of, run_id)
    conn.close()
    m = metrics(customers, orders, as_of, bounds).merge(credit, how="left", on="customer_id")
    rules_started = time.perf_counter()
    graded = grade(m)
    done = time.perf_counter()
    answers = zip(graded["customer_id"], graded["tier"], graded["subgrade"], graded["stage"], graded["service_level"])
    return PeerRun(answers, None, done - rules_started, done - started)
