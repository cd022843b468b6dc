"""More of `crm-rules diff` and `crm-rules analyze`: hit_policy unique, account managers, revenue metrics, errors per side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.demo_data import generate_demo_database
from crm_rules.engine.errors import DataError, RunError
from crm_rules.engine.policy_diff import diff_policies
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.rule_analysis import analyze_policy
from crm_rules.engine.runner import apply_policy
from small_db import make_db

ROOT = Path(__file__).parent.parent


def _write(tmp_path: Path, name: str, text: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


@pytest.fixture
def db(tmp_path) -> Path:
    # revenue in the last 12 months: 600k, 300k, 250k, 160k, 40k, none; c1-c3 in the north
    return make_db(tmp_path / "more.db", [("c1", "一号客户", "north"), ("c2", "two", "north"), ("c3", "three", "north"),
                                          ("c4", "four", "south"), ("c5", "five", "south"), ("c6", "six", "south")], [
        ("c1", "2026-03-01", 600_000.0), ("c2", "2026-03-01", 300_000.0), ("c3", "2026-03-01", 250_000.0),
        ("c4", "2026-03-01", 160_000.0), ("c5", "2026-03-01", 40_000.0),
        ("c1", "2024-03-01", 100_000.0)])


# ---- analyze: hit_policy unique ------------------------------------------------------

UNIQUE = """
metrics:
  revenue_12m: {sum: amount, window: 12 months}
tiers:
  hit_policy: unique
  levels:
    - {id: gold, when: "revenue_12m >= 150_000 and revenue_12m < 500_000"}
    - {id: silver, when: "revenue_12m >= 200_000"}
    - {id: bronze, default: true}
"""


def test_analyze_runs_on_a_unique_policy_whose_tier_rules_overlap(tmp_path, db):
    policy = _write(tmp_path, "unique", UNIQUE)
    with pytest.raises(RunError, match="hit policy unique"):  # what analyze is there to explain
        apply_policy(db, policy, AS_OF, dry_run=True)
    result = analyze_policy(db, policy, AS_OF)
    assert result["hit_policy"] == "unique" and result["customers"] == 6
    # c2 (300k) and c3 (250k) meet gold and silver: apply stops on them
    assert result["unique_conflicts"] == {"customers": 2, "pairs": [{"rules": ["gold", "silver"], "customers": 2,
                                                                      "example": "c2"}]}
    (table,) = result["threshold_tables"]
    assert [(o["rules"], o["intervals"], o["problem"]) for o in table["overlaps"]] == [
        (["gold", "silver"], ["[200000, 500000)"], True)]
    assert "apply stops" in table["overlaps"][0]["message"]
    tiers = {e["id"]: (e["matched"], e["decided"]) for e in result["rules"] if e["list"] == "tiers"}
    assert tiers == {"gold": (3, 3), "silver": (3, 1), "bronze": (None, 2)}  # as first hit would grade them
    assert any("2 customer(s) match more than one tier rule, so apply stops" in n for n in result["notes"])


def test_analyze_unique_without_overlaps_on_the_data(tmp_path, db):
    exclusive = UNIQUE.replace('"revenue_12m >= 200_000"', '"revenue_12m >= 500_000"')
    result = analyze_policy(db, _write(tmp_path, "exclusive", exclusive), AS_OF)
    assert result["unique_conflicts"] == {"customers": 0, "pairs": []}
    assert not any("more than one tier rule" in n for n in result["notes"])
    first = analyze_policy(db, _write(tmp_path, "first", UNIQUE.replace("unique", "first")), AS_OF)
    assert first["hit_policy"] == "first" and first["unique_conflicts"] is None


def test_analyze_unique_counts_overlaps_of_any_condition_on_the_data(tmp_path, db):
    # not intervals of one metric: the static analysis cannot see the overlap, the data can
    policy = _write(tmp_path, "mixed", """
