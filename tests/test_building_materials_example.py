"""The building-materials example policy (tests/policies/valid/building_materials.yaml) end to end.

It was written from an empty file with the policy guide only, for a distributor whose data has customer
columns named in Chinese (客户类型, 战略合作) and a kind of contract of its own (年度返利协议): its tests must
pass and cover every rule, and it must apply to the demo data with those columns added, with its Chinese
labels lined up in the summary.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rich.cells import cell_len

from conftest import AS_OF, user_tables_digest
from crm_rules.engine.policy_tests import run_policy_tests

POLICY = Path(__file__).parent / "policies" / "valid" / "building_materials.yaml"


def with_distributor_columns(db: Path) -> Path:
    """The demo database with the columns and contracts the example reads."""
    conn = sqlite3.connect(db)
    conn.executescript("""
        ALTER TABLE customers ADD COLUMN 客户类型 TEXT;
        ALTER TABLE customers ADD COLUMN 战略合作 INTEGER;
        UPDATE customers SET 客户类型 = CASE rowid % 3 WHEN 0 THEN '经销商' WHEN 1 THEN '工程客户' ELSE '零售门店' END,
                             战略合作 = (rowid % 25 = 0);
        INSERT INTO contracts (customer_id, kind, start_date, end_date)
            SELECT id, '年度返利协议', '2025-09-01', '2026-08-31' FROM customers WHERE rowid % 5 = 0;
    """)
    conn.commit()
    conn.close()
    return db


def test_its_tests_pass_and_cover_every_rule():
    report = run_policy_tests([POLICY.with_name("building_materials.test.yaml")])
    assert report["failed"] == 0, report["failures"]
    (covered,) = report["coverage"]
    assert covered["complete"] and not covered["service_levels"]["unexercised"], covered


def test_it_applies_to_the_demo_data_with_chinese_columns_and_labels_lined_up(cli, demo_db):
    db = with_distributor_columns(demo_db)
    before = user_tables_digest(db)
    result = cli("apply", "--db", db, "--policy", POLICY, "--as-of", AS_OF, ok=True)
    assert "建材分销 as of 2026-06-30" in result.output
    assert "走量低利客户" in result.output and "款到发货" in result.output
    tables, lines = [], []
    for line in result.output.splitlines() + [""]:
        if line[:1] in "┏┃┡│└" and line:
            lines.append(line)
        elif lines:
            tables.append(lines)
            lines = []
    assert len(tables) >= 5
    for table in tables:
        assert len({cell_len(line) for line in table}) == 1, "\n".join(table)
    assert user_tables_digest(db) == before
    actions = cli("actions", "--db", db, "--action", "churn_alert", "--json", ok=True).output
    assert "本季度订单 -" in actions and "vs 去年同季度" in actions  # the year-on-year alert says so
