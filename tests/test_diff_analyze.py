"""`crm-rules diff` and `crm-rules analyze`: exact transitions, costs, dead and shadowed rules, gaps and overlaps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.errors import UsageError
from crm_rules.engine.expr_parser import parse_expression
from crm_rules.engine.policy_diff import diff_policies
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.rule_analysis import analyze_policy, extract
from crm_rules.engine.runner import apply_policy
from small_db import make_db

METRICS = """
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  recency_days: {recency: orders}
summary:
  revenue: revenue_12m
"""

SERVICE_LEVELS = """
service_levels:
  - {id: A-gold, tier: A, discount: 0.1, account_manager: dedicated senior,
     attributes: {cost_per_customer: 1000, accounts_per_manager: 2}}
  - {id: B-silver, tier: B, discount: 0.05, account_manager: dedicated,
     attributes: {cost_per_customer: 300, accounts_per_manager: 3}}
  - {id: C-basic, tier: C, discount: 0, account_manager: pooled, attributes: {cost_per_customer: 20}}
  - {id: C-lost, tier: C, stage: lost, discount: 0, account_manager: pooled, attributes: {cost_per_customer: 0}}
"""


def _policy(a: int, b: int, lost_after: int) -> str:
    return METRICS + f"""
tiers:
  levels:
    - {{id: A, when: "revenue_12m >= {a}"}}
    - {{id: B, when: "revenue_12m >= {b}"}}
    - {{id: C, default: true}}
lifecycle:
  stages:
    - {{id: lost, when: "recency_days is null or recency_days > {lost_after}"}}
    - {{id: active, default: true}}
""" + SERVICE_LEVELS


OLD = _policy(100_000, 50_000, 365)
NEW = _policy(60_000, 10_000, 180)


def _write(tmp_path: Path, name: str, text: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


@pytest.fixture
def diff_db(tmp_path) -> Path:
    # revenue 150k, 80k, 40k, 15k, 5k (last order 272 days before the as-of date), none
    return make_db(tmp_path / "diff.db", [(f"c{i}", f"customer {i}", "north") for i in range(1, 7)], [
        ("c1", "2026-03-01", 150_000.0), ("c2", "2026-03-01", 80_000.0), ("c3", "2026-03-01", 40_000.0),
        ("c4", "2026-03-01", 15_000.0), ("c5", "2025-10-01", 5_000.0)])


EXPECTED_TIERS = {"from": ["A", "B", "C"], "to": ["A", "B", "C"], "changed": 3,
                  "matrix": {"A": {"A": 1, "B": 0, "C": 0}, "B": {"A": 1, "B": 0, "C": 0}, "C": {"A": 0, "B": 2, "C": 2}}}
EXPECTED_STAGES = {"from": ["lost", "active"], "to": ["lost", "active"], "changed": 1,
                   "matrix": {"lost": {"lost": 1, "active": 0}, "active": {"lost": 1, "active": 4}}}
EXPECTED_SERVICE = {"changed": 4, "transitions": [{"from": "C-basic", "to": "B-silver", "customers": 2},
                                                  {"from": "B-silver", "to": "A-gold", "customers": 1},
                                                  {"from": "C-basic", "to": "C-lost", "customers": 1}]}


def test_diff_of_two_policies_gives_exact_transitions(tmp_path, diff_db):
    result = diff_policies(diff_db, _write(tmp_path, "old", OLD), _write(tmp_path, "new", NEW), AS_OF, list_customers=True)
    assert result["old"]["policy"] == "old" and result["new"]["policy"] == "new" and result["as_of"] == AS_OF
    assert result["customers"] == {"total": 6, "both": 6, "only_old": 0, "only_new": 0,
                                   "changed": {"tier": 3, "subgrade": 0, "stage": 1, "service_level": 4, "any": 4}}
    assert result["tiers"] == EXPECTED_TIERS
    assert result["stages"] == EXPECTED_STAGES
    assert result["subgrades"] == {"from": ["(none)"], "to": ["(none)"], "matrix": {"(none)": {"(none)": 6}}, "changed": 0}
    assert result["service_levels"] == EXPECTED_SERVICE
    assert [(m["customer_id"], m["tier"], m["stage"], m["service_level"], m["changed"]) for m in result["movers"]] == [
        ("c2", ["B", "A"], ["active", "active"], ["B-silver", "A-gold"], ["tier", "service_level"]),
        ("c3", ["C", "B"], ["active", "active"], ["C-basic", "B-silver"], ["tier", "service_level"]),
        ("c4", ["C", "B"], ["active", "active"], ["C-basic", "B-silver"], ["tier", "service_level"]),
        ("c5", ["C", "C"], ["active", "lost"], ["C-basic", "C-lost"], ["stage", "service_level"]),
    ]
    assert result["movers"][0]["customer_name"] == "customer 2"


def test_diff_lists_a_tier_added_in_the_middle_where_the_new_policy_has_it(tmp_path, diff_db):
    inserted = METRICS + """
