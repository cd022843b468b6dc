"""Rule tables as spreadsheets: ``crm-rules table export/import`` and ``crm-rules schema``.

The promise to business staff: edit tiers, sub-grades, stages and service levels
in Excel, bring the sheet back, and the YAML changes exactly where a cell
changed: comments, order, quoting and layout stay; a bad cell or an edit that
breaks the policy is reported and writes nothing.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import shutil
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_rules.engine import rule_table as rt
from crm_rules.engine.rule_table_import import import_table
from crm_rules.engine import yaml_edit as ye
from crm_rules.engine.errors import CrmRulesError
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.yaml_source import load_yaml_text

openpyxl = pytest.importorskip("openpyxl")

SHIPPED = Path(str(shipped_policies_dir()))
POLICIES = sorted(p.name for p in SHIPPED.glob("*.yaml") if not p.name.endswith(".test.yaml"))
VALID = Path(__file__).parent / "policies" / "valid"


def _own_tables(name: str) -> list[str]:
    try:
        data = load_yaml_text((SHIPPED / name).read_bytes(), name).data
    except CrmRulesError:  # an unreadable shipped policy fails tests/test_policy_validation.py, not collection here
        return []
    return [spec.name for spec in rt.TABLES.values() if rt.has_list(data, spec.path)]


CASES = [(p, t) for p in POLICIES for t in _own_tables(p)]


@pytest.fixture
def pol(tmp_path) -> Path:
    """A copy of the whole shipped policies folder, so `extends: base` finds the copy's base.yaml."""
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]], bom: bool = True) -> None:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows([header] + rows)
    path.write_bytes(buffer.getvalue().encode("utf-8-sig" if bom else "utf-8"))


def cell(header: list[str], rows: list[list[str]], row_id: str, column: str) -> tuple[list[str], int]:
    row = next(r for r in rows if r[0] == row_id)
    return row, header.index(column)


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def export(cli, policy: Path, table: str, out: Path):
    return cli("table", "export", policy, "--table", table, "--out", out, ok=True)


# --- round trip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("policy,table", CASES, ids=[f"{p[:-5]}-{t}" for p, t in CASES])
def test_round_trip_without_edits_gives_the_identical_file(cli, pol, tmp_path, policy, table, fmt):
    path = pol / policy
    before = path.read_bytes()
    sheet = tmp_path / f"{table}.{fmt}"
    export(cli, path, table, sheet)
    result = cli("table", "import", path, sheet, "--table", table, ok=True)
    assert "no changes" in result.output
    assert path.read_bytes() == before
    # the edit machinery ran and rebuilt the table: it must give back every byte (it raises otherwise)
    assert import_table(path, table, sheet, dry_run=True).new_text == before.decode("utf-8-sig")


def test_every_shipped_policy_has_tables_to_test():
    assert {"base.yaml", "vip_card.yaml", "b2b_key_account.yaml"} <= set(POLICIES)
    assert ("base.yaml", "stages") in CASES and ("b2b_key_account.yaml", "subgrades") in CASES


@pytest.mark.parametrize("name", ["rules_unique.yaml", "extends_base.yaml", "minimal.yaml"])
def test_round_trip_of_flow_style_rows(cli, tmp_path, name):
    shutil.copytree(VALID, tmp_path / "valid")
    shutil.copytree(SHIPPED, tmp_path / "policies")
    path = tmp_path / "valid" / name
    before = path.read_bytes()
    export(cli, path, "tiers", tmp_path / "t.csv")
    assert "no changes" in cli("table", "import", path, tmp_path / "t.csv", "--table", "tiers", ok=True).output
    assert path.read_bytes() == before


# --- listing and inherited tables ----------------------------------------------------------------


def test_listing_tables_says_which_are_inherited(cli, pol):
    text = cli("table", "export", pol / "vip_card.yaml", ok=True).output
    assert "tiers" in text and "service_levels" in text and "inherited from" in text
    listing = json.loads(cli("table", "export", pol / "vip_card.yaml", "--json", ok=True).output)
    tables = {t["table"]: t for t in listing["tables"]}
    assert tables["tiers"]["own"] and tables["tiers"]["rows"] == 4
    assert tables["tiers"]["columns"][:2] == ["id", "label"]
    assert not tables["stages"]["own"] and tables["stages"]["inherited_from"] == str(pol / "base.yaml")
    base = json.loads(cli("table", "export", pol / "base.yaml", "--json", ok=True).output)
    assert all(t["own"] for t in base["tables"])


def test_exporting_an_inherited_table_points_at_the_parent(cli, pol, tmp_path):
    result = cli("table", "export", pol / "vip_card.yaml", "--table", "stages")
    assert result.exit_code == 2
    assert "inherited from" in result.output and str(pol / "base.yaml") in result.output
    assert f"crm-rules table export {pol / 'base.yaml'} --table stages" in result.output
    imported = cli("table", "import", pol / "vip_card.yaml", tmp_path / "x.csv", "--table", "lifecycle")
    assert imported.exit_code == 2 and "inherited from" in imported.output


def test_shipped_policies_are_exported_by_name_but_never_edited_in_place(cli, tmp_path):
    out = cli("table", "export", "base", "--table", "stages", ok=True).output
    assert out.startswith("id,label,when") and "流失期 Lost" in out
    (tmp_path / "s.csv").write_text(out, encoding="utf-8")
    result = cli("table", "import", "base", tmp_path / "s.csv", "--table", "stages")
    assert result.exit_code == 2 and "shipped policy" in result.output and "crm-rules demo" in result.output
    exported = cli("table", "export", "base", "--table", "stages", "--out", tmp_path / "t.csv", ok=True).output
    assert "next: edit it, then crm-rules table import base" not in exported  # the import it suggested was refused
    assert "note: base is a shipped policy, not edited in place" in exported


def test_a_table_inherited_from_a_shipped_policy_is_overridden_not_edited_there(cli, tmp_path):
    """'edit them in the parent: crm-rules table export <the installed package>/policies/base.yaml' sent the user
    into the installed package."""
    child = tmp_path / "child.yaml"
    child.write_text("extends: base\nname: child\n", encoding="utf-8")
    listing = cli("table", "export", child, ok=True).output
    assert "inherited from the shipped policy base; to" in listing and "edit it there" not in listing
    assert "change it, write a lifecycle section" in " ".join(listing.replace("│", " ").split())
    result = cli("table", "export", child, "--table", "stages")
    assert result.exit_code == 2 and "edit them in the parent" not in result.output
    assert "add `lifecycle: {stages: []}` to child.yaml and import the sheet into it" in " ".join(result.output.split())
    cli("table", "export", "base", "--table", "stages", "--out", tmp_path / "s.csv", ok=True)
    child.write_text("extends: base\nname: child\nlifecycle: {stages: []}\n", encoding="utf-8")  # as the hint says
    assert "5 added" in cli("table", "import", child, tmp_path / "s.csv", "--table", "stages", ok=True).output


