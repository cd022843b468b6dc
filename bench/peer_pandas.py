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
  - Window bounds: "12 months ending on the as-of date" is the engine's
    definition (crm_rules.engine.date_windows: a month-end stays a month-end,
    so as of 2026-06-30 six months start on 2026-01-01, where DateOffset
    would give 2025-12-31), taken from there rather than written again.
Missing values follow SQL: NaN compares false in np.select conditions, as
NULL makes a SQL CASE skip a rule (the conditions contain no negation).

The credit verdict one service level reads (C customers on credit hold or
block pay in advance) is computed here too, from the raw receivables, as
the analyst must to assign service levels: the 6C check of
credit_check.py with its default rubric, down to what hold or block
needs (overdue > 90 days, the grade C score, exposure over the limit,
exposure with a zero limit).  The zen and rule-engine peers take that
verdict from the crm-rules run instead: they are compared on rule
evaluation, after the same SQL.  The score is computed in the engine's
order of operations and rounded to 2 decimals before the grade cut, as the
engine does; on the 1M benchmark database every customer's score equals
crm-rules' to the last bit.  (A score on a half-cent boundary could still
round differently: pandas rounds half to even on the binary value, SQLite's
round() half away from zero on its decimal digits; no score there is one.)
"""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pandas as pd

from crm_rules.engine.date_windows import window_start
from peers import PeerRun

BOUNDS_SQL = """SELECT date(:as_of, '+1 day') AS as_of_next,
                         date(:as_of, '-90 days') AS due_90"""

# The default 6C rubric of credit_check.py: weights, tenure bands (years, inclusive upper ends) and the score below
# which the grade is the worst one (C), which blocks credit.
CREDIT_WEIGHTS = {"character": 0.4, "capacity": 0.3, "continuity": 0.3}
TENURE_BANDS = [(1, 0.2), (3, 0.6), (5, 0.8)]
TENURE_TOP = 1.0
WORST_GRADE_BELOW = 40


def read_inputs(conn: sqlite3.Connection, as_of: str, as_of_next: str) -> tuple[pd.DataFrame, ...]:
    """(customers, orders up to the as-of date, receivables issued or due by then)."""
    customers = pd.read_sql_query("SELECT id AS customer_id, created_at, credit_limit FROM customers", conn)
    orders = pd.read_sql_query("SELECT customer_id, order_date, amount, cost FROM orders WHERE order_date <= :as_of",
                               conn, params={"as_of": as_of})
    receivables = pd.read_sql_query(
        "SELECT customer_id, issue_date, due_date, paid_date, amount, paid_amount FROM receivables "
        "WHERE issue_date < :next OR due_date < :next", conn, params={"next": as_of_next})
    return customers, orders, receivables


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
    m["revenue_prev_12m_trend"] = m["last_6m"].fillna(0.0) / m["prior_6m"].where(m["prior_6m"] > 0) - 1
    m["tier_share"] = pareto_share(m["revenue_12m"])
    return m


def receivable_metrics(recv: pd.DataFrame, as_of_next: str, due_90: str) -> pd.DataFrame:
    """Per customer: invoices due, those paid in full on time, open amount (exposure), open amount overdue > 90 days."""
    # Dates are ISO text, so they compare as strings; a payment after the as-of date has not happened yet.
    paid = recv["paid_date"].notna()
    paid_by_then = recv["paid_amount"].fillna(0.0).where(~paid | (recv["paid_date"] < as_of_next), 0.0)
    open_amount = recv["amount"] - paid_by_then
    is_open = (recv["issue_date"] < as_of_next) & (open_amount > 0.005)
    due = recv["due_date"] < as_of_next
    paid_in_full = recv["paid_amount"].fillna(0.0) >= recv["amount"] - 0.005
    on_time = due & paid & (recv["paid_date"] <= recv["due_date"]) & paid_in_full
    per_invoice = pd.DataFrame({
        "customer_id": recv["customer_id"], "due": due, "on_time": on_time,
        "exposure": open_amount.where(is_open, 0.0),
        "overdue_90": open_amount.where(is_open & (recv["due_date"] < due_90), 0.0),
    })
    return per_invoice.groupby("customer_id", sort=False).sum()


def credit_on_hold(m: pd.DataFrame) -> pd.Series:
    """Whether the 6C check's outcome is hold or block: overdue > 90 days or the worst grade block; exposure over the
    limit, or any exposure with a zero limit, holds."""
    w = CREDIT_WEIGHTS
    character = (m["on_time"] / m["due"].where(m["due"] > 0)).clip(0.0, 1.0)
    ranked = m["revenue_12m"]  # rounded to the cent, so equal revenues tie as the engine's 6-decimal tie key makes them
    n = ranked.notna().sum()
    capacity = ((ranked.rank(method="min") - 1) / (n - 1)) if n > 1 else pd.Series(1.0, index=m.index)
    capacity = capacity.where(ranked.notna())
    tenure = m["tenure_years"]
    bands = np.select([tenure <= up_to for up_to, _ in TENURE_BANDS], [score for _, score in TENURE_BANDS], TENURE_TOP)
    continuity = pd.Series(bands, index=m.index).where(tenure.notna())
    # the weighted mean over the factors a customer has, in the engine's order of operations
    weighted = ((w["character"] * character).fillna(0.0) + (w["capacity"] * capacity).fillna(0.0)
                + (w["continuity"] * continuity).fillna(0.0))
    present = (character.notna() * w["character"] + capacity.notna() * w["capacity"]
               + continuity.notna() * w["continuity"])
    score = 100 * weighted / present.where(present != 0)
    worst_grade = score.round(2) < WORST_GRADE_BELOW  # the engine grades the score rounded to 2 decimals
    exposure = m["exposure"].fillna(0.0)
    limit = m["credit_limit"]
    block = (m["overdue_90"].fillna(0.0) > 0) | worst_grade
    hold = (exposure / limit.where(limit != 0) > 1) | ((limit == 0) & (exposure > 0))
    return block | hold


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
    on_hold = credit_on_hold(m)
    service = np.select(
        [(tier == "C") & on_hold, (tier == "A") & (stage == "decline"), tier == "A", tier == "B", tier == "C"],
        ["C-prepayment", "A-recovery", "A-key", "B-growth", "C-standard"], None)
    # Plain arrays, not a DataFrame: pandas 3 would infer its string dtype and turn None into NaN.
    return {"customer_id": m["customer_id"].to_numpy(), "tier": tier, "subgrade": subgrade,
            "stage": stage, "service_level": service}


def run(db: str, as_of: str, run_id: int) -> PeerRun:
    """The whole script, timed; ``run_id`` is part of the peers' shared signature, but pandas needs nothing from it."""
    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    cursor = conn.execute(BOUNDS_SQL, {"as_of": as_of})
    bounds = dict(zip((d[0] for d in cursor.description), cursor.fetchone()))
    bounds |= {"start_12m": window_start(as_of, 12, "months"), "start_6m": window_start(as_of, 6, "months")}
    customers, orders, receivables = read_inputs(conn, as_of, bounds["as_of_next"])
    conn.close()
    m = metrics(customers, orders, as_of, bounds).merge(
        receivable_metrics(receivables, bounds["as_of_next"], bounds["due_90"]),
        how="left", left_on="customer_id", right_index=True)
    rules_started = time.perf_counter()
    graded = grade(m)
    done = time.perf_counter()
    answers = zip(graded["customer_id"], graded["tier"], graded["subgrade"], graded["stage"], graded["service_level"])
    return PeerRun(answers, None, done - rules_started, done - started)
