"""A results database (apply --results-db) left out, or given where the runs are in --db.

Runs are numbered per database, so `explain C1 --db crm.db -p vip_card --run 1`, meant for run 1 of results.db,
found run 1 of crm.db, of policy base, and said "give --policy base": as if the id were right and the policy wrong.
Every command that reads runs now names the database it looked in, and says how to give the runs' own database
when what it has is another policy's run, no run of the policy, or an id it never gave.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF, file_digest
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy


@pytest.fixture(scope="module")
def both(demo_template, tmp_path_factory):
    """crm.db with its own run 1 (base); results.db with run 1 of vip_card and run 2 of retail_rfm."""
    folder = tmp_path_factory.mktemp("mixups")
    db, results = folder / "crm.db", folder / "results.db"
    shutil.copy(demo_template, db)
    assert apply_policy(db, load_policy("base"), AS_OF).run_id == 1
    assert apply_policy(db, load_policy("vip_card"), AS_OF, results_db=results).run_id == 1
    assert apply_policy(db, load_policy("retail_rfm"), AS_OF, results_db=results).run_id == 2
    return db, results


@pytest.fixture
def files(both):
    """The two files, which no command here may change."""
    before = {path: file_digest(path) for path in both}
    yield both
    assert {path: file_digest(path) for path in both} == before


def _said(result) -> str:
    return " ".join(result.output.split())  # (wrapped lines)


def test_explain_without_the_results_database_says_where_the_policy_has_no_runs(cli, files):
    db, _ = files
    result = cli("explain", "C000002", "--db", db, "-p", "vip_card", "--run", "1")
    assert result.exit_code == 2
    assert f"error: run 1 in {db} is a run of policy 'base', not 'vip_card'" in result.stderr
    assert (f"hint: {db} has no successful run of policy 'vip_card': if apply wrote its runs with --results-db FILE, "
            f"add --results-db FILE; to explain run 1 of {db}, leave out --policy (the run stored its policy)"
            in result.stderr)
    assert "give --policy base" not in result.output


def test_explain_with_the_results_database_where_the_runs_are_in_db(cli, files):
    db, results = files
    result = cli("explain", "C000002", "--db", db, "-p", "base", "--run", "1", "--results-db", results)
    assert result.exit_code == 2
    assert f"error: run 1 in {results} is a run of policy 'vip_card', not 'base'" in result.stderr
    assert (f"hint: {results} has no successful run of policy 'base', but {db} has run 1 of it: leave out "
            f"--results-db to read it; to explain run 1 of {results}, leave out --policy" in result.stderr)


def test_explain_of_two_policies_in_one_results_database_names_the_runs_of_the_policy(cli, files):
    db, results = files
    result = cli("explain", "C000002", "--db", db, "-p", "vip_card", "--run", "2", "--results-db", results)
    assert result.exit_code == 2
    assert f"error: run 2 in {results} is a run of policy 'retail_rfm', not 'vip_card'" in result.stderr
    assert f"hint: {results} has run 1 of policy 'vip_card'; to explain run 2 of {results}" in result.stderr


def test_explain_says_which_database_answered(cli, files):
    db, results = files
    assert f"from run 1 in {db} (finished" in _said(cli("explain", "C000002", "--db", db, "--run", "1", ok=True))
    assert f"from run 1 in {results} (finished" in _said(
        cli("explain", "C000002", "--db", db, "--run", "1", "--results-db", results, ok=True))
    computed = _said(cli("explain", "C000002", "--db", db, "-p", "vip_card", "--as-of", AS_OF, ok=True))
    assert f"computed now: no succeeded run of policy vip_card (sha256 " in computed
    assert f"as of {AS_OF} is stored in {db}" in computed


@pytest.mark.parametrize("command", ["runs", "changes", "prune --keep 1", "history C000002"])
def test_a_policy_without_runs_here_says_how_to_give_the_results_database(cli, files, command):
    db, _ = files
    name, *rest = command.split()
    result = cli(name, *rest, "--db", db, "--policy", "vip_card")
    assert result.exit_code == 2
    assert f"error: {db}: no runs of policy 'vip_card'" in result.stderr
    assert ("hint: policies with runs here: base; if apply wrote the runs of 'vip_card' with --results-db FILE, give "
            "FILE as --db" in result.stderr)


def test_report_without_the_results_database(cli, files, tmp_path):
    db, _ = files
    out = tmp_path / "r.html"
    named = cli("report", "--db", db, "--out", out, "--run", "1", "--policy", "vip_card")
    assert named.exit_code == 2
    assert f"error: run 1 in {db} is a run of policy 'base', not 'vip_card'" in named.stderr
    assert "if apply wrote its runs with --results-db FILE, add --results-db FILE" in named.stderr
    latest = cli("report", "--db", db, "--out", out, "--policy", "vip_card")
    assert latest.exit_code == 2
    assert (f"error: no successful run found for policy 'vip_card' in {db}\n  hint: policies with successful runs "
            f"here: base; if apply wrote the runs of 'vip_card' with --results-db FILE, add --results-db FILE"
            in latest.stderr)
    assert not out.exists()


@pytest.mark.parametrize("command", ["export", "actions", "changes"])
def test_an_id_the_database_never_gave(cli, files, command):
    db, _ = files
    result = cli(command, "--db", db, "--run", "2")
    assert result.exit_code == 2
    assert (f"error: run 2 not found in {db}\n  hint: recent runs: 1; {db} never had a run 2: if apply wrote it with "
            f"--results-db FILE, give FILE as --db" in result.stderr)


def test_a_run_of_another_data_database(cli, files, tmp_path):
    """A results database serves several data databases (crm_runs.source_db): the run's explanation needs its own."""
    db, results = files
    other = tmp_path / "other.db"
    shutil.copy(db, other)
    result = cli("explain", "C000002", "--db", other, "--run", "1", "--results-db", results)
    assert result.exit_code == 2
    assert (f"error: run 1 in {results} graded {db}, not {other}: an explanation of it reads the customers of the "
            f"database it graded\n  hint: give --db {db}; or, to explain from {other} as it is now instead, replace "
            f"--run with --recompute --as-of {AS_OF}\n") in result.stderr
    moved = tmp_path / "moved.db"  # a copy whose run graded a file that is gone
    shutil.copy(results, moved)
    with sqlite3.connect(moved) as conn:
        conn.execute("UPDATE crm_runs SET source_db = ? WHERE run_id = 1", (str(tmp_path / "gone.db"),))
    conn.close()
    result = cli("explain", "C000002", "--db", other, "--run", "1", "--results-db", moved)
    assert result.exit_code == 2
    assert (f"hint: {tmp_path / 'gone.db'} is no longer there; to explain from {other} as it is now instead, replace "
            f"--run with --recompute --as-of {AS_OF}\n") in result.stderr