def test_unknown_table_and_formats(cli, pol, tmp_path):
    result = cli("table", "export", pol / "base.yaml", "--table", "tier")  # an alias
    assert result.exit_code == 0 and result.output.startswith("id,label,up_to")
    bad = cli("table", "export", pol / "base.yaml", "--table", "servce_levels")
    assert bad.exit_code == 2 and "did you mean 'service_levels'" in bad.output
    xlsx = cli("table", "export", pol / "base.yaml", "--table", "tiers", "--format", "xlsx")
    assert xlsx.exit_code == 2 and "--out" in xlsx.output
    odd = cli("table", "export", pol / "base.yaml", "--table", "tiers", "--out", tmp_path / "t.txt")
    assert odd.exit_code == 2 and "--format" in odd.output


@pytest.mark.parametrize("name,meant", [("tier_levels", "tiers"), ("servce_levels", "service_levels"), ("sub_grade", "subgrades"),
                                        ("stage_list", "stages"), ("tiers_subgrades", "subgrades"), ("levles", "tiers"),
                                        ("customers", None)])
def test_an_unknown_table_name_suggests_the_table_its_words_name(cli, pol, name, meant):
    assert rt.closest_table(name) == meant
    result = cli("table", "export", pol / "base.yaml", "--table", name)
    assert result.exit_code == 2 and f"unknown table {name!r}" in result.output
    assert (f"did you mean {meant!r}?" in result.output) if meant else "did you mean" not in result.output


def test_a_format_the_out_extension_contradicts_is_refused(tmp_path):
    from crm_rules.engine.rule_table_io import output_format

    for out, fmt in (("t.csv", "xlsx"), ("t.xlsx", "csv"), ("t.xls", "xlsx")):
        with pytest.raises(CrmRulesError) as caught:
            output_format(tmp_path / out, fmt)
        assert f"is a .{out.split('.')[1]} name but --format is {fmt}" in caught.value.message
        assert f"name the file t.{fmt}" in caught.value.hint
    assert output_format(tmp_path / "t.CSV", "csv") == "csv" and output_format(tmp_path / "t.xlsx", "XLSX") == "xlsx"
    assert output_format(tmp_path / "t.txt", "xlsx") == "xlsx"  # an extension that says nothing: --format decides
    assert output_format(tmp_path / "t.xlsx") == "xlsx" and output_format(None) == "csv" and output_format(None, "xlsx") == "xlsx"
    with pytest.raises(CrmRulesError, match="cannot tell the format"):
        output_format(tmp_path / "t.txt")


