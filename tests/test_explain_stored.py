"""`explain` from a stored run: the same answer as computing the whole policy, without reading anyone else."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF, TESTS, file_digest
from crm_rules.engine.database import open_for_run
from crm_rules.engine.errors import UsageError
from crm_rules.engine.explain import (ACTIONS_SQL, ASSIGNMENT_SQL, _from_computed, explain_customer,
                                      metrics_needed_for_explain)
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.results_store import ensure_schema
from crm_rules.engine.run_metrics import RunMetrics, add_columns, insert_sql
from crm_rules.engine.runner import apply_policy, compute
from small_db import make_db

VALID = TESTS / "policies" / "valid"


def store_run(db: Path, policy, as_of: str = AS_OF, overrides: Path | None = None, results_db: Path | None = None) -> int:
    return apply_policy(db, policy, as_of, results_db=results_db, overrides=overrides).run_id


def text(e: dict) -> str:
    """The explanation without the line saying where it came from, as exact text (floats by repr, key order)."""
    return json.dumps({k: v for k, v in e.items() if k != "source"}, ensure_ascii=False)


def one_per_outcome(db: Path, run_id: int) -> list[str]:
    """A customer for every (tier, sub-grade, stage, service level, override) the run gave, and a few more."""
    rows = sqlite3.connect(db).execute(
        "SELECT min(customer_id) FROM crm_assignments WHERE run_id = ? "
        "GROUP BY tier, subgrade, stage, service_level, tier_rule, override IS NULL", (run_id,)).fetchall()
    return sorted({r[0] for r in rows} | {"C000001", "C000002", "C000150", "C000300"})


def assert_same_answers(db: Path, policy, customers: list[str], as_of: str = AS_OF, overrides: Path | None = None,
                        results_db: Path | None = None) -> list[dict]:
    rc = open_for_run(db, write=False)
    try:
        computed = compute(rc, policy, as_of, overrides)
        out = []
        for cid in customers:
            stored = explain_customer(db, policy, cid, as_of, overrides, results_db=results_db)
            assert stored["source"]["path"] == "stored", stored["source"]
            assert text(stored) == text(_from_computed(computed, cid, "computed now")), cid
            out.append(stored)
        return out
    finally:
        rc.close()


@pytest.mark.parametrize("name", ["base", "b2b_key_account", "vip_card", VALID / "quantile.yaml", VALID / "top_n.yaml"])
def test_stored_run_gives_the_computed_answer(demo_db, name):
    policy = load_policy(name)
    run_id = store_run(demo_db, policy)
    customers = one_per_outcome(demo_db, run_id)
    answers = assert_same_answers(demo_db, policy, customers)
    assert {a["tier"]["id"] for a in answers} == {t.id for t in policy.tiers}
    if policy.stages:
        seen = {a["stage"]["id"] for a in answers}
        assert seen == {r[0] for r in sqlite3.connect(demo_db).execute(
            "SELECT DISTINCT stage FROM crm_assignments WHERE run_id = ?", (run_id,))}
        assert len(seen) >= 4
    if name == "base":
        assert {a["subgrade"]["id"] for a in answers if a["subgrade"]} == {"A1", "A2"}
        assert any(a["actions"] for a in answers)
        assert all(a["source"]["run_id"] == run_id and a["source"]["text"].startswith(f"from run {run_id} ") for a in answers)


def test_overrides_are_explained_from_the_run_that_applied_them(demo_db, tmp_path):
    policy = load_policy("base")
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("- {customer: C000300, tier: A, reason: strategic partner, author: 王经理}\n"
                         "- {customer: C000001, ceiling: C, reason: legal review, author: ops}\n"
                         "- {customer: C000002, floor: C, reason: no effect, author: ops}\n"
                         "- {customer: C000003, tier: B, reason: promo, author: ops, expires: 2026-01-01}\n", encoding="utf-8")
    store_run(demo_db, policy, overrides=overrides)
    answers = assert_same_answers(demo_db, policy, ["C000300", "C000001", "C000002", "C000003", "C000150"], overrides=overrides)
    by_id = {a["customer_id"]: a for a in answers}
    assert by_id["C000300"]["override"]["applied"] and by_id["C000300"]["tier"]["rule"] == "override"
    assert by_id["C000003"]["override"] is None and by_id["C000150"]["override"] is None  # expired; none
    # Without the overrides the run's answers would be wrong: computed now, and said so.
    plain = explain_customer(demo_db, policy, "C000300", AS_OF)
    assert plain["source"]["path"] == "computed" and "overrides" in plain["source"]["text"]
    assert plain["override"] is None and plain["tier"]["rule"] != "override"
    # A named run is explained with the overrides it applied.
    named = explain_customer(demo_db, policy, "C000300", None, run_id=by_id["C000300"]["source"]["run_id"])
    assert text(named) == text(by_id["C000300"])
    with pytest.raises(UsageError, match="exclude each other"):
        explain_customer(demo_db, policy, "C000300", None, overrides, run_id=1)


def test_results_in_another_database(demo_db, tmp_path):
    policy = load_policy("b2b_key_account")
    results = tmp_path / "results.db"
    store_run(demo_db, policy, results_db=results)
    assert_same_answers(demo_db, policy, ["C000007", "C000123"], results_db=results)
    assert explain_customer(demo_db, policy, "C000007", AS_OF)["source"]["path"] == "computed"  # no runs in demo_db


def test_falls_back_to_computing_and_says_why(demo_db):
    policy = load_policy("base")
    e = explain_customer(demo_db, policy, "C000002", AS_OF)
    assert e["source"] == {"path": "computed", "run_id": None, "text": f"computed now: {demo_db} has no stored runs",
                           "notes": [], "policy": {"sha256": policy.sha256, "file_sha256": policy.sha256,
                                                   "stored_with_run": None}}
    run_id = store_run(demo_db, policy)
    assert "as of 2026-05-31 is stored" in explain_customer(demo_db, policy, "C000002", "2026-05-31")["source"]["text"]
    assert explain_customer(demo_db, policy, "C000002", AS_OF, recompute=True)["source"]["text"] == "computed now: --recompute"
    conn = sqlite3.connect(demo_db)  # a run written before runs stored what explain needs
    conn.execute("UPDATE crm_runs SET counts = json_remove(counts, '$.explain') WHERE run_id = ?", (run_id,))
    conn.commit()
    conn.close()
    old = explain_customer(demo_db, policy, "C000002", AS_OF)["source"]["text"]
    assert old == f"computed now: run {run_id} was written without what explain reads from stored runs"


def test_a_run_the_data_no_longer_agrees_with_is_not_used(tmp_path):
    db = make_db(tmp_path / "w.db", [("x", "X", "华东"), ("y", "Y", "华南")],
                 orders=[("x", "2026-06-01", 500), ("y", "2026-06-01", 500)])
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text("metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
                           "tiers:\n  levels:\n    - {id: A, when: \"region = '华东' and revenue_12m >= 100\"}\n"
                           "    - {id: B, default: true}\n", encoding="utf-8")
    policy = load_policy(policy_file)
    store_run(db, policy, "2026-06-30")
    assert explain_customer(db, policy, "x", "2026-06-30")["source"]["path"] == "stored"
    conn = sqlite3.connect(db)
    conn.execute("UPDATE customers SET region = '华南' WHERE id = 'x'")
    conn.commit()
    conn.close()
    e = explain_customer(db, policy, "x", "2026-06-30")
    assert e["source"]["path"] == "computed" and "no longer agrees" in e["source"]["text"]
    assert e["tier"]["id"] == "B" and e["attributes"]["region"] == "华南"
    with pytest.raises(UsageError, match="cannot be explained from storage"):
        explain_customer(db, policy, "x", None, run_id=1)


def test_run_option(demo_db, tmp_path):
    policy = load_policy("base")
    run_id = store_run(demo_db, policy)
    e = explain_customer(demo_db, policy, "C000010", None, run_id=run_id)
    assert e["as_of"] == AS_OF and e["source"]["run_id"] == run_id
    with pytest.raises(UsageError, match="run 99 not found"):
        explain_customer(demo_db, policy, "C000010", None, run_id=99)
    with pytest.raises(UsageError, match=f"run {run_id} in .*crm.db is a run of policy 'base', not 'vip_card'"):
        explain_customer(demo_db, load_policy("vip_card"), "C000010", None, run_id=run_id)
    with pytest.raises(UsageError, match="is as of 2026-06-30, not 2026-01-01"):
        explain_customer(demo_db, policy, "C000010", "2026-01-01", run_id=run_id)
    with pytest.raises(UsageError, match="exclude each other"):
        explain_customer(demo_db, policy, "C000010", AS_OF, run_id=run_id, recompute=True)


def test_unknown_customer_with_a_stored_run(demo_db):
    policy = load_policy("base")
    store_run(demo_db, policy)
    with pytest.raises(UsageError, match="customer 'NOPE' not found in table 'customers'"):
        explain_customer(demo_db, policy, "NOPE", AS_OF)


def test_integer_customer_ids_found_like_the_computation_finds_them(tmp_path):
    db = tmp_path / "i.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                       "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, order_date TEXT, amount REAL, "
                       "cost REAL, discount REAL);"
                       "INSERT INTO customers VALUES (7, 'Seven'), (12, 'Twelve');"
                       "INSERT INTO orders VALUES (1, 7, '2026-06-01', 0.1, 0, 0), (2, 7, '2026-06-02', 0.2, 0, 0), "
                       "(3, 12, '2026-06-01', 5, 0, 0);")
    conn.commit()
    conn.close()
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text("metrics: {revenue_12m: {sum: amount, window: 12 months}, third: {expr: 'revenue_12m / 3'}}\n"
                           "tiers:\n  levels:\n    - {id: A, when: 'third < 0.1'}\n    - {id: B, default: true}\n",
                           encoding="utf-8")
    policy = load_policy(policy_file)
    store_run(db, policy, "2026-06-30")
    for typed in ("7", "12", "007"):
        stored = explain_customer(db, policy, typed, "2026-06-30")
        computed = explain_customer(db, policy, typed, "2026-06-30", recompute=True)
        assert stored["source"]["path"] == "stored" and text(stored) == text(computed)
    # the sum is 0.3 (to 15 digits, whatever the order of the rows), a third of it 0.09999999999999999 < 0.1;
    # written with 15 digits (json_object) it would read back as 0.1
    seven = explain_customer(db, policy, "7", "2026-06-30")
    assert seven["customer_id"] == 7 and seven["tier"]["id"] == "A" and seven["source"]["path"] == "stored"
    assert [m["value"] for m in seven["metrics"][:2]] == [0.3, 0.3 / 3]
    with pytest.raises(UsageError, match="not found"):
        explain_customer(db, policy, "8", "2026-06-30")


def test_lookups_use_indexes(demo_db):
    store_run(demo_db, load_policy("base"))
    conn = sqlite3.connect(demo_db)
    plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + ASSIGNMENT_SQL.format(rs="main"), (1, "C000001")))
    assert "SEARCH main.crm_assignments USING INDEX sqlite_autoindex_crm_assignments_1 (run_id=? AND customer_id=?)" in plan
    stored = RunMetrics.of_run(conn, 1)
    plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT 1{stored.select()} FROM crm_assignments AS a"
                                               f"{stored.join()} WHERE a.run_id = ? AND a.customer_id = ?", (1, "C000001")))
    assert "SEARCH m USING INDEX sqlite_autoindex_crm_metrics_1 (run_id=? AND customer_id=?)" in plan
    plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + ACTIONS_SQL.format(rs="main"), (1, "C000001")))
    assert "SEARCH main.crm_actions USING INDEX" in plan  # (run_id) today; (run_id, customer_id) once indexed
    conn.execute("CREATE INDEX IF NOT EXISTS crm_actions_customer ON crm_actions(run_id, customer_id)")
    plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + ACTIONS_SQL.format(rs="main"), (1, "C000001")))
    assert "USING INDEX crm_actions_customer (run_id=? AND customer_id=?)" in plan
    plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM customers WHERE id = ?", ("C000001",)))
    assert "INDEX sqlite_autoindex_customers_1 (id=?)" in plan  # the key lookup explain makes in the customers table
    conn.close()


def test_explaining_a_stored_run_writes_nothing(demo_db):
    policy = load_policy("base")
    store_run(demo_db, policy)
    digest = file_digest(demo_db)
    assert explain_customer(demo_db, policy, "C000003", AS_OF)["source"]["path"] == "stored"
    assert file_digest(demo_db) == digest


def test_what_runs_store_for_explain():
    policy = load_policy("base")
    needed = metrics_needed_for_explain(policy)
    assert "_tier_share" in needed and "credit_check_outcome" in needed and set(policy.key_metrics) <= set(needed)
    assert not [n for n in needed if n.startswith("_credit_check") or n.startswith("_churn")]  # plugins' hidden helpers
    quantile = metrics_needed_for_explain(load_policy(VALID / "quantile.yaml"))
    assert {"_tier_rank", "_tier_population"} <= set(quantile)


def test_crm_metrics_keeps_every_value_and_type():
    values = [0.1 + 0.2, 1 / 3, 2303.5899999999997, 1e-300, 5e-324, -123456789.12345679, 462300.0, 1e16, 7, None, "文本", 0,
              float("inf"), 2 ** 62]
    names = [f"m{i}" for i in range(120)]
    row = [values[i % len(values)] for i in range(len(names))]
    conn = sqlite3.connect(":memory:")
    ensure_schema(conn)
    conn.execute(f"CREATE TEMP TABLE r (_cid, {', '.join(names)})")
    conn.execute(f"INSERT INTO r VALUES ('c1', {', '.join('?' * len(names))})", row)
    conn.execute("INSERT INTO crm_runs (run_id, policy_name, policy_sha256, as_of, started_at, status, metrics) "
                 "VALUES (1, 'p', 'x', '2026-06-30', 'now', 'succeeded', ?)", (json.dumps(names),))
    conn.execute("INSERT INTO crm_assignments (run_id, customer_id, tier) VALUES (1, 'c1', 'A')")
    add_columns(conn, "main", names)
    conn.execute(insert_sql("main", names, "temp.r", "_cid"), (1,))
    got = RunMetrics.of_run(conn, 1).of_customer(conn, "c1")
    assert list(got) == names
    for name, want in zip(names, row):
        assert got[name] == want and type(got[name]) is type(want), name
    add_columns(conn, "main", ["M0", "other"])  # names are SQLite columns: case-insensitive, added once
    assert [r[1] for r in conn.execute("PRAGMA table_info(crm_metrics)")][-2:] == ["m119", "other"]


def test_runs_of_results_schema_4_are_read_from_their_metrics_json(tmp_path):
    """Results written before crm_metrics: the values are in crm_assignments.metrics and stay readable."""
    conn = sqlite3.connect(tmp_path / "old.db")
    conn.execute("CREATE TABLE crm_runs (run_id INTEGER PRIMARY KEY, policy_name TEXT, status TEXT)")
    conn.execute("CREATE TABLE crm_assignments (run_id, customer_id, tier, metrics TEXT)")
    conn.execute("INSERT INTO crm_runs VALUES (1, 'p', 'succeeded')")
    conn.execute("""INSERT INTO crm_assignments VALUES (1, 'c1', 'A', '{"a.b":0.30000000000000004,"n":null,"t":"文本"}')""")
    stored = RunMetrics.of_run(conn, 1)
    assert stored.legacy and stored.names == ("a.b", "n", "t") and stored.join() == ""
    assert stored.of_customer(conn, "c1") == {"a.b": 0.1 + 0.2, "n": None, "t": "文本"}
    assert stored.column("missing") == "NULL"
    ensure_schema(conn)  # the migration to schema 5 leaves the old run's JSON where it is
    assert RunMetrics.of_run(conn, 1).of_customer(conn, "c1") == {"a.b": 0.1 + 0.2, "n": None, "t": "文本"}


def test_cli_explain_says_which_path_answered(cli, demo_db):
    run_id = store_run(demo_db, load_policy("base"))
    stored = cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True).output
    assert f"from run {run_id} in {demo_db} (finished" in " ".join(stored.split())  # (wrapped lines)
    now = cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--recompute", ok=True).output
    assert "computed now: --recompute" in now
    assert stored.split("\n\nfrom run")[0] == now.split("\n\ncomputed now")[0]  # the same explanation
    named = json.loads(cli("explain", "C000002", "--db", demo_db, "-p", "base", "--run", run_id, "--json", ok=True).output)
    assert named["as_of"] == AS_OF and named["source"]["run_id"] == run_id
    bad = cli("explain", "C000002", "--db", demo_db, "-p", "vip_card", "--run", run_id)
    assert bad.exit_code == 2 and f"run {run_id} in {demo_db} is a run of policy 'base', not 'vip_card'" in bad.output
    assert (f"hint: {demo_db} has no successful run of policy 'vip_card': if apply wrote its runs with --results-db "
            f"FILE, add --results-db FILE; to explain run {run_id} of {demo_db}, leave out --policy (the run stored its "
            f"policy)") in bad.output
