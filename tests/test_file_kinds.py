"""A file given where another kind is expected is named for what it is, with the command that takes it.

A workbook as the policy was "not valid UTF-8 (byte 0xc7)", a database given to `test` was "no test file
crm.test.yaml next to this policy", a policy as --db was SQLite's "file is not a database".
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import AS_OF, file_digest


@pytest.fixture
def files(tmp_path, demo_db) -> dict[str, Path]:
    """A workbook, an old workbook, a CSV file, a policy and the database, as a user has them."""
    sheet = tmp_path / "tiers.xlsx"
    with zipfile.ZipFile(sheet, "w") as workbook:  # what matters is the ZIP signature every .xlsx starts with
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    old = tmp_path / "tiers.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500)
    data = tmp_path / "customers.csv"
    data.write_text("id,name\nC1,上海华东\n", encoding="utf-8")
    policy = tmp_path / "base.yaml"
    from crm_rules.engine.policy_files import shipped_policies_dir

    shutil.copy(Path(str(shipped_policies_dir())) / "base.yaml", policy)
    return {"xlsx": sheet, "xls": old, "csv": data, "policy": policy, "db": demo_db}


def _clean(result) -> str:
    assert "Traceback" not in result.output and "not valid UTF-8" not in result.output, result.output
    return result.output


@pytest.mark.parametrize("command", [["apply", "--as-of", AS_OF], ["validate"], ["table", "export"],
                                     ["explain", "C000001", "--as-of", AS_OF], ["analyze", "--as-of", AS_OF]])
def test_a_workbook_or_csv_file_given_as_the_policy_is_named(cli, files, command):
    for key, what in (("xlsx", "is an Excel workbook (.xlsx) or another ZIP archive, not a policy"),
                      ("xls", "is an Excel 97-2003 workbook (.xls), not a policy"),
                      ("csv", "is a CSV file, not a policy")):
        file = files[key]
        if command[0] == "validate" or command[0] == "table":
            args = [*command, file]
        else:
            args = [command[0], *command[1:], "--db", files["db"], "-p", file]
        before = file_digest(files["db"])
        output = _clean(result := cli(*args))
        assert result.exit_code == 2 and f"error: {file}: {what}" in output, output
        assert "hint: a policy is a YAML file; " in output
        assert file_digest(files["db"]) == before
    sheet = cli(*(["validate", files["xlsx"]] if command[0] == "validate" else
                  ["table", "export", files["xlsx"]] if command[0] == "table" else
                  [command[0], *command[1:], "--db", files["db"], "-p", files["xlsx"]])).output
    assert "crm-rules table import POLICY.yaml SHEET.xlsx --table NAME" in sheet


def test_a_workbook_named_by_extends_is_a_problem_at_the_extends_line(cli, files, tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"name: child\nextends: {files['xlsx'].name}\n", encoding="utf-8")
    result = cli("validate", child)
    assert result.exit_code == 1
    assert f"{child}:2:10: extends: {files['xlsx']}: is an Excel workbook (.xlsx)" in _clean(result)


@pytest.mark.parametrize("key,said,hint", [
    ("db", "is a SQLite database, not a policy or a policy test file", "it needs no database"),
    ("xlsx", "is an Excel workbook (.xlsx) or another ZIP archive, not a policy or a policy test file",
     "crm-rules table import"),
    ("csv", "is a CSV file, not a policy or a policy test file", "table: {csv: customers.csv}"),
])
def test_test_given_a_database_workbook_or_csv_file_says_what_it_takes(cli, files, key, said, hint):
    result = cli("test", files[key])
    output = _clean(result)
    assert result.exit_code == 2 and f"error: {files[key]}: {said}" in output, output
    assert "crm-rules test runs test files (*.test.yaml" in output and hint in output
    assert "next to this policy" not in output


def test_a_workbook_named_like_a_test_file_is_said_to_be_a_workbook(cli, files, tmp_path):
    named = tmp_path / "base.test.yaml"
    shutil.copy(files["xlsx"], named)
    result = cli("test", named)
    assert result.exit_code == 2
    assert f"{named}: is an Excel workbook (.xlsx) or another ZIP archive, not a policy test file" in _clean(result)


@pytest.mark.parametrize("key,said,hint", [
    ("policy", "not a SQLite database but a YAML file (a policy or a policy test)",
     "a YAML policy goes to --policy/-p (were the two swapped?)"),
    ("csv", "not a SQLite database but a CSV file", "crm-rules import FILE.csv --db DATABASE.db --table NAME"),
    ("xlsx", "not a SQLite database but an Excel workbook (.xlsx)", "save each sheet as 'CSV UTF-8'"),
])
def test_db_given_a_policy_csv_or_workbook_says_what_it_is(cli, files, key, said, hint):
    for command in (["apply", "-p", "base", "--as-of", AS_OF], ["runs"], ["report", "--out", files["db"].parent / "r.html"]):
        before = file_digest(files[key])
        result = cli(*command, "--db", files[key])
        output = _clean(result)
        assert result.exit_code == 1 and f"error: {files[key]}: {said}" in output, output
        assert "hint: pass the path of a SQLite database file; " in output and hint in output
        assert file_digest(files[key]) == before
    assert not (files["db"].parent / "r.html").exists()


def test_results_db_given_a_csv_file_points_at_export(cli, files):
    result = cli("apply", "--db", files["db"], "-p", "base", "--as-of", AS_OF, "--results-db", files["csv"])
    assert result.exit_code == 1 and f"{files['csv']}: not a SQLite database but a CSV file" in _clean(result)
    assert "--results-db is the database the runs are written to" in result.output
    assert "crm-rules export --format csv" in result.output


@pytest.mark.parametrize("name", ["new.csv", "new.yaml", "new.xlsx"])
def test_import_does_not_create_a_database_named_like_another_kind_of_file(cli, files, name):
    target = files["db"].parent / name
    result = cli("import", files["csv"], "--db", target, "--table", "t")
    assert result.exit_code == 2 and f"--db {target}: would create a SQLite database named like" in _clean(result)
    assert "e.g. --db crm.db" in result.output and not target.exists()


@pytest.mark.parametrize("key,what", [("db", "is a SQLite database"),
                                      ("policy", "is a YAML file (a policy or a policy test)")])
def test_table_import_given_the_database_or_policy_as_the_sheet(cli, files, key, what):
    before = file_digest(files["policy"])
    result = cli("table", "import", files["policy"], files[key], "--table", "tiers")
    assert result.exit_code == 2
    assert f"{files[key]}: {what}, not a rule table sheet (.csv or .xlsx)" in _clean(result)
    assert "takes the policy first, then the edited sheet" in result.output
    assert file_digest(files["policy"]) == before
