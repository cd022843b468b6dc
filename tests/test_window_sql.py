"""Window calls taken out of layers: found exactly, computed once per ordering, same results as inline."""

from __future__ import annotations

import sqlite3

import pytest

from crm_rules.engine import user_cache, window_sql
from crm_rules.engine.sql_layers import LayerChain, keyed_view
from crm_rules.engine.window_sql import WindowTables, find_window_calls


def test_finds_calls_and_their_ordering():
    sql = ("CASE WHEN t.x > 0 THEN 1 + RANK() OVER (ORDER BY round(t.x, 6)  DESC NULLS LAST) "
           "/ COUNT(t.x) OVER () END")
    calls = find_window_calls(sql)
    assert [(c.function, c.name, c.spec) for c in calls] == [
        ("RANK()", "rank", "ORDER BY round(t.x, 6) DESC NULLS LAST"), ("COUNT(t.x)", "count", "")]
    assert [sql[c.start:c.end] for c in calls] == ["RANK() OVER (ORDER BY round(t.x, 6)  DESC NULLS LAST)",
                                                   "COUNT(t.x) OVER ()"]


@pytest.mark.parametrize("sql", [
    "'RANK() OVER (ORDER BY x)'",  # a string literal
    '"OVER" + 1',  # a quoted column named OVER
    "x -- RANK() OVER (ORDER BY x)\n + 1",  # a comment
])
def test_text_that_only_looks_like_a_window(sql):
    assert find_window_calls(sql) == []


def test_filter_clause_and_parameters_belong_to_the_call():
    calls = find_window_calls("SUM(t.a) FILTER (WHERE t.b > :x0_1) OVER (ORDER BY t.c)")
    assert [(c.function, c.params) for c in calls] == [("SUM(t.a) FILTER (WHERE t.b > :x0_1)", ("x0_1",))]


@pytest.mark.parametrize("sql", ["RANK() OVER w", "SUM(RANK() OVER (ORDER BY x)) OVER ()", "'unclosed"])
def test_sql_it_cannot_take_apart_is_left_alone(sql):
    assert find_window_calls(sql) is None
    columns = {"a": sql}
    assert WindowTables().hoist("l", columns, "src", {}, "", "t") == (columns, [], "")


@pytest.fixture
def fresh_process(tmp_path, monkeypatch):
    """An empty user cache, and nothing tokenized yet in this process; yields the cache folder."""
    monkeypatch.setenv(user_cache.ENV, str(tmp_path / "cache"))
    window_sql._tokens.cache_clear()
    yield tmp_path / "cache"
    window_sql._tokens.cache_clear()


def _no_tokenizer(monkeypatch) -> None:
    def tokenize(sql):
        raise AssertionError(f"tokenized again: {sql}")

    monkeypatch.setattr(window_sql, "_tokenize", tokenize)


@pytest.mark.parametrize("sql", ["CASE WHEN t.x > 0 THEN RANK() OVER (ORDER BY t.x DESC) END", "'unclosed"])
def test_a_later_process_reads_the_tokens_from_the_user_cache(fresh_process, monkeypatch, sql):
    first = find_window_calls(sql)
    assert list(fresh_process.glob("sql-tokens-*.json"))
    window_sql._tokens.cache_clear()  # as a new process starts
    _no_tokenizer(monkeypatch)
    assert find_window_calls(sql) == first


def test_a_damaged_cache_entry_is_tokenized_again(fresh_process, monkeypatch):
    sql = "SUM(t.a) OVER (ORDER BY t.c)"
    first = find_window_calls(sql)
    (entry,) = fresh_process.glob("sql-tokens-*.json")
    entry.write_text('[["VAR", "SUM"', encoding="utf-8")  # cut short
    window_sql._tokens.cache_clear()
    assert find_window_calls(sql) == first
    window_sql._tokens.cache_clear()
    _no_tokenizer(monkeypatch)  # written whole again
    assert find_window_calls(sql) == first


def test_without_a_user_cache_it_tokenizes_every_process(fresh_process, monkeypatch):
    monkeypatch.setenv(user_cache.ENV, "")
    assert [c.name for c in find_window_calls("NTILE(5) OVER (ORDER BY t.x)")] == ["ntile"]
    assert not fresh_process.exists()


