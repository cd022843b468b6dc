"""One service-level entry for several tiers (``tier: [A, B, C]``), read everywhere as one entry per tier."""

from __future__ import annotations

import json
import sqlite3
import shutil
from pathlib import Path

from small_db import D, make_db, rows, run
from test_rule_table import SHIPPED, export, read_csv, write_csv

VALID = Path(__file__).parent / "policies" / "valid"

POLICY = """\
metrics: {revenue: {sum: amount}}
tiers:
  levels:
    - id: A
      when: revenue >= 1000
      subgrades: [{id: A1, when: revenue >= 5000}, {id: A2, default: true}]
    - {id: B, when: revenue >= 100}
    - {id: C, default: true}
service_levels:
  - {id: watch, tier: [A, B], when: "region = 'north'", label: Watch list, attributes: {cost_per_customer: 5}}
  - {id: B-north, tier: B, when: "region in ['north']"}
  - {id: A1-north, tier: A, subgrade: A1, when: "region = 'north'"}
  - {id: A-std, tier: A}
  - {id: B-std, tier: B}
"""


def _db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "s.db",
                   [("a1", "A1 north", "north"), ("a2", "A2 north", "north"), ("a3", "A2 south", "south"),
                    ("b1", "B north", "north"), ("b2", "B south", "south"), ("c1", "C north", "north")],
                   orders=[("a1", "2026-05-01", 6000), ("a2", "2026-05-01", 2000), ("a3", "2026-05-01", 2000),
                           ("b1", "2026-05-01", 500), ("b2", "2026-05-01", 500), ("c1", "2026-05-01", 10)])


def test_customers_of_two_tiers_get_the_shared_entry_and_a_more_specific_one_still_wins(tmp_path):
    db = _db(tmp_path)
    got = {c: (a[0], a[1], a[3]) for c, a in run(tmp_path, POLICY, db).items()}
    assert got == {"a1": ("A", "A1", "A1-north"),  # sub-grade + condition beats the shared condition
                   "a2": ("A", "A2", "watch"), "a3": ("A", "A2", "A-std"),
                   "b1": ("B", None, "watch"),  # equally specific B-north comes later: the first listed wins
                   "b2": ("B", None, "B-std"), "c1": ("C", None, None)}
    # the stored definitions: one row for the entry, its tiers as written
    assert rows(db, "SELECT id, parent, position, details FROM crm_definitions WHERE kind = 'service_level' "
                    "AND id = 'watch'") == [
        ("watch", "A, B", 0, json.dumps({"tier": ["A", "B"], "subgrade": None, "stage": None, "label": "Watch list",
                                         "attributes": {"cost_per_customer": 5}}))]
    assert rows(db, "SELECT count(*) FROM crm_definitions WHERE kind = 'service_level'") == [(5,)]


def test_explain_analyze_and_diff_read_the_entry_per_tier(cli, tmp_path):
    db = _db(tmp_path)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    cli("apply", "--db", db, "-p", policy, "--as-of", D, ok=True)
    shown = json.loads(cli("explain", "b1", "--db", db, "-p", policy, "--as-of", D, "--json", ok=True).output)
    assert shown["service_level"] == {"id": "watch", "tier": "B", "tiers": ["A", "B"], "subgrade": None, "stage": None,
                                      "label": "Watch list", "attributes": {"cost_per_customer": 5}}
    text = cli("explain", "b1", "--db", db, "-p", policy, "--as-of", D, ok=True).output
    assert "Service level watch (for tier B; one entry for tiers A, B)" in text
    analysis = json.loads(cli("analyze", "--db", db, "-p", policy, "--as-of", D, "--json", ok=True).output)
    levels = [(r["id"], r["parent"], r["matched"], r["decided"], r["status"])
              for r in analysis["rules"] if r["kind"] == "service_level"]
    assert levels == [("watch", "A", 2, 1, "ok"), ("watch", "B", 1, 1, "ok"), ("B-north", "B", 1, 0, "shadowed"),
                      ("A1-north", "A", 1, 1, "ok"), ("A-std", "A", 3, 1, "ok"), ("B-std", "B", 2, 1, "ok")]
    shadowed = next(s for s in analysis["shadowed"] if s["id"] == "B-north")
    assert shadowed["taken_by"] == {"watch": 1}
    # a stored run as the old side reads the entry's terms from its one definition row
    diff = json.loads(cli("diff", "--db", db, "--against-run", 1, policy, "--json", ok=True).output)
    assert diff["costs"]["old"]["totals"]["cost"] == diff["costs"]["new"]["totals"]["cost"] == 10


