"""What people read: which way a failed threshold misses, non-finite values, wide characters, counts.

Each test pins a wording or a layout that once was wrong: "short by" for a value that must come
down, ``Infinity`` in JSON, a FAILURES rule four cells too long under a Chinese case name, 1516
without its thousands separator, blank stage headers, and an error about a `default: true` nobody
wrote.
"""

from __future__ import annotations

import io
import json
import math

import pytest
from rich.cells import cell_len
from rich.console import Console

from conftest import AS_OF
from crm_rules.engine.counterfactuals import shortfall, value_text
from crm_rules.engine.errors import PolicyError
from crm_rules.engine.explain import explain_customer
from crm_rules.engine.export import json_ready
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.policy_test_report import _banner, explanation_text, format_report
from crm_rules.engine.policy_tests import run_policy_tests
from crm_rules.engine.render import fmt_number, print_summary
from crm_rules.engine.runner import apply_policy
from small_db import make_db

# One customer "c1": no orders (rev = 0), created 2020-01-01 (tenure 6.49 years on AS_OF).
THRESHOLDS = """\
metrics:
  rev: {sum: amount, window: 12 months}
  tenure_years: {tenure: years}
  huge: {expr: "1e400"}
tiers:
  levels:
    - {id: A, when: "tenure_years < 0.5"}
    - {id: B, when: "rev > 0"}
    - {id: C, when: "0.5 > tenure_years"}
    - {id: D, when: "huge < 5"}
    - {id: E, when: "rev between 10 and 20"}
    - {id: F, when: "rev = 3"}
    - {id: H, when: "rev != 0"}
    - {id: I, when: "rev >= 1_500"}
    - {id: G, default: true}
"""


