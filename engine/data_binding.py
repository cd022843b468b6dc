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
from .database import named_file, table_columns
from .errors import DataError, UsageError
from .expr_sql import quote_identifier
from .expr_types import did_you_mean
from .policy_model import Policy
from .user_text import joined
from .yaml_source import Position, format_path

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
    fields: dict[str, set[str]] = field(default_factory=dict)  # source -> logical fields its metrics read

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


def metric_fields(m, source: str) -> set[str]:
    """The logical fields of ``source`` that metric ``m`` reads: its dates, its kind's fields, its expressions'."""
    fields = {WINDOW_FIELD[source], *DATE_FIELDS[source], *KIND_FIELDS.get(m.kind, ())}
    for expr in (m.operand, m.where):
        if expr is not None and m.kind != "expr":
            fields |= ast.names_in(expr.node)
    return fields


def _needed_by(m) -> tuple[str, str]:
    """Who needs a metric, in the user's terms: a plugin's helper metric is named by its policy entry."""
    if m.internal:
        return "plugin entry", format_path(m.path[:2])
    return "metric", repr(m.name)


MAX_NAMED = 6  # names listed in one problem; the rest are counted


def _users(users: list[tuple[str, str]]) -> str:
    """"metrics 'a' and 'b', and the plugin entry credit.c": who needs a table or column."""
    by_kind: dict[str, list[str]] = {}
    for kind, name in users:
        by_kind.setdefault(kind, []).append(name)
    parts = []
    for kind, names in by_kind.items():
        shown = names if len(names) <= MAX_NAMED + 1 else names[:MAX_NAMED] + [f"{len(names) - MAX_NAMED} more"]
        noun = "" if not kind else f"{kind}s " if len(names) > 1 else f"{kind} "
        parts.append(("the " if kind == "plugin entry" else "") + noun + joined(shown))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]


class _Gaps:
    """What the database lacks, one problem per `data:` entry however many metrics need it, each at the
    place the policy maps it (its file:line:col), when the policy (or its base or sources file) writes it;
    a default mapping has no place."""

    def __init__(self, policy: Policy):
        self.doc = policy.source
        self.columns: dict[tuple[str, str, str, str], list[tuple[str, str]]] = {}  # (concept, logical, table, column)
        self.column_names: dict[str, list[str]] = {}
        self.tables: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (source, table) -> who needs it

    def column(self, concept: str, logical: str, table: str, column: str, cols: list[str], user: tuple[str, str]) -> None:
        _add(self.columns.setdefault((concept, logical, table, column), []), user)
        self.column_names[table] = cols

    def table(self, source: str, table: str, user: tuple[str, str]) -> None:
        _add(self.tables.setdefault((source, table), []), user)

    def where(self, path: tuple) -> Position | None:
        """Where the policy maps the `data:` entry at ``path`` (its column name), or None for a default."""
        return self.doc.values.get(path + ("column",)) or self.doc.values.get(path)

    def problems(self) -> list[str]:
        """One line per entry; those the policy writes first, in the order of the files, then the defaults."""
        out: list[tuple[Position | None, str]] = []
        for (concept, logical, table, column), users in self.columns.items():
            cols = self.column_names[table]
            who = _users(users)
            out.append((self.where(("data", concept, *logical.split("."))),
                        f"table {table!r} has no column {column!r} (data.{concept}.{logical}, needed by {who})"
                        f"{did_you_mean(column, cols)}; its columns are: {', '.join(cols)}"))
        for (source, table), users in self.tables.items():
            one = len(users) == 1
            what = ("the metric" if users[0][0] == "metric" else "the entry") if one else "what needs it"
            out.append((self.where(("data", source, "table")),
                        f"{_users(users)} need{'s' if one else ''} {source}, but the database has no table {table!r}; "
                        f"map data.{source}.table to your table, or remove {what}"))
        placed = sorted((p for p in out if p[0] is not None), key=lambda p: (p[0].file, p[0].line, p[0].col))
        return [_at(pos) + text for pos, text in placed + [p for p in out if p[0] is None]]


def _add(users: list[tuple[str, str]], user: tuple[str, str]) -> None:
    if user not in users:  # a plugin entry's helper metrics all name the entry
        users.append(user)


def _at(pos: Position | None) -> str:
    return f"{pos.file}:{pos.line}:{pos.col}: " if pos is not None else ""


