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
from .expr_types import TYPES, did_you_mean, with_article
from .plugin_api import ACTION_CATEGORIES, BatchActions, BatchOutputs, Column, SqlActions, SqlOutputs

SUFFIX = re.compile(r"_?[A-Za-z0-9_]*")
ACTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What SQLite says when the text itself is wrong, names a column or function that does not exist, or puts
# an aggregate or window function where it cannot be computed (a window function in a condition).
_SQL_MISTAKES = ("syntax error", "unrecognized token", "incomplete input", "no such column", "no such function",
                 "wrong number of arguments", "misuse of")
_AGGREGATE = re.compile(r"misuse of aggregate(?: function)?:? (\w+)\(\)")
# The rows the SQL of a plugin function is computed over, to find an aggregate.
TWO_ROWS = "(SELECT 1 UNION ALL SELECT 2)"


class _Nulls(dict):
    """Parameters of SQL being checked: NULL for any name (plans bind their values at run time)."""

    def __missing__(self, key: str) -> None:
        return None


@lru_cache(maxsize=1)
def check_connection() -> sqlite3.Connection:
    """The in-memory database SQL is prepared in to check it, policy expressions and plugin SQL alike."""
    return sqlite3.connect(":memory:", check_same_thread=False)


# Functions of other SQL dialects that SQLite lacks, and what SQLite writes for them: "no such function: greatest"
# alone sends a plugin author to the SQLite manual for a function written every day elsewhere.
_OTHER_DIALECTS = {
    "greatest": "max(a, b, ...) (SQLite's max() with two or more arguments)",
    "least": "min(a, b, ...) (SQLite's min() with two or more arguments)",
    "nvl": "coalesce(a, b)", "isnull": "ifnull(a, b)", "nvl2": "CASE WHEN a IS NOT NULL THEN b ELSE c END",
    "len": "length(x)", "char_length": "length(x)", "substring": "substr(x, start, length)",
    "datediff": "julianday(a) - julianday(b) (days)", "date_diff": "julianday(a) - julianday(b) (days)",
    "now": "the run's as-of date, ctx.as_of in a plan (a run must not read the clock)",
    "getdate": "the run's as-of date, ctx.as_of in a plan (a run must not read the clock)",
    "to_date": "date(x) (SQLite stores dates as 'YYYY-MM-DD' text)", "to_char": "strftime(format, x)",
    "trunc": "CAST(x AS INTEGER) (towards zero) or round(x, n)",
}
_NO_SUCH_FUNCTION = re.compile(r"no such function: (\w+)")


def with_dialect_hint(message: str) -> str:
    """SQLite's message, with what SQLite writes for a function of another dialect it names (greatest, nvl)."""
    found = _NO_SUCH_FUNCTION.search(message)
    instead = _OTHER_DIALECTS.get(found.group(1).lower()) if found else None
    return f"{message}: SQLite has no {found.group(1)}(); write {instead}" if instead else message


def sql_problem(sql: Any, columns: Iterable[str] | None = None, condition: bool = False) -> str | None:
    """Why ``sql`` is not an expression SQLite can compute over a table ``t`` with ``columns``, or None.

    Without ``columns`` only the text is checked (the SQL of a function call, whose arguments
    name columns of tables the check cannot know).  With them it is computed over two rows of
    NULLs: an aggregate without OVER gives one, and a step would give every customer but one NULL.
    A ``condition`` is checked where it runs, in a WHERE clause, which has no room for an aggregate
    or a window function.
    """
    if not isinstance(sql, str) or not sql.strip():
        return f"expected SQL text, got {sql!r}"
    conn = check_connection()
    if columns is None:
        query, params, mistakes = f"EXPLAIN SELECT ({sql})", (), tuple(m for m in _SQL_MISTAKES if m != "no such column")
    else:
        table = _check_table(tuple(dict.fromkeys(columns)))
        query = (f"SELECT count(*) FROM {table} AS t WHERE ({sql})" if condition
                 else f"SELECT count(*) FROM (SELECT ({sql}) FROM {table} AS t)")
        params, mistakes = _Nulls(), _SQL_MISTAKES
    try:
        rows = conn.execute(query, params).fetchall()
    except sqlite3.OperationalError as exc:
        return with_dialect_hint(str(exc)) if any(m in str(exc) for m in mistakes) else None
    except (sqlite3.ProgrammingError, sqlite3.Warning) as exc:  # parameters are bound at run time
        return str(exc) if "one statement" in str(exc) else None
    if columns is not None and not condition and rows[0][0] != 2:
        return _aggregate_problem(sql, f" FROM {table} AS t", params)
    return None


