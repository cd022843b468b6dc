"""Metric windows that end before the as-of date (``offset``): their bounds, their values against SQL written by
hand and against a run as of the window's end, the metrics that refuse an offset, and the unchanged SQL of a
policy without one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine import date_windows
from crm_rules.engine.data_binding import bind
from crm_rules.engine.metric_sql import RunDates, compile_metrics
from crm_rules.engine.metric_offset import OFFSET_KINDS, refused
from crm_rules.engine.policy_model import METRIC_KINDS, load_policy
from crm_rules.engine.runner import apply_policy
from crm_rules.engine.time_spans import (OFFSET_PATTERN, TRAILING_WINDOW_PATTERN, WINDOW_PATTERN,
                                         duration_refusal, offset_fix, zero_offset)
from crm_rules.engine.schema_validation import load_schema
from small_db import assignments, make_db, rows, run

HERE = Path(__file__).parent
TIERS = "tiers:\n  levels: [{id: A, default: true}]\n"


def _next(day: str) -> str:
    return date_windows.shifted(day, 1, "days")


def _dates(as_of: str) -> RunDates:
    return RunDates(as_of, _next(as_of), sqlite3.connect(":memory:"))


# ---- the bounds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("as_of, window, offset, start, end", [
    ("2026-06-30", "3 months", "12 months", "2025-04-01", "2025-06-30"),  # the same calendar quarter a year before
    ("2026-06-30", "3 months", "1y", "2025-04-01", "2025-06-30"),
    ("2026-06-30", "12 months", "12 months", "2024-07-01", "2025-06-30"),
    ("2026-05-15", "3 months", "12 months", "2025-02-16", "2025-05-15"),
    ("2026-08-31", "6 months", "12 months", "2025-03-01", "2025-08-31"),  # a month-end stays one
    ("2026-03-31", "1 month", "1 month", "2026-02-01", "2026-02-28"),  # March 31st, a month back: February's last day
    ("2024-02-29", "3 months", "12 months", "2022-12-01", "2023-02-28"),  # leap day: a year back is February 28th
    ("2024-02-29", "12 months", "1y", "2022-03-01", "2023-02-28"),
    ("2025-02-28", "1 month", "12 months", "2024-02-01", "2024-02-29"),  # ... and a year on it is the leap day
    ("2024-02-29", "30d", "365d", "2023-01-31", "2023-03-01"),  # days are days: 365 of them from a leap day
    ("2026-06-30", "90d", "90d", "2026-01-02", "2026-04-01"),
    ("2026-06-30", "2w", "2w", "2026-06-03", "2026-06-16"),
])
def test_an_offset_window_ends_offset_before_the_as_of_date(as_of, window, offset, start, end):
    dates = _dates(as_of)
    assert dates.window_end(offset) == end
    assert dates.window_start(window, offset=offset) == start
    assert dates.after_end(offset) == _next(end)
    # the window is the one a run as of its last day reads
    assert _dates(end).window_start(window) == start


def test_without_an_offset_the_window_ends_on_the_as_of_date():
    dates = _dates("2026-06-30")
    assert dates.window_end() == dates.window_end(None) == "2026-06-30"
    assert dates.window_start("3 months") == "2026-04-01"


def test_trend_with_an_offset_compares_the_window_before_the_moved_one():
    dates = _dates("2026-06-30")
    # the quarter a year before (2025-04-01 .. 06-30) against the quarter before it (2025-01-01 .. 03-31)
    assert dates.window_start("3 months", 2, "12 months") == "2025-01-01"
    assert dates.window_start("3 months", 1, "12 months") == "2025-04-01"


@pytest.mark.parametrize("text, fix", [("1 quarter", "3 months"), ("12个月", "12 months"), ("-12 months", "12 months"),
                                       ("一年", "1y"), ("2 weeks", "2w"), ("+1y", None), ("2 hours", None)])
def test_an_offset_in_words_is_named_with_the_form_to_write(text, fix):
    assert offset_fix(text) == fix


@pytest.mark.parametrize("text", ["0d", "0", "0 months", "00 days", "0个月"])
def test_an_offset_of_nothing_is_refused_with_a_reason(text):
    assert "is no offset" in zero_offset(text)


def test_the_schema_writes_the_offset_form_of_time_spans():
    props = load_schema("policy.schema.json")["properties"]["metrics"]["additionalProperties"]["properties"]
    assert props["offset"]["pattern"] == OFFSET_PATTERN
    assert props["window"]["pattern"] == WINDOW_PATTERN  # with the calendar windows (test_calendar_windows)
    assert TRAILING_WINDOW_PATTERN.replace("all|", "").replace("(", "", 1).replace(")$", "$", 1) == OFFSET_PATTERN


# ---- values ------------------------------------------------------------------------------------------

# Orders of two customers around the bounds of the quarter a year before 2026-06-30 (2025-04-01 .. 2025-06-30)
# and of the quarter before that; `late` has a time on the window's last day and one the day after.
ORDERS = [
    ("a", "2025-03-31", 7.0), ("a", "2025-04-01", 10.0), ("a", "2025-05-20", 30.0), ("a", "2025-05-20", 5.0),
    ("a", "2025-06-30", 20.0), ("a", "2025-07-01", 1000.0), ("a", "2026-06-30", 3.0), ("a", "2025-01-01", 40.0),
    ("late", "2025-06-30 23:59:59", 50.0), ("late", "2025-07-01 00:00:00", 500.0), ("late", "2025-02-10", 25.0),
    ("none", "2026-05-01", 80.0),
]
RECEIVABLES = [  # issue, due, amount, paid amount, paid date
    ("a", "2025-03-01", "2025-04-15", 100.0, 100.0, "2025-04-10"),  # due in the window, paid on time
    ("a", "2025-05-01", "2025-06-01", 200.0, 200.0, "2025-07-15"),  # due in it, paid after the window's end
    ("a", "2025-05-01", "2025-06-30", 50.0, 20.0, "2025-06-20"),  # partly paid, on the window's last day
    ("a", "2025-06-01", "2025-07-01", 80.0, None, None),  # due the day after the window
    ("late", "2025-01-01", "2025-03-31", 10.0, 10.0, "2025-03-30"),  # due the day before it
]
OFFSET_METRICS = """metrics:
  orders_q_ly: {count: orders, window: 3 months, offset: 12 months}
  revenue_q_ly: {sum: amount, window: 3 months, offset: 12 months}
  avg_q_ly: {avg: amount, window: 3 months, offset: 12 months}
  smallest_q_ly: {min: amount, window: 3 months, offset: 12 months}
  biggest_q_ly: {max: amount, window: 3 months, offset: 1y}
  last_day_q_ly: {max: date, window: 3 months, offset: 1y}
  order_days_q_ly: {count_distinct: date, window: 3 months, offset: 12 months}
  big_orders_q_ly: {count: orders, where: "amount >= 20", window: 3 months, offset: 12 months}
  months_q_ly: {repurchase_rate: orders, window: 3 months, offset: 12 months}
  parts_90d_ly: {repurchase_rate: orders, window: 90d, offset: 12 months}
  trend_q_ly: {trend: amount, window: 3 months, offset: 12 months}
  collected_q_ly: {collection_rate: receivables, window: 3 months, offset: 12 months}
  on_time_q_ly: {on_time_rate: receivables, window: 3 months, offset: 12 months}
