"""Databases a run must not write into as they are, and databases it must read the user's way.

- another program's tables with a results table's name (``crm_meta``, ``crm_actions``): refused before
  anything is computed or written, naming the table and the fix, while results of every earlier
  crm-rules are still accepted;
- a damaged file (data or results): ``error: FILE: the database is damaged (...)`` with what to do, from
  ``apply`` and from every reader, and a ``failed`` row only where the results database is not the damaged one;
- a trigger on a results table: refused before computing, naming the trigger;
- tables named ``Customers`` and ``Orders``: found, SQLite's names being case-insensitive;
- the hint of a missing database names the option it came from;
- a read transaction left open on a rollback-journal database: the hint says so.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine import database, runner
from crm_rules.engine.database import connect, is_damage, open_for_run, table_columns
from crm_rules.engine.errors import DataError, RunError, UsageError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.results_store import CORE_COLUMNS, SCHEMA_VERSION, check_writable, ensure_schema
from crm_rules.engine.run_history import list_runs
from crm_rules.engine.runner import apply_policy
from test_mixed_ids_and_notes import REVENUE

AS_OF = "2026-06-30"
REV = "name: rev" + REVENUE  # one sum over orders, two tiers
DATA = ("CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id TEXT, order_date TEXT, amount REAL);"
        "INSERT INTO customers VALUES ('C1', 'Acme'), ('C2', 'Beta');"
        "INSERT INTO orders (customer_id, order_date, amount) VALUES ('C1', '2026-06-01', 100), ('C2', '2026-06-02', 5);")


@pytest.fixture
def policy(tmp_path) -> Path:
    path = tmp_path / "rev.yaml"
    path.write_text(REV, encoding="utf-8")
    return path


def make(path: Path, script: str = DATA) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def damage(path: Path, start: int = 8192, size: int = 12288) -> None:
    """Overwrite pages after the first (the schema stays readable, as in a half-failed disk)."""
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(b"\xff" * size)


def apply_cli(cli, db, policy, *more):
    return cli("apply", "--db", db, "--policy", policy, "--as-of", AS_OF, *more)


# ---- 1. tables of another program with a results table's name -------------------------------------------------


def test_apply_refuses_another_programs_crm_meta_and_changes_nothing(cli, tmp_path, policy):
    db = make(tmp_path / "meta.db", DATA + "CREATE TABLE crm_meta (key TEXT PRIMARY KEY, value TEXT);"
                                           "INSERT INTO crm_meta VALUES ('app_name', 'Acme CRM'), ('schema_version', '12');")
    before = digest(db)
    result = apply_cli(cli, db, policy)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {db}: crm_meta was not created by crm-rules (it holds 'app_name'" in result.output
    assert "hint: keep the runs in a separate file with --results-db" in result.output
    assert "rename the table (ALTER TABLE crm_meta RENAME TO ...)" in result.output
    assert digest(db) == before  # nothing written, not even an empty results table
    dry = apply_cli(cli, db, policy, "--dry-run")  # a dry run says what the run would say
    assert dry.exit_code == 1 and "crm_meta was not created by crm-rules" in dry.output
    # the fix the hint gives: the runs in a separate file; the user's crm_meta stays as it was
    separate = apply_cli(cli, db, policy, "--results-db", tmp_path / "runs.db")
    assert separate.exit_code == 0, separate.output
    assert digest(db) == before
    assert rows(tmp_path / "runs.db", "SELECT value FROM crm_meta") == [(str(SCHEMA_VERSION),)]


def test_apply_refuses_another_programs_crm_actions_before_computing(tmp_path, policy, monkeypatch):
    db = make(tmp_path / "act.db", DATA + "CREATE TABLE crm_actions (id, customer_id, note);")
    before = digest(db)
    monkeypatch.setattr(runner, "compute", lambda *a, **k: pytest.fail("computed although the run cannot be written"))
    with pytest.raises(DataError, match=r"act\.db: crm_actions was not created by crm-rules \(no column run_id, action, "
                                        r"category, \.\.\.\); crm-rules keeps its runs in tables of this name"):
        apply_policy(db, load_policy(policy), AS_OF)
    assert digest(db) == before


@pytest.mark.parametrize("script, named", [
    ("CREATE TABLE CRM_META (key TEXT PRIMARY KEY, value TEXT)", "CRM_META"),  # names are case-insensitive
    ("CREATE VIEW crm_runs AS SELECT 1 AS run_id", "crm_runs"),
    ("CREATE TABLE crm_current (x)", "crm_current"),
    ("CREATE TABLE notes (x); CREATE INDEX crm_actions_run ON notes (x)", "crm_actions_run"),
])
def test_every_kind_of_clash_is_found(tmp_path, policy, script, named):
    db = make(tmp_path / "clash.db", DATA + script)
    before = digest(db)
    with pytest.raises(DataError, match=rf"clash\.db: {named} was not created by crm-rules"):
        apply_policy(db, load_policy(policy), AS_OF)
    assert digest(db) == before


def test_a_clash_in_the_results_db_is_found_too(tmp_path, policy):
    data = make(tmp_path / "data.db")
    results = make(tmp_path / "res.db", "CREATE TABLE crm_errors (code INTEGER, text TEXT)")
    before = digest(results)
    with pytest.raises(DataError, match=r"res\.db: crm_errors was not created by crm-rules \(no column run_id"):
        apply_policy(data, load_policy(policy), AS_OF, results_db=results)
    assert digest(results) == before


# The results tables as crm-rules 1 (results schema 1) created them: no crm_actions, crm_errors, crm_metrics yet,
# crm_runs without plugins and metrics, the metric values as JSON in crm_assignments.metrics.
SCHEMA_1 = """
CREATE TABLE crm_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE crm_runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT, policy_name TEXT NOT NULL, policy_version TEXT,
    policy_sha256 TEXT NOT NULL, as_of TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')), customers INTEGER, counts TEXT,
    engine_version TEXT, source_db TEXT, error TEXT, notes TEXT);