def function_sql_problem(sql: str, params: dict) -> str | None:
    """Why ``sql``, a call of a plugin function with NULL arguments, is not a value SQLite computes for each row, or None.

    It is run as well as prepared: an aggregate is valid SQL, but it would make one row of all customers.
    """
    conn = check_connection()
    try:  # with its arguments NULL, the SQL may read no column, table or parameter of its own
        conn.execute(f"EXPLAIN SELECT {sql}", params)
    except (sqlite3.OperationalError, sqlite3.ProgrammingError, sqlite3.Warning) as exc:
        return with_dialect_hint(str(exc))
    try:
        rows = conn.execute(f"SELECT count(*) FROM (SELECT {sql} FROM {TWO_ROWS})", params).fetchone()[0]
    except sqlite3.Error:
        return None  # computing it failed with NULL arguments: what values the run gives it is for the run to say
    return None if rows == 2 else _aggregate_problem(sql, f" FROM {TWO_ROWS}", params)


def _aggregate_problem(sql: str, source: str, params: Any) -> str:
    """What to say of ``sql`` that turned the rows of ``source`` into one: the aggregate, named as SQLite does."""
    try:  # where an aggregate is not allowed, SQLite names it
        check_connection().execute(f"EXPLAIN SELECT 1{source} WHERE ({sql})", params)
        found = None
    except sqlite3.Error as exc:
        found = _AGGREGATE.search(str(exc))
    name = f" ({found.group(1)})" if found else ""
    return f"uses an aggregate function{name} without OVER (...), which makes one row of all customers, not a value for each"


@lru_cache(maxsize=1)
def _check_table(columns: tuple[str, ...]) -> str:
    """The table ``t`` of ``columns``, two rows of NULLs, that plugin SQL is checked on, made again only when the columns
    change: every output, condition, reason and due date of a step reads the same ones (made for each, it was made 330
    times for the eight shipped policies, whose loading took 280 ms instead of 240)."""
    table = "temp._crm_plan_check"
    conn = check_connection()
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} ({', '.join(q(c) for c in columns) or 'x'})")
    conn.execute(f"INSERT INTO {table} DEFAULT VALUES")
    conn.execute(f"INSERT INTO {table} DEFAULT VALUES")  # two rows: see sql_problem
    return table


# Who meets a plugin's bug is mostly a policy author or an operator, not the plugin's author: what they need is which
# version of which package to upgrade or report, which `crm-rules plugins` shows wherever crm-rules is installed (the
# plugin guide is a file of the repository, not of an installed package).
PLUGIN_BUG = ("a bug in the plugin: fix or upgrade it (`crm-rules plugins` shows its version and the package it "
              "comes from)")
PLUGIN_BUG_HINT = f"this is {PLUGIN_BUG}"


def check_plan(plan: Any, columns: set[str], output_name, what: str) -> None:
    """Raise PluginError naming ``what`` (plugin, entry) for the first problem of ``plan``.

    :param columns: the names the plan's SQL may read from ``t`` (metrics, attributes, earlier outputs).
    :param output_name: ``suffix -> column name`` of this entry's outputs.
    """
    problem = _problem(plan, set(columns), output_name)
    if problem is not None:
        raise PluginError(f"{what} returned an invalid plan: {problem}",
                          hint=PLUGIN_BUG_HINT)