"""


@pytest.fixture
def small(tmp_path):
    return make_db(tmp_path / "offset.db", [("a", "A", "x"), ("late", "L", "x"), ("none", "N", "x")], ORDERS,
                   RECEIVABLES)


def test_offset_aggregates_match_sql_written_by_hand(tmp_path, small):
    got = run(tmp_path, OFFSET_METRICS + TIERS, small)
    by_hand = {cid: (n, total, mean, low, high, last, days) for cid, n, total, mean, low, high, last, days in rows(
        small, "SELECT customer_id, count(*), sum(amount), avg(amount), min(amount), max(amount), "
               "date(max(order_date)), count(DISTINCT order_date) FROM orders "
               "WHERE order_date >= '2025-04-01' AND order_date < '2025-07-01' GROUP BY customer_id")}
    assert by_hand["a"] == (4, 65.0, 16.25, 5.0, 30.0, "2025-06-30", 3)
    assert by_hand["late"][0] == 1  # the order at 23:59:59 on the window's last day, not the one at midnight after
    for cid, values in by_hand.items():
        m = got[cid][4]
        assert (m["orders_q_ly"], m["revenue_q_ly"], m["avg_q_ly"], m["smallest_q_ly"], m["biggest_q_ly"],
                m["last_day_q_ly"], m["order_days_q_ly"]) == values
    m = got["a"][4]
    assert m["big_orders_q_ly"] == 2
    assert m["months_q_ly"] == pytest.approx(1.0)  # a row in April, May and June 2025
    assert m["trend_q_ly"] == pytest.approx(65 / 47 - 1)  # against 2025-01-01 .. 03-31: 40 + 7
    assert got["late"][4]["trend_q_ly"] == pytest.approx(50 / 25 - 1)
    # invoices due 2025-04-01 .. 06-30, with the payments made by 2025-06-30: 100 + 0 + 20 of 350
    assert m["collected_q_ly"] == pytest.approx(120 / 350)
    assert m["on_time_q_ly"] == pytest.approx(1 / 3)
    n = got["none"][4]  # no order then: a count of 0, no average, no trend
    assert (n["orders_q_ly"], n["revenue_q_ly"], n["avg_q_ly"], n["trend_q_ly"], n["collected_q_ly"]) == (
        0, 0, None, None, None)


def test_an_offset_metric_is_the_metric_of_a_run_as_of_the_windows_end(tmp_path, small):
    """What ``offset: 12 months`` promises: the value a run on 2025-06-30 gave, whatever the kind."""
    plain = "metrics:\n" + "".join(
        line.replace(", offset: 12 months", "").replace(", offset: 1y", "") + "\n"
        for line in OFFSET_METRICS.splitlines()[1:])
    (tmp_path / "offset.yaml").write_text(OFFSET_METRICS + TIERS, encoding="utf-8")
    (tmp_path / "plain.yaml").write_text(plain + TIERS, encoding="utf-8")
    moved = apply_policy(small, load_policy(tmp_path / "offset.yaml"), "2026-06-30")
    then = apply_policy(small, load_policy(tmp_path / "plain.yaml"), "2025-06-30")
    moved_values = {cid: v[4] for cid, v in assignments(small, moved.run_id).items()}
    then_values = {cid: v[4] for cid, v in assignments(small, then.run_id).items()}
    assert moved_values["a"] == then_values["a"] and moved_values["late"] == then_values["late"]
    assert moved_values["a"]["parts_90d_ly"] is not None
    # `none` ordered only after 2025-06-30: on that day a customer without any order, whose repurchase rate is
    # empty as every such customer's; now one with an order, just not in the window, whose rate is 0
    differ = {k for k, v in moved_values["none"].items() if v != then_values["none"][k]}
    assert differ == {"months_q_ly", "parts_90d_ly"} and moved_values["none"]["months_q_ly"] == 0


# ---- refusals ----------------------------------------------------------------------------------------

def test_the_kinds_that_take_an_offset_are_those_whose_options_list_it():
    assert {kind for kind, options in METRIC_KINDS.items() if "offset" in options} == OFFSET_KINDS
    assert all(refused("m", kind, {kind: "x"}) for kind in set(METRIC_KINDS) - OFFSET_KINDS)


def test_validate_names_each_refused_offset_with_its_fix(cli):
    path = HERE / "policies" / "invalid" / "offset_where_it_means_nothing.yaml"
    result = cli("validate", path)
    assert result.exit_code == 1
    assert f"{path}:4:60: metrics.days_since_order_ly.offset: 'offset' does not apply to a recency metric" in result.output


# ---- a policy without an offset compiles as before ---------------------------------------------------

# Every kind of metric with a window (and some without), compiled as of a quarter's end and a leap day; the scans'
# SQL and parameters are those the engine wrote before offsets existed (tests/metric_scans_without_offset.txt).  A
# deliberate change of the scans' SQL rewrites that file: write _scans(...) of this policy to it and read the diff.
NO_OFFSET = """metrics:
  revenue_12m: {sum: amount, window: 12 months}
  avg_6m: {avg: amount, window: 6 months, where: "amount > 0"}
  low_90d: {min: amount, window: 90d}
  high_2w: {max: amount, window: 2w}
  days_3y: {count_distinct: date, window: 3y}
  orders_1y: {count: orders, window: 1y}
  last_visit: {recency: interactions, where: "kind = 'visit'", window: 12 months}
  months_12m: {repurchase_rate: orders, window: 12 months}
  days_90d: {repurchase_rate: orders, window: 90 days}
  trend_6m: {trend: amount, window: 6 months}
  collected_12m: {collection_rate: receivables, window: 12 months}
  on_time_12m: {on_time_rate: receivables, window: 12 months}
  overdue_31: {overdue: amount, min_days: 31}
  open: {outstanding: receivables}
  left: {contract_days_left: contracts}
  lifetime: {sum: amount}
