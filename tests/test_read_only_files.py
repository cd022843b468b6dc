"""Commands that only read a database leave its folder as they found it: no -wal/-shm files, the same bytes.

``apply`` leaves the database in WAL mode, and a read-only SQLite connection to a WAL database creates
``crm.db-wal`` and ``crm.db-shm`` without being able to remove them (engine/wal_tidy.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF, file_digest
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy


def _close_cleanly(db: Path) -> None:
    """What SQLite does when the last connection that may write closes: the -wal/-shm files go."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA schema_version").fetchone()
    conn.close()


def _folder(path: Path) -> dict[str, str]:
    return {p.name: file_digest(p) for p in sorted(path.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def runs_template(tmp_path_factory, demo_template) -> Path:
    """A demo database with two runs of base (so `changes` has a run before) in WAL mode, as apply leaves it."""
    db = tmp_path_factory.mktemp("ro") / "crm.db"
    db.write_bytes(demo_template.read_bytes())
    for _ in range(2):
        apply_policy(db, load_policy("base"), AS_OF)
    _close_cleanly(db)
    return db


@pytest.fixture
def wal_db(runs_template, tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "crm.db"
    db.write_bytes(runs_template.read_bytes())
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # what makes SQLite create the files
    conn.close()
    for name in ("crm.db-wal", "crm.db-shm"):  # that read-only connection just left them: the bug itself
        (folder / name).unlink()
    return db


READ_ONLY = {
    "runs": ["runs", "--db", "{db}"],
    "explain computed": ["explain", "C000002", "--db", "{db}", "-p", "base", "--as-of", AS_OF, "--recompute"],
    "explain stored": ["explain", "C000002", "--db", "{db}", "--run", "1"],
    "explain unknown customer": ["explain", "C999999", "--db", "{db}", "-p", "base", "--as-of", AS_OF],
    "history": ["history", "C000002", "--db", "{db}"],
    "changes": ["changes", "--db", "{db}"],
    "changes of a run that is not there": ["changes", "--db", "{db}", "--run", "99"],
    "export": ["export", "--db", "{db}", "--format", "csv", "--out", "{out}/grades.csv"],
    "report": ["report", "--db", "{db}", "--out", "{out}/report.html"],
    "actions": ["actions", "--db", "{db}"],
    "diff": ["diff", "--db", "{db}", "base", "vip_card", "--as-of", AS_OF],
    "diff against a run": ["diff", "--db", "{db}", "--against-run", "1", "vip_card"],
    "analyze": ["analyze", "--db", "{db}", "-p", "base", "--as-of", AS_OF],
    "validate": ["validate", "base", "--db", "{db}"],
    "prune --dry-run": ["prune", "--db", "{db}", "--keep", "1", "--dry-run"],
    "apply --dry-run": ["apply", "--db", "{db}", "-p", "base", "--as-of", AS_OF, "--dry-run"],
    "import refused": ["import", "{out}/customers.csv", "--db", "{db}", "--table", "customers"],  # it exists
}


@pytest.mark.parametrize("args", READ_ONLY.values(), ids=READ_ONLY.keys())
def test_a_read_only_command_leaves_no_files_and_the_same_bytes(cli, wal_db, tmp_path, args):
    out = tmp_path / "out"
    out.mkdir()
    (out / "customers.csv").write_text("customer_id,name\nC1,Ann\n")
    before = _folder(wal_db.parent)
    result = cli(*(a.format(db=wal_db, out=out) for a in args))
    assert result.exit_code in (0, 2), result.output  # an unknown customer or run, a refused import: usage errors
    assert _folder(wal_db.parent) == before, result.output


def test_reading_a_separate_results_database_leaves_no_files(cli, demo_db, tmp_path):
    results = tmp_path / "runs" / "results.db"
    results.parent.mkdir()
    apply_policy(demo_db, load_policy("base"), AS_OF, results_db=results)
    _close_cleanly(results)
    before = _folder(results.parent), file_digest(demo_db)
    cli("explain", "C000002", "--db", demo_db, "--results-db", results, "-p", "base", "--as-of", AS_OF, ok=True)
    cli("diff", "--db", demo_db, "--against-run", "1", "--results-db", results, "vip_card", ok=True)
    cli("runs", "--db", results, ok=True)
    assert (_folder(results.parent), file_digest(demo_db)) == before


def test_files_another_program_has_open_stay_and_it_keeps_reading(cli, wal_db):
    other = sqlite3.connect(wal_db, isolation_level=None)
    try:
        other.execute("BEGIN")
        runs = other.execute("SELECT count(*) FROM crm_runs").fetchone()[0]
        cli("runs", "--db", wal_db, ok=True)
        cli("export", "--db", wal_db, "--format", "json", ok=True)
        assert (wal_db.parent / "crm.db-wal").exists() and (wal_db.parent / "crm.db-shm").exists()
        assert other.execute("SELECT count(*) FROM crm_runs").fetchone()[0] == runs
        other.execute("COMMIT")
    finally:
        other.close()
    assert sorted(p.name for p in wal_db.parent.iterdir()) == ["crm.db"]  # its own close removed them


def test_files_that_were_there_before_are_left_as_they_were(cli, wal_db):
    reader = sqlite3.connect(f"file:{wal_db}?mode=ro", uri=True)
    reader.execute("SELECT 1 FROM crm_runs").fetchone()
    reader.close()
    before = _folder(wal_db.parent)
    assert {"crm.db-wal", "crm.db-shm"} <= set(before)  # what an older crm-rules (or another reader) left
    cli("history", "C000002", "--db", wal_db, ok=True)
    assert _folder(wal_db.parent) == before


def test_demo_leaves_no_files_beside_its_database(cli, tmp_path):
    folder = tmp_path / "demo"
    cli("demo", "--dir", folder, "--customers", "50", ok=True)
    assert not (folder / "crm.db-wal").exists() and not (folder / "crm.db-shm").exists()
