"""User text as a terminal shows it: seen, not obeyed.

Kept apart from the tables (terminal_table) so that commands printing no table do not import them at
start-up.
"""

from __future__ import annotations

import re

from rich.markup import escape as markup_escape

# Control characters in user text (an ESC imported with a customer's name) would reach the terminal as they
# are: colour it, clear it, or count as width in a table and push its borders out of line.  rich removes only a
# few (BEL, CR, ...).  A newline is kept: it is a line break in a cell.
# Invisible characters that reorder or hide what follows (a right-to-left override in a name shows "C0001" as
# "1000C"; a zero-width space makes two equal-looking ids differ) are control characters too.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff]")


def _escaped(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with each control character written as its escape (``\\x1b``), so that it is seen, not obeyed."""
    return _CONTROL.sub(_escaped, text)


def one_line(text: str) -> str:
    """User text for a line of its own (a heading, a message): ``visible``, and a line break written as ``\\n``."""
    return markup_escape(visible(text).replace("\n", "\\n"))


def escape(text: str) -> str:
    """User text (names, labels, reasons) for rich markup: shown as it is, control characters made visible."""
    return markup_escape(visible(text))


def joined(names: list[str], word: str = "and") -> str:
    """Names in a sentence: 'Name', 'Name and Owner', 'A, B and C' (or, with ``word`` 'or': 'A, B or C')."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"