def strict_json(text: str):
    """JSON as a strict reader (JSON.parse, jq) takes it: no Infinity, -Infinity or NaN."""
    def refuse(word: str):
        raise AssertionError(f"{word} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def one_customer(tmp_path):
    db = make_db(tmp_path / "one.db", [("c1", "One", "r")])
    policy = tmp_path / "thresholds.yaml"
    policy.write_text(THRESHOLDS, encoding="utf-8")
    return db, policy


# ---- 1. which way a failed test misses ---------------------------------------------------------

@pytest.mark.parametrize("check,words", [
    ({"op": ">=", "value": 39_000, "threshold": 40_000}, "short by 1,000"),
    ({"op": ">", "value": 3, "threshold": 5}, "short by 2"),
    ({"op": ">", "value": 0, "threshold": 0}, "must be above 0"),
    ({"op": "<", "value": 5, "threshold": 0.5}, "over by 4.50"),
    ({"op": "<", "value": 0.5, "threshold": 0.5}, "must be below 0.5"),
    ({"op": "<=", "value": 7, "threshold": 2}, "over by 5"),
    ({"op": "=", "value": 0, "threshold": 3}, "short by 3"),
    ({"op": "=", "value": 8, "threshold": 3}, "over by 5"),
    ({"op": "!=", "value": 3, "threshold": 3}, "must differ from 3"),
    ({"value": 0, "range": [10, 20]}, "short by 10"),
    ({"value": 25, "range": [10, 20]}, "over by 5"),
    ({"value": 15, "range": [20, 10]}, "the range 20 to 10 is empty"),
    ({"op": "<", "value": math.inf, "threshold": 5}, "over by ∞"),
    ({"op": ">=", "value": math.nan, "threshold": 5}, ""),  # NaN is neither short nor over
    ({"op": ">=", "value": 9, "threshold": 5}, ""),  # passed
    ({"op": "!=", "value": 4, "threshold": 3, "passed": True}, ""),
    ({"test": "region = 'x'", "values": {"region": "y"}}, ""),  # no numbers, nothing to measure
])
def test_shortfall_words(check, words):
    assert shortfall(check) == words


FAILED_CHECKS = [
    "failed: tenure_years < 0.5  (tenure_years = 6.49; over by 5.99)",
    "failed: rev > 0  (rev = 0; must be above 0)",
    "failed: 0.5 > tenure_years  (tenure_years = 6.49; over by 5.99)",
    "failed: huge < 5  (huge = ∞; over by ∞)",
    "failed: rev between 10 and 20  (rev = 0; short by 10)",
    "failed: rev = 3  (rev = 0; short by 3)",
    "failed: rev != 0  (rev = 0; must differ from 0)",
]


def test_explain_says_which_way_each_failed_test_misses(cli, one_customer):
    db, policy = one_customer
    text = cli("explain", "c1", "--db", db, "-p", policy, "--as-of", AS_OF, "--recompute", ok=True).output
    failed = [line.strip() for line in text.splitlines() if line.strip().startswith("failed:")]
    assert failed == FAILED_CHECKS + ["failed: rev >= 1_500  (rev = 0; short by 1,500)"]
    # = and != are thresholds too now: their counterfactuals name the value (at rev = 3, B's rev > 0 comes first)
    assert "  → F needs rev = 3 (now 0), but then B applies first\n" in text and "  → would be H if rev ≠ 0 (now 0)\n" in text


def test_policy_test_explanations_use_the_same_words(one_customer):
    db, policy = one_customer
    why = explanation_text(explain_customer(db, load_policy(policy), "c1", AS_OF, recompute=True))
    failed = [line.strip() for line in why.splitlines() if line.strip().startswith("failed:")]
    # the explanation in a test report writes its numbers as explain does
    assert failed == FAILED_CHECKS + ["failed: rev >= 1_500  (rev = 0; short by 1,500)"]


# ---- 2. infinite and NaN values ---------------------------------------------------------------

@pytest.mark.parametrize("value,text", [(math.inf, "∞"), (-math.inf, "-∞"), (math.nan, "NaN")])
def test_non_finite_values_read_as_symbols(value, text):
    assert value_text(value) == text
    assert fmt_number(value) == text


def test_json_ready_makes_non_finite_numbers_null():
    data = {"a": math.inf, "b": [1.5, -math.inf, (math.nan, "x")], "c": {"d": True, "e": None, "f": 2}}
    assert json_ready(data) == {"a": None, "b": [1.5, None, [None, "x"]], "c": {"d": True, "e": None, "f": 2}}


def test_explanation_of_an_infinite_metric_is_valid_json(one_customer):
    db, policy = one_customer
    e = explain_customer(db, load_policy(policy), "c1", AS_OF, recompute=True)
    assert next(m["value"] for m in e["metrics"] if m["name"] == "huge") == math.inf  # the terminal shows ∞
    data = strict_json(json.dumps(json_ready(e), allow_nan=False, ensure_ascii=False, default=str))
    assert next(m["value"] for m in data["metrics"] if m["name"] == "huge") is None
    (check,) = next(r for r in data["tier"]["rules"] if r["id"] == "D")["checks"]
    assert check["values"] == {"huge": None, "5": 5} and check["value"] is None and check["gap"] is None


def test_export_json_writes_infinity_as_null(cli, one_customer, tmp_path):
    db, policy = one_customer
    cli("apply", "--db", db, "-p", policy, "--as-of", AS_OF, ok=True)
    data = strict_json(cli("export", "--db", db, "--format", "json", ok=True).output)
    assert data["assignments"][0]["metrics"] == {"rev": 0, "tenure_years": 6.49, "huge": None}
    out = tmp_path / "run.json"
    cli("export", "--db", db, "--format", "json", "--out", out, ok=True)
    assert strict_json(out.read_text(encoding="utf-8"))["assignments"][0]["metrics"]["huge"] is None


def test_cli_explain_json_writes_infinity_as_null(cli, one_customer):
    db, policy = one_customer
    data = strict_json(cli("explain", "c1", "--db", db, "-p", policy, "--as-of", AS_OF, "--json", ok=True).output)
    assert next(m["value"] for m in data["metrics"] if m["name"] == "huge") is None


# ---- 3. wide characters in the test report ----------------------------------------------------

def test_banner_is_78_cells_wide_with_chinese_text():
    assert _banner("t3.test.yaml::金卡客户 wrong tier", "_") == "_" * 21 + " t3.test.yaml::金卡客户 wrong tier " + "_" * 22
    assert cell_len(_banner("t3.test.yaml::金卡客户 wrong tier", "_")) == 78 == len(_banner("FAILURES"))


def test_failures_report_lines_up_under_chinese_case_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t3.test.yaml").write_text(
        "policy: vip_card\nas_of: 2026-06-30\ncases:\n"
        "  - name: 金卡客户 wrong tier\n    generate: {revenue_12m: 900_000}\n    expect: {tier: diamond}\n",
        encoding="utf-8")
    text = format_report(run_policy_tests(["t3.test.yaml"]))
    rules = [line for line in text.splitlines() if line.startswith(("===", "___"))]
    assert rules[:2] == ["=" * 34 + " FAILURES " + "=" * 34,
                         "_" * 21 + " t3.test.yaml::金卡客户 wrong tier " + "_" * 22]
    assert [cell_len(line) for line in rules] == [78] * len(rules)


