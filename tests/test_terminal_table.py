"""Tables too wide for the terminal: words stay whole, and the room goes where it saves lines."""

from __future__ import annotations

import io

import pytest

from rich.cells import cell_len
from rich.console import Console

from conftest import AS_OF
from crm_rules.engine.terminal_table import fit_widths, titled_table


def rendered(table, width: int) -> list[str]:
    out = io.StringIO()
    Console(file=out, width=width, soft_wrap=True).print(table)
    return out.getvalue().splitlines()


def words_in(lines: list[str]) -> set[str]:
    return {word for line in lines for word in line.replace("│", " ").replace("┃", " ").split()}


def test_no_column_is_narrowed_below_its_longest_word():
    # rich alone narrows the widest columns first and broke "Identification" into "Identificati" and "on"
    table = titled_table("Customers per tier and lifecycle stage", "Tier", "流失期 Lost>", "衰退期 Decline>",
                         "考察期 Identification>", "形成期 Development>", "稳定期 Stable>")
    table.add_row("A", "0", "149", "13", "243", "117")
    lines = rendered(table, 80)
    assert {"Identification", "Development", "Decline", "Stable", "Lost"} <= words_in(lines)
    assert max(cell_len(line) for line in lines) <= 80


def test_room_goes_to_the_column_whose_rows_it_puts_on_one_line():
    # explain's metrics: one long value must not hold every label beside it to three lines
    table = titled_table("Metrics", "Metric", "Label", "Value>", whole=("Metric",))
    for i in range(12):
        table.add_row(f"metric_number_{i}", "Revenue, last 12 months of orders", f"{i * 1000:,}.00")
    table.add_row("credit_check_terms", "recommended payment terms", "deposit 20%, net 30 days")
    lines = rendered(table, 72)
    assert sum("Revenue, last 12 months of orders" in line for line in lines) == 12
    assert max(cell_len(line) for line in lines) <= 72


def test_chinese_text_breaks_between_characters_so_other_columns_keep_their_words():
    # a company name without spaces is no 24-cell word: it wraps, and the stage beside it stays whole
    table = titled_table("Changed customers", "Customer", "Name", "Stage", "Reason", whole=("Customer",))
    table.add_row("C000029", "重庆宏达百货股份有限公司", "identification → decline", "no order for 130 days now")
    lines = rendered(table, 60)
    assert {"identification", "decline", "130"} <= words_in(lines)
    names = "".join(line.split("│")[2].strip() for line in lines if line.startswith("│"))
    assert names == "重庆宏达百货股份有限公司"
    assert max(cell_len(line) for line in lines) <= 60


def test_a_columns_min_width_holds_when_words_must_break():
    # runs: "Finished" (YYYY-MM-DD HH:MM) keeps its date whole, however narrow the policy name must go
    table = titled_table("Runs", "Run>", "Policy", "Hash", "As of", "Finished", whole=("Run", "Hash", "As of"))
    table.columns[4].min_width = 10
    table.add_row("1", "vip_card_extended", "efd007404399", "2026-06-30", "2026-11-24 03:25")
    lines = rendered(table, 52)
    assert "2026-11-24" in words_in(lines) and "efd007404399" in words_in(lines)
    assert max(cell_len(line) for line in lines) <= 52


def test_fit_widths_fills_the_room_within_each_columns_bounds():
    widths = fit_widths([4, 9, 9, 5, 14, 7], [4, 26, 9, 5, 21, 13], 61, None, 0)
    assert sum(widths) == 61
    assert all(n <= w <= m for n, w, m in zip([4, 9, 9, 5, 14, 7], widths, [4, 26, 9, 5, 21, 13]))
    assert widths[1] == widths[4] == 15  # the widest give way first, as in rich


def test_a_table_that_fits_is_laid_out_by_rich_unchanged():
    table = titled_table("Service levels", "Service level", "Customers>")
    table.add_row("A-key", "373")
    assert rendered(table, 80) == rendered(_plain(table), 80)


def _plain(table):
    from rich.table import Table

    plain = Table(title=table.title, title_justify="left")
    for column in table.columns:
        plain.add_column(column.header, justify=column.justify, overflow="fold")
    for row in zip(*(column.cells for column in table.columns)):
        plain.add_row(*row)
    return plain


def test_demo_summary_at_80_columns_keeps_every_label_word(cli, tmp_path, columns):
    columns(80)
    out = cli("demo", "--dir", tmp_path / "demo", "--customers", "200", ok=True).output
    lines = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert {"Identification", "Development", "customers"} <= words_in(lines)
    assert max(cell_len(line) for line in lines) <= 80
    assert f"--as-of {AS_OF}" in out


@pytest.mark.parametrize("text", ["revenue_12m trend of the last twelve months", "a verylongwordthatmustfold here",
                                  "xxxxxxx xxxxxxxxxxxx x xxxxxxxxx",  # folded words: their spaces start lines
                                  "two lines\nof text", "", "one"])
def test_line_counts_are_those_rich_wraps_to(text):
    from rich.text import Text

    from crm_rules.engine.terminal_table import _line_counter

    lines = _line_counter([[Text(text)]])
    console = Console(width=200)
    for width in range(3, 30):
        assert lines(0, 0, width) == len(Text(text).wrap(console, width, overflow="fold")), width


@pytest.mark.parametrize("width", [60, 80])
def test_a_title_longer_than_the_terminal_wraps_at_spaces(width):
    # the CLI's consoles do not wrap lines: a long title ran past the terminal's edge, which broke it inside a word
    title = ("Customers per tier (revenue: revenue_12m_including_tax_by_invoice_date) "
             "客户等级分布：按近十二个月销售收入（含税，按开票日期统计）排序")
    table = titled_table(title, "Tier", "Customers>")
    table.add_row("gold", "1")
    lines = rendered(table, width)
    heading = lines[:lines.index(next(line for line in lines if line.startswith("┏")))]
    assert len(heading) > 1 and max(cell_len(line) for line in heading) <= width
    assert "revenue_12m_including_tax_by_invoice_date)" in words_in(heading)
    assert "".join("".join(heading).split()) == "".join(title.split())  # nothing lost, nothing added
    assert not any(line.startswith(("，", "）")) for line in heading)


def test_row_by_row_numbers_are_right_aligned_among_themselves():
    # shown row by row, the numbers were left-aligned: 1,775,760 stood under 5,772,540.92, digits out of place
    table = titled_table("Cost of service levels", "Measure", "Old>", "New>", "Change>",
                         whole=("Measure", "Old", "New", "Change"))
    table.add_row("服务成本 Service cost (cost_per_customer)", "1,775,760", "—", "—")
    table.add_row("折扣 Discount given (discount × revenue_12m)", "5,772,540.92", "6,262,389.94", "[b]+489,849.02[/b]")
    lines = rendered(table, 60)
    assert "┃" not in "".join(lines)  # row by row: no header row
    values = [line.split("│")[2] for line in lines if line.startswith("│ ")]
    numbers = [v for v in values if v.strip()[:1] in "0123456789+—"]
    assert len(numbers) == 6
    ends = {cell_len(v.rstrip()) for v in numbers}
    assert len(ends) == 1  # one right edge
    assert ends == {cell_len(" 5,772,540.92")}  # beside their names, not at the far edge of the labels' column
    assert any(v.strip() == "服务成本 Service cost (cost_per_customer)" for v in values)
    assert len({cell_len(line) for line in lines[1:]}) == 1  # Chinese counted two cells: the borders line up
