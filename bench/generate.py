"""A deterministic benchmark database of any size, generated inside SQLite.

The demo generator (engine/demo_data.py) draws every row in Python, which is
right for a few thousand customers with readable names and notes, and far too
slow for ten million orders.  This one writes the same tables with set-based
INSERT ... SELECT statements whose "random" numbers are integer hashes of the
row number: the same size always gives byte-for-byte the same rows, on every
machine, in seconds per million rows.

The shape is what the benchmark policy needs to be meaningful: revenue
concentrated in few customers (Pareto weights), customers that are growing,
stable, declining or gone, new customers, late and bad payers, complaints and
referrals, contracts coming up for renewal.  As a real ledger would, the
receivables table keeps the invoices of the last 15 months (older ones are
settled and archived); orders keep their full 3-year history.

Usage: python bench/generate.py OUT.db --customers 1000000 --orders 10000000
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # a checkout named crm_rules

from crm_rules.engine.demo_data import DEMO_AS_OF, INDEXES, SCHEMA  # noqa: E402

HISTORY_DAYS = 3 * 365
LEDGER_DAYS = 455  # invoices kept in the receivables table
INTERACTIONS_PER_CUSTOMER = 2
CONTRACT_SHARE = 0.3


def uniform(key: str, salt: int) -> str:
    """SQL for a uniform number in [0, 1) that depends only on the integer `key` and `salt`.

    Two squarings modulo a prime make the numbers of different salts for the
    same key unrelated (a linear generator would only shift them); every
    product stays below 2**63, so SQLite never falls back to floating point.
    """
    m = 2147483647
    x = f"(({key}) * {1_000_003 + 7_919 * salt} + {104_729 * salt + 12_345}) % {m}"
    y = f"(({x}) * ({x}) + {salt + 1}) % {m}"
    return f"((({y}) * ({y}) + {3 * salt + 7}) % {m}) / {m}.0"


def _counter(limit: str) -> str:
    return f"WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < {limit})"


def _pick(u: str, choices: list[tuple[str, float]]) -> str:
    """CASE expression choosing a label by cumulative weight."""
    total = sum(w for _, w in choices)
    parts, acc = [], 0.0
    for label, weight in choices[:-1]:
        acc += weight / total
        parts.append(f"WHEN {u} < {acc:.6f} THEN '{label}'")
    return f"CASE {' '.join(parts)} ELSE '{choices[-1][0]}' END"


def generate(path: Path, customers: int, orders: int) -> dict:
    if path.exists():
        raise SystemExit(f"{path} exists; remove it first")
    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -200000")
    conn.execute("BEGIN")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    as_of = DEMO_AS_OF
    params = {"n": customers, "m": orders, "as_of": as_of}

    # Per-customer traits, kept in a temp table so the orders can follow them.
    conn.execute("CREATE TEMP TABLE trait (k INTEGER PRIMARY KEY, weight REAL, segment TEXT, age_days INTEGER, payer TEXT, terms INTEGER)")
    conn.execute(f"""
        INSERT INTO trait {_counter(':n')}
        SELECT k,
               min(400.0, pow(1.0 - {uniform('k', 1)}, -1.0 / 1.16)) AS weight,
               {_pick(uniform('k', 2), [('stable', 54), ('growing', 20), ('declining', 15), ('lost', 11)])} AS segment,
               CASE WHEN {uniform('k', 3)} < 0.10 THEN 20 + CAST(160 * {uniform('k', 4)} AS INTEGER)
                    ELSE 180 + CAST(4000 * {uniform('k', 4)} AS INTEGER) END AS age_days,
               {_pick(uniform('k', 5), [('good', 72), ('slow', 18), ('bad', 10)])} AS payer,
               {_pick(uniform('k', 6), [('30', 50), ('60', 30), ('90', 20)])} AS terms
        FROM n""", params)

    regions = [("华东", 20), ("华南", 15), ("华北", 10), ("西南", 5), ("North America", 30), ("Europe", 20)]
    industries = [("Manufacturing", 30), ("Retail", 25), ("Wholesale", 20), ("Services", 15), ("Technology", 10)]
    managers = [("张伟", 1), ("李娜", 1), ("王芳", 1), ("陈静", 1), ("Sarah Miller", 1), ("James Carter", 1), ("Laura Fischer", 1)]
    conn.execute(f"""
        INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit)
        SELECT printf('C%07d', k),
               CASE WHEN {uniform('k', 7)} < 0.5 THEN printf('客户 %d 有限公司', k) ELSE printf('Customer %d Ltd', k) END,
               {_pick(uniform('k', 8), regions)},
               {_pick(uniform('k', 9), industries)},
               date(:as_of, printf('-%d days', age_days)),
               {_pick(uniform('k', 10), managers)},
               round(weight * 20000, -3)
        FROM temp.trait ORDER BY k""", params)

    # Orders: interleaved customers (as a real, time-ordered order table is),
    # more of them for lower-numbered customers, amounts scaled by the
    # customer's Pareto weight, dates shaped by the customer's segment.
    u_days = uniform("o.k", 13)
    days_ago = f"""CASE t.segment
        WHEN 'growing' THEN CAST({HISTORY_DAYS} * pow({u_days}, 1.6) AS INTEGER)
        WHEN 'declining' THEN CAST({HISTORY_DAYS} * pow({u_days}, 0.45) AS INTEGER)
        WHEN 'lost' THEN 400 + CAST({HISTORY_DAYS - 400} * {u_days} AS INTEGER)
        ELSE CAST({HISTORY_DAYS} * {u_days} AS INTEGER) END"""
    conn.execute(f"""
        INSERT INTO orders (id, customer_id, order_date, amount, cost, discount)
        SELECT k, cid, order_date, amount, round(amount * (0.55 + 0.4 * {uniform('k', 14)}), 2),
               round(amount * 0.06 * {uniform('k', 15)} * {uniform('k', 16)}, 2)
        FROM (SELECT o.k, printf('C%07d', t.k) AS cid,
                     date(:as_of, printf('-%d days', min(t.age_days, {days_ago}))) AS order_date,
                     round(200 * (0.3 + 1.4 * {uniform('o.k', 12)}) * t.weight, 2) AS amount
              FROM (SELECT k, 1 + CAST(:n * pow({uniform('k', 11)}, 1.15) AS INTEGER) AS c
                    FROM ({_counter(':m')} SELECT k FROM n)) AS o
              CROSS JOIN temp.trait AS t ON t.k = min(o.c, :n))
        ORDER BY k""", params)

    # Receivables: one invoice per order of the last 15 months (4% never invoiced).
    u_late = uniform("o.id", 19)
    paid_days = """CASE t.payer
        WHEN 'good' THEN CAST(t.terms AS INTEGER) - 15 + CAST(18 * {u} AS INTEGER)
        WHEN 'slow' THEN CAST(t.terms AS INTEGER) - 5 + CAST(40 * {u} AS INTEGER)
        ELSE CAST(t.terms AS INTEGER) + 20 + CAST(130 * {u} AS INTEGER) END""".format(u=u_late)
    conn.execute(f"""
        INSERT INTO receivables (id, customer_id, order_id, issue_date, due_date, amount, paid_amount, paid_date)
        SELECT id, customer_id, id, order_date, date(order_date, '+' || terms || ' days'), amount,
               CASE WHEN unpaid THEN NULL ELSE amount END, CASE WHEN unpaid THEN NULL ELSE paid END
        FROM (SELECT o.id, o.customer_id, o.order_date, o.amount, t.terms,
                     date(o.order_date, printf('+%d days', {paid_days})) AS paid,
                     (t.payer = 'bad' AND {uniform('o.id', 20)} < 0.5) AS unpaid
              FROM orders AS o
              CROSS JOIN temp.trait AS t ON t.k = CAST(substr(o.customer_id, 2) AS INTEGER)
              WHERE o.order_date >= date(:as_of, '-{LEDGER_DAYS} days') AND {uniform('o.id', 21)} >= 0.04)
        ORDER BY id""", params)
    conn.execute("UPDATE receivables SET paid_amount = NULL, paid_date = NULL WHERE paid_date > ?", (as_of,))

    kinds = [("visit", 35), ("call", 35), ("complaint", 10), ("referral", 5), ("event", 15)]
    conn.execute(f"""
        INSERT INTO interactions (id, customer_id, date, kind, note)
        SELECT k, printf('C%07d', 1 + CAST(:n * {uniform('k', 22)} AS INTEGER)),
               date(:as_of, printf('-%d days', CAST(730 * {uniform('k', 23)} AS INTEGER))),
               {_pick(uniform('k', 24), kinds)}, ''
        FROM ({_counter(f':n * {INTERACTIONS_PER_CUSTOMER}')} SELECT k FROM n)""", params)

    conn.execute(f"""
        INSERT INTO contracts (id, customer_id, kind, start_date, end_date)
        SELECT k, printf('C%07d', k), 'framework', date(:as_of, printf('-%d days', age_days)),
               date(:as_of, printf('%+d days', CAST(900 * {uniform('k', 26)} AS INTEGER) - 360))
        FROM temp.trait WHERE {uniform('k', 25)} < {CONTRACT_SHARE} ORDER BY k""", params)

    for statement in INDEXES.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("COMMIT")
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("customers", "orders", "receivables", "interactions", "contracts")}
    conn.close()
    tmp.rename(path)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    counts = generate(args.out, args.customers, args.orders)
    print(json.dumps({**counts, "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
