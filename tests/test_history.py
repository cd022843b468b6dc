"""Runs over time: `crm_transitions`, the run list, a customer's history, changes between runs, and pruning.

Exact cases use a hand-made database (tests/small_db.py) graded by a small rules policy at two as-of
dates, with one customer added and one removed between the runs.  Every grade below was worked out by
hand from the orders (12-month revenue ending on the as-of date; recency = days since the last order):

customer  orders                               2025-12-31                    2026-06-30
a         2025-06-01 2000                      gold/gold_basic, lapsed (213) bronze, lapsed (394)      downgrade
b         2026-03-01 500                       bronze, active (no order)     silver, active (121)      upgrade
c         2025-11-01 150, 2026-06-01 30        silver, active (60)           silver (180), active      unchanged
d         2025-01-15 300                       silver, lapsed (350)          bronze, lapsed            downgrade
f         2025-09-01 150                       silver, active (121)          silver, lapsed (302)      same tier
g         2025-03-01 4000, 2025-12-15 2000,    gold/gold_plus (6000), active gold/gold_basic (2010),   sub-grade only:
          2026-06-01 10                                                      active                    not a transition
h         2026-05-01 1500                      bronze, active (no order)     gold/gold_basic, active   upgrade
n         2026-06-01 100 (added before run 4)  -                             silver, active            new
z         2025-12-01 50 (deleted before run 4) bronze, active                -                         removed

The demo-database tests grade the same 300 demo customers (seed 11) with the base policy as of
2025-06-30, 2025-12-31 and 2026-06-30, and check the summaries both against fixed numbers and against
a recomputation in Python from crm_assignments.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import typer

from conftest import file_digest
from crm_rules.cli import app
from crm_rules.engine import database, run_history
from crm_rules.engine.errors import DataError, RunError, UsageError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.results_store import SCHEMA_VERSION
from crm_rules.engine.run_history import RECOUNTED_TOTALS, changes, customer_history, list_runs, prune
from crm_rules.engine.runner import apply_policy
from small_db import make_db, rows

VALID = Path(__file__).parent / "policies" / "valid"

LOYALTY = """name: loyalty
version: "1"
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  recency_days: {recency: orders}
tiers:
  levels:
    - id: gold
      when: "revenue_12m >= 1000"
      subgrades:
        - {id: gold_plus, when: "revenue_12m >= 5000"}
        - {id: gold_basic, default: true}
    - {id: silver, when: "revenue_12m >= 100"}
    - {id: bronze, default: true}
lifecycle:
  stages:
    - {id: lapsed, when: "recency_days > 180"}
    - {id: active, default: true}
service_levels:
  - {id: gold-care, tier: gold}
  - {id: silver-care, tier: silver}
  - {id: bronze-care, tier: bronze}
"""

# Same name, fails at run time: two tier rules match with hit_policy unique -> a failed run of `loyalty`.
LOYALTY_FAILING = """name: loyalty
metrics: {revenue_12m: {sum: amount, window: 12 months}}
tiers:
  hit_policy: unique
  levels:
    - {id: big, when: 'revenue_12m >= 0'}
    - {id: any, when: 'revenue_12m >= 0'}
    - {id: none, default: true}
