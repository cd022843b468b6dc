"""A metric's `where` that keeps no row of its source is said in the run's notes, with what the data holds."""

from __future__ import annotations

import json

import pytest

from crm_rules.engine import data_checks, filter_notes
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from small_db import D, make_db, rows

CUSTOMERS = [("a", "甲公司", "north"), ("b", "乙公司", "south"), ("c", "丙公司", "east")]
ORDERS = [("a", "2026-05-01", 1000), ("b", "2026-04-01", 500), ("c", "2025-12-01", 100)]
KEEPS_NO_ROW = "empty or 0 for every customer"  # in every such note, one filter or several


def interactions(*kinds: str, day: str = "2026-03-01") -> list[tuple]:
    return [(cid, day, kind) for kind in kinds for cid, _, _ in CUSTOMERS]


def notes_of(db, policy="base") -> list[str]:
    return apply_policy(db, load_policy(policy), D, dry_run=True).notes


def filter_notes_of(db, policy="base") -> list[str]:
    return [note for note in notes_of(db, policy) if KEEPS_NO_ROW in note]


def test_chinese_kinds_are_noted_with_the_values_the_data_holds(tmp_path, cli):
    db = make_db(tmp_path / "zh.db", CUSTOMERS, ORDERS, interactions=interactions("投诉", "拜访", "电话", "拜访"))
    text = cli("apply", "--db", db, "--policy", "base", "--as-of", D, ok=True).output
    flat = " ".join(text.split())
    assert ("note: metrics complaints_12m (where kind = 'complaint'), referrals_12m (where kind = 'referral') and "
            "contacts_12m (where kind in ['visit', 'call']) keep no row of 'interactions' dated on or before the as-of "
            f"date {D} (its 12 rows have kind '拜访', '投诉', '电话')") in flat
    assert "no row has kind 'complaint', 'referral', 'visit' or 'call': the policy's codes and the data's differ" in flat
    # the --json output and the stored run carry the same note
    out = json.loads(cli("apply", "--db", db, "--policy", "base", "--as-of", D, "--json", ok=True).output)
    [note] = [n for n in out["notes"] if KEEPS_NO_ROW in n]
    assert "'拜访', '投诉', '电话'" in note and "complaints_12m" in note
    [(stored,)] = rows(db, "SELECT notes FROM crm_runs WHERE run_id = ?", out["run_id"])
    assert note in json.loads(stored)


def test_the_shipped_demo_data_gets_no_such_note(demo_db):
    assert filter_notes_of(demo_db) == []


def test_filters_that_keep_some_rows_get_no_note(tmp_path):
    db = make_db(tmp_path / "ok.db", CUSTOMERS, ORDERS, interactions=[
        ("a", "2026-03-01", "complaint"), ("b", "2026-02-01", "referral"), ("c", "2026-01-01", "visit")])
    assert filter_notes_of(db) == []


def test_codes_in_other_capitals_are_named(tmp_path):
    db = make_db(tmp_path / "caps.db", CUSTOMERS, ORDERS, interactions=interactions("Complaint", "referral", "visit"))
    [note] = filter_notes_of(db)
    assert note.startswith("metric complaints_12m: where kind = 'complaint' keeps no row of 'interactions'")
    assert "the data writes 'Complaint' where the filter has 'complaint' (other capitals or spaces)" in note


def test_a_code_missing_among_the_policys_own_is_not_called_a_mismatch(tmp_path):
    """A small sample without a complaint uses the policy's codes for the rest: the note says so, not that the
    codes differ."""
    db = make_db(tmp_path / "few.db", CUSTOMERS, ORDERS, interactions=interactions("referral", "visit"))
    [note] = filter_notes_of(db)
    assert "no row has kind 'complaint', though the data writes kind 'referral' and 'visit' as the policy does" in note
    assert "codes and the data's differ" not in note


def test_a_filter_that_keeps_rows_before_its_window_gets_no_note(tmp_path):
    """Complaints two years ago and none this year: a quiet year, not a code the data does not use."""
    db = make_db(tmp_path / "old.db", CUSTOMERS, ORDERS, interactions=[
        ("a", "2024-03-01", "complaint"), ("b", "2024-03-01", "referral"), ("c", "2026-03-01", "visit")])
    assert filter_notes_of(db) == []


def test_rows_after_the_as_of_date_do_not_count(tmp_path):
    db = make_db(tmp_path / "later.db", CUSTOMERS, ORDERS, interactions=[
        ("a", "2026-08-01", "complaint"), ("b", "2026-03-01", "referral"), ("c", "2026-03-01", "visit")])
    [note] = filter_notes_of(db)
    assert "complaints_12m" in note and f"dated on or before the as-of date {D} (its 2 rows" in note


def test_an_empty_source_gets_its_own_note_only(tmp_path):
    db = make_db(tmp_path / "empty.db", CUSTOMERS, ORDERS)
    notes = notes_of(db)
    assert any("'interactions'" in n and "are empty (no rows at all)" in n for n in notes)
    assert not [n for n in notes if KEEPS_NO_ROW in n]


def test_a_number_filter_names_the_columns_range(tmp_path):
    policy = tmp_path / "big.yaml"
    policy.write_text("extends: base\nname: big\nmetrics:\n"
                      "  big_orders: {count: orders, where: 'amount >= 1_000_000', window: 12 months}\n", encoding="utf-8")
    db = make_db(tmp_path / "n.db", CUSTOMERS, ORDERS, interactions=interactions("complaint", "referral", "visit"))
    [note] = filter_notes_of(db, policy)
    assert note.startswith("metric big_orders: where amount >= 1_000_000 keeps no row of 'orders'")
    assert "(its 3 rows have amount from 100 to 1,000)" in note
    assert note.endswith("is the filter right for this data? (if no such row exists yet, this is expected)")


def test_the_source_is_not_read_when_a_customer_has_a_value(tmp_path, monkeypatch):
    """The common case is settled from the aggregates (one row per customer), never from the source's rows."""
    db = make_db(tmp_path / "ok.db", CUSTOMERS, ORDERS, interactions=[
        ("a", "2026-03-01", "complaint"), ("b", "2026-02-01", "referral"), ("c", "2026-01-01", "visit")])
    statements: list[str] = []
    real = filter_notes.unmatched_filter_notes

    def traced(conn, *args, **kwargs):
        conn.set_trace_callback(statements.append)
        try:
            return real(conn, *args, **kwargs)
        finally:
            conn.set_trace_callback(None)

    monkeypatch.setattr(data_checks, "unmatched_filter_notes", traced)
    assert filter_notes_of(db) == []
    assert statements and not [s for s in statements if '"interactions"' in s or '"orders"' in s]


@pytest.mark.parametrize("where, kinds", [("kind != 'complaint'", ("complaint",)),
                                          ("lower(kind) = 'complaint'", ("投诉",))])
def test_other_forms_of_filters(tmp_path, where, kinds):
    policy = tmp_path / "p.yaml"
    policy.write_text(f'extends: base\nname: p\nmetrics:\n  complaints_12m: {{count: interactions, where: "{where}", '
                      f'window: 12 months}}\n', encoding="utf-8")
    db = make_db(tmp_path / "f.db", CUSTOMERS, ORDERS, interactions=interactions(*kinds))
    [note] = filter_notes_of(db, policy)
    assert f"complaints_12m (where {where})" in note
