"""Policy tests (`crm-rules test`): YAML test files next to policies, run in a temporary database.

The example files are in ``tests/policy_tests/`` (``passing/`` and ``failing/``); the shipped policies
come with their own test files (``policies/*.test.yaml``), which must pass and exercise every tier,
sub-grade, stage and service-level rule.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from crm_rules.cli import app
from crm_rules.engine.csv_reader import QUOTE_ADVICE
from crm_rules.engine.errors import PolicyError, UsageError
from crm_rules.engine.policy_files import shipped_policies_dir, shipped_policy_names
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.policy_test_file import database_schema, find_test_files, load_test_file
from crm_rules.engine.policy_test_report import format_report
from crm_rules.engine.policy_tests import _write_database, run_policy_tests

HERE = Path(__file__).parent / "policy_tests"
PASSING = HERE / "passing"
FAILING = HERE / "failing" / "vip_wrong.test.yaml"
OWN_NAMES = HERE / "own_names"  # a policy with a `data:` section (its own tables and columns) and its tests
INVALID = HERE / "invalid"  # one folder per invalid test file: case.test.yaml (+ CSV, policy) and expected.txt
SHIPPED = Path(str(shipped_policies_dir()))
KINDS = ("tiers", "subgrades", "stages", "service_levels")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def case(report: dict, name: str) -> dict:
    return next(c for c in report["cases"] if c["name"] == name)


def failure(report: dict, name: str) -> dict:
    return next(f for f in report["failures"] if f["name"] == name)


def diagnostics(info: pytest.ExceptionInfo) -> list[str]:
    return [str(d) for d in info.value.diagnostics]


# ---- the example files ---------------------------------------------------------------------

def test_passing_example_passes():
    report = run_policy_tests([PASSING])
    assert report["ok"] and report["failed"] == 0 and report["failures"] == []
    assert report["passed"] == 6
    assert [f["file"] for f in report["files"]] == [str(PASSING / "vip_examples.test.yaml")]
    assert case(report, "returning customer")["actual"]["revenue_prev_12m_trend"] == 1


def test_failing_example_shows_expected_actual_and_explanation():
    report = run_policy_tests([FAILING])
    assert not report["ok"] and report["failed"] == 3 and report["passed"] == 2
    assert [f["name"] for f in report["failures"]] == [
        "one large order", "silver threshold[below the threshold]", "wrong metric and missing action"]

    big = failure(report, "one large order")
    assert big["where"] == f"{FAILING}:9:5" and big["customer_id"] == "one-large-order"
    assert [(m["key"], m["expected"], m["actual"]) for m in big["mismatches"]] == [
        ("tier", "diamond", "standard"), ("service_level", "diamond-butler", "standard-self")]
    assert big["mismatches"][0]["where"] == f"{FAILING}:13:13"
    why = big["explanation"]
    assert "Tier standard (method rules, decided by rule default):" in why
    assert "✗ diamond (钻石卡 Diamond): revenue_12m >= 600_000 and orders_12m >= 24" in why
    assert "failed: orders_12m >= 24  (orders_12m = 1; short by 23)" in why
    assert "✓ standard (普通卡 Standard): default, when no rule above matches  <- decides" in why
    assert "Service level standard-self" in why

    row = failure(report, "silver threshold[below the threshold]")
    assert row["where"] == f"{FAILING}:25:11"  # the table row
    assert "failed: revenue_12m >= 40_000  (revenue_12m = 39,000; short by 1,000)" in row["explanation"]  # as explain

    metric = failure(report, "wrong metric and missing action")
    assert [(m["key"], m["expected"], m["actual"]) for m in metric["mismatches"]] == [
        ("revenue_12m", 50001, 50000), ("actions_include", ["double_points"], [])]
    assert metric["mismatches"][1]["missing"] == ["double_points"]
    assert "Values: revenue_12m = 50000" in metric["explanation"] and "Actions: none" in metric["explanation"]

    text = format_report(report)
    assert f"{FAILING} (policy vip_card, as of 2026-06-30, 5 cases) F..FF" in text
    assert "FAILURES" in text and f"{FAILING}::one large order" in text
    assert "  tier           expected diamond, got standard" in text
    assert "  service_level  expected diamond-butler, got standard-self" in text
    assert "  actions_include  missing [double_points]; actual [] (none)" in text
    assert "why (crm-rules explain one-large-order):" in text
    assert re.search(r"=+ 3 failed, 2 passed in [0-9.]+s \(1 file\) =+$", text)
    json.dumps(report, ensure_ascii=False)  # --json prints it as is


# ---- format: tables, CSV fixtures, generators, defaults ---------------------------------------------

def test_parameterised_table(tmp_path):
    tests = write(tmp_path / "cards.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - name: spend
    customer: {region: 华南}
    expect: {stage: stable}
    table:
      columns: [name, revenue_12m, orders_12m, customer.credit_limit, expect.tier, expect.service_level]
      rows:
        - [gold, 200_000, 12, 50_000, gold, gold-priority]
        - [silver, 50_000, 6, null, silver, silver-plus]
        - [wrong, 50_000, 6, null, gold, gold-priority]
""")
    report = run_policy_tests([tests])
    assert [c["name"] for c in report["cases"]] == ["spend[gold]", "spend[silver]", "spend[wrong]"]
    assert [c["customer_id"] for c in report["cases"]] == ["spend-gold", "spend-silver", "spend-wrong"]
    assert [c["passed"] for c in report["cases"]] == [True, True, False]
    assert case(report, "spend[gold]")["expected"] == {"stage": "stable", "tier": "gold", "service_level": "gold-priority"}
    wrong = failure(report, "spend[wrong]")
    assert wrong["where"] == f"{tests}:12:11"
    assert [m["where"] for m in wrong["mismatches"]] == [f"{tests}:12:36", f"{tests}:12:42"]
    loaded = load_test_file(tests)
    assert [c.customer["region"] for c in loaded.cases] == ["华南"] * 3  # shared by every row
    assert [c.customer["credit_limit"] for c in loaded.cases] == [50_000, None, None]  # YAML null is a value


