"""Runs over time, continued: what `changes`, `history`, `actions` and `prune` got wrong, each case pinned down.

A hand-made database (tests/small_db.py, the orders of test_history.py plus customer e without orders) is graded
by the loyalty policy of test_history.py with one more service level, silver-plus (silver customers with at least
160 of revenue), so that between 2025-12-31 and 2026-06-30 every kind of change happens once or twice:

customer  2025-12-31                      2026-06-30                      change
a         gold/gold_basic lapsed          bronze lapsed                   downgrade
b         bronze active                   silver active                   upgrade
c         silver active silver-care       silver active silver-plus       service level only
d         silver lapsed                   bronze lapsed                   downgrade
e         bronze active (no order)        bronze active                   unchanged
f         silver active                   silver lapsed                   same tier (stage)
g         gold/gold_plus active           gold/gold_basic active          sub-grade only
h         bronze active                   gold/gold_basic active          upgrade
z         bronze active                   bronze lapsed                   same tier (stage)
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.action_queue import list_actions
from crm_rules.engine.errors import DataError, RunError, UsageError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.results_store import SCHEMA_VERSION
from crm_rules.engine.run_history import DIRECTIONS, RECOUNTED_TOTALS, changes, customer_history, history_absences, list_runs, prune
from crm_rules.engine.runner import apply_policy
from small_db import make_db, rows
from test_history import LOYALTY, LOYALTY_FAILING, ORDERS, VALID, Loyalty, execute, results_digest


GRADED = LOYALTY.replace("  - {id: silver-care, tier: silver}\n", "  - {id: silver-care, tier: silver}\n"
                         "  - {id: silver-plus, tier: silver, when: \"revenue_12m >= 160\"}\n")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def graded(tmp_path) -> Path:
    """Run 1 as of 2025-12-31 and run 2 as of 2026-06-30 of the policy `loyalty` (GRADED)."""
    assert "silver-plus" in GRADED
    db = make_db(tmp_path / "graded.db", [(c, c.upper(), "华东") for c in "abcdefghz"], orders=ORDERS)
    policy = load_policy(write(tmp_path, "loyalty.yaml", GRADED))
    assert apply_policy(db, policy, "2025-12-31").run_id == 1
    assert apply_policy(db, policy, "2026-06-30").run_id == 2
    return db


# ---- changes: a sub-grade or service level that changed is a change ----


def test_sub_grade_and_service_level_changes_are_listed_and_counted(graded):
    c = changes(graded)
    assert [(r["customer_id"], r["direction"]) for r in c["changes"]] == [
        ("b", "upgrade"), ("h", "upgrade"), ("a", "downgrade"), ("d", "downgrade"), ("f", "same tier"),
        ("z", "same tier"), ("g", "sub-grade"), ("c", "service level")]
    assert c["totals"] == {"upgrades": 2, "downgrades": 2, "unranked": 0, "stage_only": 2, "same_tier": 2, "subgrade_only": 1,
                           "service_level_only": 1, "new": 0, "removed": 0, "stage_changes": 2, "unchanged": 1,
                           "kept_tier": 5}
    by_id = {r["customer_id"]: r for r in c["changes"]}
    assert by_id["g"] == {
        "customer_id": "g", "customer_name": "G", "direction": "sub-grade", "tier_before": "gold", "tier_after": "gold",
        "subgrade_before": "gold_plus", "subgrade_after": "gold_basic", "stage_before": "active", "stage_after": "active",
        "service_level_before": "gold-care", "service_level_after": "gold-care", "tier_rule": "gold",
        "subgrade_rule": "default", "stage_rule": "default", "tier_rule_before": "gold"}
    assert by_id["c"] == {
        "customer_id": "c", "customer_name": "C", "direction": "service level", "tier_before": "silver",
        "tier_after": "silver", "subgrade_before": None, "subgrade_after": None, "stage_before": "active",
        "stage_after": "active", "service_level_before": "silver-care", "service_level_after": "silver-plus",
        "tier_rule": "silver", "subgrade_rule": None, "stage_rule": "default", "tier_rule_before": "silver"}
    # the service levels are there for the view's changes too
    assert (by_id["b"]["service_level_before"], by_id["b"]["service_level_after"]) == ("bronze-care", "silver-plus")
    # every customer of both runs is counted once: by direction, or unchanged (e)
    assert sum(v for k, v in c["totals"].items() if k not in RECOUNTED_TOTALS) == 9
    # the documented view is unchanged: sub-grade and service level moves are not transitions there
    assert [r[0] for r in rows(graded, "SELECT customer_id FROM crm_transitions ORDER BY customer_id")] == list("abdfhz")


def test_every_direction_has_its_total(graded):
    assert set(DIRECTIONS.values()) | {"unchanged", *RECOUNTED_TOTALS} == set(changes(graded)["totals"])


def test_demo_changes_count_every_grade(demo_db):
    """The totals and the list against a recomputation in Python from crm_assignments, on 300 demo customers."""
    policy = load_policy("base")
    for as_of in ("2025-06-30", "2025-12-31", "2026-06-30"):
        apply_policy(demo_db, policy, as_of)
    order = {t: i for i, t in enumerate("ABC")}
    sql = "SELECT customer_id, tier, subgrade, stage, service_level FROM crm_assignments WHERE run_id = ?"
    for run_id in (2, 3):
        now = {r[0]: r[1:] for r in rows(demo_db, sql, run_id)}
        before = {r[0]: r[1:] for r in rows(demo_db, sql, run_id - 1)}
        expected = []
        for cid, (tier, sub, stage, level) in now.items():
            old_tier, old_sub, old_stage, old_level = before[cid]
            if tier != old_tier:
                expected.append((cid, "upgrade" if order[tier] < order[old_tier] else "downgrade"))
            elif stage != old_stage:
                expected.append((cid, "same tier"))
            elif sub != old_sub:
                expected.append((cid, "sub-grade"))
            elif level != old_level:
                expected.append((cid, "service level"))
        c = changes(demo_db, run_id=run_id)
        assert sorted((r["customer_id"], r["direction"]) for r in c["changes"]) == sorted(expected)
        assert c["totals"]["unchanged"] == 300 - len(expected)
        assert c["totals"]["subgrade_only"] + c["totals"]["service_level_only"] > 0  # the demo has both kinds
        assert sum(v for k, v in c["totals"].items() if k not in RECOUNTED_TOTALS) == 300


def test_cli_changes_json_lists_the_new_kinds(cli, graded):
    got = json.loads(cli("changes", "--db", graded, "--json", ok=True).output)
    assert got == changes(graded)
    assert {r["direction"] for r in got["changes"]} >= {"sub-grade", "service level"}


def test_cli_changes_json_has_the_deciding_sub_grade_rule(cli, graded):
    got = json.loads(cli("changes", "--db", graded, "--json", ok=True).stdout)
    by_id = {r["customer_id"]: r for r in got["changes"]}
    assert (by_id["g"]["subgrade_before"], by_id["g"]["subgrade_after"], by_id["g"]["subgrade_rule"]) == \
        ("gold_plus", "gold_basic", "default")
    assert (by_id["h"]["subgrade_after"], by_id["h"]["subgrade_rule"]) == ("gold_basic", "default")  # a transition
    assert by_id["b"]["subgrade_rule"] is None  # a tier without sub-grades


def test_cli_changes_json_rows_have_every_grade_the_table_shows_and_its_rule(cli, graded):
    got = json.loads(cli("changes", "--db", graded, "--json", ok=True).stdout)
    keys = {"customer_id", "customer_name", "direction", "tier_before", "tier_after", "tier_rule", "subgrade_before",
            "subgrade_after", "subgrade_rule", "stage_before", "stage_after", "stage_rule", "service_level_before",
            "service_level_after", "tier_rule_before"}
    assert got["changes"] and all(set(r) == keys for r in got["changes"])


def test_cli_changes_summary_and_table_show_the_new_kinds(cli, graded, columns):
    out = cli("changes", "--db", graded, ok=True).output
    assert ("2 upgraded, 2 downgraded, 2 changed stage only, 1 changed sub-grade only, 1 changed service level only, "
            "0 new, 0 removed, 1 unchanged; stage changed for 2") in " ".join(out.split())  # wrapped to the terminal
    assert re.search(r"│ g +│ G +│ sub-grade +│ gold +│ gold_plus → +│", out)
    assert "Service level not shown: this terminal has 80 columns, the full table needs 100" in " ".join(out.split())
    columns(140)
    wide = cli("changes", "--db", graded, ok=True).output
    assert "silver-care → silver-plus" in wide and "service levels left out" not in wide


def test_cli_changes_matrix_marks_every_empty_cell_alike(cli, tmp_path):
    """After a tier is renamed (gold -> platinum) the old tier is a row (where customers came from), not a column:
    nobody can be in it after."""
    db = make_db(tmp_path / "r.db", [(c, c.upper(), "华东") for c in "abcdfghz"], orders=ORDERS)
    apply_policy(db, load_policy(write(tmp_path, "v1.yaml", LOYALTY)), "2025-12-31")
    renamed = LOYALTY.replace("id: gold\n", "id: platinum\n").replace("{id: gold-care, tier: gold}",
                                                                     "{id: platinum-care, tier: platinum}")
    apply_policy(db, load_policy(write(tmp_path, "v2.yaml", renamed)), "2025-12-31")
    assert {"from": "gold", "to": "gold", "customers": 0} not in changes(db)["matrix"]
    out = cli("changes", "--db", db, ok=True).output
    grid = out.split("Tier before (rows) → after", 1)[1].split("Changed customers", 1)[0]
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in grid.splitlines() if line.startswith("│")}
    assert cells == {"silver": ["·", "3", "·"], "bronze": ["·", "·", "3"], "gold": ["2", "·", "·"]}
    header = next(line for line in grid.splitlines() if "Before" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == ["Before", "platinum", "silver", "bronze"]


# ---- history: where a customer is when it is not where it was looked for ----


def test_history_of_a_customer_only_in_another_policys_runs_says_where_it_is(graded, tmp_path):
    execute(graded, "INSERT INTO customers (id, name, region, industry, created_at, account_manager, credit_limit) "
                    "VALUES ('n', 'N', '华南', 'retail', '2020-01-01', 'someone', 10000)")
    minimal = load_policy(VALID / "minimal.yaml")
    assert apply_policy(graded, minimal, "2026-06-30").run_id == 3
    assert apply_policy(graded, minimal, "2026-06-30").run_id == 4
    with pytest.raises(UsageError) as info:
        customer_history(graded, "n", policy="loyalty")
    assert info.value.message == f"customer 'n' not found in any successful run of policy 'loyalty' in {graded}"
    assert info.value.hint == ("it appears only in runs of policy 'minimal' (runs 3, 4): "
                               "leave out --policy, or use --policy minimal")
    assert "did you mean" not in str(info.value)  # it used to suggest 'n', the id typed
    assert [r["run_id"] for r in customer_history(graded, "n")] == [3, 4]


def test_history_of_a_policy_without_a_successful_run_says_so(graded, tmp_path):
    with pytest.raises(RunError):
        solo = write(tmp_path, "solo.yaml", LOYALTY_FAILING.replace("name: loyalty", "name: solo"))
        apply_policy(graded, load_policy(solo), "2026-06-30")
    with pytest.raises(UsageError) as info:
        customer_history(graded, "a", policy="solo")
    assert info.value.message == f"policy 'solo' has no successful run in {graded}: there is no history of any customer"
    assert info.value.hint == f"every run of it failed; `crm-rules runs --db {graded} --policy solo` says why"


def test_history_near_ids_come_from_the_policys_latest_run(graded):
    with pytest.raises(UsageError) as info:
        customer_history(graded, " G", policy="loyalty")
    assert info.value.hint == "did you mean 'g'? ids are matched exactly"
    with pytest.raises(UsageError) as info:
        customer_history(graded, "qqq", policy="loyalty")
    assert info.value.hint == (f"`crm-rules export --db {graded} --run 2` lists the customers of the latest run of "
                               f"'loyalty' (ids look like 'a')")


def test_history_hint_names_the_latest_run_by_date_not_a_backfill(graded, tmp_path):
    """A backfill (run 3, as of 2025-06-30, run last) was named "the latest run of 'loyalty'" by the hint."""
    assert apply_policy(graded, load_policy(write(tmp_path, "loyalty.yaml", GRADED)), "2025-06-30").run_id == 3
    with pytest.raises(UsageError) as info:
        customer_history(graded, "qqq", policy="loyalty")
    assert info.value.hint.startswith(f"`crm-rules export --db {graded} --run 2` lists the customers of the latest run")


def test_cli_history_names_the_other_policy(cli, graded):
    apply_policy(graded, load_policy(VALID / "minimal.yaml"), "2026-06-30")
    execute(graded, "DELETE FROM crm_assignments WHERE run_id IN (1, 2) AND customer_id = 'e'")  # e: only in minimal
    bad = cli("history", "e", "--db", graded, "-p", "loyalty")
    assert bad.exit_code == 2
    assert "it appears only in runs of policy 'minimal' (run 3)" in bad.output and "did you mean" not in bad.output


# ---- history at narrow widths ----


def _words_whole(out: str, items: list[dict], keys=("tier", "subgrade", "stage", "service_level")) -> list[str]:
    """The words of the grades that do not appear whole in the output (a word folded over two lines)."""
    words = {w for r in items for k in keys if r[k] for w in str(r[k]).split()}
    found = {w.removesuffix("*") for w in re.findall(r"[^\s│┃]+", out)}  # without the star of a changed value
    return sorted(words - found)


@pytest.fixture
def demo_history(demo_db):
    policy = load_policy("base")
    for as_of in ("2025-12-31", "2026-03-31", "2026-06-30"):
        apply_policy(demo_db, policy, as_of)
    apply_policy(demo_db, load_policy("vip_card"), "2026-06-30")
    return demo_db


@pytest.mark.parametrize("width", [60, 70, 80, 100, 140])
def test_cli_history_keeps_words_whole(cli, demo_history, columns, width):
    columns(width)
    for cid in ("C000006", "C000002", "C000100"):
        for policy in (["-p", "base"], []):
            items = customer_history(demo_history, cid, policy[1] if policy else None)
            out = cli("history", cid, "--db", demo_history, *policy, ok=True).output
            # at 60 columns nothing can give way for vip_card's "identification" beside "standard-self" (64 columns)
            if width > 60 or policy:
                assert _words_whole(out, items) == [], (width, cid, out)
            assert all(r["as_of"] in out for r in items)
            assert max(len(line) for line in out.splitlines() if line[:1] in "┏┃┡│└") <= width
            if width >= 140:  # room for everything: the 8-character hash and the deciding rules
                assert items[0]["policy_sha256"][:8] in out and items[0]["policy_sha256"][:9] not in out
                assert "left out" not in out
            # what gives way is said: the hash first, and at 60 columns the deciding rules too (then the run ids)
            assert (items[0]["policy_sha256"][:8] in out) == ("policy hashes" not in out)
            assert ("left out to fit this terminal" in " ".join(out.split())) == (width <= 60 or "policy hashes" in out)
            if width <= 60:
                assert "policy hashes, deciding rules" in out


# ---- actions: a filter value the run does not have ----


@pytest.fixture
def with_actions(demo_db) -> Path:
    apply_policy(demo_db, load_policy("base"), "2026-06-30")
    return demo_db


def test_unknown_action_is_an_error_with_did_you_mean(with_actions):
    with pytest.raises(UsageError) as info:
        list_actions(with_actions, action="churn_alertt")
    assert info.value.exit_code == 2
    assert info.value.message == f"{with_actions}: run 1 has no action 'churn_alertt'; did you mean 'churn_alert'?"
    names = [r[0] for r in rows(with_actions, "SELECT DISTINCT action FROM crm_actions ORDER BY 1")]
    assert info.value.hint == f"actions in run 1: {', '.join(names)}"


def test_owner_whitespace_is_ignored_and_an_unknown_owner_is_an_error(with_actions):
    (owner,) = rows(with_actions, "SELECT owner FROM crm_actions WHERE owner IS NOT NULL ORDER BY owner LIMIT 1")[0]
    _, exact = list_actions(with_actions, owner=owner)
    assert exact and {a["owner"] for a in exact} == {owner}
    assert list_actions(with_actions, owner=f" {owner}\t")[1] == exact
    with pytest.raises(UsageError) as info:
        list_actions(with_actions, owner=owner + "x")
    assert f"run 1 has no owner {owner + 'x'!r}; did you mean {owner!r}?" in info.value.message
    assert info.value.hint.startswith("owners in run 1: ")
    # values the run has that select nothing together are an empty queue, not an error
    action = rows(with_actions, "SELECT action FROM crm_actions GROUP BY action HAVING sum(owner = ?) = 0 LIMIT 1", owner)
    if action:
        assert list_actions(with_actions, owner=owner, action=action[0][0])[1] == []
    assert list_actions(with_actions, action="churn_alert", due_before="2000-01-01")[1] == []


def test_stored_owner_whitespace_matches_too(with_actions):
    execute(with_actions, "UPDATE crm_actions SET owner = owner || ' ' WHERE rowid = (SELECT min(rowid) FROM crm_actions)")
    (owner,) = rows(with_actions, "SELECT owner FROM crm_actions WHERE rowid = (SELECT min(rowid) FROM crm_actions)")[0]
    assert any(a["owner"] == owner.strip() for a in list_actions(with_actions, owner=owner.strip())[1])


def test_a_run_writes_owners_without_the_whitespace_around_them(demo_db):
    """A sheet's trailing space, a Chinese input method's ideographic space and a blank owner: written trimmed
    (a blank one as no owner), so BI tools and the report count one 王芳, not two."""
    (name,) = rows(demo_db, "SELECT account_manager FROM customers WHERE account_manager IS NOT NULL LIMIT 1")[0]
    conn = sqlite3.connect(demo_db)
    with conn:
        conn.execute("UPDATE customers SET account_manager = char(12288) || account_manager || ' ' "
                     "WHERE rowid % 3 = 0 AND account_manager = ?", (name,))
        conn.execute("UPDATE customers SET account_manager = ' \t' WHERE rowid % 3 = 1 AND account_manager = ?", (name,))
    conn.close()
    apply_policy(demo_db, load_policy("base"), "2026-06-30")
    owners = {r[0] for r in rows(demo_db, "SELECT DISTINCT owner FROM crm_actions")}
    assert name in owners and "" not in owners and all(o is None or o == o.strip(" \t\u3000") for o in owners)


def test_filters_on_a_run_without_actions(graded):
    assert list_actions(graded) == (2, [])
    with pytest.raises(UsageError) as info:
        list_actions(graded, action="churn_alert")
    assert info.value.message == f"{graded}: run 2 has no actions"
    with pytest.raises(UsageError, match="run 2 has no actions"):
        list_actions(graded, owner="someone")


def test_cli_actions_typo_exits_2(cli, with_actions):
    bad = cli("actions", "--db", with_actions, "--action", "churn_alertt")
    assert bad.exit_code == 2 and "did you mean 'churn_alert'?" in bad.output and "actions in run 1:" in bad.output
    (owner,) = rows(with_actions, "SELECT owner FROM crm_actions WHERE owner IS NOT NULL LIMIT 1")[0]
    spaced = json.loads(cli("actions", "--db", with_actions, "--owner", f"{owner} ", "--json", ok=True).output)
    assert spaced["actions"] and {a["owner"] for a in spaced["actions"]} == {owner}


# ---- prune: a newer schema, and the newest as-of dates ----


def test_prune_refuses_results_of_a_newer_crm_rules_and_deletes_nothing(graded, tmp_path):
    newer = SCHEMA_VERSION + 1
    execute(graded, f"UPDATE crm_meta SET value = '{newer}' WHERE key = 'schema_version'",
            "CREATE TABLE crm_future (run_id INTEGER, x TEXT)", "INSERT INTO crm_future VALUES (1, 'of run 1')")
    before = results_digest(graded)
    with pytest.raises(DataError) as pruning:
        prune(graded, keep=1)
    with pytest.raises(DataError) as applying:  # apply refuses with the same error
        apply_policy(graded, load_policy(write(tmp_path, "again.yaml", GRADED)), "2026-06-30")
    expected = f"the results tables were written by a newer crm-rules (schema {newer}, this one knows {SCHEMA_VERSION})"
    assert pruning.value.message == applying.value.message == expected
    assert pruning.value.hint == applying.value.hint == (
        "upgrade crm-rules, or write results to another database with --results-db")
    assert results_digest(graded) == before
    assert [r["run_id"] for r in list_runs(graded)] == [1, 2]


def test_prune_dry_run_refuses_a_newer_schema_too(graded):
    execute(graded, f"UPDATE crm_meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'")
    with pytest.raises(DataError, match="written by a newer crm-rules"):
        prune(graded, keep=1, dry_run=True)


def test_cli_prune_of_a_newer_schema_fails(cli, graded):
    execute(graded, f"UPDATE crm_meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'")
    bad = cli("prune", "--db", graded, "--keep", "1")
    assert bad.exit_code == 1 and "written by a newer crm-rules" in bad.output
    assert rows(graded, "SELECT count(*) FROM crm_runs") == [(2,)]


def test_prune_keeps_the_newest_as_of_dates_not_the_newest_run_ids(graded, tmp_path):
    """A backfill (run 3, as of 2025-06-30, graded after the others) is the oldest run, whatever its id;
    counting by run id kept it and deleted the latest date."""
    policy = load_policy(write(tmp_path, "loyalty.yaml", GRADED))
    assert apply_policy(graded, policy, "2025-06-30").run_id == 3
    with pytest.raises(RunError):  # 4: failed, as of the oldest kept date below, after it: it stays with it
        apply_policy(graded, load_policy(write(tmp_path, "failing.yaml", LOYALTY_FAILING)), "2025-12-31")
    digest = results_digest(graded)
    assert prune(graded, keep=1, dry_run=True)["policies"] == [
        {"policy_name": "loyalty", "kept_runs": [2], "deleted_runs": [1, 3, 4]}]
    assert results_digest(graded) == digest
    kept = results_digest(graded, "run_id IN (1, 2, 4)")
    assert prune(graded, keep=2)["policies"] == [{"policy_name": "loyalty", "kept_runs": [1, 2], "deleted_runs": [3]}]
    assert results_digest(graded, "run_id IN (1, 2, 4)") == kept
    assert apply_policy(graded, policy, "2026-06-30").run_id == 5  # the same date again: the later run is the newer
    assert prune(graded, keep=1)["policies"] == [{"policy_name": "loyalty", "kept_runs": [5], "deleted_runs": [1, 2, 4]}]
    assert rows(graded, "SELECT run_id, as_of FROM crm_runs ORDER BY run_id") == [(5, "2026-06-30")]


def test_a_backfill_takes_its_place_by_date_in_changes_history_views_and_defaults(graded, tmp_path):
    """Run 3 grades 2025-06-30 after runs of 2025-12-31 (1) and 2026-06-30 (2): by run id it came last, so `changes`
    compared run 2 with a date before run 1's, and the backfill with a later date; prune, which orders by date,
    then changed what a stored run's changes said."""
    from crm_rules.engine.export import resolve_run
    from crm_rules.engine.results_store import VIEWS

    policy = load_policy(write(tmp_path, "loyalty.yaml", GRADED))
    assert apply_policy(graded, policy, "2025-06-30").run_id == 3
    assert (changes(graded, 2)["previous_run_id"], changes(graded, 1)["previous_run_id"]) == (1, 3)
    assert changes(graded, 3)["previous_run_id"] is None  # the earliest date: nothing before it
    assert changes(graded)["run_id"] == 2  # the default: the latest date, not the latest run
    assert [r["run_id"] for r in customer_history(graded, "a")] == [3, 1, 2]
    assert rows(graded, "SELECT DISTINCT run_id FROM crm_current") == [(2,)]
    assert rows(graded, "SELECT DISTINCT run_id, previous_run_id FROM crm_transitions ORDER BY run_id") == [(1, 3), (2, 1)]
    conn = sqlite3.connect(graded)
    try:
        assert resolve_run(conn, None)["run_id"] == 2
        # results of schema 5 keep their views, which ordered by run id, until a run migrates them
        conn.executescript(f"DROP VIEW crm_current; DROP VIEW crm_transitions; "
                           f"{VIEWS['crm_current'].format(s='').replace('ORDER BY as_of DESC, run_id DESC', 'ORDER BY run_id DESC')};"
                           f"{VIEWS['crm_transitions'].format(s='').replace('ORDER BY as_of, run_id', 'ORDER BY run_id')};"
                           f"UPDATE crm_meta SET value = '5' WHERE key = 'schema_version';")
    finally:
        conn.close()
    assert rows(graded, "SELECT DISTINCT run_id FROM crm_current") == [(3,)]
    assert changes(graded, 2)["previous_run_id"] == 1  # the readers use this version's definition
    assert apply_policy(graded, policy, "2025-09-30").run_id == 4  # a write migrates the views
    assert rows(graded, "SELECT DISTINCT run_id FROM crm_current") == [(2,)]
    assert rows(graded, "SELECT DISTINCT run_id, previous_run_id FROM crm_transitions ORDER BY run_id") == [
        (1, 4), (2, 1), (4, 3)]
    assert rows(graded, "SELECT value FROM crm_meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_changes_notes_runs_of_different_database_files(cli, graded, tmp_path):
    import shutil

    other = tmp_path / "other.db"
    shutil.copy(graded, other)
    apply_policy(other, load_policy(write(tmp_path, "loyalty.yaml", GRADED)), "2026-07-31", results_db=graded)
    out = cli("changes", "--db", graded, ok=True).output
    assert f"note: the runs graded different database files ({graded} → {other})" in " ".join(out.split())
    assert "different database files" not in cli("changes", "--db", graded, "--run", "2", ok=True).output


def test_cli_history_marks_changes_with_a_star_where_there_is_no_bold(cli, graded):
    # a pipe or a cron log: bold is lost there, and with it every mark of a change
    out = cli("history", "a", "--db", graded, ok=True).output
    assert "*: changed since the policy's previous run" in out
    first, second = [line for line in out.splitlines() if line.startswith("│") and line.split("│")[1].strip()]
    assert "*" not in first and "*" in second


def test_cli_history_of_one_run_per_policy_has_no_legend_for_changes(cli, tmp_path):
    """One run of one policy: nothing can have changed, so "*: changed since the policy's previous run" explained a
    mark that cannot appear."""
    db = make_db(tmp_path / "one.db", [("a", "A", "x")], orders=[("a", "2026-06-01", 500)])
    apply_policy(db, load_policy(write(tmp_path, "loyalty.yaml", LOYALTY)), "2026-06-30")
    out = cli("history", "a", "--db", db, ok=True).output
    assert "1 run of loyalty" in out and "changed since" not in out


def test_prune_keeps_a_failed_run_dated_within_the_kept_period(graded, tmp_path):
    with pytest.raises(RunError):  # 3: failed, as of a date between the two successful runs
        apply_policy(graded, load_policy(write(tmp_path, "failing.yaml", LOYALTY_FAILING)), "2026-03-31")
    assert prune(graded, keep=2)["deleted_runs"] == []
    got = prune(graded, keep=1)
    assert got["policies"] == [{"policy_name": "loyalty", "kept_runs": [2], "deleted_runs": [1, 3]}]


def test_cli_history_marks_a_grade_that_became_empty_as_changed(cli, graded):
    # a: gold/gold_basic, then bronze without a sub-grade; the lost sub-grade was shown as a plain "—"
    out = cli("history", "a", "--db", graded, ok=True).output
    first, second = [line for line in out.splitlines() if line.startswith("│") and line.split("│")[1].strip()]
    assert "gold_basic" in first and "—*" in second.split()


# ---- changes: a tier a manual override set, or that moved because one ended ----


@pytest.fixture
def overridden(tmp_path) -> Path:
    """Run 1 as of 2026-06-30 with e set to gold and h held at most silver; run 2, the same date, without them."""
    db = make_db(tmp_path / "o.db", [(c, c.upper(), "华东") for c in "abcdefghz"], orders=ORDERS)
    policy = load_policy(write(tmp_path, "loyalty.yaml", GRADED))
    apply_policy(db, policy, "2025-12-31")
    ov = write(tmp_path, "ov.yaml", "- {customer: e, tier: gold, reason: partner, author: li}\n"
                                    "- {customer: h, ceiling: silver, reason: dispute, author: li}\n")
    assert apply_policy(db, policy, "2026-06-30", overrides=ov).run_id == 2
    assert apply_policy(db, policy, "2026-06-30").run_id == 3
    return db


def test_changes_give_the_previous_runs_tier_rule(overridden):
    began = {r["customer_id"]: r for r in changes(overridden, 2)["changes"]}
    assert (began["e"]["tier_rule"], began["e"]["tier_rule_before"]) == ("override", "default")
    ended = {r["customer_id"]: r for r in changes(overridden, 3)["changes"]}
    assert (ended["e"]["direction"], ended["e"]["tier_rule"], ended["e"]["tier_rule_before"]) == \
        ("downgrade", "default", "override")


def test_cli_changes_marks_the_moves_a_manual_override_made(cli, overridden, columns):
    """An upgrade by override was listed like an upgrade of the data, and the downgrade when it ended too."""
    columns(140)
    began = cli("changes", "--db", overridden, "--run", "2", ok=True).output
    assert re.search(r"│ e +│ E +│ upgrade +│ bronze → gold \(by override\) +│", began)
    assert "of the tier changes, 2 made by a manual override (marked in the table)" in began
    assert re.search(r"│ b +│ B +│ upgrade +│ bronze → silver +│", began)  # the rules' own upgrade: no mark
    ended = cli("changes", "--db", overridden, "--run", "3", ok=True).output
    assert re.search(r"│ e +│ E +│ downgrade +│ gold → bronze \(override ended\) +│", ended)
    assert "of the tier changes, 2 by a manual override that ended or was removed (marked in the table)" in ended
    unmarked = cli("changes", "--db", overridden, "--run", "1", ok=True).output
    assert "override" not in unmarked


# ---- history: the runs a customer is not in ----


def test_history_of_a_removed_customer_says_it_is_not_in_the_latest_run(cli, tmp_path):
    """z was deleted from the data before run 4: its history ended on run 1's grade, which read as today's."""
    loyalty = Loyalty(tmp_path)
    assert history_absences(loyalty.db, customer_history(loyalty.db, "z")) == {
        "loyalty": [{"run_id": 4, "as_of": "2026-06-30"}], "minimal": []}
    out = cli("history", "z", "--db", loyalty.db, ok=True).output
    assert ("note: customer z is not in 1 later run of policy loyalty, run 4 (as of 2026-06-30): the data it graded "
            "had no such customer (removed, or its id changed); run 4 is the policy's latest, so the last row above "
            "is not the customer's grade now") in " ".join(out.split())
    assert "minimal" not in out.split("note:")[1]
    got = json.loads(cli("history", "z", "--db", loyalty.db, "--json", ok=True).stdout)
    assert got["absent_runs"] == {"loyalty": [{"run_id": 4, "as_of": "2026-06-30"}], "minimal": []}
    assert "not in" not in cli("history", "a", "--db", loyalty.db, ok=True).output


def test_history_names_the_runs_a_customer_was_missing_from_in_between(cli, graded, tmp_path):
    policy = load_policy(write(tmp_path, "loyalty.yaml", GRADED))
    execute(graded, "DELETE FROM customers WHERE id = 'e'")  # e has no orders
    apply_policy(graded, policy, "2026-07-31")  # run 3: without e
    execute(graded, "INSERT INTO customers (id, name, region) VALUES ('e', 'E', '华东')")
    apply_policy(graded, policy, "2026-08-31")  # run 4: e again
    out = " ".join(cli("history", "e", "--db", graded, ok=True).output.split())
    assert "note: customer e is not in 1 later run of policy loyalty, run 3 (as of 2026-07-31):" in out
    assert "the policy's latest" not in out


# ---- a backfill of the earliest date is not the policy's first run ----


def test_a_backfill_of_the_earliest_date_is_not_called_the_first_run(cli, graded, tmp_path):
    """Run 3, as of 2025-06-30 and made after runs 1 and 2, was "the first successful run of policy loyalty"."""
    assert apply_policy(graded, load_policy(write(tmp_path, "loyalty.yaml", GRADED)), "2025-06-30").run_id == 3
    got = changes(graded, 3)
    assert got["previous_run_id"] is None and got["made_before"] == 2
    assert changes(graded, 1)["made_before"] == 0  # it has a previous run now: run 3
    out = " ".join(cli("changes", "--db", graded, "--run", "3", ok=True).output.split())
    assert ("run 3 (loyalty as of 2025-06-30) grades the earliest date of policy loyalty (a backfill, made after 2 "
            "runs of later dates): there is no run before it to compare it with") in out
    assert "first successful run" not in out
    report = tmp_path / "r.html"
    cli("report", "--db", graded, "--run", "3", "--out", report, ok=True)
    html = report.read_text(encoding="utf-8")
    assert "earliest date of this policy (a backfill)" in html and "first run of this policy" not in html
    assert "(a backfill, made after 2 runs of later dates): there is no run before it" in html
    assert "is the first successful run" not in html
