"""Map the engine's concepts onto the user's own tables and columns.

An existing database works without reshaping: a policy's ``data:`` section
names tables and columns; anything it leaves out keeps the defaults below,
which are the demo database's names.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .expr_types import DATE, NUMBER, TEXT

SOURCES = ("orders", "receivables", "interactions", "contracts")

DEFAULT_DATA: dict = {
    "customers": {
        "table": "customers", "id": "id", "name": "name",
        "attributes": {
            "region": "region", "industry": "industry", "account_manager": "account_manager",
            "since": {"column": "created_at", "type": "date"},
            "credit_limit": {"column": "credit_limit", "type": "number"},
        },
    },
    "orders": {"table": "orders", "customer": "customer_id", "date": "order_date", "amount": "amount",
               "columns": {"cost": "cost", "discount": "discount"}},
    "receivables": {"table": "receivables", "customer": "customer_id", "date": "issue_date", "due_date": "due_date",
                    "amount": "amount", "paid_amount": "paid_amount", "paid_date": "paid_date", "columns": {}},
    "interactions": {"table": "interactions", "customer": "customer_id", "date": "date", "kind": "kind", "columns": {}},
    "contracts": {"table": "contracts", "customer": "customer_id", "start": "start_date", "end": "end_date",
                  "kind": "kind", "columns": {}},
}

# The logical fields of each source and their types; `columns` adds more.
SOURCE_FIELDS: dict[str, dict[str, str]] = {
    "orders": {"date": DATE, "amount": NUMBER},
    "receivables": {"date": DATE, "due_date": DATE, "amount": NUMBER, "paid_amount": NUMBER, "paid_date": DATE},
    "interactions": {"date": DATE, "kind": TEXT},
    "contracts": {"start": DATE, "end": DATE, "kind": TEXT},
}

# Date fields that must hold ISO text for the engine's comparisons to be right.
DATE_FIELDS = {"orders": ("date",), "receivables": ("date", "due_date", "paid_date"),
               "interactions": ("date",), "contracts": ("start", "end")}

# Fields a row cannot do without: a row missing one cannot be placed in time or counted.
REQUIRED_FIELDS = {"orders": ("date", "amount"), "receivables": ("date", "due_date", "amount"),
                   "interactions": ("date",), "contracts": ("start",)}

# The date that places a row of each source in a time window.
WINDOW_FIELD = {"orders": "date", "receivables": "date", "interactions": "date", "contracts": "start"}


@dataclass(frozen=True)
class Column:
    """A logical name bound to one of the user's columns."""

    name: str
    column: str
    type: str


@dataclass
class Table:
    concept: str
    table: str
    key: str  # customer id column (customers.id, or the source's customer column)
    columns: dict[str, Column] = field(default_factory=dict)
    # The source's row filter (``data.<source>.where``): a policy_model.Expr once the policy's meaning checks have
    # parsed and type-checked it (source_filters), None without one.  build_data_mapping leaves it None.
    where: Any = None
    # names the policy maps to nothing (`discount: null`: the table has no such column), for the message about an
    # expression that still reads one (unmapped_columns)
    removed: frozenset[str] = frozenset()


@dataclass
class DataMapping:
    customers: Table
    customer_name: str
    sources: dict[str, Table]

    @property
    def attributes(self) -> dict[str, Column]:
        return self.customers.columns


def _standard_type(name: str) -> str:
    """A standard attribute renamed by a plain string (``since: joined``) keeps its type; others are text.

    The merge replaces the default's ``{column, type}`` with the string, which would make ``since`` text:
    tenure and the date check would then no longer treat it as the date it is.
    """
    default = DEFAULT_DATA["customers"]["attributes"].get(name)
    return default.get("type", TEXT) if isinstance(default, dict) else TEXT


def _column(name: str, ref, default_type: str) -> Column:
    if isinstance(ref, dict):
        return Column(name, ref["column"], ref.get("type", default_type))
    return Column(name, ref, default_type)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build_data_mapping(section: dict | None) -> DataMapping:
    """Defaults overlaid with the policy's (already schema-valid) ``data`` section."""
    merged = _merge(DEFAULT_DATA, section or {})
    c = merged["customers"]
    customers = Table("customers", c["table"], c["id"],
                      {n: _column(n, ref, _standard_type(n)) for n, ref in c.get("attributes", {}).items() if ref is not None})
    sources = {}
    for concept in SOURCES:
        s = merged[concept]
        cols = {f: Column(f, s[f], t) for f, t in SOURCE_FIELDS[concept].items()}
        cols.update({n: _column(n, ref, NUMBER) for n, ref in s.get("columns", {}).items() if ref is not None})
        removed = frozenset(n for n, ref in s.get("columns", {}).items() if ref is None)
        sources[concept] = Table(concept, s["table"], s["customer"], cols, removed=removed)
    return DataMapping(customers, c["name"], sources)
