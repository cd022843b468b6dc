"""The actions part of ``crm-rules diff``: per action id, which customers gain it, lose it, or keep it rescheduled.

A policy change can leave every grade as it was and still change the work it queues: an action's ``when``, a
threshold in its params, its due days or priority.  Comparing grades alone, diff said "no change" to exactly
the edit a user ran it to preview.  So each side's actions are compared too, the same way as the grades: in
SQL, over the whole customer base.

Each side is reduced to one row per (customer, action id) as soon as it is computed (``compute`` recreates its
action table for the next side): two plugin entries may give one customer the same action, and a customer who
has it once or twice still has it.  Of its rows the row keeps the most urgent priority and the earliest due
date.  The two sides are then joined on (customer, action) like the grades (a full outer join), and every count
is one ``GROUP BY`` over that join:

* ``gained``: customers who have the action on the new side and not on the old one;
* ``lost``: the other way round;
* ``rescheduled``: customers who have it on both sides with another priority or due date (a change of
  ``due_in_days`` or ``priority_by_tier`` moves no customer in or out, but changes when the work is due).

A customer present on one side only (``--against-run``, after customers were added or removed) gains or loses
all their actions.  Reasons and details are not compared: they quote the condition and the customer's values,
so rewording a condition would "change" every customer who keeps the action.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .database import table_columns
from .expr_sql import quote_identifier as q
from .plugin_sql import ACTIONS

OLD_ACTIONS, NEW_ACTIONS = "temp._diff_old_actions", "temp._diff_new_actions"
ACTION_PAIRS = "temp._diff_action_pairs"
CHANGES = ("gained", "lost", "rescheduled")  # the order of a customer's changes, and of their JSON names


def _per_customer(conn: sqlite3.Connection, target: str, select: str, params: tuple = ()) -> None:
    """``target`` = one row per (cid, action) of ``select``'s rows, most urgent priority and earliest due date."""
    name = target.split(".", 1)[1]
    conn.execute(f"DROP TABLE IF EXISTS {target}")
    conn.execute(f"CREATE TEMP TABLE {q(name)} AS SELECT cid, action, min(priority) AS priority, "
                 f"min(due_date) AS due_date FROM ({select}) GROUP BY cid, action", params)
    conn.execute(f"CREATE INDEX temp.{q(name + '_key')} ON {q(name)}(cid, action)")


def copy_computed_actions(conn: sqlite3.Connection, target: str) -> None:
    """The actions the policy just computed (``runner.compute``'s action table), into ``target``."""
    _per_customer(conn, target, f"SELECT cid, action, priority, due_date FROM {ACTIONS}")


def copy_run_actions(conn: sqlite3.Connection, schema: str, run_id: int, target: str) -> bool:
    """The actions stored run ``run_id`` wrote (``crm_actions`` in ``schema``), into ``target``; False when the
    results have no actions table (written before crm-rules stored actions): then there is nothing to compare."""
    if table_columns(conn, schema, "crm_actions") is None:
        return False
    _per_customer(conn, target, f"SELECT customer_id AS cid, action, priority, due_date "
                                f"FROM {q(schema)}.crm_actions WHERE run_id = ?", (run_id,))
    return True


def _pairs(conn: sqlite3.Connection) -> None:
    """One row per (customer, action) of either side, old and new priority and due date side by side."""
    conn.execute(f"DROP TABLE IF EXISTS {ACTION_PAIRS}")
    conn.execute(
        f"CREATE TEMP TABLE {q(ACTION_PAIRS.split('.', 1)[1])} AS "
        f"SELECT o.cid AS cid, o.action AS action, 1 AS in_old, n.cid IS NOT NULL AS in_new, "
        f"o.priority AS old_priority, n.priority AS new_priority, o.due_date AS old_due, n.due_date AS new_due "
        f"FROM {OLD_ACTIONS} AS o LEFT JOIN {NEW_ACTIONS} AS n ON n.cid = o.cid AND n.action = o.action "
        f"UNION ALL "
        f"SELECT n.cid, n.action, 0, 1, NULL, n.priority, NULL, n.due_date FROM {NEW_ACTIONS} AS n "
        f"WHERE NOT EXISTS (SELECT 1 FROM {OLD_ACTIONS} AS o WHERE o.cid = n.cid AND o.action = n.action)")


# What a (customer, action) row's change is, in SQL; NULL when the action is the same on both sides.
CHANGE_SQL = ("CASE WHEN NOT in_old THEN 'gained' WHEN NOT in_new THEN 'lost' "
              "WHEN old_priority IS NOT new_priority OR old_due IS NOT new_due THEN 'rescheduled' END")


