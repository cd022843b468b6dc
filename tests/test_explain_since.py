"""explain says what changed for the customer since the policy's previous run, and what made the move.

An analyst running a policy every month explained a customer whose tier changed and got why the customer is in B
now, nothing on what they were last month, nor whether a policy edit, new data or a manual override moved them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

SHIPPED_BASE = Path(str(shipped_policies_dir())) / "base.yaml"
EARLIER = "2026-03-31"


@pytest.fixture
def policy_file(tmp_path) -> Path:
    path = tmp_path / "base.yaml"
    shutil.copy(SHIPPED_BASE, path)
    return path


def explain(cli, db: Path, customer: str, *more: str) -> tuple[dict, str]:
    """(the JSON explanation, the text one) of the same command."""
    got = json.loads(cli("explain", customer, "--db", db, *more, "--json", ok=True).stdout)
    return got, cli("explain", customer, "--db", db, *more, ok=True).stdout


def moved(db: Path, run: int, before: int) -> list[tuple[str, str, str]]:
    """(customer, tier before, tier after) of the customers whose tier differs between two runs."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT a.customer_id, p.tier, a.tier FROM crm_assignments AS a JOIN crm_assignments AS p "
                            "ON p.customer_id = a.customer_id AND p.run_id = ? WHERE a.run_id = ? AND p.tier != a.tier "
                            "ORDER BY a.customer_id", (before, run)).fetchall()


def test_a_tier_change_is_explained_against_the_previous_run(cli, demo_db, policy_file):
    policy = load_policy(policy_file)
    apply_policy(demo_db, policy, EARLIER)
    apply_policy(demo_db, policy, AS_OF)
    customer, before, after = moved(demo_db, 2, 1)[0]
    got, text = explain(cli, demo_db, customer, "--run", "2")
    since = got["since"]
    assert since["run_id"] == 1 and since["as_of"] == EARLIER and not since["policy_changed"]
    assert {"grade": "tier", "before": before, "after": after} in since["changes"]
    assert any(m["name"] == "revenue_12m" for m in since["metrics"])  # the tier metric moved the customer
    assert f"Since run 1 (as of {EARLIER}): tier {before} → {after}" in text
    assert "revenue_12m: " in text.split("Metrics")[0]


def test_an_unchanged_customer_says_so(cli, demo_db, policy_file):
    policy = load_policy(policy_file)
    apply_policy(demo_db, policy, AS_OF)
    apply_policy(demo_db, policy, AS_OF)  # a re-run of the same date, the same data
    got, text = explain(cli, demo_db, "C000002", "--run", "2")
    assert got["since"]["changes"] == [] and got["since"]["same_date"]
    assert f"Since run 1 (as of {AS_OF}): no grade changed." in text


def test_the_first_run_has_nothing_to_compare_with(cli, demo_db, policy_file):
    apply_policy(demo_db, load_policy(policy_file), AS_OF)
    got, text = explain(cli, demo_db, "C000002", "--run", "1")
    assert got["since"] is None and "Since run" not in text


def test_a_threshold_edit_is_named_as_what_moved_the_tier(cli, demo_db, policy_file):
    apply_policy(demo_db, load_policy(policy_file), AS_OF)
    text = policy_file.read_text(encoding="utf-8")
    policy_file.write_text(text.replace('version: "1.0"', 'version: "1.1"').replace("up_to: 0.80", "up_to: 0.75"),
                           encoding="utf-8")
    apply_policy(demo_db, load_policy(policy_file), AS_OF)  # the same date: only the policy differs
    customer, before, after = moved(demo_db, 2, 1)[0]
    assert (before, after) == ("A", "B")
    got, text = explain(cli, demo_db, customer, "--run", "2")
    since = got["since"]
    assert since["policy_changed"] and since["tier_by_previous_rules"] == "A"
    assert (since["policy_version"], since["policy_version_now"]) == ("1.0", "1.1")
    assert since["metrics"] == []  # the same data: no value the rules read moved
    flat = " ".join(text.split())
    assert "the policy changed since that run (version 1.0, sha256" in flat
    assert "give tier A on this run's values: the policy change moved the tier" in flat