"""

ORDERS = [("a", "2025-06-01", 2000), ("b", "2026-03-01", 500), ("c", "2025-11-01", 150), ("c", "2026-06-01", 30),
          ("d", "2025-01-15", 300), ("f", "2025-09-01", 150), ("g", "2025-03-01", 4000), ("g", "2025-12-15", 2000),
          ("g", "2026-06-01", 10), ("h", "2026-05-01", 1500), ("z", "2025-12-01", 50)]

TRANSITION_SQL = ("SELECT run_id, previous_run_id, policy_name, customer_id, customer_name, tier_before, tier_after, "
                  "stage_before, stage_after, subgrade_before, subgrade_after, direction, tier_rule, stage_rule "
                  "FROM crm_transitions ORDER BY run_id, customer_id")

# run 4 (as of 2026-06-30) against run 1 (as of 2025-12-31): runs 2 (another policy) and 3 (failed) are skipped.
EXPECTED_TRANSITIONS = [
    (4, 1, "loyalty", "a", "A", "gold", "bronze", "lapsed", "lapsed", "gold_basic", None, "downgrade", "default", "lapsed"),
    (4, 1, "loyalty", "b", "B", "bronze", "silver", "active", "active", None, None, "upgrade", "silver", "default"),
    (4, 1, "loyalty", "d", "D", "silver", "bronze", "lapsed", "lapsed", None, None, "downgrade", "default", "lapsed"),
    (4, 1, "loyalty", "f", "F", "silver", "silver", "active", "lapsed", None, None, "same tier", "silver", "lapsed"),
    (4, 1, "loyalty", "h", "H", "bronze", "gold", "active", "active", None, "gold_basic", "upgrade", "gold", "default"),
    (4, 1, "loyalty", "n", "N", None, "silver", None, "active", None, None, "new", "silver", "default"),
    (4, 1, "loyalty", "z", "Z", "bronze", None, "active", None, None, None, "removed", None, None),
]


def execute(db, *statements):
    conn = sqlite3.connect(db)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def results_digest(db, where: str | None = None) -> str:
    """Digest of the crm_ tables' rows (values with their types): proves results were not touched.

    With ``where`` (e.g. "run_id = 1"): only those runs' rows, in every table that has a run_id.  A later
    run may add columns to crm_metrics (metrics no earlier run stored), which read NULL on older rows: the
    trailing NULLs of its rows are left out."""
    conn = sqlite3.connect(db)
    h = hashlib.sha256()
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'crm_%' "
                                "AND name != 'crm_meta' ORDER BY name"):
        has_run = any(c[1] == "run_id" for c in conn.execute(f'PRAGMA table_info("{name}")'))
        if where is not None and not has_run:
            continue
        for row in conn.execute(f'SELECT * FROM "{name}" WHERE {where or "1"} ORDER BY rowid'):
            while name == "crm_metrics" and row and row[-1] is None:
                row = row[:-1]
            h.update(repr((name, row)).encode())
    conn.close()
    return h.hexdigest()


class Loyalty:
    """The hand-made database and its runs: 1 loyalty, 2 minimal, 3 loyalty (failed), 4 loyalty."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.db = make_db(tmp_path / "loyalty.db", [(c, c.upper(), "华东") for c in "abcdfghz"], orders=ORDERS)
        self.policy = self.write("loyalty.yaml", LOYALTY)
        self.sha = load_policy(self.policy).sha256
        assert apply_policy(self.db, load_policy(self.policy), "2025-12-31").run_id == 1
        assert apply_policy(self.db, load_policy(VALID / "minimal.yaml"), "2025-12-31").run_id == 2
        with pytest.raises(RunError):
            apply_policy(self.db, load_policy(self.write("failing.yaml", LOYALTY_FAILING)), "2026-06-30")
        execute(self.db, "INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) VALUES ('n', 'N', '华南', 'retail', '2020-01-01', 'someone', 10000)",
                "INSERT INTO orders (customer_id, order_date, amount, cost, discount) VALUES ('n', '2026-06-01', 100, 0, 0)",
                "DELETE FROM orders WHERE customer_id = 'z'", "DELETE FROM customers WHERE id = 'z'")
        assert apply_policy(self.db, load_policy(self.policy), "2026-06-30").run_id == 4

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def loyalty(tmp_path) -> Loyalty:
    return Loyalty(tmp_path)


# ---- the crm_transitions view ----


