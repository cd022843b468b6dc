"""The tables every command prints, laid out for the terminal they are printed in.

rich narrows the widest columns of a table too wide for the terminal first, whatever they hold: at 80
columns (a pipe, a cron log, a small window) the demo's tier x stage grid broke "考察期 Identification"
into "Identificati" and "on" while other columns kept room to spare, and the explain table gave a
metric's value more room than it needed while every label beside it took three lines.  Here no column
is narrowed below its longest word, and the room above that goes where it saves the most lines.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import lru_cache
from itertools import groupby
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .user_text import joined


# Above this many rows the layout takes rich's way with the word floor only: weighing each width against
# every row's line count costs more than a long listing (changes --limit 0) is worth.
WEIGHED_ROWS = 100


def titled_table(title: str, *columns: str, whole: tuple[str, ...] = ()) -> Table:
    """A left-titled table; a column named with a trailing ``>`` is right-aligned (numbers).

    Text that does not fit its column wraps, and a word longer than the column folds onto the next line:
    rich's default would cut it off with "…", and a label or a name cut short is a label or a name lost.
    The columns named in ``whole`` (ids, dates, hashes, metric names) never break: the others give way.
    """
    table = _WordKeepingTable(title=title, title_justify="left")
    for column in columns:
        name = column.rstrip(">")
        table.add_column(name, justify="right" if column.endswith(">") else "left", overflow="fold",
                         no_wrap=name in whole)
    return table


def print_listing(console: Console, title: str, columns: tuple[str, ...], items: list, cells: Callable[[Any], dict],
                  *, limit: int, whole: tuple[str, ...], optional: tuple[str, ...], full_width: int,
                  json_hint: str, spare: tuple[str, ...] = (), min_widths: dict[str, int] | None = None) -> None:
    """A listing of ``items`` (the first ``limit``, 0 = all) as a table of ``columns``, each row's cells from
    ``cells(item)`` (escaped text by column name), with "N more" when cut short.

    Below ``full_width`` terminal columns the ``optional`` ones (names, owners, long texts) are left out, and a
    note says so: kept, an 80-column terminal (a pipe, a cron log) folds ids and dates inside the word, and a
    listing whose customer ids are broken is no use.  The ``spare`` ones are left out next, one by one, while the
    table still cannot keep its words whole (see :func:`words_fit`): at 60 columns a Chinese company name kept
    beside them got a column two characters wide, ten lines a customer, and the stages beside it broke inside
    the word.  ``min_widths`` holds columns at least that wide (a date and time that wraps at its space only).
    ``json_hint`` is the option that shows everything.
    """
    narrow = console.width < full_width
    shown = items if limit == 0 else items[:limit]
    rows = [cells(item) for item in shown]
    shown_columns = tuple(c for c in columns if not (narrow and c.rstrip(">") in optional))
    need = full_width
    held = min_widths or {}
    while True:
        table = titled_table(title, *shown_columns, whole=whole)
        for column in table.columns:
            column.min_width = held.get(str(column.header))
        for row in rows:
            table.add_row(*(row[c.rstrip(">")] for c in shown_columns))
        left = [c for c in shown_columns if c.rstrip(">") in spare]
        if not left and not held:
            break
        width = readable_width(console, table)
        if width <= console.width:
            break
        if not left:
            # the widths held are for lines that read better ("C → B" on one line), and words come first: at 60
            # columns a tier's move held at its width broke "identification" in the stage beside it
            held = {}
            continue
        if not narrow and shown_columns == columns:  # the full table: what it needs is more than full_width said
            need = width
        shown_columns = tuple(c for c in shown_columns if c != left[0])
    console.print(table)
    if len(shown) < len(items):
        print_indented(console, f"{len(items) - len(shown):,} more; use --limit 0 or {json_hint}")
    left_out = [c.rstrip(">") for c in columns if c not in shown_columns]
    if left_out and shown:  # wrapped at spaces: the terminal this note is for is the narrow one
        print_indented(console, f"{joined(left_out)} not shown: this terminal has {console.width} columns, the full "
                                f"table needs {need}; widen it, or use {json_hint}")


# A run of Chinese or Japanese text may break between any two characters, but a column two characters wide
# (one word of most Chinese names) holds a company name as ten lines of two: a column that can only give it
# less than this many cells is a column better left out (words_fit), or narrowed only when nothing else fits.
READABLE_WIDE_RUN = 8


def readable_width(console: Console, table: Table) -> int:
    """The terminal columns ``table`` needs to break no word, nor narrow a run of Chinese text below
    READABLE_WIDE_RUN cells (or its own width, if shorter)."""
    if not isinstance(table, _WordKeepingTable):
        return console.measure(table).minimum
    least, room = table.least_widths(console, console.options, wide_run=READABLE_WIDE_RUN)
    return sum(least) + console.options.max_width - room


def words_fit(console: Console, table: Table) -> bool:
    """Whether ``table`` fits ``console`` readably (:func:`readable_width`)."""
    return readable_width(console, table) <= console.width


def fit_widths(least: list[int], most: list[int], room: int,
               lines: Callable[[int, int, int], int] | None, rows: int) -> list[int]:
    """Column widths summing to ``room``, each between its ``least`` and ``most`` (needs sum(least) <= room).

    With ``lines(row, column, width)``, the number of lines a cell takes at a width, the room above the
    least widths goes step by step to the column width that saves the most table lines per character
    (the labels of explain's metrics rather than one long value beside them); what no single step saves
    lines with is shared as rich shares it, the widest columns held back first.
    """
    widths, spare = list(least), room - sum(least)
    open_ = [i for i in range(len(widths)) if least[i] < most[i]]
    while lines is not None and spare > 0:
        now = [[lines(r, i, widths[i]) for i in range(len(widths))] for r in range(rows)]
        best: tuple[float, int, int] | None = None
        for i in open_:
            others = [max((n for j, n in enumerate(row) if j != i), default=1) for row in now]
            before = sum(max(o, row[i]) for o, row in zip(others, now))
            for width in range(widths[i] + 1, min(most[i], widths[i] + spare) + 1):
                saved = before - sum(max(o, lines(r, i, width)) for r, o in enumerate(others))
                if saved > 0 and (best is None or saved / (width - widths[i]) > best[0]):
                    best = (saved / (width - widths[i]), i, width)
        if best is None:
            break
        _, i, width = best
        spare -= width - widths[i]
        widths[i] = width
    widths, level = lowered(most, widths, room)
    at_level = [i for i, w in enumerate(widths) if w == level < most[i]]
    for i in at_level[:room - sum(widths)]:  # what is left under the next level up: one more each
        widths[i] += 1
    return widths


def lowered(tops: list[int], floors: list[int], room: int) -> tuple[list[int], int]:
    """The tops cut down to one level, the highest at which they fit in ``room``, none below its floor.

    This is how rich narrows a table: the widest columns give way first.
    """
    level = max(tops, default=0)
    while level > 0 and sum(min(t, max(f, level)) for t, f in zip(tops, floors)) > room:
        level -= 1
    return [min(t, max(f, level)) for t, f in zip(tops, floors)], level


class _WordKeepingTable(Table):
    """A rich Table whose columns, when it is too wide, are laid out by :func:`fit_widths`."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        title = self.title
        self.title = _title_wrapped(title, console, options)
        try:
            yield from self._render_table(console, options)
        finally:
            self.title = title

    def _render_table(self, console: Console, options: ConsoleOptions) -> RenderResult:
        widths = self._word_keeping_widths(console, options)
        if widths is None:
            yield from super().__rich_console__(console, options)
            return
        if not widths:  # the ids and numbers alone are wider than the terminal
            yield self._records(console, options)
            return
        kept = [(column.header, column._cells) for column in self.columns]
        for column, width in zip(self.columns, widths):
            column.width = width
            column.header, *column._cells = [_chinese_wrapped(cell, width, console, options)
                                             for cell in (column.header, *column._cells)]
        try:
            yield from super().__rich_console__(console, options)
        finally:
            for column, (header, cells) in zip(self.columns, kept):
                column.width = None
                column.header, column._cells = header, cells

    def _records(self, console: Console, options: ConsoleOptions) -> Table:
        """The table one row after another, each a column name and its value a line: where the columns that never
        break are wider together than the terminal, rich cut their numbers short (`index` at 60 columns showed
        37,259 rows as "37,2") and gave a column no width at all.

        The values of right-aligned columns (numbers) are right-aligned among themselves, as wide as the widest of
        them: left-aligned, 1,775,760 stood under 5,772,540.92 with its digits out of place; aligned at the column's
        right edge, beside a 40-cell label, they stood a terminal's width from their names."""
        records = _WordKeepingTable(title=self.title, title_justify=self.title_justify, show_header=False)
        records.add_column(no_wrap=True)
        records.add_column(overflow="fold")
        values = [[console.render_str(cell, markup=options.markup, highlight=False) if isinstance(cell, str) else cell
                   for cell in column._cells] if column.justify == "right" else list(column._cells)
                  for column in self.columns]
        numbers = [line for column, cells in zip(self.columns, values) if column.justify == "right"
                   for cell in cells if isinstance(cell, Text) for line in cell.split("\n", allow_blank=True)]
        width = max((cell_len(line.plain) for line in numbers), default=0)
        last = len(self.columns) - 1
        for row in range(self.row_count):
            for i, column in enumerate(self.columns):
                value = values[i][row]
                if column.justify == "right" and isinstance(value, Text) and value.plain.strip():
                    value = Text("\n").join(Text(" " * (width - cell_len(line.plain))) + line
                                            for line in value.split("\n", allow_blank=True))
                records.add_row(column.header, value, end_section=i == last and row < self.row_count - 1)
        return records

    def _room(self, options: ConsoleOptions) -> int:
        """The cells the columns' content may take: the width less borders and padding."""
        columns = self.columns
        borders = (len(columns) + 1 if self.show_edge else len(columns) - 1) if self.box else 0
        return (self.width or options.max_width) - borders - (self.padding[1] + self.padding[3]) * len(columns)

    def _rendered_cells(self, console: Console, options: ConsoleOptions) -> list[list[RenderableType]]:
        return [[console.render_str(cell, markup=options.markup, highlight=False) if isinstance(cell, str) else cell
                 for cell in (column.header, *column.cells)] for column in self.columns]

    def least_widths(self, console: Console, options: ConsoleOptions, *, wide_run: int = 2,
                     cells: list[list[RenderableType]] | None = None,
                     most: list[int] | None = None) -> tuple[list[int], int]:
        """Each column's narrowest content width that breaks no word (a column in ``whole``: its widest cell),
        and the room there is for them."""
        cells = self._rendered_cells(console, options) if cells is None else cells
        floors = [column.min_width or 1 for column in self.columns]
        if most is None:
            most = [max(floor, *(Measurement.get(console, options, cell).maximum for cell in column))
                    for floor, column in zip(floors, cells)]
        least = [m if column.no_wrap else
                 max(floor, *(_longest_word(cell, console, options, wide_run) for cell in column_cells))
                 for m, floor, column, column_cells in zip(most, floors, self.columns, cells)]
        return least, self._room(options)

    def _word_keeping_widths(self, console: Console, options: ConsoleOptions) -> list[int] | None:
        """Content widths (padding excluded) that keep every word whole where the words fit at all; None when
        rich's own are as good (the table fits), [] when nothing is (the columns that never break, and the others at
        their min_width, overflow)."""
        columns = self.columns
        if not columns or any(column.width is not None for column in columns):
            return None
        room = self._room(options)
        cells = self._rendered_cells(console, options)
        floors = [column.min_width or 1 for column in columns]  # rich's Column.min_width, as rich honours it
        most = [max(floor, *(Measurement.get(console, options, cell).maximum for cell in column))
                for floor, column in zip(floors, cells)]
        if sum(most) <= room:
            return None
        # Chinese text keeps READABLE_WIDE_RUN cells a line where the room allows, else two (one character)
        least, _ = self.least_widths(console, options, wide_run=READABLE_WIDE_RUN, cells=cells, most=most)
        if sum(least) > room:
            least, _ = self.least_widths(console, options, cells=cells, most=most)
        if sum(least) > room:  # some word must break: the longest ones, as few as can be
            floors = [n if column.no_wrap else floor for n, floor, column in zip(least, floors, columns)]
            if sum(floors) > room:
                return []
            least, _ = lowered(least, floors, room)
        rows = len(cells[0])
        weighed = rows <= WEIGHED_ROWS and all(isinstance(cell, Text) for column in cells for cell in column)
        return fit_widths(least, most, room, _line_counter(cells) if weighed else None, rows)


def _longest_word(cell: RenderableType, console: Console, options: ConsoleOptions, wide_run: int = 2) -> int:
    """The narrowest a cell can be without breaking a word. Chinese and Japanese break between any two
    characters, so a company name written without spaces is no word of 24 cells (rich measures it so) but
    characters of 2: the name wraps, its column need not hold it on one line.  With ``wide_run`` such a run
    counts as that many cells (or its own width, if less): the narrowest it reads well at."""
    if not isinstance(cell, Text):
        return Measurement.get(console, options, cell).minimum
    return max((cell_len("".join(run)) if not wide else min(cell_len("".join(run)), max(2, wide_run))
                for word in cell.plain.split() for wide, run in groupby(word, key=_wide)), default=0)


# Chinese typesetting starts no line with a comma, a full stop or a closing bracket, and ends none with an
# opening one: folded at the column's width, "近十二个月销售收入（含税，按开票日期统计" left "）" alone on a line.
NOT_AT_LINE_START = frozenset("，。、；：！？）］｝】』」》〉〕”’…‥%％·・ー々〃,.;:!?)]}")
NOT_AT_LINE_END = frozenset("（［｛【『「《〈〔“‘")


def _chinese_wrapped(cell: RenderableType, width: int, console: Console, options: ConsoleOptions) -> RenderableType:
    """A cell holding Chinese text too long for ``width``, broken into lines as Chinese is typeset: between
    any two characters, but a closing mark stays on the line of the character before it (which goes down
    with it) and an opening one on the line of the character after.  Other cells as they are."""
    text = console.render_str(cell, markup=options.markup, highlight=False) if isinstance(cell, str) else cell
    if not isinstance(text, Text) or not any(_wide(ch) for ch in text.plain) or cell_len(text.plain) <= width:
        return cell
    return _broken(text, width, fold=True)


def _title_wrapped(title: Any, console: Console, options: ConsoleOptions) -> Any:
    """A title longer than the terminal, broken into lines at spaces (and between Chinese characters): the CLI's
    consoles do not wrap lines (soft_wrap), so "Customers per tier (revenue: ...)" ran past the terminal's edge,
    which broke it wherever the edge fell, inside a word or a metric name."""
    if not isinstance(title, str) or not title:
        return title
    text = console.render_str(title, markup=options.markup, highlight=False)
    width = options.max_width
    if cell_len(text.plain) <= width:
        return title
    return _broken(text, width, fold=False)


def _broken(text: Text, width: int, *, fold: bool) -> Text:
    """``text`` with each of its lines broken where :func:`_chinese_breaks` says, less the spaces it broke at."""
    lines = []
    for line in text.split("\n", allow_blank=True):
        parts = list(line.divide(_chinese_breaks(line.plain, width, fold=fold)))
        for part in parts:
            part.rstrip()  # the space a line was broken at
        lines += parts
    return Text("\n").join(lines)


def print_indented(console: Console, line: str) -> None:
    """A line of markup, indented by its leading spaces, wrapped to the terminal with its lines below indented
    two more: printed as it was, a terminal broke a long Chinese label or reason at its first column, under
    the marks and names of the lines around it."""
    indent = len(line) - len(line.lstrip(" "))
    text = console.render_str(line[indent:], highlight=False)
    width = console.width - indent - 2
    if width < 20 or cell_len(text.plain) <= console.width - indent:
        console.print(line, highlight=False)
        return
    parts = list(text.divide(_chinese_breaks(text.plain, width, fold=False)))
    for i, part in enumerate(parts):
        part.rstrip()
        console.print(Text(" " * (indent + (2 if i else 0))) + part, highlight=False, soft_wrap=True)


def _chinese_breaks(text: str, width: int, *, fold: bool = True) -> list[int]:
    """Where to break ``text`` into lines of at most ``width`` cells: at spaces, between two Chinese
    characters, and inside a word only when it is longer than the line (as rich folds it).  Without ``fold`` such
    a word (a path, a command) gets a line of its own, whole, to copy: a line of text is not a table's column."""
    # units that stay on one line: a word of other letters with the spaces after it, a Chinese character
    # with the closing marks after it, opening marks with what follows them
    units: list[tuple[int, int]] = []
    start = 0
    for i, ch in enumerate(text):
        if i == start:
            continue
        prev = text[i - 1]
        joined = (ch in NOT_AT_LINE_START or prev in NOT_AT_LINE_END
                  or (not _wide(ch) and not _wide(prev) and not (prev.isspace() and not ch.isspace())))
        if not joined:
            units.append((start, i))
            start = i
    if start < len(text):
        units.append((start, len(text)))
    breaks, used = [], 0
    for begin, end in units:
        unit = text[begin:end]
        size, ink = cell_len(unit), cell_len(unit.rstrip())
        if used and used + ink > width:
            breaks.append(begin)
            used = 0
        if size > width and ink > width and not fold:  # a line of its own
            if used:
                breaks.append(begin)
            used = width
            continue
        if size > width and ink > width:  # longer than a line: folded, as rich folds a word
            pos = begin
            for ch in unit:
                if used + cell_len(ch) > width and used:
                    breaks.append(pos)
                    used = 0
                used += cell_len(ch)
                pos += 1
            continue
        used += size
    return breaks


def _wide(character: str) -> bool:
    return unicodedata.east_asian_width(character) in ("W", "F")


def _line_counter(cells: list[list[Text]]) -> Callable[[int, int, int], int]:
    """lines(row, column, width): how many lines that cell wraps to at that width (each asked once).

    Counted from the cells' word widths, as rich wraps them (words at spaces and line breaks, a word
    wider than the column folded): fit_widths asks for thousands of (cell, width) pairs, and wrapping
    the Text itself for each took 60 ms of a 30-row explain table at 80 columns.
    """
    words = [[[[cell_len(word) for word in line.split()] for line in cell.plain.split("\n")] for cell in column]
             for column in cells]

    @lru_cache(maxsize=None)
    def lines(row: int, column: int, width: int) -> int:
        return sum(_wrapped_lines(line, width) for line in words[column][row])
    return lines


def _wrapped_lines(words: list[int], width: int) -> int:
    """Lines a line of words of these widths takes at ``width``, as rich's ``divide_line`` breaks it.

    A word goes on the line when it fits without its trailing space; a word wider than the column is
    folded together with its space into chunks of the width, the last chunk starting the next word's line.
    """
    count, used = 1, 0
    for i, word in enumerate(words):
        token = word + (i < len(words) - 1)  # the word and the space after it
        if used + word <= width:
            used += token
        elif word > width:
            chunks = -(-token // width)
            count += chunks - (used == 0)
            used = token - (chunks - 1) * width
        else:
            count += 1
            used = token
    return count
