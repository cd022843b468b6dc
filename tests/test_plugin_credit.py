"""The credit_6c credit check: exact arithmetic on tiny hand-made databases (as of 2026-06-30)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from small_db import D, make_db, run

assert D == "2026-06-30"  # every day count below is relative to this as-of date

METRICS = """metrics:
  on_time: {on_time_rate: receivables}
  revenue_12m: {sum: amount, window: 12 months}
  open_ar: {outstanding: receivables}
"""
ALL = "tiers:\n  levels:\n    - {id: all, default: true}\n"
# One factor decided by industry alone, so a customer's grade is set by their industry.
BY_INDUSTRY = """      factors:
        conditions: {weight: 1, attribute: industry, table: {good: 0.9, fair: 0.6, poor: 0.2}}
"""


def credit(params: str, tiers: str = ALL, extra: str = "") -> str:
    """A policy with one credit entry `c` whose params block is ``params`` (indented by 6)."""
    return METRICS + "credit:\n  c:\n    use: credit_6c\n    params:\n" + params + tiers + extra


def small(tmp_path: Path, customers: dict, receivables=(), orders=()) -> Path:
    """customers: id -> (industry, credit_limit); receivables: (id, issue, due, amount, paid, paid_date)."""
    db = make_db(tmp_path / "s.db", [(c, c.upper(), "华东") for c in customers], orders=orders, receivables=receivables)
    conn = sqlite3.connect(db)
    conn.executemany("UPDATE customers SET industry = ?, credit_limit = ? WHERE id = ?",
                     [(industry, limit, c) for c, (industry, limit) in customers.items()])
    conn.commit()
    conn.close()
    return db


def out(got: dict, *names: str) -> dict:
    """customer -> tuple of the named outputs (`c` is the score, `c_x` output x)."""
    return {cid: tuple(v[4][f"c_{n}" if n else "c"] for n in names) for cid, v in got.items()}


def policy_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def paid(cid: str, due: str, amount: float, rate_ok: bool = True):
    """A settled invoice: paid in full on its due date (on time) or a day late."""
    paid_on = due if rate_ok else due[:8] + f"{int(due[8:]) + 1:02d}"
    return (cid, "2026-01-01", due, amount, amount, paid_on)


# -- score and grade -------------------------------------------------------------

SIX_C = """      factors:
        character: {weight: 0.5, metric: on_time, normalize: none}
        conditions: {weight: 0.5, attribute: industry, table: {manufacturing: 0.7, retail: 0.4, mining: 0.1}, default: 0.5}