def _problem(plan: Any, columns: set[str], output_name) -> str | None:
    if isinstance(plan, SqlOutputs):
        if isinstance(plan.steps, dict) and plan.steps and all(isinstance(c, Column) for c in plan.steps.values()):
            return ("SqlOutputs.steps is one {suffix: Column} dict, but it is a list of steps: "
                    "SqlOutputs([{...}]) for one step")
        if not isinstance(plan.steps, list) or not plan.steps or not all(isinstance(s, dict) and s for s in plan.steps):
            return "SqlOutputs.steps must be a non-empty list of non-empty {suffix: Column} dicts"
        seen: set[str] = set()
        own = {output_name(s) for step in plan.steps for s in step}  # a later step's: _later_step_note says it
        for i, step in enumerate(plan.steps):
            for suffix, column in step.items():
                problem = _column_problem(suffix, column) or \
                    (f"output {suffix!r} is computed twice" if suffix in seen else None) or \
                    _sql_at(f"output {suffix!r}", column.sql, columns, own=own)
                if problem:
                    return problem + _later_step_note(problem, plan.steps, i, output_name) + _made_at(column)
                seen.add(suffix)
            columns |= {output_name(s) for s in step}
        return None if plan.error is None else _sql_at("error", plan.error, columns)
    if isinstance(plan, BatchOutputs):
        if not isinstance(plan.inputs, list) or not all(isinstance(i, str) for i in plan.inputs):
            return "BatchOutputs.inputs must be a list of names"
        if not isinstance(plan.outputs, dict):
            return "BatchOutputs.outputs must be a {suffix: Column} dict"
        problems = (p + _made_at(c) for s, c in plan.outputs.items() if (p := _column_problem(s, c)))
        return next(problems, None) or _batch_problem(plan) or _inputs_problem(plan.inputs, columns)
    if isinstance(plan, SqlActions):
        if not isinstance(plan.actions, list) or not plan.actions:
            return "SqlActions.actions must be a non-empty list of Action"
        return next((p + _made_at(a) for a in plan.actions if (p := _action_problem(a, columns))), None)
    if isinstance(plan, BatchActions):
        if not isinstance(plan.inputs, list) or not all(isinstance(i, str) for i in plan.inputs):
            return "BatchActions.inputs must be a list of names"
        from .policy_model import RESULT_NAMES  # the grades an action generator reads by these names

        return _batch_problem(plan) or _inputs_problem(plan.inputs, columns | set(RESULT_NAMES))
    return None  # the caller checks the plan's type


def _made_at(made: Any) -> str:
    """`` (Column made at crm_rules_x/plugin.py:40)``: where the plugin built the part of its plan a message is about."""
    from .plugin_source import shown

    origin = getattr(made, "origin", None)
    if not isinstance(origin, str) or ":" not in origin:
        return ""
    path, line = origin.rsplit(":", 1)
    return f" ({type(made).__name__} made at {shown(path, int(line)) if line.isdigit() else origin})"


# The type names plugin authors write from Python or SQL, and the column type that holds such values.
_TYPE_NAMES = {"float": "number", "int": "number", "integer": "number", "real": "number", "decimal": "number",
               "numeric": "number", "str": "text", "string": "text", "varchar": "text", "boolean": "bool",
               "datetime": "date"}


def _column_problem(suffix: Any, column: Any) -> str | None:
    if not isinstance(suffix, str) or not SUFFIX.fullmatch(suffix):
        return f"output suffix {suffix!r} is not a name (letters, digits and _)"
    if not isinstance(column, Column):
        return f"output {suffix!r} is {with_article(type(column).__name__)}, expected Column"
    if column.type not in TYPES:
        said = column.type.lower() if isinstance(column.type, str) else None
        if said in _TYPE_NAMES:
            fix = f"; write {_TYPE_NAMES[said]!r}"
        elif column.sql in TYPES or (isinstance(column.type, str) and column.sql is None and not column.type.isidentifier()):
            fix = ": Column takes the type first, then the SQL, Column('number', sql)"
        else:
            fix = ""
        return f"output {suffix!r} has unknown type {column.type!r} (types: {', '.join(TYPES)}){fix}"
    if not isinstance(column.label, str):
        return f"output {suffix!r} has label={column.label!r}: a label is text, shown to policy authors"
    if column.summarize and column.type in ("number", "date"):  # one line per distinct value: a million of them
        return (f"output {suffix!r} is a {column.type} with summarize=True, but the summary counts customers per "
                f"value: summarize a text or bool output (a grade, a band) instead")
    if not isinstance(column.values, (tuple, list)) or not all(isinstance(v, str) for v in column.values):
        return f"output {suffix!r} has values={column.values!r}: give the values as a tuple of texts, e.g. ('AAA', 'AA')"
    if column.values and not column.summarize:
        return f"output {suffix!r} has values but not summarize=True: the values order the summary's counts"
    return None


