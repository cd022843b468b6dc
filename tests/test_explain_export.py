"""`explain` and `export`: what business staff and other systems read."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from conftest import AS_OF, stored_metrics
from crm_rules.engine.counterfactuals import value_text
from crm_rules.engine.explain import explain_customer
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy


def assignment(db, customer):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM crm_assignments WHERE customer_id = ? ORDER BY run_id DESC LIMIT 1", (customer,)).fetchone()
    conn.close()
    return row


def test_explanation_agrees_with_the_run(demo_db):
    policy = load_policy("base")
    apply_policy(demo_db, policy, AS_OF)
    conn = sqlite3.connect(demo_db)
    customers = [r[0] for r in conn.execute("SELECT customer_id FROM crm_assignments ORDER BY customer_id LIMIT 40")]
    conn.close()
    for cid in customers:
        e = explain_customer(demo_db, policy, cid, AS_OF)
        row = assignment(demo_db, cid)
        assert (e["tier"]["id"], e["stage"]["id"], e["service_level"]["id"]) == (row["tier"], row["stage"], row["service_level"])
        assert e["tier"]["rule"] == row["tier_rule"]
        decided = [r for r in e["tier"]["rules"] if r["decided"]]
        assert len(decided) == 1 and decided[0]["id"] == row["tier"]
        stored = stored_metrics(demo_db, row["run_id"])[cid]
        values = {m["name"]: m["value"] for m in e["metrics"]}
        for name, value in stored.items():
            assert values[name] == pytest.approx(value)


def test_failed_thresholds_say_by_how_much(tmp_path, demo_db):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
        "tiers:\n  levels:\n"
        "    - {id: A, when: 'revenue_12m >= 100_000_000'}\n"
        "    - {id: B, default: true}\n")
    e = explain_customer(demo_db, load_policy(policy), "C000001", AS_OF)
    (rule_a, rule_b) = e["tier"]["rules"]
    assert rule_a["matched"] is False and rule_b["decided"] is True
    (check,) = rule_a["checks"]
    revenue = check["values"]["revenue_12m"]
    assert check["passed"] is False and check["metric"] == "revenue_12m"
    assert check["gap"] == pytest.approx(100_000_000 - revenue)


def test_cli_explain_text_and_json(cli, demo_db):
    text = cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True).output
    assert "Customer C000002" in text and "Tier " in text and "← decides" in text and "Lifecycle stage" in text
    data = json.loads(cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--json", ok=True).output)
    assert data["customer_id"] == "C000002" and data["tier"]["rules"]


def test_service_level_settings_read_as_the_policy_wrote_them(cli, demo_db):
    # a mapping one entry a line; no Python reprs ({'terms_days': 60}, [], True)
    data = json.loads(cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--json", ok=True).output)
    payment = data["service_level"]["payment"]
    assert isinstance(payment, dict)
    text = cli("explain", "C000002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True).output
    assert "  payment:\n" + "".join(f"    {k}: {v}\n" for k, v in payment.items()) in text
    assert "{'" not in text and "[]" not in text and "True" not in text


@pytest.mark.parametrize("value,text", [(72363.871, "72,363.87"), (12, "12"), (0.09435, "0.09435"), ("retail", "'retail'"),
                                        ("华北", "'华北'"), (True, "true"), (False, "false"), (None, "null")])
def test_values_in_sentences_are_written_as_conditions_write_them(value, text):
    # the sentences quote a condition's own words: Python's True or None there would read as a typo
    assert value_text(value) == text


def test_explain_unknown_customer(cli, demo_db):
    result = cli("explain", "NOPE", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    assert result.exit_code == 2 and "customer 'NOPE' not found" in result.output


def test_explain_writes_nothing(demo_db):
    from conftest import file_digest

    digest = file_digest(demo_db)
    explain_customer(demo_db, load_policy("base"), "C000003", AS_OF)
    assert file_digest(demo_db) == digest


def test_export_csv_and_json(cli, demo_db, tmp_path):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    out = tmp_path / "out.csv"
    result = cli("export", "--db", demo_db, "--format", "csv", "--out", out, ok=True)
    assert f"exported 300 customers of run 1 (policy base) of {demo_db} to {out}" in result.output
    text = out.read_text(encoding="utf-8-sig")  # BOM so Excel reads Chinese names
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) == 300 and {"customer_id", "tier", "revenue_12m", "stage"} <= set(records[0])
    data = json.loads(cli("export", "--db", demo_db, "--format", "json", "--run", "1", ok=True).output)
    assert len(data["assignments"]) == 300 and data["run"]["policy_name"] == "base"
    assert isinstance(data["assignments"][0]["metrics"], dict)


@pytest.mark.parametrize("command", [["export"], ["actions"], ["runs"], ["changes"], ["history", "C000001"]])
def test_a_database_without_runs_is_named_as_the_user_gave_it(cli, demo_db, monkeypatch, command):
    """export and actions named it by its absolute path, the other commands as given (crm.db)."""
    monkeypatch.chdir(demo_db.parent)
    result = cli(*command, "--db", demo_db.name)
    assert result.exit_code == 2
    assert result.output.startswith("error: crm.db: this database has no crm-rules runs yet\n"), result.output


def test_export_errors(cli, demo_db, tmp_path):
    none = cli("export", "--db", demo_db, "--format", "csv")
    assert none.exit_code == 2 and "no crm-rules runs yet" in none.output
    apply_policy(demo_db, load_policy("base"), AS_OF)
    assert "run 99 not found" in cli("export", "--db", demo_db, "--run", "99").output
    assert "unknown format 'xml'" in cli("export", "--db", demo_db, "--format", "xml").output
    assert "does not exist" in cli("export", "--db", demo_db, "--out", tmp_path / "no" / "x.csv").output


def test_plain_sentences_and_nearest_changes(tmp_path):
    from small_db import make_db

    db = make_db(tmp_path / "w.db", [("near", "Near", "华东"), ("top", "Top", "华南")],
                 orders=[("near", "2026-06-01", 462_300), ("near", "2026-05-01", 0),
                         ("top", "2026-06-01", 612_000), ("top", "2026-05-01", 1), ("top", "2026-04-01", 1)])
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n  orders_12m: {count: orders, window: 12 months}\n"
        "tiers:\n  levels:\n"
        "    - {id: A, label: 重点, when: 'revenue_12m >= 500_000 or (revenue_12m >= 400_000 and orders_12m >= 5)'}\n"
        "    - {id: B, when: 'revenue_12m >= 100_000 and orders_12m >= 3'}\n"
        "    - {id: C, default: true}\n", encoding="utf-8")
    near = explain_customer(db, load_policy(policy), "near", "2026-06-30")["why"]["tier"]
    assert near == {"because": "tier C: no rule above matched, so the default applies",
                    "up": ["would be A (重点) if revenue_12m ≥ 500,000 (now 462,300)",
                           "would be B if orders_12m ≥ 3 (now 2)"],
                    "down": []}
    top = explain_customer(db, load_policy(policy), "top", "2026-06-30")["why"]["tier"]
    assert top["because"].startswith("tier A (重点) because revenue_12m >= 500_000 or") and "revenue_12m = 612,002" in top["because"]
    assert top["up"] == [] and top["down"] == []  # an `or` keeps them in A by more than one route


def test_drop_sentences_and_pareto_thresholds(tmp_path, demo_db):
    from small_db import make_db

    db = make_db(tmp_path / "d.db", [("x", "X", "r")], orders=[("x", "2026-06-01", 150_000)] * 3)
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n  orders_12m: {count: orders, window: 12 months}\n"
                      "tiers:\n  levels:\n    - {id: B, when: 'revenue_12m >= 100_000 and orders_12m >= 3'}\n"
                      "    - {id: C, default: true}\n")
    why = explain_customer(db, load_policy(policy), "x", "2026-06-30")["why"]["tier"]
    assert why["down"] == ["would drop to C if revenue_12m < 100,000 (now 450,000)",  # the default tier, by its id
                           "would drop to C if orders_12m < 3 (now 3)"]
    pareto = explain_customer(demo_db, load_policy("base"), "C000002", AS_OF)
    text = " ".join(pareto["why"]["tier"]["up"] + pareto["why"]["tier"]["down"])
    assert "revenue_12m < " in text and "(now 43,005.18)" in text  # the cut-offs themselves: test_pareto_cutoffs


def test_written_files_get_the_usual_permissions_and_keep_their_own(tmp_path):
    import os
    import stat

    from crm_rules.engine.output_file import write_atomic

    fresh, kept = tmp_path / "fresh.csv", tmp_path / "kept.csv"
    kept.write_text("old", encoding="utf-8")
    kept.chmod(0o640)
    umask = os.umask(0o022)
    try:
        write_atomic(fresh, b"a")
        write_atomic(kept, b"b")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_bytes() == b"b"


def _as_results_schema_4(db) -> None:
    """Rewrite run 1 as crm-rules wrote runs before crm_metrics: its values as JSON in crm_assignments.metrics
    (REALs with 17 significant digits, as that version wrote them) and no crm_runs.metrics."""
    conn = sqlite3.connect(db)
    names = json.loads(conn.execute("SELECT metrics FROM crm_runs WHERE run_id = 1").fetchone()[0])
    pairs = ", ".join(f"'{n}', CASE WHEN typeof(m.{n}) = 'real' THEN json(printf('%!.17g', m.{n})) ELSE m.{n} END"
                      for n in names)
    conn.executescript(f"""
        ALTER TABLE crm_assignments ADD COLUMN metrics TEXT;
        UPDATE crm_assignments SET metrics = (SELECT json_object({pairs}) FROM crm_metrics AS m
            WHERE m.run_id = crm_assignments.run_id AND m.customer_id = crm_assignments.customer_id);
        UPDATE crm_runs SET metrics = NULL;
        DELETE FROM crm_metrics;""")
    conn.close()


def test_runs_written_before_crm_metrics_read_as_before(cli, demo_db):
    """export, report, explain and diff read a run of results schema 4 (metrics JSON) exactly like a new one."""
    from crm_rules.engine.report_data import gather

    policy = load_policy("base")
    apply_policy(demo_db, policy, AS_OF)

    def readings():
        return (cli("export", "--db", demo_db, "--format", "csv", ok=True).output,
                json.loads(cli("export", "--db", demo_db, "--format", "json", ok=True).output)["assignments"],
                gather(demo_db, 1), explain_customer(demo_db, policy, "C000002", AS_OF),
                cli("diff", "base", "--db", demo_db, "--against-run", "1", "--as-of", AS_OF, "--json", ok=True).output)

    new = readings()
    _as_results_schema_4(demo_db)
    assert stored_metrics(demo_db, 1) and readings() == new


# --- true/false metrics and attributes: shown as true/false, stored as 1/0 -------------------------

BOOL_POLICY = """name: flags
data:
  customers:
    attributes:
      is_key: {column: is_key, type: bool}
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  big: {expr: "revenue_12m > 1000"}
tiers:
  levels:
    - {id: A, when: "big = true and is_key"}
    - {id: B, default: true}
