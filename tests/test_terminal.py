"""The terminal: progress bars only where someone watches, JSON for scripts, tracebacks only with --debug."""

from __future__ import annotations

import io
import json

import pytest
import typer
from rich.cells import cell_len
from rich.console import Console

import crm_rules.cli as cli_module
from conftest import AS_OF
from crm_rules.cli import app
from crm_rules.engine.cli_reference import command_tree
from crm_rules.engine.csv_import import import_csv
from crm_rules.engine.policy_diff import MOVERS_FULL_WIDTH
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

# Commands whose output is not a listing; each says why it has no --json.
NOT_LISTINGS = {
    "demo": "writes a demo folder; `apply --json` gives the same summary",
    "export": "writes the run itself; --format csv|json chooses the format",
    "schema": "prints the JSON Schema, which is JSON already",
    "table export": "writes a spreadsheet table; --format chooses CSV or XLSX",
    "table import": "edits a policy file; prints the changed cells",
}


LEAF_COMMANDS = [(" ".join(doc.path), doc.command) for doc in command_tree() if not doc.is_group]


@pytest.mark.parametrize("name,command", LEAF_COMMANDS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_listing_command_has_json_output(name, command):
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--json" in options or name in NOT_LISTINGS, f"`crm-rules {name}` lists something but has no --json"


def test_apply_reports_its_progress_to_the_end(demo_db):
    seen = []
    apply_policy(demo_db, load_policy("base"), AS_OF, progress=lambda what, done, total: seen.append((what, done, total)))
    computing = [(done, total) for what, done, total in seen if what == "computing"]
    assert computing[0][0] == 1 and computing[-1][0] == computing[-1][1] > 10
    assert [done for done, _ in computing] == sorted(done for done, _ in computing)
    assert seen[-1] == ("writing results", 1, 1)


def test_import_reports_rows_checked_and_written(tmp_path):
    csv = tmp_path / "big.csv"
    csv.write_text("id,amount\n" + "".join(f"C{i},{i}\n" for i in range(12_000)), encoding="utf-8")
    seen = []
    rows = import_csv(tmp_path / "x.db", csv, "t", progress=lambda what, done, total: seen.append((what, done, total)))
    assert rows == 12_000
    assert ("checking rows", 10_000, None) in seen
    assert seen[-1] == ("writing rows", 12_000, 12_000)


@pytest.fixture
def terminal(monkeypatch):
    """stderr as an interactive terminal would be, captured."""
    buffer = io.StringIO()
    monkeypatch.setattr(cli_module, "err_console", Console(file=buffer, force_terminal=True, width=100))
    return buffer


def test_progress_bars_are_drawn_on_a_terminal_and_not_with_quiet(cli, demo_db, terminal):
    cli("apply", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, "--dry-run", ok=True)
    assert "computing" in terminal.getvalue()
    terminal.truncate(0)
    terminal.seek(0)
    cli("--quiet", "apply", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, "--dry-run", ok=True)
    assert "computing" not in terminal.getvalue()


def test_no_progress_bars_when_not_a_terminal(cli, demo_db):
    result = cli("apply", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, "--dry-run", ok=True)
    assert "computing" not in result.output


def test_validate_json_lists_each_file_with_its_problems(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntiers: 3\n", encoding="utf-8")
    result = cli("validate", "base", bad, "--json")
    assert result.exit_code == 1
    entries = json.loads(result.output)
    assert [e["ok"] for e in entries] == [True, False]
    assert entries[1]["problems"] and all({"file", "line", "col", "path", "message"} <= set(p) for p in entries[1]["problems"])


def test_diff_and_analyze_take_json(cli, demo_db):
    diff = cli("diff", "--db", demo_db, "base", "vip_card", "--as-of", AS_OF, "--json", ok=True)
    assert "transitions" in json.loads(diff.output) or json.loads(diff.output)
    analysis = cli("analyze", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, "--json", ok=True)
    assert isinstance(json.loads(analysis.output), dict)


def test_import_json(cli, tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text("id,name\n1,甲\n", encoding="utf-8")
    result = cli("import", csv, "--db", tmp_path / "x.db", "--table", "people", "--json", ok=True)
    assert json.loads(result.output) == {"rows": 1, "table": "people", "db": str(tmp_path / "x.db"), "mode": "create"}


def test_user_errors_have_no_traceback_unless_debug(cli, tmp_path):
    missing = tmp_path / "missing.db"
    result = cli("apply", "--db", missing, "--policy", "base", "--as-of", AS_OF)
    assert result.exit_code == 2 and "Traceback" not in result.output and "database not found" in result.output
    runner = typer.testing.CliRunner()
    debug = runner.invoke(app, ["--debug", "apply", "--db", str(missing), "--policy", "base", "--as-of", AS_OF])
    assert debug.exit_code != 0 and debug.exc_info is not None and type(debug.exc_info[1]).__name__ == "UsageError"


def test_long_lines_stay_whole_at_80_columns(cli, tmp_path, columns):
    """A command to copy, a path, an error with its file: one line each, never wrapped by rich."""
    columns(80)
    demo = cli("demo", "--dir", tmp_path / "a-folder-with-a-rather-long-name-for-the-demo", "--customers", "200", ok=True)
    (follow,) = [line for line in demo.output.splitlines() if line.startswith("next: crm-rules explain")]
    assert follow.endswith(f"--as-of {AS_OF}") and len(follow) > 80
    junk = tmp_path / ("x" * 60 + ".db")
    junk.write_text("not a database")
    error = cli("apply", "--db", junk, "-p", "base")
    assert error.exit_code == 1 and f"error: {junk}: not a SQLite database" in error.output


def test_actions_leave_out_names_and_owners_in_a_narrow_terminal(cli, demo_db, columns):
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    columns(80)
    narrow = cli("actions", "--db", demo_db, "--limit", "5", ok=True).output
    header = next(line for line in narrow.splitlines() if "Due" in line)
    assert "Reason" in header and "Name" not in header and "Owner" not in header
    assert "Name and Owner not shown: this terminal has 80 columns, the full table needs 110" in " ".join(narrow.split())
    assert max(cell_len(line) for line in narrow.splitlines() if line[:1] in "┏┃┡│└") <= 80
    columns(cli_module.ACTIONS_FULL_WIDTH)
    wide = cli("actions", "--db", demo_db, "--limit", "5", ok=True).output
    header = next(line for line in wide.splitlines() if "Due" in line)
    assert "Name" in header and "Owner" in header and "left out" not in wide


def test_explain_keeps_metric_names_whole_at_80_columns(cli, demo_db, columns):
    columns(80)
    out = cli("explain", "C000001", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True).output
    assert "credit_check_recommended_limit" in out and "…" not in out


def test_the_tier_summary_never_cuts_a_number(cli, demo_db, columns):
    """rich's default for a column too narrow is "…": a revenue of 107,407,376.26 came out as "107,407…"."""
    columns(60)
    text = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--dry-run", ok=True).output
    assert "Customers per tier (revenue: revenue_12m)" in text
    summary = text.split("Sub-grades")[0]
    assert "…" not in summary and max(cell_len(line) for line in summary.splitlines() if line[:1] in "┏┃┡│└") <= 60
    tiers = apply_policy(demo_db, load_policy("base"), AS_OF, dry_run=True).summary["tiers"]
    assert all(f"{row['revenue']:,.2f}" in summary for row in tiers.values())


def _explained_and_history(cli, demo_db, name_sql: str) -> list[str]:
    """The output of explain and of history of C000003 after its name is set to the SQL ``name_sql`` and a run."""
    import sqlite3

    conn = sqlite3.connect(demo_db)
    with conn:
        conn.execute(f"UPDATE customers SET name = {name_sql} WHERE id = 'C000003'")
    conn.close()
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    return [cli(*args, ok=True).output for args in (("explain", "C000003", "--db", demo_db, "-p", "base", "--as-of", AS_OF),
                                                    ("history", "C000003", "--db", demo_db))]


def test_control_characters_in_data_are_shown_not_obeyed(cli, demo_db, columns):
    """An ESC imported with a customer's name must not colour or clear the terminal, nor push a table's
    borders out of line: it is written as \\x1b."""
    for text in _explained_and_history(cli, demo_db, "'Evil' || char(27) || '[31mRED' || char(27) || '[0m Co'"):
        assert "\x1b" not in text and "Evil\\x1b[31mRED\\x1b[0m Co" in text
    bad = cli("explain", "C0\x1b[2J", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    assert bad.exit_code == 2 and "\x1b" not in bad.output


def test_invisible_and_line_breaking_characters_of_a_name_are_shown_in_headings(cli, demo_db):
    """A right-to-left override shows "Co" as "oC" and hides what it does; a newline in a name broke the
    heading line of explain and history in two."""
    for text in _explained_and_history(cli, demo_db, "'Acme' || char(10) || 'Ltd' || char(8238) || 'oC' || char(8203)"):
        first = text.splitlines()[0]
        assert "Acme\\nLtd\\u202eoC\\u200b" in first and "\u202e" not in first


def test_diff_customers_keep_ids_whole_and_leave_out_names_when_narrow(cli, demo_db, columns):
    """At 80 columns (a pipe, a cron log) the movers table broke ids inside the word ("standard-win/back")."""
    args = ("diff", "--db", demo_db, "base", "vip_card", "--as-of", AS_OF, "--customers", "--limit", "5")
    columns(80)
    narrow = cli(*args, ok=True).output.split("Customers whose grades change")[1]
    header = next(line for line in narrow.splitlines() if "Customer" in line)
    assert "Name" not in header and "Name not shown: this terminal has 80 columns, the full table needs 120" in narrow
    assert "C00000\n" not in narrow and max(cell_len(line) for line in narrow.splitlines() if line[:1] in "┏┃┡│└") <= 80
    columns(MOVERS_FULL_WIDTH)
    wide = cli(*args, ok=True).output.split("Customers whose grades change")[1]
    assert "Name" in next(line for line in wide.splitlines() if "Customer" in line) and "left out" not in wide


def test_analyze_keeps_metric_names_whole_at_80_columns(cli, demo_db, columns):
    """One table per rule list: with the list as a column, "revenue_prev_12m_trend" broke inside the word."""
    columns(80)
    text = cli("analyze", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True).output
    assert "Rules on the data: tiers" in text and "Rules on the data: lifecycle stages" in text
    assert "revenue_prev_12m_trend" in text and max(cell_len(line) for line in text.splitlines() if line[:1] in "┏┃┡│└") <= 80


def test_actions_are_two_lines_each_below_80_columns(cli, demo_db, columns):
    """At 60 columns the table left the reason four cells wide ("volu / me / -44%")."""
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    columns(60)
    text = cli("actions", "--db", demo_db, "--limit", "5", ok=True).output
    lines = text.splitlines()
    assert lines[0].startswith("Actions of run 1: ") and lines[1].startswith("p1 ") and lines[2].startswith("   ")
    assert "┃" not in text and max(cell_len(line.rstrip()) for line in lines) <= 60
    first = json.loads(cli("actions", "--db", demo_db, "--json", ok=True).output)["actions"][0]
    assert f"p1 {first['due_date']} {first['customer_id']} ({first['tier']}) {first['action']}" == lines[1]


def test_a_table_whose_numbers_alone_overflow_is_shown_row_by_row(cli, demo_db, columns):
    """At 60 columns `index` cut its row counts short ("37,2" for 37,259), "interactions" to "interactio",
    and gave the index column no width at all: its ids and numbers never break, and did not fit together."""
    args = ("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF)
    sources = json.loads(cli(*args, "--json", ok=True).output)["sources"]
    columns(60)
    text = cli(*args, ok=True).output
    lines = [line for line in text.splitlines() if line[:1] in "┏┃┡│└┌├"]
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    for source in sources:
        assert ["Table", source["table"]] in cells and ["Rows", f"{source['rows']:,}"] in cells
    assert ["Index", "proposed"] in cells and "┳┳" not in text
    assert max(cell_len(line) for line in lines) <= 60
    columns(100)
    wide = cli(*args, ok=True).output
    assert "┃ Table" in wide and "├" not in wide  # a table where it fits


def test_diff_costs_never_break_an_amount(cli, demo_db, columns):
    """At 52 columns the cost table folded its amounts: "790,713.09" came out as "790,713.0" over "9" (at 60 with
    the amounts of 2,000 customers)."""
    args = ("diff", "--db", demo_db, "base", "vip_card", "--as-of", AS_OF)
    costs = json.loads(cli(*args, "--json", ok=True).output)["costs"]
    columns(52)
    text = cli(*args, ok=True).output.split("Cost of service levels")[1]
    lines = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    cells = {cell.strip() for line in lines for cell in line.split("│")[2:-1]}
    amounts = [v for side in ("old", "new") for v in costs[side]["totals"].values() if v is not None]
    assert amounts and all(f"{v:,.2f}" in cells or f"{v:,}" in cells for v in amounts), cells
    assert max(cell_len(line) for line in lines) <= 52


def test_the_summary_leaves_out_what_the_policy_does_not_have(cli, demo_db, tmp_path):
    # a policy without labels or service levels got a Label column of empty cells and "Service levels: (none) 300"
    policy = tmp_path / "plain.yaml"
    policy.write_text("metrics:\n  revenue: {sum: amount}\n"
                      "tiers:\n  levels: [{id: A, when: 'revenue > 1000'}, {id: B, default: true}]\n")
    text = cli("apply", "--db", demo_db, "-p", policy, "--as-of", AS_OF, "--dry-run", ok=True).output
    assert "Customers per tier" in text and "Label" not in text
    assert "Service levels" not in text and "(none)" not in text
    with_both = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--dry-run", ok=True).output
    assert "Label" in with_both and "Service levels" in with_both


def test_the_service_level_summary_shows_labels(cli, demo_db):
    # it showed the ids alone, while the tiers beside them had their labels
    text = cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF, "--dry-run", ok=True).output
    line = next(line for line in text.splitlines() if "standard-self" in line)
    assert "普通卡自助服务 Standard self-service" in line
    data = json.loads(cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF, "--dry-run", "--json",
                          ok=True).output)
    assert data["labels"]["service_levels"]["standard-self"] == "普通卡自助服务 Standard self-service"


def test_the_stage_grid_turns_rather_than_break_stage_labels(cli, demo_db, columns):
    # at 70 columns the stage labels heading the columns broke mid-word ("Identifi" / "cation")
    columns(70)
    text = cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF, "--dry-run", ok=True).output
    assert "Customers per lifecycle stage and tier" in text
    assert any("考察期 Identification" in line and line.rstrip().endswith("│") for line in text.splitlines())
    columns(120)
    wide = cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF, "--dry-run", ok=True).output
    assert "Customers per tier and lifecycle stage" in wide and "Stage labels" not in wide


def _words(text: str) -> set[str]:
    """Every word the output shows, table borders taken for spaces."""
    return {word for line in text.splitlines() for word in line.translate(str.maketrans("│┃", "  ")).split()}


def test_analyze_keeps_rule_ids_and_metric_names_whole_at_60_columns(cli, demo_db, columns):
    """At 60 columns the rule ids broke ("diamond-butl" / "er") and so did a metric in a condition ("revenue_prev" /
    "_12m_trend"); the heading and the notes ran past the terminal's edge, broken wherever it was."""
    args = ("analyze", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF)
    rules = json.loads(cli(*args, "--json", ok=True).output)["rules"]
    columns(60)
    text = cli(*args, ok=True).output
    words = _words(text)
    assert {rule["id"] for rule in rules} <= words and "revenue_prev_12m_trend" in words
    assert max(cell_len(line) for line in text.splitlines()) <= 60
    assert text.splitlines()[0].startswith("vip_card (sha256 ")
    assert "note: service levels are checked on data only" in text
    columns(120)
    wide = cli(*args, ok=True).output
    assert "┃ Rule " in wide and "┃ Condition " in wide and {rule["id"] for rule in rules} <= _words(wide)


def test_apply_at_60_columns_wraps_its_heading_and_keeps_stage_ids_and_labels_whole(cli, demo_db, columns):
    """The heading ran past the terminal's edge, and the stage grid, turned or not, fitted neither way: its ids
    broke heading the columns ("identifi" / "cation"); shown row by row, it took 37 lines for 4 tiers. The
    stages head the columns as S1 ... S5, each named with its label below the grid."""
    columns(60)
    text = cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF, "--dry-run", ok=True).output
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 60
    assert lines[0].startswith(f"vip_card as of {AS_OF}: ") and lines[1].startswith("  ")
    assert "dry run: nothing written" in " ".join(" ".join(lines[:2]).split())
    assert "identifi" not in _words(text) and "Identifi" not in _words(text)
    grid = text.split("Customers per tier and lifecycle stage\n")[1].split("Plugin outputs")[0].splitlines()
    assert grid[1].split() == ["┃", "Tier", "┃", "S1", "┃", "S2", "┃", "S3", "┃", "S4", "┃", "S5", "┃"]
    assert [line.split("│")[1].strip() for line in grid if line.startswith("│")] == [
        "diamond", "gold", "silver", "standard", "all"]
    labels = ("流失期 Lost", "衰退期 Decline", "考察期 Identification", "形成期 Development", "稳定期 Stable")
    assert grid[-5:] == [f"  S{i}: {label}" for i, label in enumerate(labels, 1)]
    assert len(grid) == 14 and "├" not in text  # not row by row
    for width in (80, 120):
        columns(width)
        wide = cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", AS_OF, "--dry-run", ok=True).output
        assert "┃ Tier     ┃" in wide and "S1" not in wide and "├" not in wide
        assert {"Identification", "Development"} <= _words(wide)
    assert wide.splitlines()[0].endswith("dry run: nothing written")


