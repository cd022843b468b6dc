"""`explain` of an id that is not in the customers table suggests the ids close to it ("did you mean").

It used to say only "use a value of column 'id'" for a zero left out or doubled, two digits swapped, an O
for a 0, or another system's padding.  The candidates are looked up in SQL (engine/id_suggestions.py):
a customers table of a million rows is never read into Python.
"""

from __future__ import annotations

import sqlite3

import pytest

from conftest import AS_OF
from crm_rules.engine.id_suggestions import near_ids, said


def _name(db, customer_id: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT name FROM customers WHERE id = ?", (customer_id,)).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(params=["stored", "computed"])
def explain_unknown(request, cli, demo_db):
    """explain with a stored run to read (the customer is looked up before the run), or computing now."""
    if request.param == "stored":
        cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)

    def run(customer_id: str):
        result = cli("explain", customer_id, "--db", demo_db, "-p", "base", "--as-of", AS_OF)
        assert result.exit_code == 2, result.output
        assert f"error: customer {customer_id!r} not found in table 'customers'" in result.stderr
        return result.stderr
    return run


@pytest.mark.parametrize("typed", ["C00002", "C0000002", "C0000O2", "C000 002", "C-000002", "2", "C2", "D000002"])
def test_a_mistyped_id_gets_the_id_meant(explain_unknown, demo_db, typed):
    assert f"hint: did you mean 'C000002' ({_name(demo_db, 'C000002')})?\n" in explain_unknown(typed)


def test_only_the_closest_are_offered(explain_unknown, demo_db):
    assert f"hint: did you mean 'C000020' ({_name(demo_db, 'C000020')})?\n" in explain_unknown("C000020X")


def test_equally_close_ids_begin_with_swapped_characters_then_those_that_share_the_start(explain_unknown):
    # C000301 is one past the last id: C000031 has its characters, C000300 shares six, C000201 and C000001 four
    hint = explain_unknown("C000301")
    assert "hint: did you mean 'C000031' (" in hint and "), 'C000300' (" in hint and ") or 'C000001' (" in hint


def test_nothing_close_says_what_ids_look_like(explain_unknown):
    assert "hint: use a value of column 'id' (ids look like 'C000001')" in explain_unknown("Müller GmbH")


def test_another_case_still_says_how_the_id_is_stored(explain_unknown):
    assert "hint: did you mean 'C000002'? (the id is stored so: C000002 on the command line)" in explain_unknown("c000002")


def test_recompute_says_it_before_computing_every_customer(cli, demo_db, monkeypatch):
    import crm_rules.engine.runner as runner

    def never(*_args, **_kwargs):
        raise AssertionError("computed the policy for an id that is not there")

    monkeypatch.setattr(runner, "compute", never)
    result = cli("explain", "C00002", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--recompute")
    assert result.exit_code == 2 and "did you mean 'C000002'" in result.stderr


def test_integer_ids(tmp_path, cli):
    db = tmp_path / "i.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                       "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, order_date TEXT, amount REAL);")
    conn.executemany("INSERT INTO customers VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 200)])
    conn.commit()
    conn.close()
    policy = tmp_path / "p.yaml"
    policy.write_text("data:\n  customers: {attributes: {region: null, industry: null, account_manager: null, since: null, "
                      "credit_limit: null}}\n  orders: {columns: {cost: null, discount: null}}\n"
                      "metrics:\n  revenue: {sum: amount}\ntiers:\n  levels: [{id: A, default: true}]\n")
    result = cli("explain", "1234", "--db", db, "-p", policy, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "hint: did you mean 123 (n123), 124 (n124) or 134 (n134)?" in result.stderr  # a digit left out


def test_said():
    assert said([("C1", "Acme")]) == "did you mean 'C1' (Acme)?"
    assert said([("C1", "Acme"), ("C2", None), (3, "")]) == "did you mean 'C1' (Acme), 'C2' or 3?"


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """200,000 customers: a scan of them is millions of SQLite instructions, a lookup by the index a few hundred."""
    db = tmp_path_factory.mktemp("many") / "many.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT)")
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
                 "INSERT INTO customers SELECT printf('C%07d', i), 'name ' || i FROM n")
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("typed, meant", [("C000002", "C0000002"), ("C00000002", "C0000002"), ("C0199999X", "C0199999"),
                                           ("C0012354", "C0012345"), ("C0200001", "C0020001"), ("7", "C0000007")])
def test_suggestions_do_not_read_the_table(many, typed, meant):
    conn = sqlite3.connect(many)
    steps = []
    conn.set_progress_handler(lambda: steps.append(1), 1000)
    try:
        found = near_ids(conn, "customers", "id", typed, "name")
    finally:
        conn.close()
    assert found[0] == (meant, f"name {int(meant[1:])}")
    assert len(steps) < 200, f"{len(steps) * 1000} SQLite instructions: the table was scanned"