"""


def test_score_and_grade_with_exact_boundaries_and_missing_factors(tmp_path):
    customers = {"a": ("manufacturing", 1), "b": ("retail", 1), "c": ("mining", 1), "d": ("manufacturing", 1),
                 "e": ("other", 1), "f": ("retail", 1), "g": ("manufacturing", 1)}
    receivables = [paid("a", "2026-03-10", 100), paid("b", "2026-03-10", 100), paid("c", "2026-03-10", 100),
                   paid("d", "2026-03-10", 100, rate_ok=False),
                   paid("e", "2026-03-10", 100), paid("e", "2026-04-10", 100, rate_ok=False),
                   *[paid("f", f"2026-03-1{i}", 100, rate_ok=i < 3) for i in range(4)]]
    got = run(tmp_path, credit(SIX_C), small(tmp_path, customers, receivables))
    assert out(got, "", "grade") == {
        "a": (85, "AAA"),  # 50 x 1.0 + 50 x 0.7: exactly the AAA minimum
        "b": (70, "AA"),   # 50 + 20: exactly AA
        "c": (55, "A"),    # 50 + 5: exactly A
        "d": (35, "C"),    # paid late: 0 + 35
        "e": (50, "B"),    # on time 1 of 2, industry not in the table -> default 0.5
        "f": (57.5, "A"),  # on time 3 of 4: 37.5 + 20
        "g": (70, "AA"),   # no invoices: character is missing, conditions alone (re-weighted)
    }


def test_grades_are_configurable_and_a_score_just_below_a_minimum_falls_through(tmp_path):
    params = SIX_C + "      grades: [{id: prime, min: 85.01}, {id: standard, min: 50}, {id: risky}]\n" \
                     "      terms: {prime: {limit_factor: 2, terms: net 90}, standard: {limit_factor: 1, terms: net 30}, " \
                     "risky: {limit_factor: 0, terms: prepayment 100%}}\n"
    customers = {"a": ("manufacturing", 1), "e": ("other", 1), "d": ("manufacturing", 1)}
    receivables = [paid("a", "2026-03-10", 100), paid("e", "2026-03-10", 100),
                   paid("e", "2026-04-10", 100, rate_ok=False), paid("d", "2026-03-10", 100, rate_ok=False)]
    got = run(tmp_path, credit(params), small(tmp_path, customers, receivables))
    assert out(got, "", "grade", "terms") == {"a": (85, "standard", "net 30"), "e": (50, "standard", "net 30"),
                                              "d": (35, "risky", "prepayment 100%")}


def test_default_rubric_needs_no_params(tmp_path):
    """character = on-time rate (0.4), capacity = revenue percentile (0.3), continuity = tenure bands (0.3)."""
    db = small(tmp_path, {"a": ("retail", 1000), "b": ("retail", 1000)},
               receivables=[paid("a", "2026-03-10", 100), paid("b", "2026-03-10", 100),
                            paid("b", "2026-04-10", 100, rate_ok=False)],
               orders=[("a", "2026-05-01", 900), ("b", "2026-05-01", 100)])
    got = run(tmp_path, METRICS + "credit:\n  c: {use: credit_6c}\n" + ALL, db)
    # customers since 2020-01-01: more than 5 years -> continuity 1.0
    assert out(got, "", "grade", "limit", "recommended_limit", "terms") == {
        "a": (100, "AAA", 1000, 1500, "open credit 60 days"),  # 40 + 30 + 30
        "b": (50, "B", 1000, 500, "deposit 20%, net 30"),      # 20 + 0 (lowest revenue) + 30
    }


def test_normalize_none_clamps_and_better_low_inverts(tmp_path):
    params = """      factors:
        capacity: {weight: 0.75, metric: ratio, normalize: none}
        capital: {weight: 0.25, metric: ratio, normalize: none, better: low}
"""
    text = credit(params).replace("metrics:\n", "metrics:\n  ratio: {expr: \"credit_limit / 100 - 1\"}\n")
    got = run(tmp_path, text, small(tmp_path, {"a": ("x", 350), "b": ("x", 125), "c": ("x", 50)}))
    # a: ratio 2.5 clamps to 1 (and 0 where low is better); b: 0.25 and 0.75; c: -0.5 clamps to 0 (and 1)
    assert out(got, "") == {"a": (75,), "b": (37.5,), "c": (25,)}


# -- policy errors ------------------------------------------------------------------

def test_weights_must_add_up_to_one(tmp_path):
    text = credit("""      factors:
        character: {weight: 0.5, metric: on_time, normalize: none}
        capacity: {weight: 0.4, metric: revenue_12m}
""")
    message = policy_error(tmp_path, text)
    line = line_of(text, "character:")
    assert re.search(rf"policy\.yaml:{line}:9: credit\.c\.params\.factors: the weights add up to 0\.9; they must add up to 1",
                     message), message


def test_unknown_metrics_get_did_you_mean(tmp_path):
    text = credit("""      factors:
        character: {weight: 1, metric: on_tme, normalize: none}
      exposure: [open_arr]
      credit_limit: credit_limt
      outcomes:
        - {outcome: block, when: "utilisaton > 1"}
""")
    message = policy_error(tmp_path, text)
    assert re.search(rf":{line_of(text, 'on_tme')}:\d+: credit\.c\.params\.factors\.character\.metric: "
                     r"unknown metric 'on_tme'; did you mean 'on_time'\?", message), message
    assert "credit.c.params.exposure[0]: unknown metric 'open_arr'; did you mean 'open_ar'?" in message
    assert "credit.c.params.credit_limit: unknown metric 'credit_limt'; did you mean 'credit_limit'?" in message
    assert re.search(rf":{line_of(text, 'utilisaton')}:\d+: credit\.c\.params\.outcomes\[0\]\.when: unknown .*'utilisaton'; "
                     r"did you mean 'utilisation'\?", message), message


def test_schema_errors_are_reported_with_positions(tmp_path):
    text = credit("""      factors:
        charakter: {weight: 1, metric: on_time}
        capacity: {weight: 1, metric: revenue_12m, normalise: minmax}
      aging: [30, sixty]
      outcomes:
        - {outcome: stop, when: "exposure > 0"}