CREATE TABLE crm_policies (sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, document TEXT NOT NULL);
CREATE TABLE crm_definitions (run_id INTEGER NOT NULL REFERENCES crm_runs(run_id),
    kind TEXT NOT NULL CHECK (kind IN ('tier', 'subgrade', 'stage', 'service_level', 'metric')), id TEXT NOT NULL,
    parent TEXT, label TEXT, position INTEGER NOT NULL, details TEXT, PRIMARY KEY (run_id, kind, id));
CREATE TABLE crm_assignments (run_id INTEGER NOT NULL REFERENCES crm_runs(run_id), customer_id NOT NULL,
    customer_name TEXT, tier TEXT NOT NULL, subgrade TEXT, stage TEXT, service_level TEXT, tier_rule TEXT,
    subgrade_rule TEXT, stage_rule TEXT, metrics TEXT, PRIMARY KEY (run_id, customer_id));
CREATE VIEW crm_current AS SELECT r.policy_name, r.as_of, a.* FROM crm_assignments AS a
    JOIN crm_runs AS r ON r.run_id = a.run_id WHERE a.run_id = (SELECT MAX(r2.run_id) FROM crm_runs AS r2
    WHERE r2.policy_name = r.policy_name AND r2.status = 'succeeded');
INSERT INTO crm_meta VALUES ('schema_version', '1');
INSERT INTO crm_runs (policy_name, policy_sha256, as_of, started_at, finished_at, status, customers)
    VALUES ('rev', 'abc', '2026-05-31', '2026-06-01T00:00:00+00:00', '2026-06-01T00:00:01+00:00', 'succeeded', 2);
INSERT INTO crm_assignments (run_id, customer_id, customer_name, tier, metrics)
    VALUES (1, 'C1', 'Acme', 'big', '{"revenue": 100}'), (1, 'C2', 'Beta', 'small', '{"revenue": 5}');