def test_diff_at_60_columns_breaks_no_heading_unit_or_figure(cli, demo_db, columns):
    """At 60 columns the revenue share headings broke ("customer" / "s"), a change in points came out as "-80.0"
    over "pp", a cost's unit as "(cost_per_cu" over "stomer)", and the heading ran past the terminal's edge."""
    args = ("diff", "--db", demo_db, "base", "vip_card", "--as-of", AS_OF)
    data = json.loads(cli(*args, "--json", ok=True).output)
    columns(60)
    text = cli(*args, ok=True).output
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 60
    assert lines[0].startswith("base (sha256 ") and lines[1].startswith("  ")
    words = _words(text)
    assert "(cost_per_customer)" in words and "(accounts_per_manager)" in words
    assert not any(cell.strip() in ("s", "pp") for line in lines for cell in line.replace("┃", "│").split("│"))
    shares = text.split("Customers and revenue share per tier")[1].split("Cost of service levels")[0]
    for tier, e in data["revenue_share"]["tiers"].items():
        if e["change"] is not None:
            assert any(line.startswith(f"│ {tier} ") and f"{e['change'] * 100:+.1f} pp │" in line
                       for line in shares.splitlines()), tier
    columns(120)
    wide = cli(*args, ok=True).output
    assert "Old customers" in wide and "Service cost (cost_per_customer)" in wide