"""


def _scans(db: Path, policy_file: Path) -> str:
    policy, conn, out = load_policy(policy_file), sqlite3.connect(db), []
    try:
        for as_of in ("2026-06-30", "2024-02-29"):
            plan = compile_metrics(policy, bind(conn, "main", policy), RunDates(as_of, _next(as_of), conn))
            for source, agg in sorted(plan.sources.items()):
                out += [f"-- {as_of} {source}", agg.query.sql, str(sorted(agg.query.params.items()))]
    finally:
        conn.close()
    return "\n".join(out) + "\n"


def test_a_policy_without_an_offset_compiles_to_the_sql_it_did_before(tmp_path):
    db = make_db(tmp_path / "empty.db", [])
    (tmp_path / "p.yaml").write_text(NO_OFFSET + TIERS, encoding="utf-8")
    assert _scans(db, tmp_path / "p.yaml") == (HERE / "metric_scans_without_offset.txt").read_text(encoding="utf-8")


def test_an_offset_metric_adds_its_own_aggregates_and_changes_no_other(tmp_path):
    db = make_db(tmp_path / "empty.db", [])
    (tmp_path / "p.yaml").write_text(NO_OFFSET + TIERS, encoding="utf-8")
    (tmp_path / "o.yaml").write_text(NO_OFFSET + "  revenue_ly: {sum: amount, window: 12 months, offset: 12 months}\n"
                                     + TIERS, encoding="utf-8")
    plain, offset = _scans(db, tmp_path / "p.yaml"), _scans(db, tmp_path / "o.yaml")
    plain_lines, offset_lines = ([line.rstrip(",") for line in text.splitlines()] for text in (plain, offset))
    added = [line for line in offset_lines if line not in plain_lines]
    assert added and all('AS "revenue_ly"' in line or line.startswith("[(") for line in added)
    assert all(line in offset_lines for line in plain_lines if not line.startswith("[("))


# ---- what shows or compares a metric ------------------------------------------------------------------

SAME_QUARTER = """extends: base
name: same_quarter
metrics:
  revenue_q_ly: {label: Revenue same quarter last year, sum: amount, window: 3 months, offset: 12 months}