tiers:
  levels:
    - {id: A, when: "revenue_12m >= 100000"}
    - {id: B, when: "revenue_12m >= 50000"}
    - {id: S, when: "revenue_12m >= 10000"}
    - {id: C, default: true}
lifecycle:
  stages:
    - {id: lost, when: "recency_days is null or recency_days > 365"}
    - {id: active, default: true}
""" + SERVICE_LEVELS + """
  - {id: S-basic, tier: S}
"""
    result = diff_policies(diff_db, _write(tmp_path, "old", OLD), _write(tmp_path, "new", inserted), AS_OF)
    assert list(result["revenue_share"]["tiers"]) == ["A", "B", "S", "C"]  # not A, B, C, then the new S
    back = diff_policies(diff_db, _write(tmp_path, "new2", inserted), _write(tmp_path, "old2", OLD), AS_OF)
    assert list(back["revenue_share"]["tiers"]) == ["A", "B", "S", "C"]  # a tier removed stays where it was


def test_diff_revenue_share_per_tier(tmp_path, diff_db):
    share = diff_policies(diff_db, _write(tmp_path, "old", OLD), _write(tmp_path, "new", NEW), AS_OF)["revenue_share"]
    assert share["old_metric"] == share["new_metric"] == "revenue_12m"
    assert share["old_total"] == share["new_total"] == 290_000
    tiers = share["tiers"]
    assert list(tiers) == ["A", "B", "C"]
    assert [(t["old_customers"], t["new_customers"], t["old_revenue"], t["new_revenue"]) for t in tiers.values()] == [
        (1, 2, 150_000, 230_000), (1, 2, 80_000, 55_000), (4, 2, 60_000, 5_000)]
    assert tiers["A"]["old_share"] == pytest.approx(150 / 290)
    assert tiers["A"]["new_share"] == pytest.approx(230 / 290)
    assert tiers["A"]["change"] == pytest.approx(80 / 290)
    assert tiers["C"]["change"] == pytest.approx(-55 / 290)


def test_diff_cost_of_service_levels(tmp_path, diff_db):
    costs = diff_policies(diff_db, _write(tmp_path, "old", OLD), _write(tmp_path, "new", NEW), AS_OF)["costs"]
    # old: A-gold c1, B-silver c2, C-basic c3-c5, C-lost c6; new: A-gold c1 c2, B-silver c3 c4, C-lost c5 c6
    assert costs["old"]["totals"] == {"cost": 1360, "discount_given": pytest.approx(19_000), "account_managers": 2}
    assert costs["new"]["totals"] == {"cost": 2600, "discount_given": pytest.approx(25_750), "account_managers": 2}
    assert costs["change"] == {"cost": 1240, "discount_given": pytest.approx(6_750), "account_managers": 0}
    assert costs["new"]["service_levels"]["A-gold"] == {
        "customers": 2, "revenue": 230_000, "cost": 2000, "discount_given": pytest.approx(23_000),
        "account_manager": "dedicated senior", "account_managers": 1}
    assert costs["old"]["service_levels"]["C-basic"] == {"customers": 3, "revenue": 60_000, "cost": 60, "discount_given": 0}
    assert costs["old"]["missing"] == costs["new"]["missing"] == {}


def test_diff_reports_nothing_for_costs_not_given(tmp_path, diff_db):
    plain = METRICS + """