def bind(conn: sqlite3.Connection, schema: str, policy: Policy) -> Binding:
    """Verify every table and column the policy needs; raise DataError listing all gaps, each once."""
    gaps = _Gaps(policy)
    binding = Binding(schema)
    mapping = policy.data
    tables: dict[str, list[str] | None] = {}

    def columns_of(table: str) -> list[str] | None:
        if table not in tables:
            tables[table] = table_columns(conn, schema, table)
        return tables[table]

    def need(concept: str, table: str, column: str, logical: str, user: tuple[str, str]) -> bool:
        cols = columns_of(table)
        if cols is None:
            return False
        if column.lower() not in {c.lower() for c in cols}:
            gaps.column(concept, logical, table, column, cols, user)
            return False
        return True

    cust = mapping.customers
    if columns_of(cust.table) is None:
        message = (f"{_at(gaps.where(('data', 'customers', 'table')))}the database {named_file(conn, schema)} has no "
                   f"customers table {cust.table!r}")
        if (graded := _results_only(conn, schema)) is not None:
            raise UsageError(message, hint=_results_only_hint(graded))
        raise DataError(message, hint=f"map data.customers.table to your customer table; tables present: "
                                      f"{', '.join(_all_tables(conn, schema)) or '(none)'}")
    need("customers", cust.table, cust.key, "id", ("", "every run"))
    need("customers", cust.table, mapping.customer_name, "name", ("", "every run"))
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
        need("customers", cust.table, mapping.attributes[name].column, f"attributes.{name}", ("attribute", repr(name)))

    since = mapping.attributes.get("since")
    binding.tenure_from_since = since is not None and since.column.lower() in present
    for m in policy.metrics.values():
        source = m.source or ("orders" if m.kind == "tenure" and not binding.tenure_from_since else None)
        if source is None:
            continue
        t = mapping.sources[source]
        if columns_of(t.table) is None:
            gaps.table(source, t.table, _needed_by(m))
            continue
        ok = need(source, t.table, t.key, "customer", _needed_by(m))
        fields = metric_fields(m, source)
        filtered = ast.names_in(t.where.node) if t.where is not None else set()
        binding.fields.setdefault(source, set()).update(fields | filtered)
        for f in sorted(fields):
            ok = need(source, t.table, t.columns[f].column, _logical(source, f), _needed_by(m)) and ok
        for f in sorted(filtered):  # the source's filter reads them for every metric of the source
            user = ("source filter", f"data.{source}.where")
            ok = need(source, t.table, t.columns[f].column, _logical(source, f), user) and ok
        if ok:
            binding.sources.add(source)
    problems = gaps.problems()
    if problems:
        raise DataError("the database does not have what the policy needs:\n  - " + "\n  - ".join(problems),
                        hint="fix the data: section of the policy (or a sources file) to name your tables and columns")
    return binding


def _logical(source: str, name: str) -> str:
    """Where the mapping of field ``name`` of ``source`` is written under ``data.<source>``."""
    return name if name in SOURCE_FIELDS[source] else f"columns.{name}"


def _results_only(conn: sqlite3.Connection, schema: str) -> list[str] | None:
    """The data files the runs of a database holding only crm-rules results graded (latest first), or None when it
    holds more than results.

    Such a file given as --db (the file ``apply --results-db`` wrote) is the wrong option, not data to fix: a usage
    error, which apply does not record as a failed run in it (or in the --results-db), as it records a data
    error.  Its hint said to map data.customers.table to one of crm-rules' own tables."""
    tables = _all_tables(conn, schema)
    if "crm_runs" not in tables or any(not t.startswith("crm_") for t in tables):
        return None
    return [r[0] for r in conn.execute(f"SELECT source_db FROM {quote_identifier(schema)}.crm_runs WHERE status = "
                                       f"'succeeded' AND source_db IS NOT NULL GROUP BY source_db "
                                       f"ORDER BY max(run_id) DESC LIMIT 3")]


def _results_only_hint(graded: list[str]) -> str:
    where = f" (its runs graded {', '.join(graded)})" if graded else ""
    return (f"this database holds only crm-rules results (crm_runs, crm_assignments, ...), no customer data: give "
            f"the database with your customers as --db{where}, and this one as --results-db")


def _all_tables(conn: sqlite3.Connection, schema: str) -> list[str]:
    return [r[0] for r in conn.execute(
        f"SELECT name FROM {quote_identifier(schema)}.sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]