def test_csv_to_stdout_has_no_bom_and_file_has_one(cli, pol, tmp_path):
    out = cli("table", "export", pol / "base.yaml", "--table", "stages", ok=True).output
    assert out.startswith("id,label,when")
    export(cli, pol / "base.yaml", "stages", tmp_path / "s.csv")
    raw = (tmp_path / "s.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "流失期 Lost".encode() in raw
    header, rows = read_csv(tmp_path / "s.csv")
    assert header == ["id", "label", "when", "default", "strategy", "focus"]
    lost, i = cell(header, rows, "lost", "focus")
    assert lost[i] == "win-back offer; exit survey"


# --- edits land in the YAML, nothing else changes ---------------------------------------------


def test_edited_threshold_changes_only_its_line_and_keeps_comments(cli, pol, tmp_path):
    path = pol / "b2b_key_account.yaml"
    before = path.read_text(encoding="utf-8")
    sheet = tmp_path / "tiers.csv"
    export(cli, path, "tiers", sheet)
    header, rows = read_csv(sheet)
    row, i = cell(header, rows, "B", "when")
    assert row[i] == "revenue_12m >= 60_000"
    row[i] = "revenue_12m >= 75_000"
    write_csv(sheet, header, rows)
    result = cli("table", "import", path, sheet, "--table", "tiers", ok=True)
    assert '~ B (row 3)' in result.output and '"revenue_12m >= 60_000" -> "revenue_12m >= 75_000"' in result.output
    after = path.read_text(encoding="utf-8")
    assert changed_lines(before, after) == ["-      when: revenue_12m >= 60_000", "+      when: revenue_12m >= 75_000"]
    assert "        # Risk first: a small account that does not pay is a credit problem" in after
    assert load_policy(path).tiers[1].rule.label == "发展客户 Development accounts"


def test_edited_folded_condition_stays_folded(cli, pol, tmp_path):
    path = pol / "b2b_key_account.yaml"
    before = path.read_text(encoding="utf-8")
    sheet = tmp_path / "sub.xlsx"
    export(cli, path, "subgrades", sheet)
    wb = openpyxl.load_workbook(sheet)
    ws = wb.active
    header = [c.value for c in ws[1]]
    assert header[:2] == ["id", "tier"]
    for r in ws.iter_rows(min_row=2):
        if r[0].value == "C2":
            old = r[header.index("when")].value
            assert old == "overdue_amount > 1_000 or collection_rate_12m < 0.7 or credit_utilisation > 1"
            r[header.index("when")].value = old.replace("1_000", "2_000")
    wb.save(sheet)
    cli("table", "import", path, sheet, "--table", "subgrades", ok=True)
    after = path.read_text(encoding="utf-8")
    assert changed_lines(before, after) == [
        "-            overdue_amount > 1_000 or collection_rate_12m < 0.7",
        "-            or credit_utilisation > 1",
        "+            overdue_amount > 2_000 or collection_rate_12m < 0.7 or credit_utilisation > 1",
    ]
    assert "          when: >-\n            overdue_amount > 2_000" in after


def test_nested_columns_lists_new_column_new_row_and_reorder(cli, pol, tmp_path):
    path = pol / "base.yaml"
    sheet = tmp_path / "sl.csv"
    export(cli, path, "service_levels", sheet)
    header, rows = read_csv(sheet)
    assert {"payment.terms_days", "payment.prepayment", "attributes.cost_per_customer", "perks"} <= set(header)
    header.append("attributes.region")
    for r in rows:
        r.append("")
    row, i = cell(header, rows, "A-key", "payment.terms_days")
    row[i] = "75"
    row[header.index("perks")] += "; quarterly golf day"
    row, i = cell(header, rows, "B-growth", "attributes.accounts_per_manager")
    row[i] = ""
    row, i = cell(header, rows, "C-standard", "attributes.region")
    row[i] = "华东"
    new = [""] * len(header)
    for column, value in {"id": "B-recovery", "tier": "B", "stage": "decline", "label": "成长客户挽回 Growth recovery",
                          "response_time": "1h", "discount": "0.03", "payment.terms_days": "30",
                          "perks": "recovery call; offer: 5%", "attributes.cost_per_customer": "700"}.items():
        new[header.index(column)] = value
    rows.insert(3, new)
    rows.append(rows.pop(4))  # C-prepayment last
    write_csv(sheet, header, rows)
    result = cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    assert "+ B-recovery (row 5)" in result.output and "1 added, 3 changed" in result.output
    assert "order: A-key, A-recovery, B-growth, B-recovery, C-standard, C-prepayment" in result.output
    policy = load_policy(path)
    levels = {s.id: s for s in policy.service_levels}
    assert [s.id for s in policy.service_levels] == ["A-key", "A-recovery", "B-growth", "B-recovery", "C-standard", "C-prepayment"]
    assert levels["A-key"].details["payment"] == {"terms_days": 75}
    assert levels["A-key"].details["perks"][-1] == "quarterly golf day"
    assert levels["B-growth"].details["attributes"] == {"cost_per_customer": 600}
    assert levels["C-standard"].details["attributes"] == {"cost_per_customer": 50, "region": "华东"}
    assert levels["B-recovery"].details["discount"] == 0.03 and levels["B-recovery"].details["perks"] == ["recovery call", "offer: 5%"]
    text = path.read_text(encoding="utf-8")
    assert "    payment: {terms_days: 75}\n    perks: [priority delivery, annual business review, dedicated hotline, quarterly golf day]\n" in text
    assert "  - id: B-recovery\n    tier: B\n    stage: decline\n" in text  # block rows like their neighbours
    assert "    attributes: {cost_per_customer: 50, region: 华东}\n" in text  # flow maps like their neighbours
    assert "# What account managers should do, written to crm_actions each run." in text


def test_reorder_add_and_remove_stages(cli, pol, tmp_path):
    path = pol / "base.yaml"
    before = path.read_text(encoding="utf-8")
    sheet = tmp_path / "stages.csv"
    export(cli, path, "stages", sheet)
    header, rows = read_csv(sheet)
    rows = [r for r in rows if r[0] != "identification"]
    rows[0], rows[1] = rows[1], rows[0]  # decline before lost
    new = [""] * len(header)
    new[0], new[header.index("label")], new[header.index("when")] = "vip_watch", "重点关注 Watch", "complaints_12m >= 3"
    new[header.index("focus")] = "call the customer"
    rows.insert(2, new)
    write_csv(sheet, header, rows)
    result = cli("table", "import", path, sheet, "--table", "stages", ok=True)
    assert "- identification" in result.output and "+ vip_watch" in result.output
    assert [s.id for s in load_policy(path).stages] == ["decline", "lost", "vip_watch", "development", "stable"]
    after = path.read_text(encoding="utf-8")
    removed = [line for line in changed_lines(before, after) if line.startswith("-")]
    assert all("identification" in line or "考察期" in line or "tenure_years < 0.5" in line or "Build trust" in line
               or "onboarding" in line for line in removed if not any(w in line for w in ("decline", "lost", "衰退", "流失", "recency", "Win-back", "Early warning", "churn alert", "win-back")))
    assert "      focus: [call the customer]\n" in after  # lists like the neighbours' (flow)


MOVES = """\
extends: base
name: moves
tiers:
  method: rules
  levels:
    - id: A
      when: revenue_12m >= 250_000
      subgrades:
        # Strategic: the few accounts worth an executive sponsor.
        - id: A1
          when: >-
            revenue_12m >= 1_000_000
            or margin_12m >= 0.3
        - id: A2
          default: true
    - id: B
      when: revenue_12m >= 60_000
      subgrades:
          - id: B2
            default: true
    - id: C
      default: true  # everyone else
"""


def test_subgrade_moves_to_another_tier_and_a_tier_gets_its_first_subgrades(cli, pol, tmp_path):
    path = pol / "moves.yaml"
    path.write_text(MOVES, encoding="utf-8")
    sheet = tmp_path / "sub.csv"
    export(cli, path, "subgrades", sheet)
    header, rows = read_csv(sheet)
    assert header == ["id", "tier", "when", "default"] and [r[0] for r in rows] == ["A1", "A2", "B2"]
    rows[0][1] = "B"  # A1 moves to B, before B2
    rows = [rows[1], rows[0], rows[2], ["C1", "C", "", "true"]]
    write_csv(sheet, header, rows)
    result = cli("table", "import", path, sheet, "--table", "subgrades", ok=True)
    assert 'tier: "A" -> "B"' in result.output and "+ C1 (row 5)" in result.output
    assert path.read_text(encoding="utf-8") == MOVES.replace(
        "        # Strategic: the few accounts worth an executive sponsor.\n"
        "        - id: A1\n          when: >-\n            revenue_12m >= 1_000_000\n            or margin_12m >= 0.3\n", ""
    ).replace(
        "      subgrades:\n          - id: B2\n",
        "      subgrades:\n"
        "          # Strategic: the few accounts worth an executive sponsor.\n"
        "          - id: A1\n            when: >-\n              revenue_12m >= 1_000_000\n              or margin_12m >= 0.3\n"
        "          - id: B2\n",
    ).replace("      default: true  # everyone else\n",
              "      default: true  # everyone else\n      subgrades:\n        - id: C1\n          default: true\n")
    policy = load_policy(path)
    assert [[s.id for s in t.subgrades] for t in policy.tiers] == [["A2"], ["A1", "B2"], ["C1"]]

    vip = pol / "vip_card.yaml"
    sheet = tmp_path / "vip_sub.csv"
    export(cli, vip, "subgrades", sheet)
    header, rows = read_csv(sheet)
    assert rows == [] and header[:2] == ["id", "tier"]
    rows = [["gold_plus", "gold", "金卡+ Gold plus", "revenue_12m >= 300_000", "", ""],
            ["gold_core", "gold", "金卡 Gold core", "", "true", ""]]
    write_csv(sheet, header, rows)
    cli("table", "import", vip, sheet, "--table", "subgrades", ok=True)
    assert [s.id for s in load_policy(vip).tiers[1].subgrades] == ["gold_plus", "gold_core"]
    assert ("      when: revenue_12m >= 150_000 and orders_12m >= 12\n      subgrades:\n        - id: gold_plus\n"
            "          label: 金卡+ Gold plus\n          when: revenue_12m >= 300_000\n        - id: gold_core\n") \
        in vip.read_text(encoding="utf-8")


def test_flow_rows_and_inline_lists_are_edited_in_their_style(cli, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("metrics: {revenue_12m: {sum: amount, window: 12 months}}  # only one\n"
                    "tiers:\n  levels: [{id: big, when: \"revenue_12m >= 100_000\"}, {id: small, default: true}]\n",
                    encoding="utf-8")
    sheet = tmp_path / "t.csv"
    export(cli, path, "tiers", sheet)
    header, rows = read_csv(sheet)
    rows[0][header.index("when")] = "revenue_12m >= 120_000"
    rows.insert(1, ["mid", "revenue_12m >= 10_000", ""])
    write_csv(sheet, header, rows)
    cli("table", "import", path, sheet, "--table", "tiers", ok=True)
    assert path.read_text(encoding="utf-8") == (
        "metrics: {revenue_12m: {sum: amount, window: 12 months}}  # only one\n"
        "tiers:\n  levels: [{id: big, when: \"revenue_12m >= 120_000\"}, {id: mid, when: \"revenue_12m >= 10_000\"}, "
        "{id: small, default: true}]\n")


FLOW_WITH_COMMENTS = """\
extends: base
name: flow
service_levels: [
  {id: A-key, tier: A, label: Key},  # the best
  {id: B-growth, tier: B, label: Growth},  # growing
  {id: C-standard, tier: C, label: Standard}  # everyone else
]
"""


def test_a_comment_in_a_flow_list_stays_with_its_row(cli, pol, tmp_path):
    path = pol / "flow.yaml"
    path.write_text(FLOW_WITH_COMMENTS, encoding="utf-8")
    sheet = tmp_path / "sl.csv"
    write_csv(sheet, ["id", "tier", "stage", "label"], [["A-key", "A", "", "Key"], ["B-growth", "B", "", "Growth"],
                                                        ["B-new", "B", "lost", "New"], ["C-standard", "C", "", "Standard"],
                                                        ["C-last", "C", "lost", "Last"]])
    cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    assert path.read_text(encoding="utf-8") == FLOW_WITH_COMMENTS.replace(
        "  {id: B-growth, tier: B, label: Growth},  # growing\n",
        "  {id: B-growth, tier: B, label: Growth},  # growing\n  {id: B-new, tier: B, stage: lost, label: New},\n").replace(
        "  {id: C-standard, tier: C, label: Standard}  # everyone else\n",
        "  {id: C-standard, tier: C, label: Standard},  # everyone else\n  {id: C-last, tier: C, stage: lost, label: Last}\n")
    path.write_text(FLOW_WITH_COMMENTS, encoding="utf-8")  # reordered: each comment moves with its row
    write_csv(sheet, ["id", "tier", "label"], [["C-standard", "C", "Standard"], ["A-key", "A", "Key"], ["B-growth", "B", "Growth"]])
    cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    assert path.read_text(encoding="utf-8").endswith(
        "service_levels: [\n"
        "  {id: C-standard, tier: C, label: Standard},  # everyone else\n"
        "  {id: A-key, tier: A, label: Key},  # the best\n"
        "  {id: B-growth, tier: B, label: Growth}  # growing\n"
        "]\n")


def test_crlf_file_keeps_its_line_endings(cli, pol, tmp_path):
    path = pol / "base.yaml"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    before = path.read_bytes()
    sheet = tmp_path / "t.csv"
    export(cli, path, "tiers", sheet)
    header, rows = read_csv(sheet)
    rows[0][header.index("up_to")] = "0.75"
    rows.append(["D", "观察客户 Watch list", ""])
    rows[2][header.index("up_to")] = "0.99"
    write_csv(sheet, header, rows)
    cli("table", "import", path, sheet, "--table", "tiers", ok=True)
    after = path.read_bytes()
    assert after.count(b"\n") == after.count(b"\r\n") == before.count(b"\n") + 3  # D's two lines, C's up_to
    assert b"      up_to: 0.75\r\n" in after and b"    - id: D\r\n      label: \xe8" in after


def _tiers_with_a_up_to(cli, policy: Path, sheet: Path) -> Path:
    """The policy's tiers exported to ``sheet``, with A's up_to edited from 0.8 to 0.7."""
    export(cli, policy, "tiers", sheet)
    header, rows = read_csv(sheet)
    rows[0][header.index("up_to")] = "0.7"
    write_csv(sheet, header, rows)
    return sheet


def test_dry_run_writes_nothing(cli, pol, tmp_path):
    path = pol / "base.yaml"
    before = path.read_bytes()
    sheet = _tiers_with_a_up_to(cli, path, tmp_path / "t.csv")
    result = cli("table", "import", path, sheet, "--table", "tiers", "--dry-run", ok=True)
    assert "up_to: 0.8 -> 0.7" in result.output and "dry run" in result.output
    assert path.read_bytes() == before
    as_json = json.loads(cli("table", "import", path, sheet, "--table", "tiers", "--dry-run", "--json", ok=True).output)
    assert as_json["changes"] == [{"kind": "changed", "id": "A", "sheet_row": 2, "note": None,
                                   "cells": [{"column": "up_to", "old": 0.8, "new": 0.7}]}]
    assert not as_json["written"] and path.read_bytes() == before


def _refuse_writes_in(monkeypatch, folder: Path, error: OSError) -> None:
    """Make creating any file in ``folder`` fail as in a read-only folder (tests run as root, where chmod does not)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise error
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_dry_run_needs_no_write_access_and_a_refused_write_is_a_message(cli, pol, tmp_path, monkeypatch):
    import errno
    import os

    path = pol / "base.yaml"
    before = path.read_bytes()
    sheet = _tiers_with_a_up_to(cli, path, tmp_path / "t.csv")
    _refuse_writes_in(monkeypatch, pol, PermissionError(errno.EACCES, "Permission denied"))
    pol.chmod(0o555)
    try:
        dry = cli("table", "import", path, sheet, "--table", "tiers", "--dry-run", ok=True)
        assert "up_to: 0.8 -> 0.7" in dry.output and "the result would be a valid policy" in dry.output
        refused = cli("table", "import", path, sheet, "--table", "tiers")
    finally:
        pol.chmod(0o755)
    assert refused.exit_code == 1 and f"error: {path}: cannot write the file (Permission denied)" in refused.output
    assert "make the policy's folder writable" in refused.output and "Traceback" not in refused.output
    assert path.read_bytes() == before
    monkeypatch.undo()

    def full_disk(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    full = cli("table", "import", path, sheet, "--table", "tiers")
    assert full.exit_code == 1 and "cannot write the file (No space left on device)" in full.output
    assert path.read_bytes() == before and not list(pol.glob(".*"))


def test_a_read_only_policy_is_refused_and_a_rewritten_one_keeps_its_mode_and_group(cli, pol, tmp_path):
    """The policy is replaced by a rename, which a chmod 444 alone would not stop (nor does root's access check)."""
    import os
    import stat

    path = pol / "base.yaml"
    before = path.read_bytes()
    sheet = _tiers_with_a_up_to(cli, path, tmp_path / "t.csv")
    path.chmod(0o444)
    refused = cli("table", "import", path, sheet, "--table", "tiers")
    assert refused.exit_code == 1 and f"error: {path} is read-only; nothing was written" in refused.output
    assert f"chmod u+w {path}" in refused.output and "--dry-run" in refused.output
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert "up_to: 0.8 -> 0.7" in cli("table", "import", path, sheet, "--table", "tiers", "--dry-run", ok=True).output
    other_group = next((g for g in ([1] if os.geteuid() == 0 else os.getgroups()) if g != os.getegid()), None)
    path.chmod(0o640)
    if other_group is not None:
        os.chown(path, -1, other_group)
    cli("table", "import", path, sheet, "--table", "tiers", ok=True)
    assert path.read_bytes() != before and stat.S_IMODE(path.stat().st_mode) == 0o640
    if other_group is not None:
        assert path.stat().st_gid == other_group


def test_a_read_only_out_file_is_refused_before_any_work(cli, pol, tmp_path):
    out = tmp_path / "t.csv"
    out.write_bytes(b"kept")
    out.chmod(0o444)
    result = cli("table", "export", pol / "base.yaml", "--table", "tiers", "--out", out)
    assert result.exit_code == 1 and f"{out} is read-only; nothing was written" in result.output
    assert "choose another --out" in result.output and out.read_bytes() == b"kept"


# --- types and encodings ---------------------------------------------------------------------------


def test_chinese_labels_survive_csv_and_xlsx(cli, pol, tmp_path):
    path = pol / "vip_card.yaml"
    for fmt, label in (("csv", "白金卡 Platinum 会员"), ("xlsx", "黑卡 Black 至尊会员")):
        sheet = tmp_path / f"t.{fmt}"
        export(cli, path, "tiers", sheet)
        if fmt == "csv":
            header, rows = read_csv(sheet)
            rows[0][header.index("label")] = label
            write_csv(sheet, header, rows, bom=False)  # read with or without a BOM
        else:
            wb = openpyxl.load_workbook(sheet)
            ws = wb.active
            assert ws["A1"].font.bold and ws.freeze_panes == "A2"
            assert ws.column_dimensions["B"].width >= len("钻石卡 Diamond") + 2
            ws["B2"] = label
            wb.save(sheet)
        cli("table", "import", path, sheet, "--table", "tiers", ok=True)
        assert f"      label: {label}\n" in path.read_text(encoding="utf-8")
        assert load_policy(path).tiers[0].rule.label == label


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029", "\x07", "\x1b", "\x7f", "\x9f", "\t"])
def test_line_breaks_and_control_characters_in_cells_round_trip(cli, pol, tmp_path, char):
    """NEL is a line break to YAML (folded into a space in a quoted scalar) and DEL or C1 controls cannot stand in a
    YAML file at all: written escaped in double quotes, they come back as they were."""
    path = pol / "vip_card.yaml"
    sheet = tmp_path / "t.csv"
    export(cli, path, "tiers", sheet)
    header, rows = read_csv(sheet)
    row, i = cell(header, rows, "gold", "label")
    row[i] = f"金卡{char}Gold"
    write_csv(sheet, header, rows)
    escaped = "\\t" if char == "\t" else f"\\u{ord(char):04x}"
    result = cli("table", "import", path, sheet, "--table", "tiers", ok=True)
    assert f'label: "金卡 Gold" -> "金卡{escaped}Gold"' in result.output  # shown escaped, not as a break
    assert f'      label: "金卡{escaped}Gold"\n' in path.read_text(encoding="utf-8")
    assert load_policy(path).tiers[1].rule.label == f"金卡{char}Gold"
    export(cli, path, "tiers", tmp_path / "again.csv")
    assert read_csv(tmp_path / "again.csv") == (header, rows)
    assert "no changes" in cli("table", "import", path, tmp_path / "again.csv", "--table", "tiers", ok=True).output


def test_xlsx_cells_are_typed(cli, pol, tmp_path):
    sheet = tmp_path / "sl.xlsx"
    export(cli, pol / "vip_card.yaml", "service_levels", sheet)
    ws = openpyxl.load_workbook(sheet).active
    header = [c.value for c in ws[1]]
    first = [c.value for c in ws[2]]
    assert first[header.index("discount")] == 0.08 and first[header.index("payment.terms_days")] == 60
    assert first[header.index("attributes.free_shipping")] is True
    assert first[header.index("response_time")] == "15m"
    assert first[header.index("perks")].startswith("dedicated butler (24/7 personal account manager); birthday gift")


def test_text_that_looks_like_a_number_stays_text(cli, pol, tmp_path):
    path = pol / "vip_card.yaml"
    sheet = tmp_path / "sl.csv"
    export(cli, path, "service_levels", sheet)
    header, rows = read_csv(sheet)
    row, i = cell(header, rows, "gold-priority", "attributes.lounge_access")
    row[i] = "12"  # the column holds text; 12 stays text
    row, i = cell(header, rows, "silver-plus", "attributes.free_shipping")
    row[i] = "true"  # this column holds text and true/false: a word reads as true/false
    row, i = cell(header, rows, "gold-priority", "label")
    row[i] = "yes"  # a label is text even when YAML 1.1 would read the bare word as true
    write_csv(sheet, header, rows)
    cli("table", "import", path, sheet, "--table", "service_levels", ok=True)
    levels = {s.id: s for s in load_policy(path).service_levels}
    assert levels["gold-priority"].details["attributes"]["lounge_access"] == "12"
    assert levels["silver-plus"].details["attributes"]["free_shipping"] is True
    assert levels["gold-priority"].details["label"] == "yes"
    text = path.read_text(encoding="utf-8")
    assert "      lounge_access: '12'\n" in text and "    label: 'yes'\n" in text


# --- bad sheets: a clear message, the YAML untouched --------------------------------------------


def _bad_import(cli, path: Path, sheet: Path, table: str, *fragments: str) -> str:
    before = path.read_bytes()
    result = cli("table", "import", path, sheet, "--table", table)
    assert result.exit_code == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in:\n{result.output}"
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*")) and len(list(path.parent.glob("*.yaml"))) == len(list(SHIPPED.glob("*.yaml")))
    return result.output


def test_unknown_column_gets_did_you_mean(cli, pol, tmp_path):
    sheet = tmp_path / "t.csv"
    export(cli, pol / "base.yaml", "tiers", sheet)
    header, rows = read_csv(sheet)
    header[1] = "lable"
    write_csv(sheet, header, rows)
    _bad_import(cli, pol / "base.yaml", sheet, "tiers", "t.csv: row 1, column B (lable): unknown column 'lable'; did you mean 'label'?",
                "base.yaml was not changed")


def test_missing_id_column_and_duplicate_or_empty_ids(cli, pol, tmp_path):
    sheet = tmp_path / "t.csv"
    export(cli, pol / "base.yaml", "tiers", sheet)
    header, rows = read_csv(sheet)
    write_csv(sheet, header[1:], [r[1:] for r in rows])
    _bad_import(cli, pol / "base.yaml", sheet, "tiers", "there is no 'id' column", "rows are matched by id")
    rows[2][0] = "A"
    rows.append(["", "nameless", ""])
    write_csv(sheet, header, rows)
    _bad_import(cli, pol / "base.yaml", sheet, "tiers", "row 4, column A (id): id 'A' is also in row 2",
                "row 5, column A (id): the id is empty")


def test_number_cells_must_be_numbers(cli, pol, tmp_path):
    sheet = tmp_path / "sl.csv"
    path = pol / "base.yaml"
    export(cli, path, "service_levels", sheet)
    header, rows = read_csv(sheet)
    row, i = cell(header, rows, "A-key", "discount")
    row[i] = "5%"
    row, j = cell(header, rows, "B-growth", "attributes.cost_per_customer")
    row[j] = "about 600"
    row, k = cell(header, rows, "C-standard", "payment.terms_days")
    row[k] = "1,000"
    write_csv(sheet, header, rows)
    out = _bad_import(cli, path, sheet, "service_levels", "3 problems in",
                      f"row 2, column {chr(65 + i)} (discount): '5%' is not a number; the policy has a number here (write percentages as fractions: 0.05 for 5%)",
                      f"row 4, column {chr(65 + j)} (attributes.cost_per_customer): 'about 600' is not a number; the policy has a number here",
                      "'1,000' is not a number", "without thousands separators: 1000")
    assert "hint: fix the cells in the spreadsheet and import again" in out


def test_empty_required_cells_and_bad_booleans(cli, pol, tmp_path):
    sheet = tmp_path / "sl.csv"
    path = pol / "base.yaml"
    export(cli, path, "service_levels", sheet)
    header, rows = read_csv(sheet)
    row, i = cell(header, rows, "B-growth", "tier")
    row[i] = " "
    write_csv(sheet, header, rows)
    _bad_import(cli, path, sheet, "service_levels", "row 4, column B (tier): the tier is empty",
                "every row of the service levels needs a tier")
    sheet = tmp_path / "st.csv"
    export(cli, path, "stages", sheet)
    header, rows = read_csv(sheet)
    row, i = cell(header, rows, "stable", "default")
    row[i] = "sometimes"
    write_csv(sheet, header, rows)
    _bad_import(cli, path, sheet, "stages", "'sometimes' is not true or false", "write true or false")


def test_a_file_named_other_than_csv_or_xlsx_gets_a_hint_import_can_follow(cli, pol, tmp_path):
    sheet = tmp_path / "sheet.txt"
    export(cli, pol / "base.yaml", "tiers", tmp_path / "t.csv")
    sheet.write_bytes((tmp_path / "t.csv").read_bytes())
    result = cli("table", "import", pol / "base.yaml", sheet, "--table", "tiers")
    assert result.exit_code == 2 and "cannot tell the format from the extension '.txt'" in result.output
    assert "name the file .csv or .xlsx" in result.output and "--format" not in result.output


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_title_above_the_header_is_named_as_such(cli, pol, tmp_path, fmt):
    path = pol / "vip_card.yaml"
    sheet = tmp_path / f"t.{fmt}"
    export(cli, path, "tiers", sheet)
    if fmt == "csv":
        header, rows = read_csv(sheet)
        write_csv(sheet, ["Tiers exported 2026"], [header, *rows])
    else:
        wb = openpyxl.load_workbook(sheet)
        wb.active.insert_rows(1, 2)
        wb.active["A1"] = "Tiers exported 2026"
        wb.save(sheet)
    out = _bad_import(cli, path, sheet, "tiers", "row 1: this row is not the header: it holds 'Tiers exported 2026'",
                      "the header, the row naming the table's columns such as 'id', must be the first row",
                      f"row {2 if fmt == 'csv' else 3} looks like it",
                      f"delete {'row 1' if fmt == 'csv' else 'rows 1-2'} above the header")
    assert "outside the table" not in out


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_blank_rows_above_the_header_are_skipped_and_rows_keep_their_numbers(cli, pol, tmp_path, fmt):
    path = pol / "vip_card.yaml"
    sheet = tmp_path / f"t.{fmt}"
    export(cli, path, "tiers", sheet)
    if fmt == "csv":
        sheet.write_bytes(b"\xef\xbb\xbf\r\n,,,,\r\n" + sheet.read_bytes()[3:].replace("银卡 Silver".encode(), b"Silver"))
    else:
        wb = openpyxl.load_workbook(sheet)
        wb.active.insert_rows(1, 2)
        wb.active["B6"] = "Silver"
        wb.save(sheet)
    result = cli("table", "import", path, sheet, "--table", "tiers", "--dry-run", ok=True)
    assert "~ silver (row 6)" in result.output and 'label: "银卡 Silver" -> "Silver"' in result.output
    if fmt == "csv":
        (tmp_path / "u.csv").write_bytes(b"\r\n\r\n" + "idx,label\r\nsilver,x\r\n".encode())
        _bad_import(cli, path, tmp_path / "u.csv", "tiers", "u.csv: row 3, column A (idx): unknown column 'idx'")


def test_cells_outside_the_header_and_not_utf8(cli, pol, tmp_path):
    sheet = tmp_path / "t.csv"
    path = pol / "base.yaml"
    sheet.write_bytes("id,label,up_to\r\nA,重点客户 Key customers,0.8,oops\r\n".encode("utf-8"))
    _bad_import(cli, path, sheet, "tiers", "row 2, column D: 'oops' is outside the table")
    sheet.write_bytes("id,label,up_to\r\nA,重点客户 Key customers,0.8\r\n".encode("gbk"))
    _bad_import(cli, path, sheet, "tiers", ":2: not valid UTF-8", "CSV UTF-8")


def test_decimal_commas_get_a_decimal_point_hint(cli, pol, tmp_path):
    from crm_rules.engine.rule_table_cells import CellProblem, parse_number

    path = pol / "base.yaml"
    sheet = tmp_path / "t.csv"
    sheet.write_bytes("id;label;up_to\r\nA;重点客户 Key customers;0,8\r\nB;成长客户 Growth customers;0,95\r\nC;一般客户 Regular customers;\r\n"
                      .encode("utf-8-sig"))
    _bad_import(cli, path, sheet, "tiers", "row 2, column C (up_to): '0,8' is not a number", "write the decimal point as '.': 0.8",
                "row 3, column C (up_to): '0,95' is not a number", "0.95")
    for text, semicolons, hint in (("0,8", False, "write the decimal point as '.': 0.8"), (",5", False, ": 0.5"),
                                   ("1234,5", False, ": 1234.5"), ("1.234,5", False, "and no thousands separators: 1234.5"),
                                   ("1,000", False, "without thousands separators: 1000"),
                                   ("1,000", True, "write the decimal point as '.': 1.000"),
                                   ("1,234,567.5", True, "without thousands separators: 1234567.5")):
        with pytest.raises(CellProblem) as caught:
            parse_number(text, semicolons)
        assert hint in caught.value.hint, (text, caught.value.hint)


def _service_levels_workbook(cli, pol, tmp_path, name: str = "sl.xlsx"):
    sheet = tmp_path / name
    export(cli, pol / "base.yaml", "service_levels", sheet)
    wb = openpyxl.load_workbook(sheet)
    return sheet, wb, wb.active, [c.value for c in wb.active[1]]


def test_a_formula_without_a_computed_value_is_refused_not_read_as_empty(cli, pol, tmp_path):
    import zipfile

    path = pol / "base.yaml"
    sheet, wb, ws, header = _service_levels_workbook(cli, pol, tmp_path)
    column = header.index("discount")
    ws.cell(row=2, column=column + 1).value = "=0.01*5"  # openpyxl stores the formula and no value, as many exporters do
    wb.save(sheet)
    _bad_import(cli, path, sheet, "service_levels",
                f"sheet 'service_levels', row 2, column {chr(65 + column)} (discount): formula =0.01*5 without a computed value",
                "open and save the file in Excel (or LibreOffice) so the value is stored")
    # saved by a spreadsheet program, the cell holds the formula and its value: the value is imported
    with zipfile.ZipFile(sheet) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet_xml = next(n for n in parts if n.startswith("xl/worksheets/"))
    assert b"<f>0.01*5</f><v />" in parts[sheet_xml]
    parts[sheet_xml] = parts[sheet_xml].replace(b"<f>0.01*5</f><v />", b"<f>0.01*5</f><v>0.06</v>")
    with zipfile.ZipFile(sheet, "w") as z:
        for n, data in parts.items():
            z.writestr(n, data)
    result = cli("table", "import", path, sheet, "--table", "service_levels", "--dry-run", ok=True)
    assert "discount: 0.05 -> 0.06" in result.output


def test_the_sheet_named_after_the_table_is_read_and_named_in_messages(cli, pol, tmp_path):
    path = pol / "base.yaml"
    sheet, wb, ws, header = _service_levels_workbook(cli, pol, tmp_path)
    wb.create_sheet("notes", 0)["A1"] = "my notes"  # a notes sheet first: the table's sheet is still the one read
    ws.title = "Service levels"
    ws.cell(row=1, column=len(header) + 1).value = "my notes"
    wb.save(sheet)
    _bad_import(cli, path, sheet, "service_levels",
                f"sl.xlsx: sheet 'Service levels', row 1, column {chr(65 + len(header))} (my notes): unknown column 'my notes'")
    ws.title = "Sheet1"
    wb.save(sheet)
    _bad_import(cli, path, sheet, "service_levels",
                "sl.xlsx: the workbook has 2 sheets ('notes', 'Sheet1') and none is named 'service_levels'",
                "name the sheet that holds the table 'service_levels'")
    del wb["notes"]
    wb.save(sheet)  # the only sheet is the table, whatever its name
    _bad_import(cli, path, sheet, "service_levels", "sl.xlsx: sheet 'Sheet1', row 1, column", "unknown column 'my notes'")


def test_an_invalid_tier_list_is_reported_once_at_its_sheet_row(cli, pol, tmp_path):
    path = pol / "base.yaml"
    sheet = tmp_path / "t.csv"
    sheet.write_text("id,label,up_to\nA,k,0.8\nB,g,0.95\nC,r,\nD,new,0.99\n", encoding="utf-8")
    out = _bad_import(cli, path, sheet, "tiers", "t.csv: row 5: levels with `up_to` must come first, in order, before the rest",
                      "1 problem: with")
    assert "unknown tier" not in out  # the service levels name tiers the file defines: no follow-on errors


def test_edit_that_breaks_the_policy_writes_nothing(cli, pol, tmp_path):
    path = pol / "vip_card.yaml"
    sheet = tmp_path / "t.csv"
    export(cli, path, "tiers", sheet)
    header, rows = read_csv(sheet)
    rows = [r for r in rows if r[0] != "silver"]
    rows[0][header.index("when")] = "revenue_12m >= and orders_12m >= 24"
    write_csv(sheet, header, rows)
    out = _bad_import(cli, path, sheet, "tiers", "service_levels[4].tier: unknown tier 'silver'",
                      f"{sheet}: row 2, column D (when): syntax error: unexpected 'orders_12m'", "was not changed",
                      "the sheet removes 'silver': where the policy still uses it (lines above), keep the row")
    # a line outside the table is that of the policy as it is (the one a user can open), never a temporary file's
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "tier: silver" in text)
    assert f"{path}:{line}:11: service_levels[4].tier:" in out and "/.vip_card." not in out


def test_import_api_raises_domain_errors_only(pol, tmp_path):
    sheet = tmp_path / "missing.csv"
    with pytest.raises(CrmRulesError):
        import_table(pol / "base.yaml", "tiers", sheet)
    with pytest.raises(CrmRulesError):
        import_table(pol / "nope.yaml", "tiers", sheet)


# --- the text editor underneath ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "No", "on", "null", "~", "", "1_000", "0x1F", "0o17", "1e3", "12:30", "true",
                                   "a: b", "x #y", "- item", "[beta]", "{x}", "'quoted'", '"dq"', " lead", "trail ",
                                   "two\nlines", "tab\there", "华东 East", "100%", "@home", "`tick`", "a, b", "?", "*star", "&anchor",
                                   "!tag", "%pct", "|pipe", ">gt", "nel\x85x", "ls\u2028x", "bel\x07", "del\x7f",
                                   "\x9fc1", "\ufffenon"])