""")
    message = policy_error(tmp_path, text)
    assert re.search(rf":{line_of(text, 'charakter')}:9: credit\.c\.params\.factors\.charakter: "
                     r"unknown key 'charakter'; did you mean 'character'\?", message), message
    assert re.search(rf":{line_of(text, 'normalise')}:\d+: credit\.c\.params\.factors\.capacity\.normalise: "
                     r"unknown key 'normalise'; did you mean 'normalize'\?", message), message
    assert re.search(rf":{line_of(text, 'sixty')}:19: credit\.c\.params\.aging\[1\]: expected integer, got text \"sixty\"",
                     message), message
    assert re.search(r"credit\.c\.params\.outcomes\[0\]\.outcome: \"stop\" is not allowed here; use one of: ok, warn, hold, block",
                     message), message


def test_factor_shape_aging_and_terms_are_checked_all_at_once(tmp_path):
    text = credit("""      factors:
        character: {weight: 0.5, metric: on_time, attribute: industry}
        conditions: {weight: 0.5, attribute: industry, table: {retail: 0.5}, bands: [{score: 1}]}
      aging: [60, 30]
      terms: {AAA: {limit_factor: 1, terms: x}, AA: {limit_factor: 1, terms: x}, A: {limit_factor: 1, terms: x},
              B: {limit_factor: 1, terms: x}, CC: {limit_factor: 0, terms: y}}
""")
    message = policy_error(tmp_path, text)
    assert "credit.c.params.factors.character: a factor needs exactly one of `metric` or `attribute`" in message
    assert "credit.c.params.factors.conditions.bands: `bands` does not apply to a factor with `attribute`" in message
    assert "credit.c.params.aging: the day edges must increase: [60, 30]" in message
    assert "credit.c.params.terms: no terms for grade(s) C" in message
    assert "credit.c.params.terms.CC: unknown grade 'CC'; did you mean 'C'?" in message


def test_limit_base_reasons_and_rule_order_are_checked(tmp_path):
    text = credit("""      limit_base: region
      outcomes:
        - {outcome: ok, reason: "{score:pct}"}
        - {outcome: block, when: "score < 10", reason: "{scor}"}
""")
    message = policy_error(tmp_path, text)
    assert "credit.c.params.limit_base: limit_base must be a number, but 'region' is a text" in message
    text = credit("""      outcomes:
        - {outcome: block, when: "score < 10", reason: "low {scor}"}
        - {outcome: warn, when: "score < 20", reason: "{score:pct}"}
        - {outcome: hold, reason: "x"}
        - {outcome: ok, when: "score > 0"}
