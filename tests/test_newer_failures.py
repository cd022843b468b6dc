"""A command that shows the latest successful run says so on stderr when a newer run failed.

Last night's run failed: `changes`, `export`, `actions` and `report` without --run show yesterday's run, and
used to say nothing about it.  The note goes to stderr, so a script reading the JSON or CSV gets it unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from crm_rules.engine.errors import RunError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.run_history import changes
from crm_rules.engine.runner import apply_policy
from small_db import make_db
from test_history import LOYALTY, LOYALTY_FAILING, ORDERS, VALID

NOTE = ("note: run 3 of policy loyalty as of 2026-07-01 failed; this is run 2 (as of 2026-06-30), the latest "
        "successful run; `crm-rules runs --db {db} --policy loyalty` says why")


def fail(db: Path, tmp_path: Path, as_of: str, name: str = "loyalty") -> None:
    path = tmp_path / f"failing_{name}.yaml"
    path.write_text(LOYALTY_FAILING.replace("name: loyalty", f"name: {name}"), encoding="utf-8")
    with pytest.raises(RunError):
        apply_policy(db, load_policy(path), as_of)


@pytest.fixture
def runs_db(tmp_path) -> Path:
    """Runs 1 (2025-12-31) and 2 (2026-06-30) of loyalty succeeded."""
    db = make_db(tmp_path / "runs.db", [(c, c.upper(), "华东") for c in "abcdfghz"], orders=ORDERS)
    policy_file = tmp_path / "loyalty.yaml"
    policy_file.write_text(LOYALTY, encoding="utf-8")
    policy = load_policy(policy_file)
    assert apply_policy(db, policy, "2025-12-31").run_id == 1
    assert apply_policy(db, policy, "2026-06-30").run_id == 2
    return db


@pytest.fixture
def failed_last(runs_db, tmp_path) -> Path:
    """And run 3 of loyalty, as of 2026-07-01, failed."""
    fail(runs_db, tmp_path, "2026-07-01")
    return runs_db


def test_changes_notes_the_newer_failed_run_on_stderr(cli, failed_last):
    result = cli("changes", "--db", failed_last, ok=True)
    assert NOTE.format(db=failed_last) in result.stderr
    assert "note: run 3" not in result.stdout


def test_changes_json_on_stdout_is_unchanged(cli, failed_last):
    result = cli("changes", "--db", failed_last, "--json", ok=True)
    assert json.loads(result.stdout) == changes(failed_last)
    assert NOTE.format(db=failed_last) in result.stderr


def test_changes_of_the_policy_notes_it_too(cli, failed_last):
    result = cli("changes", "--db", failed_last, "--policy", "loyalty", ok=True)
    assert NOTE.format(db=failed_last) in result.stderr


def test_export_csv_on_stdout_is_unchanged_and_the_note_on_stderr(cli, failed_last):
    result = cli("export", "--db", failed_last, ok=True)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["run_id"] for r in rows} == {"2"} and len(rows) == 8
    assert NOTE.format(db=failed_last) in result.stderr


def test_export_to_a_file_notes_it(cli, failed_last, tmp_path):
    result = cli("export", "--db", failed_last, "--out", tmp_path / "grades.json", ok=True)
    assert NOTE.format(db=failed_last) in result.stderr
    assert json.loads((tmp_path / "grades.json").read_text(encoding="utf-8"))["run"]["run_id"] == 2


def test_actions_json_notes_it_on_stderr(cli, failed_last):
    result = cli("actions", "--db", failed_last, "--json", ok=True)
    out = json.loads(result.stdout)
    assert (out["run_id"], out["policy_name"], out["as_of"], out["actions"]) == (2, "loyalty", "2026-06-30", [])
    assert NOTE.format(db=failed_last) in result.stderr


def test_report_notes_it(cli, failed_last, tmp_path):
    result = cli("report", "--db", failed_last, "--out", tmp_path / "report.html", ok=True)
    assert NOTE.format(db=failed_last) in result.stderr


def test_a_named_run_gets_no_note(cli, failed_last):
    for args in (("changes",), ("export",), ("actions",)):
        result = cli(*args, "--db", failed_last, "--run", "2", ok=True)
        assert result.stderr == ""


def test_no_failed_run_no_note(cli, runs_db):
    assert cli("changes", "--db", runs_db, ok=True).stderr == ""
    assert cli("export", "--db", runs_db, ok=True).stderr == ""


def test_a_failed_backfill_is_no_newer_run(cli, runs_db, tmp_path):
    fail(runs_db, tmp_path, "2026-01-31")  # run 3, before the latest date: it would not have been shown either
    assert cli("changes", "--db", runs_db, ok=True).stderr == ""


def test_a_later_successful_run_of_the_same_date_hides_the_failure(cli, failed_last, tmp_path):
    policy_file = tmp_path / "loyalty.yaml"
    assert apply_policy(failed_last, load_policy(policy_file), "2026-07-01").run_id == 4
    assert cli("changes", "--db", failed_last, ok=True).stderr == ""


def test_several_failed_runs_are_counted_and_the_latest_named(cli, failed_last, tmp_path):
    fail(failed_last, tmp_path, "2026-07-02")
    result = cli("export", "--db", failed_last, ok=True)
    assert ("note: 2 later runs failed, the latest: run 4 of policy loyalty as of 2026-07-02; this is run 2 "
            "(as of 2026-06-30), the latest successful run") in result.stderr


def test_another_policys_failure_is_not_noted_for_a_policy(cli, runs_db, tmp_path):
    assert apply_policy(runs_db, load_policy(VALID / "minimal.yaml"), "2025-12-31").run_id == 3
    fail(runs_db, tmp_path, "2026-07-01", name="minimal")
    assert cli("changes", "--db", runs_db, "--policy", "loyalty", ok=True).stderr == ""
    # without --policy the latest successful run of any policy is shown, and the failure would have been it
    assert "note: run 4 of policy minimal as of 2026-07-01 failed" in cli("changes", "--db", runs_db, ok=True).stderr
