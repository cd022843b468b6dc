"""Calendar windows (`year to date`, `quarter to date`, `month to date`): their bounds with and without an offset,
their values against SQL written by hand, the kinds that refuse them, the names of the forms, and what shows
them (explain, diff)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine import date_windows
from crm_rules.engine.calendar_windows import refused
from crm_rules.engine.metric_offset import period, window_dates
from crm_rules.engine.metric_sql import RunDates
from crm_rules.engine.policy_model import METRIC_KINDS, load_policy
from crm_rules.engine.runner import apply_policy
from crm_rules.engine.schema_validation import load_schema
from crm_rules.engine.time_spans import (CALENDAR_WINDOWS, TRAILING_WINDOW_PATTERN, WINDOW_PATTERN,
                                         calendar_in_trailing, week_to_date, window_fix)
from crm_rules.plugins.retention import CHURN_WARNING_SCHEMA
from small_db import assignments, make_db, rows

TIERS = "tiers:\n  levels: [{id: A, default: true}]\n"


def _dates(as_of: str) -> RunDates:
    return RunDates(as_of, date_windows.shifted(as_of, 1, "days"), sqlite3.connect(":memory:"))


# ---- the bounds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("as_of, window, offset, start, end", [
    ("2026-06-15", "year to date", None, "2026-01-01", "2026-06-15"),
    ("2026-06-15", "quarter to date", None, "2026-04-01", "2026-06-15"),
    ("2026-06-15", "month to date", None, "2026-06-01", "2026-06-15"),
    ("2026-01-01", "year to date", None, "2026-01-01", "2026-01-01"),  # the period's first day: one day
    ("2026-03-31", "quarter to date", None, "2026-01-01", "2026-03-31"),  # its last day: the whole quarter
    ("2026-12-31", "quarter to date", None, "2026-10-01", "2026-12-31"),
    ("2026-06-15", "year to date", "1y", "2025-01-01", "2025-06-15"),  # the same year to date last year
    ("2026-06-15", "quarter to date", "12 months", "2025-04-01", "2025-06-15"),
    ("2024-02-29", "year to date", "1y", "2023-01-01", "2023-02-28"),  # leap day: a year back is February 28th
    ("2024-02-29", "month to date", "1y", "2023-02-01", "2023-02-28"),
    ("2025-02-28", "month to date", "12 months", "2024-02-01", "2024-02-29"),  # a month-end stays one
    ("2026-05-31", "quarter to date", "3 months", "2026-01-01", "2026-02-28"),  # last quarter to the same point
    ("2026-05-15", "quarter to date", "3 months", "2026-01-01", "2026-02-15"),
    ("2026-01-15", "quarter to date", "3 months", "2025-10-01", "2025-10-15"),  # across the year's end
    ("2026-01-15", "year to date", "1 month", "2025-01-01", "2025-12-15"),  # the period that holds the end
    ("2026-03-31", "month to date", "1 month", "2026-02-01", "2026-02-28"),  # the whole month before
    ("2026-01-10", "month to date", "30d", "2025-12-01", "2025-12-11"),
])
def test_a_calendar_window_starts_on_the_first_day_of_the_period_holding_its_end(as_of, window, offset, start, end):
    dates = _dates(as_of)
    assert dates.window_start(window, offset=offset) == start
    assert dates.window_end(offset) == end
    assert date_windows.offset_window(as_of, window, offset) == (start, end)
    assert window_dates({"sum": "amount", "window": window, **({"offset": offset} if offset else {})}, as_of) == (
        start, end)
    assert _dates(end).window_start(window) == start  # the window a run as of its last day reads


def test_a_calendar_window_has_no_window_before_it_nor_a_length_in_months():
    dates = _dates("2026-06-15")
    with pytest.raises(ValueError):
        dates.window_start("quarter to date", periods=2)
    with pytest.raises(ValueError):
        dates.window_months("year to date")


def test_the_forms_are_written_alike_everywhere():
    props = load_schema("policy.schema.json")["properties"]["metrics"]["additionalProperties"]["properties"]
    assert props["window"]["pattern"] == WINDOW_PATTERN
    assert tuple(date_windows.CALENDAR) == CALENDAR_WINDOWS
    assert WINDOW_PATTERN.replace("|".join(CALENDAR_WINDOWS) + "|", "") == TRAILING_WINDOW_PATTERN
    for window in CALENDAR_WINDOWS:
        assert f"`{window}`" in props["window"]["description"]
        assert window_fix(window) == window


@pytest.mark.parametrize("text, fix", [
    ("YTD", "year to date"), ("ytd", "year to date"), ("Year-To-Date", "year to date"), ("this year", "year to date"),
    ("本年至今", "year to date"), ("年初至今", "year to date"), ("quarter-to-date", "quarter to date"),
    ("qtd", "quarter to date"), ("QTD", "quarter to date"), ("this quarter", "quarter to date"),
    ("本季度至今", "quarter to date"), ("MTD", "month to date"), ("month_to_date", "month to date"),
    ("月初至今", "month to date"), ("12个月", "12 months"), ("last year", None), ("year", None)])
def test_a_calendar_window_in_other_words_is_named_with_the_form_to_write(text, fix):
    assert window_fix(text) == fix


@pytest.mark.parametrize("text", ["week to date", "WTD", "week-to-date", "this week", "本周至今"])
def test_a_week_to_date_is_refused_with_what_to_write(text):
    assert "write `7d`" in week_to_date(text)
    assert window_fix(text) is None


def test_the_retention_plugins_usual_interval_takes_no_calendar_window(tmp_path, cli):
    assert CHURN_WARNING_SCHEMA["properties"]["purchase_gap"]["properties"]["window"]["pattern"] == (
        TRAILING_WINDOW_PATTERN)
    assert calendar_in_trailing("YTD").startswith("is a calendar window (year to date), which this window does not")
    assert calendar_in_trailing("24 months") is None
    policy = tmp_path / "gap.yaml"
    policy.write_text(TIERS + "actions:\n  churn:\n    use: churn_warning\n"
                      "    params:\n      purchase_gap: {window: year to date}\n", encoding="utf-8")
    result = cli("validate", policy)
    assert result.exit_code == 1
    assert (f"{policy}:7:30: actions.churn.params.purchase_gap.window: \"year to date\" is a calendar window, which "
            f"this window does not take") in result.output, result.output
    assert "write a span such as `24 months`, or `all`" in result.output


def test_only_trend_and_repurchase_rate_refuse_a_calendar_window():
    takes_window = {kind for kind, options in METRIC_KINDS.items() if "window" in options}
    refusing = {kind for kind in takes_window if refused("m", kind, {kind: "x", "window": "year to date"})}
    assert refusing == {"trend", "repurchase_rate"}
    assert refused("m", "trend", {"trend": "amount", "window": "6 months"}) is None


def test_diff_words_a_calendar_window():
    assert period({"sum": "amount", "window": "year to date"}) == "year to date"
    assert period({"sum": "amount", "window": "year to date", "offset": "1y"}) == (
        "year to date as of 1y before the as-of date")


# ---- values ------------------------------------------------------------------------------------------

AS_OF = "2026-06-15"
# Rows on each period's first day and the day before it, on the as-of date (one with a time) and the day after,
# and the same days a year before.
ORDERS = [
    ("a", "2025-12-31", 1.0), ("a", "2026-01-01", 2.0), ("a", "2026-03-31", 4.0), ("a", "2026-04-01", 8.0),
    ("a", "2026-05-31", 16.0), ("a", "2026-06-01", 32.0), ("a", "2026-06-15", 64.0),
    ("a", "2026-06-15 23:59:59", 128.0), ("a", "2026-06-16", 256.0),
    ("a", "2024-12-31", 1000.0), ("a", "2025-01-01", 2000.0), ("a", "2025-06-15", 3000.0), ("a", "2025-06-16", 5000.0),
    ("b", "2025-03-01", 70.0), ("c", "2026-06-16", 9.0),
]
RECEIVABLES = [  # issue, due, amount, paid amount, paid date
    ("a", "2026-03-01", "2026-03-31", 100.0, 100.0, "2026-03-30"),  # due the day before the quarter
    ("a", "2026-03-01", "2026-04-01", 200.0, 200.0, "2026-04-01"),  # due on its first day, paid on time
    ("a", "2026-05-01", "2026-06-15", 50.0, 50.0, "2026-06-20"),  # due on the as-of date, paid after it
]
INTERACTIONS = [("a", "2026-03-31", "visit"), ("a", "2026-04-02", "visit"), ("b", "2026-03-20", "visit")]
METRICS = """metrics:
  revenue_ytd: {sum: amount, window: year to date}
  revenue_ytd_ly: {sum: amount, window: year to date, offset: 1y}
  revenue_qtd: {sum: amount, window: quarter to date}
  revenue_mtd: {sum: amount, window: month to date}
  orders_ytd: {count: orders, window: year to date}
  avg_qtd: {avg: amount, window: quarter to date}
  smallest_ytd: {min: amount, window: year to date}
  biggest_mtd: {max: amount, window: month to date}
  order_days_ytd: {count_distinct: date, window: year to date}
  big_orders_qtd: {count: orders, where: "amount >= 10", window: quarter to date}
  days_since_visit_qtd: {recency: interactions, where: "kind = 'visit'", window: quarter to date}
  collected_qtd: {collection_rate: receivables, window: quarter to date}
  on_time_qtd: {on_time_rate: receivables, window: quarter to date}
  revenue_mtd_lm: {sum: amount, window: month to date, offset: 1 month}
