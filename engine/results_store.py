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

SCHEMA_VERSION = 7

# version -> statements that bring a results schema of the previous version up to it
# version -> columns that version added (table, column, type); views come with ensure_schema
MIGRATIONS: dict[int, list[tuple[str, str, str]]] = {
    2: [("crm_runs", "plugins", "TEXT")],
    3: [],  # the crm_transitions view: created below with the other views (IF NOT EXISTS)
    4: [("crm_assignments", "rule_tier", "TEXT"), ("crm_assignments", "override", "TEXT")],
    # crm_metrics (created below) holds the metric values of runs from now on; older runs keep theirs in
    # crm_assignments.metrics, which is left as it is (run_metrics.RunMetrics reads both)
    5: [("crm_runs", "metrics", "TEXT")],
    6: [],  # the views order a policy's runs by as-of date (REDEFINED_VIEWS)
    # crm_pruned_runs (created below): what prune deleted, so that the oldest run it kept is not called the first;
    # a crm-rules of schema 6 refuses to prune here, as its prune would delete runs without recording them
    7: [],
}

# version -> views whose definition that version changed: dropped, then created again with the others
REDEFINED_VIEWS: dict[int, tuple[str, ...]] = {6: ("crm_current", "crm_transitions")}

# A policy's runs in the order of the dates they grade, not of when they ran: a backfill of last June, run
# after September, comes before it.  Of two runs of one date the later run counts.  `changes`, `history`, the
# views, the default run of every command and `prune` all order runs this way.
RUN_ORDER = "as_of, run_id"
LATEST_FIRST = "as_of DESC, run_id DESC"

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
    # One row per run `crm-rules prune` deleted (its crm_runs row goes): the oldest run kept of a policy is not
    # its first run when earlier ones were pruned, and `changes`, `history` and the report say so.
    "crm_pruned_runs": """CREATE TABLE IF NOT EXISTS {s}crm_pruned_runs (
        run_id INTEGER PRIMARY KEY,
        policy_name TEXT NOT NULL,
        as_of TEXT NOT NULL,
        status TEXT NOT NULL,
        pruned_at TEXT NOT NULL)""",
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
    "crm_current": f"""CREATE VIEW IF NOT EXISTS {{s}}crm_current AS
        SELECT r.policy_name, r.as_of, a.*
        FROM (SELECT run_id, policy_name, as_of,
                     row_number() OVER (PARTITION BY policy_name ORDER BY {LATEST_FIRST}) AS latest
              FROM crm_runs WHERE status = 'succeeded') AS r
        JOIN crm_assignments AS a ON a.run_id = r.run_id
        WHERE r.latest = 1""",
    # Per successful run R and the previous successful run P of the same policy name (RUN_ORDER): every customer whose
    # tier or stage differs, who is new in R, or who was in P and is not in R.  Direction compares the
    # tiers' positions in R's definitions (0 = top tier); a tier R does not define cannot be ranked.
    # The first run of a policy has no previous run, hence no rows.  The previous run comes from lag() over
    # crm_runs (a small table, scanned once; a correlated max() was re-evaluated per customer row), and
    # customers are looked up by the primary keys of crm_assignments and crm_definitions.
    "crm_transitions": f"""CREATE VIEW IF NOT EXISTS {{s}}crm_transitions AS
        SELECT r.run_id, r.previous_run_id, r.policy_name, a.customer_id, a.customer_name,
               p.tier AS tier_before, a.tier AS tier_after, p.stage AS stage_before, a.stage AS stage_after,
               p.subgrade AS subgrade_before, a.subgrade AS subgrade_after,
               CASE WHEN p.customer_id IS NULL THEN 'new'
                    WHEN p.tier = a.tier THEN 'same tier'
                    WHEN ta.position < tb.position THEN 'upgrade'
                    WHEN ta.position > tb.position THEN 'downgrade'
                    ELSE 'unranked' END AS direction,
               a.tier_rule, a.stage_rule
        FROM (SELECT run_id, policy_name, lag(run_id) OVER (PARTITION BY policy_name ORDER BY {RUN_ORDER}) AS previous_run_id
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
        FROM (SELECT run_id, policy_name, lag(run_id) OVER (PARTITION BY policy_name ORDER BY {RUN_ORDER}) AS previous_run_id
              FROM crm_runs WHERE status = 'succeeded') AS r
        JOIN crm_assignments AS p ON p.run_id = r.previous_run_id
        WHERE NOT EXISTS (SELECT 1 FROM crm_assignments AS a WHERE a.run_id = r.run_id AND a.customer_id = p.customer_id)""",
}


