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
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError, UsageError

FORMATS = ("csv", "xlsx")
MAX_WIDTH = 60  # characters; longer cells wrap inside their column


@dataclass
class Sheet:
    """A table read from a file: header names and rows of raw cell values (text for CSV, typed for XLSX)."""

    file: str
    header: list[str]
    rows: list[tuple[int, list[Any]]]  # (spreadsheet row number, cells)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how the spreadsheet names the column."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def format_from_path(path: Path, given: str | None = None) -> str:
    if given:
        fmt = given.lower()
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {given!r}", hint="use --format csv or --format xlsx")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix in ("xlsm", "xls", "ods", "numbers"):
        raise UsageError(f"{path}: .{suffix} files are not supported",
                         hint="save the sheet as .xlsx (Excel workbook) or .csv (CSV UTF-8)")
    raise UsageError(f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}",
                     hint="name the file .csv or .xlsx, or give --format csv|xlsx")


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
        writer.writerow([cell_text(v) for v in row])
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


def read_sheet(path: Path, table: str) -> Sheet:
    """The header and non-empty rows of a CSV or XLSX file."""
    fmt = format_from_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a .csv or .xlsx file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    rows = _read_xlsx(path, raw, table) if fmt == "xlsx" else _read_csv(path, raw)
    if not rows:
        raise DataError(f"{path}: the file is empty", hint="export the table first: crm-rules table export POLICY --table NAME --out FILE")
    header_row = rows[0][1]
    header = ["" if v is None else str(v).strip() for v in header_row]
    while header and not header[-1] and all(len(cells) < len(header) or _blank(cells[len(header) - 1]) for _, cells in rows[1:]):
        header.pop()  # an unnamed, empty last column (spreadsheets keep them)
    body = []
    for number, cells in rows[1:]:
        cells = list(cells)
        extra = next((j for j in range(len(header), len(cells)) if not _blank(cells[j])), None)
        if extra is not None:
            raise DataError(f"{path}: row {number}, column {column_letter(extra)}: {cells[extra]!r} is outside the table "
                            f"(the header in row 1 has {len(header)} columns)",
                            hint="give the column a name in row 1, or check for a comma or quote that splits a cell")
        cells = cells[: len(header)] + [None] * (len(header) - len(cells))
        if all(_blank(v) for v in cells):
            continue  # spreadsheets keep empty rows at the end
        body.append((number, cells))
    return Sheet(str(path), header, body)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_csv(path: Path, raw: bytes) -> list[tuple[int, list[Any]]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                        hint="Excel's 'CSV (Comma delimited)' saves in the Windows code page (e.g. GBK); save as "
                             "'CSV UTF-8 (Comma delimited)' or as an .xlsx workbook") from None
    first = text.split("\n", 1)[0]
    delimiter = ","
    if "," not in first:  # spreadsheets in some locales separate with ';' or tabs
        delimiter = max(";\t", key=first.count) if any(d in first for d in ";\t") else ","
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}: not a valid CSV file: {exc}",
                        hint="check the quotes around cells that contain commas or line breaks") from None
    return [(i + 1, record) for i, record in enumerate(records)]


def _read_xlsx(path: Path, raw: bytes, table: str) -> list[tuple[int, list[Any]]]:
    from openpyxl import load_workbook

    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise DataError(f"{path}: not an .xlsx workbook", hint="save it from your spreadsheet program as 'Excel Workbook (.xlsx)'")
    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for damaged files
        raise DataError(f"{path}: cannot read the workbook: {exc}", hint="open it in your spreadsheet program and save it again as .xlsx") from None
    try:
        ws = wb[table] if table in wb.sheetnames else wb.worksheets[0]
        rows = []
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            rows.append((number, [_xlsx_value(v) for v in values]))
        while rows and all(_blank(v) for v in rows[-1][1]):
            rows.pop()
        return rows
    finally:
        wb.close()


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value
