"""An operator's own ERP exports through crm-rules import: totals rows, GBK and UTF-8 files, files of only a
header, and the commands the import's notes and hints give, which must run as they are."""

from __future__ import annotations

import codecs
import json
import shlex
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.csv_import import import_csv_file
from crm_rules.engine.csv_totals import label
from crm_rules.engine.errors import DataError

ORDERS = ("订单号,客户编号,下单日期,金额,状态\n"
          "SO001,KH00001,2025/03/29,\"¥21,411.17\",已完成\n"
          "\n"
          "SO002,KH00001,2025年3月5日,\"-1,200.00元\",退货\n"
          "SO003,KH00002,2025-12-01,880.50,已取消\n")
TOTALS = ",合计,,\"¥21,091.67\",\n"
CUSTOMERS = ("客户编号,客户名称,建档日期,信用额度\n"
             "KH00001,杭州王记建材商行,2021/9/8,\"20,000.00\"\n"
             "KH00002,宁波李氏五金店,2019-01-29,\"100,000.00\"\n")


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def write(path: Path, text: str, encoding: str = "utf-8-sig") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def suggested_command(output: str) -> list[str]:
    """The arguments of the `crm-rules import ...` a note ends with, as a shell would split them."""
    return shlex.split(output.split("import again with: crm-rules ", 1)[1].strip())


@pytest.mark.parametrize("fields, found", [
    (["合计", "", "", "¥1,000"], (0, "合计")), (["", "总计：", "12"], (1, "总计：")), (["合  计", "5"], (0, "合  计")),
    (["Grand Total", "5"], (0, "Grand Total")), (["SUBTOTAL:", ""], (0, "SUBTOTAL:")), (["小計", "1"], (0, "小計")),
    (["SO001", "合计"], None), (["合计金额", "5"], None), (["", "", ""], None), (["KH00001", "Total"], None),
])
def test_a_totals_row_is_one_whose_first_value_is_a_totals_word(fields: list[str], found) -> None:
    assert label(fields) == found


