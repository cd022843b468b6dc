"""Run plugin plans: SQL steps as table layers, Python batches in chunks, actions as inserts.

The engine owns every loop over customers.  SQL plans run in the database
like the rest of the policy; batch plans get chunks of rows, and a failure is
narrowed down to the customers it concerns and recorded, so a run can fail
with a precise message or go on, as the policy's ``on_error`` says.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RunError
from .expr_sql import SqlParams, quote_identifier as q
from .metric_sql import CID
from .sql_layers import LayerChain, LayerStep
from .statement import Statement
from .window_sql import WindowTables
from .expr_types import is_iso_date
from .plugin_api import ACTION_CATEGORIES, BatchActions, BatchOutputs, Column, SqlActions, SqlOutputs
from .plugin_context import output_name
from .policy_model import RESULT_NAMES, PluginStep, Policy

ERRORS = "temp._crm_plugin_errors"
ACTIONS = "temp._crm_actions"
MAX_ERRORS_SHOWN = 5


@dataclass
class BatchOp:
    """Work done in Python between SQL statements (a plugin batch, an error check)."""

    run: Callable[[sqlite3.Connection, dict], None]
    label: str


Operation = Statement | BatchOp


def setup_statements() -> list[Statement]:
    return [
        Statement(f"DROP TABLE IF EXISTS {ERRORS}"),
        Statement(f"CREATE TABLE {ERRORS} (cid, entry TEXT, plugin TEXT, message TEXT)"),
        Statement(f"DROP TABLE IF EXISTS {ACTIONS}"),
        Statement(f"CREATE TABLE {ACTIONS} (cid, entry TEXT, plugin TEXT, action TEXT, category TEXT, reason TEXT, "
                  f"details TEXT, priority INTEGER, due_date TEXT, owner TEXT)"),
    ]


def _chunks(conn: sqlite3.Connection, sql: str, size: int, params: dict):
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield [dict(zip(names, r)) for r in rows]


def _call_batch(compute: Callable, rows: list[dict]) -> list[Any]:
    """compute(rows); when the whole chunk fails, row by row, so the error lands on its customers."""
    try:
        results = compute(rows)
        if results is None or isinstance(results, (dict, str, bytes)) or not hasattr(results, "__iter__"):
            raise TypeError(f"compute returned {'None' if results is None else type(results).__name__}, expected a list with one result per row")
        results = list(results)
        if len(results) != len(rows):
            raise ValueError(f"compute returned {len(results)} results for {len(rows)} row(s): it returns one result per "
                             f"row, in the order of the rows")
        return results
    except Exception as exc:
        if len(rows) == 1:
            return [exc]
    return [_call_batch(compute, [row])[0] for row in rows]


def _checked(value: Any, column: Column) -> Any:
    """A batch output as SQLite will store it, or ValueError if it is not of the declared type."""
    if value is None:
        return None
    ok = {"number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "text": isinstance(value, str),
          "date": is_iso_date(value),
          "bool": isinstance(value, bool)}[column.type]
    if not ok:
        raise ValueError(_not_of_type(value, column.type))
    return int(value) if column.type == "bool" else value


def _not_of_type(value: Any, wanted: str) -> str:
    """Why ``value`` is no ``wanted`` output, with the fix for the Python types plugins most often return instead."""
    import datetime as dt
    import numbers

    if wanted == "date" and isinstance(value, dt.datetime):
        return f"{value!r} is a Python datetime, not a 'YYYY-MM-DD' text: return value.date().isoformat()"
    if wanted == "date" and isinstance(value, dt.date):
        return f"{value!r} is a Python date, not a 'YYYY-MM-DD' text: return value.isoformat()"
    if wanted == "date" and isinstance(value, str):
        return f"{value!r} is not a date: return dates as 'YYYY-MM-DD' text of a real day"
    if wanted == "number" and isinstance(value, numbers.Number) and not isinstance(value, bool):
        kind = f"{type(value).__module__}.{type(value).__name__}"
        return f"{value!r} is a {kind}, not a number SQLite stores: return float(value) or int(value)"
    if wanted == "number" and isinstance(value, str):  # SQLite would store it as text, above every number
        return f"{value!r} is text (str), not a number: return an int or a float"
    if wanted == "bool" and value in (0, 1):
        return f"{value!r} is not a bool: return True or False"
    return f"{value!r} is not a {wanted}"


def _output_row(result: Any, outputs: dict[str, Column]) -> list[Any]:
    if not isinstance(result, dict):
        raise ValueError(f"returned {type(result).__name__}, expected a dict of outputs")
    unknown = sorted(set(result) - set(outputs))
    if unknown:
        raise ValueError(f"returned unknown outputs {unknown}; declared: {sorted(outputs)}")
    values = []
    for suffix, column in outputs.items():
        try:
            values.append(_checked(result.get(suffix), column))
        except ValueError as exc:
            raise ValueError(f"output {suffix!r}: {exc}") from None
    return values


def _action_row(a: Any, as_of: str) -> tuple:
    """(action, category, reason, details, priority, due) of one batch action dict, checked."""
    if not isinstance(a, dict) or not isinstance(a.get("action"), str) or not a["action"]:
        raise ValueError(f"an action must be a dict with a non-empty 'action' name, got {a!r}")
    category = a.get("category", "other")
    if category not in ACTION_CATEGORIES:
        raise ValueError(f"action {a['action']!r}: unknown category {category!r}; use one of {', '.join(ACTION_CATEGORIES)}")
    priority = a.get("priority", 3)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 9:
        raise ValueError(f"action {a['action']!r}: priority must be a whole number from 1 (most urgent) to 9, got {priority!r}")
    due = a.get("due") or as_of
    if not is_iso_date(due):
        raise ValueError(f"action {a['action']!r}: due {due!r} is not a YYYY-MM-DD date")
    reason = a.get("reason")
    return (a["action"], category, None if reason is None else str(reason),
            json.dumps(a.get("details", {}), ensure_ascii=False, sort_keys=True, default=str), priority, due)


def _inputs_sql(step: PluginStep, policy: Policy, source: str, inputs: list[str]) -> str:
    cols = [f"t.{CID} AS customer_id", ":as_of AS as_of"]
    for name in inputs:
        column = RESULT_NAMES.get(name, name) if step.section == "actions" else name
        cols.append(f"t.{q(column)} AS {q(name)}")
    return f"SELECT {', '.join(cols)} FROM {source} AS t ORDER BY t.{CID}"


def _record_errors(conn: sqlite3.Connection, step: PluginStep, errors: list[tuple[Any, str]]) -> None:
    conn.executemany(f"INSERT INTO {ERRORS} VALUES (?, ?, ?, ?)",
                     [(cid, step.entry, step.plugin, message) for cid, message in errors])


@dataclass
class _BatchTally:
    """What a batch plan's run saw, for the message if its customers fail: how many rows it was given, and the line
    of the plugin where a row's exception was raised (None: none was, or only the engine's checks of results)."""
    rows: int = 0
    raised_at: str | None = None

    def start(self) -> None:
        self.rows, self.raised_at = 0, None

    def saw(self, exc: BaseException, compute: Callable) -> None:
        if self.raised_at is None and exc.__traceback__ is not None:
            from .plugin_source import module_of, raised_at

            self.raised_at = raised_at(exc, module_of(compute))


def _batch_outputs_op(step: PluginStep, policy: Policy, source: str, target: str, tally: _BatchTally) -> BatchOp:
    plan: BatchOutputs = step.plan
    suffixes = list(plan.outputs)

    def run(conn: sqlite3.Connection, params: dict) -> None:
        tally.start()
        cols = ", ".join(q(output_name(step.entry, s)) for s in suffixes)
        conn.execute(f"DROP TABLE IF EXISTS temp.{q(target)}")
        conn.execute(f"CREATE TEMP TABLE {q(target)} ({CID} PRIMARY KEY{', ' + cols if cols else ''})")
        placeholders = ", ".join("?" for _ in range(len(suffixes) + 1))
        for rows in _chunks(conn, _inputs_sql(step, policy, source, plan.inputs), plan.chunk_size, params):
            tally.rows += len(rows)
            results = _call_batch(plan.compute, rows)
            values, errors = [], []
            for row, result in zip(rows, results):
                if isinstance(result, Exception):
                    tally.saw(result, plan.compute)
                try:
                    if isinstance(result, Exception):
                        raise result
                    values.append((row["customer_id"], *_output_row(result, plan.outputs)))
                except Exception as exc:
                    errors.append((row["customer_id"], f"{type(exc).__name__}: {exc}"))
            conn.executemany(f"INSERT INTO temp.{q(target)} VALUES ({placeholders})", values)
            _record_errors(conn, step, errors)

    return BatchOp(run, f"{step.section}.{step.entry} ({step.contribution.name}, batch)")


def _customers_by_message(rows: list[tuple[str, str]]) -> str:
    """``customer 'a': m1; customers 'b', 'c': m2``: a plugin bug fails every customer with one message, and
    repeating it per customer buried the message (and which customers differ) in a screen of copies."""
    by_message: dict[str, list[str]] = {}
    for cid, msg in rows:
        by_message.setdefault(msg, []).append(repr(cid))
    return "; ".join(f"customer{'s' if len(cids) > 1 else ''} {', '.join(cids)}: {msg}"
                     for msg, cids in by_message.items())


def _error_check_op(step: PluginStep, blanking: list[str], tally: _BatchTally | None = None) -> BatchOp:
    """After a step: fail the run, or blank the failed customers' outputs (``blanking``), as on_error says.

    A batch plan whose every row failed is the plugin's bug (a result of the wrong shape, an exception on any
    input), not bad data: the message says so, with the line of the plugin, instead of "fix the data"."""

    def run(conn: sqlite3.Connection, _params: dict) -> None:
        rows = conn.execute(f"SELECT cid, message FROM {ERRORS} WHERE entry = ? ORDER BY cid", (step.entry,)).fetchall()
        if not rows:
            return
        if step.on_error == "fail":
            shown = _customers_by_message(rows[:MAX_ERRORS_SHOWN])
            more = f" (and {len(rows) - MAX_ERRORS_SHOWN:,} more)" if len(rows) > MAX_ERRORS_SHOWN else ""
            entry = f"{step.section}.{step.entry}"
            if tally is not None and tally.rows > 1 and len({cid for cid, _ in rows}) >= tally.rows:
                from .plugin_plan import PLUGIN_BUG
                from .plugin_source import defined_at

                where = (f"; raised at {tally.raised_at}" if tally.raised_at else
                         f"; its compute is at {at}" if (at := defined_at(step.plan.compute)) else "")
                raise RunError(f"plugin {step.plugin!r} failed in {entry} for every customer ({tally.rows:,}): "
                               f"{shown}{more}{where}",
                               hint=f"every customer failing is {PLUGIN_BUG}")
            raised = f"; raised at {tally.raised_at}" if tally is not None and tally.raised_at else ""
            raise RunError(f"plugin {step.plugin!r} failed in {entry} for {len(rows):,} customer(s): {shown}{more}{raised}",
                           hint=f"fix the data or the plugin, or set `on_error: skip` on {entry} to record the errors and go on")
        for sql in blanking:
            conn.execute(sql, {"entry": step.entry})

    return BatchOp(run, f"check errors of {step.section}.{step.entry}")


# SQL of a value ({0}) that is not of the declared type; NULL is every type's "no value".
# Comparisons, not typeof(): every number sorts before every text, and text before blobs, so `x >= ''` is "text
# or blob" and `x < ''` "a number" in one comparison each (NULL compares as neither).  With typeof() the check of
# the value score's and the credit check's outputs took 3.6 s of a run at 1M customers.
_NOT_OF_TYPE = {
    "number": "{0} >= ''",
    "text": "{0} < ''",
    "date": "{0} < '' OR date({0}, '+0 days') IS NOT {0}",
    "bool": "{0} NOT IN (0, 1)",
}


def _wrong_types(step: PluginStep, chain: LayerChain) -> list[Statement]:
    """The outputs of a SQL plan that are not of their declared type, as the plugin's errors for those customers.

    SQLite stores what the SQL computes: a score of 'n/a' declared a number compares greater than any number,
    and put every customer in the top tier.  Batch outputs are checked the same way, in Python (``_checked``).
    Outputs whose suffix starts with ``_`` are a plugin's own intermediate steps, which no policy reads.
    """
    checks = {}
    for suffix, column in ((s, c) for cols in step.plan.steps for s, c in cols.items()):
        if suffix.startswith("_"):  # a hidden step no policy reads: the outputs made from it are checked
            continue
        said = suffix.replace("'", "''")
        checks[output_name(step.entry, suffix)] = (
            f"CASE WHEN {_NOT_OF_TYPE[column.type]} THEN 'output ''{said}'': ' || quote({{0}}) || "
            f"' is not a {column.type}' END")
    return [Statement(f"INSERT INTO {ERRORS} SELECT p.cid, :entry, :plugin, p.problem FROM ({query}) AS p",
                      {"entry": step.entry, "plugin": step.plugin}) for query in chain.problems_in(checks, CID)]


def compile_plugin_layers(policy: Policy, table: str, prefix: str = "_crm",
                          windows: WindowTables | None = None) -> tuple[list[Operation], str]:
    """Scores and credit checks, in policy order, each adding its outputs as a layer over ``table`` (a chain's view).

    ``windows``: the window results of the chain ``table`` comes from, which these layers may reuse.
    """
    ops: list[Operation] = []
    chain = LayerChain(table, windows)
    failed = f"{CID} IN (SELECT cid FROM {ERRORS} WHERE entry = :entry)"
    for i, step in enumerate(policy.plugin_steps):
        plan = step.plan
        if isinstance(plan, SqlOutputs):
            if plan.steps:  # the steps of a score (factors, score, grade): one pass, see LayerChain.add_stacked
                ops += chain.add_stacked(f"{prefix}_p{i}", [
                    LayerStep({output_name(step.entry, s): c.sql for s, c in columns.items()}, step.params.values)
                    for columns in plan.steps])
                ops += _wrong_types(step, chain)
            if plan.error:
                ops.append(Statement(f"INSERT INTO {ERRORS} SELECT t.{CID}, :entry, :plugin, e FROM "
                                     f"(SELECT t.*, {plan.error} AS e FROM {chain.source} AS t) AS t WHERE e IS NOT NULL",
                                     {**step.params.values, "entry": step.entry, "plugin": step.plugin}))
            outputs = [output_name(step.entry, s) for cols in plan.steps for s in cols]
        else:
            target = f"{prefix}_b{i}"
            tally = _BatchTally()
            ops.append(_batch_outputs_op(step, policy, chain.source, target, tally))
            outputs = [output_name(step.entry, s) for s in plan.outputs]
            ops += chain.add(f"{prefix}_p{i}", {o: f"b.{q(o)}" for o in outputs} or {"_none": "NULL"}, {},
                             join=f"LEFT JOIN temp.{q(target)} AS b ON b.{CID} = t.{CID}")
        ops.append(_error_check_op(step, chain.blank(outputs, failed), None if isinstance(plan, SqlOutputs) else tally))
    return ops, chain.source


# Whitespace around an owner is never part of the name ("王芳 " pasted from a sheet, the ideographic space of
# a Chinese input method): a run writes owners without it, and readers of earlier runs trim it the same way.
OWNER_SPACE = " \t\n\r\u00a0\u3000"


def trimmed_owner(sql: str) -> str:
    """SQL of the owner ``sql`` holds, without OWNER_SPACE around it; NULL for a blank one."""
    chars = ", ".join(str(ord(c)) for c in OWNER_SPACE)
    return f"nullif(trim({sql}, char({chars})), '')"


def compile_actions(policy: Policy, table: str, owner_sql: str) -> list[Operation]:
    ops: list[Operation] = []
    for step in policy.action_steps:
        plan = step.plan
        if isinstance(plan, SqlActions):
            for action in plan.actions:
                params = SqlParams(prefix="a")
                sql = (f"INSERT INTO {ACTIONS} SELECT t.{CID}, {params.add(step.entry)}, {params.add(step.plugin)}, "
                       f"{params.add(action.action)}, {params.add(action.category)}, {action.reason}, "
                       f"{params.add(json.dumps(action.details, ensure_ascii=False, sort_keys=True))}, "
                       f"{params.add(int(action.priority))}, coalesce({action.due or 'NULL'}, :as_of), {owner_sql} "
                       f"FROM {table} AS t WHERE {action.when}")
                ops.append(Statement(sql, {**step.params.values, **params.values}))
            if any(action.due for action in plan.actions):
                ops += _bad_due_dates(step)
        else:
            tally = _BatchTally()
            ops.append(_batch_actions_op(step, policy, table, owner_sql, tally))
        ops.append(_error_check_op(step, [], None if isinstance(plan, SqlActions) else tally))
    return ops


def _bad_due_dates(step: PluginStep) -> list[Statement]:
    """A due date the plugin's SQL computed that is no date is the plugin's error for that customer, not a row."""
    bad = f"FROM {ACTIONS} WHERE entry = :entry AND date(due_date, '+0 days') IS NOT due_date"  # 02-30 too
    names = {"entry": step.entry, "plugin": step.plugin}
    return [Statement(f"INSERT INTO {ERRORS} SELECT cid, :entry, :plugin, 'action ' || action || ': due ' || "
                      f"quote(due_date) || ' is not a YYYY-MM-DD date' {bad}", names),
            Statement(f"DELETE {bad}", names)]


def _batch_actions_op(step: PluginStep, policy: Policy, table: str, owner_sql: str, tally: _BatchTally) -> BatchOp:
    plan: BatchActions = step.plan

    def run(conn: sqlite3.Connection, params: dict) -> None:
        tally.start()
        owners = dict(conn.execute(f"SELECT t.{CID}, {owner_sql} FROM {table} AS t").fetchall())
        for rows in _chunks(conn, _inputs_sql(step, policy, table, plan.inputs), plan.chunk_size, params):
            tally.rows += len(rows)
            results = _call_batch(plan.compute, rows)
            values, errors = [], []
            for row, result in zip(rows, results):
                cid = row["customer_id"]
                if isinstance(result, Exception):
                    tally.saw(result, plan.compute)
                try:
                    if isinstance(result, Exception):
                        raise result
                    if isinstance(result, dict) and result:  # one action, not the list of the row's actions
                        raise TypeError(f"compute returned a dict for the row, expected a list of action dicts "
                                        f"([] for none), as [{result!r}]")
                    checked = [_action_row(a, params["as_of"]) for a in result or []]
                except Exception as exc:
                    errors.append((cid, f"{type(exc).__name__}: {exc}"))
                    continue
                values += [(cid, step.entry, step.plugin, *row_values[:2], row_values[2], row_values[3], row_values[4],
                            row_values[5], owners.get(cid)) for row_values in checked]
            conn.executemany(f"INSERT INTO {ACTIONS} VALUES ({', '.join('?' * 10)})", values)
            _record_errors(conn, step, errors)

    return BatchOp(run, f"actions.{step.entry} ({step.contribution.name}, batch)")
