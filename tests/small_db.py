"""Tiny hand-made databases with the demo schema, for exact arithmetic tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crm_rules.engine.demo_data import DEMO_AS_OF, SCHEMA
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from conftest import stored_metrics

D = DEMO_AS_OF


def make_db(path: Path, customers, orders=(), receivables=(), interactions=(), contracts=()) -> Path:
    """customers: (id, name, region); orders: (customer, date, amount[, cost]); others are full rows minus id."""
    conn = sqlite3.connect(path)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany("INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) VALUES (?, ?, ?, 'retail', '2020-01-01', 'someone', 10000)", customers)
    conn.executemany("INSERT INTO orders (customer_id, order_date, amount, cost, discount) VALUES (?, ?, ?, ?, 0)",
                     [(o[0], o[1], o[2], o[3] if len(o) > 3 else 0) for o in orders])
    conn.executemany("INSERT INTO receivables (customer_id, order_id, issue_date, due_date, amount, paid_amount, "
                     "paid_date) VALUES (?, NULL, ?, ?, ?, ?, ?)", receivables)
    conn.executemany("INSERT INTO interactions (customer_id, date, kind, note) VALUES (?, ?, ?, '')", interactions)
    conn.executemany("INSERT INTO contracts (customer_id, kind, start_date, end_date) VALUES (?, 'annual', ?, ?)",
                     contracts)
    conn.commit()
    conn.close()
    return path


def assignments(db: Path, run_id: int) -> dict:
    """customer -> (tier, subgrade, stage, service_level, metrics dict) of one run."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT customer_id, tier, subgrade, stage, service_level FROM crm_assignments "
                        "WHERE run_id = ?", (run_id,)).fetchall()
    conn.close()
    metrics = stored_metrics(db, run_id)
    return {r[0]: (r[1], r[2], r[3], r[4], metrics[r[0]]) for r in rows}


def actions(db: Path, run_id: int) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM crm_actions WHERE run_id = ? ORDER BY customer_id, action", (run_id,))]
    conn.close()
    return rows


def run(tmp_path: Path, policy_yaml: str, db: Path) -> dict:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(policy_yaml, encoding="utf-8")
    outcome = apply_policy(db, load_policy(policy_file), D)
    return assignments(db, outcome.run_id)


def rows(db, sql, *args):
    """All rows of a query on a database file (opened and closed here)."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
