"""Manual overrides: applied after the rules, checked, expired ones noted, shown in explain."""

from __future__ import annotations

import json
import sqlite3

import pytest

from crm_rules.engine.errors import DataError, UsageError
from crm_rules.engine.explain import explain_customer
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from small_db import D, make_db

POLICY = ("metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
          "tiers:\n  levels:\n    - {id: A, when: 'revenue_12m >= 1000'}\n    - {id: B, when: 'revenue_12m >= 100'}\n"
          "    - {id: C, default: true}\n"
          "service_levels:\n  - {id: a, tier: A}\n  - {id: b, tier: B}\n  - {id: c, tier: C}\n")


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "o.db", [("big", "Big", "x"), ("mid", "Mid", "x"), ("small", "Small", "x"), ("none", "None", "x")],
                   orders=[("big", "2026-06-01", 5000), ("mid", "2026-06-01", 500), ("small", "2026-06-01", 50)])


def grades(tmp_path, db, overrides_text: str | None, name: str = "overrides.yaml", policy_extra: str = ""):
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY + policy_extra, encoding="utf-8")
    path = None
    if overrides_text is not None:
        path = tmp_path / name
        path.write_text(overrides_text, encoding="utf-8")
    outcome = apply_policy(db, load_policy(policy), D, overrides=path if not policy_extra else None)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT customer_id, tier, tier_rule, service_level FROM crm_assignments WHERE run_id = ?",
                        (outcome.run_id,)).fetchall()
    conn.close()
    return outcome, {r[0]: r[1:] for r in rows}


def test_tier_floor_and_ceiling(tmp_path, db):
    outcome, got = grades(tmp_path, db, """\
- {customer: small, tier: A, reason: strategic partner, author: 王经理}
- {customer: none, floor: B, reason: new key account, author: ops}
- {customer: big, ceiling: B, reason: legal review, author: ops}
- {customer: mid, floor: C, reason: no effect expected, author: ops}
""")
    assert got["small"] == ("A", "override", "a")          # set
    assert got["none"] == ("B", "override", "b")           # lifted to the floor
    assert got["big"] == ("B", "override", "b")            # capped at the ceiling
    assert got["mid"] == ("B", "B", "b")                   # the floor is below the rules' tier: rules decide
    assert outcome.summary["overrides"] == 3


def test_expired_overrides_are_ignored_with_a_note(tmp_path, db):
    outcome, got = grades(tmp_path, db, "- {customer: small, tier: A, reason: promo, author: ops, expires: 2026-06-29}\n"
                                        "- {customer: mid, tier: A, reason: promo, author: ops, expires: 2026-06-30}\n")
    assert got["small"][0] == "C" and got["mid"][0] == "A"  # expiring on the as-of date still counts
    assert outcome.notes == [f"override of customer small (tier A) expired on 2026-06-29: ignored ({tmp_path / 'overrides.yaml'}:1)"]


@pytest.mark.parametrize("text, message", [
    ("- {customer: ghost, tier: A, reason: r, author: a}\n", ":1: customer 'ghost' is not in the customers table"),
    ("- {customer: small, tier: AA, reason: r, author: a}\n", ":1: unknown tier 'AA'; did you mean 'A'?"),
    ("- {customer: small, tier: A, floor: B, reason: r, author: a}\n", "give exactly one of tier, floor or ceiling"),
    ("- {customer: small, tier: A, author: a}\n", "reason is required"),
    ("- {customer: small, tier: A, reason: r, author: a, expires: 31/12/2026}\n", "expires '31/12/2026' is not a date"),
    ("- {customer: small, tier: A, reason: r, author: a, expiry: 2026-12-31}\n", "unknown field 'expiry'; did you mean 'expires'?"),
    ("- {customer: small, tier: A, reason: r, author: a}\n- {customer: small, tier: B, reason: r, author: a}\n",
     ":2: customer 'small' already has an override at"),
])
def test_bad_overrides_are_errors(tmp_path, db, text, message):
    with pytest.raises(DataError) as info:
        grades(tmp_path, db, text)
    assert message in str(info.value)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'crm_%'").fetchone()[0] == 0


def test_every_problem_of_an_overrides_file_is_told_at_once_unknown_customers_too(tmp_path, db, monkeypatch):
    """An unknown customer is found with the file's other mistakes, before any order is read: not in a second
    run after the first mistakes were fixed, nor at the end of a long computation."""
    from crm_rules.engine import runner
    monkeypatch.setattr(runner, "run_scans", lambda *a, **k: pytest.fail("the orders were read"))
    with pytest.raises(DataError) as info:
        grades(tmp_path, db, "- {customer: ghost, tier: A, reason: r, author: a}\n"
                             "- {customer: small, tier: Z, reason: r, author: a}\n"
                             "- {customer: gone, tier: Z, author: a}\n")
    message = str(info.value)
    assert "(5 problems)" in message
    for line in (":1: customer 'ghost' is not in the customers table", ":2: unknown tier 'Z'",
                 ":3: unknown tier 'Z'", ":3: reason is required", ":3: customer 'gone' is not in the customers table"):
        assert line in message
    assert "fix the customer id, or remove the override of a customer who is gone" in message