@pytest.mark.parametrize("swapped", [False, True], ids=["results as --db", "the two swapped"])
def test_apply_with_a_results_database_as_db_records_no_failed_run(cli, files, swapped):
    """The mix-up was recorded as a failed run (in the results database, or in the --results-db given): later
    exports and reports then noted it as the latest run, failed."""
    db, results = files
    result = cli("apply", "--db", results, "-p", "base", "--as-of", AS_OF, *(["--results-db", db] if swapped else []))
    assert result.exit_code == 2
    assert f"error: the database {results} has no customers table 'customers'" in result.stderr
    assert f"give the database with your customers as --db (its runs graded {db}), and this one as --results-db" \
        in result.stderr


# ---- a results database that cannot be written: refused before the run computes, naming the file ----


def test_a_read_only_results_database_is_refused_before_computing(cli, demo_db, tmp_path):
    results = tmp_path / "results.db"
    apply_policy(demo_db, load_policy("base"), AS_OF, results_db=results)
    results.chmod(0o444)  # (the mode bits count for root too, as for an --out file)
    before = {path: file_digest(path) for path in (demo_db, results)}
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", results)
    assert result.exit_code == 1
    assert (f"error: {results} is read-only; nothing was written\n  hint: make it writable (chmod u+w {results}), or "
            f"give another --results-db\n") in result.stderr
    assert {path: file_digest(path) for path in (demo_db, results)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.db", "results.db"]  # no -wal or -shm left
    assert cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", results, "--dry-run",
               ok=True).exit_code == 0  # a dry run writes nothing: nothing to refuse
    results.chmod(0o644)


def test_a_read_only_data_database_without_results_db_says_to_give_one(cli, demo_db):
    demo_db.chmod(0o444)
    before = file_digest(demo_db)
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    demo_db.chmod(0o644)
    assert result.exit_code == 1
    assert (f"error: {demo_db} is read-only; nothing was written\n  hint: make it writable (chmod u+w {demo_db}), or "
            f"write the runs to another database with --results-db FILE\n") in result.stderr
    assert file_digest(demo_db) == before