def test_csv_fixtures_for_histories_and_tables():
    report = run_policy_tests([PASSING])
    csv_orders = case(report, "orders from a CSV export")
    assert csv_orders["passed"] and csv_orders["actual"]["revenue_12m"] == 624_000
    rows = [c for c in report["cases"] if c["name"].startswith("card by spend[")]
    assert [c["name"] for c in rows] == ["card by spend[gold in the south]", "card by spend[silver]", "card by spend[standard]"]
    assert rows[0]["where"] == f"{PASSING / 'card_cases.csv'}:2:1"
    assert rows[0]["actual"]["actions"] == ["double_points"]
    assert rows[1]["expected"]["actions"] == []  # "[]": no actions
    assert "actions" not in rows[2]["expected"]  # an empty cell: not checked
    loaded = load_test_file(PASSING / "vip_examples.test.yaml")
    by_name = {c.name: c for c in loaded.cases}
    assert by_name["card by spend[gold in the south]"].customer["region"] == "华南"
    assert by_name["card by spend[silver]"].customer["region"] == "华东"  # empty cell: the file's default
    assert len(by_name["orders from a CSV export"].histories["orders"]) == 24


def test_csv_problems_are_reported_at_their_cell(tmp_path):
    write(tmp_path / "orders.csv", "order_date,amount,cst\n2026-01-01,5,1\n")
    write(tmp_path / "more.csv", 'order_date,amount\n2026-01-01,"1,000"\n2026-02-30,5\n')
    write(tmp_path / "rows.csv", "name,revenue_12m,expect.tier\nx,abc,gold\n")
    tests = write(tmp_path / "t.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - {name: a, orders_csv: orders.csv, expect: {tier: gold}}
  - {name: b, orders_csv: more.csv, expect: {tier: gold}}
  - {name: c, orders_csv: missing.csv, expect: {tier: gold}}
  - {name: d, table: {csv: rows.csv}}
  - {name: e, orders_csv: quote.csv, expect: {tier: gold}}
  - {name: f, orders_csv: gbk.csv, expect: {tier: gold}}
""")
    write(tmp_path / "quote.csv", 'order_date,amount\n2026-01-01,"5\n2026-02-01,5\n')
    (tmp_path / "gbk.csv").write_bytes("order_date,amount\n2026-01-01,五\n".encode("gbk"))
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    assert diagnostics(info) == [
        f"{tmp_path / 'more.csv'}:2:12: amount: expected a number, got \"1,000\"",
        f"{tmp_path / 'more.csv'}:3:1: order_date: '2026-02-30' is not a real date",
        f"{tmp_path / 'orders.csv'}:1:19: cst: unknown column 'cst' for orders; did you mean 'cost'?; "
        f"columns: order_date, amount, cost, discount",
        f"{tmp_path / 'rows.csv'}:2:3: revenue_12m: expected a number, got \"abc\"",
        f"{tests}:6:27: cases[2].orders_csv: CSV file 'missing.csv' not found (looked for {tmp_path / 'missing.csv'})",
        f"{tests}:8:27: cases[4].orders_csv: CSV file 'quote.csv': {tmp_path / 'quote.csv'}:2: unclosed quote starting "
        f"here: '2026-01-01,\"5'; the quoted value would run to the end of the file (line 3) (close the quote where the "
        f"value ends; {QUOTE_ADVICE})",
        f"{tests}:9:27: cases[5].orders_csv: CSV file 'gbk.csv': {tmp_path / 'gbk.csv'}:2: not valid UTF-8 (byte 0xce "
        f"at position 12 of the line) (re-save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8'); exports from "
        f"Windows are often in its local code page (GBK in China, Windows-1252 in Europe))",
    ]


def test_a_relative_date_takes_its_steps_in_turn(tmp_path):
    tests = write(tmp_path / "steps.test.yaml", """\
policy: base
as_of: 2026-06-30
cases:
  - name: steps
    customer: {created_at: -13m-10d}
    orders: [[-1m-1d, 100], [-1d-1m, 200], [+0d-1y+2w, 300]]
    expect: {revenue_36m: 600}
""")
    loaded = load_test_file(tests)
    steps = loaded.cases[0]
    assert steps.customer["since"] == "2025-05-21"  # 2025-05-31 (a month-end stays one), then 10 days back
    # 2026-05-31 then 05-30; 06-29 then 05-29; 2025-06-30 then two weeks later
    assert [row[0] for row in steps.histories["orders"]] == ["2026-05-30", "2026-05-29", "2025-07-14"]
    assert run_policy_tests([tests])["ok"]
    late = write(tmp_path / "late.test.yaml", "policy: base\nas_of: 2026-06-30\ncases:\n"
                 "  - {name: x, customer: {created_at: -1y-9999y}, expect: {tier: C}}\n")
    with pytest.raises(PolicyError) as info:
        load_test_file(late)
    assert diagnostics(info) == [f"{late}:4:38: cases[0].customer.created_at: '-1y-9999y' from as_of 2026-06-30 is "
                                 f"before year 1, outside the calendar"]


def test_generators_and_relative_dates(tmp_path):
    tests = write(tmp_path / "gen.test.yaml", """\
policy: base
as_of: 2026-06-30
cases:
  - name: generated
    customer: {created_at: -18m}
    generate: {revenue_12m: 100_000, orders_12m: 5, margin_12m: 0.3, complaints_12m: 2, referrals_12m: 1}
    expect:
      revenue_12m: 100_000
      revenue_36m: 100_000
      orders_12m: 5
      profit_12m: 30_000
      margin_12m: 0.3
      recency_days: 30
      revenue_prev_12m_trend: 0
      complaints_12m: 2
      referrals_12m: 1
      tenure_years: {approx: 1.5, tolerance: 0.02}  # 546 days: 2024-12-31, 18 months before a month's end
  - name: frequent buyer
    generate: {revenue_12m: 240_000, orders_12m: 24}
    expect: {recency_days: 15, revenue_prev_12m_trend: 0, orders_12m: 24}
  - name: one order
    generate: {revenue_12m: 999.99}
    expect: {recency_days: 30, revenue_12m: 999.99, revenue_prev_12m_trend: null}
  - name: gone quiet
    generate: {orders_12m: 0, recency_days: 400}
    expect: {recency_days: 400, revenue_12m: 0, stage: lost}
  - name: explicit rows
    orders: [[-1w, 100], [2026-06-30, 50, 10, 5]]
    receivables: [[-40d, -10d, 150, 100, -9d]]
    interactions: [[-3d, complaint]]
    contracts: [[-1y, +2m]]
    expect: {recency_days: 0, profit_12m: 140, discount_12m: 5, collection_rate_12m: {approx: 0.667, tolerance: 0.001},
             complaints_12m: 1, overdue_amount: 0}
""")
    report = run_policy_tests([tests])
    assert report["ok"], format_report(report)
    orders = {c.name: c.histories["orders"] for c in load_test_file(tests).cases}
    assert orders["one order"] == [("2026-05-31", 999.99, 0, 0)]
    assert orders["gone quiet"] == [("2025-05-26", 0, 0, 0)]
    assert sum(o[1] for o in orders["generated"]) == 100_000 and sum(o[1] - o[2] for o in orders["generated"]) == 30_000

    write(tests, "as_of: 2026-06-30\npolicy: base\ncases:\n"
                 "  - {name: a, generate: {orders_12m: 0, recency_days: 100}, expect: {tier: A}}\n"
                 "  - {name: b, generate: {revenue_12m: 5, orders_12m: 0}, expect: {tier: A}}\n"
                 "  - {name: c, generate: {revenue_12m: 5, recency_days: 361}, expect: {tier: A}}\n")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    assert diagnostics(info) == [
        f"{tests}:4:55: cases[0].generate.recency_days: with no orders in the last 12 months the last order must "
        f"be older: recency_days at least 366, got 100",
        f"{tests}:5:54: cases[1].generate.orders_12m: revenue_12m needs at least one order: orders_12m must be 1 or more",
        f"{tests}:6:56: cases[2].generate.recency_days: recency_days 361 is beyond the generated 12-month orders "
        f"(at most 360); set orders_12m: 0 for a customer whose last order is older",
    ]


def test_defaults_ids_and_attributes(tmp_path):
    tests = write(tmp_path / "ids.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
defaults:
  customer: {region: Europe, industry: hospitality}
  generate: {revenue_12m: 50_000, orders_12m: 6}
cases:
  - name: Default Values
    expect: {region: Europe, industry: hospitality, tier: silver}
  - name: own values
    customer: {id: 42, region: null}
    generate: {orders_12m: 1}
    expect: {region: null, tier: standard, since: "2021-06-30"}
""")
    report = run_policy_tests([tests])
    assert report["ok"], format_report(report)
    assert [c["customer_id"] for c in report["cases"]] == ["default-values", "42"]
    write(tests, """\
policy: vip_card
as_of: 2026-06-30
cases:
  - {name: same, customer: {id: x}, expect: {tier: gold}}
  - {name: same, customer: {id: x}, expect: {tier: gold}}
""")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    assert diagnostics(info) == [
        f"{tests}:5:5: cases[1]: customer id 'x' is also used by 'same' ({tests}:4:5)",
        f"{tests}:5:5: cases[1]: duplicate case name 'same' (first at {tests}:4:5)",
    ]