metrics:
  revenue_12m: {sum: amount, window: 12 months}
tiers:
  hit_policy: unique
  levels:
    - {id: big, when: "revenue_12m >= 200_000"}
    - {id: northern, when: "region = 'north'"}
    - {id: rich, when: "revenue_12m >= 500_000 or region = 'south' and revenue_12m >= 150_000"}
    - {id: rest, default: true}
""")
    result = analyze_policy(db, policy, AS_OF)
    assert result["unique_conflicts"] == {"customers": 3, "pairs": [
        {"rules": ["big", "northern"], "customers": 3, "example": "c1"},
        {"rules": ["big", "rich"], "customers": 1, "example": "c1"},
        {"rules": ["northern", "rich"], "customers": 1, "example": "c1"}]}
    assert {e["id"] for e in result["not_analysed"]} == {"northern", "rich"}


def test_cli_analyze_unique_reports_the_overlaps_and_exits_0(cli, tmp_path, db):
    path = tmp_path / "unique.yaml"
    path.write_text(UNIQUE, encoding="utf-8")
    result = cli("analyze", "--db", db, "--policy", path, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # the lines as printed, wrapped to the terminal's width
    assert "2 customer(s) match more than one tier rule (hit_policy unique: apply stops on them)" in out
    assert "'gold' and 'silver': 2 customer(s), e.g. c2" in out
    assert "first hit leaves it" not in out  # no rule takes values from another under unique
    assert "hit_policy unique: apply stops on a customer there" in out
    data = json.loads(cli("analyze", "--db", db, "--policy", path, "--as-of", AS_OF, "--json", ok=True).output)
    assert data["unique_conflicts"]["customers"] == 2
    applied = cli("apply", "--db", db, "--policy", path, "--as-of", AS_OF, "--dry-run")
    assert applied.exit_code == 1 and "2 customer(s) match more than one rule" in applied.output


# ---- analyze: whole numbers and values that are never empty -------------------------------

def test_analyze_count_with_default_null_is_still_whole_numbers(tmp_path, db):
    policy = _write(tmp_path, "counts", """
metrics:
  orders_12m: {count: orders, window: 12 months, default: null}
tiers:
  levels:
    - {id: many, when: "orders_12m >= 10"}
    - {id: some, when: "orders_12m >= 1 and orders_12m <= 9"}
    - {id: none, default: true}
""")
    (table,) = analyze_policy(db, policy, AS_OF)["threshold_tables"]
    # no (9, 10) gap: a count takes whole values; the empty value is a gap (default: null)
    assert [g["interval"] for g in table["gaps"]] == ["(-inf, 0]", "null"]


def test_analyze_overdue_and_outstanding_are_never_empty(tmp_path):
    db = make_db(tmp_path / "r.db", [("c1", "one", "x"), ("c2", "two", "x")],
                 [("c1", "2026-01-10", 100.0)],
                 receivables=[("c1", "2026-01-10", "2026-02-10", 5_000.0, 0.0, None)])
    policy = _write(tmp_path, "receivables", """
metrics:
  overdue_amount: {overdue: amount, min_days: 31}
  overdue_days: {overdue: days}
  open: {outstanding: receivables}
tiers:
  levels:
    - {id: late, when: "overdue_amount > 1_000"}
    - {id: fine, default: true}
lifecycle:
  stages:
    - {id: very_late, when: "overdue_days >= 90"}
    - {id: late, when: "overdue_days >= 31 and overdue_days <= 89"}
    - {id: owes, when: "open > 0 and open < 100"}
    - {id: ok, default: true}
""")
    result = analyze_policy(db, policy, AS_OF)
    tiers = result["threshold_tables"][0]
    assert [g["interval"] for g in tiers["gaps"]] == ["(-inf, 1000]"]  # no "null" gap: a customer without any owes 0
    stages = result["threshold_tables"][1]
    assert stages["gaps"] is None  # two metrics
    days_only = _write(tmp_path, "days", """