def _population(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE base (_cid, x, y)")
    rows = [(f"C{i}", (i * 37) % 11 if i % 7 else None, float(i % 5)) for i in range(60)]
    conn.executemany("INSERT INTO base VALUES (?, ?, ?)", rows)


COLUMNS = {
    "rank_x": "CASE WHEN t.x IS NOT NULL THEN RANK() OVER (ORDER BY round(t.x, 6) DESC NULLS LAST) END",
    "share": "SUM(t.y) OVER (ORDER BY t.x ASC NULLS LAST) * 1.0 / SUM(t.y) OVER ()",
    "pct": "(RANK() OVER (ORDER BY t.y) - 1) * 1.0 / NULLIF(COUNT(t.y) OVER () - 1, 0)",
    "n_big": "COUNT(*) FILTER (WHERE t.x > :cut) OVER ()",
}


def _run(conn, statements):
    for s in statements:
        conn.execute(s.sql, s.params)


def test_hoisted_layer_gives_what_the_inline_select_gives():
    conn = sqlite3.connect(":memory:")
    _population(conn)
    _run(conn, keyed_view("m", "main.base"))
    chain = LayerChain('temp."m"')
    statements = chain.add("l1", COLUMNS, {"cut": 5})
    _run(conn, statements)
    inline = conn.execute(f"SELECT t._rid, {', '.join(COLUMNS.values())} FROM temp.m AS t ORDER BY 1", {"cut": 5}).fetchall()
    hoisted = conn.execute(f"SELECT _rid, {', '.join(COLUMNS)} FROM {chain.source} ORDER BY 1").fetchall()
    assert hoisted == inline
    layer = next(s.sql for s in statements if s.sql.startswith('INSERT INTO temp."l1_n"'))
    assert "OVER" not in layer  # every window was computed apart
    # one narrow statement per ordering; the OVER () aggregates became scalar subqueries
    assert sum(s.sql.startswith('INSERT INTO temp."l1_w') for s in statements) == 3


def test_a_later_layer_reuses_an_ordering_unless_its_column_was_blanked():
    chain = LayerChain('temp."m"')
    first = chain.add("l1", {"a": "RANK() OVER (ORDER BY t.x)"}, {})
    again = chain.add("l2", {"b": "1 + RANK() OVER (ORDER BY t.x)", "c": "RANK() OVER (ORDER BY t.y)"}, {})
    computed = [s.sql for s in first + again if s.sql.startswith("INSERT INTO temp.\"l") and "_w" in s.sql.split()[2]]
    assert len(computed) == 2 and "t.x" in computed[0] and "t.y" in computed[1]
    chain.blank(["x"], "1")
    after = chain.add("l3", {"d": "RANK() OVER (ORDER BY t.x)", "e": "RANK() OVER (ORDER BY t.y)"}, {})
    recomputed = [s.sql for s in after if s.sql.startswith('INSERT INTO temp."l3_w')]
    assert len(recomputed) == 1 and "t.x" in recomputed[0]


def test_the_same_call_with_other_parameter_values_is_not_reused():
    chain = LayerChain('temp."m"')
    chain.add("l1", {"a": "COUNT(*) FILTER (WHERE t.x > :p) OVER (ORDER BY t.y)"}, {"p": 1})
    later = chain.add("l2", {"b": "COUNT(*) FILTER (WHERE t.x > :p) OVER (ORDER BY t.y)"}, {"p": 2})
    assert any(s.sql.startswith('INSERT INTO temp."l2_w') for s in later)


def _sorts(statements) -> list[str]:
    return [s.sql for s in statements if s.sort is not None]


def test_another_call_of_an_earlier_ordering_joins_that_sort():
    conn = sqlite3.connect(":memory:")
    _population(conn)
    _run(conn, keyed_view("m", "main.base"))
    chain = LayerChain('temp."m"')
    first = chain.add("l1", {"share": "SUM(t.y) OVER (ORDER BY round(t.x, 6) ASC NULLS LAST)"}, {})
    later = chain.add("l2", {"r": "RANK() OVER (ORDER BY round(t.x, 6) ASC NULLS LAST) + :k",
                             "n": "COUNT(t.y) FILTER (WHERE t.y > :cut) OVER (ORDER BY round(t.x, 6) ASC NULLS LAST)"},
                      {"k": 1, "cut": 2.0})
    assert _sorts(later) == []  # one sort of that ordering, the earlier one, computes all three calls
    (sort,) = [s.sort for s in first if s.sort is not None]
    assert len(sort.calls) == 3 and sort.columns == {"x", "y"}
    _run(conn, first + later)
    got = conn.execute(f"SELECT _rid, share, r, n FROM {chain.source} ORDER BY 1").fetchall()
    inline = conn.execute("SELECT t._rid, SUM(t.y) OVER w, RANK() OVER w + 1, COUNT(t.y) FILTER (WHERE t.y > 2.0) OVER w "
                          "FROM temp.m AS t WINDOW w AS (ORDER BY round(t.x, 6) ASC NULLS LAST) ORDER BY 1").fetchall()
    assert got == inline


@pytest.mark.parametrize("earlier, later, why", [
    ({"s": "t.x * 2"}, {"r": "RANK() OVER (ORDER BY t.x) + SUM(t.s) OVER (ORDER BY t.x)"}, "a column added after the sort"),
    ({"s": "t.x * :p"}, {"r": "SUM(t.y * :p) OVER (ORDER BY t.x)"}, "a parameter the sort's statement has with another value"),
    ({}, {"r": "SUM(t.y + y) OVER (ORDER BY t.x)"}, "a column without its table"),
])
def test_a_call_that_cannot_join_the_earlier_sort_gets_its_own(earlier, later, why):
    chain = LayerChain('temp."m"')
    first = chain.add("l1", {"a": "RANK() OVER (ORDER BY t.x)", **earlier}, {"p": 1})
    assert len(_sorts(first)) == 1
    assert len(_sorts(chain.add("l2", later, {"p": 2}))) == 1, why


def test_a_blanked_column_keeps_later_calls_out_of_earlier_sorts():
    chain = LayerChain('temp."m"')
    chain.add("l1", {"a": "RANK() OVER (ORDER BY t.x)"}, {})
    chain.blank(["y"], "1")
    assert len(_sorts(chain.add("l2", {"b": "SUM(t.y) OVER (ORDER BY t.x)"}, {}))) == 1
    assert _sorts(chain.add("l3", {"c": "COUNT(t.x) OVER (ORDER BY t.x)"}, {})) == []  # x itself was not blanked
