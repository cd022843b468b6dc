"""Source rows as messy ERP exports store them: numbers stored as text, dates with a time-zone offset, empty
text and zero dates for "no date".  Each is refused by the source's row check, with its rows named and counted
and a fix that fits, and a run writes nothing."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import AS_OF, file_digest
from small_db import rows
from crm_rules.engine.errors import DataError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

BIG_ORDERS = """
metrics:
  big_orders_12m: {count: orders, where: "amount >= 10000", window: 12 months}
tiers:
  levels:
    - {id: A, when: "big_orders_12m >= 1"}
    - {id: B, default: true}
"""

TEXT = "is text, not a number (a number stored as text compares as text: '5000' > '1000000')"


def sql(db, script: str) -> None:
    conn = sqlite3.connect(db)
    conn.executescript(script)
    conn.commit()
    conn.close()


def redeclare(db, table: str, **types: str) -> None:
    """Table ``table`` made again with the columns ``types`` declared as given (values kept as the new types
    store them: a column declared TEXT turns every number into text, as ``sqlite3 .import`` does)."""
    conn = sqlite3.connect(db)
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    columns = ", ".join(f"{name} {types.get(name, kind)}{' PRIMARY KEY' if pk else ''}" for _, name, kind, _, _, pk in info)
    conn.executescript(f"CREATE TABLE new_t ({columns}); INSERT INTO new_t SELECT * FROM {table}; "
                       f"DROP TABLE {table}; ALTER TABLE new_t RENAME TO {table};")
    conn.commit()
    conn.close()


def refused(db, policy) -> DataError:
    digest = file_digest(db)
    with pytest.raises(DataError) as info:
        apply_policy(db, policy, AS_OF)
    assert file_digest(db) == digest, "a run stopped by its data writes nothing"
    return info.value


def problem_lines(error: DataError) -> list[str]:
    return [line[len("  - "):] for line in str(error).splitlines() if line.startswith("  - ")]


def policy_at(tmp_path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


# --- 1. numbers stored as text -----------------------------------------------------------------------


def test_order_amounts_declared_text_are_refused_not_compared_as_text(tmp_path, demo_db):
    """'1819.16' >= 10000 is true in SQLite (text sorts above numbers): the count of big orders was every order."""
    redeclare(demo_db, "orders", amount="TEXT")
    total, = rows(demo_db, "SELECT count(*) FROM orders")[0]
    first = rows(demo_db, "SELECT id, customer_id, amount FROM orders ORDER BY id LIMIT 3")
    assert all(isinstance(amount, str) for _, _, amount in first)
    error = refused(demo_db, policy_at(tmp_path, BIG_ORDERS))
    assert problem_lines(error) == [
        f"table 'orders', column 'amount': {amount!r} (customer {cid}) {TEXT} (row id {i})" for i, cid, amount in first] + [
        f"table 'orders', column 'amount': ... and {total - 3:,} more ({total:,} rows in all); list them with: "
        "SELECT * FROM \"orders\" AS r WHERE r.\"amount\" >= ''"]
    assert error.hint.startswith("store numbers as numbers, not text: orders.amount is declared TEXT, which stores every "
                                 "number as text: import it again with crm-rules import --replace, which stores numbers "
                                 "as numbers (--type amount=float if it takes a column for text; float also reads "
                                 "amounts written ¥1,234.50)")


def test_receivables_amounts_declared_text_are_refused_under_the_base_policy(demo_db):
    """collection_rate's min(paid, amount) and on_time_rate's paid >= amount compared text."""
    redeclare(demo_db, "receivables", amount="TEXT", paid_amount="TEXT")
    error = refused(demo_db, load_policy("base"))
    lines = problem_lines(error)
    assert {line.split(":")[0] for line in lines} == {"table 'receivables', column 'amount'",
                                                      "table 'receivables', column 'paid_amount'"}
    assert all(TEXT in line for line in lines if " more (" not in line)
    assert "receivables.amount, receivables.paid_amount are declared TEXT" in error.hint
    assert "--type amount=float --type paid_amount=float" in error.hint


def test_a_few_numbers_stored_as_text_in_an_untyped_column_get_an_update_that_fixes_them(tmp_path, demo_db):
    redeclare(demo_db, "orders", amount="")
    sql(demo_db, "UPDATE orders SET amount = CAST(amount AS TEXT) WHERE id IN (5, 6)")
    error = refused(demo_db, policy_at(tmp_path, BIG_ORDERS))
    (cid5, a5), (cid6, a6) = rows(demo_db, "SELECT customer_id, amount FROM orders WHERE id IN (5, 6) ORDER BY id")
    assert problem_lines(error) == [f"table 'orders', column 'amount': {a5!r} (customer {cid5}) {TEXT} (row id 5)",
                                    f"table 'orders', column 'amount': {a6!r} (customer {cid6}) {TEXT} (row id 6)"]
    update = error.hint.split("convert orders.amount in place: ", 1)[1].split(" (once", 1)[0]
    assert update == "UPDATE \"orders\" SET \"amount\" = CAST(\"amount\" AS REAL) WHERE typeof(\"amount\") = 'text'"
    sql(demo_db, update)
    apply_policy(demo_db, policy_at(tmp_path, BIG_ORDERS), AS_OF)  # the fix the hint gives is enough


def test_text_that_is_no_number_keeps_its_message(tmp_path, demo_db):
    sql(demo_db, "UPDATE orders SET amount = 'n/a' WHERE id = 7; UPDATE orders SET amount = x'31' WHERE id = 8")
    lines = problem_lines(refused(demo_db, policy_at(tmp_path, BIG_ORDERS)))
    assert [line.split(") ", 1)[1] for line in lines] == ["is not a number (row id 7)", "is not a number (row id 8)"]


def test_a_number_column_the_policy_does_not_read_is_not_checked(tmp_path, demo_db):
    redeclare(demo_db, "orders", cost="TEXT")
    apply_policy(demo_db, policy_at(tmp_path, BIG_ORDERS), AS_OF)


def test_validate_db_reports_number_columns_declared_text(tmp_path, demo_db, cli):
    redeclare(demo_db, "receivables", amount="TEXT", paid_amount="TEXT")
    result = cli("validate", "base", "--db", demo_db)
    assert result.exit_code != 0
    assert ("table 'receivables', column 'amount' is declared TEXT, which stores every number as text (a number "
            "stored as text compares as text: '5000' > '1000000'); a run refuses its rows") in result.output
    assert "table 'receivables', column 'paid_amount' is declared TEXT" in result.output
    assert "--type amount=float --type paid_amount=float" in result.output
    (tmp_path / "orders_only.yaml").write_text(BIG_ORDERS, encoding="utf-8")
    assert cli("validate", tmp_path / "orders_only.yaml", "--db", demo_db).exit_code == 0  # reads no receivables


# --- 2. time-zone offsets ----------------------------------------------------------------------------

OFFSET = "has a time-zone offset, which is not supported"


def test_every_date_with_a_time_zone_offset_is_refused_whatever_its_utc_day(demo_db):
    """'...T10:00:00+08:00' was accepted (the same day in UTC) and counted on its UTC day by date(), while
    '...T07:00:00+08:00' was refused as "not a YYYY-MM-DD date" (the day before in UTC)."""
    sql(demo_db, "UPDATE orders SET order_date = substr(order_date, 1, 10) || 'T10:00:00+08:00' WHERE id = 1;"
                 "UPDATE orders SET order_date = substr(order_date, 1, 10) || 'T07:00:00+08:00' WHERE id = 2;"
                 "UPDATE orders SET order_date = substr(order_date, 1, 10) || ' 23:00:00.5-05:00' WHERE id = 3;"
                 "UPDATE orders SET order_date = '03/05/2026' WHERE id = 4;"
                 "UPDATE orders SET order_date = substr(order_date, 1, 10) || 'T07:00:00Z' WHERE id = 5;")
    error = refused(demo_db, load_policy("base"))
    found = rows(demo_db, "SELECT id, customer_id, order_date FROM orders WHERE id <= 4 ORDER BY id")
    assert problem_lines(error) == [
        f"table 'orders', column 'order_date': {d!r} (customer {cid}) {OFFSET} (row id {i})" for i, cid, d in found[:3]] + [
        f"table 'orders', column 'order_date': '03/05/2026' (customer {found[3][1]}) is not a YYYY-MM-DD date (row id 4)"]
    assert error.hint.startswith("time-zone offsets are not supported: store the local date/time without the offset "
                                 "('2026-06-01T07:00:00', not '2026-06-01T07:00:00+08:00'); store dates as text 'YYYY-MM-DD'")


def test_utc_times_written_with_z_are_accepted_and_counted_on_their_day(tmp_path, demo_db):
    sql(demo_db, "UPDATE orders SET order_date = order_date || 'T23:30:00Z' WHERE id % 2 = 0")
    plain = policy_at(tmp_path, BIG_ORDERS)
    apply_policy(demo_db, plain, AS_OF)  # the 'Z' of UTC is no offset: date() and text comparisons agree on the day


def test_an_offset_in_a_date_attribute_is_refused_too(demo_db):
    sql(demo_db, "UPDATE customers SET created_at = substr(created_at, 1, 10) || 'T12:00:00-05:00' WHERE rowid = 1")
    error = refused(demo_db, load_policy("base"))
    (cid, value), = rows(demo_db, "SELECT id, created_at FROM customers WHERE rowid = 1")
    assert problem_lines(error) == [
        f"table 'customers', column 'created_at' (attribute 'since'): {value!r} (customer {cid}) {OFFSET}"]
    assert error.hint.startswith("time-zone offsets are not supported")


# --- 3. empty text and zero dates; a row without a customer ----------------------------------------------

EMPTY = "is empty text or a zero date, not a date (NULL is no date)"


def test_empty_and_zero_paid_dates_are_refused_with_the_update_that_makes_them_null(demo_db):
    sql(demo_db, "UPDATE receivables SET paid_date = '' WHERE paid_date IS NULL;"
                 "UPDATE receivables SET paid_date = '0000-00-00' WHERE id = (SELECT min(id) FROM receivables)")
    error = refused(demo_db, load_policy("base"))
    lines = problem_lines(error)
    assert lines[0].startswith("table 'receivables', column 'paid_date': '0000-00-00' (customer ")
    assert all(EMPTY in line for line in lines if " more (" not in line)
    update = error.hint.split("e.g. ", 1)[1].split("; ", 1)[0]
    assert update == ("UPDATE \"receivables\" SET \"paid_date\" = NULL WHERE trim(\"paid_date\") IN "
                      "('', '0000-00-00', '0000-00-00 00:00:00')")
    assert error.hint.startswith("store NULL for no date (an unpaid invoice's paid date, an open-ended contract's end)")
    sql(demo_db, update)
    apply_policy(demo_db, load_policy("base"), AS_OF)  # NULL is unpaid: the update is the whole fix


def test_an_empty_contract_end_is_refused_and_an_empty_required_date_asks_for_the_date(demo_db):
    sql(demo_db, "UPDATE contracts SET end_date = '' WHERE id = 1; UPDATE orders SET order_date = '' WHERE id = 7")
    error = refused(demo_db, load_policy("base"))
    (cid_c,), = rows(demo_db, "SELECT customer_id FROM contracts WHERE id = 1")
    (cid_o,), = rows(demo_db, "SELECT customer_id FROM orders WHERE id = 7")
    assert problem_lines(error) == [f"table 'contracts', column 'end_date': '' (customer {cid_c}) {EMPTY} (row id 1)",
                                    f"table 'orders', column 'order_date': '' (customer {cid_o}) {EMPTY} (row id 7)"]
    assert "UPDATE \"contracts\" SET \"end_date\" = NULL WHERE" in error.hint
    assert "every row of 'orders' needs its 'order_date': store the date, or remove those rows" in error.hint


def test_a_row_without_a_customer_gets_its_own_hint(demo_db):
    sql(demo_db, "UPDATE orders SET customer_id = NULL WHERE id = 8")
    error = refused(demo_db, load_policy("base"))
    assert problem_lines(error) == ["table 'orders', column 'customer_id': empty (NULL) in row id 8; "
                                    "every row needs a customer id"]
    assert error.hint == ("give every row of 'orders' its customer id, or remove the rows without one "
                          "(DELETE FROM \"orders\" WHERE \"customer_id\" IS NULL); fix or remove these rows, or re-import them")
    assert "numbers as numbers" not in error.hint