"""


def _by_hand(db: Path, start: str, end: str, where: str = "1") -> dict:
    return {cid: values for cid, *values in rows(
        db, "SELECT customer_id, coalesce(sum(amount), 0), count(*), avg(amount), min(amount), max(amount), "
            "count(DISTINCT order_date) FROM orders WHERE order_date >= ? AND order_date < ? AND " + where
            + " GROUP BY customer_id", start, date_windows.shifted(end, 1, "days"))}


def test_calendar_windows_match_sql_written_by_hand(tmp_path):
    db = make_db(tmp_path / "calendar.db", [("a", "A", "x"), ("b", "B", "x"), ("c", "C", "x")], ORDERS,
                 RECEIVABLES, INTERACTIONS)
    (tmp_path / "p.yaml").write_text(METRICS + TIERS, encoding="utf-8")
    got = {cid: v[4] for cid, v in assignments(db, apply_policy(db, load_policy(tmp_path / "p.yaml"), AS_OF).run_id).items()}
    ytd, ytd_ly = _by_hand(db, "2026-01-01", AS_OF), _by_hand(db, "2025-01-01", "2025-06-15")
    qtd, mtd = _by_hand(db, "2026-04-01", AS_OF), _by_hand(db, "2026-06-01", AS_OF)
    mtd_lm = _by_hand(db, "2026-05-01", "2026-05-15")
    a = got["a"]
    assert ytd["a"][0] == 2 + 4 + 8 + 16 + 32 + 64 + 128 and a["revenue_ytd"] == ytd["a"][0]
    assert a["revenue_ytd_ly"] == ytd_ly["a"][0] == 5000
    assert a["revenue_qtd"] == qtd["a"][0] == 8 + 16 + 32 + 64 + 128
    assert a["revenue_mtd"] == mtd["a"][0] == 32 + 64 + 128
    assert (a["orders_ytd"], a["smallest_ytd"], a["order_days_ytd"]) == (ytd["a"][1], ytd["a"][3], ytd["a"][5])
    assert a["avg_qtd"] == pytest.approx(qtd["a"][2])
    assert a["biggest_mtd"] == mtd["a"][4] == 128
    assert a["big_orders_qtd"] == _by_hand(db, "2026-04-01", AS_OF, "amount >= 10")["a"][1] == 4
    assert a["revenue_mtd_lm"] == mtd_lm.get("a", [0])[0] == 0  # 2026-05-31 is after May 15th
    assert a["days_since_visit_qtd"] == 74  # 2026-04-02, not the visit the day before the quarter
    assert a["collected_qtd"] == pytest.approx(200 / 250)  # paid after the as-of date does not count yet
    assert a["on_time_qtd"] == pytest.approx(1 / 2)
    b = got["b"]  # ordered only last year: nothing this year, last year's to date
    assert (b["revenue_ytd"], b["orders_ytd"], b["revenue_ytd_ly"], b["days_since_visit_qtd"]) == (0, 0, 70, None)
    assert got["c"]["revenue_mtd"] == 0  # its only order is after the as-of date


def test_a_calendar_window_with_an_offset_is_the_metric_of_a_run_as_of_its_end(tmp_path):
    db = make_db(tmp_path / "calendar.db", [("a", "A", "x"), ("b", "B", "x")], ORDERS)
    (tmp_path / "moved.yaml").write_text("metrics:\n  r: {sum: amount, window: year to date, offset: 1y}\n"
                                         "  q: {max: amount, window: quarter to date, offset: 1y}\n" + TIERS,
                                         encoding="utf-8")
    (tmp_path / "then.yaml").write_text("metrics:\n  r: {sum: amount, window: year to date}\n"
                                        "  q: {max: amount, window: quarter to date}\n" + TIERS, encoding="utf-8")
    moved = apply_policy(db, load_policy(tmp_path / "moved.yaml"), AS_OF)
    then = apply_policy(db, load_policy(tmp_path / "then.yaml"), "2025-06-15")
    assert ({c: v[4] for c, v in assignments(db, moved.run_id).items()}
            == {c: v[4] for c, v in assignments(db, then.run_id).items()})


# ---- what shows or compares a metric ------------------------------------------------------------------

def test_explain_gives_the_dates_of_a_calendar_window(cli, demo_db, tmp_path):
    policy = tmp_path / "ytd.yaml"
    policy.write_text("extends: base\nname: ytd\nmetrics:\n"
                      "  revenue_ytd: {label: Revenue YTD, sum: amount, window: year to date}\n"
                      "  revenue_ytd_ly: {label: Revenue YTD last year, sum: amount, window: year to date, offset: 1y}\n",
                      encoding="utf-8")
    customer = rows(demo_db, "SELECT id FROM customers LIMIT 1")[0][0]
    explained = json.loads(cli("explain", customer, "--db", demo_db, "--policy", policy, "--as-of", "2026-06-15",
                               "--json", ok=True).output)
    labels = {m["name"]: m["label"] for m in explained["metrics"]}
    assert labels["revenue_ytd"] == "Revenue YTD (2026-01-01 – 2026-06-15)"
    assert labels["revenue_ytd_ly"] == "Revenue YTD last year (2025-01-01 – 2025-06-15)"


def test_the_report_gives_the_dates_of_a_calendar_window(cli, demo_db, tmp_path):
    policy = tmp_path / "ytd.yaml"
    policy.write_text("extends: base\nname: ytd\nmetrics:\n"
                      "  revenue_ytd: {label: Revenue YTD, sum: amount, window: year to date}\n"
                      "summary:\n  key_metrics: [revenue_12m, revenue_ytd]\n", encoding="utf-8")
    cli("apply", "--db", demo_db, "--policy", policy, "--as-of", "2026-06-15", ok=True)
    out = tmp_path / "report.html"
    cli("report", "--db", demo_db, "--out", out, ok=True)
    assert "Revenue YTD (2026-01-01 – 2026-06-15)" in out.read_text(encoding="utf-8")


def test_diff_notes_a_revenue_metric_read_over_a_calendar_window(cli, demo_db, tmp_path):
    moved = tmp_path / "ytd.yaml"
    moved.write_text("extends: base\nname: ytd\nmetrics:\n  revenue_12m: {sum: amount, window: year to date}\n",
                     encoding="utf-8")
    result = json.loads(cli("diff", "--db", demo_db, "base", moved, "--as-of", "2026-06-30", "--json", ok=True).output)
    assert any(n.startswith("the revenue metric revenue_12m reads other rows: old 12 months, new year to date")
               for n in result["notes"]), result["notes"]
