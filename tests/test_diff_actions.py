"""`crm-rules diff` compares the actions too: an edit of an action's `when` or params moves no grade, and diff used
to say "no change" to exactly the edit a user ran it to preview."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_diff import diff_policies
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from small_db import make_db

# Tiers A (c1), B (c2) and C (c3-c6); review: the C customers below 20k (c4, c5, c6, who has no orders)
POLICY = """
metrics:
  revenue_12m: {{sum: amount, window: 12 months}}
tiers:
  levels:
    - {{id: A, when: "revenue_12m >= 100_000"}}
    - {{id: B, when: "revenue_12m >= 50_000"}}
    - {{id: C, default: true}}
actions:
  stars: {{use: upgrade_candidates, params: {{from_tiers: [B, C], to_tier: A, when: "{stars}", due_in_days: 14}}}}
  review: {{use: phase_out_review, params: {{tiers: [C], when: "revenue_12m < 20_000", due_in_days: {due}}}}}
{extra}"""

OLD_STARS = "revenue_12m >= 60_000"  # c2
NEW_STARS = "revenue_12m >= 30_000 and revenue_12m < 70_000"  # c3: c2 loses the action, c3 gains it


def _heading(out: str) -> str:
    """diff's heading line, as one line: it wraps to the terminal, its lines below indented."""
    lines = out.splitlines()
    rest = next((i for i, line in enumerate(lines[1:], 1) if not line.startswith("  ")), len(lines))
    return " ".join(" ".join(lines[:rest]).split())


def _write(tmp_path: Path, name: str, stars: str = OLD_STARS, due: int = 30, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(POLICY.format(stars=stars, due=due, extra=extra), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path) -> Path:
    return make_db(tmp_path / "actions.db", [(f"c{i}", f"customer {i}", "north") for i in range(1, 7)], [
        ("c1", "2026-03-01", 150_000.0), ("c2", "2026-03-01", 80_000.0), ("c3", "2026-03-01", 40_000.0),
        ("c4", "2026-03-01", 15_000.0), ("c5", "2025-10-01", 5_000.0)])


def _diff(db: Path, old: Path, new: Path, **kwargs) -> dict:
    return diff_policies(db, load_policy(old), load_policy(new), AS_OF, **kwargs)


UNCHANGED_REVIEW = {"old_customers": 3, "new_customers": 3, "gained": 0, "lost": 0, "rescheduled": 0}


def test_a_changed_action_condition_shows_who_gains_and_loses_the_action(tmp_path, db):
    result = _diff(db, _write(tmp_path, "old"), _write(tmp_path, "new", NEW_STARS), list_customers=True)
    assert result["customers"]["changed"]["any"] == 0 and result["movers"] == []  # no grade moves
    assert result["actions"]["changed"] == 2
    assert result["actions"]["by_action"] == {
        "phase_out_review": UNCHANGED_REVIEW,
        "upgrade_review": {"old_customers": 1, "new_customers": 1, "gained": 1, "lost": 1, "rescheduled": 0}}
    assert result["actions"]["customers"] == [
        {"customer_id": "c3", "customer_name": "customer 3", "action": "upgrade_review", "change": "gained",
         "priority": [None, 3], "due_date": [None, "2026-07-14"]},
        {"customer_id": "c2", "customer_name": "customer 2", "action": "upgrade_review", "change": "lost",
         "priority": [3, None], "due_date": ["2026-07-14", None]}]


def test_identical_policies_show_no_action_change(tmp_path, db, cli):
    old, same = _write(tmp_path, "old"), _write(tmp_path, "same")
    actions = _diff(db, old, same, list_customers=True)["actions"]
    assert actions == {"changed": 0, "customers": [], "by_action": {
        "phase_out_review": UNCHANGED_REVIEW,
        "upgrade_review": {"old_customers": 1, "new_customers": 1, "gained": 0, "lost": 0, "rescheduled": 0}}}
    out = cli("diff", "--db", db, old, same, "--as-of", AS_OF, "--customers", ok=True).output
    assert _heading(out).endswith("0 change tier, 0 stage, 0 service level, 0 actions")
    assert "Actions: no customer changes" in out
    assert "Customers per action" not in out and "Customers whose actions change" not in out


def test_a_changed_due_in_days_shows_as_rescheduled(tmp_path, db):
    """A change of due days or priority moves no customer in or out of the action, but changes when it is due."""
    result = _diff(db, _write(tmp_path, "old"), _write(tmp_path, "new", due=7), list_customers=True)
    assert result["actions"]["by_action"]["phase_out_review"] == {
        "old_customers": 3, "new_customers": 3, "gained": 0, "lost": 0, "rescheduled": 3}
    assert [(r["customer_id"], r["change"], r["priority"], r["due_date"]) for r in result["actions"]["customers"]] == [
        (cid, "rescheduled", [3, 3], ["2026-07-30", "2026-07-07"]) for cid in ("c4", "c5", "c6")]


def test_an_action_two_entries_give_one_customer_counts_once_at_its_earliest(tmp_path, db):
    """Two entries may generate the same action id for a customer: the customer has it, once, due at the earliest."""
    extra = "  review2: {use: phase_out_review, params: {tiers: [C], when: 'revenue_12m < 10_000', due_in_days: 7}}\n"
    result = _diff(db, _write(tmp_path, "old"), _write(tmp_path, "new", extra=extra), list_customers=True)
    assert result["actions"]["by_action"]["phase_out_review"] == {
        "old_customers": 3, "new_customers": 3, "gained": 0, "lost": 0, "rescheduled": 2}
    assert [(r["customer_id"], r["due_date"]) for r in result["actions"]["customers"]] == [
        ("c5", ["2026-07-30", "2026-07-07"]), ("c6", ["2026-07-30", "2026-07-07"])]


def test_cli_diff_prints_the_actions_and_their_customers(tmp_path, db, cli, columns):
    old, new = _write(tmp_path, "old"), _write(tmp_path, "new", NEW_STARS, due=7)
    columns(120)
    out = cli("diff", "--db", db, old, new, "--as-of", AS_OF, "--customers", ok=True).output
    assert _heading(out).endswith("0 change tier, 0 stage, 0 service level, 5 actions")
    table = out.split("Customers per action, old → new: 5 customers change\n")[1]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    assert rows[:2] == [["phase_out_review", "3", "3", "0", "0", "3"], ["upgrade_review", "1", "1", "1", "1", "0"]]
    listing = out.split("Customers whose actions change: 5\n")[1]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in listing.splitlines() if line.startswith("│")]
    assert rows == [["c4", "customer 4", "phase_out_review", "rescheduled", "3", "2026-07-30 → 2026-07-07"],
                    ["c5", "customer 5", "phase_out_review", "rescheduled", "3", "2026-07-30 → 2026-07-07"],
                    ["c6", "customer 6", "phase_out_review", "rescheduled", "3", "2026-07-30 → 2026-07-07"],
                    ["c3", "customer 3", "upgrade_review", "gains", "3", "2026-07-14"],
                    ["c2", "customer 2", "upgrade_review", "loses", "3", "2026-07-14"]]
    data = json.loads(cli("diff", "--db", db, old, new, "--as-of", AS_OF, "--json", ok=True).output)
    assert data["actions"]["changed"] == 5 and "customers" not in data["actions"]
    assert data["actions"]["by_action"]["upgrade_review"]["gained"] == 1


