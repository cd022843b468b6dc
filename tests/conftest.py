"""Shared fixtures: demo databases in tmp_path and a CLI runner."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import crm_rules.cli
from crm_rules.cli import app
from crm_rules.engine.demo_data import DEMO_AS_OF, generate_demo_database
from crm_rules.engine.run_metrics import RunMetrics

TESTS = Path(__file__).parent


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory):
    """The tests' own user cache (grammar tables, checked schemas), not the developer's."""
    from crm_rules.engine import user_cache

    os.environ[user_cache.ENV] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """A small demo database generated once; tests get copies."""
    path = tmp_path_factory.mktemp("demo") / "crm.db"
    generate_demo_database(path, customers=300, seed=11)
    return path


@pytest.fixture
def demo_db(demo_template, tmp_path) -> Path:
    target = tmp_path / "crm.db"
    shutil.copy(demo_template, target)
    return target


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str, ok: bool | None = None):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if ok is True:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def user_tables_digest(path: Path) -> str:
    """Digest of every non-crm_ table's rows: proves the user's data was not touched."""
    conn = sqlite3.connect(path)
    h = hashlib.sha256()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'crm_%' AND name NOT LIKE 'sqlite_%' ORDER BY name"):
        for row in conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
            h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()


AS_OF = DEMO_AS_OF


def stored_metrics(db: Path, run_id: int | None = None) -> dict:
    """customer id -> {metric: value} of one run (default: the newest), as the run stored them in crm_metrics."""
    conn = sqlite3.connect(db)
    try:
        if run_id is None:
            run_id = conn.execute("SELECT max(run_id) FROM crm_runs WHERE status = 'succeeded'").fetchone()[0]
        stored = RunMetrics.of_run(conn, run_id)
        return {r[0]: dict(zip(stored.names, r[1:])) for r in conn.execute(
            f"SELECT a.customer_id{stored.select()} FROM crm_assignments AS a{stored.join()} WHERE a.run_id = ?", (run_id,))}
    finally:
        conn.close()


@pytest.fixture
def columns(monkeypatch):
    """Set the width of the CLI's consoles, as a terminal (or the 80 columns rich assumes for a pipe) would."""
    def set_width(n: int) -> None:
        monkeypatch.setattr(crm_rules.cli.console, "width", n)
        monkeypatch.setattr(crm_rules.cli.err_console, "width", n)
    return set_width