def test_failure_report_rules_fit_a_terminal_narrower_than_78(cli, columns, tmp_path, monkeypatch):
    # at 60 columns each rule of 78 took two lines
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t3.test.yaml").write_text(
        "policy: vip_card\nas_of: 2026-06-30\ncases:\n"
        "  - name: 金卡客户 wrong tier\n    generate: {revenue_12m: 900_000}\n    expect: {tier: diamond}\n",
        encoding="utf-8")
    for width, rule in ((60, 60), (100, 78)):
        columns(width)
        result = cli("test", "t3.test.yaml")
        assert result.exit_code == 1
        rules = [line for line in result.output.splitlines() if line.startswith(("===", "___"))]
        assert rules[0] == "=" * ((rule - 10) // 2) + " FAILURES " + "=" * ((rule - 10) // 2)
        assert [cell_len(line) for line in rules] == [rule] * len(rules)
        assert "金卡客户 wrong tier" in rules[1]


# ---- 4. thousands separators in notes ---------------------------------------------------------

def test_note_on_customers_without_service_level_has_thousands_separator(tmp_path):
    db = make_db(tmp_path / "many.db", [(f"c{i:04}", f"N{i}", "r") for i in range(1_516)])
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics: {rev: {sum: amount, window: 12 months}}\n"
                      "tiers: {levels: [{id: A, when: 'rev > 0'}, {id: B, default: true}]}\n"
                      "service_levels: [{id: gold, tier: A}]\n", encoding="utf-8")
    outcome = apply_policy(db, load_policy(policy), AS_OF, dry_run=True)
    assert "1,516 customer(s) match no service level (no entry for their tier/stage)" in outcome.notes


# ---- 5. stage headers -------------------------------------------------------------------------

def test_stage_columns_are_headed_by_the_stage_id_when_it_has_no_label():
    console = Console(width=60, file=io.StringIO(), color_system=None)
    summary = {"customers": 3, "tiers": {"A": {"customers": 1}, "B": {"customers": 2}},
               "stages": {"new": 2, "steady": 1}, "tier_stage": [("A", "new", 1), ("B", "new", 1), ("B", "steady", 1)]}
    labels = {"tiers": {"A": "", "B": ""}, "stages": {"new": "", "steady": "稳定"}}  # cli._labels: "" for no label
    print_summary(console, summary, labels, "header")
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]
    assert lines[lines.index("and lifecycle stage"):] == [
        "and lifecycle stage",
        "┏━━━━━━┳━━━━━┳━━━━━━┓",
        "┃ Tier ┃ new ┃ 稳定 ┃",
        "┡━━━━━━╇━━━━━╇━━━━━━┩",
        "│ A    │   1 │    0 │",
        "│ B    │   1 │    1 │",
        "│ all  │   2 │    1 │",
        "└──────┴─────┴──────┘",
    ]


# ---- 6. pareto levels with `when` -------------------------------------------------------------

def test_pareto_level_with_when_is_not_called_a_default(tmp_path):
    policy = tmp_path / "pareto.yaml"
    policy.write_text("metrics: {rev: {sum: amount, window: 12 months}}\n"
                      "tiers:\n  method: pareto\n  metric: rev\n"
                      "  levels: [{id: A, up_to: 0.8}, {id: B, when: 'rev > 10'}, {id: C}]\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    messages = [d.message for d in info.value.diagnostics]
    assert not [m for m in messages if "default: true" in m], messages
    assert "`when` is for method rules; method pareto places customers by rev" in messages