def test_a_totals_row_is_refused_with_its_line_and_what_it_sums(cli, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    source = write(tmp_path / "订单.csv", ORDERS + "\n" + TOTALS)
    result = cli("import", source, "--db", db, "--table", "orders", "--type", "金额=float")
    assert result.exit_code == 1 and not db.exists()
    assert (f"{source}:7: a totals row, not a record: '合计' in '客户编号', 金额 '¥21,091.67'") in result.output
    assert "import with --skip-totals, which leaves such rows out" in result.output


def test_a_totals_row_among_other_problems_is_listed_with_them(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    source = write(tmp_path / "o.csv", ORDERS.replace("2025-12-01", "01/12/2025") + TOTALS)
    with pytest.raises(DataError) as caught:
        import_csv_file(db, source, "orders", types={"下单日期": "date"})
    message = str(caught.value)
    assert "2 bad row(s) or value(s)" in message and "o.csv:5: column '下单日期': '01/12/2025'" in message
    assert "o.csv:6: a totals row, not a record" in message
    assert "delete the totals rows, or leave them out with --skip-totals" in message
    assert not db.exists()


def test_skip_totals_leaves_them_out_and_says_which_lines(cli, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    middle = ORDERS.replace("SO003", "小计,,,\"¥20,211.17\",\nSO003")
    source = write(tmp_path / "订单.csv", middle + TOTALS)
    result = cli("import", source, "--db", db, "--table", "orders", "--skip-totals", "--type", "金额=float",
                 "--type", "下单日期=date", ok=True)
    assert "imported 3 rows into orders" in result.output
    assert ("note: left out 2 totals rows (--skip-totals): line 5: '小计' in '订单号', 金额 '¥20,211.17'; "
            "line 7: '合计' in '客户编号', 金额 '¥21,091.67'") in result.output
    assert rows(db, "SELECT 订单号, 下单日期, 金额 FROM orders") == [
        ("SO001", "2025-03-29", 21411.17), ("SO002", "2025-03-05", -1200.0), ("SO003", "2025-12-01", 880.5)]
    data = json.loads(cli("import", source, "--db", db, "--table", "orders", "--replace", "--skip-totals",
                          "--type", "金额=float", "--type", "下单日期=date", "--json", ok=True).output)
    assert data["totals_rows_left_out"] == 2 and data["rows"] == 3
    plain = json.loads(cli("import", write(tmp_path / "p.csv", ORDERS), "--db", db, "--table", "p",
                           "--skip-totals", "--json", ok=True).output)
    assert "totals_rows_left_out" not in plain


def test_the_reimport_a_note_gives_keeps_the_encoding_and_types_given(cli, tmp_path: Path, monkeypatch) -> None:
    """It left out --encoding gbk and the --type already given: run as told, it failed on the file's encoding."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "客户.csv", CUSTOMERS, "gbk")
    first = cli("import", "客户.csv", "--db", "crm.db", "--table", "customers", "--encoding", "gbk",
                "--type", "信用额度=float", ok=True)
    assert "note: kept as text, '建档日期' (2021/9/8)" in first.output
    again = suggested_command(first.output)
    assert again == ["import", "客户.csv", "--db", "crm.db", "--table", "customers", "--replace", "--encoding", "gbk",
                     "--type", "信用额度=float", "--type", "建档日期=date"]
    assert "note:" not in cli(*again, ok=True).output
    assert rows(tmp_path / "crm.db", "SELECT 建档日期, 信用额度 FROM customers") == [
        ("2021-09-08", 20000.0), ("2019-01-29", 100000.0)]
    write(tmp_path / "订单.csv", ORDERS + TOTALS)
    orders = cli("import", "订单.csv", "--db", "crm.db", "--table", "orders", "--skip-totals", ok=True)
    assert suggested_command(orders.output)[6:] == ["--replace", "--skip-totals", "--type", "金额=float",
                                                    "--type", "下单日期=date"]
    cli(*suggested_command(orders.output), ok=True)
    assert rows(tmp_path / "crm.db", "SELECT typeof(金额), count(*) FROM orders GROUP BY 1") == [("real", 3)]


def test_a_refused_amount_column_names_the_date_column_a_run_would_refuse_next(cli, tmp_path: Path) -> None:
    """Thousands separators in every value of 信用额度 refuse the import; its hint now also gives 建档日期's --type,
    which took one more import (kept as text, noted) and a --replace before."""
    db = tmp_path / "crm.db"
    result = cli("import", write(tmp_path / "c.csv", CUSTOMERS), "--db", db, "--table", "customers")
    assert result.exit_code == 1 and not db.exists()
    assert "are read as numbers with --type '信用额度=float'" in result.output
    assert ("add --type '建档日期=date' too: '建档日期' (dates written year first, 2021/9/8) would be kept as text, "
            "which a run refuses where a policy reads it") in result.output


def test_an_encoding_given_for_a_utf8_file_is_refused_or_named(cli, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    marked = write(tmp_path / "订单.csv", ORDERS)  # with the byte-order mark, as Excel saves "CSV UTF-8"
    result = cli("import", marked, "--db", db, "--table", "orders", "--encoding", "gb18030")
    assert result.exit_code == 2 and not db.exists()
    assert f"--encoding gb18030: {marked} starts with UTF-8's byte-order mark (EF BB BF), so it is UTF-8" in result.output
    assert "leave out --encoding" in result.output
    plain = write(tmp_path / "plain.csv", ORDERS, "utf-8")
    result = cli("import", plain, "--db", db, "--table", "orders", "--encoding", "gbk")
    assert result.exit_code == 1 and not db.exists()
    assert "not valid gbk" in result.output
    assert "the file reads as UTF-8 (line 1 is '订单号,客户编号,下单日期,金额,状态'): leave out --encoding for UTF-8" in result.output
    assert "imported 3 rows" in cli("import", plain, "--db", db, "--table", "orders", "--encoding", "utf-8",
                                    ok=True).output
    assert codecs.BOM_UTF8 + ORDERS.encode() == marked.read_bytes()


def test_a_file_of_only_its_header_makes_an_empty_table_and_says_what_follows(cli, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    header = write(tmp_path / "回访记录.csv", "客户编号,回访日期,类型,金额\n")
    result = cli("import", header, "--db", db, "--table", "interactions", ok=True)
    assert "imported 0 rows into interactions" in result.output
    assert "holds no rows, only its header: table interactions is empty, and its columns are declared TEXT" \
           in result.output
    assert "import the first file with rows with --replace" in result.output
    assert rows(db, "SELECT count(*) FROM interactions") == [(0,)]
    appended = cli("import", header, "--db", db, "--table", "interactions", "--append", ok=True)
    assert "holds no rows, only its header: nothing was appended to interactions" in appended.output
    typed = cli("import", header, "--db", db, "--table", "x", "--type", "金额=float", ok=True)
    assert "its columns (but those given a --type) are declared TEXT" in typed.output
    assert dict(rows(db, "SELECT name, type FROM pragma_table_info('x')"))["金额"] == "REAL"
    empty = cli("import", write(tmp_path / "应收账款.csv", "", "utf-8"), "--db", db, "--table", "receivables")
    assert empty.exit_code == 1 and "the file is empty" in empty.output


@pytest.mark.parametrize("written, number", [
    ("1,200.00-", "-1200.00"), ("¥1,200.00-", "-1200.00"), ("1,200.00 -", "-1200.00"), ("5-", "-5"),
    ("-5-", None), ("¥-5-", None), ("(5)-", None), ("-", None), ("1-2", None),
])
def test_a_minus_after_the_number_as_sap_writes_it(written: str, number: str | None) -> None:
    from crm_rules.engine.csv_erp_values import amount

    assert amount(written) == number


def test_a_dash_for_zero_and_a_zero_date_are_refused_with_what_to_write(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    source = write(tmp_path / "o.csv", "单号,日期,金额\nA1,0000-00-00,-\nA2,2025/3/1,\"1,200.00-\"\nA3,0000/00/00 00:00:00,—\n")
    with pytest.raises(DataError) as caught:
        import_csv_file(db, source, "o", types={"日期": "date", "金额": "float"})
    message = str(caught.value)
    assert ("o.csv:2: column '日期': '0000-00-00' is a zero date, which is no day: leave the cell empty for no date "
            "(an empty cell is stored as NULL)") in message
    assert ("o.csv:2: column '金额': '-' is not a number (a dash, which an accounting export writes for zero: write 0, "
            "or leave the cell empty for no value)") in message
    assert "o.csv:4: column '日期': '0000/00/00 00:00:00' is a zero date" in message
    assert "o.csv:4: column '金额': '—' is not a number (a dash" in message
    assert "o.csv:3" not in message and not db.exists()
    fixed = write(tmp_path / "fixed.csv", "单号,日期,金额\nA1,,0\nA2,2025/3/1,\"1,200.00-\"\n")
    import_csv_file(db, fixed, "o", types={"日期": "date", "金额": "float"})
    assert rows(db, "SELECT 日期, 金额 FROM o") == [(None, 0.0), ("2025-03-01", -1200.0)]