def test_the_tier_cell_round_trips_as_a_comma_list(cli, tmp_path):
    shutil.copytree(VALID, tmp_path / "valid")
    shutil.copytree(SHIPPED, tmp_path / "policies")
    path = tmp_path / "valid" / "shared_service_levels.yaml"
    before = path.read_bytes()
    sheet = tmp_path / "sl.csv"
    export(cli, path, "service_levels", sheet)
    header, body = read_csv(sheet)
    tier = header.index("tier")
    assert [r[tier] for r in body] == ["A", "A, B, C", "A", "B", "C"]
    assert "no changes" in cli("table", "import", path, sheet, "--table", "service_levels", ok=True).output
    assert path.read_bytes() == before
    # typed as office users type lists, with a Chinese enumeration comma too; one id stays a plain id
    body[1][tier] = "B、C"
    write_csv(sheet, header, body)
    cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    assert "    tier: [B, C]\n" in path.read_text(encoding="utf-8")
    body[1][tier] = "B"
    write_csv(sheet, header, body)
    cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    text = path.read_text(encoding="utf-8")
    assert "  - id: prepayment\n    tier: B\n" in text
    # a sub-grade with several tiers is refused at its cell, and the file is left as it is
    body[0][tier] = "A, B"
    write_csv(sheet, header, body)
    result = cli("table", "import", path, sheet, "--table", "service_levels")
    assert result.exit_code == 1
    assert ("sl.csv: row 2, column C (subgrade): a sub-grade belongs to one tier, and this entry names 2 (A, B)"
            in " ".join(result.output.split()))
    assert path.read_text(encoding="utf-8") == text
    # a tier the sheet leaves without a row is noted; one named in a row's list has a service level
    body[0][tier] = "A"
    del body[4]  # C-standard
    write_csv(sheet, header, body)
    result = cli("table", "import", path, sheet, "--table", "service_levels", "--dry-run", ok=True)
    assert "tier 'C' has no service level" in result.output
    body[1][tier] = "B, C"
    write_csv(sheet, header, body)
    result = cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    assert "no service level" not in result.output
    assert "    tier: [B, C]\n" in path.read_text(encoding="utf-8")


def test_coverage_lists_an_entry_for_several_tiers_once(tmp_path):
    from crm_rules.engine.policy_test_report import format_report
    from crm_rules.engine.policy_tests import run_policy_tests
    from test_policy_tests import SMALL_POLICY

    policy = tmp_path / "small.yaml"
    policy.write_text(SMALL_POLICY.replace("  - {id: silver-care, tier: silver}\n  - {id: bronze-care, tier: bronze}\n",
                                           "  - {id: care, tier: [silver, bronze]}\n"), encoding="utf-8")
    (tmp_path / "small.test.yaml").write_text("as_of: 2026-06-30\ncases:\n  - name: no orders\n"
                                              "    expect: {tier: bronze, service_level: care}\n", encoding="utf-8")
    report = run_policy_tests([policy])
    assert report["ok"]
    [cov] = report["coverage"]
    assert (cov["service_levels"]["exercised"], cov["service_levels"]["unexercised"]) == (["care"], ["gold-care"])
    assert "service levels 1/2" in format_report(report, coverage=True)


def test_since_the_previous_run_and_the_report_read_the_shared_entry(cli, tmp_path):
    """b1 moves from B to A between two runs and keeps the shared entry: a tier change, not a service change."""
    db = _db(tmp_path)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    cli("apply", "--db", db, "-p", policy, "--as-of", "2026-05-15", ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) "
                     "VALUES ('b1', '2026-05-20', 900, 0, 0)")
    cli("apply", "--db", db, "-p", policy, "--as-of", D, ok=True)
    shown = json.loads(cli("explain", "b1", "--db", db, "--run", 2, "--json", ok=True).output)
    assert shown["since"]["changes"] == [{"grade": "tier", "before": "B", "after": "A"},
                                         {"grade": "subgrade", "before": None, "after": "A2"}]
    assert shown["service_level"]["id"] == "watch" and shown["service_level"]["tier"] == "A"
    text = cli("explain", "b1", "--db", db, "--run", 2, ok=True).output
    assert "Since run 1 (as of 2026-05-15): tier B → A, sub-grade — → A2." in text
    assert "Service level watch (for tier A; one entry for tiers A, B)" in text
    out = tmp_path / "report.html"
    cli("report", "--db", db, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert "watch" in html and "Watch list" in html