""")
    message = policy_error(tmp_path, text)
    assert "credit.c.params.outcomes[0].reason: unknown name 'scor' in the reason; did you mean 'score'?" in message
    assert "credit.c.params.outcomes[1].reason: unknown format 'pct'" in message
    assert "credit.c.params.outcomes[2]: only the last rule may have no `when`" in message


def test_custom_grades_need_terms(tmp_path):
    message = policy_error(tmp_path, credit(BY_INDUSTRY + "      grades: [{id: hi, min: 50}, {id: lo}]\n"))
    assert "credit.c.params.grades: no terms for grade(s) hi, lo; give `terms` with an entry per grade" in message


# -- exposure, limit, aging ----------------------------------------------------------

def test_exposure_and_utilisation_with_zero_or_missing_limit(tmp_path):
    customers = {"a": ("good", 10000), "zero": ("good", 0), "none": ("good", None), "idle": ("good", 0)}
    receivables = [(c, "2026-06-01", "2026-07-31", 1000, 0, None) for c in ("a", "zero", "none")]
    got = run(tmp_path, credit(BY_INDUSTRY), small(tmp_path, customers, receivables))
    assert out(got, "exposure", "limit", "utilisation", "recommended_limit", "outcome", "reason") == {
        "a": (1000, 10000, 0.1, 15000, "ok", "grade AAA, utilisation 10%"),
        "zero": (1000, 0, None, 0, "hold", "exposure 1,000.00 with no credit granted (limit 0)"),
        "none": (1000, None, None, None, "ok", "grade AAA, utilisation n/a"),
        "idle": (0, 0, None, 0, "ok", "grade AAA, utilisation n/a"),
    }


def test_exposure_adds_up_the_given_metrics(tmp_path):
    text = credit(BY_INDUSTRY + "      exposure: [open_ar, unbilled]\n      credit_limit: own_limit\n").replace(
        "metrics:\n", "metrics:\n  unbilled: {sum: amount, window: 30d}\n  own_limit: {expr: \"credit_limit * 2\"}\n")
    db = small(tmp_path, {"a": ("good", 1000), "b": ("good", 1000)},
               receivables=[("a", "2026-06-01", "2026-07-31", 700, 200, "2026-06-10")],
               orders=[("a", "2026-06-20", 300), ("a", "2026-05-01", 999)])
    got = run(tmp_path, text, db)
    assert out(got, "exposure", "limit", "utilisation") == {"a": (800, 2000, 0.4), "b": (0, 2000, 0)}


def test_aging_buckets_at_their_exact_day_boundaries(tmp_path):
    due = {"2026-06-30": 1,  # due today: open, not overdue
           "2026-06-29": 2, "2026-05-31": 4,  # 1 and 30 days past due
           "2026-05-30": 8, "2026-05-01": 16,  # 31 and 60
           "2026-04-30": 32, "2026-04-01": 64,  # 61 and 90
           "2026-03-31": 128}  # 91
    receivables = [("a", "2026-01-01", d, amount, 0, None) for d, amount in due.items()]
    got = run(tmp_path, credit(BY_INDUSTRY), small(tmp_path, {"a": ("good", 10000), "b": ("good", 10000)}, receivables))
    names = ("aging_1_30", "aging_31_60", "aging_61_90", "aging_90_plus", "overdue_total", "exposure")
    assert out(got, *names) == {"a": (6, 24, 96, 128, 254, 255), "b": (0, 0, 0, 0, 0, 0)}


def test_custom_aging_edges_rename_the_buckets_and_the_default_block_rule(tmp_path):
    receivables = [("a", "2026-01-01", "2026-05-31", 10, 0, None), ("a", "2026-01-01", "2026-05-30", 20, 0, None),
                   ("b", "2026-01-01", "2026-06-10", 5, 0, None)]
    got = run(tmp_path, credit(BY_INDUSTRY + "      aging: [15, 30]\n"),
              small(tmp_path, {"a": ("good", 10000), "b": ("good", 10000)}, receivables))
    assert out(got, "aging_1_15", "aging_16_30", "aging_30_plus", "outcome", "reason") == {
        "a": (0, 10, 20, "block", "overdue > 30 days: 20.00"),
        "b": (0, 5, 0, "warn", "overdue 16-30 days: 5.00"),
    }


def test_partially_paid_and_paid_after_as_of_invoices_stay_open(tmp_path):
    receivables = [("a", "2026-04-01", "2026-05-16", 1000, 400, "2026-06-01"),  # 45 days, 600 still open
                   ("a", "2026-06-01", "2026-06-20", 500, 500, "2026-07-05"),  # 10 days; paid after the as-of date
                   ("a", "2026-05-01", "2026-06-10", 300, 300, "2026-06-15"),  # paid late but settled
                   ("a", "2026-06-25", "2026-07-25", 250, 100, "2026-06-26")]  # not due yet, 150 open
    got = run(tmp_path, credit(BY_INDUSTRY), small(tmp_path, {"a": ("good", 10000)}, receivables))
    assert out(got, "aging_1_30", "aging_31_60", "overdue_total", "exposure", "utilisation", "outcome", "reason") == {
        "a": (500, 600, 1100, 1250, 0.125, "warn", "overdue 31-60 days: 600.00")}


# -- outcomes, terms ---------------------------------------------------------------------

def test_default_outcomes_and_their_reasons(tmp_path):
    customers = {"ok": ("good", 10000), "ok_1_30": ("fair", 10000), "warn_util": ("good", 10000),
                 "warn_31": ("good", 10000), "warn_61": ("good", 10000), "hold": ("good", 10000),
                 "block_90": ("good", 10000), "block_c": ("poor", 10000), "unscored": (None, 10000)}
    receivables = [("ok_1_30", "2026-06-01", "2026-06-20", 100, 0, None),
                   ("warn_util", "2026-06-01", "2026-07-15", 9000, 0, None),
                   ("warn_31", "2026-04-01", "2026-05-15", 250.5, 0, None),
                   ("warn_61", "2026-03-01", "2026-04-15", 100, 0, None),
                   ("hold", "2026-06-01", "2026-07-15", 12000, 0, None),
                   ("block_90", "2026-01-01", "2026-03-01", 1234.5, 0, None),
                   ("block_90", "2026-06-01", "2026-07-15", 20000, 0, None)]
    got = run(tmp_path, credit(BY_INDUSTRY), small(tmp_path, customers, receivables))
    assert out(got, "outcome", "reason") == {
        "ok": ("ok", "grade AAA, utilisation 0%"),
        "ok_1_30": ("ok", "grade A, utilisation 1%"),
        "warn_util": ("warn", "utilisation 90% of the credit limit 10,000.00"),
        "warn_31": ("warn", "overdue 31-60 days: 250.50"),
        "warn_61": ("warn", "overdue 61-90 days: 100.00"),
        "hold": ("hold", "exposure 12,000.00 exceeds the credit limit 10,000.00 (120%)"),
        "block_90": ("block", "overdue > 90 days: 1,234.50"),  # blocks before the hold for 212%
        "block_c": ("block", "credit grade C (score 20.0)"),
        # no industry, so no factor has a value: no grade to grant credit on (it was "ok, grade n/a")
        "unscored": ("warn", "no credit score: none of the factors has a value; review before granting credit"),
    }


def test_custom_outcome_rules_use_metrics_and_local_names(tmp_path):
    params = BY_INDUSTRY + """      outcomes:
        - {outcome: block, when: "on_time < 0.5 and overdue_total > 0", reason: "late payer: {on_time:.0%} on time, {overdue_total:.0f} overdue"}
        - {outcome: hold, when: "terms = 'prepayment 100%'", reason: "grade {grade} pays in advance"}
        - {outcome: warn, when: "exposure > recommended_limit", reason: "exposure {exposure} over the recommended {recommended_limit}"}