metrics:
  overdue_days: {overdue: days}
tiers:
  levels:
    - {id: very_late, when: "overdue_days >= 90"}
    - {id: late, when: "overdue_days >= 31 and overdue_days <= 89"}
    - {id: ok, default: true}
""")
    (table,) = analyze_policy(db, days_only, AS_OF)["threshold_tables"]
    assert [g["interval"] for g in table["gaps"]] == ["(-inf, 30]"]  # whole days, and never empty


# ---- diff: account managers ----------------------------------------------------------

def _levels(a_manager: str, b_manager: str, a_ratio="2", b_ratio="3") -> str:
    return f"""
metrics:
  revenue_12m: {{sum: amount, window: 12 months}}
summary:
  revenue: revenue_12m
tiers:
  levels:
    - {{id: A, when: "revenue_12m >= 200_000"}}
    - {{id: B, when: "revenue_12m >= 100_000"}}
    - {{id: C, default: true}}
service_levels:
  - {{id: A-key, tier: A, account_manager: {a_manager}, discount: 0.1,
     attributes: {{cost_per_customer: 1000, accounts_per_manager: {a_ratio}}}}}
  - {{id: B-grow, tier: B, account_manager: {b_manager}, attributes: {{cost_per_customer: 100, accounts_per_manager: {b_ratio}}}}}
  - {{id: C-std, tier: C, account_manager: pooled, attributes: {{cost_per_customer: 10}}}}
