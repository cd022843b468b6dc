"""ERP exports loaded with crm-rules import: amounts with a currency sign, dates written year first, and what
the import says of such columns kept as text (csv_erp_values)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.csv_erp_values import amount, iso_date, not_a_date
from crm_rules.engine.csv_import import import_csv
from crm_rules.engine.errors import DataError

ERP_ORDERS = ("订单号,客户编号,订单日期,金额,状态\n"
              "SO001,000123,2025/03/29,\"¥21,411.17\",已完成\n"
              "SO002,000123,2025/3/5,\"-¥1,200.00\",退款\n"
              "SO003,000042,2025年12月1日,¥0.00,已取消\n")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8-sig")
    return path


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("written, number", [
    ("¥21,411.17", "21411.17"), ("￥1,234", "1234"), ("-¥1,234.50", "-1234.50"), ("¥-1,234.50", "-1234.50"),
    ("1,234.50元", "1234.50"), ("(1,234.50)", "-1234.50"), ("RMB 1,000", "1000"), ("$12.5", "12.5"), ("7", "7"),
    ("12,34", None), ("1,2345", None), ("¥", None), ("--5", None), ("¥1,000元", None), ("abc", None), ("(-5)", None),
])
def test_amounts_as_erps_write_them(written: str, number: str | None) -> None:
    assert amount(written) == number


@pytest.mark.parametrize("written, iso", [
    ("2025/03/29", "2025-03-29"), ("2025/3/5", "2025-03-05"), ("2025.03.29", "2025-03-29"),
    ("2025年3月5日", "2025-03-05"), ("2025-3-5", "2025-03-05"), ("2025/03/29 08:30", "2025-03-29 08:30:00"),
    ("2025/02/30", None), ("03/05/2026", None), ("20250329", None), ("2025/03-29", None),
])
def test_dates_written_year_first(written: str, iso: str | None) -> None:
    assert iso_date(written) == iso


def test_a_day_first_date_is_refused_not_guessed() -> None:
    assert "day and month cannot be told apart" in not_a_date("03/05/2026")
    assert "no such month, day or time" in not_a_date("2025/02/30")


def test_type_float_and_date_store_an_erp_export_as_a_run_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    import_csv(db, write(tmp_path / "orders.csv", ERP_ORDERS), "orders", types={"金额": "float", "订单日期": "date"})
    assert rows(db, "SELECT 客户编号, 订单日期, 金额, typeof(金额), 状态 FROM orders") == [
        ("000123", "2025-03-29", 21411.17, "real", "已完成"),
        ("000123", "2025-03-05", -1200.0, "real", "退款"),
        ("000042", "2025-12-01", 0.0, "real", "已取消"),
    ]
    assert dict(rows(db, "SELECT name, type FROM pragma_table_info('orders')"))["订单日期"] == "TEXT"


def test_a_date_not_written_year_first_fails_the_import_naming_line_and_column(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    source = write(tmp_path / "orders.csv", ERP_ORDERS.replace("2025/3/5", "05/03/2025"))
    with pytest.raises(DataError) as caught:
        import_csv(db, source, "orders", types={"订单日期": "date"})
    assert "orders.csv:3: column '订单日期': '05/03/2025' is not a date written year first" in str(caught.value)
    assert not db.exists()


def test_amounts_with_thousands_commas_are_not_read_in_a_semicolon_file(tmp_path: Path) -> None:
    """There '1,234' may be 1.234 written with a decimal comma: the import does not guess."""
    db = tmp_path / "crm.db"
    with pytest.raises(DataError):
        import_csv(db, write(tmp_path / "o.csv", "id;amount\n1;¥1,234.50\n"), "o", types={"amount": "float"})


def test_appending_dates_to_a_text_column(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    source = write(tmp_path / "orders.csv", ERP_ORDERS)
    import_csv(db, source, "orders", types={"金额": "float", "订单日期": "date"})
    import_csv(db, source, "orders", mode="append", types={"订单日期": "date"})
    assert rows(db, "SELECT count(*), count(DISTINCT 订单日期) FROM orders") == [(6, 3)]


def test_cli_import_says_which_text_columns_a_run_would_refuse(cli, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    source = write(tmp_path / "orders.csv", ERP_ORDERS)
    result = cli("import", source, "--db", db, "--table", "orders", ok=True)
    assert ("note: kept as text, '金额' (¥21,411.17): amounts written with a currency sign or thousands separators; "
            "'订单日期' (2025/03/29): dates written year first, not as YYYY-MM-DD; a run refuses them where a policy "
            "reads numbers or YYYY-MM-DD dates; to store them so, import again with: crm-rules import") in result.output
    assert "--table orders --replace --type '金额=float' --type '订单日期=date'" in result.output
    assert rows(db, "SELECT 金额 FROM orders LIMIT 1") == [("¥21,411.17",)]  # unasked, values are kept exactly
    data = json.loads(cli("import", source, "--db", db, "--table", "orders", "--replace", "--json", ok=True).output)
    assert data["text_columns_a_run_refuses"] == [
        {"column": "订单日期", "holds": "dates", "example": "2025/03/29"},
        {"column": "金额", "holds": "amounts", "example": "¥21,411.17"}]
    again = cli("import", source, "--db", db, "--table", "orders", "--replace", "--type", "金额=float",
                "--type", "订单日期=date", ok=True)
    assert "note:" not in again.output
    assert cli("import", source, "--db", db, "--table", "x", "--type", "金额=money").exit_code == 2


def test_cli_import_hint_offers_type_float_for_a_few_amounts_among_numbers(cli, tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    body = "".join(f"{n},{n * 10}\n" for n in range(1, 20)) + '20,"¥1,200.00"\n'
    result = cli("import", write(tmp_path / "o.csv", "id,amount\n" + body), "--db", db, "--table", "o")
    assert result.exit_code == 1 and not db.exists()
    assert "o.csv:21: column 'amount': '¥1,200.00' is not a number" in result.output
    assert "amounts written with a currency sign or thousands separators (¥1,200.00) are read as numbers with " \
           "--type amount=float" in result.output


ERP_CUSTOMERS = ("客户编号,客户名称,建档日期,信用额度\n"
                 "000123,上海恒达建材有限公司,2021/09/08,\"¥100,000.00\"\n"
                 "000042,广州华南贸易,2019/01/29,\"¥50,000.00\"\n")
ERP_POLICY = """\
data:
  customers:
    id: 客户编号
    name: 客户名称
    attributes:
      since: {column: 建档日期, type: date}
      credit_limit: {column: 信用额度, type: number}
      region: null
      industry: null
      account_manager: null
  orders:
    customer: 客户编号
    date: 订单日期
    amount: 金额
    columns: {cost: null, discount: null, status: {column: 状态, type: text}}
