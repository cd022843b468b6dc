"""Sums beyond the largest float: a run stops and names the metric, the customers and their largest rows."""

from __future__ import annotations

import sqlite3

from test_data_checks_more import policy_file, problem_lines, refused, sql

from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from conftest import AS_OF

#: Two orders of C000002 in the last 12 months, whose sum (2e308) is beyond a double.
_TWO_HUGE = ("UPDATE orders SET amount = 1e308 WHERE id IN (SELECT id FROM orders WHERE customer_id = 'C000002' "
             "AND order_date > date(:as_of, '-12 months') ORDER BY id LIMIT 2)")


def huge_rows(db) -> list[int]:
    conn = sqlite3.connect(db)
    conn.execute(_TWO_HUGE, {"as_of": AS_OF})
    conn.commit()
    ids = [r[0] for r in conn.execute("SELECT id FROM orders WHERE amount = 1e308 ORDER BY id")]
    conn.close()
    return ids


def test_an_infinite_sum_is_refused_with_its_customer_and_rows(tmp_path, demo_db):
    # before: revenue_12m was ∞ for C000002, every Pareto share 0 and every customer in the lowest tier, exit 0
    first, second = huge_rows(demo_db)
    lines = problem_lines(refused(demo_db, policy_file(tmp_path, "revenue_12m > 100000")))
    assert len(lines) == 1
    assert lines[0].startswith("metric revenue_12m: infinite (beyond 1.8e308, the largest number) for 1 customer(s): "
                               "'C000002'; the largest 'amount' of customer 'C000002' in 'orders': "
                               f"row id {first} (1e+308), row id {second} (1e+308), row id ")


def test_metrics_of_the_same_rows_are_named_together(demo_db):
    huge_rows(demo_db)
    message = refused(demo_db, load_policy("base"))
    # (the trend is finite here: both orders fall in its earlier half, and x / ∞ is 0)
    assert problem_lines(message)[0].startswith("metrics revenue_12m, profit_12m, revenue_36m: infinite ")
    assert "hint: correct the wrong values" in message


def test_an_infinity_stored_in_a_row_is_refused(tmp_path, demo_db):
    sql(demo_db, "UPDATE orders SET amount = -9e999 WHERE id = (SELECT max(id) FROM orders WHERE order_date > '2026-01-01')")
    assert "(-inf)" in refused(demo_db, policy_file(tmp_path, "revenue_12m > 100000"))


def test_finite_values_that_add_up_beyond_the_limit_are_refused(tmp_path, demo_db):
    # each customer's revenue is finite, their total is not: a Pareto share of it would be 0 for all
    sql(demo_db, "UPDATE orders SET amount = 1e308 WHERE id IN (SELECT max(id) FROM orders WHERE order_date > "
                 "'2026-01-01' GROUP BY customer_id ORDER BY customer_id LIMIT 2)")
    lines = problem_lines(refused(demo_db, policy_file(tmp_path, "revenue_12m > 100000")))
    assert lines[0].startswith("metric revenue_12m: add up to more than 1.8e308 (the largest number) over all customers")
    assert "the largest are " in lines[0] and "(1e+308)" in lines[0]


def test_large_but_finite_sums_run(tmp_path, demo_db):
    sql(demo_db, "UPDATE orders SET amount = 1e300 WHERE id = (SELECT max(id) FROM orders WHERE order_date > '2026-01-01')")
    run = apply_policy(demo_db, policy_file(tmp_path, "revenue_12m > 100000"), AS_OF)
    assert run.summary["customers"] == 300


def test_a_huge_finite_value_is_shown_in_scientific_notation():
    # a revenue of 1e308 was printed as 309 digits in explain, most of them floating-point noise
    from crm_rules.engine.counterfactuals import value_text
    from crm_rules.engine.render import fmt_number

    assert value_text(1e308) == fmt_number(1e308) == "1e+308"
    assert value_text(-2.5e20) == fmt_number(-2.5e20) == "-2.5e+20"
    assert value_text(1234567890123.5) == fmt_number(1234567890123.5) == "1,234,567,890,123.50"
    assert value_text(10**20) == fmt_number(10**20) == "100,000,000,000,000,000,000"  # an exact integer keeps its digits