@pytest.mark.parametrize("flow", [False, True])
def test_scalar_text_reads_back_as_the_same_text(value, flow):
    text = ye.scalar_text(value, flow=flow)
    doc = f"k: {text}\n" if not flow else f"k: [{text}, x]\n"
    got = load_yaml_text(doc, "t.yaml").data["k"]
    assert (got if not flow else got[0]) == value


@pytest.mark.parametrize("value", [0, -3, 10**20, 0.05, 1e-05, 1.5e300, -2.5, 3.0, True, False, None])
def test_numbers_and_booleans_read_back_the_same(value):
    got = load_yaml_text(f"k: {ye.scalar_text(value, flow=False)}\n", "t.yaml").data["k"]
    assert ye.same(got, value) and type(got) is type(value)


label_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list("'\":#-[]{},&*!|>%@` \n")),
                     min_size=1, max_size=20).filter(lambda s: s.strip())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.lists(label_text, min_size=4, max_size=4), discounts=st.lists(st.floats(0, 1), min_size=4, max_size=4),
       perks=st.lists(st.lists(label_text, max_size=3), min_size=4, max_size=4), order=st.permutations([0, 1, 2, 3]))
def test_any_edit_lands_exactly(pol, tmp_path, labels, discounts, perks, order):
    """Whatever text, numbers, lists and order the sheet holds, the YAML then holds exactly that (import_table
    re-reads the edited file and raises if not) and the policy stays valid."""
    path = pol / "vip_card.yaml"
    original = path.read_bytes()
    try:
        table = rt.export_table(path, "service_levels")
        columns = table.columns
        rows = [list(r) for r in table.rows[:4]]
        for r, label, discount, items in zip(rows, labels, discounts, perks):
            r[columns.index("label")] = label
            r[columns.index("discount")] = discount
            r[columns.index("perks")] = rt.to_cell(items)
        rows = [rows[i] for i in order] + [list(r) for r in table.rows[4:]]
        sheet = tmp_path / "sl.xlsx"
        from crm_rules.engine.rule_table_io import xlsx_bytes

        sheet.write_bytes(xlsx_bytes("service_levels", columns, rows))
        import_table(path, "service_levels", sheet)
        got = {s.id: s.details for s in load_policy(path).service_levels}
        for r in rows[:4]:
            details = got[r[0]]
            assert details["label"] == r[columns.index("label")].strip()  # spaces around a cell's text are not part of it
            assert math.isclose(details["discount"], r[columns.index("discount")], rel_tol=1e-15)  # XLSX keeps 16 digits
        assert [s.id for s in load_policy(path).service_levels][:4] == [r[0] for r in rows[:4]]
    finally:
        path.write_bytes(original)


