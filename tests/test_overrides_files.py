"""Overrides files and tables that cannot be used as they are: each problem said once, as the overrides' own,
with its file and line and the fix; an overrides file that holds nothing means no overrides."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from crm_rules.engine.errors import DataError, UsageError
from crm_rules.engine.overrides import COMMAND_LINE, load_overrides, load_overrides_file, load_overrides_table
from crm_rules.engine.policy_model import load_policy
from conftest import AS_OF

TIERS = ["A", "B", "C"]
HEADER = "customer,tier,reason,author\n"


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def run(cli, db, overrides, *extra):
    """apply --dry-run with the overrides file; the result of the CLI."""
    return cli("apply", "--db", db, "--policy", "base", "--as-of", AS_OF, "--dry-run", "--overrides", overrides, *extra)


def explained(cli, db, overrides, customer="C000001"):
    result = cli("explain", customer, "--db", db, "--policy", "base", "--as-of", AS_OF, "--overrides", overrides, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def runs(db) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'crm_runs'").fetchone():
            return []
        return conn.execute("SELECT run_id, status FROM crm_runs ORDER BY run_id").fetchall()
    finally:
        conn.close()


# --- 1. CSV rows with more or fewer fields than the header ---------------------------------------------


def test_a_csv_row_with_an_unquoted_comma_is_an_error_not_a_lost_author(tmp_path, demo_db, cli):
    path = write(tmp_path, "ovcomma.csv", HEADER + "C000001,B,Under renegotiation, signed by CEO,y\n")
    before = runs(demo_db)
    result = cli("apply", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, "--overrides", path)
    assert result.exit_code == 1
    assert f"{path}:2: expected 4 fields as in the header (customer, tier, reason, author), found 5" in result.output
    assert "double quotes" in result.output and '"Under renegotiation, signed by CEO"' in result.output
    assert [r for r in runs(demo_db) if r not in before and r[1] == "succeeded"] == []  # nothing written


def test_a_csv_row_with_fewer_fields_than_the_header_is_an_error(tmp_path, demo_db, cli):
    path = write(tmp_path, "short.csv", HEADER + "C000001,B,renegotiation,Sarah\nC000002,B\n")
    result = run(cli, demo_db, path)
    assert result.exit_code == 1
    assert f"{path}:3: expected 4 fields as in the header (customer, tier, reason, author), found 2" in result.output
    assert "reason is required" not in result.output  # the row's fields are not guessed at


def test_a_quoted_comma_keeps_the_author(tmp_path, demo_db, cli):
    path = write(tmp_path, "ok.csv", HEADER + 'C000001,B,"Under renegotiation, signed by CEO",李经理\n')
    override = explained(cli, demo_db, path)["override"]
    assert override["reason"] == "Under renegotiation, signed by CEO" and override["author"] == "李经理"


def test_a_multi_line_csv_record_is_named_by_its_first_line(tmp_path):
    path = write(tmp_path, "o.csv", HEADER + 'C1,A,"two\nlines",ops\nC2,AA,r,ops\n')
    with pytest.raises(DataError) as info:
        load_overrides_file(path, TIERS)
    assert f"{path}:4: unknown tier 'AA'" in str(info.value)
    assert [o.where for o in load_overrides_file(write(tmp_path, "p.csv", HEADER + 'C1,A,"two\nlines",ops\nC2,B,r,ops\n'),
                                                 TIERS)] == [f"{tmp_path / 'p.csv'}:2", f"{tmp_path / 'p.csv'}:4"]


def test_blank_rows_and_a_sheets_empty_rows_are_skipped(tmp_path):
    path = write(tmp_path, "o.csv", HEADER + "\nC1,A,r,ops\n,,,\n\r\nC2,B,r,ops\n")
    assert [(o.customer, o.where) for o in load_overrides_file(path, TIERS)] == [("C1", f"{path}:3"), ("C2", f"{path}:6")]


def test_a_semicolon_separated_csv_is_read(tmp_path):
    path = write(tmp_path, "o.csv", "customer;tier;reason;author\nC1;A;partner, since 2020;ops\n")
    assert [(o.customer, o.reason) for o in load_overrides_file(path, TIERS)] == [("C1", "partner, since 2020")]


def test_a_european_excel_overrides_file_keeps_its_decimal_commas_as_written(tmp_path):
    """Overrides have no number column: a decimal comma in a reason is text, and ids are never read as numbers."""
    path = write(tmp_path, "o.csv", "customer;tier;reason;author;expires\n"
                                    "0012;A;Rabatt 12,5 %, Umsatz 1.234,56;Müller;2027-01-31\n")
    [override] = load_overrides_file(path, TIERS)
    assert (override.customer, override.reason, override.expires) == ("0012", "Rabatt 12,5 %, Umsatz 1.234,56",
                                                                       "2027-01-31")


@pytest.mark.parametrize("text, message", [
    (HEADER + 'C1,A,"never closed,ops\nC2,A,r,ops\n', ":2: unclosed quote starting here: 'C1,A,\"never closed,ops'"),
    (HEADER + 'C1,A,"partner" since 2020,ops\n', ":2: text after the closing quote of a quoted value"),
])
def test_broken_quotes_are_errors_with_their_line(tmp_path, demo_db, cli, text, message):
    path = write(tmp_path, "q.csv", text)
    result = run(cli, demo_db, path)
    assert result.exit_code == 1
    assert "the overrides file cannot be read" in result.output and f"{path}{message}" in result.output
    assert "hint:" in result.output


# --- 2. a missing file: whose mistake, and relative to what ----------------------------------------------


def test_a_missing_file_given_on_the_command_line_is_a_usage_error(tmp_path, demo_db, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(cli, demo_db, "nope.csv")
    assert result.exit_code == 2
    assert "overrides file nope.csv not found" in result.output
    assert f"relative to the current directory ({tmp_path})" in result.output
    with pytest.raises(UsageError) as info:
        load_overrides_file(tmp_path / "nope.yaml", TIERS, named_in=COMMAND_LINE)
    assert "--overrides" in info.value.hint and "policy" not in info.value.hint


def test_a_missing_file_named_in_a_policy_is_the_policys_problem(tmp_path, demo_db, cli):
    policy = write(tmp_path, "p.yaml", "extends: base\noverrides: {file: ../missing.yaml}\n")
    loaded = load_policy(policy)
    with pytest.raises(DataError) as info:  # DataError: exit 1, and apply records the failed run
        load_overrides(sqlite3.connect(":memory:"), "main", loaded, None)
    assert str(info.value.message).startswith(f"the overrides file {tmp_path / '..' / 'missing.yaml'} named in the policy "
                                              f"({policy}:2:19: overrides.file) was not found")
    assert "relative to the policy file" in info.value.hint and "current directory" not in info.value.hint
    result = cli("apply", "--db", demo_db, "--policy", policy, "--as-of", AS_OF, "--dry-run")
    assert result.exit_code == 1 and "missing.yaml" in result.output and "relative to the policy file" in result.output
    cli("apply", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, ok=True)
    failed = cli("apply", "--db", demo_db, "--policy", policy, "--as-of", AS_OF)
    assert failed.exit_code == 1 and runs(demo_db) == [(1, "succeeded"), (2, "failed")]  # recorded like other data errors


def test_load_overrides_takes_the_command_line_file_first_then_the_policys_source(tmp_path):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE manual_grades (customer, tier, reason, author)")
    conn.execute("INSERT INTO manual_grades VALUES ('C9', 'B', 'r', 'ops')")
    plain = load_policy(write(tmp_path, "plain.yaml", "extends: base\n"))
    table = load_policy(write(tmp_path, "table.yaml", "extends: base\noverrides: {table: manual_grades}\n"))
    given = write(tmp_path, "o.yaml", "- {customer: C1, tier: A, reason: r, author: ops}\n")
    assert load_overrides(conn, "main", plain, None) is None
    assert [o.customer for o in load_overrides(conn, "main", table, None)] == ["C9"]
    assert [o.customer for o in load_overrides(conn, "main", table, given)] == ["C1"]
    with pytest.raises(UsageError):
        load_overrides(conn, "main", table, tmp_path / "nope.yaml")


def test_a_directory_or_a_database_is_no_overrides_file(tmp_path, demo_db, cli):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        load_overrides_file(tmp_path / "dir.yaml", TIERS, named_in=COMMAND_LINE)
    result = run(cli, demo_db, write(tmp_path, "grades.yaml", demo_db.read_bytes()[:4096]))
    assert result.exit_code == 1
    assert "is a SQLite database, not a YAML or CSV file" in result.output and "overrides: {table: NAME}" in result.output
    assert "--db and --policy" not in result.output


# --- 3. empty, not a list, bad YAML, not UTF-8: the overrides file's problems, not the policy's ----------


@pytest.mark.parametrize("name, content", [
    ("empty.yaml", ""), ("blank.yaml", "\n  \n"), ("comments.yaml", "# no overrides this quarter\n"),
    ("null.yaml", "~\n"), ("list.yaml", "[]\n"), ("empty.csv", ""), ("header.csv", HEADER), ("blank.csv", HEADER + "\n,,,\n"),
])
def test_an_overrides_file_that_holds_nothing_means_no_overrides(tmp_path, demo_db, cli, name, content):
    path = write(tmp_path, name, content)
    assert load_overrides_file(path, TIERS) == []
    result = run(cli, demo_db, path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"]["overrides"] == 0


@pytest.mark.parametrize("content, message, hint", [
    ("customer: C000001\ntier: A\n", "{path}:1:1 holds a mapping, not a list of overrides", "write one override per item"),
    ("C000001\n", "{path}:1:1 holds the single value 'C000001', not a list of overrides", "write one override per item"),
    ("- {customer: C000001, tier: A\n", "the overrides file cannot be read: {path}:2:1: invalid YAML", "not closed"),
    ("- customer: C000001\n\ttier: A\n", "the overrides file cannot be read: {path}:2:1: invalid YAML", "tabs"),
    ("- {customer: C1, customer: C2, tier: A, reason: r, author: a}\n", "{path}:1:18: [0].customer: duplicate key", None),
    ("- !!python/object {customer: C1}\n", "{path}:1:3: [0]: tag", "overrides files hold plain data only"),
])
def test_a_broken_yaml_file_is_said_to_be_the_overrides_file(tmp_path, demo_db, cli, content, message, hint):
    path = write(tmp_path, "o.yaml", content)
    result = run(cli, demo_db, path)
    assert result.exit_code == 1
    assert message.format(path=path) in result.output
    assert "in the policy" not in result.output and "shipped policy" not in result.output
    if hint:
        assert hint in result.output.split("hint:")[1]


def test_a_csv_file_in_gbk_names_its_line_and_column(tmp_path, demo_db, cli):
    path = write(tmp_path, "gbk.csv", HEADER.encode() + "C000001,B,战略合作,李经理\n".encode("gbk"))
    result = run(cli, demo_db, path)
    assert result.exit_code == 1
    assert re.search(rf"the overrides file cannot be read: {re.escape(str(path))}:2: not valid UTF-8 \(byte 0x.. at position \d+ of the line\)",
                     result.output)
    assert "CSV UTF-8" in result.output and "GBK" in result.output and "in the policy" not in result.output


def test_a_yaml_file_in_utf16_is_named_as_such(tmp_path, demo_db, cli):
    path = write(tmp_path, "o.yaml", "- {customer: C000001, tier: A, reason: r, author: 李经理}\n".encode("utf-16"))
    result = run(cli, demo_db, path)
    assert result.exit_code == 1 and "is UTF-16 text" in result.output and "UTF-8" in result.output


def test_yaml_items_that_are_not_overrides_are_positioned_and_all_listed(tmp_path):
    path = write(tmp_path, "o.yaml", "- C000001\n- {customer: C2, tier: A, reason: r, author: ops}\n- [a, b]\n"
                                     "- {customer: 0012, tier: A, reason: yes, author: ops}\n"
                                     "- {customer: C3, tier: A, reason: [a, b], author: ops}\n")
    with pytest.raises(DataError) as info:
        load_overrides_file(path, TIERS)
    text = str(info.value)
    assert f"{path}:1:3: item 1 is not a mapping" in text and f"{path}:3:3: item 3 is not a mapping" in text
    assert f"{path}:4:14: customer: YAML reads 0012 as 10; quote it: '0012'" in text  # not silently customer '10'
    assert f"{path}:4:37: reason: YAML reads yes as true; quote it: 'yes'" in text
    assert f"{path}:5: reason is a list, not text" in text
    assert "(5 problems)" in text


# --- 4. a wrong column said once; many bad rows capped -------------------------------------------------


def test_a_wrong_column_is_said_once_not_per_row(tmp_path, demo_db, cli):
    path = write(tmp_path, "note.csv", "customer,tier,note\n" + "".join(f"C{i:06d},A,n\n" for i in range(1, 502)))
    result = run(cli, demo_db, path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) <= 6, result.output
    assert f"{path}:1: unknown column 'note'" in result.output
    assert f"{path}:1: no column 'reason'" in result.output and f"{path}:1: no column 'author'" in result.output
    assert "the columns are customer, tier, floor, ceiling, reason, author, expires" in result.output


def test_misspelt_columns_get_a_did_you_mean(tmp_path):
    path = write(tmp_path, "o.csv", "Customer,tier,reasons,author,expiry\nC1,A,r,ops,2026-12-31\n")
    with pytest.raises(DataError) as info:
        load_overrides_file(path, TIERS)
    text = str(info.value)
    assert "unknown column 'Customer'; did you mean 'customer'?" in text
    assert "unknown column 'reasons'; did you mean 'reason'?" in text
    assert "unknown column 'expiry'; did you mean 'expires'?" in text
    assert "no column 'customer'" not in text and "no column 'reason'" not in text  # said with the unknown column
    assert text.count(f"{path}:") == 3


def test_a_header_naming_a_column_twice_or_a_value_without_a_column_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"o\.csv:1: column 'tier' appears twice \(columns 2 and 3\)"):
        load_overrides_file(write(tmp_path, "o.csv", "customer,tier,tier,reason,author\nC1,A,B,r,ops\n"), TIERS)
    with pytest.raises(DataError, match=r"p\.csv:1: column 5 has no name, but rows have values in it"):
        load_overrides_file(write(tmp_path, "p.csv", "customer,tier,reason,author,\nC1,A,r,ops,x\n"), TIERS)
    # an unnamed or unknown column that is empty in every row is ignored, as before
    assert len(load_overrides_file(write(tmp_path, "q.csv", "customer,tier,reason,author,,note\nC1,A,r,ops,,\n"), TIERS)) == 1


def test_many_bad_rows_show_a_few_examples_then_how_many_more(tmp_path, demo_db, cli):
    path = write(tmp_path, "o.csv", HEADER + "".join(f"C{i:06d},AA,partner,ops\n" for i in range(1, 502))
                 + "C000600,B,r,\n")
    result = run(cli, demo_db, path)
    assert result.exit_code == 1
    assert "(704 problems)" in result.output  # the demo has 300 customers: C000301 to C000501 and C000600 are not
    assert f"{path}:2: unknown tier 'AA'; did you mean 'A'?" in result.output and f"{path}:4: unknown tier" in result.output
    assert f"{path}:5: unknown tier" not in result.output
    assert "... and 498 more: unknown tier 'AA' (501 in all)" in result.output
    assert f"{path}:503: author is required" in result.output  # another kind of problem is not hidden by the first
    assert f"{path}:302: customer 'C000301' is not in the customers table" in result.output
    assert "... and 199 more: a customer who is not in the customers table (202 in all)" in result.output
    assert len(result.output.strip().splitlines()) <= 12


def test_many_duplicate_customers_are_capped_too(tmp_path):
    path = write(tmp_path, "o.yaml", "".join(f"- {{customer: C1, tier: A, reason: r{i}, author: ops}}\n" for i in range(10)))
    with pytest.raises(DataError) as info:
        load_overrides_file(path, TIERS)
    assert f"{path}:2: customer 'C1' already has an override at {path}:1" in str(info.value)
    assert "... and 6 more: a customer with two overrides (9 in all)" in str(info.value)


# --- tables ------------------------------------------------------------------------------------------


def table_db(tmp_path, ddl: str, rows: list[tuple]) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute(ddl)
    name = ddl.split()[2]
    for row in rows:
        conn.execute(f"INSERT INTO {name} VALUES ({', '.join('?' * len(row))})", row)
    return conn


def test_a_table_with_a_wrong_column_is_said_once(tmp_path):
    conn = table_db(tmp_path, "CREATE TABLE manual_grades (customer TEXT, tier TEXT, note TEXT, author TEXT)",
                    [(f"C{i}", "A", "n", "ops") for i in range(200)])
    with pytest.raises(DataError) as info:
        load_overrides_table(conn, "main", "manual_grades", TIERS)
    text = str(info.value)
    assert "table 'manual_grades': unknown column 'note'" in text and "table 'manual_grades': no column 'reason'" in text
    assert text.count("table 'manual_grades'") == 3  # the cannot-be-used line and one line per column problem


def test_a_view_or_a_table_without_rowid_can_hold_overrides(tmp_path):
    conn = table_db(tmp_path, "CREATE TABLE grades (customer TEXT PRIMARY KEY, tier TEXT, reason TEXT, author TEXT) "
                              "WITHOUT ROWID", [("C1", "A", "r", "ops"), ("C2", "AA", "r", "ops")])
    conn.execute("CREATE VIEW grades_view AS SELECT * FROM grades WHERE customer = 'C1'")
    assert [o.where for o in load_overrides_table(conn, "main", "grades_view", TIERS)] == ["table 'grades_view', row 1"]
    with pytest.raises(DataError, match=r"table 'grades', row 2: unknown tier 'AA'"):  # not 'no such column: rowid'
        load_overrides_table(conn, "main", "grades", TIERS)


def test_a_table_named_in_another_case_is_that_table_as_in_sqlite(tmp_path):
    conn = table_db(tmp_path, "CREATE TABLE Manual_Grades (customer, tier, reason, author)",
                    [("C1", "A", "partner", "ops")])
    assert [o.customer for o in load_overrides_table(conn, "main", "manual_grades", TIERS)] == ["C1"]
    with pytest.raises(DataError, match="the overrides table 'manual_grade' does not exist; did you mean 'Manual_Grades'"):
        load_overrides_table(conn, "main", "manual_grade", TIERS)


def test_table_values_that_are_numbers_or_blank(tmp_path):
    conn = table_db(tmp_path, "CREATE TABLE g (customer, tier, reason, author, expires)",
                    [(1001, "A", "r", "ops", None), ("C2", "B", "  ", "ops", None)])
    with pytest.raises(DataError) as info:
        load_overrides_table(conn, "main", "g", TIERS)
    assert "table 'g', row 2: reason is required" in str(info.value) and "row 1" not in str(info.value)


def test_yaml_null_words_are_missing_values_not_misread_words(tmp_path):
    path = write(tmp_path, "o.yaml", "- {customer: C1, tier: A, reason: r, author: ops, expires: ~}\n"
                                     "- {customer: C2, tier: B, reason: r, author: ops, expires: }\n"
                                     "- {customer: C3, tier: B, reason: r, author: ops, expires: null}\n")
    assert [(o.customer, o.expires) for o in load_overrides_file(path, TIERS)] == [("C1", None), ("C2", None), ("C3", None)]


def test_an_expired_override_from_a_good_file_still_works(tmp_path):
    path = write(tmp_path, "o.csv", "customer,floor,reason,author,expires\nC1,B,promo,王经理,2026-01-31\n")
    (o,) = load_overrides_file(path, TIERS)
    assert (o.customer, o.kind, o.tier, o.author, o.expires, o.where) == ("C1", "floor", "B", "王经理", "2026-01-31",
                                                                         f"{path}:2")


def test_a_nul_in_an_overrides_csv_is_refused_with_its_line_and_column(tmp_path):
    path = write(tmp_path, "o.csv", "customer,tier,reason,author\nC1,A,partner\x00,ops\n")
    with pytest.raises(DataError) as caught:
        load_overrides_file(path, TIERS)
    assert f"{path}:2: column 3 ('reason') holds a NUL character (byte 0x00)" in caught.value.message
