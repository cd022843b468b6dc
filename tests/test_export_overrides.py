"""export shows the overrides in force: who set a tier by hand, why, until when, and the tier the rules gave."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from crm_rules.engine.export import BASE_COLUMNS, OVERRIDE_COLUMNS
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from conftest import AS_OF
from test_damaged_and_clashing import DATA, SCHEMA_1, make


@pytest.fixture
def overridden(demo_db, tmp_path):
    """Run 1 of base with one C customer set to A (binding) and one A customer with a floor of C (not binding)."""
    policy = load_policy("base")
    conn = sqlite3.connect(demo_db)
    ids = {tier: conn.execute(f"SELECT id FROM customers ORDER BY id LIMIT 1 OFFSET {n}").fetchone()[0]
           for n, tier in enumerate("xy")}
    conn.close()
    overrides = overridden_file(demo_db)
    overrides.write_text(f"- {{customer: {ids['x']}, tier: A, reason: '=战略合作', author: 李经理, expires: 2027-01-31}}\n"
                         f"- {{customer: {ids['y']}, floor: C, reason: new contract, author: ops}}\n", encoding="utf-8")
    apply_policy(demo_db, policy, AS_OF, overrides=overrides)
    return demo_db, ids


def overridden_file(db):
    return db.parent / "overrides.yaml"


def test_csv_has_the_rules_tier_and_each_field_of_an_override(cli, overridden):
    db, ids = overridden
    text = cli("export", "--db", db, "--format", "csv", ok=True).output
    rows = {r["customer_id"]: r for r in csv.DictReader(io.StringIO(text))}
    header = next(csv.reader(io.StringIO(text)))
    assert header[:len(BASE_COLUMNS) + len(OVERRIDE_COLUMNS)] == BASE_COLUMNS + OVERRIDE_COLUMNS
    set_by_hand = rows[ids["x"]]
    assert (set_by_hand["tier"], set_by_hand["tier_rule"]) == ("A", "override")
    assert set_by_hand["rule_tier"] == sqlite3.connect(db).execute(
        "SELECT rule_tier FROM crm_assignments WHERE customer_id = ?", (ids["x"],)).fetchone()[0]
    assert [set_by_hand[c] for c in OVERRIDE_COLUMNS[:5]] == ["tier", "A", "'=战略合作", "李经理", "2027-01-31"]
    assert set_by_hand["override_source"] == f"{overridden_file(db)}:1"  # the reason guarded as any text cell
    floor = rows[ids["y"]]
    assert [floor[c] for c in OVERRIDE_COLUMNS[:4]] == ["floor", "C", "new contract", "ops"]
    assert floor["override_expires"] == ""
    plain = next(r for cid, r in rows.items() if cid not in ids.values())
    assert plain["rule_tier"] == plain["tier"] and all(plain[c] == "" for c in OVERRIDE_COLUMNS)


def test_json_has_the_override_as_one_object(cli, overridden):
    db, ids = overridden
    items = {i["customer_id"]: i for i in json.loads(cli("export", "--db", db, "--format", "json", ok=True).output)
             ["assignments"]}
    assert items[ids["x"]]["override"] == {"kind": "tier", "tier": "A", "reason": "=战略合作", "author": "李经理",
                                           "expires": "2027-01-31", "source": f"{overridden_file(db)}:1"}
    assert items[ids["y"]]["override"]["expires"] is None
    plain = next(i for cid, i in items.items() if cid not in ids.values())
    assert plain["override"] is None and plain["rule_tier"] == plain["tier"]


def test_runs_of_a_crm_rules_before_overrides_export_the_tier_as_the_rules_tier(cli, tmp_path):
    """A results database of schema 1 (no rule_tier, no override column) is read as it is: export does not migrate."""
    db = make(tmp_path / "old.db", DATA + SCHEMA_1)
    text = cli("export", "--db", db, "--format", "csv", ok=True).output
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["customer_id"], r["tier"], r["rule_tier"], r["override_kind"]) for r in rows] == [
        ("C1", "big", "big", ""), ("C2", "small", "small", "")]
