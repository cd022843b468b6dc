"""The results tables: documented, stable names that BI tools and Datasette read.

Runs are append-only.  Each run is written in one transaction, so a reader
sees either all of a run or none of it.
"""

from __future__ import annotations

import sqlite3

from .expr_sql import quote_identifier as q

SCHEMA_VERSION = 2

# version -> statements that bring a results schema of the previous version up to it
MIGRATIONS = {
    2: ["ALTER TABLE {s}crm_runs ADD COLUMN plugins TEXT"],
}

TABLES = {
    "crm_meta": "CREATE TABLE IF NOT EXISTS {s}crm_meta (key TEXT PRIMARY KEY, value TEXT)",
    "crm_runs": """CREATE TABLE IF NOT EXISTS {s}crm_runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        policy_name TEXT NOT NULL,
        policy_version TEXT,
        policy_sha256 TEXT NOT NULL,
        as_of TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
        customers INTEGER,
        counts TEXT,
        engine_version TEXT,
        plugins TEXT,
        source_db TEXT,
        error TEXT,
        notes TEXT)""",
    "crm_policies": """CREATE TABLE IF NOT EXISTS {s}crm_policies (
        sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, document TEXT NOT NULL)""",
    "crm_definitions": """CREATE TABLE IF NOT EXISTS {s}crm_definitions (
        run_id INTEGER NOT NULL REFERENCES crm_runs(run_id),
        kind TEXT NOT NULL CHECK (kind IN ('tier', 'subgrade', 'stage', 'service_level', 'metric')),
        id TEXT NOT NULL,
        parent TEXT,
        label TEXT,
        position INTEGER NOT NULL,
        details TEXT,
        PRIMARY KEY (run_id, kind, id))""",
    "crm_assignments": """CREATE TABLE IF NOT EXISTS {s}crm_assignments (
        run_id INTEGER NOT NULL REFERENCES crm_runs(run_id),
        customer_id NOT NULL,
        customer_name TEXT,
        tier TEXT NOT NULL,
        subgrade TEXT,
        stage TEXT,
        service_level TEXT,
        tier_rule TEXT,
        subgrade_rule TEXT,
        stage_rule TEXT,
        metrics TEXT,
        PRIMARY KEY (run_id, customer_id))""",
    "crm_actions": """CREATE TABLE IF NOT EXISTS {s}crm_actions (
        run_id INTEGER NOT NULL REFERENCES crm_runs(run_id),
        customer_id NOT NULL,
        action TEXT NOT NULL,
        category TEXT NOT NULL,
        plugin TEXT NOT NULL,
        generator TEXT NOT NULL,
        reason TEXT,
        details TEXT,
        priority INTEGER,
        due_date TEXT,
        owner TEXT)""",
    "crm_errors": """CREATE TABLE IF NOT EXISTS {s}crm_errors (
        run_id INTEGER NOT NULL REFERENCES crm_runs(run_id),
        customer_id,
        plugin TEXT NOT NULL,
        entry TEXT NOT NULL,
        message TEXT NOT NULL)""",
}

INDEXES = (
    "CREATE INDEX IF NOT EXISTS {s}crm_actions_run ON crm_actions(run_id, due_date)",
)

VIEWS = {
    "crm_current": """CREATE VIEW IF NOT EXISTS {s}crm_current AS
        SELECT r.policy_name, r.as_of, a.*
        FROM crm_assignments AS a JOIN crm_runs AS r ON r.run_id = a.run_id
        WHERE a.run_id = (SELECT MAX(r2.run_id) FROM crm_runs AS r2
                          WHERE r2.policy_name = r.policy_name AND r2.status = 'succeeded')""",
}


def ensure_schema(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Create the results tables if missing, or migrate older ones (inside the caller's transaction)."""
    prefix = f"{q(schema)}."
    existing = has_results(conn, schema)
    version = SCHEMA_VERSION
    if existing:
        conn.execute(TABLES["crm_meta"].format(s=prefix))
        row = conn.execute(f"SELECT value FROM {prefix}crm_meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 1
        if version > SCHEMA_VERSION:
            from .errors import DataError

            raise DataError(f"the results tables were written by a newer crm-rules (schema {version}, this one knows {SCHEMA_VERSION})",
                            hint="upgrade crm-rules, or write results to another database with --results-db")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for ddl in MIGRATIONS.get(step, []):
                conn.execute(ddl.format(s=prefix))
    for ddl in list(TABLES.values()) + list(INDEXES) + list(VIEWS.values()):
        conn.execute(ddl.format(s=prefix))
    conn.execute(f"INSERT OR REPLACE INTO {prefix}crm_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def has_results(conn: sqlite3.Connection, schema: str = "main") -> bool:
    return conn.execute(
        f"SELECT 1 FROM {q(schema)}.sqlite_master WHERE type = 'table' AND name = 'crm_runs'").fetchone() is not None