# --- crm-rules schema ------------------------------------------------------------------------------


def test_schema_prints_the_policy_schema(cli):
    schema_dir = files("crm_rules").joinpath("schemas")
    out = cli("schema", ok=True).output
    assert json.loads(out) == json.loads(schema_dir.joinpath("policy.schema.json").read_text(encoding="utf-8"))
    for args in (["--test"], ["--kind", "test"]):
        test = cli("schema", *args, ok=True).output
        assert json.loads(test) == json.loads(schema_dir.joinpath("policy-test.schema.json").read_text(encoding="utf-8"))
    path = Path(cli("schema", "--path", ok=True).output.strip())
    assert path.is_absolute() and path.name == "policy.schema.json" and json.loads(path.read_text(encoding="utf-8")) == json.loads(out)
    assert Path(cli("schema", "--test", "--path", ok=True).output.strip()).name == "policy-test.schema.json"
    bad = cli("schema", "--kind", "policies")
    assert bad.exit_code == 2 and "--kind policy or --kind test" in bad.output


def _properties(schema, where=""):
    """Every (path, subschema) under a `properties` keyword."""
    if isinstance(schema, dict):
        for key, sub in (schema.get("properties") or {}).items():
            yield f"{where}.{key}", sub
        for key, sub in schema.items():
            yield from _properties(sub, f"{where}/{key}" if key != "properties" else where)
    elif isinstance(schema, list):
        for i, sub in enumerate(schema):
            yield from _properties(sub, f"{where}[{i}]")