tiers:
  levels:
    - {id: A, when: "revenue_12m >= 100_000"}
    - {id: C, default: true}
service_levels:
  - {id: A-key, tier: A, account_manager: dedicated}
  - {id: C-std, tier: C, discount: 0.02}
"""
    costs = diff_policies(diff_db, _write(tmp_path, "p1", plain), _write(tmp_path, "p2", plain), AS_OF)["costs"]
    assert costs["old"]["totals"] == {"discount_given": pytest.approx(0.02 * 140_000)}
    assert costs["old"]["missing"] == {"discount_given": ["A-key"]}
    assert costs["old"]["service_levels"]["A-key"] == {"customers": 1, "revenue": 150_000}
    assert costs["change"] == {"discount_given": 0}


def test_diff_against_a_stored_run_with_a_new_customer(tmp_path, diff_db):
    run_id = apply_policy(diff_db, _write(tmp_path, "old", OLD), AS_OF).run_id
    conn = sqlite3.connect(diff_db)
    conn.execute("INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) VALUES ('c7', 'newcomer', 'north', 'retail', '2020-01-01', 'someone', 10000)")
    conn.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) VALUES ('c7', '2026-05-01', 70000, 0, 0)")
    conn.commit()
    conn.close()
    result = diff_policies(diff_db, None, _write(tmp_path, "new", NEW), None, against_run=run_id, list_customers=True)
    assert result["old"]["source"] == "run" and result["old"]["run_id"] == run_id and result["old"]["policy"] == "old"
    assert result["as_of"] == AS_OF  # the run's as-of date when none is given
    assert result["customers"]["total"] == 7 and result["customers"]["only_new"] == 1 and result["customers"]["only_old"] == 0
    assert result["tiers"]["from"] == ["A", "B", "C", "(absent)"]
    assert result["tiers"]["matrix"] == {**EXPECTED_TIERS["matrix"], "(absent)": {"A": 1, "B": 0, "C": 0}}
    assert result["stages"]["matrix"]["(absent)"] == {"lost": 0, "active": 1}
    assert result["revenue_share"]["old_total"] == 290_000 and result["revenue_share"]["new_total"] == 360_000
    assert result["costs"]["old"]["totals"]["cost"] == 1360  # unit costs from the run's stored definitions
    assert result["movers"][-1] == {"customer_id": "c7", "customer_name": "newcomer", "tier": ["(absent)", "A"],
                                    "subgrade": ["(absent)", None], "stage": ["(absent)", "active"],
                                    "service_level": ["(absent)", "A-gold"],
                                    "changed": ["tier", "subgrade", "stage", "service_level"]}


def test_diff_against_a_run_in_a_separate_results_db(tmp_path, diff_db):
    results = tmp_path / "results.db"
    run_id = apply_policy(diff_db, _write(tmp_path, "old", OLD), AS_OF, results_db=results).run_id
    result = diff_policies(diff_db, None, _write(tmp_path, "new", NEW), AS_OF, against_run=run_id, results_db=results)
    assert result["tiers"] == EXPECTED_TIERS and result["service_levels"] == EXPECTED_SERVICE


def test_diff_needs_one_old_side(tmp_path, diff_db):
    new = _write(tmp_path, "new", NEW)
    with pytest.raises(UsageError):
        diff_policies(diff_db, None, new, AS_OF)
    with pytest.raises(UsageError):
        diff_policies(diff_db, new, new, AS_OF, against_run=1)
    with pytest.raises(UsageError, match="no crm-rules runs"):
        diff_policies(diff_db, None, new, AS_OF, against_run=1)


def test_diff_of_shipped_policies_on_the_demo(demo_db):
    result = diff_policies(demo_db, load_policy("base"), load_policy("b2b_key_account"), AS_OF, list_customers=True)
    n = result["customers"]["total"]
    assert n == 300 and result["customers"]["both"] == n
    for key in ("tiers", "subgrades", "stages"):
        assert sum(sum(row.values()) for row in result[key]["matrix"].values()) == n
    assert result["tiers"]["from"] == ["A", "B", "C"] and result["tiers"]["to"] == ["A", "B", "C"]
    assert result["stages"]["changed"] == 0  # b2b_key_account inherits base's lifecycle
    assert len(result["movers"]) == result["customers"]["changed"]["any"]
    for side in ("old", "new"):
        tiers = result["revenue_share"]["tiers"].values()
        assert sum(t[f"{side}_customers"] for t in tiers) == n
        assert sum(t[f"{side}_share"] for t in tiers) == pytest.approx(1)
        assert sum(e["customers"] for e in result["costs"][side]["service_levels"].values()) == n
        assert "discount_given" in result["costs"][side]["totals"]
    # base gives unit costs and accounts per manager; b2b_key_account does not
    assert {"cost", "account_managers"} <= set(result["costs"]["old"]["totals"])
    assert "cost" not in result["costs"]["new"]["totals"]


# ---- analyze -------------------------------------------------------------------

ANALYZED = """
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  orders_12m: {count: orders, window: 12 months}
tiers:
  levels:
    - id: top
      when: revenue_12m >= 100_000
      subgrades:
        - {id: s1, when: orders_12m >= 3}
        - {id: s2, when: orders_12m >= 5}
        - {id: s3, when: region = 'north'}
        - {id: s4, default: true}
    - {id: big, when: revenue_12m >= 200_000}
    - {id: mid, when: revenue_12m >= 50_000 and revenue_12m < 80_000}
    - {id: low, when: revenue_12m between 10_000 and 19_999.99}
    - {id: huge, when: revenue_12m > 1_000_000}
    - {id: rest, default: true}