summary:
  revenue: revenue_q_ly
  key_metrics: [revenue_12m, revenue_q_ly]
"""
DATES = "(2025-04-01 – 2025-06-30)"


def test_explain_and_the_report_give_the_dates_of_an_offset_window(cli, demo_db, tmp_path):
    policy = tmp_path / "same_quarter.yaml"
    policy.write_text(SAME_QUARTER, encoding="utf-8")
    cli("apply", "--db", demo_db, "--policy", policy, "--as-of", "2026-06-30", ok=True)
    customer = rows(demo_db, "SELECT customer_id FROM crm_assignments LIMIT 1")[0][0]
    for args in ((), ("--run", "1")):  # computed, and read back from the run
        explained = json.loads(cli("explain", customer, "--db", demo_db, "--policy", policy, "--as-of", "2026-06-30",
                                   "--json", *args, ok=True).output)
        labels = {m["name"]: m["label"] for m in explained["metrics"]}
        assert labels["revenue_q_ly"] == f"Revenue same quarter last year {DATES}"
        assert labels["revenue_12m"] == "revenue_12m" or DATES not in labels["revenue_12m"]
    out = tmp_path / "report.html"
    cli("report", "--db", demo_db, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert f"Revenue same quarter last year {DATES}" in html


def test_diff_notes_a_revenue_metric_that_reads_another_period(cli, demo_db, tmp_path):
    moved = tmp_path / "moved.yaml"
    moved.write_text("extends: base\nname: moved\nmetrics:\n"
                     "  revenue_12m: {sum: amount, window: 12 months, offset: 12 months}\n", encoding="utf-8")
    note = ("the revenue metric revenue_12m reads other rows: old 12 months, new 12 months ending 12 months before "
            "the as-of date")
    result = json.loads(cli("diff", "--db", demo_db, "base", moved, "--as-of", "2026-06-30", "--json", ok=True).output)
    assert any(n.startswith(note) for n in result["notes"]), result["notes"]
    cli("apply", "--db", demo_db, "--policy", "base", "--as-of", "2026-06-30", ok=True)
    result = json.loads(cli("diff", "--db", demo_db, moved, "--against-run", "1", "--json", ok=True).output)
    assert any(n.startswith(note) for n in result["notes"]), result["notes"]
    same = json.loads(cli("diff", "--db", demo_db, "base", "base", "--as-of", "2026-06-30", "--json", ok=True).output)
    assert not any("reads other rows" in n for n in same["notes"])


def test_analyze_reads_the_offset_metrics_values(cli, demo_db, tmp_path):
    policy = tmp_path / "yoy.yaml"
    policy.write_text("name: yoy\nmetrics:\n"
                      "  orders_q: {count: orders, window: 3 months}\n"
                      "  orders_q_ly: {count: orders, window: 3 months, offset: 12 months}\n"
                      "tiers:\n  levels:\n"
                      "    - {id: falling, when: \"orders_q_ly >= 4 and orders_q < 0.5 * orders_q_ly\"}\n"
                      "    - {id: other, default: true}\n", encoding="utf-8")
    result = json.loads(cli("analyze", "--db", demo_db, "--policy", policy, "--as-of", "2026-06-30", "--json",
                            ok=True).output)
    by_hand = rows(demo_db, """
        SELECT count(*) FROM (SELECT c.id,
            (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.order_date >= '2026-04-01'
             AND o.order_date < '2026-07-01') AS now,
            (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.order_date >= '2025-04-01'
             AND o.order_date < '2025-07-01') AS ly FROM customers c) WHERE ly >= 4 AND now < 0.5 * ly""")[0][0]
    falling = next(r for r in result["rules"] if r["id"] == "falling")
    assert falling["matched"] == by_hand > 0


@pytest.mark.parametrize("text, fix", [
    ("2 working days", "write 2d or 48h"), ("2 Business Days", "write 2d or 48h"), ("1 working day", "write 1d or 24h"),
    ("3个工作日", "write 3d or 72h"), ("2 工作天", "write 2d or 48h"), ("8 working hours", "write 8h"),
    ("4个工作小时", "write 4h"), ("0.5 working days", "write 12h"),
])
def test_a_duration_in_working_time_says_it_is_not_counted(text, fix):
    said = duration_refusal(text)
    assert said.startswith("is counted in working ") and "which crm-rules does not count" in said
    assert "a duration is a number and a unit of calendar time (15m, 1h, 4h, 2d, 1w)" in said and said.endswith(fix)


@pytest.mark.parametrize("text", ["24/7", "7x24", "7 × 24", "24*7", "全天候", "24 hours a day", "24/365"])
def test_an_availability_is_not_a_duration(text):
    said = duration_refusal(text)
    assert said.startswith("is an availability (when someone answers), not a duration (how soon they answer)")
    assert f"put the availability into a perk text (perks: [{text} hotline])" in said


@pytest.mark.parametrize("text", ["2 hours", "4小时", "1h30m", "2 days", "weekly", "", "24", "48h"])
def test_durations_and_other_slips_are_not_refused_as_working_time(text):
    assert duration_refusal(text) is None