#: The indexes of the results tables, and the table of each.
INDEX_TABLES = {"crm_actions_run": "crm_actions", "crm_actions_customer": "crm_actions"}


def _core_columns() -> dict[str, list[str]]:
    """The columns every crm-rules created each results table with: today's definitions without the columns
    MIGRATIONS added later (crm_actions and crm_errors came with schema 2, crm_metrics with 5, whole)."""
    added = {(table, column) for steps in MIGRATIONS.values() for table, column, _ in steps}
    conn = sqlite3.connect(":memory:")
    try:
        core = {}
        for name, ddl in TABLES.items():
            conn.execute(ddl.format(s=""))
            core[name] = [r[1] for r in conn.execute(f"PRAGMA table_info({q(name)})") if (name, r[1]) not in added]
        return core
    finally:
        conn.close()


#: A table of a results name without these columns was not made by crm-rules.  More columns are fine: those of a
#: later schema, crm_metrics' metric columns, crm_assignments.metrics (schema 1 to 4).
CORE_COLUMNS = _core_columns()


def _file(conn: sqlite3.Connection, schema: str) -> str:
    """The database file of ``schema`` as the user named it (for messages)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == schema:
            return getattr(conn, "files", {}).get(file, file) or schema
    return schema


def _foreign(conn: sqlite3.Connection, schema: str, columns: bool) -> list[tuple[str, str]]:
    """(name, why) of each table, view or index with a name of the results that crm-rules did not create.

    crm-rules creates all of them in the transaction that creates crm_runs, with the names in lower case and
    at least the CORE_COLUMNS (checked with ``columns``), and crm_meta holds nothing but its schema_version:
    that is how a results database of every version is told from another program's tables that happen to
    use a crm_ name."""
    s = q(schema)
    names = [*TABLES, *VIEWS, *INDEX_TABLES]
    found = conn.execute(f"SELECT type, name, tbl_name FROM {s}.sqlite_master WHERE lower(name) IN "
                         f"({', '.join('?' * len(names))}) ORDER BY lower(name)", names).fetchall()
    foreign = []
    for kind, name, table in found:
        key = name.lower()
        expected = "table" if key in TABLES else "view" if key in VIEWS else "index"
        if kind != expected:
            foreign.append((name, f"a {kind}, where crm-rules has a {expected}"))
        elif name != key:
            foreign.append((name, f"crm-rules names it {key}"))
        elif kind == "table":
            have = {c.lower() for c in table_columns(conn, schema, name) or []}
            missing = [c for c in CORE_COLUMNS[key] if c not in have] if columns or key == "crm_meta" else []
            if missing:
                foreign.append((name, f"no column {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}"))
            elif key == "crm_meta":
                other = [r[0] for r in conn.execute(
                    f"SELECT key FROM {s}.crm_meta WHERE key IS NOT 'schema_version' "
                    f"OR NOT (typeof(value) = 'text' AND value <> '' AND value NOT GLOB '*[^0-9]*') LIMIT 4")]
                if other:
                    foreign.append((name, f"it holds {', '.join(map(repr, other[:3]))}"
                                          f"{', ...' if len(other) > 3 else ''}, not only crm-rules' schema_version"))
        elif kind == "index" and table.lower() != INDEX_TABLES[key]:
            foreign.append((name, f"an index on {table}"))
    listed = {name for name, _ in foreign}
    if found and not any(kind == "table" and name == "crm_runs" for kind, name, _ in found if name not in listed):
        foreign += [(name, "") for _, name, _ in found if name not in listed]  # no crm_runs of crm-rules next to them
    return foreign


def check_own_tables(conn: sqlite3.Connection, schema: str = "main", *, columns: bool = True) -> None:
    """Refuse to write results next to tables of the same names that crm-rules did not create (another program's
    crm_meta, say): writing would change them, or fail half-way with an SQL error.  Without ``columns``, the
    tables' columns are not looked at (only their names, crm_meta's rows and whether crm_runs is there)."""
    foreign = _foreign(conn, schema, columns)
    if not foreign:
        return
    names = [name for name, _ in foreign]
    one = len(names) == 1
    why = "; ".join(reason if one else f"{name}: {reason}" for name, reason in foreign if reason)
    if not all(reason for _, reason in foreign):  # no crm_runs of crm-rules next to them
        alone = f"there is no crm_runs table of crm-rules next to {'it' if one else 'them'}"
        why = f"{why}; {alone}" if why else alone
    raise DataError(f"{_file(conn, schema)}: {', '.join(names)} {'was' if one else 'were'} not created by crm-rules "
                    f"({why}); crm-rules keeps its runs in tables of {'this name' if one else 'these names'} and "
                    f"does not write into another program's",
                    hint=f"keep the runs in a separate file with --results-db (e.g. --results-db runs.db), or rename "
                         f"the table (ALTER TABLE {names[0]} RENAME TO ...): names that start with crm_ are "
                         f"crm-rules' own")


def check_writable(conn: sqlite3.Connection, schema: str = "main") -> None:
    """What a run checks before computing and again under its write lock: the results tables (if any) are
    crm-rules' own and have no triggers.  A trigger runs SQL of its own with every row a run writes; the run's
    authorizer refuses what it writes outside the results, so the run would fail at its very end."""
    check_own_tables(conn, schema)
    triggers = conn.execute(
        f"SELECT name, tbl_name FROM {q(schema)}.sqlite_master WHERE type = 'trigger' AND lower(tbl_name) IN "
        f"({', '.join('?' * len(TABLES))}) ORDER BY name", list(TABLES)).fetchall()
    if triggers:
        listed = ", ".join(f"{name} on {table}" for name, table in triggers)
        one = len(triggers) == 1
        drop = " ".join(f"DROP TRIGGER {q(name)};" for name, _ in triggers)
        raise DataError(f"{_file(conn, schema)}: {'trigger' if one else 'triggers'} {listed}: crm-rules does not "
                        f"write into results tables that have triggers; nothing was written",
                        hint=f"drop {'it' if one else 'them'} ({drop}) and act on new runs by reading crm_runs after "
                             f"apply, or keep the runs in another file with --results-db")


def ensure_schema(conn: sqlite3.Connection, schema: str = "main", *, writable: bool = False) -> None:
    """Create the results tables if missing, or migrate older ones (inside the caller's transaction).

    Tables of the same names that crm-rules did not create are refused, not written into (``check_own_tables``);
    ``writable``: a run about to write, which checks them fully, triggers too (``check_writable``, as it did
    before it computed)."""
    prefix = f"{q(schema)}."
    if writable:
        check_writable(conn, schema)
    else:
        check_own_tables(conn, schema, columns=False)
    existing = has_results(conn, schema)
    version = SCHEMA_VERSION
    if existing:
        version = stored_version(conn, schema)
        conn.execute(TABLES["crm_meta"].format(s=prefix))
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for view in REDEFINED_VIEWS.get(step, ()):
                conn.execute(f"DROP VIEW IF EXISTS {prefix}{q(view)}")
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
    have = {c.lower() for c in table_columns(conn, "main", "crm_runs") or []}
    missing = [c for c in CORE_COLUMNS["crm_runs"] if c not in have]
    if missing:  # another program's crm_runs: reading it would fail with an SQL error
        raise DataError(f"{db}: its table crm_runs was not created by crm-rules (it has no column "
                        f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})",
                        hint="give the database apply wrote the runs to (its --results-db)")