"""
    customers = {"late": ("good", 10000), "c": ("poor", 10000), "big": ("fair", 1000), "fine": ("good", 10000)}
    receivables = [paid("late", "2026-03-10", 100, rate_ok=False), ("late", "2026-01-01", "2026-06-01", 1500.4, 0, None),
                   ("big", "2026-06-01", "2026-07-31", 1000.5, 0, None)]
    got = run(tmp_path, credit(params), small(tmp_path, customers, receivables))
    assert out(got, "outcome", "reason") == {
        "late": ("block", "late payer: 0% on time, 1,500 overdue"),
        "c": ("hold", "grade C pays in advance"),
        "big": ("warn", "exposure 1,000.50 over the recommended 1,000.00"),
        "fine": ("ok", None),  # no rule matched and the rules have no default: ok, no reason
    }


def test_terms_and_recommended_limit_per_grade(tmp_path):
    params = """      factors:
        conditions: {weight: 1, attribute: industry, table: {t1: 0.9, t2: 0.75, t3: 0.6, t4: 0.45, t5: 0.1}}
      limit_base: "coalesce(limit, revenue_12m / 12 * 2)"
"""
    customers = {"aaa": ("t1", 1000), "aa": ("t2", 1000), "a": ("t3", 1000), "b": ("t4", 1000), "c": ("t5", 1000),
                 "new": ("t1", None)}
    got = run(tmp_path, credit(params), small(tmp_path, customers, orders=[("new", "2026-03-01", 6000)]))
    assert out(got, "grade", "recommended_limit", "terms") == {
        "aaa": ("AAA", 1500, "open credit 60 days"), "aa": ("AA", 1200, "net 45"), "a": ("A", 1000, "net 30"),
        "b": ("B", 500, "deposit 20%, net 30"), "c": ("C", 0, "prepayment 100%"),
        "new": ("AAA", 1500, "open credit 60 days"),  # no limit: two months of revenue (1,000) x 1.5
    }


def test_outcomes_drive_tiers_and_service_levels(tmp_path):
    tiers = """tiers:
  levels:
    - {id: watch, when: "c_outcome in ['warn', 'hold']"}
    - {id: normal, default: true}
service_levels:
  - {id: prepayment, tier: normal, when: "c_outcome = 'block'", payment: {prepayment: 1.0}}
  - {id: credit_terms, tier: normal, when: "c_grade in ['AAA', 'AA']"}
  - {id: standard, tier: normal}
  - {id: review, tier: watch}