def test_a_new_results_database_in_a_folder_this_user_cannot_write(cli, demo_db, tmp_path, monkeypatch):
    import os

    folder = tmp_path / "shared"
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == folder else real(path, mode))
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", folder / "results.db")
    assert result.exit_code == 1
    assert (f"error: --results-db {folder / 'results.db'}: cannot create it in {folder}, which this user cannot "
            f"write; nothing was written\n  hint: make the folder writable, or give another --results-db in a "
            f"folder you can write\n") in result.stderr
    assert list(folder.iterdir()) == []


def test_a_write_that_fails_names_the_results_database(cli, demo_db, tmp_path, monkeypatch):
    """What the checks before the run cannot see (a folder made read-only while it computed, say) fails as it
    writes: the message named no file, and its hint said to use --results-db where one was given."""
    from crm_rules.engine import database

    results = tmp_path / "results.db"
    apply_policy(demo_db, load_policy("base"), AS_OF, results_db=results)
    real = database.file_uri
    monkeypatch.setattr(database, "file_uri", lambda path, mode: real(path, "ro" if path == results else mode))
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", results)
    assert result.exit_code == 1
    assert (f"error: could not write the results to {results}: attempt to write a readonly database; nothing was "
            f"written\n  hint: the --results-db file or its folder is read-only; make them writable, or give another "
            f"--results-db\n") in result.stderr


def test_diff_against_a_run_of_another_data_database_says_so(cli, files, tmp_path):
    db, results = files
    other = tmp_path / "other.db"
    shutil.copy(db, other)
    args = ["diff", "vip_card", "--against-run", "1", "--results-db", results, "--json"]
    note = (f"run 1 graded {db} and the new policy grades {other}: customers in only one of them count as absent "
            f"on the other side, and the others' grades change with their data as well as with the policy")
    assert note in json.loads(cli(*args, "--db", other, ok=True).stdout)["notes"]
    assert not any("graded" in n for n in json.loads(cli(*args, "--db", db, ok=True).stdout)["notes"])


def test_export_and_report_name_the_policy_and_the_database_of_the_run_they_wrote(cli, files, tmp_path):
    """Without --results-db, the latest run is crm.db's own: 'run 1' alone did not say it was not results.db's."""
    db, results = files
    csv_out, page = tmp_path / "grades.csv", tmp_path / "report.html"
    exported = cli("export", "--db", db, "--out", csv_out, ok=True)
    assert f"exported 300 customers of run 1 (policy base) of {db} to {csv_out}" in exported.stderr
    assert f"exported 300 customers of run 2 (policy retail_rfm) of {results} to {csv_out}" in cli(
        "export", "--db", results, "--out", csv_out, ok=True).stderr
    report = cli("report", "--db", db, "--out", page, ok=True)
    assert f"report written to {page} (300 customers, run 1 of policy base in {db})" in report.output
    report = cli("report", "--db", db, "--results-db", results, "--out", page, ok=True)
    assert f"report written to {page} (300 customers, run 2 of policy retail_rfm in {results})" in report.output


def test_a_results_database_without_runs(cli, files, tmp_path):
    """Another program's database (or a new, empty file) given as --results-db: explain named no file."""
    db, _ = files
    other = tmp_path / "app.db"
    sqlite3.connect(other).execute("CREATE TABLE t (a)").connection.close()
    computed = _said(cli("explain", "C000002", "--db", db, "-p", "base", "--as-of", AS_OF, "--results-db", other,
                         ok=True))
    assert f"computed now: {other} has no stored runs" in computed
    named = cli("explain", "C000002", "--db", db, "--run", "1", "--results-db", other)
    assert named.exit_code == 2
    assert (f"error: run 1 not found: {other} has no stored runs\n  hint: {db} has runs of its own: leave out "
            f"--results-db to read them, or give as --results-db the database apply wrote the runs to\n"
            in named.stderr)
    none = cli("explain", "C000002", "--db", other, "--run", "1")
    assert none.exit_code == 2
    assert (f"error: run 1 not found: {other} has no stored runs\n  hint: if apply wrote the runs with --results-db "
            f"FILE, add --results-db FILE\n" in none.stderr)