def compare_actions(conn: sqlite3.Connection, pairs: str, list_customers: bool) -> dict:
    """Per action id: customers on each side, gained, lost and rescheduled; ``changed`` counts the customers
    with any such change, and with ``list_customers`` ``customers`` lists them (names from ``pairs``, the
    grades' join) by action, change and customer id."""
    _pairs(conn)
    by_action = {}
    for action, old_n, new_n, gained, lost, rescheduled in conn.execute(
            f"SELECT action, sum(in_old), sum(in_new), sum(NOT in_old), sum(NOT in_new), "
            f"sum({CHANGE_SQL} IS 'rescheduled') FROM {ACTION_PAIRS} GROUP BY action ORDER BY action"):
        by_action[action] = {"old_customers": old_n, "new_customers": new_n, "gained": gained, "lost": lost,
                             "rescheduled": rescheduled}
    changed = conn.execute(f"SELECT count(DISTINCT cid) FROM {ACTION_PAIRS} WHERE {CHANGE_SQL} IS NOT NULL").fetchone()[0]
    result: dict[str, Any] = {"changed": changed, "by_action": by_action}
    if list_customers:
        rows = conn.execute(
            f"SELECT a.cid, p.name, a.action, a.change, a.old_priority, a.new_priority, a.old_due, a.new_due "
            f"FROM (SELECT *, {CHANGE_SQL} AS change FROM {ACTION_PAIRS}) AS a LEFT JOIN {pairs} AS p ON p.cid = a.cid "
            f"WHERE a.change IS NOT NULL ORDER BY a.action, a.change, a.cid")
        result["customers"] = [{"customer_id": cid, "customer_name": name, "action": action, "change": change,
                                "priority": [old_p, new_p], "due_date": [old_d, new_d]}
                               for cid, name, action, change, old_p, new_p, old_d, new_d in rows]
    return result


# ---- terminal output ---------------------------------------------------------

ACTIONS_FULL_WIDTH = 120  # terminal columns the customers' table needs to show names readably (as the grades')
CHANGE_WORDS = {"gained": "gains", "lost": "loses", "rescheduled": "rescheduled"}


def headline(actions: dict | None) -> str:
    """The headline's part on actions (", 12 actions"), or "" when neither side has any action to compare."""
    if not actions or not actions["by_action"]:
        return ""
    return f", {actions['changed']:,} actions"


def print_actions(console, actions: dict | None) -> None:
    """The per-action table, "Actions: no customer changes", or nothing when neither side has actions."""
    from .render import fmt_number
    from .terminal_table import print_indented, titled_table
    from .user_text import escape

    if not actions or not actions["by_action"]:
        return
    if not actions["changed"]:
        console.print("Actions: no customer changes", highlight=False)
        return
    # ids and counts never break: where they do not fit side by side (60 columns), the table is shown row by row
    table = titled_table(f"Customers per action, old → new: {actions['changed']:,} customers change",
                         "Action", "Old>", "New>", "Gained>", "Lost>", "Rescheduled>",
                         whole=("Action", "Old", "New", "Gained", "Lost", "Rescheduled"))
    for action, e in actions["by_action"].items():
        table.add_row(escape(action), *(fmt_number(e[k]) for k in ("old_customers", "new_customers", *CHANGES)))
    console.print(table)
    if any(e["rescheduled"] for e in actions["by_action"].values()):
        print_indented(console, "Rescheduled: customers who keep the action, with another priority or due date")


def _side_value(row: dict, key: str) -> str:
    """The priority or due date the row's change concerns: the side that has the action, or old → new."""
    old, new = ("—" if v is None else str(v) for v in row[key])
    return {"gained": new, "lost": old}.get(row["change"], old if old == new else f"{old} → {new}")


def print_action_customers(console, actions: dict | None, limit: int) -> None:
    """With --customers: who gains, loses or keeps rescheduled which action (the first ``limit`` rows).  Ids and
    action ids never break; where they leave no room for whole dates (60 columns), priority and due date go
    first, and a note says so."""
    from .terminal_table import print_listing
    from .user_text import escape

    rows = (actions or {}).get("customers")
    if not rows:
        return
    # a customer can gain one action and lose another: the title counts both, customers and their rows (which
    # --limit counts), or "1,099" above and "1,418 more" below read as a miscount
    pairs = f" ({len(rows):,} changes)" if len(rows) != actions["changed"] else ""
    print_listing(console, f"Customers whose actions change: {actions['changed']:,}{pairs}",
                  ("Customer", "Name", "Action", "Change", "Priority", "Due date"), rows,
                  lambda r: {"Customer": escape(str(r["customer_id"])), "Name": escape(r["customer_name"] or ""),
                             "Action": escape(r["action"]), "Change": CHANGE_WORDS[r["change"]],
                             "Priority": _side_value(r, "priority"), "Due date": _side_value(r, "due_date")},
                  limit=limit, whole=("Customer", "Action"), optional=("Name",), full_width=ACTIONS_FULL_WIDTH,
                  spare=("Priority", "Due date"), min_widths={"Due date": 10}, json_hint="--format json")
