"""Amounts and dates as ERP and spreadsheet exports write them, read on request into what a run needs.

An ERP writes an order's amount '¥21,411.17' and its date '2025/03/29'; a run reads only numbers stored as
numbers and ISO dates ('2025-03-29'), and refuses anything else rather than reading it wrong.  Kept as they
are, such columns leave the operator stuck between an import that stores text and a run that refuses it.
``crm-rules import --type COL=float`` (or ``integer``) therefore also reads an amount with a currency sign and
thousands separators, and ``--type COL=date`` a date written year first, both only when asked: unasked, the
import keeps the values exactly and says which columns look like such amounts or dates (``ErpLook``).

Only unambiguous forms are read: thousands grouped by commas in threes with a '.' decimal point, and dates
whose year comes first.  '03/05/2026' is March 5th or May 3rd depending on the system that wrote it, so it is
refused with a message, never guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

# A currency sign or code before or after the number; 元 after it, as Chinese ERPs write amounts.
_SIGNS = r"(?:[¥￥$€£]|RMB|CNY|USD|EUR|HKD|US\$|HK\$)"
_AMOUNT = re.compile(
    rf"(?P<sign1>[-+−]?)\s*(?P<cur1>{_SIGNS})?\s*(?P<sign2>[-+−]?)\s*"
    r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?P<dec>\.[0-9]+)?"
    rf"\s*(?P<cur2>{_SIGNS}|元)?",
    re.IGNORECASE,
)
# A number amount() gives back as it is written: neither marked nor to be parsed (ErpLook.observe)
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # likewise a date in the form a run reads
# Accounting notation for negative amounts: (1,234.50) or ¥(1,234.50)
_PARENTHESES = re.compile(rf"(?P<cur>{_SIGNS})?\s*\((?P<inner>[^()]*)\)", re.IGNORECASE)

_YEAR_FIRST = re.compile(
    r"(?P<y>[0-9]{4})(?:(?P<sep>[-/.])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})|年(?P<m2>[0-9]{1,2})月(?P<d2>[0-9]{1,2})日?)"
    r"(?:(?:\s+|T)(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2}))?)?"
)
# Day or month first: refused, since only the system that wrote it knows which
_OTHER_ORDER = re.compile(r"[0-9]{1,2}([-/.])[0-9]{1,2}\1[0-9]{2,4}")

YEAR_FIRST_FORMS = "2026-03-05, 2026/3/5, 2026.03.05 or 2026年3月5日, a time may follow"
# A zero date, as MySQL and the ERPs built on it write "no date"
_ZERO_DATE = re.compile(r"0{4}(?:(?P<sep>[-/.])0{1,2}(?P=sep)0{1,2}|年0{1,2}月0{1,2}日?)(?:[ T].*)?")
# A dash for zero, as an accounting export fills the cells of nothing: '-', '—', '－', '¥ -'
_DASH = re.compile(rf"{_SIGNS}?\s*[-−–—－]+\s*(?:元)?", re.IGNORECASE)


def amount(value: str) -> str | None:
    """The number an amount such as '¥21,411.17', '-¥1,234.50', '1,234.50元', '(1,234.50)' or SAP's '1,234.50-' writes, as canonical
    text ('21411.17', '-1234.50'), or None when the value is not such an amount.  Plain numbers are given back
    unchanged (without a '+'), so the caller's own checks (digits a REAL keeps) still apply."""
    text = value.strip()
    negative = False
    if text[-1:] in ("-", "−") and text[:1] not in ("-", "−", "+", "(") and len(text) > 1:  # SAP's 1,234.50-
        text, negative = text[:-1].rstrip(), True
    parenthesised = _PARENTHESES.fullmatch(text)
    if parenthesised:
        inner = parenthesised["inner"].strip()
        if not inner or inner[0] in "-+−":
            return None
        text, negative = (parenthesised["cur"] or "") + inner, True
    match = _AMOUNT.fullmatch(text)
    if match is None or (match["cur1"] and match["cur2"]) or (match["sign1"] and match["sign2"]):
        return None
    number = match["int"].replace(",", "") + (match["dec"] or "")
    if (match["sign1"] or match["sign2"]) in ("-", "−"):
        if negative and not parenthesised:  # a minus at both ends: '¥-5-'
            return None
        negative = not negative
    return ("-" if negative else "") + number