# ---- problems in test files --------------------------------------------------------------------

def test_schema_errors_are_reported_with_positions(tmp_path):
    tests = write(tmp_path / "bad.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - name: typo
    expct: {tier: gold}
  - name: types
    orders: [[-3x, abc]]
    generate: {orders_12m: -1}
    expect: {tier: 5}
""")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    assert diagnostics(info) == [
        f"{tests}:4:5: cases[0]: missing required key 'expect'",
        f"{tests}:5:5: cases[0].expct: unknown key 'expct'; did you mean 'expect'?",
        f"{tests}:7:15: cases[1].orders[0][0]: \"-3x\" is not in the expected form. A date: YYYY-MM-DD, or relative "
        f"to as_of: -30d, -2w, -6m, -3y, -13m-10d (+ for later dates).",
        f"{tests}:7:20: cases[1].orders[0][1]: expected number, got text \"abc\"",
        f"{tests}:8:28: cases[1].generate.orders_12m: -1 is less than the minimum of 0",
        f"{tests}:9:20: cases[1].expect.tier: expected string, got a number 5",
    ]
    assert "`crm-rules schema --test` prints the format" in info.value.hint  # not a path that is not there


def test_expectations_are_checked_against_the_policy(tmp_path):
    tests = write(tmp_path / "names.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - name: names
    expect: {tier: golde, stage: gone, revenu_12m: 4, actions: [double_point], service_level: gold-prio, subgrade: A1}
  - name: columns
    table:
      columns: [name, revenue, expect.tier]
      rows: [[a, 1, gold]]
""")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    assert diagnostics(info) == [
        f"{tests}:5:20: cases[0].expect.tier: unknown tier 'golde'; did you mean 'gold'?; tiers: diamond, gold, silver, standard",
        f"{tests}:5:34: cases[0].expect.stage: unknown stage 'gone'; stages: lost, decline, identification, development, stable",
        f"{tests}:5:52: cases[0].expect.revenu_12m: unknown name 'revenu_12m'; did you mean 'revenue_12m'?: expect a grade "
        f"(tier, subgrade, stage, service_level, credit_outcome, actions, actions_include) or a metric, plugin output or "
        f"attribute of the policy",
        f"{tests}:5:64: cases[0].expect.actions: the policy generates no action 'double_point'; did you mean "
        f"'double_points'?; actions: churn_alert, double_points, membership_renewal, upgrade_review",
        f"{tests}:5:95: cases[0].expect.service_level: unknown service level 'gold-prio'; did you mean 'gold-priority'?",
        f"{tests}:5:116: cases[0].expect.subgrade: unknown sub-grade 'A1'; the policy has no sub-grades",
        f"{tests}:8:23: cases[1].table.columns[1]: unknown column 'revenue'; did you mean 'revenue_12m'?: use name, id, "
        f"a customer column (customer.X), a generator (revenue_12m, orders_12m, margin_12m, recency_days, complaints_12m, "
        f"referrals_12m) or expect.X",
    ]


