"""After `prune`, the oldest run kept is not called its policy's first run: prune records what it deleted.

Runs 1 (2025-06-30), 2 (2025-12-31) and 3 (2026-06-30) of the loyalty policy of test_history.py; `prune --keep 1`
deletes 1 and 2 and records them in crm_pruned_runs, so that `changes`, `history` and the report say that run 3
has earlier runs, pruned, instead of calling it the first.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.errors import RunError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.run_history import changes, prune
from crm_rules.engine.runner import apply_policy
from small_db import make_db, rows
from test_history import LOYALTY, LOYALTY_FAILING, ORDERS, VALID, execute

FIRST = "is the first successful run of policy"


@pytest.fixture
def policy_file(tmp_path) -> Path:
    path = tmp_path / "loyalty.yaml"
    path.write_text(LOYALTY, encoding="utf-8")
    return path


@pytest.fixture
def three_runs(tmp_path, policy_file) -> Path:
    db = make_db(tmp_path / "runs.db", [(c, c.upper(), "华东") for c in "abcdfghz"], orders=ORDERS)
    policy = load_policy(policy_file)
    for run_id, as_of in enumerate(("2025-06-30", "2025-12-31", "2026-06-30"), start=1):
        assert apply_policy(db, policy, as_of).run_id == run_id
    return db


@pytest.fixture
def pruned(three_runs) -> Path:
    assert prune(three_runs, keep=1)["deleted_runs"] == [1, 2]
    return three_runs


def test_prune_records_each_run_it_deletes(pruned):
    assert rows(pruned, "SELECT run_id, policy_name, as_of, status FROM crm_pruned_runs ORDER BY run_id") == [
        (1, "loyalty", "2025-06-30", "succeeded"), (2, "loyalty", "2025-12-31", "succeeded")]
    [(at,)] = rows(pruned, "SELECT DISTINCT pruned_at FROM crm_pruned_runs")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", at)


def test_prune_records_the_failed_runs_it_deletes_too(three_runs, tmp_path):
    failing = tmp_path / "failing.yaml"
    failing.write_text(LOYALTY_FAILING, encoding="utf-8")
    with pytest.raises(RunError):
        apply_policy(three_runs, load_policy(failing), "2025-09-30")  # run 4, dated before the run kept
    prune(three_runs, keep=1)
    assert rows(three_runs, "SELECT run_id, status FROM crm_pruned_runs ORDER BY run_id") == [
        (1, "succeeded"), (2, "succeeded"), (4, "failed")]


def test_a_dry_run_records_nothing(three_runs):
    prune(three_runs, keep=1, dry_run=True)
    assert rows(three_runs, "SELECT count(*) FROM crm_pruned_runs") == [(0,)]


def test_cli_changes_of_the_oldest_kept_run_says_earlier_runs_were_pruned(cli, pruned):
    out = " ".join(cli("changes", "--db", pruned, ok=True).output.split())  # the lines as printed, wrapped
    assert ("run 3 (loyalty as of 2026-06-30) has no earlier run kept: 2 successful runs of policy loyalty before it "
            "were pruned; there is nothing to compare it with") in out
    assert FIRST not in out


def test_changes_json_counts_the_pruned_runs(cli, pruned):
    got = json.loads(cli("changes", "--db", pruned, "--json", ok=True).stdout)
    assert got["previous_run_id"] is None and got["pruned_runs"] == 2
    assert got == changes(pruned)


def test_a_first_run_is_still_the_first(cli, three_runs):
    out = " ".join(cli("changes", "--db", three_runs, "--run", "1", ok=True).output.split())  # wrapped lines
    assert "run 1 (loyalty as of 2025-06-30) is the first successful run of policy loyalty" in out
    assert changes(three_runs, run_id=1)["pruned_runs"] == 0


def test_pruning_another_policy_leaves_this_ones_first_run_first(cli, three_runs):
    minimal = load_policy(VALID / "minimal.yaml")
    apply_policy(three_runs, minimal, "2025-12-31")  # 4
    apply_policy(three_runs, minimal, "2026-06-30")  # 5
    prune(three_runs, keep=1, policy="minimal")
    assert FIRST in " ".join(cli("changes", "--db", three_runs, "--run", "1", ok=True).output.split())
    assert "has no earlier run kept: 1 successful run of policy minimal before it was pruned" in \
        " ".join(cli("changes", "--db", three_runs, "--run", "5", ok=True).output.split())


def test_a_backfill_before_the_pruned_runs_notes_them_between(cli, pruned, policy_file):
    assert apply_policy(pruned, load_policy(policy_file), "2025-03-31").run_id == 4  # older than runs 1 and 2
    c = changes(pruned, run_id=3)
    assert c["previous_run_id"] == 4 and c["pruned_runs"] == 2
    out = " ".join(cli("changes", "--db", pruned, "--run", "3", ok=True).output.split())  # wrapped lines
    assert "note: 2 successful runs of policy loyalty between the two were pruned; these changes include theirs" in out
    assert changes(pruned, run_id=4)["pruned_runs"] == 0  # nothing was pruned before the backfill


def test_cli_history_says_earlier_runs_were_pruned(cli, pruned):
    out = " ".join(cli("history", "a", "--db", pruned, ok=True).output.split())  # the note wraps to the terminal
    assert ("note: 2 successful runs of policy loyalty before run 3 (as of 2026-06-30) were pruned: this history may "
            "have begun earlier") in out


def test_cli_history_json_counts_them(cli, pruned):
    got = json.loads(cli("history", "a", "--db", pruned, "--json", ok=True).stdout)
    assert got["pruned_runs"] == {"loyalty": 2} and [r["run_id"] for r in got["history"]] == [3]


def test_history_without_pruning_has_no_note(cli, three_runs):
    assert "pruned" not in cli("history", "a", "--db", three_runs, ok=True).output


def test_report_card_and_transitions_say_earlier_runs_were_pruned(cli, pruned, tmp_path):
    out = tmp_path / "report.html"
    cli("report", "--db", pruned, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert "no earlier run kept (2 pruned)" in html and "first run of this policy" not in html
    assert ("Run #3 has no earlier run of policy <b>loyalty</b> kept in this database: 2 earlier successful runs of "
            "it were pruned") in html
    assert FIRST not in html


def test_results_of_schema_6_read_as_never_pruned_and_prune_adds_the_table(cli, three_runs):
    execute(three_runs, "DROP TABLE crm_pruned_runs", "UPDATE crm_meta SET value = '6' WHERE key = 'schema_version'")
    assert FIRST in cli("changes", "--db", three_runs, "--run", "1", ok=True).output
    assert changes(three_runs)["pruned_runs"] == 0
    prune(three_runs, keep=1)
    assert rows(three_runs, "SELECT run_id FROM crm_pruned_runs ORDER BY run_id") == [(1,), (2,)]
    assert "has no earlier run kept" in cli("changes", "--db", three_runs, ok=True).output
    conn = sqlite3.connect(three_runs)
    assert conn.execute("SELECT value FROM crm_meta WHERE key = 'schema_version'").fetchone() == ("7",)
    conn.close()


@pytest.mark.parametrize("command", [["changes"], ["export"], ["actions"], ["report", "--out", "r.html"]])
def test_a_pruned_run_asked_for_by_id_is_said_to_be_pruned(cli, pruned, tmp_path, command):
    """A run id from last month's log: "run 2 not found" left the analyst wondering whether the id was mistyped."""
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    out = [str(tmp_path / a) if a == "r.html" else a for a in command]
    result = cli(*out, "--db", pruned, "--run", "2")
    assert result.exit_code == 2
    assert (f"error: run 2 (a run of policy 'loyalty' as of 2025-12-31) was deleted from {pruned} by "
            f"`crm-rules prune` on {today}"
            in result.stderr)
    assert "hint: recent runs: 3" in result.stderr
    unknown = cli(*out, "--db", pruned, "--run", "9")
    assert unknown.exit_code == 2 and f"error: run 9 not found in {pruned}" in unknown.stderr


def test_explain_of_a_pruned_run_says_it_was_pruned(cli, pruned, policy_file):
    result = cli("explain", "a", "--db", pruned, "-p", policy_file, "--run", "1")
    assert result.exit_code == 2
    assert f"run 1 (a run of policy 'loyalty' as of 2025-06-30) was deleted from {pruned} by" in result.stderr


def test_a_pruned_failed_run_is_called_failed(cli, three_runs, tmp_path):
    failing = tmp_path / "failing.yaml"
    failing.write_text(LOYALTY_FAILING, encoding="utf-8")
    with pytest.raises(RunError):
        apply_policy(three_runs, load_policy(failing), "2025-09-30")  # run 4
    prune(three_runs, keep=1)
    result = cli("changes", "--db", three_runs, "--run", "4")
    assert f"run 4 (a failed run of policy 'loyalty' as of 2025-09-30) was deleted from {three_runs} by" in result.stderr