def test_every_policy_property_has_help_for_editors():
    schema = json.loads(files("crm_rules").joinpath("schemas").joinpath("policy.schema.json").read_text(encoding="utf-8"))
    missing = sorted({p for p, sub in _properties(schema) if not (sub.get("description") or sub.get("title")
                                                                 or (sub.get("oneOf") and all(a.get("description") for a in sub["oneOf"])))})
    assert not missing, missing


def test_export_refuses_a_format_the_out_extension_contradicts(cli, pol, tmp_path):
    result = cli("table", "export", pol / "base.yaml", "--table", "tiers", "--out", tmp_path / "t.csv", "--format", "xlsx")
    assert result.exit_code == 2 and "is a .csv name but --format is xlsx" in result.output and "name the file t.xlsx" in result.output
    assert not (tmp_path / "t.csv").exists()
    listing = cli("table", "export", pol / "base.yaml", ok=True).output
    assert "attributes.cost_per_custo\n" not in listing and "tiers.levels[].subgrades" in listing


@pytest.mark.parametrize("text, fragment", [
    ('id,label,up_to\nA,"Key customers,0.8\nB,Growth,0.95\n', ":2: unclosed quote starting here: 'A,\"Key customers,0.8'"),
    ('id,label,up_to\nA,"Key" customers,0.8\n', ":2: text after the closing quote of a quoted value"),
])
def test_a_broken_quote_in_the_sheet_names_its_line(cli, pol, tmp_path, text, fragment):
    # the same messages as `import` and overrides files give (csv_reader), not csv's "unexpected end of data"
    sheet = tmp_path / "t.csv"
    sheet.write_text(text, encoding="utf-8")
    _bad_import(cli, pol / "base.yaml", sheet, "tiers", fragment, "hint:")