def test_a_move_the_data_made_under_an_edited_policy_is_put_on_the_data(cli, demo_db, policy_file):
    apply_policy(demo_db, load_policy(policy_file), EARLIER)
    text = policy_file.read_text(encoding="utf-8")
    policy_file.write_text(text.replace("Key account service", "Key account service (edited)"), encoding="utf-8")
    apply_policy(demo_db, load_policy(policy_file), AS_OF)  # an edit that grades no one differently
    customer, _, after = moved(demo_db, 2, 1)[0]
    got, text = explain(cli, demo_db, customer, "--run", "2")
    assert got["since"]["policy_changed"] and got["since"]["tier_by_previous_rules"] == after
    assert "the data moved the tier, not the policy change" in " ".join(text.split())


def test_new_orders_for_the_same_date_are_put_on_the_data(cli, demo_db, policy_file):
    policy = load_policy(policy_file)
    apply_policy(demo_db, policy, AS_OF)
    with sqlite3.connect(demo_db) as conn:
        conn.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) "
                     "VALUES ('C000003', '2026-06-20', 900000, 500000, 0)")
    apply_policy(demo_db, policy, AS_OF)
    got, text = explain(cli, demo_db, "C000003", "--run", "2")
    since = got["since"]
    assert since["same_date"] and not since["policy_changed"] and since["changes"]
    revenue = next(m for m in since["metrics"] if m["name"] == "revenue_12m")
    assert revenue["after"] - revenue["before"] == pytest.approx(900000)
    assert "the same policy graded the same date in that run: the data changed since" in " ".join(text.split())


def test_an_override_that_began_and_ended_is_said(cli, demo_db, policy_file, tmp_path):
    policy = load_policy(policy_file)
    apply_policy(demo_db, policy, AS_OF)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("- {customer: C000003, tier: A, reason: Board decision, author: 李经理}\n", encoding="utf-8")
    apply_policy(demo_db, policy, AS_OF, overrides=overrides)
    apply_policy(demo_db, policy, AS_OF)
    got, text = explain(cli, demo_db, "C000003", "--run", "2")
    assert got["since"]["override"] == "began" and got["since"]["tier_by_previous_rules"] is None
    assert "a manual override sets the tier now" in text
    got, text = explain(cli, demo_db, "C000003", "--run", "3")
    assert got["since"]["override"] == "ended"
    assert "a manual override set the tier in run 2; it has ended" in " ".join(text.split())


def test_grades_computed_now_are_compared_with_the_latest_run_before_their_date(cli, demo_db, policy_file, tmp_path):
    policy = load_policy(policy_file)
    apply_policy(demo_db, policy, EARLIER)
    apply_policy(demo_db, policy, "2026-09-30")  # after the date explained: not what its grades follow
    elsewhere = tmp_path / "june.db"  # June's grades, to find a customer who moved since March
    apply_policy(demo_db, policy, AS_OF, results_db=elsewhere)
    with sqlite3.connect(demo_db) as conn:
        conn.execute("ATTACH ? AS june", (str(elsewhere),))
        customer, before, after = conn.execute(
            "SELECT p.customer_id, p.tier, a.tier FROM crm_assignments AS p JOIN june.crm_assignments AS a "
            "USING (customer_id) WHERE p.run_id = 1 AND a.tier != p.tier ORDER BY 1 LIMIT 1").fetchone()
    got, text = explain(cli, demo_db, customer, "-p", policy_file, "--as-of", AS_OF)
    assert got["source"]["path"] == "computed" and got["since"]["run_id"] == 1
    assert {"grade": "tier", "before": before, "after": after} in got["since"]["changes"]
    assert f"Since run 1 (as of {EARLIER}): tier {before} → {after}" in text


def test_a_results_database_is_compared_in_itself(cli, demo_db, policy_file, tmp_path):
    results = tmp_path / "results.db"
    policy = load_policy(policy_file)
    apply_policy(demo_db, policy, EARLIER, results_db=results)
    apply_policy(demo_db, policy, AS_OF, results_db=results)
    customer, before, after = moved(results, 2, 1)[0]
    got, text = explain(cli, demo_db, customer, "--run", "2", "--results-db", results)
    assert got["since"]["run_id"] == 1 and {"grade": "tier", "before": before, "after": after} in got["since"]["changes"]