def test_a_csv_customer_id_finds_a_customer_of_an_integer_key(tmp_path):
    db = tmp_path / "int.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                       "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, order_date TEXT, amount REAL);"
                       "INSERT INTO customers VALUES (1, 'a'), (2, 'b');"
                       "INSERT INTO orders VALUES (1, 1, '2026-06-01', 10), (2, 2, '2026-06-01', 20);")
    conn.commit()
    conn.close()
    (tmp_path / "p.yaml").write_text("name: p\nmetrics:\n  revenue_12m: {sum: amount, window: 12 months}\ntiers:\n"
                                     "  levels:\n    - {id: A, when: 'revenue_12m >= 100'}\n    - {id: B, default: true}\n")
    (tmp_path / "o.csv").write_text("customer,tier,reason,author\n2,A,promoted,ops\n")
    apply_policy(db, load_policy(tmp_path / "p.yaml"), D, overrides=tmp_path / "o.csv")
    assert sqlite3.connect(db).execute("SELECT customer_id, tier, tier_rule FROM crm_assignments ORDER BY 1").fetchall() \
        == [(1, "B", "default"), (2, "A", "override")]
    (tmp_path / "o.csv").write_text("customer,tier,reason,author\n3,A,promoted,ops\n")
    with pytest.raises(DataError, match=r"o\.csv:2: customer '3' is not in the customers table"):
        apply_policy(db, load_policy(tmp_path / "p.yaml"), D, overrides=tmp_path / "o.csv")


def test_csv_file_and_missing_file(tmp_path, db):
    _, got = grades(tmp_path, db, "customer,tier,floor,ceiling,reason,author,expires\nsmall,,A,,promoted,王经理,\n", "o.csv")
    assert got["small"] == ("A", "override", "a")
    with pytest.raises(UsageError, match="overrides file .* not found"):
        apply_policy(db, load_policy(tmp_path / "p.yaml"), D, overrides=tmp_path / "nope.yaml")


def test_overrides_from_a_table_named_in_the_policy(tmp_path, db):
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE manual_grades (customer TEXT, tier TEXT, floor TEXT, ceiling TEXT, reason TEXT, author TEXT, expires TEXT)")
    conn.execute("INSERT INTO manual_grades VALUES ('none', 'A', NULL, NULL, 'board decision', 'ceo', NULL)")
    conn.commit()
    conn.close()
    _, got = grades(tmp_path, db, None, policy_extra="overrides: {table: manual_grades}\n")
    assert got["none"] == ("A", "override", "a")


def test_explain_shows_the_override_and_the_rules_tier(tmp_path, db, cli):
    overrides = tmp_path / "o.yaml"
    overrides.write_text("- {customer: small, tier: A, reason: '[VIP] partner', author: 王经理, expires: 2026-12-31}\n",
                         encoding="utf-8")
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    e = explain_customer(db, load_policy(policy), "small", D, overrides)
    assert e["tier"]["id"] == "A" and e["override"]["rule_tier"] == "C" and e["override"]["applied"]
    text = cli("explain", "small", "--db", db, "-p", policy, "--as-of", D, "--overrides", overrides, ok=True).output
    assert "Override (tier A) sets the tier to A: [VIP] partner — 王经理, until 2026-12-31" in text
    assert "the rules alone give tier C" in text


def test_apply_says_how_many_tiers_overrides_set(tmp_path, db, cli):
    overrides = tmp_path / "o.yaml"
    overrides.write_text("- {customer: small, tier: A, reason: partner, author: ops}\n"
                         "- {customer: mid, floor: C, reason: no effect, author: ops}\n", encoding="utf-8")
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    text = cli("apply", "--db", db, "-p", policy, "--as-of", D, "--overrides", overrides, "--dry-run", ok=True).output
    assert "1 customer(s) have the tier a manual override set (tier_rule override)" in text  # the floor below B: no
    assert "override" not in cli("apply", "--db", db, "-p", policy, "--as-of", D, "--dry-run", ok=True).output


def test_overrides_are_recorded_with_the_run(tmp_path, db):
    outcome, _ = grades(tmp_path, db, "- {customer: small, tier: A, reason: partner, author: 王经理}\n")
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT tier, rule_tier, tier_rule, override FROM crm_assignments WHERE customer_id = 'small'").fetchone()
    plain = conn.execute("SELECT tier, rule_tier, override FROM crm_assignments WHERE customer_id = 'mid'").fetchone()
    conn.close()
    import json

    assert row[:3] == ("A", "C", "override")
    assert json.loads(row[3]) | {"source": None} == {"kind": "tier", "tier": "A", "reason": "partner", "author": "王经理",
                                                      "expires": None, "source": None}
    assert plain == ("B", "B", None)


def test_diff_and_analyze_take_the_same_overrides(tmp_path, db, cli):
    from crm_rules.engine.policy_diff import diff_policies
    from crm_rules.engine.rule_analysis import analyze_policy

    overrides = tmp_path / "o.yaml"
    overrides.write_text("- {customer: small, tier: A, reason: partner, author: ops}\n")
    old = tmp_path / "old.yaml"
    old.write_text(POLICY)
    new = tmp_path / "new.yaml"
    new.write_text(POLICY.replace("revenue_12m >= 100'", "revenue_12m >= 400'"))
    plain = diff_policies(db, load_policy(old), load_policy(new), D)
    manual = diff_policies(db, load_policy(old), load_policy(new), D, overrides=overrides)
    # small is A on both sides with the override: only the threshold change remains (none of the others move)
    assert plain["tiers"]["matrix"]["A"]["A"] == 1 and manual["tiers"]["matrix"]["A"]["A"] == 2
    assert manual["customers"]["changed"]["tier"] == plain["customers"]["changed"]["tier"] == 0
    result = analyze_policy(db, load_policy(old), D, overrides)
    assert result["customers"] == 4
    out = cli("diff", "--db", db, old, new, "--as-of", D, "--overrides", overrides, "--format", "json", ok=True).output
    assert json.loads(out)["tiers"]["matrix"]["A"]["A"] == 2