summary:
  key_metrics: [big]
"""


@pytest.fixture
def flags(tmp_path):
    from small_db import make_db

    db = make_db(tmp_path / "f.db", [("a", "Alpha", "华东"), ("b", "Beta", "华南")],
                 orders=[("a", "2026-06-01", 500), ("b", "2026-06-01", 1500)])
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE customers ADD COLUMN is_key INTEGER")
    conn.execute("UPDATE customers SET is_key = (id = 'a')")
    conn.commit()
    conn.close()
    policy = tmp_path / "flags.yaml"
    policy.write_text(BOOL_POLICY, encoding="utf-8")
    return db, policy


def test_bool_values_are_stored_as_1_and_0_and_explained_as_true_and_false(cli, flags):
    db, policy = flags
    cli("apply", "--db", db, "-p", policy, "--as-of", AS_OF, ok=True)
    assert {c: m["big"] for c, m in stored_metrics(db).items()} == {"a": 0, "b": 1}  # the table keeps SQLite's 1/0
    assert all(type(m["big"]) is int for m in stored_metrics(db).values())
    for recompute in ([], ["--recompute"]):  # from the stored run, and computed now
        out = cli("explain", "a", "--db", db, "-p", policy, "--as-of", AS_OF, *recompute, ok=True).output
        rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in out.splitlines() if line.count("│") == 4}
        assert (rows["big"], rows["is_key"], rows["revenue_12m"]) == ("false", "true", "500.00"), out
        assert "failed: big = true  (big = false)" in out and "short by" not in out and "= 0" not in out, out
        e = json.loads(cli("explain", "a", "--db", db, "-p", policy, "--as-of", AS_OF, "--json", *recompute, ok=True).output)
        assert {m["name"]: m["value"] for m in e["metrics"]}["big"] is False and e["attributes"]["is_key"] is True
        (check, _) = e["tier"]["rules"][0]["checks"]
        assert check["values"] == {"big": False, "true": True} and "gap" not in check


def test_bool_values_are_true_and_false_in_json_exports_and_the_report_but_1_and_0_in_csv(cli, flags):
    from crm_rules.engine.report_data import gather

    db, policy = flags
    cli("apply", "--db", db, "-p", policy, "--as-of", AS_OF, ok=True)
    exported = json.loads(cli("export", "--db", db, "--format", "json", ok=True).output)
    assert {a["customer_id"]: a["metrics"]["big"] for a in exported["assignments"]} == {"a": False, "b": True}
    table = list(csv.DictReader(io.StringIO(cli("export", "--db", db, "--format", "csv", ok=True).output)))
    assert {r["customer_id"]: r["big"] for r in table} == {"a": "0", "b": "1"}
    customers = gather(db)["customers"]
    assert [m["name"] for m in customers["metrics"]] == ["big"]
    assert {r[0]: r[6] for r in customers["rows"]} == {"a": False, "b": True}
    out = cli("report", "--db", db, "--out", db.parent / "r.html", ok=True)
    html = (db.parent / "r.html").read_text(encoding="utf-8")
    assert "<td>false</td>" in html and "<td>true</td>" in html and "<td>False</td>" not in html, out.output


def test_a_failing_policy_test_shows_bool_values_as_true_and_false(cli, flags, tmp_path):
    _, policy = flags
    (tmp_path / "flags.test.yaml").write_text(
        "as_of: 2026-06-30\ncases:\n  - name: small\n    customer: {is_key: true}\n"
        "    generate: {revenue_12m: 500, orders_12m: 2}\n    expect: {tier: A, big: true}\n", encoding="utf-8")
    out = cli("test", tmp_path / "flags.test.yaml").output
    assert "big   expected true, got false" in out and "failed: big = true  (big = false)" in out, out
    assert "Values: big = false" in out and "= 0" not in out, out


def test_runs_that_did_not_record_their_bool_names_read_them_from_the_metric_definitions(cli, flags):
    db, policy = flags
    cli("apply", "--db", db, "-p", policy, "--as-of", AS_OF, ok=True)
    conn = sqlite3.connect(db)
    counts = json.loads(conn.execute("SELECT counts FROM crm_runs").fetchone()[0])
    assert counts["explain"].pop("bools") == ["big"]  # what runs record now
    conn.execute("UPDATE crm_runs SET counts = ?", (json.dumps(counts),))  # as a run written before did
    conn.commit()
    conn.close()
    exported = json.loads(cli("export", "--db", db, "--format", "json", ok=True).output)
    assert {a["customer_id"]: a["metrics"]["big"] for a in exported["assignments"]} == {"a": False, "b": True}


def test_a_move_names_the_grade_the_rules_then_give(tmp_path):
    # A needs orders and 100 of revenue, B 200 of revenue: below 100 the customer with 300 lands in C, not in
    # B (the next rule that matches now), and one with 50 who reaches 200 gets A, which comes first.
    from small_db import make_db

    db = make_db(tmp_path / "m.db", [("big", "Big", "r"), ("small", "Small", "r"), ("none", "None", "r")],
                 orders=[("big", "2026-06-01", 300), ("small", "2026-06-01", 50)])
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n  orders_12m: {count: orders, window: 12 months}\n"
                      "tiers:\n  levels:\n    - {id: A, when: 'orders_12m >= 1 and revenue_12m >= 100'}\n"
                      "    - {id: B, when: 'revenue_12m >= 200'}\n    - {id: S, when: 'revenue_12m between 10 and 100'}\n"
                      "    - {id: C, default: true}\n")
    why = lambda customer: explain_customer(db, load_policy(policy), customer, "2026-06-30")["why"]["tier"]  # noqa: E731
    assert why("big")["down"] == ["would drop to B if orders_12m < 1 (now 1)",
                                  "would drop to S if revenue_12m < 100 (now 300)"]
    assert why("small")["up"] == ["would be A if revenue_12m ≥ 100 (now 50)",
                                  "B needs revenue_12m ≥ 200 (now 50), but then A applies first"]
    assert why("none")["up"][1] == "would be B if revenue_12m ≥ 200 (now 0)"  # no orders: A does not apply
