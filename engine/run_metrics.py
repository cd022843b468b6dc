"""A run's metric values: ``crm_metrics``, one row per customer and run, one column per metric.

Why a table of columns and not a JSON document per assignment (results schema 4 and before): at one
million customers, formatting 34 values per customer as JSON, at the full precision explanations
need, took 24 of the 30 seconds spent writing a run; plain columns take 4.  A column stores a value
exactly as the run computed it (integer, real or text, no affinity), and BI tools and Datasette
filter and sort it without ``json_extract``.

Columns are added when a run stores a metric no earlier run stored (``ALTER TABLE ... ADD COLUMN``
costs nothing on existing rows; they read NULL), so the table holds the union of every policy's
metrics.  Which of them belong to a run is recorded in ``crm_runs.metrics``: a JSON list, in the
order the run stored them.

Runs written with results schema 4 or older keep their values in ``crm_assignments.metrics`` (JSON)
and have no ``crm_runs.metrics``.  :class:`RunMetrics` reads both, so every reader has one path.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from .database import table_columns
from .expr_sql import quote_identifier as q

TABLE = "crm_metrics"
# The key columns of crm_metrics: metric names (which are case-insensitive as SQLite columns) may not be these.
KEY_COLUMNS = ("run_id", "customer_id")

DDL = f"""CREATE TABLE IF NOT EXISTS {{s}}{TABLE} (
        run_id INTEGER NOT NULL REFERENCES crm_runs(run_id),
        customer_id NOT NULL,
        PRIMARY KEY (run_id, customer_id))"""


def is_reserved(name: str) -> bool:
    return name.lower() in KEY_COLUMNS


def add_columns(conn: sqlite3.Connection, schema: str, names: list[str]) -> None:
    """Give ``crm_metrics`` a column for each of ``names`` it lacks (inside the caller's write transaction)."""
    have = {c.lower() for c in table_columns(conn, schema, TABLE) or []}
    for name in names:
        if name.lower() not in have:
            conn.execute(f"ALTER TABLE {q(schema)}.{TABLE} ADD COLUMN {q(name)}")
            have.add(name.lower())


def insert_sql(schema: str, names: list[str], source: str, key: str) -> str:
    """INSERT of every row of ``source`` (alias ``r``, customer key column ``key``) into crm_metrics,
    in key order (the primary key's order: the B-tree is appended to, not split); parameter 1 is the run id."""
    cols = "".join(f", {q(n)}" for n in names)
    values = "".join(f", r.{q(n)}" for n in names)
    return (f"INSERT INTO {q(schema)}.{TABLE} (run_id, customer_id{cols}) "
            f"SELECT ?, r.{key}{values} FROM {source} AS r ORDER BY r.{key}")


def as_bool(value: object) -> object:
    """A true/false value as a run stores it (SQLite has no booleans: 1 and 0) as True or False, for people
    and for JSON; anything else (NULL, a value that is neither) as it is."""
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value


def _json_path(name: str) -> str:
    """JSON path of a top-level key, quoted so that any name works; as an SQL string literal."""
    path = '$."' + name.replace('"', '\\"') + '"'
    return "'" + path.replace("'", "''") + "'"


@dataclass(frozen=True)
class RunMetrics:
    """Where the metric values of one run are, and SQL to read them next to ``crm_assignments``."""

    schema: str
    run_id: int
    names: tuple[str, ...]
    legacy: bool  # values in crm_assignments.metrics (JSON), as results schema 4 and older wrote them

    @classmethod
    def of_run(cls, conn: sqlite3.Connection, run_id: int, schema: str = "main") -> "RunMetrics":
        if "metrics" in (table_columns(conn, schema, "crm_runs") or []):
            row = conn.execute(f"SELECT metrics FROM {q(schema)}.crm_runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None and row[0] is not None:
                return cls(schema, run_id, tuple(json.loads(row[0])), legacy=False)
        if "metrics" not in (table_columns(conn, schema, "crm_assignments") or []):
            return cls(schema, run_id, (), legacy=False)
        # Every row of a legacy run has the same keys: read them from one.
        row = conn.execute(f"SELECT metrics FROM {q(schema)}.crm_assignments WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        return cls(schema, run_id, tuple(json.loads(row[0] or "{}")) if row else (), legacy=True)

    def join(self, a: str = "a", m: str = "m") -> str:
        """A LEFT JOIN of crm_metrics ``m`` to assignments ``a`` (by its primary key), or "" for a legacy run."""
        if self.legacy or not self.names:
            return ""
        return (f" LEFT JOIN {q(self.schema)}.{TABLE} AS {m} "
                f"ON {m}.run_id = {a}.run_id AND {m}.customer_id = {a}.customer_id")

    def column(self, name: str, a: str = "a", m: str = "m") -> str:
        """SQL of the value of metric ``name`` on a row of :meth:`join`; NULL when the run did not store it."""
        if name not in self.names:
            return "NULL"
        if self.legacy:
            return f"json_extract({a}.metrics, {_json_path(name)})"
        return f"{m}.{q(name)}"

    def bools(self, conn: sqlite3.Connection) -> frozenset[str]:
        """The stored metrics and plugin outputs of the run that are true/false: as the run recorded them
        (``counts["explain"]["bools"]``), or for a run written before it did, its metrics defined so."""
        row = conn.execute(f"SELECT counts FROM {q(self.schema)}.crm_runs WHERE run_id = ?", (self.run_id,)).fetchone()
        counts = (json.loads(row[0] or "{}") if row else None) or {}
        facts = counts.get("explain") or {}
        if isinstance(facts.get("bools"), list):
            return frozenset(facts["bools"]) & set(self.names)
        if "crm_definitions" not in _tables(conn, self.schema):
            return frozenset()
        defined = conn.execute(f"SELECT id, details FROM {q(self.schema)}.crm_definitions "
                               f"WHERE run_id = ? AND kind = 'metric'", (self.run_id,))
        bools = {n for n, details in defined if (json.loads(details or "{}") or {}).get("type") == "bool"}
        return frozenset(bools & set(self.names))

    def select(self, a: str = "a", m: str = "m") -> str:
        """``, value, value, ...`` of every stored metric, in :attr:`names` order (to append to a select list)."""
        return "".join(f", {self.column(n, a, m)}" for n in self.names)

    def of_customer(self, conn: sqlite3.Connection, customer_id: object) -> dict:
        """{name: value} of one customer of the run ({} when the customer is not in it)."""
        row = conn.execute(f"SELECT 1{self.select()} FROM {q(self.schema)}.crm_assignments AS a{self.join()} "
                           f"WHERE a.run_id = ? AND a.customer_id = ?", (self.run_id, customer_id)).fetchone()
        return dict(zip(self.names, row[1:])) if row else {}


def _tables(conn: sqlite3.Connection, schema: str) -> set[str]:
    return {r[0] for r in conn.execute(f"SELECT name FROM {q(schema)}.sqlite_master WHERE type = 'table'")}
