"""Check a policy's data needs against the user's actual database.

Only what the policy uses must exist: a missing optional table disables the
metrics that need it, and an error names each metric that cannot be computed,
the table or column it needed, and what the database does have.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from . import expr_ast as ast
from .data_mapping import DATE_FIELDS, SOURCE_FIELDS, WINDOW_FIELD, Column
from .database import table_columns
from .errors import DataError
from .expr_sql import quote_identifier
from .expr_types import did_you_mean
from .policy_model import Policy
from .yaml_source import format_path

# Logical fields each metric kind reads, beyond its expressions.
KIND_FIELDS = {
    "collection_rate": ("due_date", "amount", "paid_amount", "paid_date"),
    "on_time_rate": ("due_date", "amount", "paid_amount", "paid_date"),
    "overdue": ("date", "due_date", "amount", "paid_amount", "paid_date"),
    "outstanding": ("date", "amount", "paid_amount", "paid_date"),
    "contract_days_left": ("start", "end"),
}


@dataclass
class Binding:
    """What the run may read: schema-qualified tables and the columns present."""

    schema: str
    sources: set[str] = field(default_factory=set)  # sources with a usable table
    attributes: dict[str, Column] = field(default_factory=dict)  # attributes present in the table
    used: set[str] = field(default_factory=set)  # attributes the policy reads (conditions, metrics, plugins)
    tenure_from_since: bool = False

    def table(self, name: str) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(name)}"


def customer_expressions(policy: Policy):
    """Every customer-level expression of the policy (metric exprs and rule conditions)."""
    for m in policy.metrics.values():
        if m.kind == "expr" and m.operand:
            yield m.operand.node
    for tier in policy.tiers:
        for rule in [tier.rule, *tier.subgrades]:
            if rule.condition:
                yield rule.condition.node
    for stage in policy.stages:
        if stage.condition:
            yield stage.condition.node
    for sl in policy.service_levels:
        if sl.condition:
            yield sl.condition.node


def _needed_by(m) -> str:
    """Who needs a metric, in the user's terms: a plugin's helper metric is named by its policy entry."""
    if m.internal:
        return f"{format_path(m.path)} (a metric the plugin computes)"
    return f"metric {m.name!r}"


def bind(conn: sqlite3.Connection, schema: str, policy: Policy) -> Binding:
    """Verify every table and column the policy needs; raise DataError listing all gaps."""
    problems: list[str] = []
    binding = Binding(schema)
    mapping = policy.data
    tables: dict[str, list[str] | None] = {}

    def columns_of(table: str) -> list[str] | None:
        if table not in tables:
            tables[table] = table_columns(conn, schema, table)
        return tables[table]

    def need(concept: str, table: str, column: str, logical: str, user: str) -> bool:
        cols = columns_of(table)
        if cols is None:
            return False
        if column.lower() not in {c.lower() for c in cols}:
            problems.append(
                f"table {table!r} has no column {column!r} (data.{concept}.{logical}, needed by {user}){did_you_mean(column, cols)}; "
                f"its columns are: {', '.join(cols)}"
            )
            return False
        return True

    cust = mapping.customers
    if columns_of(cust.table) is None:
        raise DataError(f"the database has no customers table {cust.table!r}",
                        hint=f"map data.customers.table to your customer table; tables present: {', '.join(_all_tables(conn, schema)) or '(none)'}")
    need("customers", cust.table, cust.key, "id", "every run")
    need("customers", cust.table, mapping.customer_name, "name", "every run")
    present = {c.lower() for c in columns_of(cust.table)}
    binding.attributes = {n: c for n, c in mapping.attributes.items() if c.column.lower() in present}

    used_attributes = set()
    for node in customer_expressions(policy):
        used_attributes |= ast.names_in(node) & set(mapping.attributes)
    used_attributes |= {m.spec["attribute"] for m in policy.metrics.values() if m.kind == "attribute"}
    for step in policy.plugin_steps + policy.action_steps:
        used_attributes |= step.used & set(mapping.attributes)
    binding.used = used_attributes
    for name in sorted(used_attributes):
        need("customers", cust.table, mapping.attributes[name].column, f"attributes.{name}", f"attribute {name!r}")

    since = mapping.attributes.get("since")
    binding.tenure_from_since = since is not None and since.column.lower() in present
    for m in policy.metrics.values():
        source = m.source or ("orders" if m.kind == "tenure" and not binding.tenure_from_since else None)
        if source is None:
            continue
        t = mapping.sources[source]
        if columns_of(t.table) is None:
            problems.append(f"{_needed_by(m)} needs {source}, but the database has no table {t.table!r}; "
                            f"map data.{source}.table to your table, or remove the {'entry' if m.internal else 'metric'}")
            continue
        ok = need(source, t.table, t.key, "customer", _needed_by(m))
        fields = {WINDOW_FIELD[source], *DATE_FIELDS[source], *KIND_FIELDS.get(m.kind, ())}
        for expr in (m.operand, m.where):
            if expr is not None and m.kind != "expr":
                fields |= ast.names_in(expr.node)
        for f in sorted(fields):
            logical = f if f in SOURCE_FIELDS[source] else f"columns.{f}"  # where the mapping of f is written
            ok = need(source, t.table, t.columns[f].column, logical, _needed_by(m)) and ok
        if ok:
            binding.sources.add(source)
    if problems:
        raise DataError("the database does not have what the policy needs:\n  - " + "\n  - ".join(dict.fromkeys(problems)),
                        hint="fix the data: section of the policy (or a sources file) to name your tables and columns")
    return binding


def _all_tables(conn: sqlite3.Connection, schema: str) -> list[str]:
    return [r[0] for r in conn.execute(
        f"SELECT name FROM {quote_identifier(schema)}.sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]