"""


@pytest.mark.parametrize("version", ["1", "before crm_meta", "2"])
def test_results_of_every_earlier_crm_rules_are_accepted(tmp_path, policy, version):
    script = DATA + SCHEMA_1
    if version == "before crm_meta":
        script = script.replace("INSERT INTO crm_meta VALUES ('schema_version', '1');", "DROP TABLE crm_meta;")
    if version == "2":  # schema 2 added crm_runs.plugins, crm_actions and crm_errors with their index
        script += ("ALTER TABLE crm_runs ADD COLUMN plugins TEXT; UPDATE crm_meta SET value = '2';"
                   "CREATE TABLE crm_actions (run_id INTEGER NOT NULL REFERENCES crm_runs(run_id), customer_id NOT NULL,"
                   " action TEXT NOT NULL, category TEXT NOT NULL, plugin TEXT NOT NULL, generator TEXT NOT NULL,"
                   " reason TEXT, details TEXT, priority INTEGER, due_date TEXT, owner TEXT);"
                   "CREATE TABLE crm_errors (run_id INTEGER NOT NULL REFERENCES crm_runs(run_id), customer_id,"
                   " plugin TEXT NOT NULL, entry TEXT NOT NULL, message TEXT NOT NULL);"
                   "CREATE INDEX crm_actions_run ON crm_actions(run_id, due_date);")
    db = make(tmp_path / "old.db", script)
    outcome = apply_policy(db, load_policy(policy), AS_OF)
    assert outcome.run_id == 2
    assert [(r["run_id"], r["status"]) for r in list_runs(db)] == [(1, "succeeded"), (2, "succeeded")]
    assert rows(db, "SELECT key, value FROM crm_meta") == [("schema_version", str(SCHEMA_VERSION))]


def test_the_core_columns_are_those_of_the_first_schema(tmp_path):
    """CORE_COLUMNS (today's definitions without what migrations added) were all there in schema 1."""
    db = make(tmp_path / "v1.db", SCHEMA_1)
    for table in ("crm_meta", "crm_runs", "crm_policies", "crm_definitions", "crm_assignments"):
        have = [r[1] for r in sqlite3.connect(db).execute(f"PRAGMA table_info({table})")]
        assert set(CORE_COLUMNS[table]) <= set(have), table
    assert CORE_COLUMNS["crm_metrics"] == ["run_id", "customer_id"]


def test_readers_refuse_another_programs_crm_runs(cli, tmp_path):
    db = make(tmp_path / "other.db", "CREATE TABLE crm_runs (id INTEGER PRIMARY KEY, started TEXT)")
    result = cli("runs", "--db", db)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (f"error: {db}: its table crm_runs was not created by crm-rules (it has no column run_id, policy_name, "
            f"policy_version, ...)") in result.output


def test_ensure_schema_never_replaces_another_programs_crm_meta(tmp_path):
    db = make(tmp_path / "m.db", "CREATE TABLE crm_meta (key TEXT PRIMARY KEY, value TEXT);"
                                 "INSERT INTO crm_meta VALUES ('schema_version', '12');")
    conn = connect(db)
    try:
        with pytest.raises(DataError, match="crm_meta was not created by crm-rules"):
            ensure_schema(conn)
    finally:
        conn.close()
    assert rows(db, "SELECT * FROM crm_meta") == [("schema_version", "12")]


# ---- 2. damaged databases ---------------------------------------------------------------------------------------

DAMAGED = "the database is damaged (database disk image is malformed)"


@pytest.fixture
def damaged_results(cli, tmp_path, policy) -> tuple[Path, Path]:
    data = make(tmp_path / "data.db")
    results = tmp_path / "res.db"
    assert apply_cli(cli, data, policy, "--results-db", results).exit_code == 0
    damage(results)
    return data, results


def test_apply_with_a_damaged_results_db_says_so(cli, damaged_results, policy):
    data, results = damaged_results
    before = digest(results)
    result = apply_cli(cli, data, policy, "--results-db", results)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {results}: {DAMAGED}" in result.output
    assert f'hint: check it with `sqlite3 {results} "PRAGMA integrity_check"`' in result.output
    assert "restore it from a backup" in result.output and ".recover" in result.output
    assert digest(results) == before  # nothing written into the damaged file, not even a failed row


@pytest.mark.parametrize("command", [
    ["runs"], ["history", "C1"], ["changes"], ["export"], ["actions"], ["prune", "--keep", "1"],
])
def test_every_reader_of_a_damaged_results_db_says_so(cli, damaged_results, command):
    _, results = damaged_results
    result = cli(*command, "--db", results)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"error: {results}: {DAMAGED}" in result.output


def test_report_on_a_damaged_results_db_says_so(cli, damaged_results, tmp_path):
    data, results = damaged_results
    result = cli("report", "--db", data, "--results-db", results, "--out", tmp_path / "r.html")
    assert result.exit_code == 1 and f"error: {results}: {DAMAGED}" in result.output
    assert not (tmp_path / "r.html").exists()


def bigger_data(path: Path) -> Path:
    """Enough orders that the damage below hits their pages, not the schema's."""
    conn = sqlite3.connect(path)
    conn.executescript(DATA)
    conn.executemany("INSERT INTO customers VALUES (?, ?)", [(f"K{i}", f"name {i}") for i in range(500)])
    conn.executemany("INSERT INTO orders (customer_id, order_date, amount) VALUES (?, '2026-05-01', ?)",
                     [(f"K{i % 500}", i) for i in range(5000)])
    conn.commit()
    conn.close()
    return path


def test_a_damaged_data_db_records_a_failed_run_in_the_separate_results_db(cli, tmp_path, policy):
    data = bigger_data(tmp_path / "data.db")
    results = tmp_path / "res.db"
    assert apply_cli(cli, data, policy, "--results-db", results).exit_code == 0
    damage(data, 4096 * 4, 4096 * 20)
    result = apply_cli(cli, data, policy, "--results-db", results)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: {data}: {DAMAGED}" in result.output
    assert rows(results, "SELECT run_id, status, error FROM crm_runs") == [
        (1, "succeeded", None), (2, "failed", f"{data}: {DAMAGED}")]


def test_a_damaged_data_db_that_holds_the_results_gets_no_failed_row(cli, tmp_path, policy):
    db = bigger_data(tmp_path / "crm.db")
    assert apply_cli(cli, db, policy).exit_code == 0
    damage(db, 4096 * 4, 4096 * 20)
    before = digest(db)
    result = apply_cli(cli, db, policy)
    assert result.exit_code == 1 and f"error: {db}: {DAMAGED}" in result.output
    assert digest(db) == before  # writing into a damaged file may spread the damage


def test_damage_a_worker_process_reports_names_the_source(tmp_path, policy, monkeypatch):
    """A worker's SQLite error comes back as its message alone (source_scans.wait_worker): still the message."""
    data = make(tmp_path / "data.db")
    results = tmp_path / "res.db"
    apply_policy(data, load_policy(policy), AS_OF, results_db=results)

    def worker_failed(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(runner, "run_scans", worker_failed)
    with pytest.raises(DataError) as info:
        apply_policy(data, load_policy(policy), AS_OF, results_db=results)
    assert info.value.message == f"{data}: {DAMAGED}"
    assert rows(results, "SELECT status FROM crm_runs ORDER BY run_id") == [("succeeded",), ("failed",)]


def test_the_damaged_file_of_two_is_named(damaged_results):
    data, results = damaged_results
    rc = open_for_run(data, results, write=False)
    try:
        rc.attach_results()
        with pytest.raises(DataError) as info:
            for _ in rc.conn.execute("SELECT * FROM results.crm_runs"):
                pass
        assert info.value.message == f"{results}: {DAMAGED}"
    finally:
        rc.close()


def test_real_errors_still_raise_as_they_are(tmp_path):
    conn = connect(make(tmp_path / "ok.db"))
    try:
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELEC 1")
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT ?", ())
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO customers VALUES ('C1', 'again')")
    finally:
        conn.close()
    assert not is_damage(sqlite3.DatabaseError("not authorized"))
    assert is_damage(sqlite3.DatabaseError("database disk image is malformed"))


def test_a_file_that_is_no_database_is_still_called_so(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"id,name\n" * 1000)
    with pytest.raises(DataError, match="junk.db: not a SQLite database"):
        connect(junk)


# ---- 3. triggers on results tables ------------------------------------------------------------------------------

AUDIT = ("CREATE TABLE audit (msg TEXT);"
         "CREATE TRIGGER crm_run_audit AFTER INSERT ON crm_runs BEGIN INSERT INTO audit VALUES ('run ' || new.run_id); END;")


def test_a_trigger_on_a_results_table_is_refused_before_computing(cli, tmp_path, policy, monkeypatch):
    db = make(tmp_path / "trg.db")
    assert apply_cli(cli, db, policy).exit_code == 0
    make(db, AUDIT)
    before = digest(db)
    result = apply_cli(cli, db, policy)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (f"error: {db}: trigger crm_run_audit on crm_runs: crm-rules does not write into results tables that "
            f"have triggers; nothing was written") in result.output
    assert 'hint: drop it (DROP TRIGGER "crm_run_audit";)' in result.output and "--results-db" in result.output
    assert digest(db) == before and rows(db, "SELECT * FROM audit") == []
    monkeypatch.setattr(runner, "compute", lambda *a, **k: pytest.fail("computed although the run cannot be written"))
    with pytest.raises(DataError, match="trigger crm_run_audit on crm_runs"):
        apply_policy(db, load_policy(policy), AS_OF)


def test_a_trigger_in_the_results_db_is_refused(tmp_path, policy):
    data = make(tmp_path / "data.db")
    results = tmp_path / "res.db"
    apply_policy(data, load_policy(policy), AS_OF, results_db=results)
    make(results, "CREATE TRIGGER crm_a BEFORE INSERT ON crm_actions BEGIN SELECT 1; END;"
                  "CREATE TRIGGER crm_b AFTER INSERT ON crm_assignments BEGIN SELECT 1; END;")
    with pytest.raises(DataError, match=r"res\.db: triggers crm_a on crm_actions, crm_b on crm_assignments"):
        apply_policy(data, load_policy(policy), AS_OF, results_db=results)


def test_a_trigger_made_while_the_run_computed_is_found_under_the_write_lock(tmp_path, policy, monkeypatch):
    db = make(tmp_path / "late.db")
    apply_policy(db, load_policy(policy), AS_OF)
    compute = runner.compute

    def compute_then_trigger(*args, **kwargs):
        computed = compute(*args, **kwargs)
        make(db, AUDIT)
        return computed

    monkeypatch.setattr(runner, "compute", compute_then_trigger)
    with pytest.raises(DataError, match="trigger crm_run_audit on crm_runs"):
        apply_policy(db, load_policy(policy), AS_OF)
    assert rows(db, "SELECT run_id, status FROM crm_runs") == [(1, "succeeded")]  # no failed row through the trigger
    assert rows(db, "SELECT * FROM audit") == []


def test_check_writable_passes_results_of_crm_rules(tmp_path, policy):
    db = make(tmp_path / "ok.db")
    apply_policy(db, load_policy(policy), AS_OF)
    conn = connect(db)
    try:
        check_writable(conn)
    finally:
        conn.close()


# ---- 4. table names in another case -----------------------------------------------------------------------------

MIXED = ("CREATE TABLE Customers (ID TEXT PRIMARY KEY, Name TEXT);"
         "CREATE TABLE Orders (Id INTEGER PRIMARY KEY, Customer_ID TEXT, Order_Date TEXT, Amount REAL);"
         "INSERT INTO Customers VALUES ('C1', 'Acme'), ('C2', 'Beta');"
         "INSERT INTO Orders (Customer_ID, Order_Date, Amount) VALUES ('C1', '2026-06-01', 100), ('C2', '2026-06-02', 5);")


def test_tables_named_in_another_case_are_found(cli, tmp_path, policy):
    mixed = make(tmp_path / "mixed.db", MIXED)
    conn = connect(mixed, mode="ro")
    try:
        assert table_columns(conn, "main", "customers") == ["ID", "Name"]
        assert table_columns(conn, "main", "ORDERS") == ["Id", "Customer_ID", "Order_Date", "Amount"]
        assert table_columns(conn, "main", "contracts") is None
    finally:
        conn.close()
    result = apply_cli(cli, mixed, policy)
    assert result.exit_code == 0, result.output
    lower = make(tmp_path / "lower.db")
    assert apply_cli(cli, lower, policy).exit_code == 0
    graded = "SELECT customer_id, customer_name, tier, tier_rule FROM crm_assignments ORDER BY customer_id"
    assert rows(mixed, graded) == rows(lower, graded) == [("C1", "Acme", "big", "big"), ("C2", "Beta", "small", "default")]
    explained = cli("explain", "C1", "--db", mixed, "--policy", policy, "--as-of", AS_OF, "--recompute")
    assert explained.exit_code == 0 and "Tier big because revenue >= 100" in explained.output


# ---- 5. the hint of a missing database names its option ---------------------------------------------------------


def test_a_missing_database_hint_names_the_option(tmp_path):
    with pytest.raises(UsageError, match="missing.db: database not found") as info:
        connect(tmp_path / "missing.db")
    assert info.value.hint == "check the --db path, or create one with `crm-rules demo`"
    with pytest.raises(UsageError, match="missing.db: database not found") as info:
        connect(tmp_path / "missing.db", option="--results-db")
    assert info.value.hint == "check the --results-db path"


def test_a_damaged_schema_is_damage_not_another_kind_of_file(tmp_path, policy):
    data = make(tmp_path / "data.db")
    results = make(tmp_path / "res.db", "CREATE TABLE t (x)")
    damage(results, 100, 4096 - 100)  # the first page after the file header: the schema itself
    with pytest.raises(DataError) as info:
        apply_policy(data, load_policy(policy), AS_OF, results_db=results)
    assert info.value.message == f"{results}: {DAMAGED}"  # not "not a SQLite database"


# ---- 6. a reader holding a rollback-journal database ------------------------------------------------------------


def test_a_read_transaction_left_open_is_named_in_the_hint(tmp_path, policy, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    db = make(tmp_path / "held.db")
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM customers LIMIT 1").fetchall()  # a shared lock of a rollback-journal database
    try:
        with pytest.raises(RunError, match="could not write the results to .*held.db: database is locked; nothing was written") as info:
            apply_policy(db, load_policy(policy), AS_OF)
        assert "keeps a read transaction open on it" in info.value.hint
        assert info.value.hint.startswith("another program is writing to the database, or ")
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert rows(db, "SELECT name FROM sqlite_master WHERE name LIKE 'crm%'") == []
    assert apply_policy(db, load_policy(policy), AS_OF).run_id == 1


def test_a_writer_on_a_wal_database_is_named_alone(tmp_path, policy, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    db = make(tmp_path / "wal.db")
    apply_policy(db, load_policy(policy), AS_OF)  # the first run switched the database to WAL
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RunError, match="database is locked") as info:
            apply_policy(db, load_policy(policy), AS_OF)
        assert info.value.hint == "another program is writing to the database; run again when it is done"
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_damage_met_while_reading_rows_is_reported_too(tmp_path):
    """Rows are read as they are iterated: damage behind the first ones shows in the loop, not in execute()."""
    db = bigger_data(tmp_path / "data.db")
    size = db.stat().st_size
    damage(db, size - 3 * 4096, 3 * 4096)  # the last pages: orders' last rows
    conn = connect(db, mode="ro")
    seen = 0
    try:
        with pytest.raises(DataError) as info:
            for _ in conn.execute("SELECT * FROM orders"):
                seen += 1
    finally:
        conn.close()
    assert seen > 0 and info.value.message == f"{db}: {DAMAGED}"


def test_another_programs_crm_meta_of_other_columns_is_refused_by_ensure_schema_too(tmp_path):
    db = make(tmp_path / "m.db", "CREATE TABLE crm_meta (setting TEXT, data BLOB)")
    conn = connect(db)
    try:
        with pytest.raises(DataError, match=r"crm_meta was not created by crm-rules \(no column key, value"):
            ensure_schema(conn)
    finally:
        conn.close()
