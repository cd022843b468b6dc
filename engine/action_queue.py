"""Read a run's action queue: what account managers should do, and by when."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .database import connect
from .export import resolve_run
from .runner import parse_as_of


def list_actions(db: Path, run_id: int | None = None, due_before: str | None = None, owner: str | None = None,
                 action: str | None = None) -> tuple[int, list[dict]]:
    """(run id, actions) of a run (default: the latest successful run), most urgent first."""
    conn = connect(db, mode="ro")
    try:
        run = resolve_run(conn, run_id)
        rid = run["run_id"]
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'crm_actions'").fetchone() is None:
            return rid, []
        where, args = ["x.run_id = ?"], [rid]
        if due_before is not None:
            where.append("x.due_date < ?")
            args.append(parse_as_of(due_before, option="--due-before"))
        if owner is not None:
            where.append("x.owner = ?")
            args.append(owner)
        if action is not None:
            where.append("x.action = ?")
            args.append(action)
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT x.due_date, x.priority, x.customer_id, a.customer_name, a.tier, a.stage, x.action, x.category, "
            "x.owner, x.reason, x.details, x.plugin, x.generator FROM crm_actions AS x "
            "LEFT JOIN crm_assignments AS a ON a.run_id = x.run_id AND a.customer_id = x.customer_id "
            f"WHERE {' AND '.join(where)} ORDER BY x.due_date, x.priority, x.customer_id, x.action", args).fetchall()
        return rid, [dict(r) | {"details": json.loads(r["details"] or "{}")} for r in rows]
    finally:
        conn.close()
