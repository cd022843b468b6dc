"""What to write when a row expression names a column of the user's table that the policy does not read by it.

An operator whose orders have a status column writes ``where: "状态 != '已取消'"``, as the table names it, and
got "unknown orders column '状态'", which says what is wrong but not what to do: expressions read the names
``data.<source>`` maps (``amount``, ``date``, and ``columns``), never a table's columns directly, and those names
are letters, digits and ``_``.  The message now says which name a mapped column has (金额 is ``amount``), gives
the mapping to add for one that is not mapped, typed as the expression uses it, and names the ``null`` that
removed a default column (``discount: null``) that a metric still reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import expr_ast as ast
from .data_mapping import DataMapping
from .expr_types import ExpressionTypeError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class RowSource:
    """The source table whose rows an expression reads, as the policy maps it."""

    name: str  # orders, receivables, ...
    table: str
    by_column: dict[str, str]  # the table's column -> the name expressions read it by
    removed: frozenset[str]  # default names the policy removed with `null`


def row_source(source: str, data: DataMapping) -> RowSource:
    table = data.sources[source]
    return RowSource(source, table.table, {c.column: name for name, c in table.columns.items()}, table.removed)


def unmapped_column(source: RowSource | None, exc: ExpressionTypeError, root: ast.Node, path: tuple) -> str:
    """'; ...' saying how to read the unknown name of ``exc`` in an expression (at ``path``) over ``source``'s rows,
    or '' (not a row expression, or a name that is a misspelling of a known one).  What it says of a mapped or a
    removed column replaces the message's "did you mean" ('rebate' is not 'date')."""
    name = exc.unknown
    if source is None or name is None:
        return ""
    if name in source.by_column:
        return f"; the policy reads column {name!r} of {source.table} as {source.by_column[name]}: write that"
    if name in source.removed:
        metric = (f" (metric {path[1]}; an inherited metric is removed with `{path[1]}: null` under metrics)"
                  if path[:1] == ("metrics",) and len(path) > 1 else "")
        return (f"; data.{source.name}.columns.{name}: null removed it (your table has no such column): remove what "
                f"reads it too{metric}, or map {name} to a column of yours")
    if "did you mean" in exc.message or "quote it" in exc.message:  # a misspelling, or a value without its quotes
        return ""
    kind = _used_as(root, name)
    typed = f"{{column: {name}, type: {kind}}}" if kind != "number" else f"{{column: {name}}}"
    if _NAME.fullmatch(name):
        return f"; to read a column {name!r} of {source.table}, map it first: data.{source.name}.columns: {{{name}: {typed}}}"
    return (f"; to read a column {name!r} of {source.table}, map it first under a name of letters A-Z, digits and _ "
            f"(data.{source.name}.columns: {{NAME: {typed}}}) and write that name here")


def _used_as(root: ast.Node, name: str) -> str:
    """'text' or 'date' when the expression compares the name with a text or date, else 'number' (the type a
    column has without one)."""
    for node in ast.walk(root):
        pairs: list[tuple[ast.Node, ast.Node]] = []
        if isinstance(node, ast.Compare):
            pairs = [(node.left, node.right), (node.right, node.left)]
        elif isinstance(node, ast.InList):
            pairs = [(node.operand, item) for item in node.items]
        elif isinstance(node, ast.Between):
            pairs = [(node.operand, node.low), (node.operand, node.high)]
        for side, other in pairs:
            if not (isinstance(side, ast.Name) and side.name == name):
                continue
            if isinstance(other, ast.Literal) and isinstance(other.value, str):
                return "date" if _ISO_DAY.fullmatch(other.value) else "text"
            if isinstance(other, ast.Call) and other.function == "date":
                return "date"
    return "number"