lifecycle:
  stages:
    - {id: frequent, when: orders_12m >= 10}
    - {id: regular, when: orders_12m >= 2 and orders_12m <= 9}
    - {id: single, when: orders_12m = 1}
    - {id: none, default: true}
service_levels:
  - {id: top-svc, tier: top}
  - {id: top-north, tier: top, when: "region = 'north'"}
  - {id: mid-svc, tier: mid}
  - {id: other, tier: rest}
"""


@pytest.fixture
def analyzed(tmp_path) -> dict:
    db = make_db(tmp_path / "a.db", [("c1", "one", "south"), ("c2", "two", "south"), ("c3", "three", "south"),
                                     ("c4", "four", "south"), ("c5", "five", "south")],
                 [("c1", f"2026-0{m}-10", 50_000.0) for m in (1, 2, 3, 4, 5)]
                 + [("c2", "2026-01-10", 60_000.0)]
                 + [("c3", "2026-01-10", 15_000.0), ("c3", "2026-02-10", 15_000.0)]
                 + [("c4", f"2025-{m:02d}-10", 1_250.0) for m in range(7, 13)]
                 + [("c4", f"2026-0{m}-10", 1_250.0) for m in range(1, 7)])
    return analyze_policy(db, _write(tmp_path, "analyzed", ANALYZED), AS_OF)


def test_analyze_counts_matched_and_decided_per_rule(analyzed):
    got = [(e["list"], e["id"], e["matched"], e["decided"], e["status"]) for e in analyzed["rules"]]
    assert got == [
        ("tiers", "top", 1, 1, "ok"), ("tiers", "big", 1, 0, "shadowed"), ("tiers", "mid", 1, 1, "ok"),
        ("tiers", "low", 1, 1, "ok"), ("tiers", "huge", 0, 0, "dead"), ("tiers", "rest", None, 2, "ok"),
        ("subgrades of top", "s1", 1, 1, "ok"), ("subgrades of top", "s2", 1, 0, "shadowed"),
        ("subgrades of top", "s3", 0, 0, "dead"), ("subgrades of top", "s4", None, 0, "unused default"),
        ("lifecycle stages", "frequent", 1, 1, "ok"), ("lifecycle stages", "regular", 2, 2, "ok"),
        ("lifecycle stages", "single", 1, 1, "ok"), ("lifecycle stages", "none", None, 1, "ok"),
        ("service levels", "top-svc", 1, 1, "ok"), ("service levels", "top-north", 0, 0, "dead"),
        ("service levels", "mid-svc", 1, 1, "ok"), ("service levels", "other", 2, 2, "ok"),
    ]
    assert analyzed["customers"] == 5
    assert "1 customer(s) match no service level (no entry for their tier/stage)" in analyzed["notes"]


def test_analyze_dead_rules(analyzed):
    assert [(d["kind"], d["id"], d["parent"]) for d in analyzed["dead"]] == [
        ("tier", "huge", None), ("subgrade", "s3", "top"), ("service_level", "top-north", "top")]
    assert analyzed["dead"][2]["condition"] == "tier top, when region = 'north'"


def test_analyze_shadowed_rules_on_data_and_statically(analyzed):
    got = [(s["kind"], s["id"], s["matched"], s["taken_by"], s["static"]) for s in analyzed["shadowed"]]
    assert got == [
        ("tier", "big", 1, {"top": 1}, {"metric": "revenue_12m", "never_true": False, "covered_by": ["top"]}),
        ("tier", "huge", 0, None, {"metric": "revenue_12m", "never_true": False, "covered_by": ["top", "big"]}),
        ("subgrade", "s2", 1, {"s1": 1}, {"metric": "orders_12m", "never_true": False, "covered_by": ["s1"]}),
    ]


def test_analyze_threshold_table_gaps_and_overlaps(analyzed):
    tiers = analyzed["threshold_tables"][0]
    assert tiers["list"] == "tiers" and tiers["metrics"] == ["revenue_12m"] and tiers["hit_policy"] == "first"
    assert [(r["id"], r["covers"], r["effective"]) for r in tiers["rules"]] == [
        ("top", "[100000, +inf)", "[100000, +inf)"), ("big", "[200000, +inf)", "∅"),
        ("mid", "[50000, 80000)", "[50000, 80000)"), ("low", "[10000, 19999.99]", "[10000, 19999.99]"),
        ("huge", "(1000000, +inf)", "∅")]
    assert [(o["rules"], o["intervals"], o["problem"]) for o in tiers["overlaps"]] == [
        (["top", "big"], ["[200000, +inf)"], False), (["top", "huge"], ["(1000000, +inf)"], False),
        (["big", "huge"], ["(1000000, +inf)"], False)]
    assert [(g["interval"], g["low"], g["high"], g["goes_to"]) for g in tiers["gaps"]] == [
        ("(-inf, 10000)", None, 10000, "rest"), ("(19999.99, 50000)", 19999.99, 50000, "rest"),
        ("[80000, 100000)", 80000, 100000, "rest")]  # no null gap: a sum is never empty
    assert tiers["gaps"][2]["message"] == ("revenue_12m in [80000, 100000) (80000 <= revenue_12m < 100000) is covered by "
                                           "no rule; customers there get the default (rest)")


def test_analyze_integer_metrics_and_lists_with_other_conditions(analyzed):
    subs, stages = analyzed["threshold_tables"][1:]
    assert subs["list"] == "subgrades of top" and subs["parent"] == "top"
    assert [(r["id"], r["covers"], r["effective"]) for r in subs["rules"]] == [("s1", "[3, +inf)", "[3, +inf)"),
                                                                              ("s2", "[5, +inf)", "∅")]
    assert subs["gaps"] is None and subs["gaps_note"] == "gaps not computed: some conditions are not intervals"
    assert analyzed["not_analysed"] == [{"list": "subgrades of top", "kind": "subgrade", "id": "s3", "parent": "top",
                                         "condition": "region = 'north'", "reason": "region is not a number"}]
    # a count takes whole values: <= 9 then >= 10 leaves no gap, only values below 1
    assert [(r["id"], r["covers"]) for r in stages["rules"]] == [("frequent", "[10, +inf)"), ("regular", "[2, 9]"),
                                                                 ("single", "[1, 1]")]
    assert stages["overlaps"] == []
    assert [(g["interval"], g["goes_to"]) for g in stages["gaps"]] == [("(-inf, 0]", "none")]
    assert stages["gaps"][0]["message"].startswith("orders_12m in (-inf, 0] (orders_12m <= 0) is covered by no rule")


def test_analyze_overlap_is_a_problem_for_hit_policy_unique(tmp_path):
    db = make_db(tmp_path / "u.db", [("c1", "one", "x"), ("c2", "two", "x")],
                 [("c1", "2026-01-10", 150.0), ("c2", "2026-01-10", 60.0)])
    policy = _write(tmp_path, "unique", """
