"""Crashes, concurrency, full disks and locks: a run is all or nothing, and the user's tables are never written."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import AS_OF, user_tables_digest
from crm_rules.engine import database
from crm_rules.engine.database import open_for_run, use_wal
from crm_rules.engine.demo_data import generate_demo_database
from crm_rules.engine.errors import PluginError, RunError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

APPLY = [sys.executable, "-m", "crm_rules.cli", "apply", "--policy", "base", "--as-of", AS_OF, "--db"]


def digest(db: Path, prefix: str) -> str:
    """Hash of the rows of the tables whose names start with ``prefix``."""
    conn = sqlite3.connect(db)
    h = hashlib.sha256()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if name.startswith(prefix):
            h.update(name.encode())
            for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()


def consistent(db: Path) -> list[int]:
    """Integrity holds and every succeeded run is complete; returns the succeeded run ids."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'crm_runs'").fetchone():
            return []
        customers = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
        runs = conn.execute("SELECT run_id, status FROM crm_runs ORDER BY run_id").fetchall()
        for run_id, status in runs:
            n = conn.execute("SELECT count(*) FROM crm_assignments WHERE run_id = ?", (run_id,)).fetchone()[0]
            assert n == (customers if status == "succeeded" else 0), (run_id, status, n)
        orphans = conn.execute("SELECT count(*) FROM crm_assignments WHERE run_id NOT IN (SELECT run_id FROM crm_runs)").fetchone()[0]
        assert orphans == 0
        return [r for r, s in runs if s == "succeeded"]
    finally:
        conn.close()


def test_run_connection_cannot_write_the_users_tables(demo_db):
    before = user_tables_digest(demo_db)
    rc = open_for_run(demo_db)
    try:
        for sql in ("DELETE FROM orders", "UPDATE customers SET name = 'x'", "INSERT INTO orders (id) VALUES (-1)",
                    "DROP TABLE orders", "CREATE TABLE evil (x)", "ALTER TABLE orders ADD COLUMN x",
                    "CREATE INDEX evil_i ON orders (amount)", "CREATE VIEW evil_v AS SELECT 1"):
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                rc.conn.execute(sql)
        rc.conn.execute("CREATE TABLE crm_scratch (x)")  # its own tables and temp tables are fine
        rc.conn.execute("CREATE TEMP TABLE scratch AS SELECT * FROM orders LIMIT 1")
        rc.conn.execute("DROP TABLE crm_scratch")
    finally:
        rc.close()
    assert user_tables_digest(demo_db) == before


def test_a_plugin_that_tries_to_write_is_stopped(tmp_path, demo_db):
    from crm_rules.engine import hookimpl
    from crm_rules.engine.plugin_api import Action, SqlActions
    from test_hooks import extra_plugin

    class Vandal:
        @hookimpl
        def crm_rules_register_actions(self, register):
            register("vandal", lambda ctx, params: SqlActions([Action("x", "1); DELETE FROM orders; --", "other", "'r'")]),
                     {"type": "object"})

    policy = tmp_path / "p.yaml"
    policy.write_text("tiers:\n  levels: [{id: A, default: true}]\nactions:\n  v: {use: vandal}\n")
    before = user_tables_digest(demo_db)
    with extra_plugin(Vandal(), "vandal"):
        with pytest.raises(PluginError, match="only execute one statement"):  # found when the policy compiles
            apply_policy(demo_db, load_policy(policy), AS_OF)
    assert user_tables_digest(demo_db) == before
    assert consistent(demo_db) == []


@pytest.fixture(scope="module")
def bigger_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "crm.db"
    generate_demo_database(path, customers=3000, seed=21)
    return path


def _env():
    env = dict(os.environ)
    env.pop("CRM_RULES_LOAD_PLUGINS", None)
    return env


