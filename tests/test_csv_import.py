"""CSV import: faithful values, precise errors, and an untouched database on failure."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_rules.engine import csv_import, csv_reader
from crm_rules.engine.csv_import import import_csv
from crm_rules.engine.errors import CrmRulesError, DataError, UsageError

BOM = b"\xef\xbb\xbf"


def write_csv(path: Path, text: str, *, bom: bool = False, encoding: str = "utf-8") -> Path:
    path.write_bytes((BOM if bom else b"") + text.encode(encoding))
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def declared_types(db: Path, table: str) -> dict[str, str]:
    return dict(rows(db, f"SELECT name, type FROM pragma_table_info('{table}')"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database that already holds data, so 'unchanged' means something."""
    path = tmp_path / "crm.db"
    source = write_csv(tmp_path / "existing.csv", "id,name,amount\nC1,Acme,10.5\nC2,上海华东贸易有限公司,20\n")
    import_csv(path, source, "customers")
    return path


def fails_unchanged(db: Path, error: type[CrmRulesError], call: Callable[[], object]) -> str:
    """Run an import that must fail and prove it left the database byte-for-byte as it was."""
    before = db.read_bytes() if db.exists() else None
    with pytest.raises(error) as caught:
        call()
    after = db.read_bytes() if db.exists() else None
    assert after == before
    assert not Path(f"{db}-journal").exists()
    return str(caught.value)


# --- encodings -------------------------------------------------------------------


@pytest.mark.parametrize("bom", [False, True])
def test_utf8_with_and_without_bom(tmp_path: Path, bom: bool) -> None:
    source = write_csv(tmp_path / "c.csv", "name,city\n华东贸易,上海\nAcme,Berlin\n", bom=bom)
    assert import_csv(tmp_path / "t.db", source, "t") == 2
    assert list(declared_types(tmp_path / "t.db", "t")) == ["name", "city"]
    assert rows(tmp_path / "t.db", "SELECT name, city FROM t") == [("华东贸易", "上海"), ("Acme", "Berlin")]


