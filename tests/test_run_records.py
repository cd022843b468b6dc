"""What a run computes over windows and sums, and what it records: the same answer for the same data."""

from __future__ import annotations

import json
import sqlite3

import pytest
from small_db import make_db, run

from crm_rules.engine.date_windows import shifted, window_start
from crm_rules.engine.errors import DataError, UsageError
from crm_rules.engine.explain import explain_customer
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

SUM_POLICY = ("metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
              "tiers:\n  levels:\n    - {id: gold, when: 'revenue_12m >= 100_000'}\n    - {id: std, default: true}\n")


@pytest.mark.parametrize("as_of, count, unit, start", [
    ("2026-08-31", 6, "months", "2026-03-01"),  # SQLite's date(-6 months) gives 03-03, so 03-04
    ("2026-08-30", 6, "months", "2026-03-01"),  # 02-30 does not exist: its month's last day
    ("2026-09-01", 6, "months", "2026-03-02"),  # a later as-of date never starts earlier
    ("2026-06-30", 12, "months", "2025-07-01"),
    ("2026-06-30", 6, "months", "2026-01-01"),  # whole months from a month's last day
    ("2026-02-28", 1, "months", "2026-02-01"),
    ("2024-02-29", 1, "years", "2023-03-01"),
    ("2026-06-30", 90, "days", "2026-04-02"),
    ("2026-06-30", 2, "weeks", "2026-06-17"),
])
def test_a_window_ending_on_the_as_of_date(as_of, count, unit, start):
    assert window_start(as_of, count, unit) == start


def test_windows_at_the_ends_of_the_calendar_stay_in_it():
    assert window_start("0001-03-01", 12, "months") == "0001-01-01"
    assert shifted("9999-12-30", 5, "days") == "9999-12-31"


def test_a_month_end_window_keeps_every_order_of_its_first_days(tmp_path):
    db = make_db(tmp_path / "w.db", [("b", "b", "x")],
                 [("b", "2026-03-01", 1), ("b", "2026-03-02", 10), ("b", "2026-03-03", 100), ("b", "2026-03-04", 1000)])
    policy = "metrics:\n  m6: {sum: amount, window: 6 months}\ntiers:\n  levels: [{id: A, default: true}]\n"
    totals = {}
    for as_of in ("2026-08-30", "2026-08-31", "2026-09-01"):
        policy_file = tmp_path / "p.yaml"
        policy_file.write_text(policy, encoding="utf-8")
        run_id = apply_policy(db, load_policy(policy_file), as_of).run_id
        totals[as_of] = sqlite3.connect(db).execute("SELECT m6 FROM crm_metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
    assert totals == {"2026-08-30": 1111, "2026-08-31": 1111, "2026-09-01": 1110}


def test_the_same_amounts_in_another_row_order_give_the_same_tier(tmp_path):
    db = make_db(tmp_path / "o.db", [("g1", "G1", "x"), ("g2", "G2", "x")],
                 [("g1", "2026-06-01", 50000), ("g1", "2026-06-02", 49999.99), ("g1", "2026-06-03", 0.01),
                  ("g2", "2026-06-03", 0.01), ("g2", "2026-06-02", 49999.99), ("g2", "2026-06-01", 50000)])
    got = run(tmp_path, SUM_POLICY, db)
    assert got["g1"][0] == got["g2"][0] == "gold"
    assert got["g1"][4]["revenue_12m"] == got["g2"][4]["revenue_12m"] == 100000


def test_a_sum_beyond_a_doubles_range_stays_infinite(tmp_path):
    """printf writes an infinite sum as 'Inf', which CAST reads as 0: the biggest customer must not become 0,
    and an infinite sum is bad data (number_overflow), which the run names."""
    db = make_db(tmp_path / "i.db", [("g1", "G1", "x"), ("g2", "G2", "x")],
                 [("g1", "2026-06-01", 1e308), ("g1", "2026-06-02", 1e308), ("g2", "2026-06-01", 5)])
    with pytest.raises(DataError, match="metric revenue_12m: infinite .* for 1 customer\\(s\\): 'g1'"):
        run(tmp_path, SUM_POLICY, db)


def test_a_run_that_fails_on_its_data_keeps_a_failed_row_and_its_policy(tmp_path):
    db = make_db(tmp_path / "f.db", [("a", "A", "x")], [("a", "2026-06-01", 5)])
    run(tmp_path, SUM_POLICY, db)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) VALUES ('a', '2026/06/02', 1, 0, 0)")
    conn.commit()
    with pytest.raises(DataError, match="is not a YYYY-MM-DD date"):
        run(tmp_path, SUM_POLICY, db)
    status, error, sha = conn.execute("SELECT status, error, policy_sha256 FROM crm_runs ORDER BY run_id DESC").fetchone()
    assert status == "failed" and "2026/06/02" in error
    assert conn.execute("SELECT count(*) FROM crm_policies WHERE sha256 = ?", (sha,)).fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM crm_assignments WHERE run_id NOT IN (1)").fetchone()[0] == 0


