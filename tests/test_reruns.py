"""`runs` says which of several runs of one date and policy stands for the date, and which applied overrides.

A month-end re-run (new orders came in, or the board's overrides were applied) was listed as a row identical to
the first but for its id: same policy, hash, date and customers, with nothing to say which one crm_current and
`changes` take, nor that one of them had manual overrides.
"""

from __future__ import annotations

import json

from conftest import AS_OF
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy


def test_reruns_of_a_date_are_told_apart(cli, demo_db, tmp_path):
    policy = load_policy("base")
    apply_policy(demo_db, policy, "2026-05-31")
    apply_policy(demo_db, policy, AS_OF)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("- {customer: C000003, tier: A, reason: Board decision, author: 李经理}\n", encoding="utf-8")
    apply_policy(demo_db, policy, AS_OF, overrides=overrides)
    apply_policy(demo_db, policy, AS_OF)
    out = " ".join(cli("runs", "--db", demo_db, ok=True).output.split())
    assert (f"note: runs 2-4 grade {AS_OF} with the same policy (base, sha256 {policy.sha256[:12]}): run 4, the last "
            f"of them, is the one the other commands take for that date (crm_current, changes)") in out
    assert "run 3 set 1 customer(s)' tier by manual override" in out
    assert "runs 1" not in out  # 2026-05-31 was graded once
    listed = json.loads(cli("runs", "--db", demo_db, "--json", ok=True).stdout)
    assert [r["overrides"] for r in listed] == [0, 0, 1, 0]
    assert "counts" not in listed[0]


def test_one_run_per_date_has_no_note(cli, demo_db):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    apply_policy(demo_db, load_policy("vip_card"), AS_OF)  # another policy of the same date: not a re-run
    assert "note:" not in cli("runs", "--db", demo_db, ok=True).output


def test_changes_of_a_rerun_put_them_on_the_data(cli, demo_db):
    import sqlite3

    policy = load_policy("base")
    apply_policy(demo_db, policy, AS_OF)
    with sqlite3.connect(demo_db) as conn:
        conn.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) "
                     "VALUES ('C000003', '2026-06-20', 900000, 500000, 0)")
    apply_policy(demo_db, policy, AS_OF)
    out = " ".join(cli("changes", "--db", demo_db, ok=True).output.split())
    assert ("note: run 1 graded the same date with the same policy: what changed comes from the data changed since, "
            "or from manual overrides") in out


def test_changes_after_a_policy_edit_point_at_explain(cli, demo_db, tmp_path):
    from crm_rules.engine.policy_files import shipped_policies_dir

    edited = tmp_path / "base.yaml"
    text = (shipped_policies_dir() / "base.yaml").read_text(encoding="utf-8")
    edited.write_text(text.replace("up_to: 0.80", "up_to: 0.75"), encoding="utf-8")
    apply_policy(demo_db, load_policy("base"), "2026-05-31")
    apply_policy(demo_db, load_policy(edited), AS_OF)
    out = " ".join(cli("changes", "--db", demo_db, ok=True).output.split())
    assert "`crm-rules explain CUSTOMER_ID --run 2` says of a customer whether the edit or the data moved them" in out
    assert "graded the same date" not in out