def test_crlf_and_quoted_newlines(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", 'id,note\r\n1,"第一行\r\n第二行"\r\n2,"a, ""quoted"" b"\r\n')
    assert import_csv(tmp_path / "t.db", source, "t") == 2
    assert rows(tmp_path / "t.db", "SELECT note FROM t") == [("第一行\r\n第二行",), ('a, "quoted" b',)]


def test_invalid_utf8_names_file_and_line(tmp_path: Path, db: Path) -> None:
    source = tmp_path / "gbk.csv"
    source.write_bytes("id,name\n1,ok\n2,".encode() + "华东贸易".encode("gbk") + b"\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "other"))
    assert f"{source}:3: not valid UTF-8" in message
    assert "re-save" in message and "UTF-8" in message


@pytest.mark.parametrize(
    ("content", "expected", "advice"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\xc7" * 40, "is an Excel workbook (.xlsx) or another ZIP archive", "CSV UTF-8"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "is an Excel 97-2003 workbook (.xls)", "CSV UTF-8"),
        ("id\tname\n1\tAcme\n".encode("utf-16"), "is UTF-16 text", "CSV UTF-8"),
    ],
    ids=["xlsx", "xls", "utf-16"],
)
def test_workbooks_and_utf16_are_named_not_called_bad_utf8(
    tmp_path: Path, db: Path, content: bytes, expected: str, advice: str
) -> None:
    source = tmp_path / "customers.csv"
    source.write_bytes(content)
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}: {expected}" in message and advice in message
    assert "UTF-8 (byte" not in message and "GBK" not in message


def test_a_damaged_database_is_named_not_a_traceback(tmp_path: Path, db: Path, monkeypatch) -> None:
    """SQLite finds damaged pages only when it reads them: an import that meets one says which file is damaged."""
    def meets_damage(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(csv_import, "_write_in_transaction", meets_damage)
    source = write_csv(tmp_path / "more.csv", "id,name,amount\nC3,Beta,1\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "customers", mode="append"))
    assert message.startswith(f"{db}: the database is damaged (database disk image is malformed)\n  hint: check it with")


def test_database_given_as_the_csv_file(tmp_path: Path, db: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(db.read_bytes())
    message = fails_unchanged(db, DataError, lambda: import_csv(db, other, "t"))
    assert f"{other}: is a SQLite database, not a CSV file" in message
    assert "the CSV file is the FILE argument and --db names the database" in message


@pytest.mark.parametrize("ending", ["\r", "\r\n", "\n"])
def test_old_mac_and_other_line_endings(tmp_path: Path, ending: str) -> None:
    """Old Mac exports end lines in a lone CR; csv reads them as it reads a file opened with newline=''."""
    text = ending.join(["id,note", "1,plain", '2,"two' + ending + 'lines"', "3,last"]) + ending
    source = write_csv(tmp_path / "c.csv", text)
    assert import_csv(tmp_path / "t.db", source, "t") == 3
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [(1, "plain"), (2, "two" + ending + "lines"), (3, "last")]


def test_cr_only_file_errors_name_physical_lines(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", 'a,b\r1,"x\ry"\r2\r')
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:4: expected 2 fields as in the header, found 1" in message
    assert "universal-newline" not in message


# --- quoting and delimiters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('id,note\n1,"unclosed\n2,x\n3,y\n', 2),
        ('id,note\n1,"unclosed\n2,x\n3,y', 2),
        ('id,a,b\n1,"two\nlines","unclosed\n2,x,y\n', 3),
        ('id,note\n1,ok\n\n2,"unclosed', 4),
    ],
)
def test_unclosed_quote_names_the_line_it_opens_on(tmp_path: Path, db: Path, text: str, line: int) -> None:
    """Lenient csv reads the rest of the file into the value and the import 'succeeds' with one row."""
    source = write_csv(tmp_path / "c.csv", text)
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:{line}: unclosed quote starting here:" in message
    assert "run to the end of the file" in message and "close the quote" in message


def test_text_after_a_closing_quote(tmp_path: Path, db: Path) -> None:
    """Lenient csv would silently store 'xy'."""
    source = write_csv(tmp_path / "c.csv", 'id,note\n1,ok\n2,"x"y\n3,z\n')
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:3: text after the closing quote of a quoted value: '2,\"x\"y'" in message
    assert "must be doubled" in message


def test_values_longer_than_csvs_default_limit(tmp_path: Path) -> None:
    note = "x" * 300_000
    source = write_csv(tmp_path / "c.csv", f'id,note\n1,"{note}"\n2,{note}\n')
    limit = csv.field_size_limit()
    assert import_csv(tmp_path / "t.db", source, "t") == 2
    assert rows(tmp_path / "t.db", "SELECT length(note) FROM t") == [(300_000,), (300_000,)]
    assert csv.field_size_limit() == limit  # the limit is process-wide: put back


def test_a_runaway_value_stops_at_the_limit(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_reader, "FIELD_LIMIT", 1_000)
    source = write_csv(tmp_path / "c.csv", 'id,note\n1,ok\n2,"runaway\n' + "3,more\n" * 500)
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:3: a value of the row starting here is longer than 1,000 characters" in message
    assert "unclosed quote" in message


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_files(tmp_path: Path, delimiter: str) -> None:
    """Excel writes ';' where the decimal separator is a comma, and tabs as 'Text (Tab delimited)'."""
    text = "id;name;amount\nC1;\"Acme; Ltd\";10.5\nC2;B, C;7\n".replace(";", delimiter)
    source = write_csv(tmp_path / "c.csv", text, bom=True)
    assert import_csv(tmp_path / "t.db", source, "t") == 2
    assert declared_types(tmp_path / "t.db", "t") == {"id": "TEXT", "name": "TEXT", "amount": "REAL"}
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [
        ("C1", f"Acme{delimiter} Ltd", 10.5),
        ("C2", "B, C", 7.0),
    ]


@pytest.mark.parametrize("header", ["a,b;c", '"x;y",z', "a,b\tc"])
def test_a_comma_in_the_header_keeps_commas(tmp_path: Path, header: str) -> None:
    source = write_csv(tmp_path / "c.csv", f"{header}\n1,2\n")
    assert import_csv(tmp_path / "t.db", source, "t") == 1
    assert len(declared_types(tmp_path / "t.db", "t")) == 2


def test_semicolon_file_with_wrong_field_count_says_how_it_was_read(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id;name\n1;Smith; Jones\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:2: expected 2 fields as in the header, found 3" in message
    assert "values containing semicolons must be in double quotes" in message
    assert "read as separated by semicolons" in message


def test_decimal_commas_are_reported_not_kept_as_text(tmp_path: Path, db: Path) -> None:
    """Stored as text, '10,5' would make every comparison in a policy quietly wrong; a comma-separated file is
    never read with decimal commas (only a ';'-separated one, below)."""
    source = write_csv(tmp_path / "c.csv", 'id,amount\nC1,"10,5"\nC2,7\nC3,"1.200,50"\n')
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:2: column 'amount': '10,5' is not a number (decimal comma or thousands separator)" in message
    assert f"{source}:4: column 'amount': '1.200,50' is not a number" in message
    assert "numbers need '.' as the decimal point" in message
    assert "--type amount=text" in message
    assert "expected 1 field" not in message and "semicolons" not in message


def test_a_column_of_only_decimal_commas_is_reported(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", 'id,amount\nC1,"10,5"\nC2,"3,25"\n')
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert "'10,5' is not a number" in message and "'3,25' is not a number" in message
    assert "if 'amount' should be text" in message


def test_decimal_commas_kept_as_text_when_asked(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id;amount\nC1;10,5\nC2;7\n")
    assert import_csv(tmp_path / "t.db", source, "t", types={"amount": "text"}) == 2
    assert rows(tmp_path / "t.db", "SELECT amount FROM t") == [("10,5",), ("7",)]


def test_forced_number_with_decimal_comma(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", 'id,amount\nC1,"10,5"\n')
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t", types={"amount": "float"}))
    assert "'10,5' is not a number (decimal comma or thousands separator)" in message
    assert "numbers need '.' as the decimal point" in message


# --- decimal commas in ';'-separated files ------------------------------------------------------


def test_a_semicolon_file_with_decimal_commas_is_read_as_numbers(tmp_path: Path) -> None:
    """European Excel: ';' between values, ',' before decimals, '.' between thousands."""
    db = tmp_path / "t.db"
    source = write_csv(tmp_path / "c.csv", "id;name;amount;rate;qty;code;note\n"
                                           "C01;Müller, Hans;1.234,56;12,5;1.000;007;12,5 %\n"
                                           "C02;\"Dupont; fils\";-99,00;3;2;012;a\n"
                                           "C03;上海华东;1.000.000,5;0,25;25.000;100;\n", bom=True)
    imported = csv_import.import_csv_file(db, source, "t")
    assert imported.rows == 3 and imported.decimal_comma == ("amount", "rate", "qty")
    assert declared_types(db, "t") == {"id": "TEXT", "name": "TEXT", "amount": "REAL", "rate": "REAL",
                                       "qty": "INTEGER", "code": "TEXT", "note": "TEXT"}
    # ids with leading zeros and text with commas are untouched; '1.000' in this file is a thousand, not 1.0
    assert rows(db, "SELECT * FROM t") == [
        ("C01", "Müller, Hans", 1234.56, 12.5, 1000, "007", "12,5 %"),
        ("C02", "Dupont; fils", -99.0, 3.0, 2, "012", "a"),
        ("C03", "上海华东", 1000000.5, 0.25, 25000, "100", None)]


@pytest.mark.parametrize("column", [
    "10,5\n12.5",  # a decimal point and a decimal comma: which one is meant is not told
    "10,5\n0012,5",  # leading zeros: an id or a code, not a number
    "10,5\n1.234.567.890.123.456,78",  # more digits than a REAL keeps
])
def test_decimal_commas_are_read_only_when_every_value_of_the_column_has_that_form(tmp_path: Path, db: Path,
                                                                                   column: str) -> None:
    source = write_csv(tmp_path / "c.csv", "id;amount\n" + "".join(f"C{i};{v}\n" for i, v in enumerate(column.split("\n"))))
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:2: column 'amount': '10,5' is not a number" in message
    assert "when every value of the column is written so" in message


@pytest.mark.parametrize("values", [["10,5", "1.2.3"], ["10,5", "1,5 kg"], ["1,2", "x"]])
def test_a_semicolon_column_of_text_stays_text_as_written(tmp_path: Path, values: list[str]) -> None:
    source = write_csv(tmp_path / "c.csv", "id;v\n" + "".join(f"C{i};{v}\n" for i, v in enumerate(values)))
    imported = csv_import.import_csv_file(tmp_path / "t.db", source, "t")
    assert imported.decimal_comma == () and declared_types(tmp_path / "t.db", "t")["v"] == "TEXT"
    assert rows(tmp_path / "t.db", "SELECT v FROM t") == [(v,) for v in values]


def test_without_a_decimal_comma_a_semicolon_file_reads_as_before(tmp_path: Path) -> None:
    """'1.500' alone could be 1.5 or 1500: with no decimal comma in the file, nothing is guessed."""
    source = write_csv(tmp_path / "c.csv", "id;price\nC1;1.500\nC2;2.25\n")
    imported = csv_import.import_csv_file(tmp_path / "t.db", source, "t")
    assert imported.decimal_comma == () and rows(tmp_path / "t.db", "SELECT price FROM t") == [(1.5,), (2.25,)]


def test_decimal_commas_in_forced_and_appended_number_columns(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    first = write_csv(tmp_path / "a.csv", "id;amount;qty\nC1;10,5;1.000\n")
    assert csv_import.import_csv_file(db, first, "t", types={"amount": "float", "qty": "integer"}).rows == 1
    assert declared_types(db, "t") == {"id": "TEXT", "amount": "REAL", "qty": "INTEGER"}
    more = write_csv(tmp_path / "b.csv", "id;amount;qty\nC2;1.200,75;2.000\nC3;3;4\n")
    assert csv_import.import_csv_file(db, more, "t", mode="append").decimal_comma == ("amount", "qty")
    assert rows(db, "SELECT * FROM t") == [("C1", 10.5, 1000), ("C2", 1200.75, 2000), ("C3", 3.0, 4)]
    # an integer column cannot take 12,5 however it is written
    bad = write_csv(tmp_path / "c.csv", "id;amount;qty\nC4;1,5;12,5\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, bad, "t", mode="append"))
    assert "column 'qty': '12,5' is not an integer" in message and "'amount'" not in message


def test_a_decimal_comma_number_forced_to_integer_names_the_type_that_keeps_it(tmp_path: Path) -> None:
    # the hint used to explain decimal commas, which the file had right: the --type was the mistake
    source = write_csv(tmp_path / "a.csv", "id;amount\nC1;1.234,56\n")
    message = fails_unchanged(tmp_path / "t.db", DataError,
                              lambda: import_csv(tmp_path / "t.db", source, "t", types={"amount": "integer"}))
    assert ("column 'amount': '1.234,56' is not an integer (1234.56 with a decimal comma; --type amount=float keeps "
            "the decimals)") in message
    # a comma-separated file never reads a decimal comma, so float would not take it either
    source = write_csv(tmp_path / "b.csv", 'id,amount\nC1,"12,5"\n')
    message = fails_unchanged(tmp_path / "t.db", DataError,
                              lambda: import_csv(tmp_path / "t.db", source, "t", types={"amount": "integer"}))
    assert "'12,5' is not an integer (decimal comma or thousands separator)" in message


def test_cli_import_says_decimal_commas_were_read(cli, tmp_path: Path) -> None:
    import json

    db = tmp_path / "t.db"
    source = write_csv(tmp_path / "c.csv", "id;amount\nC1;1.234,56\nC2;7\n")
    result = cli("import", source, "--db", db, "--table", "t", ok=True)
    assert "imported 2 rows into t" in result.output
    assert ("note: numbers with a decimal comma (1.234,56 as 1234.56) were read in 'amount': the file is separated "
            "by semicolons and every value of this column is written so; to keep it as text, import again with "
            "--replace --type amount=text") in result.output
    again = json.loads(cli("import", source, "--db", db, "--table", "t", "--replace", "--json", ok=True).output)
    assert again["decimal_comma_columns"] == ["amount"] and again["rows"] == 2
    plain = json.loads(cli("import", source, "--db", db, "--table", "t", "--replace", "--type", "amount=text",
                           "--json", ok=True).output)
    assert "decimal_comma_columns" not in plain and rows(db, "SELECT amount FROM t") == [("1.234,56",), ("7",)]
    appended = cli("import", source, "--db", db, "--table", "u", ok=True)
    appended = cli("import", source, "--db", db, "--table", "u", "--append", ok=True).output
    assert "were read in 'amount'" in appended and "--replace" not in appended  # --replace would drop the table


# --- types ---------------------------------------------------------------------------


def test_type_detection(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "c.csv",
        "id,qty,price,code,big,note,mixed\n"
        "C1,3,12.5,00123,12345678901234567890,你好,1\n"
        "C2,-4,7,00456,1,,2.5\n"
        "C3,,1000.0,789,2,hello,3\n",
    )
    assert import_csv(tmp_path / "t.db", source, "t") == 3
    assert declared_types(tmp_path / "t.db", "t") == {
        "id": "TEXT", "qty": "INTEGER", "price": "REAL", "code": "TEXT",
        "big": "TEXT", "note": "TEXT", "mixed": "REAL",
    }
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [
        ("C1", 3, 12.5, "00123", "12345678901234567890", "你好", 1.0),
        ("C2", -4, 7.0, "00456", "1", None, 2.5),
        ("C3", None, 1000.0, "789", "2", "hello", 3.0),
    ]


@pytest.mark.parametrize("tricky", ["007", "1_000", "nan", "inf", "1e400", "١٢٣", "+5", "99999999999999999999",
                                    "1E5", "2e3", "1.5e-3", "12345678901234567.89", "0.1234567890123456"])
def test_values_typetracker_would_mangle_stay_text(tmp_path: Path, tricky: str) -> None:
    """sqlite-utils' TypeTracker calls all of these numbers; storing them as numbers loses information."""
    source = write_csv(tmp_path / "c.csv", f"v\n12\n{tricky}\n")
    import_csv(tmp_path / "t.db", source, "t")
    assert declared_types(tmp_path / "t.db", "t") == {"v": "TEXT"}
    assert rows(tmp_path / "t.db", "SELECT v FROM t") == [("12",), (tricky,)]


@pytest.mark.parametrize(
    "values",
    [
        ["9007199254740993", "1.5"],  # 2**53 + 1 comes back from a REAL as ...992
        ["12345678901234567.89", "1"],  # comes back as 12345678901234568
        ["1", "0.1234567890123456"],  # 16 significant digits: SQLite prints REALs with 15
    ],
)
def test_a_column_that_would_round_as_real_stays_text(tmp_path: Path, values: list[str]) -> None:
    source = write_csv(tmp_path / "c.csv", "v\n" + "".join(f"{value}\n" for value in values))
    import_csv(tmp_path / "t.db", source, "t")
    assert declared_types(tmp_path / "t.db", "t") == {"v": "TEXT"}
    assert [value for (value,) in rows(tmp_path / "t.db", "SELECT v FROM t")] == values


def test_exact_numbers_keep_their_types(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "c.csv",
        "id,price,big\n"
        "9007199254740993,123456789012.345,1\n"
        "-9223372036854775808,0.000000000000001,1000000000000000000\n",
    )
    import_csv(tmp_path / "t.db", source, "t")
    assert declared_types(tmp_path / "t.db", "t") == {"id": "INTEGER", "price": "REAL", "big": "INTEGER"}
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [
        (9007199254740993, 123456789012.345, 1),
        (-9223372036854775808, 1e-15, 10**18),
    ]


def test_exponents_stay_text_unless_forced(tmp_path: Path) -> None:
    """'1E5' is as likely a product code as a number; --type col=float reads it as a number."""
    source = write_csv(tmp_path / "c.csv", "code,x\n1E5,2E3\n7,1.5e-3\n")
    import_csv(tmp_path / "t.db", source, "t", types={"x": "float"})
    assert declared_types(tmp_path / "t.db", "t") == {"code": "TEXT", "x": "REAL"}
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [("1E5", 2000.0), ("7", 0.0015)]


def test_blank_values_are_null_and_blank_rows_skipped(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a,b\n1,\n\n,,\n , x \n")
    assert import_csv(tmp_path / "t.db", source, "t") == 2
    assert rows(tmp_path / "t.db", "SELECT a, b, typeof(a), typeof(b) FROM t") == [
        (1, None, "integer", "null"),
        (None, " x ", "null", "text"),
    ]


def test_header_only_file_creates_text_columns(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a,b\n")
    assert import_csv(tmp_path / "t.db", source, "t") == 0
    assert declared_types(tmp_path / "t.db", "t") == {"a": "TEXT", "b": "TEXT"}


def test_types_override(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "zip,qty,price\n007,+08,3\n123,9,4\n")
    import_csv(tmp_path / "t.db", source, "t", types={"zip": "text", "qty": "integer", "price": "float"})
    assert declared_types(tmp_path / "t.db", "t") == {"zip": "TEXT", "qty": "INTEGER", "price": "REAL"}
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [("007", 8, 3.0), ("123", 9, 4.0)]


def test_types_override_silences_numeric_typo_check(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "ref\n" + "".join(f"{n}\n" for n in range(20)) + "n/a\n")
    assert import_csv(tmp_path / "t.db", source, "t", types={"ref": "text"}) == 21
    assert rows(tmp_path / "t.db", "SELECT ref FROM t WHERE ref = 'n/a'") == [("n/a",)]


def test_unknown_column_in_types_suggests_a_name(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "amount,name\n1,a\n")
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "t", types={"amout": "float"}))
    assert "'amout'" in message and "did you mean 'amount'?" in message


def test_types_match_columns_ignoring_case(tmp_path: Path) -> None:
    """SQLite's names ignore case, so --type ID=text names column 'id'."""
    source = write_csv(tmp_path / "c.csv", "id,Amount\n007,1\n")
    import_csv(tmp_path / "t.db", source, "t", types={"ID": "text", "amount": "float"})
    assert declared_types(tmp_path / "t.db", "t") == {"id": "TEXT", "Amount": "REAL"}
    assert rows(tmp_path / "t.db", "SELECT * FROM t") == [("007", 1.0)]


def test_misspelled_column_in_other_case_suggests_a_name(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "amount,name\n1,a\n")
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "t", types={"AMOUT": "float"}))
    assert f"--type AMOUT=float: {source} has no column 'AMOUT'" in message and "did you mean 'amount'?" in message


def test_two_types_for_one_column(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id\n1\n")
    types = {"id": "text", "ID": "integer"}
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "t", types=types))
    assert "--type id=text and --type ID=integer both name column 'id'" in message


def test_suggested_type_options_are_quoted_for_the_shell(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "unit price\n" + "".join(f"{n}\n" for n in range(20)) + "n/a\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert "--type 'unit price=text'" in message


def test_unknown_type_name_suggests_a_type(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "amount\n1\n")
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "t", types={"amount": "int"}))
    assert "unknown type 'int'" in message and "did you mean 'integer'?" in message


# --- bad rows --------------------------------------------------------------------------


def test_wrong_field_count(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a,b,c\n1,2,3\n4,5\n6,7,8,9\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:3: expected 3 fields as in the header, found 2" in message
    assert f"{source}:4: expected 3 fields as in the header, found 4" in message
    assert "double quotes" in message


def test_mostly_numeric_column_with_typos(tmp_path: Path, db: Path) -> None:
    body = "".join(f"C{n},{n}.5\n" for n in range(40))
    source = write_csv(tmp_path / "orders.csv", "id,amount\n" + body + "C40,abc\nC41,\nC42,¥12\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "orders"))
    assert f"{source}:42: column 'amount': 'abc' is not a number" in message
    assert f"{source}:44: column 'amount': '¥12' is not a number" in message
    assert "2 bad" in message
    assert "--type amount=text" in message
    assert "types=" not in message  # the CLI is where users meet these messages


def test_line_numbers_are_physical_lines(tmp_path: Path, db: Path) -> None:
    body = "".join(f"x,{n}\n" for n in range(30))
    source = write_csv(tmp_path / "c.csv", 'note,amount\n"two\nlines",1\n\n' + body + "y,oops\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:35: column 'amount': 'oops' is not a number" in message


def test_lists_at_most_ten_bad_rows(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "qty\n" + "".join(f"{n}\n" for n in range(200)) + "x\n" * 15)
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    listed = [line for line in message.splitlines() if "is not a number" in line]
    assert len(listed) == 10
    assert listed[0].startswith(f"{source}:202:")
    assert "... and 5 more" in message
    assert "15 bad" in message


def test_forced_numeric_type_rejects_text(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "qty,price\n1,2\nmany,3.5.1\n")
    types = {"qty": "integer", "price": "float"}
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t", types=types))
    assert f"{source}:3: column 'qty': 'many' is not an integer" in message
    assert f"{source}:3: column 'price': '3.5.1' is not a number" in message


# --- header and file problems ------------------------------------------------------------


def test_empty_header_name(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a,,c, \n1,2,3,4\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert f"{source}:1: empty column name(s)" in message and "position(s) 2, 4" in message


def test_duplicate_header_names(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id,Amount,amount,id\n1,2,3,4\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert "duplicate column name(s)" in message
    assert "'id' / 'id'" in message and "'Amount' / 'amount'" in message


def test_empty_file(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "", bom=True)
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert "empty" in message


def test_missing_csv_file(tmp_path: Path, db: Path) -> None:
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, tmp_path / "nope.csv", "t"))
    assert "nope.csv: no such file" in message


def test_database_that_is_not_sqlite(tmp_path: Path) -> None:
    fake = tmp_path / "fake.db"
    fake.write_bytes(b"id,name\n1,not a database\n" * 100)
    source = write_csv(tmp_path / "c.csv", "a\n1\n")
    message = fails_unchanged(fake, DataError, lambda: import_csv(fake, source, "t"))
    assert "is not a SQLite database" in message
    assert "--db names the database" in message and "the CSV file is the FILE argument" in message
    assert "first argument" not in message  # the CLI takes the database as --db, not as an argument


def test_failed_import_does_not_create_a_database(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a,b\n1\n")
    with pytest.raises(DataError):
        import_csv(tmp_path / "new.db", source, "t")
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize("table", ["", "   ", "sqlite_stuff", "a\x00b"])
def test_bad_table_names(tmp_path: Path, db: Path, table: str) -> None:
    source = write_csv(tmp_path / "c.csv", "a\n1\n")
    fails_unchanged(db, UsageError, lambda: import_csv(db, source, table))


def test_unknown_mode(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a\n1\n")
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "t", mode="upsert"))
    assert "create, replace, append" in message


def test_odd_table_and_column_names_are_quoted(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", '"we""ird col",select\n1,2\n')
    table = 'x"; DROP TABLE y; --'
    assert import_csv(tmp_path / "t.db", source, table) == 1
    assert rows(tmp_path / "t.db", "SELECT name FROM sqlite_master") == [(table,)]
    assert declared_types(tmp_path / "t.db", table.replace("'", "''")) == {'we"ird col': "INTEGER", "select": "INTEGER"}


# --- modes -------------------------------------------------------------------------------


def test_create_refuses_existing_table(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id,name,amount\nC9,New,1\n")
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "CUSTOMERS"))
    assert "already exists" in message and "--replace" in message and "--append" in message


def test_replace_recreates_table(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "code,score\n001,9\n")
    assert import_csv(db, source, "customers", mode="replace") == 1
    assert declared_types(db, "customers") == {"code": "TEXT", "score": "INTEGER"}
    assert rows(db, "SELECT * FROM customers") == [("001", 9)]


def test_replace_creates_missing_table(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a\n1\n")
    assert import_csv(db, source, "fresh", mode="replace") == 1


def test_append_adds_rows_with_table_types(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "AMOUNT,id,name\n30,C3,007\n,C4,Zed\n")
    assert import_csv(db, source, "customers", mode="append") == 2
    assert rows(db, "SELECT id, name, amount FROM customers ORDER BY id") == [
        ("C1", "Acme", 10.5),
        ("C2", "上海华东贸易有限公司", 20.0),
        ("C3", "007", 30.0),
        ("C4", "Zed", None),
    ]


def test_append_checks_values_against_table_types(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id,name,amount\nC3,X,lots\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "customers", mode="append"))
    assert f"{source}:2: column 'amount': 'lots' is not a number" in message


def test_append_of_values_the_declared_type_refuses_suggests_no_type_option(tmp_path: Path, db: Path) -> None:
    """--type cannot change a column of an existing table, so the hint must not send users to it."""
    source = write_csv(tmp_path / "c.csv", "id,name,amount\nC3,X,lots\n")
    with pytest.raises(DataError) as caught:
        import_csv(db, source, "customers", mode="append")
    assert "'amount' is REAL" in caught.value.hint and "import into a new table, or with --replace" in caught.value.hint
    assert "--type" not in caught.value.hint


@pytest.mark.parametrize("column,kind,declared", [("amount", "text", "REAL"), ("amount", "integer", "REAL"),
                                                  ("name", "float", "TEXT"), ("AMOUNT", "text", "REAL")])
def test_append_refuses_a_type_the_table_does_not_declare(tmp_path: Path, db: Path, column: str, kind: str,
                                                          declared: str) -> None:
    source = write_csv(tmp_path / "c.csv", "id,name,amount\nC3,X,lots\n")
    before = db.read_bytes()
    with pytest.raises(UsageError) as caught:
        import_csv(db, source, "customers", mode="append", types={column: kind})
    assert db.read_bytes() == before
    error, name = caught.value, column.lower()  # named as the file's header names it
    assert f"--type {name}={kind}: column '{name}' of table 'customers'" in error.message
    assert f"is declared {declared}, and --append keeps the table's column types" in error.message
    assert f"leave out --type {name}={kind}" in error.hint and "import into a new table, or with --replace" in error.hint


def test_append_takes_a_type_the_table_declares_and_any_for_an_untyped_column(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, code, note TEXT)")
    conn.close()
    source = write_csv(tmp_path / "c.csv", "id,code,note\n7,007,12\n")
    assert import_csv(db, source, "t", mode="append", types={"id": "integer", "code": "text", "note": "text"}) == 1
    assert rows(db, "SELECT id, code, note FROM t") == [(7, "007", "12")]


def test_append_requires_matching_columns(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id,amount,region\nC3,1,华东\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "customers", mode="append"))
    assert "missing column(s) 'name'" in message and "extra column(s) 'region'" in message


def test_append_requires_existing_table(tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a\n1\n")
    message = fails_unchanged(db, UsageError, lambda: import_csv(db, source, "nothing", mode="append"))
    assert "does not exist" in message


def test_append_requires_existing_database(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "a\n1\n")
    with pytest.raises(UsageError, match="no such database"):
        import_csv(tmp_path / "new.db", source, "t", mode="append")
    assert not (tmp_path / "new.db").exists()


# --- all or nothing --------------------------------------------------------------------------


def test_constraint_failure_after_many_batches_rolls_back(tmp_path: Path) -> None:
    db = tmp_path / "strict.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'kept')")
    conn.close()
    source = write_csv(tmp_path / "c.csv", "id,name\n" + "".join(f"{n},n{n}\n" for n in range(2, 12_002)) + "1,dup\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t", mode="append"))
    assert "nothing was imported" in message
    assert f"{source}:12002: id 1 is already in table 't'" in message  # the line and key SQLite does not name
    assert rows(db, "SELECT * FROM t") == [(1, "kept")]


def _keyed_table(db: Path, ddl: str, *existing: tuple) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(ddl)
        for row in existing:
            conn.execute(f"INSERT INTO t VALUES ({', '.join('?' * len(row))})", row)
    conn.close()


def test_a_duplicate_key_in_the_file_names_both_lines_and_the_key(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _keyed_table(db, "CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT)", ("C0", "kept"))
    source = write_csv(tmp_path / "c.csv", "id,name\nC1,a\n\nC2,b\nC1,c\nC3,d\nC2,e\nC1,f\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t", mode="append"))
    assert message.splitlines()[:4] == [
        f"cannot import {source}: 3 duplicate keys in table 't' (PRIMARY KEY id), nothing was imported",
        f"{source}:5: id 'C1' is also on line 2",
        f"{source}:7: id 'C2' is also on line 4",
        f"{source}:8: id 'C1' is also on line 2"]
    assert "remove or correct the duplicate rows" in message
    assert rows(db, "SELECT * FROM t") == [("C0", "kept")]


def test_duplicate_keys_follow_the_tables_key_its_collation_and_types(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _keyed_table(db, "CREATE TABLE t (region TEXT, code TEXT COLLATE NOCASE, n INTEGER, note TEXT, "
                     "UNIQUE (region, code))", ("East", "a1", 1, None))
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE UNIQUE INDEX t_n ON t (n)")
    conn.close()
    # 'A1' is 'a1' to the NOCASE key; rows with a NULL in a key never clash; n '7' and '7' clash
    source = write_csv(tmp_path / "c.csv", "region,code,n,note\nEast,A1,2,x\n,z,,\n,z,,\nWest,a1,7,\nWest,b,7,\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t", mode="append"))
    assert f"{source}:2: (region, code) ('East', 'A1') is already in table 't'" in message
    assert f"{source}:6: n 7 is also on line 5" in message
    assert "UNIQUE (region, code) and UNIQUE n" in message or "UNIQUE n and UNIQUE (region, code)" in message
    assert ":3:" not in message and ":4:" not in message


def test_other_constraint_failures_keep_sqlites_message_with_the_line(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _keyed_table(db, "CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT NOT NULL)")
    source = write_csv(tmp_path / "c.csv", "id,name\nC1,\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t", mode="append"))
    assert f"{source}:2: NOT NULL constraint failed: t.name (the line has no 'name')" in message
    assert "nothing was imported" in message


def test_cli_import_of_a_duplicate_customer_id_names_the_lines(tmp_path: Path, cli) -> None:
    db = tmp_path / "crm.db"
    _keyed_table(db, "CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT)")
    source = write_csv(tmp_path / "c.csv", "id,name\nC1,上海\nC1,北京\n")
    before = db.read_bytes()
    result = cli("import", source, "--db", db, "--table", "t", "--append")
    assert result.exit_code == 1
    assert f"error: cannot import {source}: 1 duplicate key in table 't'" in result.output
    assert f"{source}:3: id 'C1' is also on line 2" in result.output and "Traceback" not in result.output
    assert db.read_bytes() == before


def test_interrupted_replace_keeps_old_table(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = csv_import._converted_rows

    def interrupted(*args: object):
        for number, row in enumerate(original(*args)):
            if number == 7_000:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(csv_import, "_converted_rows", interrupted)
    source = write_csv(tmp_path / "c.csv", "x\n" + "".join(f"{n}\n" for n in range(8_000)))
    fails_unchanged(db, KeyboardInterrupt, lambda: import_csv(db, source, "customers", mode="replace"))
    assert rows(db, "SELECT id FROM customers") == [("C1",), ("C2",)]


def test_file_changed_between_passes(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_csv(tmp_path / "c.csv", "qty\n1\n2\n")
    original = csv_import._validate

    def validate_then_edit(*args: object, **kwargs: object):
        plan = original(*args, **kwargs)
        with source.open("a") as handle:
            handle.write("oops\n")
        return plan

    monkeypatch.setattr(csv_import, "_validate", validate_then_edit)
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert "changed while it was being read; nothing was changed" in message


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=8))
def test_text_round_trips(tmp_path: Path, values: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["value", "n"])
    writer.writerows([value, n] for n, value in enumerate(values))
    db = tmp_path / "rt.db"
    db.unlink(missing_ok=True)
    source = write_csv(tmp_path / "rt.csv", buffer.getvalue())
    if any("\x00" in value for value in values):  # no text holds a NUL: refused, naming the first one
        with pytest.raises(DataError, match=r"column 1 \('value'\) holds a NUL character"):
            import_csv(db, source, "t", types={"value": "text"})
        assert not db.exists()
        return
    import_csv(db, source, "t", types={"value": "text"})
    expected = [(None if not value.strip() else value) for value in values]
    assert [row[0] for row in rows(db, "SELECT value FROM t ORDER BY n")] == expected


# --- NUL characters ------------------------------------------------------------------------------


def test_a_nul_in_a_cell_is_refused_with_its_line_and_column(tmp_path: Path, db: Path) -> None:
    """Python's csv reads a NUL as part of a value: it went into the table without a word."""
    source = write_csv(tmp_path / "c.csv", 'id,name,note\nC1,Acme,ok\nC2,Ac\x00me,"two\nlines"\nC3,x,"a\nb\x00"\n')
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "t"))
    assert message.startswith(f"{source}:3: column 2 ('name') holds a NUL character (byte 0x00): 'Ac\\x00me'")
    assert "not plain text" in message and "CSV UTF-8" in message
    later = write_csv(tmp_path / "d.csv", 'id,note\nC3,"a\nb\x00"\n')
    assert str(fails_unchanged(db, DataError, lambda: import_csv(db, later, "t"))).startswith(
        f"{later}:3: column 2 ('note') holds a NUL character")  # the physical line of a value over two lines


def test_utf16_without_a_byte_order_mark_is_named(tmp_path: Path) -> None:
    source = tmp_path / "u.csv"
    source.write_bytes("id,name\nC1,上海\n".encode("utf-16-le"))
    with pytest.raises(DataError) as caught:
        import_csv(tmp_path / "t.db", source, "t")
    assert caught.value.message.startswith(f"{source}:1: column 1 holds a NUL character")
    assert "looks like UTF-16 text without a byte-order mark" in caught.value.hint
    assert not (tmp_path / "t.db").exists()


def test_cli_import_of_a_nul_exits_1_and_writes_nothing(cli, tmp_path: Path, db: Path) -> None:
    source = write_csv(tmp_path / "c.csv", "id,name,amount\nC9,bad\x00name,1\n")
    before = db.read_bytes()
    result = cli("import", source, "--db", db, "--table", "customers", "--append")
    assert result.exit_code == 1 and f"error: {source}:2: column 2 ('name') holds a NUL character" in result.output
    assert db.read_bytes() == before


def test_append_leaves_out_the_ids_and_defaults_the_table_fills(tmp_path: Path) -> None:
    # new orders have no id yet: SQLite numbers an INTEGER PRIMARY KEY itself
    db = tmp_path / "o.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id TEXT, amount REAL, "
                     "source TEXT DEFAULT 'erp', note TEXT)")
        conn.execute("INSERT INTO orders (customer_id, amount, note) VALUES ('C1', 5, 'x')")
    conn.close()
    source = write_csv(tmp_path / "o.csv", "customer_id,amount,note\nC2,7.5,y\n")
    assert import_csv(db, source, "orders", mode="append") == 1
    assert rows(db, "SELECT * FROM orders") == [(1, "C1", 5.0, "erp", "x"), (2, "C2", 7.5, "erp", "y")]
    # a column the table does not fill itself is still required
    source = write_csv(tmp_path / "o.csv", "customer_id,amount\nC3,1\n")
    message = fails_unchanged(db, DataError, lambda: import_csv(db, source, "orders", mode="append"))
    assert "missing column(s) 'note'" in message
    assert ("only an INTEGER PRIMARY KEY, which SQLite numbers itself, and columns with a DEFAULT may be left out "
            "('note': it is neither; add it to the file)") in message


def test_append_without_the_id_of_a_table_import_created_names_it_as_required(tmp_path: Path, cli) -> None:
    """A table import created has a plain id column, no INTEGER PRIMARY KEY: 'missing column(s) 'id'' beside
    'its id ... may be left out' contradicted itself."""
    db = tmp_path / "crm.db"
    assert cli("import", write_csv(tmp_path / "orders.csv", "id,customer_id,amount\n1,000123,5\n"), "--db", db,
               "--table", "orders", "--type", "customer_id=text").exit_code == 0
    before = db.read_bytes()
    june = write_csv(tmp_path / "orders_june.csv", "customer_id,amount\n000123,7\n")
    result = cli("import", june, "--db", db, "--table", "orders", "--append")
    assert result.exit_code == 1 and db.read_bytes() == before
    assert f"error: {june}: columns do not match table 'orders' in {db}: missing column(s) 'id'" in result.output
    assert ("hint: the header must name the table's columns, in any order; only an INTEGER PRIMARY KEY, which SQLite "
            "numbers itself, and columns with a DEFAULT may be left out ('id': it is neither; add it to the file); "
            "use --replace to recreate the table") in result.output


def test_append_names_the_lines_a_constraint_refuses(tmp_path: Path, cli) -> None:
    # it was SQLite's "NOT NULL constraint failed: t.cid" without a line
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, cid TEXT NOT NULL, amount REAL CHECK (amount >= 0))")
    conn.close()
    source = write_csv(tmp_path / "c.csv", "cid,amount\na,1\n,2\nb,-1\nc,-2\nd,-3\ne,-4\n")
    before = db.read_bytes()
    result = cli("import", str(source), "--db", str(db), "--table", "t", "--append")
    assert result.exit_code == 1 and db.read_bytes() == before
    assert result.output.splitlines()[:6] == [
        f"error: table 't' refuses 5 line(s) of {source}; nothing was imported:",
        f"  {source}:3: NOT NULL constraint failed: t.cid (the line has no 'cid')",
        f"  {source}:4: CHECK constraint failed: amount >= 0",
        f"  {source}:5: CHECK constraint failed: amount >= 0",
        "  ... and 2 more (5 lines in all)",
        "  hint: fill in the empty values the table requires; correct the values the table's CHECK constraint refuses "
        "(its CREATE TABLE shows it: .schema t), then import again"]
