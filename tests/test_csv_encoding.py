"""CSV files that are not UTF-8: what Excel saves as plain "CSV" on Chinese Windows is GBK.

Nothing guesses the encoding: a file that is not UTF-8 is refused at its line, and when it reads whole as GBK the
message shows the line as it reads so, for the user to confirm with ``--encoding gbk``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from crm_rules.engine.policy_files import shipped_policies_dir

ROWS = "客户编号,客户名称,城市\n000123,北京华盛建材有限公司,北京\n000124,上海浦东装饰工程公司,上海\n"


def _gbk_file(tmp_path: Path) -> Path:
    path = tmp_path / "客户.csv"
    path.write_bytes(ROWS.encode("gbk"))
    return path


def test_a_gbk_file_is_refused_with_how_it_reads_as_gbk_and_nothing_is_written(cli, tmp_path):
    db = tmp_path / "crm.db"
    result = cli("import", _gbk_file(tmp_path), "--db", db, "--table", "customers")
    assert result.exit_code == 1
    assert "客户.csv:1: not valid UTF-8" in result.stderr
    assert "read as GBK, line 1 is '客户编号,客户名称,城市': if that is right, import it with --encoding gbk" in result.stderr
    assert not db.exists()


def test_encoding_gbk_imports_the_chinese_text_as_it_is(cli, tmp_path):
    db = tmp_path / "crm.db"
    result = cli("import", _gbk_file(tmp_path), "--db", db, "--table", "customers", "--encoding", "GBK", ok=True)
    assert "imported 2 rows into customers" in result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT * FROM customers").fetchall() == [
            ("000123", "北京华盛建材有限公司", "北京"), ("000124", "上海浦东装饰工程公司", "上海")]


def test_an_encoding_the_file_is_not_in_names_its_line(cli, tmp_path):
    path = tmp_path / "utf8.csv"
    path.write_text("id,name\n1,ok\n2,华东\n", encoding="utf-8")
    result = cli("import", path, "--db", tmp_path / "crm.db", "--table", "t", "--encoding", "ascii")
    assert result.exit_code == 1
    assert f"{path}:3: not valid ascii" in result.stderr and "leave out --encoding for UTF-8" in result.stderr


def test_an_unknown_encoding_is_a_usage_error(cli, tmp_path):
    result = cli("import", _gbk_file(tmp_path), "--db", tmp_path / "crm.db", "--table", "t", "--encoding", "klingon")
    assert result.exit_code == 2
    assert "--encoding 'klingon' is not an encoding Python knows" in result.stderr
    assert not (tmp_path / "crm.db").exists()


def test_table_import_reads_a_sheet_saved_in_gbk(cli, tmp_path):
    policies = tmp_path / "policies"
    shutil.copytree(Path(str(shipped_policies_dir())), policies, ignore=shutil.ignore_patterns("__pycache__"))
    policy = policies / "base.yaml"
    sheet = tmp_path / "tiers.csv"
    cli("table", "export", policy, "--table", "tiers", "--out", sheet, ok=True)
    text = sheet.read_text(encoding="utf-8-sig").replace("重点客户", "核心客户")
    assert "核心客户" in text
    sheet.write_bytes(text.encode("gbk"))  # Excel on Chinese Windows, File > Save As > CSV
    refused = cli("table", "import", policy, sheet, "--table", "tiers")
    assert refused.exit_code == 1 and "if that is right, import it with --encoding gbk" in refused.stderr
    cli("table", "import", policy, sheet, "--table", "tiers", "--encoding", "gbk", ok=True)
    assert "核心客户" in policy.read_text(encoding="utf-8")
