"""Stacked layers: steps that build on each other computed in one pass, with the values of one layer per step."""

from __future__ import annotations

import sqlite3

import pytest

from crm_rules.engine.sql_layers import LayerChain, LayerStep, keyed_view
from crm_rules.engine.window_sql import columns_read


def _population() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE base (_cid, x, y, label)")
    conn.executemany("INSERT INTO base VALUES (?, ?, ?, ?)",
                     [(f"C{i}", (i * 37) % 11 if i % 7 else None, float(i % 5), "客户" if i % 3 else None) for i in range(60)])
    conn.execute("CREATE TABLE extra (cid PRIMARY KEY, bonus)")
    conn.executemany("INSERT INTO extra VALUES (?, ?)", [(f"C{i}", i) for i in range(0, 60, 4)])
    for s in keyed_view("m", "main.base"):
        conn.execute(s.sql)
    return conn


STEPS = [
    LayerStep({"pct": "(RANK() OVER (ORDER BY t.y) - 1) * 1.0 / NULLIF(COUNT(t.y) OVER () - 1, 0)",
               "scaled": "t.x * :k"}, {"k": 2}),
    LayerStep({"score": "round(100 * coalesce(s.pct, 0) + coalesce(s.scaled, 0) + coalesce(e.bonus, 0), 2)"}, {},
              join="LEFT JOIN main.extra AS e ON e.cid = s._cid", alias="s"),
    LayerStep({"grade": "CASE WHEN g.score >= :top THEN 'A' WHEN g.score >= 20 THEN 'B' ELSE 'C' END",
               "note": "coalesce(g.label, '-') || ' ' || g.score"}, {"top": 60.0}, alias="g"),
]


def _values(conn, source: str) -> list[tuple]:
    return conn.execute(f"SELECT _rid, _cid, x, pct, scaled, score, grade, note FROM {source} ORDER BY _rid").fetchall()


def _layer_tables(statements) -> list[str]:
    return [s.sql.split()[2] for s in statements if s.sql.startswith("INSERT INTO") and s.sql.split()[2].endswith('_n"')]


def test_stacked_steps_give_what_one_layer_per_step_gives():
    conn = _population()
    separate = LayerChain('temp."m"')
    statements = [s for k, step in enumerate(STEPS)
                  for s in separate.add(f"sep{k}", step.columns, step.params, step.join, step.alias)]
    stacked = LayerChain('temp."m"')
    fused = stacked.add_stacked("all", STEPS)
    for s in statements + fused:
        conn.execute(s.sql, s.params)
    assert _values(conn, stacked.source) == _values(conn, separate.source)
    assert _layer_tables(fused) == ['temp."all_n"']  # one pass, one narrow table
    insert = next(s.sql for s in fused if s.sql.startswith('INSERT INTO temp."all_n"'))
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {insert}", {"k": 2, "top": 60.0})]
    assert sum(p.startswith("CO-ROUTINE") for p in plan) == 2  # the steps were not flattened into each other
    assert ['"pct"', '"scaled"', '"score"', '"grade"', '"note"'] == [
        c.strip() for c in insert.split("(", 2)[1].split(")")[0].split(",")[1:]]


def test_blanking_a_stacked_column_reaches_its_table():
    conn = _population()
    chain = LayerChain('temp."m"')
    for s in chain.add_stacked("all", STEPS):
        conn.execute(s.sql, s.params)
    for sql in chain.blank(["score", "grade"], "_cid = 'C4'"):
        conn.execute(sql)
    assert conn.execute(f"SELECT score, grade, note FROM {chain.source} WHERE _cid = 'C4'").fetchone()[:2] == (None, None)


@pytest.mark.parametrize("later, why", [
    (LayerStep({"r": "RANK() OVER (ORDER BY s.scaled)"}, alias="s"), "a window over the step before"),
    (LayerStep({"r": "scaled + 1"}, alias="s"), "a name without its table"),
    (LayerStep({"r": "s.scaled + :k"}, {"k": 3}, alias="s"), "a parameter with another value"),
    (LayerStep({"scaled": "s.x"}, alias="s"), "a column added twice"),
    (LayerStep({"r": "s.scaled || 'open"}, alias="s"), "SQL the tokenizer cannot read"),
])
def test_steps_that_cannot_be_stacked_become_layers_of_their_own(later, why):
    chain = LayerChain('temp."m"')
    statements = chain.add_stacked("two", [STEPS[0], later])
    assert _layer_tables(statements) == ['temp."two_0_n"', 'temp."two_1_n"'], why


@pytest.mark.parametrize("sql, columns", [
    ('s."pct" + s.scaled * e.bonus', {"pct", "scaled"}),
    ('CASE WHEN o.kind = \'tier\' THEN o.tier ELSE s._rule_tier END', {"_rule_tier"}),
    ('(SELECT c0 FROM temp."w") + s.x', None),  # a name without a table
    ("coalesce(s.x, :p) || x'00'", {"x"}),
    ("s.date || s.end || s.key", {"date", "end", "key"}),  # names the tokenizer takes for keywords
    ("count(s.*)", None),  # every column
])
def test_columns_a_step_reads(sql, columns):
    got = columns_read(sql, "s")
    assert (set(got) if got is not None else None) == columns