def test_table_export_listing_keeps_column_names_whole_at_60_columns(cli, columns):
    """At 60 columns the YAML paths left the column names too little room ("attributes.points_multi" / "plier",
    "tiers.levels[].subgrade" / "s"): the tables are listed one after another there."""
    tables = json.loads(cli("table", "export", "vip_card", "--json", ok=True).output)["tables"]
    columns(60)
    text = cli("table", "export", "vip_card", ok=True).output
    words = {word.rstrip(",") for word in _words(text)}
    assert {t["table"] for t in tables} | {t["yaml_path"] for t in tables} <= words
    assert {c for t in tables for c in t["columns"] or []} <= words
    assert max(cell_len(line) for line in text.splitlines() if not line.startswith("next: ")) <= 60
    columns(80)
    assert "┃ Table (in the YAML) " in cli("table", "export", "vip_card", ok=True).output


def test_explain_headings_wrap_at_spaces_at_60_columns(cli, demo_db, columns, monkeypatch):
    """The heading, the sentences saying why, and the tier and stage headings ran past the terminal's edge (the
    strategy of a lifecycle stage, a Chinese company name), broken wherever it fell."""
    monkeypatch.chdir(demo_db.parent)  # the last line names the database as given: a temporary path is wider than 60
    args = ("explain", "C000001", "--db", demo_db.name, "-p", "vip_card", "--as-of", AS_OF)
    data = json.loads(cli(*args, "--json", ok=True).output)
    columns(60)
    text = cli(*args, ok=True).output
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 60
    assert lines[0].startswith("Customer C000001 ") and lines[1].startswith("  ")
    flat = " ".join(text.split())
    assert f"policy vip_card (sha256 {data['policy_sha256'][:12]}), as of {AS_OF}" in flat
    assert f"Lifecycle stage {data['stage']['id']} (decided by rule {data['stage']['rule']})" in flat
    assert {m["name"] for m in data["metrics"] if not m["internal"]} <= _words(text)