"""


def test_diff_counts_account_managers_wherever_accounts_per_manager_is_given(tmp_path, db):
    english = _write(tmp_path, "english", _levels("dedicated senior", "dedicated"))
    chinese = _write(tmp_path, "chinese", _levels("专属高级客户经理", "key account team"))
    costs = diff_policies(db, english, chinese, AS_OF)["costs"]
    # A: c1 c2 c3 (3 / 2 -> 2 managers), B: c4 (1 / 3 -> 1); C (pooled) gives no ratio and needs none
    assert costs["old"]["totals"]["account_managers"] == costs["new"]["totals"]["account_managers"] == 3
    assert costs["change"]["account_managers"] == 0
    assert costs["new"]["service_levels"]["A-key"]["account_manager"] == "专属高级客户经理"
    assert costs["new"]["service_levels"]["B-grow"]["account_managers"] == 1
    assert "account_managers" not in costs["new"]["service_levels"]["C-std"]
    # a level without a ratio is not missing one (only B-grow and C-std lack a discount)
    assert costs["old"]["missing"] == costs["new"]["missing"] == {"discount_given": ["B-grow", "C-std"]}


def test_diff_names_units_that_are_not_numbers(tmp_path, db, cli):
    bad = _levels("dedicated", "dedicated", a_ratio="0", b_ratio="'15'")
    policy = _write(tmp_path, "bad", bad)
    costs = diff_policies(db, policy, policy, AS_OF)["costs"]
    assert costs["old"]["invalid"] == {"account_managers": {"A-key": 0, "B-grow": "15"}}
    assert "account_managers" not in costs["old"]["totals"]
    out = " ".join(cli("diff", "--db", db, tmp_path / "bad.yaml", tmp_path / "bad.yaml", "--as-of", AS_OF,
                       ok=True).output.split())  # the notes wrap to the terminal
    assert "note: old service level A-key: attributes.accounts_per_manager 0 is not a number above 0; not used" in out
    assert "note: new service level B-grow: attributes.accounts_per_manager '15' is not a number above 0" in out


def test_diff_customers_without_a_service_level_are_not_a_missing_unit(tmp_path, db):
    text = _levels("dedicated", "dedicated").replace(
        "  - {id: C-std, tier: C, account_manager: pooled, attributes: {cost_per_customer: 10}}\n", "")
    policy = _write(tmp_path, "partial", text)
    result = diff_policies(db, policy, policy, AS_OF)
    costs = result["costs"]["old"]
    assert costs["service_levels"]["(none)"] == {"customers": 2, "revenue": 40_000}
    assert costs["totals"]["cost"] == 3 * 1000 + 100
    assert costs["missing"] == {"discount_given": ["B-grow"]}  # not "(none)": no service, nothing to cost
    assert "old: 2 customer(s) match no service level (no entry for their tier/stage)" in result["notes"]


# ---- diff: revenue metrics -------------------------------------------------------------

def test_diff_marks_a_change_of_revenue_metric(tmp_path, db, cli):
    old = _levels("dedicated", "dedicated")
    new = old.replace("  revenue: revenue_12m", "  revenue: revenue_36m").replace(
        "metrics:\n", "metrics:\n  revenue_36m: {sum: amount, window: 3 years}\n")
    (tmp_path / "old.yaml").write_text(old, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(new, encoding="utf-8")
    result = diff_policies(db, load_policy(tmp_path / "old.yaml"), load_policy(tmp_path / "new.yaml"), AS_OF)
    assert result["customers"]["changed"]["any"] == 0
    costs = result["costs"]
    assert (costs["old"]["revenue_metric"], costs["new"]["revenue_metric"]) == ("revenue_12m", "revenue_36m")
    assert costs["change"]["discount_given"] == pytest.approx(0.1 * 100_000)  # c1's older order, not a grade change
    assert any("the revenue metric differs: old revenue_12m, new revenue_36m" in n for n in result["notes"])
    out = cli("diff", "--db", db, tmp_path / "old.yaml", tmp_path / "new.yaml", "--as-of", AS_OF, ok=True).output
    assert "Customers and revenue share per tier (revenue_12m → revenue_36m)" in out
    same = cli("diff", "--db", db, tmp_path / "old.yaml", tmp_path / "old.yaml", "--as-of", AS_OF, ok=True).output
    assert "Discount given (discount × revenue_12m)" in same and "revenue metric differs" not in same


def test_diff_discount_label_when_the_table_is_wide_enough(tmp_path, db, cli, columns):
    columns(120)
    old = _levels("dedicated", "dedicated")
    new = old.replace("  revenue: revenue_12m", "  revenue: revenue_36m").replace(
        "metrics:\n", "metrics:\n  revenue_36m: {sum: amount, window: 3 years}\n")
    (tmp_path / "old.yaml").write_text(old, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(new, encoding="utf-8")
    out = cli("diff", "--db", db, tmp_path / "old.yaml", tmp_path / "new.yaml", "--as-of", AS_OF, ok=True).output
    assert "│ Discount given (discount × revenue_12m → revenue_36m) │" in out
    assert "│ Account managers needed (accounts_per_manager)" in out


# ---- diff: errors name the side --------------------------------------------------------------

OTHER_TIERS = """
metrics:
  revenue_12m: {sum: amount, window: 12 months}
tiers:
  levels:
    - {id: diamond, when: "revenue_12m >= 200_000"}
    - {id: standard, default: true}
