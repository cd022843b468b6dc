"""The results tables: documented, stable names that BI tools and Datasette read.

Runs are append-only.  Each run is written in one transaction, so a reader
sees either all of a run or none of it.
"""

from __future__ import annotations

import sqlite3

from . import run_metrics
from .database import table_columns
from .errors import DataError, UsageError
from .expr_sql import quote_identifier as q

SCHEMA_VERSION = 5

# version -> statements that bring a results schema of the previous version up to it
# version -> columns that version added (table, column, type); views come with ensure_schema
MIGRATIONS: dict[int, list[tuple[str, str, str]]] = {
    2: [("crm_runs", "plugins", "TEXT")],
    3: [],  # the crm_transitions view: created below with the other views (IF NOT EXISTS)
    4: [("crm_assignments", "rule_tier", "TEXT"), ("crm_assignments", "override", "TEXT")],
    # crm_metrics (created below) holds the metric values of runs from now on; older runs keep theirs in
    # crm_assignments.metrics, which is left as it is (run_metrics.RunMetrics reads both)
    5: [("crm_runs", "metrics", "TEXT")],
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
        metrics TEXT,
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
        rule_tier TEXT,
        override TEXT,
        PRIMARY KEY (run_id, customer_id))""",
    "crm_metrics": run_metrics.DDL,
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
    "CREATE INDEX IF NOT EXISTS {s}crm_actions_customer ON crm_actions(run_id, customer_id)",  # explain, one customer
)

VIEWS = {
    "crm_current": """CREATE VIEW IF NOT EXISTS {s}crm_current AS
        SELECT r.policy_name, r.as_of, a.*
        FROM crm_assignments AS a JOIN crm_runs AS r ON r.run_id = a.run_id
        WHERE a.run_id = (SELECT MAX(r2.run_id) FROM crm_runs AS r2
                          WHERE r2.policy_name = r.policy_name AND r2.status = 'succeeded')""",
    # Per successful run R and the previous successful run P of the same policy name: every customer whose
    # tier or stage differs, who is new in R, or who was in P and is not in R.  Direction compares the
    # tiers' positions in R's definitions (0 = top tier); a tier R does not define cannot be ranked.
    # The first run of a policy has no previous run, hence no rows.  The previous run comes from lag() over
    # crm_runs (a small table, scanned once; a correlated max() was re-evaluated per customer row), and
    # customers are looked up by the primary keys of crm_assignments and crm_definitions.
    "crm_transitions": """CREATE VIEW IF NOT EXISTS {s}crm_transitions AS
        SELECT r.run_id, r.previous_run_id, r.policy_name, a.customer_id, a.customer_name,
               p.tier AS tier_before, a.tier AS tier_after, p.stage AS stage_before, a.stage AS stage_after,
               p.subgrade AS subgrade_before, a.subgrade AS subgrade_after,
               CASE WHEN p.customer_id IS NULL THEN 'new'
                    WHEN p.tier = a.tier THEN 'same tier'
                    WHEN ta.position < tb.position THEN 'upgrade'
                    WHEN ta.position > tb.position THEN 'downgrade'
                    ELSE 'unranked' END AS direction,
               a.tier_rule, a.stage_rule
        FROM (SELECT run_id, policy_name, lag(run_id) OVER (PARTITION BY policy_name ORDER BY run_id) AS previous_run_id
              FROM crm_runs WHERE status = 'succeeded') AS r
        JOIN crm_assignments AS a ON a.run_id = r.run_id
        LEFT JOIN crm_assignments AS p ON p.run_id = r.previous_run_id AND p.customer_id = a.customer_id
        LEFT JOIN crm_definitions AS ta ON ta.run_id = r.run_id AND ta.kind = 'tier' AND ta.id = a.tier
        LEFT JOIN crm_definitions AS tb ON tb.run_id = r.run_id AND tb.kind = 'tier' AND tb.id = p.tier
        WHERE r.previous_run_id IS NOT NULL
          AND (p.customer_id IS NULL OR p.tier IS NOT a.tier OR p.stage IS NOT a.stage)
        UNION ALL
        SELECT r.run_id, r.previous_run_id, r.policy_name, p.customer_id, p.customer_name,
               p.tier, NULL, p.stage, NULL, p.subgrade, NULL, 'removed', NULL, NULL
        FROM (SELECT run_id, policy_name, lag(run_id) OVER (PARTITION BY policy_name ORDER BY run_id) AS previous_run_id
              FROM crm_runs WHERE status = 'succeeded') AS r
        JOIN crm_assignments AS p ON p.run_id = r.previous_run_id
        WHERE NOT EXISTS (SELECT 1 FROM crm_assignments AS a WHERE a.run_id = r.run_id AND a.customer_id = p.customer_id)""",
}


def ensure_schema(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Create the results tables if missing, or migrate older ones (inside the caller's transaction)."""
    prefix = f"{q(schema)}."
    existing = has_results(conn, schema)
    version = SCHEMA_VERSION
    if existing:
        version = stored_version(conn, schema)
        conn.execute(TABLES["crm_meta"].format(s=prefix))
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for table, column, kind in MIGRATIONS.get(step, []):
                have = table_columns(conn, schema, table)
                if have and column not in have:  # a missing table is created whole below
                    conn.execute(f"ALTER TABLE {prefix}{q(table)} ADD COLUMN {q(column)} {kind}")
    for ddl in list(TABLES.values()) + list(INDEXES) + list(VIEWS.values()):
        conn.execute(ddl.format(s=prefix))
    conn.execute(f"INSERT OR REPLACE INTO {prefix}crm_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def stored_version(conn: sqlite3.Connection, schema: str = "main") -> int:
    """The schema version of existing results tables (1 before crm_meta), refusing a newer crm-rules' tables.

    Read-only, so that a reader or a dry run can refuse them too: a newer version may keep a run's rows in
    tables this one does not know, which deleting or rewriting runs would leave dangling."""
    prefix = f"{q(schema)}."
    row = None
    if conn.execute(f"SELECT 1 FROM {prefix}sqlite_master WHERE type = 'table' AND name = 'crm_meta'").fetchone():
        row = conn.execute(f"SELECT value FROM {prefix}crm_meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 1
    if version > SCHEMA_VERSION:
        raise DataError(f"the results tables were written by a newer crm-rules (schema {version}, this one knows {SCHEMA_VERSION})",
                        hint="upgrade crm-rules, or write results to another database with --results-db")
    return version


def has_results(conn: sqlite3.Connection, schema: str = "main") -> bool:
    return conn.execute(
        f"SELECT 1 FROM {q(schema)}.sqlite_master WHERE type = 'table' AND name = 'crm_runs'").fetchone() is not None


def require_results(conn: sqlite3.Connection, db: object) -> None:
    """The error of every command that reads runs from a database that has none (``db``: as the user named it)."""
    if not has_results(conn):
        raise UsageError(f"{db}: this database has no crm-rules runs yet",
                         hint="run `crm-rules apply` first, or give the database apply wrote the runs to (its --results-db)")