def test_expected_values_must_have_the_type_of_what_they_check(tmp_path):
    """A quoted number, true for a count, an empty range: errors at their line with the fix, not failing cases
    that print `expected 180000, got 180000`."""
    tests = write(tmp_path / "types.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - name: gold regular
    generate: {revenue_12m: 180_000, orders_12m: 12}
    expect:
      revenue_12m: "180000"
      orders_12m: true
      margin_12m: {min: 20, max: 10}
      region: 5
      since: 2021
      recency_days: "abc"
  - name: table
    table:
      columns: [name, revenue_12m, expect.revenue_12m, expect.region]
      rows: [[a, 5, "1,000.5", no]]
""")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    number = "expected a number ({} is a numeric metric)"
    assert diagnostics(info) == [
        f"{tests}:7:20: cases[0].expect.revenue_12m: {number.format('revenue_12m')}, got the text '180000': "
        f"write 180000, without quotes",
        f"{tests}:8:19: cases[0].expect.orders_12m: {number.format('orders_12m')}, got true: write the number it must be "
        f"(e.g. orders_12m: 12) or a range (e.g. orders_12m: {{min: 1}})",
        f"{tests}:9:19: cases[0].expect.margin_12m: min 20 is above max 10, so no value can pass: write {{min: 10, max: 20}}",
        f"{tests}:10:15: cases[0].expect.region: expected text (region is a text attribute), got 5: write '5', in quotes",
        f"{tests}:11:14: cases[0].expect.since: expected a date (since is a date attribute), got 2021: write YYYY-MM-DD "
        f"or a date relative to as_of such as -30d",
        f"{tests}:12:21: cases[0].expect.recency_days: {number.format('recency_days')}, got the text 'abc': write a number, "
        f"{{min: a, max: b}} or {{approx: x, tolerance: t}}",
        f"{tests}:16:21: cases[1].table.rows[0][2]: {number.format('revenue_12m')}, got the text '1,000.5': "
        f"write 1000.5, without quotes",
        f"{tests}:16:32: cases[1].table.rows[0][3]: expected text (region is a text attribute), got false: quote the text "
        f"(YAML reads yes/no/on/off unquoted as true/false)",
    ]

    write(tmp_path / "rows.csv", "name,segment,customer.vip,expect.vip,expect.segment,expect.since\nx,100,true,true,100,-5y\n")
    shop = write(tmp_path / "shop.test.yaml", f"""\
policy: {OWN_NAMES / 'shop.yaml'}
as_of: 2026-06-30
cases:
  - name: typed
    customer: {{vip: true, segment: "100"}}
    expect: {{vip: "true", segment: {{min: 1}}, since: -5y}}
  - name: from csv
    table: {{csv: rows.csv}}
""")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([shop])
    assert diagnostics(info) == [
        f"{shop}:6:19: cases[0].expect.vip: expected true or false (vip is a true/false attribute), got the text 'true': "
        f"write true, without quotes",
        f"{shop}:6:36: cases[0].expect.segment: expected text (segment is a text attribute), got the range {{min: 1}}: "
        f"a range is for numbers",
    ]
    write(shop, shop.read_text(encoding="utf-8").replace('vip: "true", segment: {min: 1}', 'vip: true, segment: "100"'))
    report = run_policy_tests([shop])  # CSV cells are read as the type they check; relative dates count from as_of
    assert report["ok"], format_report(report)
    assert case(report, "from csv[x]")["expected"] == {"vip": True, "segment": "100", "since": "2021-06-30"}
    assert case(report, "from csv[x]")["actual"] == {"vip": True, "segment": "100", "since": "2021-06-30"}


def test_policy_naming_a_test_file_or_a_directory(tmp_path, cli):
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies" / "small.yaml", SMALL_POLICY)
    write(tmp_path / "small.yaml", SMALL_POLICY)
    cases = "as_of: 2026-06-30\ncases: [{name: a, expect: {tier: gold}}]\n"
    own = write(tmp_path / "own.test.yaml", "policy: small.test.yaml\n" + cases)
    other = write(tmp_path / "other.test.yaml", "policy: vip.test\n" + cases)
    folder = write(tmp_path / "folder.test.yaml", "policy: policies/\n" + cases)
    with pytest.raises(PolicyError) as info:
        run_policy_tests([own])
    assert diagnostics(info) == [f"{own}:1:9: policy: 'small.test.yaml' is a policy test file, not a policy"]
    assert info.value.hint == "`policy:` names the policy this file tests: did you mean `policy: small.yaml`?"
    with pytest.raises(PolicyError) as info:
        run_policy_tests([other])
    assert diagnostics(info) == [f"{other}:1:9: policy: 'vip.test' is a policy test file, not a policy"]
    assert "not a test file" in info.value.hint  # no policy vip next to it: no suggestion
    with pytest.raises(PolicyError) as info:
        run_policy_tests([folder])
    assert diagnostics(info) == [f"{folder}:1:9: policy: 'policies/' is a directory, not a policy file"]
    assert info.value.hint == "name a policy file in it, e.g. `policy: policies/small.yaml`"
    shown = cli("test", own)  # was: exit 2 and no file or line
    assert shown.exit_code == 1 and f"{own}:1:9: policy: 'small.test.yaml' is a policy test file" in shown.output


def test_every_invalid_file_is_reported_before_anything_runs(tmp_path):
    good = write(tmp_path / "good.test.yaml", "policy: vip_card\nas_of: 2026-06-30\ncases: [{name: a, expect: {tier: gold}}]\n")
    bad1 = write(tmp_path / "bad1.test.yaml", "policy: vip_card\nas_of: 2026-13-01\ncases: [{name: a, expect: {tier: gold}}]\n")
    bad2 = write(tmp_path / "bad2.test.yaml", "as_of: 2026-06-30\ncases: [{name: a, expect: {tier: gold}}]\n")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([good, bad1, bad2])
    assert diagnostics(info) == [
        f"{bad1}:2:8: as_of: '2026-13-01' is not a real date",
        f"{bad2}:1:1: no policy bad2.yaml next to this test file; name the policy with `policy:`",
    ]


# ---- policies with their own tables and columns (`data:`) --------------------------------------------

def test_policy_with_its_own_tables_and_columns(tmp_path):
    """The test database is built with the tables and columns the policy's data mapping names."""
    report = run_policy_tests([OWN_NAMES])
    assert report["ok"] and report["passed"] == 7, format_report(report)
    [cov] = report["coverage"]
    assert cov["complete"] and cov["service_levels"]["unexercised"] == []
    web = case(report, "web shop")  # rows by name, with the policy's own order column (channel)
    assert web["actual"]["web_revenue_12m"] == 12_000 and web["actual"]["profit_12m"] == 16_000
    assert case(report, "new customer from an export")["actual"]["since"] == "2026-02-28"  # since: -4m

    tf = load_test_file(OWN_NAMES / "shop.test.yaml")
    assert database_schema(tf.layout) == [
        ("clients", [("client_no", "TEXT"), ("client_name", "TEXT"), ("area", "TEXT"), ("signup_date", "TEXT"),
                     ("credit_cap", "REAL"), ("segment", "TEXT"), ("is_vip", "INTEGER"), ("lead_source", "TEXT")], True),
        ("sales", [("client_no", "TEXT"), ("sold_on", "TEXT"), ("net_amount", "REAL"), ("unit_cost", "REAL"),
                   ("sales_channel", "TEXT")], False),
        ("invoices", [("client_no", "TEXT"), ("invoiced_on", "TEXT"), ("due_on", "TEXT"), ("total", "REAL"), ("paid", "REAL"),
                      ("paid_on", "TEXT")], False),
        ("contacts", [("client_no", "TEXT"), ("contact_date", "TEXT"), ("contact_type", "TEXT")], False),
        ("agreements", [("client_no", "TEXT"), ("begins", "TEXT"), ("ends", "TEXT"), ("plan", "TEXT")], False),
    ]
    by_name = {c.name: c for c in tf.cases}
    assert by_name["by segment[retail vip]"].customer["vip"] == 1 and by_name["web shop"].customer["vip"] == 0
    assert "industry" not in by_name["web shop"].customer  # the policy maps industry to null: its default is dropped
    assert by_name["web shop"].histories["orders"] == [("2026-06-20", 8_000, 0, 0, "web"), ("2026-05-21", 4_000, 1_000, 0, "web"),
                                                       ("2026-04-21", 5_000, 0, 0, None)]
    db = tmp_path / "shop.db"
    _write_database(db, tf)
    conn = sqlite3.connect(db)
    try:
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {
            "clients", "sales", "invoices", "contacts", "agreements"}
        assert conn.execute("SELECT area, segment, is_vip, signup_date FROM clients WHERE client_no = 'web-shop'").fetchone() == (
            "North", "retail", 0, "2021-06-30")
        assert conn.execute("SELECT sold_on, net_amount, sales_channel FROM sales WHERE client_no = 'new-customer-from-an-export' "
                            "ORDER BY sold_on").fetchall() == [("2026-05-16", 5_000, "store"), ("2026-06-15", 6_000, "web")]
    finally:
        conn.close()

    wrong = write(tmp_path / "wrong.test.yaml", f"""\
policy: {OWN_NAMES / 'shop.yaml'}
as_of: 2026-06-30
cases:
  - name: wrong segment
    customer: {{segment: retail, vip: true}}
    generate: {{revenue_12m: 150_000}}
    expect: {{tier: key, vip: false}}
""")
    failed = run_policy_tests([wrong])
    [miss] = failed["failures"]
    assert [(m["key"], m["expected"], m["actual"]) for m in miss["mismatches"]] == [("tier", "key", "regular"), ("vip", False, True)]
    assert "failed: segment = 'enterprise'  (segment = retail)" in miss["explanation"]


def test_policies_mapping_only_some_names(tmp_path):
    """A `data:` section that renames one table or one column: the rest keeps the demo schema's names."""
    write(tmp_path / "clients.yaml", "extends: vip_card\nname: clients\ndata:\n  customers: {table: clients, id: client_id}\n")
    write(tmp_path / "net.yaml", "extends: vip_card\nname: net\ndata:\n  orders: {amount: net_amount}\n")
    for name in ("clients", "net"):
        write(tmp_path / f"{name}.test.yaml", "as_of: 2026-06-30\ncases:\n  - {name: gold, generate: {revenue_12m: 180_000, "
                                              "orders_12m: 12}, expect: {tier: gold, revenue_12m: 180_000}}\n")
    report = run_policy_tests([tmp_path])
    assert report["ok"] and report["passed"] == 2, format_report(report)
    tables = {name: {t: columns for t, columns, _ in database_schema(load_test_file(tmp_path / f"{name}.test.yaml").layout)}
              for name in ("clients", "net")}
    assert sorted(tables["clients"]) == ["clients", "contracts", "interactions", "orders", "receivables"]
    assert tables["clients"]["clients"][0] == ("client_id", "TEXT")
    assert tables["net"]["orders"] == [("customer_id", "TEXT"), ("order_date", "TEXT"), ("net_amount", "REAL"), ("cost", "REAL"),
                                       ("discount", "REAL")]


def test_data_mapping_problems_are_reported_at_their_place(tmp_path):
    write(tmp_path / "sales.csv", "sold_on,amount,chanel,discount\n-1d,5,web,3\n")
    tests = write(tmp_path / "shop.test.yaml", f"""\
policy: {OWN_NAMES / 'shop.yaml'}
as_of: 2026-06-30
defaults:
  customer: {{account_manager: Li Wei}}
cases:
  - name: problems
    customer: {{segmnt: retail, industry: retail, vip: "yes", created_at: -1y, since: -2y}}
    orders:
      - {{date: -10d, amount: 5, chanel: web}}
      - [-20d, 5, 1, 2]
      - {{amount: 5}}
    expect: {{tier: key}}
  - name: table
    table:
      columns: [name, segment, customer.segment, expect.tier]
      rows: [[a, x, y, key]]
  - {{name: csv, orders_csv: sales.csv, generate: {{margin_12m: 0.5, revenue_12m: 10}}, expect: {{tier: key}}}}
""")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    unmapped = "so the test database has none: remove the value, or map the column in the policy's data section"
    assert diagnostics(info) == [
        f"{tmp_path / 'sales.csv'}:1:16: chanel: unknown column 'chanel' for orders; did you mean 'channel'?; "
        f"columns: order_date, amount, cost, discount, channel",
        f"{tests}:4:31: defaults.customer.account_manager: the policy maps no column for account_manager "
        f"(data.customers.attributes.account_manager is null), {unmapped}",
        f"{tests}:7:16: cases[0].customer.segmnt: unknown customer column 'segmnt'; did you mean 'segment'?; a customer has: "
        f"id, name, region, since (or created_at), credit_limit, segment, vip, lead_source (declare another attribute under "
        f"data.customers.attributes of the policy)",
        f"{tests}:7:42: cases[0].customer.industry: the policy maps no column for industry "
        f"(data.customers.attributes.industry is null), {unmapped}",
        f"{tests}:7:55: cases[0].customer.vip: expected true or false, got 'yes'",
        f"{tests}:7:79: cases[0].customer.since: 'since' and 'created_at' both set since: give one",
        f"{tests}:9:33: cases[0].orders[0].chanel: unknown column 'chanel' for orders; did you mean 'channel'?; "
        f"columns: order_date, amount, cost, discount, channel",
        f"{tests}:10:22: cases[0].orders[1][3]: discount: the policy maps no column for discount "
        f"(data.orders.columns.discount is null), {unmapped}",
        f"{tests}:11:9: cases[0].orders[2]: orders: order_date is required",
        f"{tests}:15:32: cases[1].table.columns[2]: columns 'segment' and 'customer.segment' set the same value (segment)",
    ]


# ---- coverage ----------------------------------------------------------------------------------

SMALL_POLICY = """\
name: small
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  recency_days: {recency: orders}
tiers:
  levels:
    - id: gold
      when: revenue_12m >= 10_000
      subgrades:
        - {id: gold_plus, when: "revenue_12m >= 50_000"}
        - {id: gold_base, default: true}
    - {id: silver, when: "revenue_12m >= 1_000"}
    - {id: bronze, default: true}
lifecycle:
  stages:
    - {id: lapsed, when: "recency_days is null or recency_days > 180"}
    - {id: active, default: true}
service_levels:
  - {id: gold-care, tier: gold}
  - {id: silver-care, tier: silver}
  - {id: bronze-care, tier: bronze}
"""


def test_coverage_lists_exactly_the_rules_no_case_exercises(tmp_path):
    policy = write(tmp_path / "small.yaml", SMALL_POLICY)
    write(tmp_path / "small.test.yaml", """\
as_of: 2026-06-30
cases:
  - name: gold customer
    generate: {revenue_12m: 20_000}
    expect: {tier: gold, subgrade: gold_base, stage: active}
  - name: silver customer checks only a metric
    generate: {revenue_12m: 2_000}
    expect: {revenue_12m: 2_000}
  - name: no orders
    expect: {stage: lapsed, service_level: bronze-care}
""")
    report = run_policy_tests([policy])  # a policy: its test file next to it
    assert report["ok"]
    [cov] = report["coverage"]
    assert cov["policy"] == "small" and cov["policy_file"] == str(policy) and not cov["complete"]
    assert {k: (cov[k]["exercised"], cov[k]["unexercised"]) for k in KINDS} == {
        "tiers": (["gold"], ["silver", "bronze"]),  # bronze decided "no orders", which does not check its tier
        "subgrades": (["gold_base"], ["gold_plus"]),
        "stages": (["lapsed", "active"], []),
        "service_levels": (["bronze-care"], ["gold-care", "silver-care"]),
    }
    assert [r["cases"] for r in cov["tiers"]["rules"]] == [1, 0, 0]
    text = format_report(report, coverage=True)
    assert f"small ({policy}): tiers 1/3, sub-grades 1/2, stages 2/2, service levels 1/3" in text
    assert [line for line in text.splitlines() if "not exercised" in line] == [
        f"  not exercised: tier silver ({policy}:12)",
        f"  not exercised: tier bronze ({policy}:13, default)",
        f"  not exercised: sub-grade gold_plus ({policy}:10)",
        f"  not exercised: service level gold-care ({policy}:19)",
        f"  not exercised: service level silver-care ({policy}:20)",
    ]
    assert "not exercised" not in format_report(report)  # only with --coverage


def test_shipped_policies_come_with_passing_tests_and_full_coverage():
    tests = sorted(p.name for p in SHIPPED.glob("*.test.yaml"))
    assert tests == [f"{name}.test.yaml" for name in shipped_policy_names()]
    report = run_policy_tests([SHIPPED])
    assert report["ok"], format_report(report)
    assert sorted(c["policy"] for c in report["coverage"]) == shipped_policy_names()
    for cov in report["coverage"]:
        assert cov["complete"], cov["policy"]
        assert {k: cov[k]["unexercised"] for k in KINDS} == {k: [] for k in KINDS}, cov["policy"]
    base = next(c for c in report["coverage"] if c["policy"] == "base")
    assert base["tiers"]["exercised"] == ["A", "B", "C"] and base["subgrades"]["exercised"] == ["A1", "A2"]


# ---- semantics -----------------------------------------------------------------------------------

def test_cases_of_a_file_are_graded_together_as_one_population(tmp_path):
    """Pareto tiers depend on everyone in the file: the same customer is A alone and C next to a giant."""
    alone = write(tmp_path / "alone.test.yaml", """\
policy: base
as_of: 2026-06-30
cases:
  - {name: shop, generate: {revenue_12m: 100_000}, expect: {tier: A}}
""")
    crowd = write(tmp_path / "crowd.test.yaml", """\
policy: base
as_of: 2026-06-30
population:
  - {name: giant, generate: {revenue_12m: 10_000_000}}
cases:
  - {name: shop, generate: {revenue_12m: 100_000}, expect: {tier: C, _tier_share: {min: 0.99}}}
""")
    with pytest.raises(PolicyError, match="unknown name '_tier_share'"):
        run_policy_tests([crowd])  # engine-internal helpers are not part of a policy's names
    write(crowd, crowd.read_text().replace(", _tier_share: {min: 0.99}", ""))
    report = run_policy_tests([alone, crowd])
    assert report["ok"], format_report(report)
    assert [f["population"] for f in report["files"]] == [0, 1]
    assert [c["customer_id"] for c in report["cases"]] == ["shop", "shop"]  # one database per file


def test_a_file_of_one_case_says_one_case(tmp_path, cli):
    write(tmp_path / "small.yaml", SMALL_POLICY)
    tests = write(tmp_path / "small.test.yaml", "as_of: 2026-06-30\n"
                                                "cases: [{name: a, generate: {revenue_12m: 20_000}, expect: {tier: gold}}]\n")
    assert "as of 2026-06-30, 1 case) ." in format_report(run_policy_tests([tests]))  # was "1 cases"
    assert "(policy tests for small, 1 case)" in cli("validate", tests, ok=True).output


def test_finding_test_files(tmp_path):
    policy = write(tmp_path / "small.yaml", SMALL_POLICY)
    with pytest.raises(UsageError, match="no test file .*small.test.yaml next to this policy") as missing:
        find_test_files([policy])
    assert "`as_of: 2026-06-30` and `cases: [" in missing.value.hint and "test --help" not in missing.value.hint  # its help has no format
    with pytest.raises(UsageError, match="no test files"):
        find_test_files([tmp_path])
    with pytest.raises(UsageError, match="nothing-here: not found"):
        find_test_files([tmp_path / "nothing-here"])
    tests = write(tmp_path / "small.test.yaml", "as_of: 2026-06-30\ncases: [{name: a, expect: {tier: gold}}]\n")
    assert find_test_files([policy, tests, tmp_path]) == [policy.with_name("small.test.yaml")]
    assert find_test_files(["base"]) == [SHIPPED / "base.test.yaml"]


def test_test_files_are_not_policies():
    assert shipped_policy_names() == ["b2b_export", "b2b_key_account", "bank_profitability", "base", "hotel_vip",
                                      "retail_rfm", "supermarket_ka", "vip_card"]
    for path in SHIPPED.glob("*.test.yaml"):
        load_test_file(path)
        with pytest.raises(UsageError, match="is a policy test file, not a policy"):
            load_policy(path)


def test_demo_folder_tests_pass(cli, tmp_path):
    """`crm-rules demo` copies the test files with the policies; they pass there too."""
    cli("demo", "--dir", tmp_path / "demo", "--customers", "30", ok=True)
    copied = tmp_path / "demo" / "policies"
    assert sorted(p.name for p in copied.glob("*.test.yaml")) == [f"{n}.test.yaml" for n in shipped_policy_names()]
    report = run_policy_tests([copied])
    shipped_cases = sum(len(load_test_file(p).cases) for p in SHIPPED.glob("*.test.yaml"))
    assert report["ok"] and report["passed"] == shipped_cases, format_report(report)


@pytest.mark.skipif("test" not in {c.name for c in app.registered_commands}, reason="`crm-rules test` not in cli.py yet")
def test_cli_test_command(cli):
    ok = cli("test", SHIPPED / "base.yaml", "--coverage")
    assert ok.exit_code == 0, ok.output
    assert "9 passed" in ok.output and "base (" in ok.output and "tiers 3/3" in ok.output
    failing = cli("test", FAILING)
    assert failing.exit_code == 1 and "FAILURES" in failing.output and "expected diamond, got standard" in failing.output
    as_json = cli("test", FAILING, "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.output)["failed"] == 3
    assert cli("test", "no-such-thing").exit_code == 2


# ---- invalid test files: tests/policy_tests/invalid/<case>/ ----------------------------------------------

@pytest.mark.parametrize("folder", sorted(p for p in INVALID.iterdir() if p.is_dir()), ids=lambda p: p.name)
def test_invalid_test_files_are_reported_at_their_place(folder):
    """Each folder's case.test.yaml is invalid: every problem at its file:line:col, as expected.txt lists them
    ({dir}: the folder; a line `hint: x`: the hint contains x), and nothing runs."""
    expected = folder.joinpath("expected.txt").read_text(encoding="utf-8").replace("{dir}", str(folder)).splitlines()
    with pytest.raises(PolicyError) as info:
        run_policy_tests([folder / "case.test.yaml"])
    assert info.value.subject  # a problem of a test file: the CLI's summary names its files
    assert diagnostics(info) == [line for line in expected if not line.startswith("hint: ")]
    for line in expected:
        if line.startswith("hint: "):
            assert line[len("hint: "):] in (info.value.hint or "")
    assert "Traceback" not in str(info.value)


def test_problems_of_a_test_file_and_its_csv_files_are_not_the_policys(tmp_path):
    """A CSV table's problem is a test-file problem (a PolicyError whose subject names the files for the CLI's
    summary line), not "1 problem in the policy"; a problem of the policy under test stays the policy's."""
    write(tmp_path / "cards.csv", "name,revenue_12m,orders_12m,expect.tier\n金卡,180000,12,gold\n坏,abc,12,gold\n")
    tests = write(tmp_path / "t.test.yaml", "policy: vip_card\nas_of: 2026-06-30\ncases: [{name: t, table: {csv: cards.csv}}]\n")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tests])
    assert diagnostics(info) == [f"{tmp_path / 'cards.csv'}:3:3: revenue_12m: expected a number, got \"abc\""]
    assert info.value.subject == str(tmp_path / "cards.csv")

    write(tmp_path / "broken.yaml", "name: broken\ntiers: {levels: [{id: a, when: revenu > 1}, {id: b, default: true}]}\n")
    write(tmp_path / "broken.test.yaml", "as_of: 2026-06-30\ncases: [{name: a, expect: {tier: a}}]\n")
    with pytest.raises(PolicyError) as info:
        run_policy_tests([tmp_path / "broken.test.yaml"])
    assert getattr(info.value, "subject", None) is None
    assert all(d.file.endswith("broken.yaml") for d in info.value.diagnostics)