"""
    customers = {"ok": ("good", 10000), "fair": ("fair", 10000), "warn": ("good", 10000), "c": ("poor", 10000)}
    receivables = [("warn", "2026-06-01", "2026-07-15", 9000, 0, None)]
    db = small(tmp_path, customers, receivables)
    got = run(tmp_path, credit(BY_INDUSTRY, tiers), db)
    assert {cid: (v[0], v[3]) for cid, v in got.items()} == {
        "ok": ("normal", "credit_terms"), "fair": ("normal", "standard"), "warn": ("watch", "review"),
        "c": ("normal", "prepayment")}
    summary = apply_policy(db, load_policy(tmp_path / "policy.yaml"), D, dry_run=True).summary
    assert summary["outputs"]["c_outcome"] == {"ok": 2, "warn": 1, "block": 1}
    assert summary["outputs"]["c_grade"] == {"AAA": 2, "A": 1, "C": 1}


# -- fixes: bands keys, negative limits, limit_base names, grade ties -----------------

def test_bands_next_to_another_normalize_or_better_low_is_an_error(tmp_path):
    text = credit("""      factors:
        capacity: {weight: 0.5, metric: revenue_12m, normalize: minmax, bands: [{up_to: 1, score: 0.2}, {score: 1}]}
        capital: {weight: 0.5, metric: revenue_12m, better: low, bands: [{up_to: 1, score: 0.2}, {score: 1}]}
""")
    message = policy_error(tmp_path, text)
    assert re.search(rf"policy\.yaml:{line_of(text, 'capacity:')}:\d+: credit\.c\.params\.factors\.capacity\.normalize: "
                     r"`normalize: minmax` contradicts `bands`", message), message
    assert re.search(rf"policy\.yaml:{line_of(text, 'capital:')}:\d+: credit\.c\.params\.factors\.capital\.better: "
                     r"`better: low` does not apply to `bands`", message), message


def test_negative_limit_is_a_per_customer_error(tmp_path):
    customers = {"a": ("good", 10000), "neg": ("good", -17000)}
    receivables = [(c, "2026-06-01", "2026-07-31", 9520, 0, None) for c in customers]
    db = small(tmp_path, customers, receivables)
    with pytest.raises(Exception) as info:
        run(tmp_path, credit(BY_INDUSTRY), db)
    assert "customer 'neg': negative credit limit -17,000.00" in str(info.value), str(info.value)
    text = credit(BY_INDUSTRY).replace("    use: credit_6c\n", "    use: credit_6c\n    on_error: skip\n")
    got = run(tmp_path, text, db)
    assert out(got, "limit", "utilisation", "recommended_limit", "outcome") == {
        "a": (10000, 0.952, 15000, "warn"), "neg": (None, None, None, None)}


def test_limit_base_uses_names_known_before_the_recommendation(tmp_path):
    params = BY_INDUSTRY + '      limit_base: "limit - overdue_total - aging_90_plus * 0 + utilisation * 0"\n'
    customers = {"a": ("good", 1000), "b": ("good", 1000)}
    receivables = [("a", "2026-05-01", "2026-06-10", 300, 0, None), ("b", "2026-01-01", "2026-02-01", 5000, 0, None)]
    got = run(tmp_path, credit(params), small(tmp_path, customers, receivables))
    # a: (1000 - 300) x 1.5; b: 1000 - 5000 is negative: the recommendation is 0, never negative
    assert out(got, "overdue_total", "recommended_limit") == {"a": (300, 1050), "b": (5000, 0)}
    message = policy_error(tmp_path, credit("      limit_base: recommended_limit + 1\n"))
    assert "credit.c.params.limit_base: limit_base cannot use recommended_limit" in message
    assert "overdue_total" in message and "utilisation" in message


def test_equal_grade_minimums_and_duplicate_ids_are_errors(tmp_path):
    text = credit(BY_INDUSTRY + """      grades: [{id: hi, min: 50}, {id: mid, min: 50}, {id: hi}]
      terms: {hi: {limit_factor: 1, terms: x}, mid: {limit_factor: 1, terms: x}}
""")
    message = policy_error(tmp_path, text)
    assert "credit.c.params.grades[2].id: duplicate grade id 'hi'" in message
    assert "credit.c.params.grades: grades go from best to worst: `min` values must decrease, with no two equal" in message
