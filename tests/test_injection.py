"""Policies and data that try to smuggle SQL or code into a run.

Text in conditions is compared as text, names in the data mapping are names
(quoted, never spliced), YAML cannot construct objects, and the expression
language has no way to reach SQLite's or Python's functions.  Every attack
either runs as plain data or is refused with a clean error; the user's tables
are never touched.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from conftest import file_digest
from small_db import D, assignments, make_db
from crm_rules.engine.errors import DataError, PolicyError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

DROP_ORDERS = "'; DROP TABLE orders; --"
DELETE_CUSTOMERS = '"); DELETE FROM customers; --'

CUSTOMERS = [
    ("c1", "Alice", DROP_ORDERS),
    ("c2", "Bob", DELETE_CUSTOMERS),
    ("c3", "O'Brien & Sons", "O'Brien"),
    ("c4", 'Robert"); DROP TABLE customers;--', "华东"),
    ("c5'; DROP TABLE orders; --", "Mallory", "华南"),
]
ORDERS = [("c1", "2026-01-10", 100.0), ("c2", "2026-02-10", 200.0), ("c3", "2026-03-10", 300.0),
          ("c4", "2026-04-10", 400.0), ("c4", "2026-05-10", 40.0), ("c5'; DROP TABLE orders; --", "2026-05-01", 5.0)]
INTERACTIONS = [("c1", "2026-01-11", DROP_ORDERS), ("c1", "2026-01-12", DROP_ORDERS), ("c2", "2026-01-13", DELETE_CUSTOMERS),
                ("c3", "2026-01-14", "visit")]


@pytest.fixture
def db(tmp_path) -> Path:
    return make_db(tmp_path / "crm.db", CUSTOMERS, ORDERS, interactions=INTERACTIONS)


def q(text: str) -> str:
    """A YAML scalar holding ``text`` exactly (a JSON string is a YAML double-quoted scalar)."""
    return json.dumps(text, ensure_ascii=False)


def write_policy(tmp_path: Path, when: str, *, metrics: str = "", data: str = "", name: str = "injection") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"name: {name}\n"
        + (f"data:\n{data}" if data else "")
        + "metrics:\n  revenue: {sum: amount}\n" + metrics
        + "tiers:\n  levels:\n"
        + f"    - id: hit\n      label: {q(DROP_ORDERS + ' ' + DELETE_CUSTOMERS)}\n      when: {q(when)}\n"
        + "    - {id: rest, default: true}\n",
        encoding="utf-8")
    return path


def tier_of(db: Path, run_id: int) -> dict:
    return {cid: row[0] for cid, row in assignments(db, run_id).items()}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def user_tables(db: Path) -> dict:
    """Every user table (not crm_*, not sqlite_*) with all its rows.  (conftest's
    user_tables_digest does not quote table names, and these tests use nasty ones.)"""
    conn = sqlite3.connect(db)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                 if not n.startswith(("crm_", "sqlite_"))]
        return {n: conn.execute(f"SELECT * FROM {ident(n)} ORDER BY rowid").fetchall() for n in names}
    finally:
        conn.close()


def user_tables_digest(db: Path) -> str:
    return hashlib.sha256(repr(sorted(user_tables(db).items())).encode()).hexdigest()


def table_counts(db: Path) -> dict:
    return {name: len(rows) for name, rows in user_tables(db).items()}


# --------------------------------------------------------------------------
# Text literals in conditions are values, compared literally
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when, matched",
    [
        # the payload as a double-quoted literal, and with its quote escaped inside single quotes
        (f"region = {json.dumps(DROP_ORDERS)}", {"c1"}),
        ("region = '\\'; DROP TABLE orders; --'", {"c1"}),
        (f"region = '{DELETE_CUSTOMERS}'", {"c2"}),
        (f"region in ['x', {json.dumps(DROP_ORDERS)}, '{DELETE_CUSTOMERS}']", {"c1", "c2"}),
        # the classic "close the string, then OR 1=1" never escapes the literal: nobody matches
        ("region = '\\' OR 1=1 --'", set()),
        ("region = \"\\\" OR \\\"1\\\"=\\\"1\"", set()),
        ("region != '; DROP TABLE orders; --' and region = \"O'Brien\"", {"c3"}),
    ],
)
def test_injected_text_literals_compare_literally(tmp_path, db, when, matched):
    before, counts = user_tables_digest(db), table_counts(db)
    outcome = apply_policy(db, load_policy(write_policy(tmp_path, when)), D)
    tiers = tier_of(db, outcome.run_id)
    assert {c for c, t in tiers.items() if t == "hit"} == matched
    assert len(tiers) == len(CUSTOMERS)
    assert user_tables_digest(db) == before  # every row of every user table unchanged
    assert table_counts(db) == counts


def test_injected_literal_in_a_row_condition_counts_literally(tmp_path, db):
    metrics = (f"  drops:\n    count: interactions\n    where: {q('kind = ' + json.dumps(DROP_ORDERS))}\n"
               f"  deletes:\n    count: interactions\n    where: {q('kind in (' + repr(DELETE_CUSTOMERS) + ')')}\n")
    before = user_tables_digest(db)
    policy = write_policy(tmp_path, "drops >= 2 or deletes = 1", metrics=metrics)
    outcome = apply_policy(db, load_policy(policy), D)
    result = assignments(db, outcome.run_id)
    assert {c: (r[0], r[4]["drops"], r[4]["deletes"]) for c, r in result.items() if c in ("c1", "c2", "c3")} == {
        "c1": ("hit", 2, 0), "c2": ("hit", 0, 1), "c3": ("rest", 0, 0)}
    assert user_tables_digest(db) == before


def test_labels_names_and_ids_with_sql_are_stored_as_text(tmp_path, db):
    outcome = apply_policy(db, load_policy(write_policy(tmp_path, "revenue > 0")), D)
    conn = sqlite3.connect(db)
    try:
        (label,) = conn.execute("SELECT label FROM crm_definitions WHERE run_id = ? AND kind = 'tier' AND id = 'hit'",
                                (outcome.run_id,)).fetchone()
        names = dict(conn.execute("SELECT customer_id, customer_name FROM crm_assignments WHERE run_id = ?", (outcome.run_id,)))
    finally:
        conn.close()
    assert label == DROP_ORDERS + " " + DELETE_CUSTOMERS
    assert names == {cid: name for cid, name, _ in CUSTOMERS}


def test_cli_run_with_injected_literal_succeeds(tmp_path, db, cli):
    before = user_tables_digest(db)
    policy = write_policy(tmp_path, f"region = {json.dumps(DROP_ORDERS)} or region = '{DELETE_CUSTOMERS}'")
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", D, ok=True)
    assert "run 1 written" in result.output
    assert {c for c, t in tier_of(db, 1).items() if t == "hit"} == {"c1", "c2"}
    assert user_tables_digest(db) == before


# --------------------------------------------------------------------------
# Quotes in the data itself
# --------------------------------------------------------------------------


@pytest.mark.parametrize("when", [
    "region = \"O'Brien\"",
    "region = 'O\\'Brien'",
    "region in ['O\\'Brien', 'nobody']",
    "lower(region) = \"o'brien\" and length(region) = 7",
    "region between \"O'Brien\" and \"O'Brien\"",
])
def test_quotes_in_data_values_are_matched(tmp_path, db, when):
    outcome = apply_policy(db, load_policy(write_policy(tmp_path, when)), D)
    assert {c for c, t in tier_of(db, outcome.run_id).items() if t == "hit"} == {"c3"}


# --------------------------------------------------------------------------
# Names in the data mapping are identifiers, never SQL
# --------------------------------------------------------------------------

EVIL_TABLE = 'orders"; DROP TABLE customers; --'
EVIL_CUSTOMERS = "customers'; DROP TABLE orders; --"
EVIL_COLUMN = 'amount"); DELETE FROM customers; --'
EVIL_CUSTOMER_COLUMN = "customer_id] FROM orders; DROP TABLE customers; --"


@pytest.mark.parametrize(
    "data, name, expected",
    [
        (f"  orders: {{table: {q(EVIL_TABLE)}}}\n", EVIL_TABLE,
         f"metric 'revenue' needs orders, but the database has no table {EVIL_TABLE!r}"),
        (f"  customers: {{table: {q(EVIL_CUSTOMERS)}}}\n", EVIL_CUSTOMERS,
         f"has no customers table {EVIL_CUSTOMERS!r}"),
        (f"  orders: {{amount: {q(EVIL_COLUMN)}}}\n", EVIL_COLUMN,
         f"table 'orders' has no column {EVIL_COLUMN!r} (data.orders.amount, needed by metric 'revenue')"),
        (f"  orders: {{customer: {q(EVIL_CUSTOMER_COLUMN)}}}\n", EVIL_CUSTOMER_COLUMN,
         f"table 'orders' has no column {EVIL_CUSTOMER_COLUMN!r} (data.orders.customer"),
        (f"  customers: {{attributes: {{region: {q(EVIL_COLUMN)}}}}}\n", EVIL_COLUMN,
         f"table 'customers' has no column {EVIL_COLUMN!r} (data.customers.attributes.region"),
    ],
    ids=["orders-table", "customers-table", "amount-column", "customer-column", "attribute-column"],
)
def test_sql_in_mapped_names_is_a_missing_name(tmp_path, db, cli, data, name, expected):
    digest = file_digest(db)
    policy = write_policy(tmp_path, "region = 'x' and revenue > 0", data=data)
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(policy), D)
    assert expected in str(info.value)
    assert file_digest(db) == digest  # byte for byte: not even the results tables were created
    # the CLI says the same, cleanly
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", D)
    assert result.exit_code == 1
    assert "error:" in result.output and name in result.output and "Traceback" not in result.output
    assert file_digest(db) == digest


def _rebuild(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_column_with_a_quote_that_exists_is_read(tmp_path, db):
    """`amt"x` really is the amount column: quoting makes it work (it is not merely rejected)."""
    _rebuild(db, 'ALTER TABLE orders RENAME COLUMN amount TO "amt""x"')
    column = 'amt"x'
    policy = write_policy(tmp_path, "revenue >= 400", data=f"  orders: {{amount: {q(column)}}}\n")
    outcome = apply_policy(db, load_policy(policy), D)
    result = assignments(db, outcome.run_id)
    assert {c: r[4]["revenue"] for c, r in result.items()} == {
        "c1": 100.0, "c2": 200.0, "c3": 300.0, "c4": 440.0, "c5'; DROP TABLE orders; --": 5.0}
    assert {c for c, r in result.items() if r[0] == "hit"} == {"c4"}


def test_table_and_attribute_names_with_sql_characters_that_exist_are_read(tmp_path, db):
    table = 'my "orders"; DROP TABLE customers; --'
    column = "reg'ion\"; --"
    _rebuild(db,
             f'CREATE TABLE "{table.replace(chr(34), chr(34) * 2)}" AS SELECT * FROM orders',
             "DROP TABLE orders",
             f'ALTER TABLE customers RENAME COLUMN region TO "{column.replace(chr(34), chr(34) * 2)}"')
    before = user_tables_digest(db)
    data = f"  orders: {{table: {q(table)}}}\n  customers: {{attributes: {{region: {q(column)}}}}}\n"
    policy = write_policy(tmp_path, "region = \"O'Brien\" or revenue >= 400", data=data)
    outcome = apply_policy(db, load_policy(policy), D)
    result = assignments(db, outcome.run_id)
    assert {c for c, r in result.items() if r[0] == "hit"} == {"c3", "c4"}
    assert result["c4"][4]["revenue"] == 440.0
    assert user_tables_digest(db) == before


# --------------------------------------------------------------------------
# YAML cannot construct objects
# --------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system [\"touch {marker}\"]",
    "!!python/object/apply:builtins.open [\"{marker}\", \"w\"]",
    "!!python/object/new:subprocess.Popen [[\"touch\", \"{marker}\"]]",
    "!!python/name:os.system",
    "!!python/module:os",
])
def test_python_tags_in_a_policy_are_rejected(tmp_path, payload):
    marker = tmp_path / "pwned"
    policy = tmp_path / "policy.yaml"
    policy.write_text("tiers:\n  levels:\n    - id: hit\n      when: " + payload.format(marker=marker)
                      + "\n    - {id: rest, default: true}\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    assert "is not allowed" in str(info.value) and "policy.yaml:4:" in str(info.value)
    assert not marker.exists()


def test_python_tag_on_a_mapping_key_is_rejected(tmp_path):
    marker = tmp_path / "pwned"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"!!python/object/apply:os.system touch {marker}: 1\n"
                      "tiers:\n  levels: [{id: all, default: true}]\n", encoding="utf-8")
    try:
        with pytest.raises(PolicyError) as info:
            load_policy(policy)
        assert "is not allowed" in str(info.value)
    finally:
        assert not marker.exists()


# --------------------------------------------------------------------------
# The expression language reaches no SQLite or Python function
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when, message",
    [
        ("load_extension('x') is null", "unknown function 'load_extension'"),
        ("sqlite_version() = '3'", "unknown function 'sqlite_version'"),
        ("readfile('/etc/passwd') = 'x'", "unknown function 'readfile'"),
        ("writefile('/tmp/x', region) = 1", "unknown function 'writefile'"),
        ("printf('%s', region) = 'x'", "unknown function 'printf'"),
        ("randomblob(4) is null", "unknown function 'randomblob'"),
        ("LOAD_EXTENSION('x') is null", "unknown function 'load_extension'"),
        ("__import__('os') is null", "unknown function '__import__'"),
        ("eval('1') = 1", "unknown function 'eval'"),
        ("exec('import os') is null", "unknown function 'exec'"),
        ("__import__ is null", "unknown metric or attribute '__import__'"),
        ("__builtins__ = 1", "unknown metric or attribute '__builtins__'"),
        ("sqlite_master is null", "unknown metric or attribute 'sqlite_master'"),
        ("os.system('rm -rf /') = 0", "syntax error: unexpected character '.'"),
        ("region.__class__ is null", "syntax error: unexpected character '.'"),
        ("region = 'x'; DROP TABLE customers", "syntax error: unexpected character ';'"),
        ("region = 'x' -- comment", "the left side of '-' must be a number"),  # `--` is two minus signs
        ("region = 'x' --", "syntax error: the expression ends too early"),
        ("region = 'x' /* comment */", "syntax error: unexpected '*'"),
        ("region = 'x' union select name from sqlite_master", "syntax error: unexpected 'union'"),
        ("`region` = 'x'", "syntax error: unexpected character '`'"),
        ("region = x'00'", "syntax error: unexpected"),
        ("region = ?", "syntax error: unexpected character '?'"),
        ("region = :as_of", "syntax error: unexpected character ':'"),
        ("region = @p", "syntax error: unexpected character '@'"),
        ("region || 'x' = 'x'", "syntax error: '||' is not an operator; write 'or'"),  # SQL's concatenation
    ],
)
def test_functions_and_names_outside_the_language_are_rejected_at_load(tmp_path, when, message):
    policy = write_policy(tmp_path, when)
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    text = str(info.value)
    assert message in text, text
    assert "policy.yaml:" in text and "tiers.levels[0].when" in text


# --------------------------------------------------------------------------
# Names the schema refuses
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml_text, path",
    [
        ("metrics:\n  {name}: {{sum: amount}}\ntiers:\n  levels: [{{id: all, default: true}}]\n", "metrics"),
        ("data:\n  customers: {{attributes: {{{name}: region}}}}\ntiers:\n  levels: [{{id: all, default: true}}]\n",
         "data.customers.attributes"),
        ("tiers:\n  levels: [{{id: {name}, default: true}}]\n", "tiers.levels[0].id"),
        ("name: {name}\ntiers:\n  levels: [{{id: all, default: true}}]\n", "name"),
    ],
    ids=["metric-name", "attribute-name", "tier-id", "policy-name"],
)
@pytest.mark.parametrize("name", [
    "x; DROP TABLE customers; --",
    'revenue"); DELETE FROM orders; --',
    "a'b",
])
def test_names_with_sql_are_rejected_by_the_schema(tmp_path, yaml_text, path, name):
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml_text.format(name=q(name)), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    text = str(info.value)
    assert text.startswith(f"{policy}:")
    if path in ("metrics", "data.customers.attributes"):  # a key: named at the key, with what a name may hold
        assert f"{path}.{name}: {name!r} is not a valid name: use letters A-Z and a-z, digits and _" in text, text
    elif path == "tiers.levels[0].id":  # said in words, not as the schema's regular expression
        assert (f"{path}: {json.dumps(name, ensure_ascii=False)} is not a valid id: use letters A-Z and a-z, digits, _, . "
                f"and -, starting with a letter, a digit or _ (not allowed: ") in text, text
    else:
        assert f"{path}: {json.dumps(name, ensure_ascii=False)} is not in the expected form" in text, text


def test_invalid_metric_name_is_reported_at_its_key(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("metrics:\n  good: {sum: amount}\n  \"x; DROP TABLE customers; --\": {sum: amount}\n"
                      "tiers:\n  levels: [{id: all, default: true}]\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    assert (f"{policy}:3:3: metrics.x; DROP TABLE customers; --: 'x; DROP TABLE customers; --' is not a valid name"
            in str(info.value)), str(info.value)


def test_schema_rejection_through_the_cli_is_clean(tmp_path, db, cli):
    digest = file_digest(db)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"metrics:\n  {q('x; DROP TABLE customers; --')}: {{sum: amount}}\n"
                      "tiers:\n  levels: [{id: all, default: true}]\n", encoding="utf-8")
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", D)
    assert result.exit_code == 1
    assert "'x; DROP TABLE customers; --' is not a valid name" in result.output
    assert "1 problem in the policy" in result.output and "Traceback" not in result.output
    assert file_digest(db) == digest