def is_marked_amount(value: str) -> bool:
    """An amount written with a currency sign or thousands separators: text to a plain number reader."""
    number = amount(value)
    return number is not None and number.lstrip("-") != value.strip().lstrip("+-")


def iso_date(value: str) -> str | None:
    """The ISO form ('2025-03-29', '2025-03-29 08:30:00') of a real date written year first ('2025/3/29',
    '2025.03.29', '2025年3月29日', a time may follow), or None."""
    match = _YEAR_FIRST.fullmatch(value.strip())
    if match is None:
        return None
    month, day = match["m"] or match["m2"], match["d"] or match["d2"]
    try:
        date = dt.date(int(match["y"]), int(month), int(day))
        if match["h"] is None:
            return date.isoformat()
        time = dt.time(int(match["h"]), int(match["mi"]), int(match["s"] or 0))
    except ValueError:
        return None
    return f"{date.isoformat()} {time.isoformat()}"


def not_a_number(value: str) -> str:
    """What a value that is no number is, when it is something an export writes for one: '' or a note."""
    if _DASH.fullmatch(value.strip()):
        return " (a dash, which an accounting export writes for zero: write 0, or leave the cell empty for no value)"
    return ""


def not_a_date(value: str) -> str:
    """Why ``value`` is not read as a date, for the import's list of bad values."""
    if _OTHER_ORDER.fullmatch(value.strip()):
        return ("is not a date written year first: day and month cannot be told apart (03/05/2026 is March 5th or "
                "May 3rd); export the column as YYYY-MM-DD")
    if _ZERO_DATE.fullmatch(value.strip()):
        return "is a zero date, which is no day: leave the cell empty for no date (an empty cell is stored as NULL)"
    if _YEAR_FIRST.fullmatch(value.strip()):
        return "is not a day of the calendar (no such month, day or time)"
    return f"is not a date ({YEAR_FIRST_FORMS})"


@dataclass
class ErpLook:
    """Whether every value of a column kept as text is an amount with a currency sign or separators, or a date
    written year first but not as ISO: what the import's note on such columns rests on."""

    values: int = 0
    amounts: int = 0  # amounts, plain numbers included
    marked: int = 0  # amounts with a currency sign or separators
    dates: int = 0
    not_iso: int = 0
    example: str = ""

    def observe(self, value: str) -> None:
        """Count ``value``.  Runs on every cell of every column an import detects, so the two common cases cost
        no parse: a column already ruled out (a value that is neither an amount nor a date, or both kinds seen)
        is no longer looked at, and a plain number ('1234.5') or an ISO date, which amount() and iso_date() give
        back unchanged, is counted as the unmarked amount or the ISO date it is."""
        if self.amounts < self.values and self.dates < self.values:
            return
        self.values += 1
        if _PLAIN_NUMBER.fullmatch(value):
            self.amounts += 1
            return
        if _ISO_DAY.fullmatch(value):  # what iso_date() gives back unchanged, when it is a day of the calendar
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return  # neither an amount nor a date: the column is ruled out
            self.dates += 1
            return
        number = amount(value)
        if number is not None:
            self.amounts += 1
            if number.lstrip("-") != value.strip().lstrip("+-"):
                self.marked += 1
                self.example = self.example or value
        else:
            iso = iso_date(value)
            if iso is not None:
                self.dates += 1
                if iso != value.strip():
                    self.not_iso += 1
                    self.example = self.example or value

    @property
    def kind(self) -> str | None:
        """'amounts', 'dates' or None."""
        if not self.values:
            return None
        if self.amounts == self.values and self.marked:
            return "amounts"
        if self.dates == self.values and self.not_iso:
            return "dates"
        return None