def test_cli_diff_actions_keep_ids_whole_when_narrow(tmp_path, db, cli, columns):
    """At 60 columns priority and due date give way (and are named), rather than break an action id or a date."""
    old, new = _write(tmp_path, "old"), _write(tmp_path, "new", NEW_STARS, due=7)
    columns(60)
    out = cli("diff", "--db", db, old, new, "--as-of", AS_OF, "--customers", ok=True).output
    listing = out.split("Customers whose actions change: 5\n")[1]
    assert "│ c4       │ phase_out_review │ rescheduled │" in listing
    assert "not shown: this terminal has 60 columns" in " ".join(listing.splitlines()[-2:])  # the note wraps
    assert all(len(date) == 10 for date in re.findall(r"20\d\d-[\d-]*", listing))  # no date broken either
    assert max(len(line) for line in out.splitlines() if line[:1] in "┏┃┡│└┌├") <= 60


def test_policies_without_actions_print_as_before(tmp_path, db, cli):
    plain = tmp_path / "plain.yaml"
    plain.write_text(POLICY.format(stars="", due=0, extra="").split("actions:")[0], encoding="utf-8")
    assert diff_policies(db, load_policy(plain), load_policy(plain), AS_OF)["actions"] == {"changed": 0, "by_action": {}}
    out = cli("diff", "--db", db, plain, plain, "--as-of", AS_OF, ok=True).output
    assert _heading(out).endswith("0 change tier, 0 stage, 0 service level") and "Actions" not in out


@pytest.mark.parametrize("separate", [False, True])
def test_diff_against_a_run_compares_the_actions_it_stored(tmp_path, db, separate):
    results = tmp_path / "results.db" if separate else None
    run_id = apply_policy(db, load_policy(_write(tmp_path, "old")), AS_OF, results_db=results).run_id
    new = _write(tmp_path, "new", NEW_STARS)
    against = diff_policies(db, None, load_policy(new), None, against_run=run_id, results_db=results,
                            list_customers=True)["actions"]
    assert against == _diff(db, _write(tmp_path, "old"), new, list_customers=True)["actions"]


def test_a_customer_new_since_the_run_gains_their_actions(tmp_path, db):
    run_id = apply_policy(db, load_policy(_write(tmp_path, "old")), AS_OF).run_id
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) "
                 "VALUES ('c7', 'customer 7', 'north', 'retail', '2026-01-01', 'someone', 10000)")
    conn.commit()
    conn.close()
    actions = diff_policies(db, None, load_policy(_write(tmp_path, "same")), None, against_run=run_id,
                            list_customers=True)["actions"]
    assert actions["by_action"]["phase_out_review"] == {"old_customers": 3, "new_customers": 4, "gained": 1, "lost": 0,
                                                        "rescheduled": 0}
    assert [(r["customer_id"], r["action"], r["change"]) for r in actions["customers"]] == [
        ("c7", "phase_out_review", "gained")]


def test_a_run_without_an_actions_table_is_not_compared_on_actions(tmp_path, db, cli):
    """Results written before crm-rules stored actions: every action would read as gained; say so instead."""
    results = tmp_path / "results.db"
    run_id = apply_policy(db, load_policy(_write(tmp_path, "old")), AS_OF, results_db=results).run_id
    conn = sqlite3.connect(results)
    conn.execute("DROP TABLE crm_actions")
    conn.commit()
    conn.close()
    new = _write(tmp_path, "new", NEW_STARS)
    result = diff_policies(db, None, load_policy(new), None, against_run=run_id, results_db=results)
    assert result["actions"] is None
    assert any("no actions table (crm_actions)" in note for note in result["notes"])
    out = cli("diff", "--db", db, new, "--against-run", run_id, "--results-db", results, ok=True).output
    assert _heading(out).endswith("0 change tier, 0 stage, 0 service level") and "actions are not compared" in out


def test_no_grade_change_is_said_in_a_line_not_an_empty_table(cli, demo_db):
    out = cli("diff", "--db", demo_db, "base", "base", "--as-of", "2026-06-30", "--customers", ok=True).output
    assert "Customers whose grades change: none" in out