def test_changes_at_60_columns_breaks_no_word(cli, demo_db, columns):
    """At 60 columns the changed customers broke "upgrad" / "e" and "develop" / "ment" beside a column of
    sub-grades that were all "—" (vip_card has none), and the heading and totals ran past the terminal's edge."""
    for as_of in ("2026-05-31", AS_OF):
        cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", as_of, ok=True)
    columns(60)
    text = cli("changes", "--db", demo_db, "-p", "vip_card", "--limit", "20", ok=True).output
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 60
    assert lines[0].startswith("vip_card run 2 (as of ") and lines[1].startswith("  ")
    header = next(line for line in lines if "Customer" in line and line.startswith("┃"))
    assert "Sub-grade" not in header and "Stage" in header
    rows = json.loads(cli("changes", "--db", demo_db, "-p", "vip_card", "--json", ok=True).output)["changes"][:20]
    words = _words(text)
    assert {word for r in rows for word in r["direction"].split()} <= words
    assert {s for r in rows for s in (r["stage_before"], r["stage_after"]) if s} <= words


def test_history_and_prune_wrap_their_lines_at_60_columns(cli, demo_db, columns):
    """history's heading (a Chinese name, every policy) and its note, prune's heading and its count of rows ran past
    the terminal's edge, broken wherever it fell."""
    for as_of in ("2026-05-31", AS_OF):
        cli("apply", "--db", demo_db, "-p", "vip_card", "--as-of", as_of, ok=True)
    columns(60)
    for args in (("history", "C000001", "--db", demo_db), ("prune", "--db", demo_db, "--keep", "1", "--dry-run")):
        text = cli(*args, ok=True).output
        lines = text.splitlines()
        # a path longer than the line (the test's database) keeps a line of its own, whole
        assert max(cell_len(line) for line in lines if len(line.split()) > 1) <= 60, args[0]
        assert lines[1].startswith("  "), args[0]
    flat = " ".join(text.split())
    assert f"pruning {demo_db}, keeping each policy's newest 1 successful run" in flat
    assert "would delete " in flat and " crm_runs)" in flat


def test_index_wraps_its_prose_and_keeps_its_sql_one_line_at_60_columns(cli, demo_db, columns):
    """The heading and the closing sentence ran past the terminal's edge, broken inside a word; the SQL to copy
    stays one line each."""
    columns(60)
    lines = cli("index", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True).output.splitlines()
    prose = [line for line in lines if not line.lstrip().startswith("CREATE INDEX") and len(line.split()) > 1]
    assert max(cell_len(line) for line in prose) <= 60
    assert lines[0].startswith(f"base as of {AS_OF} on") and lines[1].startswith("  ")
    assert all(line.rstrip().endswith(("-- helps", "-- does not help")) for line in lines if "CREATE INDEX" in line)
