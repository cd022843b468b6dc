"""Check the plan a plugin returned before it becomes part of a run.

A plan is code from another package: its SQL, names and values are checked
when the policy compiles (``validate`` included), so that a plugin's mistake
is reported naming the plugin and the policy entry, not as a database error
in the middle of a run, and never written into the results.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .errors import PluginError
from .expr_sql import quote_identifier as q
from .expr_types import TYPES, with_article
from .plugin_api import ACTION_CATEGORIES, BatchActions, BatchOutputs, Column, SqlActions, SqlOutputs

SUFFIX = re.compile(r"_?[A-Za-z0-9_]*")
ACTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What SQLite says when the text itself is wrong, or names a column or function that does not exist.
_SQL_MISTAKES = ("syntax error", "unrecognized token", "incomplete input", "no such column", "no such function",
                 "wrong number of arguments")


@lru_cache(maxsize=1)
def check_connection() -> sqlite3.Connection:
    """The in-memory database SQL is prepared in to check it, policy expressions and plugin SQL alike."""
    return sqlite3.connect(":memory:", check_same_thread=False)


def sql_problem(sql: Any, columns: Iterable[str] | None = None) -> str | None:
    """Why ``sql`` is not an expression SQLite can compute over a table ``t`` with ``columns``, or None.

    Without ``columns`` only the text is checked (the SQL of a function call, whose arguments
    name columns of tables the check cannot know).
    """
    if not isinstance(sql, str) or not sql.strip():
        return f"expected SQL text, got {sql!r}"
    conn = check_connection()
    source, mistakes = "", tuple(m for m in _SQL_MISTAKES if m != "no such column")
    if columns is not None:
        source, mistakes = f" FROM {_check_table(tuple(dict.fromkeys(columns)))} AS t", _SQL_MISTAKES
    try:
        conn.execute(f"EXPLAIN SELECT ({sql}){source}")
    except sqlite3.OperationalError as exc:
        return str(exc) if any(m in str(exc) for m in mistakes) else None
    except (sqlite3.ProgrammingError, sqlite3.Warning) as exc:  # parameters are bound at run time
        return str(exc) if "one statement" in str(exc) else None
    return None


@lru_cache(maxsize=1)
def _check_table(columns: tuple[str, ...]) -> str:
    """The table ``t`` of ``columns`` that plugin SQL is prepared against, made again only when the columns change:
    every output, condition, reason and due date of a step reads the same ones (made for each, it was made 330
    times for the eight shipped policies, whose loading took 280 ms instead of 240)."""
    table = "temp._crm_plan_check"
    conn = check_connection()
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} ({', '.join(q(c) for c in columns) or 'x'})")
    return table


def check_plan(plan: Any, columns: set[str], output_name, what: str) -> None:
    """Raise PluginError naming ``what`` (plugin, entry) for the first problem of ``plan``.

    :param columns: the names the plan's SQL may read from ``t`` (metrics, attributes, earlier outputs).
    :param output_name: ``suffix -> column name`` of this entry's outputs.
    """
    problem = _problem(plan, set(columns), output_name)
    if problem is not None:
        raise PluginError(f"{what} returned an invalid plan: {problem}",
                          hint="this is a bug in the plugin: fix or upgrade it (see the plugin author guide)")


def _problem(plan: Any, columns: set[str], output_name) -> str | None:
    if isinstance(plan, SqlOutputs):
        if not isinstance(plan.steps, list) or not plan.steps or not all(isinstance(s, dict) and s for s in plan.steps):
            return "SqlOutputs.steps must be a non-empty list of non-empty {suffix: Column} dicts"
        seen: set[str] = set()
        for step in plan.steps:
            for suffix, column in step.items():
                problem = _column_problem(suffix, column) or \
                    (f"output {suffix!r} is computed twice" if suffix in seen else None) or \
                    _sql_at(f"output {suffix!r}", column.sql, columns)
                if problem:
                    return problem
                seen.add(suffix)
            columns |= {output_name(s) for s in step}
        return None if plan.error is None else _sql_at("error", plan.error, columns)
    if isinstance(plan, BatchOutputs):
        if not isinstance(plan.inputs, list) or not all(isinstance(i, str) for i in plan.inputs):
            return "BatchOutputs.inputs must be a list of names"
        if not isinstance(plan.outputs, dict):
            return "BatchOutputs.outputs must be a {suffix: Column} dict"
        problems = (_column_problem(s, c) for s, c in plan.outputs.items())
        return next((p for p in problems if p), None) or _batch_problem(plan)
    if isinstance(plan, SqlActions):
        if not isinstance(plan.actions, list) or not plan.actions:
            return "SqlActions.actions must be a non-empty list of Action"
        return next((p for a in plan.actions if (p := _action_problem(a, columns))), None)
    if isinstance(plan, BatchActions):
        if not isinstance(plan.inputs, list) or not all(isinstance(i, str) for i in plan.inputs):
            return "BatchActions.inputs must be a list of names"
        return _batch_problem(plan)
    return None  # the caller checks the plan's type


def _column_problem(suffix: Any, column: Any) -> str | None:
    if not isinstance(suffix, str) or not SUFFIX.fullmatch(suffix):
        return f"output suffix {suffix!r} is not a name (letters, digits and _)"
    if not isinstance(column, Column):
        return f"output {suffix!r} is {with_article(type(column).__name__)}, expected Column"
    if column.type not in TYPES:
        return f"output {suffix!r} has unknown type {column.type!r} (types: {', '.join(TYPES)})"
    return None


def _batch_problem(plan: BatchOutputs | BatchActions) -> str | None:
    if not callable(plan.compute):
        return "compute is not callable"
    if not isinstance(plan.chunk_size, int) or isinstance(plan.chunk_size, bool) or plan.chunk_size < 1:
        return f"chunk_size must be a whole number from 1, got {plan.chunk_size!r}"
    return None


def _action_problem(action: Any, columns: set[str]) -> str | None:
    from .plugin_api import Action

    if not isinstance(action, Action):
        return f"an action is {with_article(type(action).__name__)}, expected Action"
    name = action.action
    if not isinstance(name, str) or not ACTION_NAME.fullmatch(name):
        return f"action name {name!r} is not a name (letters, digits and _)"
    if action.category not in ACTION_CATEGORIES:
        return f"action {name!r}: unknown category {action.category!r}; use one of {', '.join(ACTION_CATEGORIES)}"
    if not isinstance(action.priority, int) or isinstance(action.priority, bool) or not 1 <= action.priority <= 9:
        return f"action {name!r}: priority must be a whole number from 1 (most urgent) to 9, got {action.priority!r}"
    try:
        json.dumps(action.details, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"action {name!r}: details are not JSON ({exc})"
    for part in ("when", "reason", "due"):
        sql = getattr(action, part)
        if part == "due" and sql is None:
            continue
        problem = _sql_at(f"action {name!r}: {part}", sql, columns)
        if problem:
            return problem
    return None


def _sql_at(where: str, sql: Any, columns: set[str]) -> str | None:
    problem = sql_problem(sql, columns)
    return None if problem is None else f"{where}: {problem} (SQL: {str(sql)[:200]})"