def _with_yaml_sharing(path: Path, *replacements: tuple[str, str]) -> str:
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    load_policy(path)  # the engine reads such a policy: only its spreadsheet round trip is impossible
    return text


@pytest.mark.parametrize("table,replacements,name", [
    # an anchor and its alias both inside the table
    ("service_levels", (("perks: [priority delivery, annual business review, dedicated hotline]",
                         "perks: &key [priority delivery, annual business review, dedicated hotline]"),
                        ("perks: [executive sponsor call, service recovery plan]", "perks: *key")), "key"),
    # an anchor in another section used by an alias in the table: editing it would change that section too
    ("service_levels", (("focus: [win-back offer, exit survey]", "focus: &fx [win-back offer, exit survey]"),
                        ("perks: [executive sponsor call, service recovery plan]", "perks: *fx")), "fx"),
    # an anchor in the table used by an alias elsewhere
    ("stages", (("focus: [win-back offer, exit survey]", "focus: &fx [win-back offer, exit survey]"),
                ("perks: [executive sponsor call, service recovery plan]", "perks: *fx")), "fx"),
    ("subgrades", (("label: Strategic", "label: &s Strategic"), ("label: Core", "label: *s")), "s"),
])
def test_export_refuses_a_table_with_yaml_aliases_that_import_could_never_write_back(cli, pol, tmp_path, table,
                                                                                     replacements, name):
    policy = pol / "base.yaml"
    text = _with_yaml_sharing(policy, *replacements)
    out = tmp_path / "t.csv"
    result = cli("table", "export", policy, "--table", table, "--out", out)
    assert result.exit_code == 2, result.output
    line = next(n for n, l in enumerate(text.splitlines(), 1) if f"&{name} " in l)
    assert f"{policy}:{line}:" in result.output
    assert f"a YAML alias (*{name}) of the anchor &{name} here" in result.output
    assert "which a spreadsheet cannot round-trip" in result.output and "then export again" in result.output
    assert not out.exists()
    # a sheet made before the alias was written (or by hand) is refused by import the same way, not a traceback
    plain = tmp_path / "plain"
    shutil.copytree(SHIPPED, plain, ignore=shutil.ignore_patterns("__pycache__"))
    export(cli, plain / "base.yaml", table, out)
    header, rows = read_csv(out)
    rows[0][header.index("label")] = "edited"
    write_csv(out, header, rows)
    imported = cli("table", "import", policy, out, "--table", table)
    assert imported.exit_code == 2 and f"a YAML alias (*{name})" in imported.output, imported.output
    assert "then import again" in imported.output
    assert policy.read_text(encoding="utf-8") == text