def test_cli_summary_of_a_csv_problem_names_the_file(tmp_path, cli):
    write(tmp_path / "cards.csv", "name,revenue_12m,expect.tier\n坏,abc,gold\n")
    tests = write(tmp_path / "t.test.yaml", "policy: vip_card\nas_of: 2026-06-30\ncases: [{name: t, table: {csv: cards.csv}}]\n")
    result = cli("test", tests)
    assert result.exit_code == 1 and f"{tmp_path / 'cards.csv'}:2:3: revenue_12m" in result.output
    assert "in the policy" not in result.output and f"1 problem in {tmp_path / 'cards.csv'}" in result.output


def test_a_test_file_that_is_empty_or_a_database_is_said_to_be_a_test_file(tmp_path, cli):
    empty = write(tmp_path / "empty.test.yaml", "")
    result = cli("test", empty)
    assert result.exit_code == 1 and f"{empty}:1:1: the file is empty" in result.output
    assert "a test file gives as_of and cases" in result.output and "start from a shipped policy" not in result.output
    database = tmp_path / "db.test.yaml"
    sqlite3.connect(database).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(UsageError, match="is a SQLite database, not a policy test file") as info:
        run_policy_tests([database])
    assert "--db" not in (info.value.hint or "")


def test_csv_cells_keep_their_text_for_ids_and_text_values(tmp_path):
    """A CSV cell 007 is the number 7 to a numeric column, but the id '007' and the region '001' as written."""
    write(tmp_path / "rows.csv", "name,id,region,expect.region,expect.revenue_12m\n007,007,001,001,100\nb,8,1.50,1.50,100\n")
    tests = write(tmp_path / "t.test.yaml", "policy: vip_card\nas_of: 2026-06-30\n"
                                            "cases: [{name: t, generate: {revenue_12m: 100}, table: {csv: rows.csv}}]\n")
    report = run_policy_tests([tests])
    assert report["ok"], format_report(report)
    assert [(c["name"], c["customer_id"]) for c in report["cases"]] == [("t[007]", "007"), ("t[b]", "8")]
    assert [c["actual"]["region"] for c in report["cases"]] == ["001", "1.50"]