def _batch_problem(plan: BatchOutputs | BatchActions) -> str | None:
    if not callable(plan.compute):
        return "compute is not callable"
    if not isinstance(plan.chunk_size, int) or isinstance(plan.chunk_size, bool) or plan.chunk_size < 1:
        return f"chunk_size must be a whole number from 1, got {plan.chunk_size!r}"
    return None


def _inputs_problem(inputs: list[str], columns: set[str]) -> str | None:
    """An input the policy has no column for would fail the run's first query, naming no plugin."""
    for name in inputs:
        if name not in columns:
            known = [c for c in columns if not c.startswith("_")]
            return (f"input {name!r} is no metric, attribute or earlier output{did_you_mean(name, known)}"
                    f"{_grade_column_note(f'no such column: {name}', columns)}")
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
        problem = _sql_at(f"action {name!r}: {part}", sql, columns, condition=part == "when")
        if problem:
            return problem
    return None


_NO_SUCH_COLUMN = re.compile(r"no such column: (?:t\.)?(\w+)")


def _sql_at(where: str, sql: Any, columns: set[str], condition: bool = False, own: set[str] = frozenset()) -> str | None:
    problem = sql_problem(sql, columns, condition)
    if problem is None:
        return None
    note = _grade_column_note(problem, columns) or _unknown_column_note(problem, columns, own)
    if "syntax error" in problem or "incomplete input" in problem:
        problem = _unbalanced(sql) or problem
    return f"{where}: {problem} (SQL: {_shortened(str(sql))}){note}"


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def _unbalanced(sql: Any) -> str | None:
    """Parentheses that do not pair up, in words: SQLite says `near "FROM": syntax error`, naming the text the
    check wrapped around the plugin's SQL rather than the ')' missing at its end."""
    if not isinstance(sql, str):
        return None
    bare = _QUOTED.sub("''", sql)
    opened, closed = bare.count("("), bare.count(")")
    if opened == closed:
        return None
    missing = "')'" if opened > closed else "'('"
    return f"its parentheses do not pair up: {opened} '(' and {closed} ')' (a {missing} is missing)"


def _shortened(sql: str) -> str:
    """The SQL in a message: its start and its end when it is long (a missing ')' is at the end)."""
    return sql if len(sql) <= 240 else f"{sql[:120]} … {sql[-100:]}"


def _unknown_column_note(problem: str, columns: set[str], own: set[str]) -> str:
    """For SQL naming a column the policy does not have (``t.seats_bought`` written into the plugin, which the
    plugin's own test policy had): the names there are, and how a plugin gets them from its params."""
    from .policy_model import RESULT_NAMES

    found = _NO_SUCH_COLUMN.search(problem)
    if found is None or found.group(1) in RESULT_NAMES or found.group(1) in own:
        return ""
    known = [c for c in columns if not c.startswith("_")]
    return (f"; this policy has no metric, attribute or earlier output {found.group(1)!r}"
            f"{did_you_mean(found.group(1), known)}; a plugin takes names from its params, "
            f"ctx.ref(params[key], key), rather than writing them into its SQL")


def _later_step_note(problem: str, steps: list, index: int, output_name) -> str:
    """For SQL of ``steps[index]`` reading an output of its own step or a later one: SQLite's "no such column"
    says nothing of steps, while each step reads only the outputs of the steps before it."""
    found = _NO_SUCH_COLUMN.search(problem)
    if found is None:
        return ""
    for k in range(index, len(steps)):
        if any(output_name(s) == found.group(1) for s in steps[k]):
            where = "the same step" if k == index else f"step {k + 1} (this is step {index + 1})"
            return (f"; {found.group(1)!r} is an output of {where}: a step reads only the outputs of the steps "
                    f"before it, so compute it in an earlier step")
    return ""


def _grade_column_note(problem: str, columns: set[str]) -> str:
    """For SQL that writes ``t."tier"`` itself: where the customer's tier (stage, ...) is, if anywhere."""
    from .policy_model import RESULT_NAMES

    found = _NO_SUCH_COLUMN.search(problem)
    if found is None or found.group(1) not in RESULT_NAMES:
        return ""
    name = found.group(1)
    if RESULT_NAMES[name] in columns:  # an action generator: the grades are there, under other column names
        return f"; the customer's {name} is what ctx.ref({name!r}, where, ('text',)) gives"
    return (f"; scorers and credit checks run before tiers, sub-grades, stages and service levels are graded, "
            f"so only action generators can read the {name}")