def test_sigkill_at_random_points_leaves_all_or_nothing(tmp_path, bigger_db):
    db = tmp_path / "crm.db"
    db.write_bytes(bigger_db.read_bytes())
    started = time.monotonic()
    subprocess.run(APPLY + [str(db)], check=True, capture_output=True, env=_env())
    duration = time.monotonic() - started
    user_tables = user_tables_digest(db)
    rng = random.Random(4)
    complete = 1
    for _ in range(8):
        proc = subprocess.Popen(APPLY + [str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
        time.sleep(rng.uniform(0.05, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == 0:
            complete += 1
        runs = consistent(db)
        assert len(runs) >= complete
        complete = len(runs)
    assert user_tables_digest(db) == user_tables
    result = subprocess.run(APPLY + [str(db)], capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr
    assert len(consistent(db)) == complete + 1


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path, bigger_db):
    """A service manager stops a job with SIGTERM: no results, no worker left running, no temporary files."""
    db = tmp_path / "crm.db"
    db.write_bytes(bigger_db.read_bytes())
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = _env() | {"TMPDIR": str(scratch), "SQLITE_TMPDIR": str(scratch)}
    proc = subprocess.Popen(APPLY + [str(db)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(0.6)  # importing and loading the policy take about this long: the run is computing
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (143, 0), stderr  # 0 when the run was already done
    assert "Traceback" not in stderr
    assert consistent(db) == ([] if proc.returncode else [1])
    assert list(scratch.iterdir()) == []


def test_two_applies_at_once_both_complete_one_after_the_other(tmp_path, bigger_db):
    db = tmp_path / "crm.db"
    db.write_bytes(bigger_db.read_bytes())
    procs = [subprocess.Popen(APPLY + [str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert consistent(db) == [1, 2]


def test_readers_keep_reading_while_a_run_is_written(demo_db):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    reader = sqlite3.connect(demo_db, isolation_level=None)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM crm_runs").fetchone()[0] == 1  # a snapshot is now held
        apply_policy(demo_db, load_policy("base"), AS_OF)  # would wait for the reader in rollback-journal mode
        assert reader.execute("SELECT count(*) FROM crm_runs").fetchone()[0] == 1  # the reader's view is stable
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM crm_runs").fetchone()[0] == 2
    finally:
        reader.close()


def _patched_connection(monkeypatch, setup):
    import crm_rules.engine.runner as runner

    real = runner.open_for_run

    def patched(*args, **kwargs):
        rc = real(*args, **kwargs)
        setup(rc.conn)
        return rc

    monkeypatch.setattr(runner, "open_for_run", patched)


def test_disk_full_is_reported_and_loses_nothing(monkeypatch, demo_db):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    results = digest(demo_db, prefix="crm_assignments")

    def no_room(conn):
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    _patched_connection(monkeypatch, no_room)
    with pytest.raises(RunError) as info:
        apply_policy(demo_db, load_policy("base"), AS_OF)
    assert "database or disk is full" in str(info.value) and "free some space" in str(info.value)
    assert digest(demo_db, prefix="crm_assignments") == results  # the earlier run is intact, nothing half-written
    assert consistent(demo_db) == [1]


def test_a_full_temporary_folder_is_named_not_the_database(monkeypatch, demo_db, cli, tmp_path):
    """A run's work tables live in SQLite's temporary folder (/var/tmp by default), not beside the database: the
    hint said 'use --results-db on another disk', which changes nothing, and named no folder to free."""
    apply_policy(demo_db, load_policy("base"), AS_OF)
    results = digest(demo_db, prefix="crm_assignments")
    work = tmp_path / "sqlite-tmp"
    work.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(work))
    _patched_connection(monkeypatch, lambda conn: conn.execute("PRAGMA temp.max_page_count = 8"))
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert "error: the database could not compute the policy: database or disk is full" in result.output
    assert f"hint: a temporary folder's disk is full: a run keeps its work tables in {work} and its worker " \
           f"processes' files in " in result.output
    assert "set TMPDIR (and SQLITE_TMPDIR, when set) to a folder on a disk with room" in result.output
    assert "--results-db" not in result.output
    conn = sqlite3.connect(demo_db)  # nothing of the run but its failed row
    assert conn.execute("SELECT run_id, status FROM crm_runs ORDER BY run_id").fetchall() == [(1, "succeeded"), (2, "failed")]
    conn.close()
    assert digest(demo_db, prefix="crm_assignments") == results


def test_read_only_database_is_reported(monkeypatch, demo_db, cli):
    def read_only(conn):
        conn.execute("PRAGMA query_only = ON")

    _patched_connection(monkeypatch, read_only)
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert "attempt to write a readonly database" in result.output and "read-only; use --results-db" in result.output
    assert "Traceback" not in result.output


def _wal_database_alone(db: Path) -> None:
    """``db`` in WAL mode, as after a run, with no -wal or -shm file beside it (as after the last reader closed)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    assert not Path(f"{db}-shm").exists()


READ_ONLY_HINT = ("hint: the database is in WAL mode: reading it needs its crm.db-shm file in {folder}, which this "
                  "user cannot create or write; give the user write access to the folder (not necessarily to the "
                  "file), or let a user who can write it make a copy to read (sqlite3 {db} \"VACUUM INTO "
                  "'crm-copy.db'\": a copy is not in WAL mode, and reads from any folder)")


@pytest.mark.parametrize("command", [["runs"], ["apply", "-p", "base", "--as-of", AS_OF]])
def test_a_wal_database_in_a_folder_the_user_cannot_write_says_why_it_cannot_be_read(monkeypatch, demo_db, cli,
                                                                                     command):
    """SQLite answers 'attempt to write a readonly database' to a reader that cannot create the -shm file: the error
    had no hint, and apply's readers took it for the results' write error, whose --results-db does not help."""
    _wal_database_alone(demo_db)

    class NoSharedMemory(sqlite3.Cursor):  # what SQLite says when the -shm file cannot be created
        def execute(self, sql, *args):
            raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(sqlite3, "Cursor", NoSharedMemory)
    result = cli(command[0], "--db", demo_db, *command[1:])
    assert result.exit_code == 1
    assert f"error: {demo_db}: cannot read the database (attempt to write a readonly database)" in result.output
    assert READ_ONLY_HINT.format(folder=demo_db.parent, db=demo_db) in result.output


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a folder its user cannot write (not root)")
def test_a_wal_database_in_a_read_only_folder(demo_db, cli):
    _wal_database_alone(demo_db)
    demo_db.parent.chmod(0o555)
    try:
        result = cli("runs", "--db", demo_db)
    finally:
        demo_db.parent.chmod(0o755)
    assert result.exit_code == 1
    assert READ_ONLY_HINT.format(folder=demo_db.parent, db=demo_db) in result.output


def test_locked_database_is_reported(monkeypatch, demo_db, cli):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(demo_db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "locked" in result.output and "Traceback" not in result.output
    assert consistent(demo_db) == []


def test_switching_to_wal_waits_for_a_reader_instead_of_failing(tmp_path):
    # SQLite answers "locked" at once (no busy handler) when the switch meets another connection's lock;
    # two applies finishing together used to fail that way.
    db = tmp_path / "crm.db"
    sqlite3.connect(db).executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);").close()
    reader = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # holds the shared lock of a rollback-journal database
    releaser = threading.Timer(0.3, reader.execute, ("COMMIT",))
    releaser.start()
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        use_wal(writer, "main")
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        releaser.join()
        writer.close()
        reader.close()