def test_runs_record_where_the_data_is_from_any_directory(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    make_db(data / "crm.db", [("a", "A", "x")], [("a", "2026-06-01", 5)])
    (tmp_path / "p.yaml").write_text(SUM_POLICY, encoding="utf-8")
    policy = load_policy(tmp_path / "p.yaml")
    monkeypatch.chdir(tmp_path)
    apply_policy("data/crm.db", policy, "2026-06-30", results_db="results.db")
    recorded = sqlite3.connect(tmp_path / "results.db").execute("SELECT source_db FROM crm_runs").fetchone()[0]
    assert recorded == str((data / "crm.db").resolve())
    monkeypatch.chdir(data)
    explained = explain_customer("crm.db", policy, "a", "2026-06-30", results_db=tmp_path / "results.db")
    assert explained["source"]["path"] == "stored"


def test_explaining_a_stored_customer_gone_from_the_data_says_so(tmp_path):
    db = make_db(tmp_path / "g.db", [("a", "A", "x"), ("b", "B", "x")], [("a", "2026-06-01", 5)])
    run(tmp_path, SUM_POLICY, db)  # run 1
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM customers WHERE id = 'b'")
    conn.commit()
    with pytest.raises(UsageError, match="customer 'b' is in run 1 but no longer in table 'customers'") as caught:
        explain_customer(db, load_policy(tmp_path / "policy.yaml"), "b", None, run_id=1)
    assert f"crm-rules history b --db {db}" in caught.value.hint and f"crm-rules export --run 1 --db {db}" in caught.value.hint


def test_a_standard_attribute_renamed_by_a_plain_name_keeps_its_type():
    from crm_rules.engine.data_mapping import build_data_mapping
    from crm_rules.engine.expr_types import DATE, NUMBER, TEXT

    mapping = build_data_mapping({"customers": {"attributes": {"since": "joined", "credit_limit": "limit_cny",
                                                               "segment": "seg"}}})
    types = {name: (c.column, c.type) for name, c in mapping.attributes.items()}
    assert types["since"] == ("joined", DATE) and types["credit_limit"] == ("limit_cny", NUMBER)
    assert types["segment"] == ("seg", TEXT)


def test_revenue_per_tier_is_recorded_to_15_significant_digits(demo_db):
    """crm_runs.counts carried the noise of adding floats in group order (134826637.16000003), which a BI tool
    reading counts and `export --format json` showed as it was: the totals are rounded as every sum metric is."""
    run_id = apply_policy(demo_db, load_policy("base"), "2026-05-31").run_id
    conn = sqlite3.connect(demo_db)
    counts = json.loads(conn.execute("SELECT counts FROM crm_runs WHERE run_id = ?", (run_id,)).fetchone()[0])
    totals = [counts["total_revenue"]] + [t["revenue"] for t in counts["tiers"].values()]
    assert all(float(f"{v:.15g}") == v for v in totals), totals
    by_tier = dict(conn.execute("SELECT a.tier, sum(m.revenue_12m) FROM crm_assignments AS a JOIN crm_metrics AS m "
                                "USING (run_id, customer_id) WHERE a.run_id = ? AND m.revenue_12m IS NOT NULL "
                                "GROUP BY a.tier", (run_id,)).fetchall())
    for tier, entry in counts["tiers"].items():
        assert entry["revenue"] == pytest.approx(by_tier.get(tier, 0), rel=1e-12)
    assert counts["total_revenue"] == pytest.approx(sum(by_tier.values()), rel=1e-12)