"""


def test_diff_error_names_the_policy_the_overrides_do_not_fit(tmp_path, db, cli):
    abc = _write(tmp_path, "abc", _levels("dedicated", "dedicated"))
    other = _write(tmp_path, "other", OTHER_TIERS)
    overrides = tmp_path / "ov.yaml"
    overrides.write_text("- {customer: c5, tier: A, reason: partner, author: 李经理}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^new policy 'other': the overrides") as caught:
        diff_policies(db, abc, other, AS_OF, overrides=overrides)
    assert "unknown tier 'A' (tiers: diamond, standard)" in caught.value.message
    assert "--overrides applies to both policies" in caught.value.hint
    with pytest.raises(DataError, match=r"^old policy 'other': "):
        diff_policies(db, other, abc, AS_OF, overrides=overrides)
    result = cli("diff", "--db", db, tmp_path / "abc.yaml", tmp_path / "other.yaml", "--as-of", AS_OF,
                 "--overrides", overrides)
    assert result.exit_code == 1
    assert "error: new policy 'other': the overrides" in result.output and "unknown tier 'A'" in result.output
    assert "Traceback" not in result.output


def test_diff_against_a_run_error_names_the_new_policy(tmp_path, db):
    abc = _write(tmp_path, "abc", _levels("dedicated", "dedicated"))
    run_id = apply_policy(db, abc, AS_OF).run_id
    overrides = tmp_path / "ov.yaml"
    overrides.write_text("- {customer: c5, tier: A, reason: partner, author: ops}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^new policy 'other': ") as caught:
        diff_policies(db, None, _write(tmp_path, "other", OTHER_TIERS), None, against_run=run_id, overrides=overrides)
    assert "--overrides applies to the new policy" in caught.value.hint


def test_diff_other_errors_name_the_side_and_keep_their_exit_code(tmp_path, db, cli):
    # a column the data lacks is found when the new side is computed
    broken = OTHER_TIERS.replace('"revenue_12m >= 200_000"', '"segment = \'gold\'"') + \
        "data:\n  customers:\n    attributes:\n      segment: segment_code\n"
    with pytest.raises(DataError) as caught:
        diff_policies(db, _write(tmp_path, "ok", OTHER_TIERS), _write(tmp_path, "broken", broken), AS_OF)
    assert caught.value.message.startswith("new policy 'broken': ") and "segment_code" in caught.value.message
    assert caught.value.exit_code == 1
    (tmp_path / "ok.yaml").write_text(OTHER_TIERS, encoding="utf-8")
    result = cli("diff", "--db", db, tmp_path / "ok.yaml", tmp_path / "broken.yaml", "--as-of", AS_OF)
    assert result.exit_code == 1 and result.output.startswith("error: new policy 'broken': ")


# ---- the README's example ----------------------------------------------------------------------

def _readme_example(command: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(f"$ {command}\n", 1)[1]
    return block.split("\n```", 1)[0]


def test_readme_diff_example_is_what_the_command_prints(tmp_path, cli, columns):
    command = "crm-rules diff --db crm-demo/crm.db base b2b_key_account --as-of 2026-06-30"
    expected = _readme_example(command)
    db = tmp_path / "crm-demo" / "crm.db"
    db.parent.mkdir()
    generate_demo_database(db)  # what `crm-rules demo` writes
    columns(100)
    args = command.split()[1:]
    args[args.index("crm-demo/crm.db")] = str(db)
    out = cli(*args, ok=True).output
    assert out.rstrip("\n") == expected
    assert "│ Service cost (cost_per_customer)               │    1,775,760 │" in expected
    assert "│ Account managers needed (accounts_per_manager) │           53 │" in expected


def test_diff_says_when_a_discount_has_no_revenue_to_apply_to(tmp_path, db, cli):
    # rules tiers and no summary.revenue: no revenue metric, so no discount given can be computed
    text = OTHER_TIERS + """
service_levels:
  - {id: D-key, tier: diamond, discount: 0.1, attributes: {cost_per_customer: 10}}
  - {id: S-std, tier: standard, attributes: {cost_per_customer: 1}}
"""
    policy = _write(tmp_path, "norev", text)
    costs = diff_policies(db, policy, policy, AS_OF)["costs"]["old"]
    assert costs["revenue_metric"] is None and "discount_given" not in costs["totals"]
    assert costs["discount_without_revenue"] == ["D-key"] and costs["missing"] == {}
    out = " ".join(cli("diff", "--db", db, tmp_path / "norev.yaml", tmp_path / "norev.yaml", "--as-of", AS_OF,
                       ok=True).output.split())  # the notes wrap to the terminal
    assert ("note: old: discount given not computed for D-key: the policy has no revenue metric to apply it to "
            "(summary.revenue)") in out
