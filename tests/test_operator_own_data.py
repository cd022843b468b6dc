"""An operations person's first day with crm-rules, with the company's own ERP exports: a GBK customer file with a
duplicated id and credit limits written 20,000.00, an order file in UTF-8 with a byte-order mark, dates in four
forms, amounts with ¥ and 元, returns, cancelled orders, orders of a customer the customer file lacks and a 合计
row, and an interaction file of only its header.  Each refusal must name the file, the line or row, the value and
the fix, change nothing, and the fix it gives must work when done as told; then the day-to-day commands."""

from __future__ import annotations

import codecs
import shlex
import sqlite3
from pathlib import Path

CUSTOMERS = [
    ("KH00001", "杭州王记建材商行", "2019/3/5", "200,000.00"),
    ("KH00002", "宁波徐记装饰工程有限公司", "2020-06-01", "50,000.00"),
    ("KH00003", "苏州李氏五金店", "2021年1月9日", "20,000.00"),
    ("KH00004", "温州徐记建材商行", "2022.11.30", "20,000.00"),
    ("KH00005", "合肥陈家水电安装部", "2018/12/1", "100,000.00"),
]
ORDERS = [  # (customer, date, amount, status)
    ("KH00001", "2026/5/3", "¥120,000.00", "已完成"), ("KH00001", "2026年2月1日", "¥80,000.00", "已完成"),
    ("KH00001", "2026-04-10", "-¥5,000.00", "退货"), ("KH00002", "2026.03.15", "30,000.00元", "已完成"),
    ("KH00002", "2026/6/1", "¥500,000.00", "已取消"), ("KH00003", "2025/9/9", "8,000.00元", "已完成"),
    ("KH00004", "2026/1/20", "¥12,500.50", "已完成"), ("KH00005", "2024/3/3", "¥3,000.00", "已完成"),
    ("KH09001", "2026/2/2", "¥9,999.00", "已完成"),
]
POLICY = """\
name: 建材批发
extends: base
data:
  customers:
    id: 客户编号
    name: 客户名称
    attributes: {region: null, industry: null, account_manager: null,
                 since: {column: 建档日期, type: date}, credit_limit: {column: 信用额度, type: number}}
  orders:
    customer: 客户编号
    date: 下单日期
    amount: 金额
    columns: {cost: null, discount: null}
    where: "状态 != '已取消'"
  interactions: {customer: 客户编号, date: 回访日期, kind: 类型}
metrics:
  profit_12m: null
  margin_12m: null
  discount_12m: null
  overdue_amount: null
  collection_rate_12m: null
scores: {}
credit: {}
actions: {}
tiers:
  method: pareto
  metric: revenue_12m
  levels:
    - {id: A, label: 重点客户, up_to: 0.8}
    - {id: B, label: 成长客户, up_to: 0.95}
    - {id: C, label: 一般客户}
service_levels:
  - {id: A-key, tier: A, label: 重点客户服务, response_time: 15m}
  - {id: B-growth, tier: B, label: 成长客户服务, response_time: 1h}
  - {id: C-standard, tier: C, label: 标准服务, response_time: 1d}
"""


def export_files(folder: Path) -> None:
    """The files as the ERP wrote them."""
    lines = ["客户编号,客户名称,建档日期,信用额度"]
    lines += [f'{cid},{name},{since},"{limit}"' for cid, name, since, limit in CUSTOMERS]
    lines += ['KH00003,苏州李氏五金店(重复),2021/1/9,"20,000.00"', ""]
    (folder / "客户.csv").write_bytes("\r\n".join(lines).encode("gbk"))
    rows = ["订单号,客户编号,下单日期,金额,状态"]
    rows += [f'SO{n:04d},{cid},{day},"{amount}",{status}' for n, (cid, day, amount, status) in enumerate(ORDERS, 1)]
    rows += ["", ',合计,,"¥758,499.50",', ""]
    (folder / "订单.csv").write_bytes(codecs.BOM_UTF8 + "\r\n".join(rows).encode("utf-8"))
    (folder / "回访记录.csv").write_text("客户编号,回访日期,类型\n", encoding="utf-8")


def told(output: str, after: str) -> list[str]:
    """The command the output gives after ``after``, as a shell splits it, without `crm-rules`."""
    return shlex.split(output.split(after, 1)[1].splitlines()[0].strip().rstrip(")"))[1:]


def run_sql(db: Path, sql: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql)