def test_transitions_view_lists_exactly_the_changed_new_and_removed_customers(loyalty):
    """Sub-grade-only moves (g: gold_plus -> gold_basic) and unchanged customers (c) are not transitions;
    the first run of each policy (1, 2) has no previous run, and the failed run 3 is never a previous run."""
    assert rows(loyalty.db, TRANSITION_SQL) == EXPECTED_TRANSITIONS
    assert rows(loyalty.db, "SELECT value FROM crm_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION >= 3  # the version that added crm_transitions, or later


def test_transitions_compare_with_the_previous_successful_run_of_the_same_policy(loyalty):
    apply_policy(loyalty.db, load_policy(VALID / "minimal.yaml"), "2026-06-30")  # run 5: minimal again, all in 'all'
    apply_policy(loyalty.db, load_policy(loyalty.policy), "2026-06-30")  # run 6: loyalty, same grades as run 4
    got = rows(loyalty.db, "SELECT run_id, previous_run_id, customer_id, direction FROM crm_transitions "
                           "WHERE run_id >= 5 ORDER BY run_id, customer_id")
    # run 5 vs 2: n is new, z is gone; nobody changed tier ('all') or stage (none). Run 6 vs 4: nothing changed.
    assert got == [(5, 2, "n", "new"), (5, 2, "z", "removed")]


def test_direction_follows_the_tier_order_of_the_run_and_unranked_when_a_tier_is_gone(tmp_path):
    db = make_db(tmp_path / "r.db", [(c, c.upper(), "华东") for c in "abcdfghz"], orders=ORDERS)
    first = tmp_path / "v1.yaml"
    first.write_text(LOYALTY, encoding="utf-8")
    renamed = tmp_path / "v2.yaml"
    renamed.write_text(LOYALTY.replace('version: "1"', 'version: "2"').replace("id: gold\n", "id: platinum\n")
                       .replace("{id: gold-care, tier: gold}", "{id: platinum-care, tier: platinum}"), encoding="utf-8")
    apply_policy(db, load_policy(first), "2025-12-31")
    apply_policy(db, load_policy(renamed), "2025-12-31")  # same data and date: only the tier's name changed
    assert rows(db, "SELECT customer_id, tier_before, tier_after, direction FROM crm_transitions ORDER BY customer_id") == [
        ("a", "gold", "platinum", "unranked"), ("g", "gold", "platinum", "unranked")]
    c = changes(db)
    assert c["policy_changed"] and c["previous_policy_sha256"] == load_policy(first).sha256
    assert c["tiers"] == ["platinum", "silver", "bronze", "gold"]  # this run's tiers in order, then the old one
    assert c["previous_only_tiers"] == ["gold"]
    assert c["matrix"] == [{"from": "silver", "to": "silver", "customers": 3},
                           {"from": "bronze", "to": "bronze", "customers": 3},
                           {"from": "gold", "to": "platinum", "customers": 2}]
    assert c["totals"] == {"upgrades": 0, "downgrades": 0, "unranked": 2, "stage_only": 0, "same_tier": 0, "subgrade_only": 0,
                           "service_level_only": 0, "new": 0, "removed": 0, "stage_changes": 0, "unchanged": 6,
                           "kept_tier": 6}


def test_results_of_an_older_schema_get_the_view_and_are_readable_before(loyalty):
    execute(loyalty.db, "DROP VIEW crm_transitions", "UPDATE crm_meta SET value = '2' WHERE key = 'schema_version'")
    digest = file_digest(loyalty.db)
    c = changes(loyalty.db)  # read-only: the same definition as a TEMP view on the connection
    assert [(r["customer_id"], r["direction"]) for r in c["changes"]] == [
        ("b", "upgrade"), ("h", "upgrade"), ("a", "downgrade"), ("d", "downgrade"), ("f", "same tier"), ("g", "sub-grade"),
        ("n", "new"), ("z", "removed")]
    assert file_digest(loyalty.db) == digest
    apply_policy(loyalty.db, load_policy(loyalty.policy), "2026-06-30")  # a write migrates the results schema
    assert rows(loyalty.db, "SELECT value FROM crm_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert rows(loyalty.db, TRANSITION_SQL) == EXPECTED_TRANSITIONS  # run 5 = run 4: no transitions of its own


def test_transitions_view_uses_the_primary_keys(loyalty):
    plan = " | ".join(r[3] for r in rows(loyalty.db, "EXPLAIN QUERY PLAN SELECT * FROM crm_transitions WHERE run_id = 4"))
    assert "SEARCH a USING INDEX sqlite_autoindex_crm_assignments_1 (run_id=?)" in plan
    assert "SEARCH p USING INDEX sqlite_autoindex_crm_assignments_1 (run_id=? AND customer_id=?)" in plan
    assert "SEARCH p USING INDEX sqlite_autoindex_crm_assignments_1 (run_id=?)" in plan  # the removed-customers half
    assert "SCAN a" not in plan and "SCAN p" not in plan


# ---- runs ----


def test_list_runs_shows_every_run_oldest_first(loyalty):
    got = list_runs(loyalty.db)
    assert [(r["run_id"], r["policy_name"], r["policy_version"], r["as_of"], r["status"], r["customers"]) for r in got] == [
        (1, "loyalty", "1", "2025-12-31", "succeeded", 8), (2, "minimal", None, "2025-12-31", "succeeded", 8),
        (3, "loyalty", None, "2026-06-30", "failed", None), (4, "loyalty", "1", "2026-06-30", "succeeded", 8)]
    assert got[0]["policy_sha256"] == loyalty.sha and got[0]["policy_sha256_short"] == loyalty.sha[:12]
    assert "hit policy unique" in got[2]["error"] and got[0]["error"] is None
    assert all(r["started_at"] and r["finished_at"] for r in got)
    assert [r["run_id"] for r in list_runs(loyalty.db, policy="loyalty")] == [1, 3, 4]


def test_list_runs_errors_name_the_database(loyalty, tmp_path):
    with pytest.raises(UsageError) as info:
        list_runs(loyalty.db, policy="loyalti")
    assert str(loyalty.db) in info.value.message and "no runs of policy 'loyalti'; did you mean 'loyalty'?" in info.value.message
    assert info.value.hint == "policies with runs here: loyalty, minimal"
    empty = make_db(tmp_path / "empty.db", [("a", "A", "x")])
    with pytest.raises(UsageError, match="has no crm-rules runs yet"):
        list_runs(empty)
    with pytest.raises(UsageError, match="database not found"):
        list_runs(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


# ---- history ----


def test_customer_history_across_runs_and_policies(loyalty):
    got = customer_history(loyalty.db, "a")
    keys = ("run_id", "policy_name", "as_of", "tier", "tier_rule", "subgrade", "subgrade_rule", "stage", "stage_rule",
            "service_level")
    assert [tuple(r[k] for k in keys) for r in got] == [
        (1, "loyalty", "2025-12-31", "gold", "gold", "gold_basic", "default", "lapsed", "lapsed", "gold-care"),
        (2, "minimal", "2025-12-31", "all", "default", None, None, None, None, None),
        (4, "loyalty", "2026-06-30", "bronze", "default", None, None, "lapsed", "lapsed", "bronze-care")]
    assert [r["policy_sha256"] for r in got] == [loyalty.sha, load_policy(VALID / "minimal.yaml").sha256, loyalty.sha]
    assert {(r["customer_id"], r["customer_name"]) for r in got} == {("a", "A")}
    assert [r["run_id"] for r in customer_history(loyalty.db, "a", policy="loyalty")] == [1, 4]
    g = customer_history(loyalty.db, "g", policy="loyalty")
    assert [(r["tier"], r["subgrade"], r["subgrade_rule"]) for r in g] == [("gold", "gold_plus", "gold_plus"),
                                                                           ("gold", "gold_basic", "default")]
    assert [r["run_id"] for r in customer_history(loyalty.db, "z")] == [1, 2]  # removed before run 4
    assert [r["run_id"] for r in customer_history(loyalty.db, "n")] == [4]  # added before run 4


def test_customer_history_of_an_unknown_customer_names_the_database(loyalty):
    with pytest.raises(UsageError) as info:
        customer_history(loyalty.db, "A")
    assert info.value.message == f"customer 'A' not found in any successful run in {loyalty.db}"
    assert info.value.hint == "did you mean 'a'? ids are matched exactly"
    with pytest.raises(UsageError) as info:
        customer_history(loyalty.db, "zz")
    assert info.value.hint == f"`crm-rules export --db {loyalty.db}` lists the customers of the latest run (ids look like 'a')"
    with pytest.raises(UsageError) as info:
        customer_history(loyalty.db, "n", policy="minimal")
    assert info.value.message == f"customer 'n' not found in any successful run of policy 'minimal' in {loyalty.db}"
    with pytest.raises(UsageError, match="no runs of policy 'nope'"):
        customer_history(loyalty.db, "a", policy="nope")


def test_integer_customer_ids_are_found_and_listed(tmp_path):
    db = tmp_path / "int.db"
    execute(db, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, order_date TEXT, amount REAL)",
            "INSERT INTO customers VALUES (7, 'Seven'), (42, 'Forty-two')",
            "INSERT INTO orders (customer_id, order_date, amount) VALUES (7, '2026-01-01', 5000), (42, '2025-01-01', 200)")
    (tmp_path / "loyalty.yaml").write_text(LOYALTY, encoding="utf-8")
    policy = load_policy(tmp_path / "loyalty.yaml")
    apply_policy(db, policy, "2025-12-31")
    apply_policy(db, policy, "2026-06-30")
    assert [(r["customer_id"], r["tier"]) for r in customer_history(db, "42")] == [(42, "silver"), (42, "bronze")]
    assert [(r["customer_id"], r["direction"]) for r in changes(db)["changes"]] == [(7, "upgrade"), (42, "downgrade")]


# ---- changes ----


def test_changes_summarises_the_latest_run_against_the_previous_one(loyalty):
    c = changes(loyalty.db)  # the latest successful run: 4 (run 3 failed)
    assert {k: c[k] for k in ("run_id", "policy_name", "as_of", "customers", "previous_run_id", "previous_as_of",
                              "previous_customers", "policy_changed")} == {
        "run_id": 4, "policy_name": "loyalty", "as_of": "2026-06-30", "customers": 8, "previous_run_id": 1,
        "previous_as_of": "2025-12-31", "previous_customers": 8, "policy_changed": False}
    assert c["policy_sha256"] == c["previous_policy_sha256"] == loyalty.sha
    assert c["totals"] == {"upgrades": 2, "downgrades": 2, "unranked": 0, "stage_only": 1, "same_tier": 1, "subgrade_only": 1,
                           "service_level_only": 0, "new": 1, "removed": 1, "stage_changes": 1, "unchanged": 1,
                           "kept_tier": 3}
    assert c["tiers"] == ["gold", "silver", "bronze"]
    # unchanged pairs included (g gold->gold, c and f silver->silver); new from None, removed to None
    assert c["matrix"] == [
        {"from": "gold", "to": "gold", "customers": 1}, {"from": "gold", "to": "bronze", "customers": 1},
        {"from": "silver", "to": "silver", "customers": 2}, {"from": "silver", "to": "bronze", "customers": 1},
        {"from": "bronze", "to": "gold", "customers": 1}, {"from": "bronze", "to": "silver", "customers": 1},
        {"from": "bronze", "to": None, "customers": 1}, {"from": None, "to": "silver", "customers": 1}]
    # upgrades, downgrades, same tier, sub-grade (g), new, removed; by customer within each
    assert c["changes"] == [
        {"customer_id": "b", "customer_name": "B", "direction": "upgrade", "tier_before": "bronze", "tier_after": "silver",
         "subgrade_before": None, "subgrade_after": None, "stage_before": "active", "stage_after": "active",
         "service_level_before": "bronze-care", "service_level_after": "silver-care",
         "tier_rule": "silver", "subgrade_rule": None, "stage_rule": "default", "tier_rule_before": "default"},
        {"customer_id": "h", "customer_name": "H", "direction": "upgrade", "tier_before": "bronze", "tier_after": "gold",
         "subgrade_before": None, "subgrade_after": "gold_basic", "stage_before": "active", "stage_after": "active",
         "service_level_before": "bronze-care", "service_level_after": "gold-care",
         "tier_rule": "gold", "subgrade_rule": "default", "stage_rule": "default", "tier_rule_before": "default"},
        {"customer_id": "a", "customer_name": "A", "direction": "downgrade", "tier_before": "gold", "tier_after": "bronze",
         "subgrade_before": "gold_basic", "subgrade_after": None, "stage_before": "lapsed", "stage_after": "lapsed",
         "service_level_before": "gold-care", "service_level_after": "bronze-care",
         "tier_rule": "default", "subgrade_rule": None, "stage_rule": "lapsed", "tier_rule_before": "gold"},
        {"customer_id": "d", "customer_name": "D", "direction": "downgrade", "tier_before": "silver", "tier_after": "bronze",
         "subgrade_before": None, "subgrade_after": None, "stage_before": "lapsed", "stage_after": "lapsed",
         "service_level_before": "silver-care", "service_level_after": "bronze-care",
         "tier_rule": "default", "subgrade_rule": None, "stage_rule": "lapsed", "tier_rule_before": "silver"},
        {"customer_id": "f", "customer_name": "F", "direction": "same tier", "tier_before": "silver", "tier_after": "silver",
         "subgrade_before": None, "subgrade_after": None, "stage_before": "active", "stage_after": "lapsed",
         "service_level_before": "silver-care", "service_level_after": "silver-care",
         "tier_rule": "silver", "subgrade_rule": None, "stage_rule": "lapsed", "tier_rule_before": "silver"},
        {"customer_id": "g", "customer_name": "G", "direction": "sub-grade", "tier_before": "gold", "tier_after": "gold",
         "subgrade_before": "gold_plus", "subgrade_after": "gold_basic", "stage_before": "active", "stage_after": "active",
         "service_level_before": "gold-care", "service_level_after": "gold-care", "tier_rule": "gold",
         "subgrade_rule": "default", "stage_rule": "default", "tier_rule_before": "gold"},
        {"customer_id": "n", "customer_name": "N", "direction": "new", "tier_before": None, "tier_after": "silver",
         "subgrade_before": None, "subgrade_after": None, "stage_before": None, "stage_after": "active",
         "service_level_before": None, "service_level_after": "silver-care",
         "tier_rule": "silver", "subgrade_rule": None, "stage_rule": "default", "tier_rule_before": None},
        {"customer_id": "z", "customer_name": "Z", "direction": "removed", "tier_before": "bronze", "tier_after": None,
         "subgrade_before": None, "subgrade_after": None, "stage_before": "active", "stage_after": None,
         "service_level_before": "bronze-care", "service_level_after": None,
         "tier_rule": None, "subgrade_rule": None, "stage_rule": None, "tier_rule_before": "default"}]
    assert changes(loyalty.db, run_id=4) == c == changes(loyalty.db, policy="loyalty")


def test_changes_of_a_first_run_has_nothing_to_compare(loyalty):
    for c in (changes(loyalty.db, run_id=2), changes(loyalty.db, policy="minimal"), changes(loyalty.db, run_id=1)):
        assert c["previous_run_id"] is None and c["changes"] == [] and c["matrix"] == []
        assert set(c["totals"].values()) == {0}
    assert changes(loyalty.db, run_id=2)["tiers"] == ["all"]


def test_changes_argument_errors(loyalty):
    with pytest.raises(UsageError, match="run 3 in .*loyalty.db failed and has no results: hit policy unique"):
        changes(loyalty.db, run_id=3)
    with pytest.raises(UsageError, match="run 99 not found") as info:
        changes(loyalty.db, run_id=99)
    assert info.value.hint == (f"recent runs: 4, 3, 2, 1; {loyalty.db} never had a run 99: if apply wrote it with "
                               f"--results-db FILE, give FILE as --db")
    with pytest.raises(UsageError, match="run 4 in .*loyalty.db is a run of policy 'loyalty', not 'minimal'") as info:
        changes(loyalty.db, run_id=4, policy="minimal")
    assert info.value.hint == f"{loyalty.db} has run 2 of policy 'minimal'; to use run 4 of {loyalty.db}, leave out --policy"
    with pytest.raises(UsageError, match="no runs of policy 'nope'"):
        changes(loyalty.db, policy="nope")


# ---- the demo database over three as-of dates ----


@pytest.fixture
def demo_runs(demo_db):
    for as_of in ("2025-06-30", "2025-12-31", "2026-06-30"):
        apply_policy(demo_db, load_policy("base"), as_of)
    return demo_db


def _recompute(db, run_id: int, previous: int) -> tuple[Counter, list]:
    """The same summary computed in Python from crm_assignments, as an independent check."""
    order = {t: i for i, t in enumerate(["A", "B", "C"])}
    sql = "SELECT customer_id, tier, stage, subgrade, service_level FROM crm_assignments WHERE run_id = ?"
    now = {r[0]: r[1:] for r in rows(db, sql, run_id)}
    before = {r[0]: r[1:] for r in rows(db, sql, previous)}
    changed = []
    for cid, (tier, stage, sub, level) in now.items():
        old_tier, old_stage, old_sub, old_level = before[cid]
        if (tier, stage, sub, level) != (old_tier, old_stage, old_sub, old_level):
            d = ("upgrade" if order[tier] < order[old_tier] else "downgrade") if tier != old_tier else \
                "same tier" if stage != old_stage else "sub-grade" if sub != old_sub else "service level"
            changed.append((cid, d))
    matrix = Counter((before[c][0], now[c][0]) for c in now)
    return matrix, sorted(changed)


def test_demo_changes_over_three_as_of_dates(demo_runs):
    assert [(r["run_id"], r["as_of"], r["status"], r["customers"]) for r in list_runs(demo_runs)] == [
        (1, "2025-06-30", "succeeded", 300), (2, "2025-12-31", "succeeded", 300), (3, "2026-06-30", "succeeded", 300)]
    expected = {
        2: ({"upgrades": 35, "downgrades": 44, "unranked": 0, "stage_only": 140, "same_tier": 140, "subgrade_only": 2,
             "service_level_only": 4, "new": 0, "removed": 0, "stage_changes": 190, "unchanged": 75,
             "kept_tier": 221},
            [70, 18, 4, 9, 55, 22, 4, 22, 96]),
        3: ({"upgrades": 47, "downgrades": 40, "unranked": 0, "stage_only": 159, "same_tier": 159, "subgrade_only": 1,
             "service_level_only": 2, "new": 0, "removed": 0, "stage_changes": 213, "unchanged": 51,
             "kept_tier": 213},
            [67, 15, 1, 15, 56, 24, 2, 30, 90]),
    }
    for run_id, (totals, cells) in expected.items():
        c = changes(demo_runs, run_id=run_id)
        assert c["previous_run_id"] == run_id - 1 and c["tiers"] == ["A", "B", "C"]
        assert c["totals"] == totals
        assert c["matrix"] == [{"from": f, "to": t, "customers": n} for (f, t), n in zip(
            [(f, t) for f in "ABC" for t in "ABC"], cells)]
        matrix, changed = _recompute(demo_runs, run_id, run_id - 1)
        assert {(m["from"], m["to"]): m["customers"] for m in c["matrix"]} == matrix
        assert sorted((r["customer_id"], r["direction"]) for r in c["changes"]) == changed
        # the directions and unchanged partition the customers; stage_changes, kept_tier and same_tier count again
        assert sum(v for k, v in totals.items() if k not in RECOUNTED_TOTALS) == 300
    assert changes(demo_runs) == changes(demo_runs, run_id=3)


def test_demo_customer_history_matches_the_assignments(demo_runs):
    (cid,) = rows(demo_runs, "SELECT customer_id FROM crm_transitions WHERE run_id = 3 AND direction = 'upgrade' "
                             "ORDER BY customer_id LIMIT 1")[0]
    got = customer_history(demo_runs, cid)
    assert [(r["run_id"], r["as_of"]) for r in got] == [(1, "2025-06-30"), (2, "2025-12-31"), (3, "2026-06-30")]
    stored = rows(demo_runs, "SELECT tier, tier_rule, subgrade, subgrade_rule, stage, stage_rule, service_level "
                             "FROM crm_assignments WHERE customer_id = ? ORDER BY run_id", cid)
    assert [(r["tier"], r["tier_rule"], r["subgrade"], r["subgrade_rule"], r["stage"], r["stage_rule"],
             r["service_level"]) for r in got] == stored
    assert {r["policy_sha256"] for r in got} == {load_policy("base").sha256}
    assert "ABC".index(got[2]["tier"]) < "ABC".index(got[1]["tier"])  # an upgrade in run 3


# ---- immutability ----


def test_another_apply_leaves_earlier_runs_byte_identical(demo_db, tmp_path):
    apply_policy(demo_db, load_policy("base"), "2025-06-30")
    run1 = results_digest(demo_db, "run_id = 1")
    policies = rows(demo_db, "SELECT * FROM crm_policies")
    runs_row = rows(demo_db, "SELECT * FROM crm_runs WHERE run_id = 1")
    apply_policy(demo_db, load_policy("base"), "2025-12-31")
    apply_policy(demo_db, load_policy("vip_card"), "2026-06-30")
    apply_policy(demo_db, load_policy("base"), "2026-06-30")
    failing = tmp_path / "base_failing.yaml"
    failing.write_text(LOYALTY_FAILING.replace("name: loyalty", "name: base"), encoding="utf-8")
    with pytest.raises(RunError):
        apply_policy(demo_db, load_policy(failing), "2026-06-30")
    list_runs(demo_db), changes(demo_db, policy="base"), customer_history(demo_db, "C000002")
    prune(demo_db, keep=1, dry_run=True)
    assert results_digest(demo_db, "run_id = 1") == run1
    assert rows(demo_db, "SELECT * FROM crm_runs WHERE run_id = 1") == runs_row
    assert set(policies) <= set(rows(demo_db, "SELECT * FROM crm_policies"))
    # never pruned implicitly: every run is still there
    assert rows(demo_db, "SELECT run_id, status FROM crm_runs ORDER BY run_id") == [
        (1, "succeeded"), (2, "succeeded"), (3, "succeeded"), (4, "succeeded"), (5, "failed")]


def test_no_statement_of_apply_or_the_readers_updates_or_deletes_results(loyalty, monkeypatch):
    statements: list[str] = []
    original = database.connect

    def traced(*args, **kwargs):
        conn = original(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(database, "connect", traced)
    monkeypatch.setattr(run_history, "connect", traced)
    apply_policy(loyalty.db, load_policy(loyalty.policy), "2026-06-30")
    with pytest.raises(RunError):
        apply_policy(loyalty.db, load_policy(loyalty.write("failing.yaml", LOYALTY_FAILING)), "2026-06-30")
    list_runs(loyalty.db), changes(loyalty.db), customer_history(loyalty.db, "a")
    prune(loyalty.db, keep=1, dry_run=True)
    assert len(statements) > 20
    writes = re.compile(r"^\s*(UPDATE|DELETE|REPLACE|INSERT\s+OR\s+REPLACE|DROP)\b[^;]*\bcrm_(?!meta\b)", re.I | re.S)
    assert [s for s in statements if writes.search(s)] == []
    prune(loyalty.db, keep=1)
    assert any(writes.search(s) for s in statements)  # the tracing sees prune's deletes: the check above is real


def test_only_prune_has_sql_that_deletes_or_updates_results():
    root = Path(__file__).parent.parent
    pattern = re.compile(r"\b(UPDATE|DELETE\s+FROM|REPLACE\s+INTO|DROP\s+TABLE)\s+[^\s(]*crm_(?!meta\b)", re.I)
    found = sorted(str(path.relative_to(root)) for path in [root / "cli.py", *(root / "engine").glob("*.py"),
                                                            *(root / "plugins").glob("*.py")]
                   if pattern.search(path.read_text(encoding="utf-8")))
    assert found == ["engine/run_history.py"]


# ---- prune ----


def test_prune_keeps_the_newest_successful_runs_per_policy(loyalty):
    apply_policy(loyalty.db, load_policy(VALID / "minimal.yaml"), "2026-06-30")  # 5
    v2 = loyalty.write("loyalty_v2.yaml", LOYALTY.replace('version: "1"', 'version: "2"'))
    apply_policy(loyalty.db, load_policy(v2), "2026-06-30")  # 6, another document of the same policy
    solo = loyalty.write("solo.yaml", LOYALTY_FAILING.replace("name: loyalty", "name: solo"))
    with pytest.raises(RunError):
        apply_policy(loyalty.db, load_policy(solo), "2026-06-30")  # 7: a policy without a successful run
    execute(loyalty.db, "INSERT INTO crm_errors VALUES (1, 'a', 'p', 'e', 'kept with its run')")
    digest, kept = file_digest(loyalty.db), results_digest(loyalty.db, "run_id >= 5")
    [(failing,)] = rows(loyalty.db, "SELECT policy_sha256 FROM crm_runs WHERE run_id = 3")  # a failed run keeps its policy

    dry = prune(loyalty.db, keep=2, dry_run=True)
    assert dry == {"keep": 2, "policy": None, "dry_run": True, "deleted_runs": [1, 3],
                   "policies": [{"policy_name": "loyalty", "kept_runs": [4, 6], "deleted_runs": [1, 3]},
                                {"policy_name": "minimal", "kept_runs": [2, 5], "deleted_runs": []},
                                {"policy_name": "solo", "kept_runs": [], "deleted_runs": []}],
                   "rows": {"crm_metrics": 8, "crm_assignments": 8, "crm_definitions": 12, "crm_actions": 0, "crm_errors": 1,
                            "crm_runs": 2, "crm_policies": 1},
                   "deleted_policy_documents": [failing]}
    assert file_digest(loyalty.db) == digest  # a dry run changes nothing

    done = prune(loyalty.db, keep=1)
    assert done["deleted_runs"] == [1, 2, 3, 4] and not done["dry_run"]
    assert done["policies"] == [{"policy_name": "loyalty", "kept_runs": [6], "deleted_runs": [1, 3, 4]},
                                {"policy_name": "minimal", "kept_runs": [5], "deleted_runs": [2]},
                                {"policy_name": "solo", "kept_runs": [], "deleted_runs": []}]
    assert done["rows"] == {"crm_metrics": 8 + 8, "crm_assignments": 8 + 8 + 8, "crm_definitions": 12 + 1 + 12, "crm_actions": 0,
                            "crm_errors": 1, "crm_runs": 4, "crm_policies": 2}
    assert done["deleted_policy_documents"] == sorted([loyalty.sha, failing])  # version 1: only runs 1 and 4
    assert rows(loyalty.db, "SELECT run_id, policy_name, status FROM crm_runs ORDER BY run_id") == [
        (5, "minimal", "succeeded"), (6, "loyalty", "succeeded"), (7, "solo", "failed")]
    for table in ("crm_metrics", "crm_assignments", "crm_definitions", "crm_actions", "crm_errors"):
        assert rows(loyalty.db, f"SELECT count(*) FROM {table} WHERE run_id < 5") == [(0,)]
    assert sorted(r[0] for r in rows(loyalty.db, "SELECT name FROM crm_policies")) == ["loyalty", "minimal", "solo"]
    assert results_digest(loyalty.db, "run_id >= 5") == kept  # the kept runs' rows are untouched
    assert rows(loyalty.db, "SELECT count(*) FROM crm_transitions") == [(0,)]  # 5 and 6 are now first runs
    assert apply_policy(loyalty.db, load_policy(v2), "2026-06-30").run_id == 8  # run ids are never reused
    assert prune(loyalty.db, keep=1, policy="solo")["deleted_runs"] == []


def test_prune_keeps_runs_after_the_oldest_kept_one_failed_included(loyalty):
    apply_policy(loyalty.db, load_policy(loyalty.policy), "2026-06-30")  # 5
    got = prune(loyalty.db, keep=2, policy="loyalty")
    assert got["policies"] == [{"policy_name": "loyalty", "kept_runs": [4, 5], "deleted_runs": [1, 3]}]
    assert [r[0] for r in rows(loyalty.db, "SELECT run_id FROM crm_runs ORDER BY run_id")] == [2, 4, 5]
    assert prune(loyalty.db, keep=2, policy="loyalty")["deleted_runs"] == []  # nothing more to do


@pytest.mark.parametrize("keep", [0, -1, True, 1.5])
def test_prune_refuses_to_keep_less_than_one_run(loyalty, keep):
    digest = file_digest(loyalty.db)
    with pytest.raises(UsageError, match="must be a whole number of at least 1") as info:
        prune(loyalty.db, keep=keep)
    assert info.value.exit_code == 2
    assert file_digest(loyalty.db) == digest


def test_prune_argument_errors(loyalty, tmp_path):
    with pytest.raises(UsageError, match="no runs of policy 'nope'"):
        prune(loyalty.db, keep=1, policy="nope")
    with pytest.raises(UsageError, match="has no crm-rules runs yet"):
        prune(make_db(tmp_path / "fresh.db", [("a", "A", "x")]), keep=1)


def test_prune_is_all_or_nothing(loyalty):
    execute(loyalty.db, "CREATE TRIGGER crm_block BEFORE DELETE ON crm_runs BEGIN SELECT RAISE(ABORT, 'blocked'); END")
    before = results_digest(loyalty.db)
    with pytest.raises(DataError, match="could not prune: blocked; nothing was deleted"):
        prune(loyalty.db, keep=1)  # assignments, definitions, ... were deleted before crm_runs refused
    assert results_digest(loyalty.db) == before


def test_prune_reports_a_locked_database_and_deletes_nothing(loyalty, monkeypatch):
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 100)
    before = results_digest(loyalty.db)
    holder = sqlite3.connect(loyalty.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer, e.g. a run being written
    try:
        with pytest.raises(DataError, match="could not prune: database is locked; nothing was deleted") as info:
            prune(loyalty.db, keep=1)
        assert info.value.hint.startswith("another program is writing to the database, or reading it")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert results_digest(loyalty.db) == before
    assert prune(loyalty.db, keep=1)["deleted_runs"] == [1, 3]


# ---- the commands (once they are registered in cli.py) ----

COMMANDS = set(typer.main.get_command(app).commands)
needs_cli = pytest.mark.skipif(not {"runs", "history", "changes", "prune"} <= COMMANDS,
                               reason="runs/history/changes/prune are not in cli.py yet")


@needs_cli
def test_cli_runs_and_history(cli, loyalty):
    assert json.loads(cli("runs", "--db", loyalty.db, "--json", ok=True).output) == list_runs(loyalty.db)
    table = cli("runs", "--db", loyalty.db, ok=True).output
    assert "Runs in" in table and loyalty.sha[:12] in table and "run 3 failed: hit policy unique" in table
    got = json.loads(cli("history", "a", "--db", loyalty.db, "--policy", "loyalty", "--json", ok=True).output)
    assert got == {"customer_id": "a", "history": customer_history(loyalty.db, "a", policy="loyalty"),
                   "pruned_runs": {"loyalty": 0}, "absent_runs": {"loyalty": []}}
    table = cli("history", "a", "--db", loyalty.db, ok=True).output
    assert "Customer a A: 3 runs of loyalty, minimal" in table  # cells may wrap at 80 columns; ids and hashes do not
    assert table.count(loyalty.sha[:8]) == 2 and "2026-06-30" in table
    bad = cli("history", "A", "--db", loyalty.db)
    assert bad.exit_code == 2 and "customer 'A' not found" in bad.output and "did you mean 'a'?" in bad.output


@needs_cli
def test_cli_changes(cli, loyalty):
    assert json.loads(cli("changes", "--db", loyalty.db, "--json", ok=True).output) == changes(loyalty.db)
    out = " ".join(cli("changes", "--db", loyalty.db, "--limit", "3", ok=True).output.split())  # wrapped lines
    assert "loyalty run 4 (as of 2026-06-30, 8 customers) vs run 1 (as of 2025-12-31, 8 customers)" in out
    assert ("2 upgraded, 2 downgraded, 1 changed stage only, 1 changed sub-grade only, 0 changed service level only, "
            "1 new, 1 removed, 1 unchanged; stage changed for 1") in out
    assert "Changed customers: 8" in out and "5 more; use --limit 0 or --json" in out
    assert "(new)" in out and "(removed)" in out and "bronze → silver" in out
    first = " ".join(cli("changes", "--db", loyalty.db, "--run", "2", ok=True).output.split())
    assert "is the first successful run of policy minimal: there is nothing to compare it with" in first
    bad = cli("changes", "--db", loyalty.db, "--run", "3")
    assert bad.exit_code == 2 and f"run 3 in {loyalty.db} failed and has no results" in bad.output


@needs_cli
def test_cli_prune(cli, loyalty):
    bad = cli("prune", "--db", loyalty.db, "--keep", "0")
    assert bad.exit_code == 2 and "error: --keep 0: must be a whole number of at least 1" in bad.output
    digest = file_digest(loyalty.db)
    dry = cli("prune", "--db", loyalty.db, "--keep", "1", "--dry-run", ok=True).output
    assert "would delete 2 runs" in dry and "dry run: nothing deleted" in dry and "1, 3" in dry
    assert file_digest(loyalty.db) == digest
    got = json.loads(cli("prune", "--db", loyalty.db, "--keep", "1", "--json", ok=True).output)
    assert got["deleted_runs"] == [1, 3]
    again = cli("prune", "--db", loyalty.db, "--keep", "1", ok=True).output
    assert "nothing to delete" in again


def test_a_mistyped_customer_id_gets_the_ids_close_to_it(cli, demo_db):
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", "2026-06-30", ok=True)
    result = cli("history", "C00002", "--db", demo_db)
    assert result.exit_code == 2
    assert "hint: did you mean 'C000002'" in result.output