def test_export_refuses_a_merge_key_in_a_rule_table(cli, pol, tmp_path):
    policy = pol / "base.yaml"
    text = _with_yaml_sharing(policy, ("    payment: {terms_days: 45}", "    payment:\n      <<: {terms_days: 60}\n      terms_days: 45"))
    result = cli("table", "export", policy, "--table", "service_levels", "--out", tmp_path / "s.xlsx")
    assert result.exit_code == 2 and "a YAML merge key (<<) here" in result.output, result.output
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "<<: {" in l)
    assert f"{policy}:{line}:" in result.output
    assert not (tmp_path / "s.xlsx").exists()
    # the tables without sharing still export
    assert cli("table", "export", policy, "--table", "stages", ok=True).output.startswith("id,label,when")


def test_a_full_width_semicolon_separates_list_items_as_a_semicolon_does(cli, pol, tmp_path):
    """A Chinese input method types '；' for ';': read as one item, '挽回优惠；离职调查' became a single focus."""
    policy = pol / "base.yaml"
    out = tmp_path / "stages.csv"
    export(cli, policy, "stages", out)
    header, rows = read_csv(out)
    row, j = cell(header, rows, "lost", "focus")
    row[j] = "挽回优惠；离职调查 ；  电话回访;exit survey"
    write_csv(out, header, rows)
    result = cli("table", "import", policy, out, "--table", "stages", ok=True)
    assert 'focus: ["win-back offer", "exit survey"] -> ["挽回优惠", "离职调查", "电话回访", "exit survey"]' in result.output
    assert load_policy(policy).document["lifecycle"]["stages"][0]["focus"] == ["挽回优惠", "离职调查", "电话回访", "exit survey"]


def test_a_list_item_holding_a_full_width_semicolon_round_trips_as_json(cli, pol, tmp_path):
    policy = pol / "base.yaml"
    text = policy.read_text(encoding="utf-8").replace("focus: [win-back offer, exit survey]",
                                                      "focus: [挽回优惠；离职调查, exit survey]", 1)
    policy.write_text(text, encoding="utf-8")
    out = tmp_path / "stages.csv"
    export(cli, policy, "stages", out)
    header, rows = read_csv(out)
    assert cell(header, rows, "lost", "focus")[0][header.index("focus")] == '["挽回优惠；离职调查", "exit survey"]'
    result = cli("table", "import", policy, out, "--table", "stages", ok=True)
    assert "no changes" in result.output and policy.read_text(encoding="utf-8") == text


def test_a_nul_in_an_edited_sheet_is_refused_and_the_policy_kept(cli, pol, tmp_path):
    policy = pol / "base.yaml"
    before = policy.read_bytes()
    out = tmp_path / "tiers.csv"
    export(cli, policy, "tiers", out)
    header, rows = read_csv(out)
    row, j = cell(header, rows, "B", "label")
    row[j] = "成长\x00客户"
    write_csv(out, header, rows)
    result = cli("table", "import", policy, out, "--table", "tiers")
    assert result.exit_code == 1 and f"{out}:3: column 2 ('label') holds a NUL character (byte 0x00)" in result.output
    assert policy.read_bytes() == before
