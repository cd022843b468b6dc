"""Text cells of the CSV files crm-rules writes, made safe to open in a spreadsheet program.

Excel, LibreOffice and Google Sheets run a CSV cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula: a customer named ``=HYPERLINK("http://x","click")`` in the source system became a live link,
and ``+cmd|' /C calc'!A0`` a command, in the export an account manager opened.  As OWASP advises
(CSV injection), such a text cell, and one starting with a tab or a carriage return, is written with a
single quote in front, which spreadsheets show as text.  Numbers are never touched: a numeric -5, and a
text that is a plain number such as "-5", are what a spreadsheet should read as numbers.

Reading such a file back (``table import``) removes the quote again, so an exported rule table that
is imported unedited changes nothing.  A text that already starts with quotes before such a character
gets one more, so that removing one always gives the text back.
"""

from __future__ import annotations

import re
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def needs_guard(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (a plain number is read as a number)."""
    # a lone sign ("-", "+": a common "unknown") is text to every spreadsheet, no formula
    return text.startswith(TRIGGERS) and text not in ("-", "+") and not _PLAIN_NUMBER.fullmatch(text)


def guarded(value: Any) -> Any:
    """``value`` as it is written to a CSV cell: a text a spreadsheet would run gets a leading ``'``."""
    if isinstance(value, str) and needs_guard(value.lstrip(GUARD)):
        return GUARD + value
    return value


def unguarded(text: str) -> str:
    """A cell read from a CSV file without the quote :func:`guarded` put in front of it."""
    if text.startswith(GUARD) and needs_guard(text.lstrip(GUARD)):
        return text[1:]
    return text
