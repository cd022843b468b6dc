"""Rule tables edited the way an office user edits them in Excel or WPS.

Merged cells, a notes column, numbers typed with a Chinese input method or saved by a European Excel, a
tier named by its Chinese label, a condition that breaks the policy: each is named at the sheet's file,
sheet, row and column with the fix, and the policy file is left exactly as it was.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.rule_table import ColumnSpec
from crm_rules.engine.rule_table_cells import read_cell

openpyxl = pytest.importorskip("openpyxl")

SHIPPED = Path(str(shipped_policies_dir()))


@pytest.fixture
def policy(tmp_path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target / "base.yaml"


def _workbook(cli, policy: Path, table: str, tmp_path: Path):
    sheet = tmp_path / f"{table}.xlsx"
    cli("table", "export", policy, "--table", table, "--out", sheet, ok=True)
    wb = openpyxl.load_workbook(sheet)
    return sheet, wb, wb.active


def _refused(cli, policy: Path, sheet: Path, table: str, *fragments: str) -> str:
    before = policy.read_bytes()
    result = cli("table", "import", policy, sheet, "--table", table)
    assert result.exit_code == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in:\n{result.output}"
    assert policy.read_bytes() == before
    return result.output


def test_merged_cells_are_refused_not_read_as_an_empty_label(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "tiers", tmp_path)
    ws.merge_cells("B3:B4")  # B and C 'share' a label: C's cell reads as empty, which deleted its label
    wb.save(sheet)
    _refused(cli, policy, sheet, "tiers",
             "tiers.xlsx: sheet 'tiers', row 3, column B (label): merged cells B3:B4: a merged cell keeps its value in "
             "its first cell only", "unmerge them")


def test_merged_empty_cells_lose_nothing_and_import(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "tiers", tmp_path)
    ws["D1"], ws["D2"] = None, None
    ws.merge_cells("D3:D4")  # beside the table, empty: nothing to lose
    wb.save(sheet)
    result = cli("table", "import", policy, sheet, "--table", "tiers", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "no changes" in result.output


def test_a_policy_error_is_named_at_the_sheet_cell_that_caused_it(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "subgrades", tmp_path)
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("when") + 1).value = "revenue_12m ＞＝ 500000 或 margin_12m >= 0.3"
    wb.save(sheet)
    out = _refused(cli, policy, sheet, "subgrades", "2 problems: with", "the policy would be invalid")
    column = "ABCDEFG"[header.index("when")]
    lines = [line.strip() for line in out.splitlines() if "sheet 'subgrades'" in line]
    assert lines == [  # in the order written in the cell
        f"{sheet}: sheet 'subgrades', row 2, column {column} (when): syntax error: '＞＝' are full-width characters, "
        f"typed with a Chinese input method; write the ASCII '>='",
        f"{sheet}: sheet 'subgrades', row 2, column {column} (when): syntax error: '或' is not an operator of the "
        f"language; write 'or'"]
    assert "as it would be" not in out


def test_a_removed_tier_is_named_at_the_lines_that_still_use_it_in_the_file_as_it_is(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "tiers", tmp_path)
    ws.delete_rows(3)  # tier B, which service levels and actions use
    wb.save(sheet)
    out = _refused(cli, policy, sheet, "tiers", "the sheet removes 'B': where the policy still uses it")
    text = policy.read_text(encoding="utf-8").splitlines()
    line = next(n for n, t in enumerate(text, 1) if t.strip() == "tier: B")
    assert f"{policy}:{line}:11: service_levels[2].tier: unknown tier 'B'" in out


def test_a_notes_column_is_told_where_notes_can_go(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "stages", tmp_path)
    ws["G1"], ws["G2"] = "备注", "老板要求"
    wb.save(sheet)
    _refused(cli, policy, sheet, "stages", "sheet 'stages', row 1, column G (备注): unknown column '备注'",
             "delete it and keep notes on another sheet of the workbook (or in the description column")
    del ws["G1"], ws["G2"]  # the notes on a sheet of their own: the table's sheet is the one read
    notes = wb.create_sheet("备注")
    notes["A1"] = "老板要求"
    wb.save(sheet)
    result = cli("table", "import", policy, sheet, "--table", "stages", "--dry-run")
    assert result.exit_code == 0 and "no changes" in result.output, result.output


@pytest.mark.parametrize("typed, hint", [
    ("3，000", "write it without thousands separators: 3000; it holds full-width characters"),
    ("2万", "write 20000 (万 = 10,000)"),
    ("30元", "write the number alone, without '元': 30"),
])
def test_numbers_written_as_in_a_report_get_the_number_to_write(cli, policy, tmp_path, typed, hint):
    sheet, wb, ws = _workbook(cli, policy, "service_levels", tmp_path)
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("attributes.cost_per_customer") + 1).value = typed
    wb.save(sheet)
    _refused(cli, policy, sheet, "service_levels", f"'{typed}' is not a number", hint)


def test_full_width_digits_and_point_are_the_number_they_show(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "service_levels", tmp_path)
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("discount") + 1).value = "０．０６"
    wb.save(sheet)
    result = cli("table", "import", policy, sheet, "--table", "service_levels")
    assert result.exit_code == 0, result.output
    assert "discount: 0.05 -> 0.06" in result.output
    assert "discount: 0.06\n" in policy.read_text(encoding="utf-8")


def test_thousands_grouped_with_dots_in_a_semicolon_csv_are_refused_not_read_as_decimals(cli, policy, tmp_path):
    """A European Excel saves 3000 as 3.000 in a file separated by ';': it was read as 3."""
    sheet = tmp_path / "sl.csv"
    cli("table", "export", policy, "--table", "service_levels", "--out", sheet, ok=True)
    rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"), newline="")))
    rows[2][rows[0].index("attributes.cost_per_customer")] = "3.000"
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(rows)
    sheet.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    _refused(cli, policy, sheet, "service_levels",
             "sl.csv: row 3, column N (attributes.cost_per_customer): '3.000' is not a number",
             "so 3.000 may be 3000: write 3000, or 3 if that is meant")


def test_a_tier_or_stage_named_by_its_chinese_label_is_told_its_id(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "service_levels", tmp_path)
    header = [c.value for c in ws[1]]
    ws.cell(row=3, column=header.index("stage") + 1).value = "衰退期"
    wb.save(sheet)
    _refused(cli, policy, sheet, "service_levels",
             "row 3, column C (stage): \"衰退期\" is not a valid id",
             "'衰退期' is the label of stage 'decline': write its id, decline")
    sub, wb, ws = _workbook(cli, policy, "subgrades", tmp_path)
    ws["B2"], ws["B3"] = "Ａ", "重点客户"
    wb.save(sub)
    _refused(cli, policy, sub, "subgrades",
             "row 2, column B (tier): unknown tier 'Ａ'; 'Ａ' is a full-width letter, typed with a Chinese input "
             "method; write the ASCII 'A'",
             "row 3, column B (tier): unknown tier '重点客户'; '重点客户' is the label of tier 'A': write its id, A")


def test_yes_and_no_in_chinese_are_true_and_false(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "subgrades", tmp_path)
    header = [c.value for c in ws[1]]
    ws.cell(row=3, column=header.index("default") + 1).value = "是"
    wb.save(sheet)
    result = cli("table", "import", policy, sheet, "--table", "subgrades", "--dry-run")
    assert result.exit_code == 0 and "no changes" in result.output, result.output
    column = ColumnSpec("default", ("default",), "bool")
    assert read_cell("否", column, True, []) is False and read_cell("ＴＲＵＥ", column, False, []) is True


def test_spaces_around_an_edited_text_are_not_written_into_the_policy(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "stages", tmp_path)
    header = [c.value for c in ws[1]]
    ws.cell(row=3, column=header.index("strategy") + 1).value = "  早期预警\u3000"
    ws.cell(row=3, column=header.index("id") + 1).value = "decline\u3000"
    wb.save(sheet)
    result = cli("table", "import", policy, sheet, "--table", "stages")
    assert result.exit_code == 0, result.output
    assert '-> "早期预警"' in result.output
    assert "      strategy: 早期预警\n" in policy.read_text(encoding="utf-8")


def test_a_cell_in_a_column_without_a_name_is_named_with_its_row(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "stages", tmp_path)
    ws["H4"] = "看这里"
    wb.save(sheet)
    _refused(cli, policy, sheet, "stages",
             "sheet 'stages', row 1, column H: this column has no name but holds '看这里' in row 4")


def test_a_new_tier_without_a_service_level_is_noted_while_the_sheet_is_open(cli, policy, tmp_path):
    sheet, wb, ws = _workbook(cli, policy, "tiers", tmp_path)
    ws.insert_rows(3)
    ws["A3"], ws["B3"], ws["C3"] = "A2x", "潜力客户 Potential", "0.88"  # a threshold typed as text
    wb.save(sheet)
    result = cli("table", "import", policy, sheet, "--table", "tiers")
    assert result.exit_code == 0, result.output
    assert "+ A2x (row 3): label \"潜力客户 Potential\", up_to 0.88" in result.output
    assert "note: tier 'A2x' has no service level: its customers will get none" in result.output
    assert "    - id: A2x\n      label: 潜力客户 Potential\n      up_to: 0.88\n" in policy.read_text(encoding="utf-8")
    result = cli("table", "import", policy, sheet, "--table", "tiers", "--json")  # the tier already had none: no note
    assert result.exit_code == 0 and '"notes": []' in result.output, result.output
