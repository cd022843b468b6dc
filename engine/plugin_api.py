"""What a plugin's registered function returns: a plan the engine runs set-based.

A scorer or credit check returns ``SqlOutputs`` (SQL over the customer table,
evaluated in the database, the fast path the built-ins use) or
``BatchOutputs`` (a Python function called on chunks of rows, for logic SQL
cannot express).  An action generator returns ``SqlActions`` or
``BatchActions``.  Either way the engine, not the plugin, loops over data,
records per-customer errors and applies the policy's ``on_error``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: The policy's sections whose entries name a plugin contribution (``use:``), each a map of entry names.
PLUGIN_SECTIONS = ("scores", "credit", "actions")

ACTION_CATEGORIES = ("economic", "technical", "contractual", "churn", "upgrade", "phase_out", "credit", "other")


def _caller() -> str:
    """``file:line`` of the code that made a Column or Action (above __post_init__ and the dataclass's __init__);
    the path is made readable only when a message shows it (plugin_plan._made_at)."""
    frame = sys._getframe(3)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


@dataclass
class Column:
    """One output of a plugin entry.

    Outputs are named after the policy entry: suffix ``""`` is the entry's own
    name (``value_score``), suffix ``"grade"`` becomes ``value_score_grade``;
    suffixes starting with ``_`` are intermediate and never shown to policies.
    """

    type: str  # number | text | date | bool
    sql: str | None = None  # SqlOutputs only
    label: str = ""
    summarize: bool = False  # count customers per value in the run summary
    # With summarize: the values in the order the summary lists them (a scale's, best first: AAA, AA, A); values
    # not listed follow, most customers first.  Without it the summary lists most customers first, which puts a
    # grade scale out of order (AA, A, B, AAA, C).
    values: tuple[str, ...] = ()
    # Where the plugin made it (path:line), for the messages about it: a plan is checked when the policy compiles,
    # far from the plugin's code.  Not part of what the column is.
    origin: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = _caller()


@dataclass
class SqlOutputs:
    """Outputs computed in SQL, step by step: a step may use the columns of earlier steps."""

    steps: list[dict[str, Column]]
    error: str | None = None  # SQL: an error message for a customer, or NULL


@dataclass
class BatchOutputs:
    """Outputs computed in Python on chunks of rows (dicts of ``customer_id``, ``as_of`` and ``inputs``).

    ``compute(rows)`` returns one dict of outputs (by suffix) per row, or an
    Exception instance for a row it cannot handle.  If it raises, the engine
    retries the chunk row by row to find the customers concerned.  Values are
    checked against the declared column types; outputs left out are NULL.
    """

    inputs: list[str]
    outputs: dict[str, Column]
    compute: Callable[[list[dict[str, Any]]], list[dict[str, Any] | Exception]]
    chunk_size: int = 5000


@dataclass
class Action:
    """A kind of action, emitted for every customer for whom ``when`` holds."""

    action: str
    when: str  # SQL condition
    category: str
    reason: str  # SQL text expression
    priority: int = 3  # 1 = most urgent
    due: str | None = None  # SQL date expression; default: the as-of date
    details: dict[str, Any] = field(default_factory=dict)
    origin: str | None = field(default=None, compare=False, repr=False)  # as Column.origin

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = _caller()


@dataclass
class SqlActions:
    actions: list[Action]


@dataclass
class BatchActions:
    """``compute(rows)`` returns, per row, a list of action dicts (keys: action, and optionally
    category (see ACTION_CATEGORIES), reason, priority 1..9, due (YYYY-MM-DD), details) or an
    Exception instance; rows hold ``customer_id``, ``as_of`` and the named inputs."""

    inputs: list[str]
    compute: Callable[[list[dict[str, Any]]], list[list[dict[str, Any]] | Exception]]
    chunk_size: int = 5000
