"""Read a run's action queue: what account managers should do, and by when."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .database import connect
from .errors import UsageError
from .export import resolve_run
from .expr_types import did_you_mean
from .plugin_sql import OWNER_SPACE, trimmed_owner
from .run_history import listing
from .runner import parse_as_of

# Most urgent first: priority 1 before 2 (a plugin's priority says how urgent), then the earliest due.  By due
# date alone the demo's default page of 50 held only priority-3 renewal offers due on the as-of date, and its
# 193 priority-1 churn alerts (due three days later) came after them.
URGENT_FIRST = "x.priority IS NULL, x.priority, x.due_date, x.customer_id, x.action"
NO_ACTIONS = "the run's policy generates none (see `actions:` in the policy), or pick another run with --run"


def list_actions(db: Path, run_id: int | None = None, due_before: str | None = None, owner: str | None = None,
                 action: str | None = None) -> tuple[int, list[dict]]:
    """(run id, actions) of a run (default: the latest successful run), most urgent first (URGENT_FIRST).

    An ``action`` or ``owner`` that no action of the run has is a typo, not an empty queue: it is an error
    naming the ones the run has (as ``runs --policy`` and ``history --policy`` do), where an empty table and
    exit 0 used to read as "nothing to do".  Values that exist but select nothing together (an owner without
    churn alerts, nothing due before a date) give an empty list.  Whitespace around an owner is never part
    of the name (plugin_sql.OWNER_SPACE), in the option or in runs written before runs trimmed it.
    """
    conn = connect(db, mode="ro")
    try:
        run = resolve_run(conn, run_id)
        rid = run["run_id"]
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'crm_actions'").fetchone() is None:
            if action is not None or owner is not None:
                raise UsageError(f"{db}: run {rid} has no actions", hint=NO_ACTIONS)
            return rid, []
        where, args = ["x.run_id = ?"], [rid]
        if due_before is not None:
            where.append("x.due_date < ?")
            args.append(parse_as_of(due_before, option="--due-before"))
        if action is not None:
            _check_named(conn, db, rid, "action", "action", action)
            where.append("x.action = ?")
            args.append(action)
        if owner is not None:
            owner = owner.strip(OWNER_SPACE)
            _check_named(conn, db, rid, trimmed_owner("owner"), "owner", owner)
            where.append(f"{trimmed_owner('x.owner')} = ?")
            args.append(owner)
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT x.due_date, x.priority, x.customer_id, a.customer_name, a.tier, a.stage, x.action, x.category, "
            f"{trimmed_owner('x.owner')} AS owner, x.reason, x.details, x.plugin, x.generator FROM crm_actions AS x "
            "LEFT JOIN crm_assignments AS a ON a.run_id = x.run_id AND a.customer_id = x.customer_id "
            f"WHERE {' AND '.join(where)} ORDER BY {URGENT_FIRST}", args).fetchall()
        return rid, [dict(r) | {"details": json.loads(r["details"] or "{}")} for r in rows]
    finally:
        conn.close()


def _check_named(conn: sqlite3.Connection, db: Path, rid: int, column: str, what: str, value: str) -> None:
    """Refuse an --action or --owner value that no action of the run has, naming the ones it has (listed only
    then: a run can have millions of actions)."""
    if conn.execute(f"SELECT 1 FROM crm_actions WHERE run_id = ? AND {column} = ? LIMIT 1", (rid, value)).fetchone():
        return
    names = [r[0] for r in conn.execute(
        f"SELECT DISTINCT {column} FROM crm_actions WHERE run_id = ? AND {column} IS NOT NULL ORDER BY 1", (rid,))]
    if names:
        raise UsageError(f"{db}: run {rid} has no {what} {value!r}{did_you_mean(value, names)}",
                         hint=f"{what}s in run {rid}: {listing(names)}")
    if conn.execute("SELECT 1 FROM crm_actions WHERE run_id = ? LIMIT 1", (rid,)).fetchone() is None:
        raise UsageError(f"{db}: run {rid} has no actions", hint=NO_ACTIONS)
    raise UsageError(f"{db}: no action of run {rid} has an owner",
                     hint="owners are the customers' account managers, where the policy's data mapping names them")
