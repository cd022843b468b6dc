"""The command line as a new user meets it: version, demo, import, docs."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import typer

from conftest import stored_metrics

from crm_rules.cli import app
from crm_rules.engine import __version__

README = Path(__file__).parent.parent / "README.md"


def test_version(cli):
    result = cli("--version", ok=True)
    assert result.output.strip() == f"crm-rules {__version__}"


def test_no_arguments_shows_help(cli):
    result = cli()
    assert "apply" in result.output and "demo" in result.output


def test_demo_creates_database_policies_and_runs_base(cli, tmp_path):
    target = tmp_path / "demo"
    result = cli("demo", "--dir", target, "--customers", "150", ok=True)
    assert (target / "crm.db").exists() and (target / "policies" / "base.yaml").exists()
    assert "150 customers graded; run 1 written" in result.output
    assert "next: crm-rules explain" in result.output
    again = cli("demo", "--dir", target)
    assert again.exit_code == 2 and "already exists" in again.output


def test_demo_is_deterministic(cli, tmp_path):
    outputs = []
    for name in ("one", "two"):
        cli("demo", "--dir", tmp_path / name, "--customers", "120", ok=True)
        conn = sqlite3.connect(tmp_path / name / "crm.db")
        outputs.append((conn.execute("SELECT customer_id, tier, subgrade, stage, service_level FROM crm_assignments "
                                     "ORDER BY customer_id").fetchall(), stored_metrics(tmp_path / name / "crm.db")))
        conn.close()
    assert outputs[0] == outputs[1]


def test_import_csv_then_apply(cli, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("\ufeffid,name,region\nK1,华东贸易有限公司,华东\nK2,Acme Ltd,Europe\n", encoding="utf-8")
    orders = tmp_path / "orders.csv"
    orders.write_text("id,customer_id,order_date,amount\n1,K1,2026-05-01,1200.50\n2,K2,2026-06-01,80\n3,K1,2026-06-02,300\n", encoding="utf-8")
    db = tmp_path / "mine.db"
    cli("import", customers, "--db", db, "--table", "customers", ok=True)
    cli("import", orders, "--db", db, "--table", "orders", ok=True)
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
                      "tiers:\n  levels:\n    - {id: A, label: 重点, when: 'revenue_12m >= 1000'}\n    - {id: B, default: true}\n",
                      encoding="utf-8")
    result = cli("apply", "--db", db, "-p", policy, "--as-of", "2026-06-30", ok=True)
    assert "2 customers graded" in result.output
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT customer_id, customer_name, tier FROM crm_assignments ORDER BY customer_id").fetchall() == [
        ("K1", "华东贸易有限公司", "A"), ("K2", "Acme Ltd", "B")]


def test_import_argument_errors(cli, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    both = cli("import", f, "--db", tmp_path / "x.db", "--table", "t", "--replace", "--append")
    assert both.exit_code == 2 and "cannot be used together" in both.output
    bad_type = cli("import", f, "--db", tmp_path / "x.db", "--table", "t", "--type", "a=money")
    assert bad_type.exit_code == 2 and "COLUMN=integer|float|text" in bad_type.output


def _commands():
    return sorted(typer.main.get_command(app).commands)


def test_every_command_is_documented_in_the_readme():
    text = README.read_text(encoding="utf-8")
    for name in _commands():
        assert re.search(rf"crm-rules {name}\b", text), f"README does not document `crm-rules {name}`"


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help(cli, name):
    result = cli(name, "--help", ok=True)
    assert "Usage" in result.output
    assert "<bool>" not in result.output  # a flag takes no value: Typer's rich help printed one beside each


@pytest.mark.parametrize("words", [(), ("table", "export"), ("table", "import")])
def test_flags_show_no_value_in_help(cli, words):
    result = cli(*words, "--help", ok=True)
    assert "--help" in result.output and "<bool>" not in result.output


def test_actions_command_lists_filters_and_exports(cli, demo_db):
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", "2026-06-30", ok=True)
    everything = json.loads(cli("actions", "--db", demo_db, "--json", ok=True).output)
    items = everything["actions"]
    assert everything["run_id"] == 1 and items
    assert {"churn_alert", "loyalty_rebate"} <= {a["action"] for a in items}
    keys = [(a["priority"], a["due_date"], a["customer_id"], a["action"]) for a in items]
    assert keys == sorted(keys)  # most urgent first: priority 1, then the earliest due
    assert items[0]["priority"] == 1 and items[0]["due_date"] > min(a["due_date"] for a in items)
    owner = items[0]["owner"]
    mine = json.loads(cli("actions", "--db", demo_db, "--owner", owner, "--json", ok=True).output)["actions"]
    assert mine and all(a["owner"] == owner for a in mine)
    soon = json.loads(cli("actions", "--db", demo_db, "--due-before", "2026-07-10", "--json", ok=True).output)["actions"]
    assert soon and all(a["due_date"] < "2026-07-10" for a in soon) and len(soon) < len(items)
    assert {a["due_date"] for a in items} > {"2026-06-30", "2026-07-03", "2026-07-30"}  # lead times differ per action
    churn = json.loads(cli("actions", "--db", demo_db, "--action", "churn_alert", "--json", ok=True).output)["actions"]
    assert churn and {a["action"] for a in churn} == {"churn_alert"} and all(a["category"] == "churn" for a in churn)
    table = cli("actions", "--db", demo_db, "--limit", "5", ok=True).output
    assert f"Actions of run 1: {len(items):,}" in table and f"{len(items) - 5:,} more" in table
    bad = cli("actions", "--db", demo_db, "--due-before", "soon")
    assert bad.exit_code == 2 and "--due-before 'soon' is not a date" in bad.output
