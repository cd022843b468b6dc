"""Chinese names and labels in every table and chart: columns line up, and no name is squeezed to nothing."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from conftest import AS_OF
from crm_rules.engine.policy_files import shipped_policies_dir

EARLIER = "2026-03-31"
POLICY_NAME = "钻石卡会员分级政策"
LONG_TIER = "金卡成长型客户（年采购额稳步增长，具备升级为钻石卡潜力）"
LONG_STAGE = "衰退期（采购量连续下滑需要预警跟进）"
LONG_NAME = "天津万邦贸易股份有限公司华北地区第二分公司"


def table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line[:1] in "┏┃┡│└"]


def name_column(lines: list[str], column: int) -> list[str]:
    return [line.split("│")[column].strip() for line in lines if line.startswith("│")]


@pytest.fixture
def zh_policy(tmp_path) -> Path:
    """The base policy named in Chinese, with long Chinese tier and stage labels."""
    text = shipped_policies_dir().joinpath("base.yaml").read_text(encoding="utf-8")
    text = text.replace("name: base\n", f"name: {POLICY_NAME}\n")
    text = text.replace("label: 成长客户 Growth customers", f"label: {LONG_TIER}")
    text = text.replace("label: 衰退期 Decline", f"label: {LONG_STAGE}")
    path = tmp_path / "zh.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def zh_runs(cli, demo_db, zh_policy) -> Path:
    conn = sqlite3.connect(demo_db)
    conn.execute("UPDATE customers SET name = ?", (LONG_NAME,))
    conn.commit()
    conn.close()
    cli("apply", "--db", demo_db, "-p", zh_policy, "--as-of", EARLIER, ok=True)
    cli("apply", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, ok=True)
    return demo_db


def test_changes_leaves_out_names_it_could_only_show_two_characters_a_line(cli, columns, zh_runs):
    # at 60 columns the name had a column of four cells, ten lines a customer, and "development" broke beside it
    columns(60)
    out = cli("changes", "--db", zh_runs, "--limit", "5", ok=True).output
    lines = table_lines(out)
    assert "Name" not in lines[1] and "天津" not in out.split("Changed customers")[1]
    assert "Name and Service level not shown: this terminal has 60 columns" in " ".join(out.split())  # the note wraps to the terminal
    assert max(cell_len(line) for line in lines) <= 60
    stages = " ".join(name_column(lines, 5))
    assert not re.search(r"\b(developme|identificati|declin)\s", stages + " ")


def test_changes_keeps_names_readable_and_a_tier_move_on_one_line(cli, columns, zh_runs):
    columns(70)
    out = cli("changes", "--db", zh_runs, "--limit", "5", ok=True).output
    lines = table_lines(out.split("Changed customers")[1])
    names = name_column(lines, 2)
    firsts = [n for n, c in zip(names, name_column(lines, 1)) if c.startswith("C")]
    assert min(cell_len(n) for n in firsts) >= 8  # a line holds four characters at least, not two
    customers = name_column(lines, 1)
    second = next(i for i, c in enumerate(customers) if i and c.startswith("C"))
    assert "".join(names[:second]) == LONG_NAME  # the first customer's, whole
    tiers = [t for t in name_column(lines, 4) if t]
    assert all(re.fullmatch(r"[ABC] → [ABC]|[ABC]", t) for t in tiers), tiers
    assert max(cell_len(line) for line in lines) <= 70


def test_runs_leaves_out_the_hash_before_breaking_a_chinese_policy_name(cli, columns, zh_runs):
    # at 60 columns the policy column was four cells wide: "钻石" "卡会" "员分" "级政" "策", and "zh_b" over "ase"
    columns(60)
    out = cli("runs", "--db", zh_runs, ok=True).output
    lines = table_lines(out)
    assert "Hash" not in lines[1]
    policy = name_column(lines, 2)
    assert policy[0] == "钻石卡会员分级政" or policy[0].startswith("钻石卡会员")
    assert "2026-03-31" in out and "2026-06-30" in out
    assert "Hash not shown: this terminal has 60 columns, the full table needs" in " ".join(out.split())  # the note wraps to the terminal
    assert max(cell_len(line) for line in lines) <= 60


def test_runs_shows_every_column_where_they_fit(cli, columns, zh_runs):
    columns(100)
    out = cli("runs", "--db", zh_runs, ok=True).output
    assert "Hash" in table_lines(out)[1] and "not shown" not in out
    assert POLICY_NAME in out


def test_apply_gives_tier_labels_a_table_of_their_own_where_the_figures_leave_them_no_room(cli, columns, demo_db,
                                                                                          zh_policy):
    # at 60 columns the figures left the labels five cells: the long label took fourteen lines of two characters
    columns(60)
    out = cli("apply", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, "--dry-run", ok=True).output
    tiers, rest = out.split("Tier labels", 1)
    assert "Label" not in tiers and "Revenue" in tiers and "Rev. share" in tiers
    labels = table_lines(rest.split("Sub-grades")[0])
    assert "".join(name_column(labels, 2)).startswith("重点客户 Key customers" + LONG_TIER)
    assert max(cell_len(line) for line in table_lines(out)) <= 60


def test_apply_keeps_tier_labels_in_the_tier_table_where_they_fit(cli, columns, demo_db, zh_policy):
    columns(70)
    out = cli("apply", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, "--dry-run", ok=True).output
    assert "Tier labels" not in out
    lines = table_lines(out.split("Sub-grades")[0])
    assert "Label" in lines[1] or "Label" in lines[2]
    assert "".join(name_column(lines, 2)).replace(" ", "").startswith("重点客户Keycustomers" + LONG_TIER)
    assert max(cell_len(line) for line in lines) <= 70


def test_actions_below_80_columns_name_the_customer_under_its_action(cli, columns, zh_runs):
    # the two-line form had no room for a Name column and showed no name at all
    columns(60)
    out = cli("actions", "--db", zh_runs, "--limit", "3", ok=True).output
    lines = out.splitlines()
    assert lines[1].startswith("p") and lines[2].startswith(f"   {LONG_NAME[:20]}")
    assert f"{LONG_NAME}:" in "".join(line.strip() for line in lines[2:4])
    assert max(cell_len(line.rstrip()) for line in lines) <= 60


@pytest.mark.parametrize("width", [64, 66, 70, 72, 76, 80, 100])
def test_no_line_of_a_chinese_cell_starts_with_a_closing_mark(cli, columns, demo_db, zh_policy, width):
    # folded at the column's width, "…具备升级为钻石卡潜力" left "）" alone at the start of a line; Chinese is
    # typeset with the character before it going down too
    text = zh_policy.read_text(encoding="utf-8").replace("label: Revenue, last 12 months",
                                                          "label: 近十二个月销售收入（含税，按开票日期统计）")
    zh_policy.write_text(text, encoding="utf-8")
    columns(width)
    out = cli("apply", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, ok=True).output
    out += cli("explain", "C000001", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, ok=True).output
    lines = table_lines(out)
    cells = [cell.strip() for line in lines for cell in re.split("[│┃]", line)[1:-1]]
    assert not [c for c in cells if c and c[0] in "，。、；：！？）」』】》"], width
    assert not [c for c in cells if c and c[-1] in "（「『【《"], width
    assert max(cell_len(line) for line in lines) <= width
    labels = "".join(c for c in cells if c and all(cell_len(ch) == 2 for ch in c))
    assert "具备升级为钻石卡潜力）" in labels and "按开票日期统计）" in labels


def test_explain_puts_metric_labels_under_their_names_where_a_label_column_would_break_them(cli, columns, demo_db,
                                                                                             zh_policy):
    # at 60 columns the label column was ten cells wide: "receivable" over "s", "(attribute" over ")", and a
    # Chinese label five lines of five characters
    text = zh_policy.read_text(encoding="utf-8").replace("label: Revenue, last 12 months",
                                                          "label: 近十二个月销售收入（含税，按开票日期统计）")
    zh_policy.write_text(text, encoding="utf-8")
    columns(60)
    out = cli("explain", "C000001", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, ok=True).output
    metrics = table_lines(out.split("Metrics", 1)[1])
    header = next(line for line in metrics if line.startswith("┃"))
    assert "Label" not in header and "Metric" in header and "Value" in header
    cells = name_column(metrics, 1)
    at = cells.index("revenue_12m")
    assert cells[at + 1] == "近十二个月销售收入（含税，按开票日期统计）"
    assert "Overdue receivables (more than 30 days)" in cells and "(attribute)" in cells
    assert max(cell_len(line) for line in metrics) <= 60
    columns(100)
    wide = cli("explain", "C000001", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, ok=True).output
    assert "Label" in next(line for line in table_lines(wide.split("Metrics", 1)[1]) if line.startswith("┃"))


def test_explain_wraps_rules_settings_and_actions_under_their_own_indent(cli, columns, demo_db, zh_policy,
                                                                          monkeypatch):
    # a long rule line was broken by the terminal at its first column, under the marks of the rules around it
    columns(60)
    monkeypatch.chdir(demo_db.parent)  # the last line names the database as given: a temporary path is wider than 60
    out = cli("explain", "C000001", "--db", demo_db.name, "-p", zh_policy, "--as-of", AS_OF, ok=True).output
    after = out.split("(method pareto", 1)[1].splitlines()
    rules = after[after.index(next(line for line in after if f"({LONG_TIER[:10]}" in line)):]
    assert rules[0].startswith("  ✓ B (") or rules[0].startswith("  ✗ B (")
    assert rules[1].startswith("    ") and not rules[1].startswith("     ")
    assert LONG_TIER in "".join(line.strip() for line in rules[:2])
    indented = [line for line in after if line.startswith("  ")]
    assert indented and max(cell_len(line.rstrip()) for line in indented) <= 60
    columns(200)
    wide = cli("explain", "C000001", "--db", demo_db, "-p", zh_policy, "--as-of", AS_OF, ok=True).output
    assert any(f"({LONG_TIER}): revenue_12m > 0 and _tier_share < 0.95" in line for line in wide.splitlines())


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_stage_grid_too_wide_for_its_labels_is_headed_by_keys_named_below_it(width):
    # at 60 columns neither the grid nor the turned grid fitted: it was shown row by row, a stage and its label over
    # a line for each tier, 37 lines for 4 tiers
    from crm_rules.engine.render import print_summary

    tiers = ["diamond", "gold", "silver", "standard", "bronze", "member"]
    stages = {"lost": "流失期 Lost", "decline": LONG_STAGE + "，客户经理每周回访并记录原因", "identification":
              "考察期 Identification", "development": "形成期 Development", "stable": "稳定期 Stable"}
    counts = [(t, s, (i * 7 + j * 13) % 300) for i, t in enumerate(tiers) for j, s in enumerate(stages)]
    summary = {"customers": sum(n for *_, n in counts), "tiers": {t: {"customers": 1} for t in tiers},
               "stages": {s: sum(n for _, x, n in counts if x == s) for s in stages}, "tier_stage": counts}
    console = Console(width=width, file=io.StringIO(), color_system=None)
    print_summary(console, summary, {"tiers": {}, "stages": stages}, "header")
    lines = [line.rstrip() for line in console.file.getvalue().splitlines()]
    grid = lines[lines.index("Customers per tier and lifecycle stage") + 1:]
    assert max(cell_len(line) for line in grid) <= width
    assert "├" not in "".join(grid)  # never row by row
    table = [line for line in grid if line[:1] in "┏┃┡│└"]
    assert len({cell_len(line) for line in table}) == 1  # the borders line up
    assert [line.split("│")[1].strip() for line in table if line.startswith("│")] == tiers + ["all"]
    if width == 60:
        assert table[1].split("┃")[2:-1] == [f"  S{i} " for i in range(1, 6)]
        legend = grid[len(table):]
        assert legend[0] == "  S1: 流失期 Lost" and legend[-1] == "  S5: 稳定期 Stable"
        decline = legend[1:legend.index("  S3: 考察期 Identification")]
        assert len(decline) > 1 and all(line.startswith("    ") for line in decline[1:])  # wrapped under its indent
        assert "".join(line.strip() for line in decline) == "S2: " + stages["decline"]
        assert not any(line.strip()[0] in "，）" for line in decline)
    else:
        assert "S1" not in "".join(grid) and len(grid) == len(table)
        headings = [line.split("┃")[1:-1] for line in table if line.startswith("┃")]
        assert "".join(cells[2].strip() for cells in headings) == stages["decline"]  # whole, if wrapped
        assert "Identification" in {cells[3].strip().split()[-1] for cells in headings if cells[3].strip()}
