"""Read and write rule tables as CSV or XLSX files, the way spreadsheet users expect.

CSV is written with a UTF-8 byte order mark, because Excel reads a CSV without
one in the Windows code page and garbles Chinese labels; it is read with or
without the mark.  XLSX keeps numbers, text and true/false as typed cells, so
`0.05` stays a number and `15m` stays text whatever the spreadsheet program
guesses.  Rows are numbered as the spreadsheet shows them (the header is row
1), so every message about a cell can be found in the sheet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .csv_reader import CsvFile
from .errors import DataError, UsageError
from .file_kinds import SQLITE, YAML, kind_of, wrong_kind
from .spreadsheet_cells import guarded, unguarded

FORMATS = ("csv", "xlsx")
SPREADSHEET_SUFFIXES = ("xlsm", "xls", "ods", "numbers")  # other spreadsheet files, which are not read
MAX_WIDTH = 60  # characters; longer cells wrap inside their column
MAX_LISTED = 20  # problems listed in one message
# The header holds names, not numbers, so a delimiter other than ',' shows there: Excel writes ';'
# where the decimal separator is a comma, and tabs as 'Text (Tab delimited)'.


@dataclass
class Sheet:
    """A table read from a file: header names and rows of raw cell values (text for CSV, typed for XLSX)."""

    file: str
    header: list[str]
    rows: list[tuple[int, list[Any]]]  # (spreadsheet row number, cells)
    name: str | None = None  # the worksheet read, in a workbook: messages name it, as a workbook can hold several
    delimiter: str = ","  # CSV: a ';' is what spreadsheets write where the decimal separator is a comma
    header_row: int = 1  # blank rows above the header are skipped

    @property
    def decimal_comma(self) -> bool:
        return self.delimiter == ";"

    def where(self, row: int | list[int], index: int | None = None, column: str | None = None) -> str:
        """``file: sheet 'S', row N, column X (name)``: the place of a cell as the spreadsheet shows it (of several
        rows: ``rows 2, 5``)."""
        rows = f"row {row}" if isinstance(row, int) else \
            f"row{'s' if len(row) > 1 else ''} {', '.join(map(str, row))}"
        out = f"{self.file}: " + (f"sheet {self.name!r}, " if self.name is not None else "") + rows
        if index is not None:
            return out + f", column {column_letter(index)}" + (f" ({column})" if column else "")
        return out + (f", column {column}" if column else "")


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how the spreadsheet names the column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _known_format(given: str) -> str:
    fmt = given.strip().lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {given!r}", hint="use --format csv or --format xlsx")
    return fmt


def format_from_path(path: Path, option: str | None = None) -> str:
    """The format of a sheet, from its extension; a spreadsheet format that is not read is named as such.

    :param option: the option of the command that names the format instead (``--format csv|xlsx``), for the
        hint; ``table import`` has none, and a hint naming one sent users to an error.
    """
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix in SPREADSHEET_SUFFIXES:
        raise UsageError(f"{path}: .{suffix} files are not supported",
                         hint="save the sheet as .xlsx (Excel workbook) or .csv (CSV UTF-8)")
    raise UsageError(f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}",
                     hint="name the file .csv or .xlsx" + (f", or give {option}" if option else ""))


def output_format(out: Path | None, given: str | None = None) -> str:
    """The format to export in: ``given``, else the extension of ``out``; CSV on standard output (``out`` None).

    A ``--format`` the extension contradicts is refused: a workbook named ``.csv`` is opened as text by Excel and
    by ``table import``, so the export would look broken and the import it suggests would fail.
    """
    if out is None:
        return _known_format(given) if given else "csv"
    if not given:
        return format_from_path(out, "--format csv|xlsx")
    fmt = _known_format(given)
    suffix = out.suffix.lower().lstrip(".")
    if suffix != fmt and (suffix in FORMATS or suffix in SPREADSHEET_SUFFIXES):
        raise UsageError(f"--out {out} is a .{suffix} name but --format is {fmt}",
                         hint=f"name the file {out.with_suffix('.' + fmt).name}, or leave out --format "
                              f"(the extension decides)")
    return fmt


def listing(items: list[str]) -> str:
    """The first MAX_LISTED items, each on its own indented line, then how many more there are.

    Every line starts with a line break, so the listing follows the message's first line directly.
    """
    shown = items[:MAX_LISTED]
    more = len(items) - len(shown)
    return "".join(f"\n  {item}" for item in shown) + (f"\n  ... and {more} more" if more else "")


def cell_text(value: Any) -> str:
    """A cell as CSV text: numbers as Python writes them (0.05, 600000), true/false, empty for nothing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --- writing -----------------------------------------------------------------------------------