metrics:
  revenue_12m: {sum: amount, window: 12 months, default: null}
tiers:
  hit_policy: unique
  levels:
    - {id: a, when: revenue_12m >= 100}
    - {id: b, when: revenue_12m between 50 and 100}
    - {id: c, default: true}
""")
    result = analyze_policy(db, policy, AS_OF)
    (table,) = result["threshold_tables"]
    assert table["hit_policy"] == "unique"
    assert [(o["rules"], o["intervals"], o["problem"]) for o in table["overlaps"]] == [(["a", "b"], ["[100, 100]"], True)]
    assert "hit_policy unique" in table["overlaps"][0]["message"]
    assert [g["interval"] for g in table["gaps"]] == ["(-inf, 50)", "null"]  # default: null makes the sum nullable
    assert result["dead"] == [] and result["shadowed"] == []


@pytest.mark.parametrize("text, integer, covers, null", [
    ("x > 5 and x <= 10", False, "(5, 10]", None),
    ("not (x < 5)", False, "[5, +inf)", None),
    ("x is null or x > 365", True, "[366, +inf)", True),
    ("x is not null and x != 3", True, "(-inf, 2] ∪ [4, +inf)", False),
    ("x < 0 or x between 10 and 20 or x in [30, 40]", False, "(-inf, 0) ∪ [10, 20] ∪ [30, 30] ∪ [40, 40]", None),
    ("5 < x and x < 6", True, "∅", None),
    ("-x_neg <= x", False, None, None),
    ("x + 1 > 5", False, None, None),
])
def test_interval_extraction(text, integer, covers, null):
    from crm_rules.engine.rule_analysis import NotInterval

    node = parse_expression(text)
    names = {"x", "x_neg"}
    if covers is None:
        with pytest.raises(NotInterval):
            extract(node, names, names if integer else set())
        return
    metric, cond = extract(node, names, {"x"} if integer else set())
    assert metric == "x" and cond.values.text() == covers and cond.null is null


def test_analyze_shipped_policy_on_the_demo(demo_db):
    result = analyze_policy(demo_db, load_policy("b2b_key_account"), AS_OF)
    assert result["customers"] == 300
    tiers = [e for e in result["rules"] if e["list"] == "tiers"]
    assert [e["id"] for e in tiers] == ["A", "B", "C"] and sum(e["decided"] for e in tiers) == 300
    stages = [e for e in result["rules"] if e["list"] == "lifecycle stages"]
    assert sum(e["decided"] for e in stages) == 300
    services = [e for e in result["rules"] if e["list"] == "service levels"]
    assert sum(e["decided"] for e in services) == 300
    for e in result["rules"]:
        assert e["default"] or e["matched"] >= e["decided"]
    assert result["threshold_tables"][0]["gaps"][0]["interval"] == "(-inf, 60000)"
    assert {e["id"] for e in result["not_analysed"]} >= {"A1", "B1", "C2", "decline", "development"}


# ---- command line (active once the commands are in cli.py) ------------------------

def _has_command(name: str) -> bool:
    from crm_rules.cli import app

    return any((c.name or c.callback.__name__) == name for c in app.registered_commands)


@pytest.mark.skipif(not _has_command("diff"), reason="the diff command is not in cli.py yet")
def test_cli_diff(cli, tmp_path, diff_db):
    import json

    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD, encoding="utf-8")
    new.write_text(NEW, encoding="utf-8")
    out = cli("diff", "--db", diff_db, old, new, "--as-of", AS_OF, "--customers", ok=True).output
    assert "Tiers, old → new" in out and "C-basic" in out and "c5" in out
    data = json.loads(cli("diff", "--db", diff_db, old, new, "--as-of", AS_OF, "--format", "json", ok=True).output)
    assert data["tiers"] == EXPECTED_TIERS and "movers" not in data
    assert cli("diff", "--db", diff_db, new, "--as-of", AS_OF).exit_code == 2
    assert cli("diff", "--db", diff_db, old, new, "--format", "xml").exit_code == 2


@pytest.mark.skipif(not _has_command("analyze"), reason="the analyze command is not in cli.py yet")
def test_cli_analyze(cli, tmp_path, diff_db):
    import json

    policy = tmp_path / "analyzed.yaml"
    policy.write_text(ANALYZED, encoding="utf-8")
    out = cli("analyze", "--db", diff_db, "--policy", policy, "--as-of", AS_OF, ok=True).output
    assert "Rules on the data" in out and "dead" in out and "gap:" in out
    data = json.loads(cli("analyze", "--db", diff_db, "-p", policy, "--as-of", AS_OF, "--format", "json", ok=True).output)
    assert "huge" in {d["id"] for d in data["dead"]}


@pytest.mark.parametrize("command", ["diff", "analyze"])
def test_format_table_and_json_together_are_refused(cli, tmp_path, diff_db, command):
    import json

    policy = tmp_path / "old.yaml"
    policy.write_text(OLD, encoding="utf-8")
    args = ["--db", diff_db, "--as-of", AS_OF] + ([policy, policy] if command == "diff" else ["-p", policy])
    for fmt in ("table", "TABLE"):
        result = cli(command, *args, "--format", fmt, "--json")
        assert result.exit_code == 2 and result.output.startswith(
            "error: --format table and --json contradict each other"), result.output
        assert "give one of them" in result.output
    # what agrees still works: --json alone, --format json alone, both asking for JSON, and the table by default
    for given in (["--json"], ["--format", "json"], ["--format", "json", "--json"]):
        json.loads(cli(command, *args, *given, ok=True).output)
    assert not cli(command, *args, ok=True).output.lstrip().startswith("{")
    assert cli(command, *args, "--format", "table", ok=True).output == cli(command, *args, ok=True).output


def test_table_export_refuses_format_or_out_without_a_table(cli, tmp_path):
    policy = tmp_path / "old.yaml"
    policy.write_text(OLD, encoding="utf-8")
    for given, said in ((["--format", "xlsx", "--json"], "--format is for exporting one table"),
                        (["--out", tmp_path / "t.csv"], "--out is for exporting one table"),
                        (["--format", "csv", "--out", tmp_path / "t.csv"], "--format and --out are for exporting")):
        result = cli("table", "export", policy, *given)
        assert result.exit_code == 2 and result.output.startswith(f"error: {said}"), result.output
        assert "but no --table was given" in result.output and "add --table with one of: tiers" in result.output
        assert not (tmp_path / "t.csv").exists()


def test_diff_against_a_run_refuses_another_as_of_date(cli, tmp_path, diff_db):
    import json

    run_id = apply_policy(diff_db, _write(tmp_path, "old", OLD), AS_OF).run_id
    with pytest.raises(UsageError) as caught:
        diff_policies(diff_db, None, _write(tmp_path, "new", NEW), "2026-01-31", against_run=run_id)
    new = tmp_path / "new.yaml"
    assert f"--as-of 2026-01-31 is not the as-of date of run {run_id} ({AS_OF})" in caught.value.message
    result = cli("diff", "--db", diff_db, new, "--against-run", run_id, "--as-of", "2026-01-31")
    assert result.exit_code == 2 and f"is not the as-of date of run {run_id} ({AS_OF})" in result.output
    assert f"leave out --as-of (or give --as-of {AS_OF})" in result.output and "OLD_POLICY NEW_POLICY" in result.output
    # the run's own date, given or not, is the same comparison, with no note about mixed dates
    given = json.loads(cli("diff", "--db", diff_db, new, "--against-run", run_id, "--as-of", AS_OF, "--json",
                           ok=True).output)
    left_out = json.loads(cli("diff", "--db", diff_db, new, "--against-run", run_id, "--json", ok=True).output)
    assert given == left_out and given["as_of"] == AS_OF and given["tiers"] == EXPECTED_TIERS
    assert not any("was computed as of" in note for note in given["notes"])
