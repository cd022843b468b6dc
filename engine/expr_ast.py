"""The expression language's syntax tree.

Conditions in policies are parsed into these nodes once, then type-checked,
compiled to SQL and (for ``explain``) taken apart again.  Every node keeps the
line/column of its text so errors and explanations can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Node:
    line: int
    col: int
    text: str  # the source text of this node, for explanations


@dataclass(frozen=True)
class Literal(Node):
    value: Any  # int | float | str | bool | None


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Negate(Node):
    operand: Node


@dataclass(frozen=True)
class Arithmetic(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    op: str  # = != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical(Node):
    op: str  # and | or
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    items: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True)
class Between(Node):
    operand: Node
    low: Node
    high: Node


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]


def walk(node: Node):
    """Yield ``node`` and all its descendants, depth first."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Node) -> tuple[Node, ...]:
    match node:
        case Negate(operand=o) | Not(operand=o) | IsNull(operand=o):
            return (o,)
        case Arithmetic(left=l, right=r) | Compare(left=l, right=r):
            return (l, r)
        case Logical(items=items) | Call(args=items):
            return tuple(items)
        case InList(operand=o, items=items):
            return (o, *items)
        case Between(operand=o, low=lo, high=hi):
            return (o, lo, hi)
    return ()


def names_in(node: Node) -> set[str]:
    return {n.name for n in walk(node) if isinstance(n, Name)}
