"""explain with overrides in force: the rules' own decision and the rules' own Pareto cut-offs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.explain import explain_customer
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from conftest import AS_OF


def _customers(db: Path) -> dict[str, str]:
    """A customer the rules put in C with the least revenue, one in C with the most, and one in B."""
    conn = sqlite3.connect(db)
    try:
        small, plain = [conn.execute(f"SELECT customer_id FROM crm_assignments WHERE run_id = 1 AND tier = 'C' "
                                     f"ORDER BY {order} LIMIT 1").fetchone()[0] for order in ("rowid", "rowid DESC")]
        b = conn.execute("SELECT customer_id FROM crm_assignments WHERE run_id = 1 AND tier = 'B' LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    return {"small": small, "plain": plain, "b": b}


@pytest.fixture
def overridden(demo_db, tmp_path) -> tuple[Path, Path, dict]:
    """Run 1 of base without overrides, run 2 with a C customer set to A and a B customer capped at C."""
    policy = load_policy("base")
    apply_policy(demo_db, policy, AS_OF)
    ids = _customers(demo_db)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(f"- {{customer: {ids['small']}, tier: A, reason: 战略合作, author: 李经理}}\n"
                         f"- {{customer: {ids['b']}, ceiling: C, reason: legal review, author: ops}}\n", encoding="utf-8")
    assert apply_policy(demo_db, policy, AS_OF, overrides=overrides).run_id == 2
    return demo_db, overrides, ids


def test_pareto_cut_offs_are_the_rules_own(overridden):
    """A small customer set to A must not lower "would be A if revenue_12m >= ..." for everyone else."""
    db, overrides, ids = overridden
    policy = load_policy("base")
    before = explain_customer(db, policy, ids["plain"], AS_OF, run_id=1)["why"]["tier"]["up"]
    assert before and all("would be" in s for s in before)
    assert explain_customer(db, policy, ids["plain"], None, run_id=2)["why"]["tier"]["up"] == before
    assert explain_customer(db, policy, ids["plain"], AS_OF, overrides, recompute=True)["why"]["tier"]["up"] == before


def test_an_overridden_customer_is_explained_by_the_rules_tier(overridden, cli):
    db, overrides, ids = overridden
    e = explain_customer(db, load_policy("base"), ids["small"], None, run_id=2)
    assert e["tier"]["id"] == "A" and e["tier"]["rule"] == "override" and e["override"]["rule_tier"] == "C"
    decided = [r["id"] for r in e["tier"]["rules"] if r["decided"]]
    assert decided == ["C"]  # the rule that gives the rules' tier, not A (no rule gave A)
    assert e["why"]["tier"]["because"].startswith("without the override, tier C")
    capped = explain_customer(db, load_policy("base"), ids["b"], None, run_id=2)
    assert [r["id"] for r in capped["tier"]["rules"] if r["decided"]] == ["B"]
    text = cli("explain", ids["small"], "--db", db, "-p", "base", "--run", "2", ok=True).output
    assert "Tier A (method pareto, set by the override; the rules alone give C):" in text
    assert "Without the override, tier C" in text


def test_a_run_without_overrides_still_marks_its_deciding_rule(overridden):
    db, _, ids = overridden
    e = explain_customer(db, load_policy("base"), ids["b"], None, run_id=1)
    assert e["override"] is None and [r["id"] for r in e["tier"]["rules"] if r["decided"]] == ["B"] == [e["tier"]["id"]]
    assert not e["why"]["tier"]["because"].startswith("without")


def test_runs_stored_with_the_old_cut_offs_are_recomputed(overridden):
    """Runs written before the cut-offs counted the rules' tiers (format 1) are computed again when they had
    overrides, and still explained from storage when they had none."""
    db, overrides, ids = overridden
    conn = sqlite3.connect(db)
    with conn:
        for (rid, counts) in conn.execute("SELECT run_id, counts FROM crm_runs").fetchall():
            counts = json.loads(counts)
            counts["explain"]["format"] = 1
            conn.execute("UPDATE crm_runs SET counts = ? WHERE run_id = ?", (json.dumps(counts), rid))
    conn.close()
    policy = load_policy("base")
    assert explain_customer(db, policy, ids["plain"], None, run_id=1)["source"]["path"] == "stored"  # no overrides
    e = explain_customer(db, policy, ids["plain"], AS_OF, overrides)
    assert e["source"]["path"] == "computed" and "counted its overridden customers" in e["source"]["text"]


def test_results_db_that_is_no_database(demo_db, tmp_path, cli):
    junk = tmp_path / "notes.db"
    junk.write_text("hello", encoding="utf-8")
    result = cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", junk)
    assert result.exit_code == 1
    assert f"error: {junk}: not a SQLite database" in result.output and "Traceback" not in result.output
