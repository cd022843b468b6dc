"""`explain` shows the values a rule read in the form the policy author thinks of them: a true/false test that
failed under a `not` with its value, and a count of days as a whole number."""

from __future__ import annotations

import json
import sqlite3

from conftest import AS_OF

POLICY = """\
name: values
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  account_age_days: {expr: "days_between(since, as_of())", label: Account age}
  revenue_k: {expr: "round(revenue_12m / 1000)"}
  big_buyer: {expr: "revenue_12m > 100000", label: Big buyer}
tiers:
  method: rules
  levels:
    - {id: A, when: "big_buyer and account_age_days > 100000"}
    - {id: B, when: "not big_buyer"}
    - {id: C, default: true}
"""


def _customer(db, tier: str) -> str:
    return sqlite3.connect(db).execute("SELECT min(customer_id) FROM crm_assignments WHERE tier = ?", (tier,)).fetchone()[0]


def test_a_failed_not_and_a_count_of_days(cli, demo_db, tmp_path):
    policy = tmp_path / "values.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    cli("apply", "--db", demo_db, "-p", policy, "--as-of", AS_OF, ok=True)
    big = _customer(demo_db, "C")  # a big buyer: B's `not big_buyer` fails with every test of it holding
    out = cli("explain", big, "--db", demo_db, "-p", policy, "--as-of", AS_OF, ok=True).output
    assert "  ✗ B (B): not big_buyer\n      with big_buyer = true\n" in out
    assert "would be B if not big_buyer (now big_buyer = true)" in out
    got = json.loads(cli("explain", big, "--db", demo_db, "-p", policy, "--as-of", AS_OF, "--json", ok=True).output)
    metrics = {m["name"]: m["value"] for m in got["metrics"]}
    assert isinstance(metrics["account_age_days"], int) and isinstance(metrics["revenue_k"], int)
    assert isinstance(metrics["revenue_12m"], float)  # an amount keeps its decimals
    age = f"{metrics['account_age_days']:,}"
    assert f" {age} │" in out and f"{age}.00" not in out
    small = _customer(demo_db, "B")
    out = cli("explain", small, "--db", demo_db, "-p", policy, "--as-of", AS_OF, ok=True).output
    assert "Tier B because not big_buyer (big_buyer = false)." in out