def test_numbers_beyond_sqlite_integers_are_stored_as_reals(tmp_path):
    """An amount of 10^23 was an OverflowError (Python int too large to convert to SQLite INTEGER)."""
    tests = write(tmp_path / "t.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - name: big
    customer: {credit_limit: 100_000_000_000_000_000_000_000}
    orders: [[-1d, 100_000_000_000_000_000_000_000]]
    expect: {revenue_12m: 100_000_000_000_000_000_000_000, credit_limit: 1.0e+23}
""")
    report = run_policy_tests([tests])
    assert report["ok"], format_report(report)
    assert load_test_file(tests).cases[0].histories["orders"] == [("2026-06-29", 1e23, 0, 0)]


def test_failing_ranges_read_as_written(tmp_path):
    tests = write(tmp_path / "t.test.yaml", """\
policy: vip_card
as_of: 2026-06-30
cases:
  - {name: at least, generate: {revenue_12m: 100}, expect: {revenue_12m: {min: 500}}}
  - {name: at most, generate: {revenue_12m: 100}, expect: {revenue_12m: {max: 50}}}
  - {name: between, generate: {revenue_12m: 100}, expect: {revenue_12m: {min: 1, max: 50}}}
  - {name: approx, generate: {revenue_12m: 100}, expect: {revenue_12m: {approx: 180_000}}}
""")
    text = format_report(run_policy_tests([tests]))
    assert [line.strip() for line in text.splitlines() if "expected" in line] == [
        "revenue_12m  expected at least 500, got 100",  # was: between 500 and inf
        "revenue_12m  expected at most 50, got 100",
        "revenue_12m  expected between 1 and 50, got 100",
        "revenue_12m  expected 180000 ± 0.00018, got 100",  # the tolerance used (relative), not 1e-09
    ]


def test_a_full_width_semicolon_separates_the_actions_of_a_csv_cell(tmp_path):
    write(tmp_path / "cases.csv", "name,revenue_12m,orders_12m,expect.tier,expect.actions\n"
                                  "a,200000,12,gold,double_points；upgrade_review\n"
                                  "b,200000,12,gold,double_points; upgrade_review\n")
    tests = write(tmp_path / "t.test.yaml", "policy: vip_card\nas_of: 2026-06-30\ncases:\n"
                                            "  - {name: cards, table: {csv: cases.csv}}\n")
    loaded = load_test_file(tests)
    assert [c.expect["actions"] for c in loaded.cases] == [["double_points", "upgrade_review"]] * 2


def test_decimal_commas_of_a_semicolon_separated_table_are_numbers(tmp_path):
    """European Excel writes 12,5 and 1.234,56 in ';'-separated files: they are numbers, read as import reads them;
    ids with leading zeros and columns of plain integers stay as they were."""
    write(tmp_path / "cases.csv", "name;id;revenue_12m;expect.revenue_12m;orders_12m\n"
                                  "a;007;1.234,56;1.234,56;12\n"
                                  "b;8;250.000;250000;3\n"
                                  "c;9;99,5;99,5;1\n")
    tests = write(tmp_path / "t.test.yaml", "policy: vip_card\nas_of: 2026-06-30\ncases:\n"
                                            "  - {name: eu, table: {csv: cases.csv}}\n")
    loaded = load_test_file(tests)
    assert [c.expect["revenue_12m"] for c in loaded.cases] == [1234.56, 250000, 99.5]
    report = run_policy_tests([tests])
    assert report["ok"], format_report(report)
    assert [(c["customer_id"], c["actual"]["revenue_12m"]) for c in report["cases"]] == [
        ("007", 1234.56), ("8", 250000), ("9", 99.5)]


def test_the_policy_overrides_are_left_out_of_its_tests(cli, tmp_path):
    # they name customers of the user's data: every one stopped the test as 'not in the customers table'
    (tmp_path / "ov.yaml").write_text("- {customer: C000001, tier: A, reason: strategic, author: li, expires: 2099-01-31}\n")
    (tmp_path / "p.yaml").write_text("metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
                                     "tiers:\n  levels: [{id: A, when: 'revenue_12m > 1000'}, {id: B, default: true}]\n"
                                     "overrides: {file: ov.yaml}\n")
    (tmp_path / "p.test.yaml").write_text("as_of: 2026-06-30\ncases:\n"
                                          "  - {name: small, generate: {revenue_12m: 10}, expect: {tier: B}}\n")
    result = cli("test", tmp_path / "p.yaml")
    assert result.exit_code == 0, result.output
    assert "note: the policy's overrides (file ov.yaml) are not applied to the test customers" in result.output
    report = json.loads(cli("test", tmp_path / "p.yaml", "--json", ok=True).output)
    assert report["files"][0]["test_notes"][0].startswith("the policy's overrides")
