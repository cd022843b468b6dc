"""CSV files crm-rules writes never make a spreadsheet run a formula from a customer's name or a policy's text."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from crm_rules.engine.spreadsheet_cells import guarded, unguarded

SHIPPED = Path(str(shipped_policies_dir()))
NAMES = {"C000001": '=HYPERLINK("http://x","click")', "C000002": "+cmd|' /C calc'!A0", "C000003": "@SUM(1)",
         "C000004": "-5", "C000005": "\tTAB", "C000006": "\rCR", "C000007": "-2+3", "C000008": "'=already quoted"}


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","click")', "+cmd|x", "-2+3", "@SUM(1)", "\tx", "\rx", "=",
                                  "'=x", "''+x"])
def test_text_a_spreadsheet_would_run_gets_a_quote_that_reading_removes(text):
    assert guarded(text) == "'" + text
    assert unguarded(guarded(text)) == text


@pytest.mark.parametrize("value", [-5, -0.25, 3, 1e-5, "-5", "+5", "-0.25", "-1e5", ".5", "plain", "a=b", "", None,
                                   "'quoted", " =x", "-", "+"])
def test_numbers_and_harmless_text_are_written_as_they_are(value):
    assert guarded(value) == value
    if isinstance(value, str):
        assert unguarded(value) == value


def _export_csv(cli, db: Path) -> dict[str, dict[str, str]]:
    text = cli("export", "--db", db, ok=True).stdout
    return {r["customer_id"]: r for r in csv.DictReader(io.StringIO(text))}


@pytest.fixture
def named_db(demo_db) -> Path:
    conn = sqlite3.connect(demo_db)
    conn.executemany("UPDATE customers SET name = ? WHERE id = ?", [(n, c) for c, n in NAMES.items()])
    conn.commit()
    conn.close()
    apply_policy(demo_db, load_policy("base"), AS_OF)
    return demo_db


def test_export_csv_quotes_names_that_would_run_as_formulas(cli, named_db):
    rows = _export_csv(cli, named_db)
    assert rows["C000001"]["customer_name"] == """'=HYPERLINK("http://x","click")"""
    assert rows["C000002"]["customer_name"] == "'+cmd|' /C calc'!A0"
    assert rows["C000003"]["customer_name"] == "'@SUM(1)"
    assert rows["C000005"]["customer_name"] == "'\tTAB"
    assert rows["C000006"]["customer_name"] == "'\rCR"
    assert rows["C000007"]["customer_name"] == "'-2+3"
    assert rows["C000008"]["customer_name"] == "''=already quoted"


def test_export_csv_leaves_numbers_and_number_text_alone(cli, named_db):
    rows = _export_csv(cli, named_db)
    assert rows["C000004"]["customer_name"] == "-5"
    trends = [r["revenue_prev_12m_trend"] for r in rows.values() if r["revenue_prev_12m_trend"].startswith("-")]
    assert trends and all(float(t) < 0 for t in trends)  # negative numbers are not quoted


def test_export_csv_file_is_quoted_as_standard_output_is(cli, named_db, tmp_path):
    out = tmp_path / "grades.csv"
    cli("export", "--db", named_db, "--out", out, ok=True)
    rows = {r["customer_id"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig")))}
    assert rows["C000001"]["customer_name"] == """'=HYPERLINK("http://x","click")"""


def test_export_json_keeps_names_as_they_are(cli, named_db):
    data = json.loads(cli("export", "--db", named_db, "--format", "json", ok=True).stdout)
    names = {a["customer_id"]: a["customer_name"] for a in data["assignments"]}
    assert {c: names[c] for c in NAMES} == NAMES


@pytest.fixture
def formula_labels(tmp_path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("__pycache__"))
    path = target / "vip_card.yaml"
    text = path.read_text(encoding="utf-8")
    label = load_policy(path).tiers[0].rule.label
    path.write_text(text.replace(f"label: {label}\n", """label: '=HYPERLINK("http://x")'\n""", 1), encoding="utf-8")
    assert load_policy(path).tiers[0].rule.label == '=HYPERLINK("http://x")'
    return path


def test_table_export_csv_quotes_a_label_that_would_run(cli, formula_labels):
    text = cli("table", "export", formula_labels, "--table", "tiers", ok=True).stdout
    rows = list(csv.reader(io.StringIO(text)))
    label = rows[0].index("label")
    assert rows[1][label] == """'=HYPERLINK("http://x")"""


def test_table_export_csv_round_trips_a_quoted_label(cli, formula_labels, tmp_path):
    before = formula_labels.read_bytes()
    sheet = tmp_path / "tiers.csv"
    cli("table", "export", formula_labels, "--table", "tiers", "--out", sheet, ok=True)
    result = cli("table", "import", formula_labels, sheet, "--table", "tiers", ok=True)
    assert "no changes" in result.output
    assert formula_labels.read_bytes() == before