def test_a_first_day_with_the_company_s_own_exports(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    export_files(tmp_path)
    db = Path("crm.db")

    # the customers: GBK, then credit limits with thousands separators, whose fix names the dates too
    result = cli("import", "客户.csv", "--db", db, "--table", "customers")
    assert result.exit_code == 1 and not db.exists()
    assert "客户.csv:1: not valid UTF-8" in result.output and "import it with --encoding gbk" in result.output
    result = cli("import", "客户.csv", "--db", db, "--table", "customers", "--encoding", "gbk")
    assert result.exit_code == 1 and not db.exists()
    assert "客户.csv:2: column '信用额度': '200,000.00' is not a number" in result.output
    assert "--type '信用额度=float'" in result.output and "add --type '建档日期=date' too" in result.output
    cli("import", "客户.csv", "--db", db, "--table", "customers", "--encoding", "gbk", "--type", "信用额度=float",
        "--type", "建档日期=date", ok=True)

    # the orders: the 合计 row is refused, then left out; the note's command stores amounts and dates
    result = cli("import", "订单.csv", "--db", db, "--table", "orders")
    assert result.exit_code == 1
    assert "订单.csv:12: a totals row, not a record: '合计' in '客户编号', 金额 '¥758,499.50'" in result.output
    result = cli("import", "订单.csv", "--db", db, "--table", "orders", "--skip-totals", ok=True)
    assert "note: left out 1 totals row (--skip-totals): line 12" in result.output
    again = told(result.output, "import again with: crm-rules")
    assert again[-4:] == ["--type", "金额=float", "--type", "下单日期=date"] and "--skip-totals" in again
    cli("import", *again, ok=True)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), sum(金额), min(下单日期) FROM orders").fetchone() == (
            9, 758499.5, "2024-03-03")
    result = cli("import", "回访记录.csv", "--db", db, "--table", "interactions", ok=True)
    assert "holds no rows, only its header" in result.output

    # the policy: a filter on the table's own column name gets the mapping to add
    policy = tmp_path / "建材.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    result = cli("validate", policy, "--db", db)
    assert result.exit_code == 1
    assert ("data.orders.where: unknown orders column '状态'; to read a column '状态' of orders, map it first under a "
            "name of letters A-Z, digits and _ (data.orders.columns: {NAME: {column: 状态, type: text}})") in result.output
    policy.write_text(POLICY.replace("columns: {cost: null, discount: null}",
                                     "columns: {cost: null, discount: null, status: {column: 状态, type: text}}")
                      .replace("状态 != '已取消'", "status != '已取消'"), encoding="utf-8")
    cli("validate", policy, "--db", db, ok=True)

    # the data: the duplicated id, then the orders of a customer the file lacks, each with its fix
    before = db.read_bytes()
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", "--dry-run")
    assert result.exit_code == 1 and db.read_bytes() == before
    assert "customer ids are not unique in table 'customers': 'KH00003' (2 times" in result.output
    run_sql(db, "DELETE FROM customers WHERE 客户名称 LIKE '%(重复)'")
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", "--dry-run")
    assert result.exit_code == 1
    assert "table 'orders' has rows for customers that are not in 'customers': 'KH09001'" in result.output
    delete = result.output.split("remove their rows (", 1)[1].split("); a typo", 1)[0]
    assert delete == 'DELETE FROM "orders" WHERE "客户编号" NOT IN (SELECT "客户编号" FROM "customers")'
    run_sql(db, delete)

    # the runs, and what an operator reads of them
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", ok=True)
    assert "建材批发 as of 2026-06-30: 5 customers graded" in result.output
    assert "data.orders.where (status != '已取消') drops 1 of the 8 rows" in result.output
    assert "the table 'interactions' is empty" in result.output
    cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-03-31", ok=True)
    changes = cli("changes", "--db", db, ok=True).output  # the latest date's run against the one before it
    assert "run 1 (as of 2026-06-30, 5 customers) vs run 2 (as of 2026-03-31" in changes
    result = cli("history", "徐记", "--db", db)
    assert result.exit_code == 2
    assert ("'徐记' is in the name of 'KH00002' (宁波徐记装饰工程有限公司) and 'KH00004' (温州徐记建材商行): the command "
            "takes a customer's id, e.g. crm-rules history KH00002") in result.output
    result = cli("explain", "宁波徐记装饰工程有限公司", "--db", db, "--policy", policy, "--as-of", "2026-06-30")
    assert result.exit_code == 2
    assert "'宁波徐记装饰工程有限公司' is the name of customer 'KH00002'" in result.output
    explained = cli("explain", "KH00001", "--db", db, "--policy", policy, "--as-of", "2026-06-30", ok=True).output
    assert "杭州王记建材商行" in explained and "195,000" in explained  # the return nets against revenue
    cli("export", "--db", db, "--out", "grades.csv", ok=True)
    assert "宁波徐记装饰工程有限公司" in Path("grades.csv").read_text(encoding="utf-8-sig")
    cli("report", "--db", db, "--out", "report.html", ok=True)
    assert "重点客户" in Path("report.html").read_text(encoding="utf-8")


def test_dates_left_as_text_get_a_listing_to_read_and_the_whole_reimport(cli, tmp_path: Path) -> None:
    """Customers imported without --type 建档日期=date: the run lists every bad date by a query a third as long as
    before (the check once, not three times: no date with a time-zone offset or a zero date split off), and its
    hint reminds that the import again takes the first import's options too."""
    db = tmp_path / "crm.db"
    lines = ["客户编号,客户名称,建档日期,信用额度"] + [f"KH{n:05d},客户{n},2020/{n}/{n},1000" for n in range(1, 13)]
    (tmp_path / "客户.csv").write_bytes("\n".join(lines).encode("gbk"))
    cli("import", tmp_path / "客户.csv", "--db", db, "--table", "customers", "--encoding", "gbk", ok=True)
    (tmp_path / "orders.csv").write_text("订单号,客户编号,下单日期,金额\nSO1,KH00001,2026-05-01,100\n", encoding="utf-8")
    cli("import", tmp_path / "orders.csv", "--db", db, "--table", "orders", ok=True)
    (tmp_path / "回访记录.csv").write_text("客户编号,回访日期,类型\n", encoding="utf-8")
    cli("import", tmp_path / "回访记录.csv", "--db", db, "--table", "interactions", ok=True)
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.replace("    where: \"状态 != '已取消'\"\n", ""), encoding="utf-8")
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30", "--dry-run")
    assert result.exit_code == 1
    listing = result.output.split("list them with: ", 1)[1].splitlines()[0]
    assert listing.startswith('SELECT rowid, * FROM "customers" AS r WHERE (date(r."建档日期"') and len(listing) < 400
    with sqlite3.connect(db) as conn:
        assert [row[0] for row in conn.execute(listing)] == list(range(1, 13))
    assert ("--replace --type '建档日期=date' (the file the table came from, with the options of that import too: "
            "--encoding, --skip-totals, its other --types)") in result.output
