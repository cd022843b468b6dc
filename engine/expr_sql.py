"""Compile a type-checked expression to a SQLite expression.

Values never enter the SQL text: every literal becomes a named parameter, and
names are resolved through a callback that returns SQL the engine built from
quoted identifiers.  The compiled SQL therefore carries no user text at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import expr_ast as ast
from .errors import PluginError
from .expr_types import FUNCTIONS, ROUND_DIGITS


class SqlParams:
    """Collects parameter values and hands out their placeholders."""

    def __init__(self, prefix: str = "p"):
        self.prefix = prefix
        self.values: dict[str, Any] = {}
        self._shared: dict[str, str] = {}

    def add(self, value: Any) -> str:
        if isinstance(value, bool):
            value = int(value)
        key = f"{self.prefix}{len(self.values)}"
        self.values[key] = value
        return f":{key}"

    def date(self, value: str) -> str:
        """A date bound, with the same placeholder for the same date: two windows ending on the same day
        are then the same SQL text, and a scan computes a repeated aggregate once (metric_sql)."""
        if value not in self._shared:
            self._shared[value] = self.add(value)
        return self._shared[value]


def quote_identifier(name: str) -> str:
    """SQLite identifier quoting: double quotes, embedded quotes doubled."""
    if "\x00" in name:
        raise ValueError("identifier contains NUL")
    return '"' + name.replace('"', '""') + '"'


def to_sql(node: ast.Node, resolve: Callable[[str], str], params: SqlParams) -> str:
    """SQL for ``node``; ``resolve(name)`` gives the SQL of a name in scope."""

    def chain(n: ast.Arithmetic) -> str:
        """a + b - c without a parenthesis per operator: SQLite's parser stack is shallow."""
        left = n.left
        same = isinstance(left, ast.Arithmetic) and left.op != "/" and (left.op in "+-") == (n.op in "+-")
        return f"{chain(left) if same else sql(left)} {n.op} {sql(n.right)}"

    def sql(n: ast.Node) -> str:
        match n:
            case ast.Literal(value=None):
                return "NULL"
            case ast.Literal(value=v):
                return params.add(v)
            case ast.Name(name=name):
                return resolve(name)
            case ast.Negate(operand=o):
                return f"(-{sql(o)})"
            case ast.Arithmetic(op="/", left=left, right=right):
                # Real division; a zero divisor gives NULL (unknown), never an error.
                return f"(CAST({sql(left)} AS REAL) / NULLIF({sql(right)}, 0))"
            case ast.Arithmetic():
                return f"({chain(n)})"
            case ast.Compare(op=op, left=left, right=right):
                return f"({sql(left)} {op} {sql(right)})"
            case ast.Logical(op=op, items=items):
                return "(" + f" {op.upper()} ".join(sql(i) for i in items) + ")"
            case ast.Not(operand=o):
                return f"(NOT {sql(o)})"
            case ast.InList(operand=o, items=items, negated=neg):
                return f"({sql(o)} {'NOT IN' if neg else 'IN'} ({', '.join(sql(i) for i in items)}))"
            case ast.IsNull(operand=o, negated=neg):
                return f"({sql(o)} IS {'NOT NULL' if neg else 'NULL'})"
            case ast.Between(operand=o, low=lo, high=hi):
                return f"({sql(o)} BETWEEN {sql(lo)} AND {sql(hi)})"
            case ast.Call():
                return _call(n, sql)
        raise AssertionError(f"cannot compile {n!r}")  # pragma: no cover

    return sql(node)


def _call(node: ast.Call, sql: Callable[[ast.Node], str]) -> str:
    args = [sql(a) for a in node.args]
    match node.function:
        case "coalesce":
            return f"coalesce({', '.join(args)})"
        case "days_between":
            return f"(julianday({args[1]}) - julianday({args[0]}))"
        case "abs" | "lower" | "upper" | "length":
            return f"{node.function}({args[0]})"
        case "round":
            if len(args) == 2:
                args[1] = _round_digits(args[1])
            return f"round({', '.join(args)})"
        case "min" | "max":
            # SQLite's scalar min/max return NULL if any argument is NULL.
            return f"{node.function}({', '.join(args)})"
        case "if":
            return f"(CASE WHEN {args[0]} THEN {args[1]} ELSE {args[2]} END)"
        case "date":
            return f"date({args[0]})"
        case "as_of":
            return ":as_of"
    return _plugin_call(node.function, args)


def _plugin_call(name: str, args: list[str]) -> str:
    """A function registered by a plugin: it builds SQL from the SQL of its arguments."""
    from .plugin_manager import get_registry
    from .plugin_plan import PLUGIN_BUG_HINT, sql_problem

    contribution = get_registry().get("function", name)
    if contribution is None:  # the type checker rejects unknown functions first
        raise AssertionError(f"unknown function {name}")
    what = f"function {name}() of plugin {contribution.plugin!r}"
    hint = PLUGIN_BUG_HINT
    try:
        sql = contribution.fn(*args)
    except Exception as exc:
        from .plugin_source import module_of, raised_at

        where = raised_at(exc, module_of(contribution.fn))
        raise PluginError(f"{what} failed{f' at {where}' if where else ''}: {type(exc).__name__}: {exc}",
                          hint=hint) from exc
    problem = sql_problem(sql)
    if problem is not None:
        raise PluginError(f"{what} returned invalid SQL: {problem} (SQL: {str(sql)[:200]})", hint=hint)
    return f"({sql})"


def function_plugins(node: ast.Node) -> set[str]:
    """The plugins whose functions an expression calls: their versions are part of a run's record."""
    from .plugin_manager import get_registry

    calls = {n.function for n in ast.walk(node) if isinstance(n, ast.Call) and n.function not in FUNCTIONS}
    found = (get_registry().get("function", name) for name in calls)
    return {c.plugin for c in found if c is not None}


def tie_key(col: str) -> str:
    """What customers are ranked by: values equal to 6 decimals are ties.

    Sums of floating-point amounts depend on the order they are added in, so
    two customers with the same revenue to the cent can differ in the last bit
    and would otherwise be ranked apart (and, at a Pareto cut, tiered apart).
    """
    return f"round({col}, 6)"


def _round_digits(digits: str) -> str:
    """``round``'s digits, truncated to an integer and held to 0..30 as the language defines them.

    SQLite clamps them itself, but only after keeping the low 32 bits of the integer:
    round(0.5, -2147483649) would round to 30 digits, not to 0.  (SQLite computes a constant
    argument once per statement, not per row.)"""
    low, high = ROUND_DIGITS
    return f"max(min(CAST({digits} AS INTEGER), {high}), {low})"