def csv_text(columns: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        # text only: a number (a threshold of -0.3) is written as it is, and stays a number in the sheet
        writer.writerow([guarded(v) if isinstance(v, str) else cell_text(v) for v in row])
    return buffer.getvalue()


def _display_width(text: str) -> int:
    """Columns a text needs: Chinese characters are twice as wide as Latin ones."""
    widest = 0
    for line in str(text).split("\n"):
        widest = max(widest, sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line))
    return widest


def xlsx_bytes(title: str, columns: list[str], rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils.exceptions import IllegalCharacterError

    wb = Workbook()
    ws = wb.active
    ws.title = title[:31]
    bold = Font(bold=True)
    for j, name in enumerate(columns, start=1):
        cell = ws.cell(row=1, column=j, value=name)
        cell.font = bold
    widths = [_display_width(c) for c in columns]
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    for i, row in enumerate(rows, start=2):
        for j, value in enumerate(row, start=1):
            if value is None:
                continue
            try:
                cell = ws.cell(row=i, column=j, value=value)
            except IllegalCharacterError:
                raise DataError(f"row {i}, column {columns[j - 1]}: the text holds control characters XLSX cannot store",
                                hint="export as CSV instead (--format csv)") from None
            if isinstance(value, str):
                cell.data_type = "s"  # text, even when it starts with '=' (never a formula)
                cell.number_format = "@"
            width = _display_width(cell_text(value))
            cell.alignment = wrap if width > MAX_WIDTH or "\n" in str(value) else top
            widths[j - 1] = max(widths[j - 1], min(width, MAX_WIDTH))
    for j, width in enumerate(widths, start=1):
        ws.column_dimensions[column_letter(j - 1)].width = max(width, 4) + 2
    ws.freeze_panes = "A2"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# --- reading -----------------------------------------------------------------------------------


def read_sheet(path: Path, table: str, key: str | None = None, encoding: str | None = None) -> Sheet:
    """The header and non-empty rows of a CSV file, or of the sheet named ``table`` in an XLSX workbook.

    :param key: a column every header of the table has (``id``): a sheet whose first row lacks it but a later
        row has it starts with a title or notes, and is told so instead of failing on a cell that looks like
        it is outside a one-column table.
    :param encoding: a CSV file's, when it is not UTF-8 (``--encoding``).
    """
    kind = kind_of(path)
    if kind in (SQLITE, YAML):  # the database, or the policy itself, given as the sheet
        raise wrong_kind(path, kind, "a rule table sheet (.csv or .xlsx)",
                         "crm-rules table import POLICY.yaml SHEET.xlsx --table NAME takes the policy first, then the "
                         "edited sheet that crm-rules table export wrote")
    fmt = format_from_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a .csv or .xlsx file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    sheet = _read_xlsx(path, raw, table) if fmt == "xlsx" else _read_csv(path, encoding)
    rows = sheet.rows
    while rows and all(_blank(v) for v in rows[0][1]):
        rows.pop(0)  # a workbook's empty rows above the header, as CSV's blank lines are skipped
    if not rows:
        raise DataError(f"{path}: " + (f"sheet {sheet.name!r} is empty" if sheet.name is not None else "the file is empty"),
                        hint="export the table first: crm-rules table export POLICY --table NAME --out FILE")
    header_row = rows[0][1]
    header = ["" if v is None else str(v).strip() for v in header_row]
    sheet.header_row = first = rows[0][0]
    if key is not None and key not in header:
        _refuse_title_rows(sheet, key, header)
    while header and not header[-1] and all(len(cells) < len(header) or _blank(cells[len(header) - 1]) for _, cells in rows[1:]):
        header.pop()  # an unnamed, empty last column (spreadsheets keep them)
    body = []
    for number, cells in rows[1:]:
        cells = list(cells)
        extra = next((j for j in range(len(header), len(cells)) if not _blank(cells[j])), None)
        if extra is not None:
            raise DataError(f"{sheet.where(number, extra)}: {cells[extra]!r} is outside the table "
                            f"(the header in row {first} has {len(header)} columns)",
                            hint=f"give the column a name in row {first}, or check for a comma or quote that splits "
                                 f"a cell")
        cells = cells[: len(header)] + [None] * (len(header) - len(cells))
        if all(_blank(v) for v in cells):
            continue  # spreadsheets keep empty rows at the end
        body.append((number, cells))
    sheet.header, sheet.rows = header, body
    return sheet


def _refuse_title_rows(sheet: Sheet, key: str, header: list[str]) -> None:
    """A title or notes above the header: name the row that looks like the header and the rows to delete."""
    below = next((number for number, cells in sheet.rows[1:]
                  if any(v is not None and str(v).strip() == key for v in cells)), None)
    if below is None:
        return
    first = sheet.header_row
    shown = ", ".join(repr(name) for name in header if name)
    above = f"row {first}" if below == first + 1 else f"rows {first}-{below - 1}"
    raise DataError(f"{sheet.where(first)}: this row is not the header: it holds {shown}; the header, the row "
                    f"naming the table's columns such as {key!r}, must be the first row, and row {below} looks like it",
                    hint=f"delete {above} above the header (a title or notes belong elsewhere), then import again")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_csv(path: Path, encoding: str | None = None) -> Sheet:
    """Every record, the header included (``Sheet.header`` is filled in by the caller)."""
    source = CsvFile(path, encoding=encoding, encoding_option=True)
    records = [(number, [unguarded(v) for v in cells]) for number, cells in source.records()]  # as csv_text wrote them
    return Sheet(str(path), [], records, delimiter=source.delimiter)


def _read_xlsx(path: Path, raw: bytes, table: str) -> Sheet:
    """Every row of the table's sheet, the header included, with the values the spreadsheet program computed."""
    from openpyxl import load_workbook

    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise DataError(f"{path}: not an .xlsx workbook", hint="save it from your spreadsheet program as 'Excel Workbook (.xlsx)'")
    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for damaged files
        raise DataError(f"{path}: cannot read the workbook: {exc}", hint="open it in your spreadsheet program and save it again as .xlsx") from None
    try:
        ws = _table_sheet(path, wb, table)
        rows = [(number, [_xlsx_value(v) for v in values])
                for number, values in enumerate(ws.iter_rows(values_only=True), start=1)]
    finally:
        wb.close()
    sheet = Sheet(str(path), [], rows, name=ws.title)
    _check_hidden_values(sheet, raw)
    while rows and all(_blank(v) for v in rows[-1][1]):
        rows.pop()
    return sheet


def _sheet_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _table_sheet(path: Path, wb: Any, table: str) -> Any:
    """The sheet named after the table (as the export names it), or the only one.

    Taking the first of several sheets silently read a notes sheet as the table, and every message
    then blamed columns the user could not find.
    """
    sheets = wb.worksheets
    named = [ws for ws in sheets if ws.title == table] or [ws for ws in sheets if _sheet_key(ws.title) == _sheet_key(table)]
    if len(named) == 1:
        return named[0]
    if len(sheets) == 1:
        return sheets[0]
    names = ", ".join(repr(ws.title) for ws in sheets)
    raise DataError(f"{path}: the workbook has {len(sheets)} sheets ({names}) and "
                    + (f"none is named {table!r}" if not named else f"several are named like {table!r}"),
                    hint=f"name the sheet that holds the table {table!r} (as the export does), or delete the other sheets")


def _check_hidden_values(sheet: Sheet, raw: bytes) -> None:
    """Refuse cells that read as empty although the sheet shows a value in them.

    A formula cell of a workbook written by a program that does not calculate (openpyxl, many exporters)
    stores the formula only; read as values, the cell is empty.  Merged cells (a label merged over two rows,
    as office users do for rows that share it) keep the value in their first cell only: the others read as
    empty.  Either way an import would silently delete the key, or leave out a required value.  Finding
    them reads the (small) workbook again, for a sheet with an empty cell.
    """
    if not any(v is None for _, cells in sheet.rows for v in cells):
        return
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(raw))  # the cells as written (formulas, not their values) and the merged ranges
    try:
        ws = wb[sheet.name]
        header = sheet.rows[0][1] if sheet.rows else []

        def name(j: int, number: int) -> str | None:
            return str(header[j]).strip() if j < len(header) and header[j] is not None and number > 1 else None

        formulas, merged = [], []
        for (number, values), cells in zip(sheet.rows, ws.iter_rows()):
            for j, c in enumerate(cells):
                if j < len(values) and values[j] is None and getattr(c, "data_type", None) == "f":
                    formulas.append(f"{sheet.where(number, j, name(j, number))}: formula {c.value} without a computed value")
        for merge in sorted(ws.merged_cells.ranges, key=lambda r: (r.min_row, r.min_col)):
            if ws.cell(merge.min_row, merge.min_col).value is None:
                continue  # empty cells merged: nothing is lost
            j = merge.min_col - 1
            merged.append(f"{sheet.where(merge.min_row, j, name(j, merge.min_row))}: merged cells {merge.coord}: "
                          f"a merged cell keeps its value in its first cell only, the others read as empty")
    finally:
        wb.close()
    if merged:
        n = len(merged)
        raise DataError(merged[0] if n == 1 else f"{n} merged cell ranges in {sheet.file}:{listing(merged)}",
                        hint="unmerge them (Home > Merge & Center in Excel and WPS) and write the value in "
                             "every cell, then import again")
    if formulas:
        n = len(formulas)
        raise DataError(formulas[0] if n == 1 else f"{n} formulas without a computed value in {sheet.file}:{listing(formulas)}",
                        hint="open and save the file in Excel (or LibreOffice) so the value is stored, then import again")


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value