metrics:
  revenue_12m: {sum: amount, window: 24 months, where: "status != '已取消'"}
  big_credit: {expr: "credit_limit >= 100000"}
tiers:
  levels:
    - {id: A, label: 重点客户, when: "revenue_12m >= 10000"}
    - {id: C, default: true}
"""


def test_an_erp_export_loaded_as_is_gets_the_reimport_then_runs(cli, tmp_path: Path) -> None:
    """The whole path an operator takes: import, apply (refused, with the command that fixes it), import
    again as told, apply; Chinese column names and values in every message and in explain."""
    db = tmp_path / "crm.db"
    customers, orders = write(tmp_path / "customers.csv", ERP_CUSTOMERS), write(tmp_path / "orders.csv", ERP_ORDERS)
    policy = tmp_path / "erp.yaml"
    policy.write_text(ERP_POLICY, encoding="utf-8")
    cli("import", customers, "--db", db, "--table", "customers", ok=True)
    cli("import", orders, "--db", db, "--table", "orders", ok=True)
    before = db.read_bytes()
    refused = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", "--dry-run")
    assert refused.exit_code == 1 and db.read_bytes() == before
    assert "table 'customers', column '建档日期' (attribute 'since'): '2021/09/08' (customer 000123)" in refused.output
    assert ("'customers' holds '建档日期' dates written year first ('2021/09/08' is stored as '2021-09-08') and "
            "'信用额度' amounts with a currency sign or thousands separators ('¥100,000.00' is stored as 100000.0): "
            "import customers.csv again with crm-rules import customers.csv --db ... --table customers --replace "
            "--type '建档日期=date' --type '信用额度=float'") in refused.output
    cli("import", customers, "--db", db, "--table", "customers", "--replace", "--type", "建档日期=date",
        "--type", "信用额度=float", ok=True)
    refused = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", "--dry-run")
    assert "--table orders --replace --type '订单日期=date' --type '金额=float'" in refused.output
    cli("import", orders, "--db", db, "--table", "orders", "--replace", "--type", "订单日期=date",
        "--type", "金额=float", ok=True)
    cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", ok=True)
    explained = cli("explain", "000123", "--db", db, "--policy", policy, "--as-of", "2026-06-30", ok=True).output
    assert "上海恒达建材有限公司" in explained and "Tier A (重点客户)" in explained
    assert "20,211.17" in explained  # the refund counts against revenue, the cancelled order not at all
