"""A run id that is not there: every command that takes one names the database it looked in and its runs.

`changes --run 99` said only "run 99 not found": with the runs in a --results-db, or a few databases
about, the user could not tell whether the id or the database was wrong.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

WITH_RUN = {
    "changes": ["changes", "--db", "{db}", "--run", "99"],
    "export": ["export", "--db", "{db}", "--run", "99"],
    "report": ["report", "--db", "{db}", "--run", "99", "--out", "{out}"],
    "actions": ["actions", "--db", "{db}", "--run", "99"],
    "explain": ["explain", "C000002", "--db", "{db}", "--run", "99"],
    "diff": ["diff", "--db", "{db}", "--against-run", "99", "vip_card"],
}


@pytest.fixture
def one_run(demo_db) -> Path:
    apply_policy(demo_db, load_policy("base"), AS_OF)
    return demo_db


@pytest.mark.parametrize("args", WITH_RUN.values(), ids=WITH_RUN.keys())
def test_an_unknown_run_names_the_database_and_its_runs(cli, one_run, tmp_path, args):
    result = cli(*(a.format(db=one_run, out=tmp_path / "r.html") for a in args))
    assert result.exit_code == 2
    # an id the database never gave is another database's: how this command is given the runs' own database
    given = "add --results-db FILE" if args[0] in ("explain", "diff", "report") else "give FILE as --db"
    assert (f"error: run 99 not found in {one_run}\n  hint: recent runs: 1; {one_run} never had a run 99: if apply "
            f"wrote it with --results-db FILE, {given}\n") in result.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("args", [WITH_RUN["explain"], WITH_RUN["diff"]], ids=["explain", "diff"])
def test_with_a_results_database_it_is_the_one_named(cli, demo_db, tmp_path, args):
    results = tmp_path / "results.db"
    apply_policy(demo_db, load_policy("base"), AS_OF, results_db=results)
    result = cli(*(a.format(db=demo_db) for a in args), "--results-db", results)
    assert result.exit_code == 2
    assert f"error: run 99 not found in {results}\n  hint: recent runs: 1\n" in result.stderr


def _failed_runs(db: Path, n: int) -> None:
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO crm_runs (policy_name, policy_sha256, as_of, started_at, status, error) "
                     "VALUES ('base', 'x', ?, 'now', 'failed', 'disk full')", [(AS_OF,)] * n)
    conn.commit()
    conn.close()


def test_many_runs_name_the_latest_ten_and_the_command_that_lists_them_all(cli, one_run):
    _failed_runs(one_run, 11)
    result = cli("changes", "--db", one_run, "--run", "99")
    assert result.exit_code == 2
    assert (f"hint: recent runs: 12, 11, 10, 9, 8, 7, 6, 5, 4, 3 (`crm-rules runs --db {one_run}` lists them all)"
            in result.stderr.replace("\n   ", ""))


def test_no_successful_run_names_the_database(cli, one_run):
    conn = sqlite3.connect(one_run)
    conn.execute("UPDATE crm_runs SET status = 'failed', error = 'disk full'")
    conn.commit()
    conn.close()
    result = cli("export", "--db", one_run)
    assert result.exit_code == 2
    assert f"error: no successful run found in {one_run}" in result.stderr
    assert f"`crm-rules runs --db {one_run}` lists its runs and why they failed" in result.stderr.replace("\n   ", "")
