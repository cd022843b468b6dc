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
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with each control character written as its escape (``\\x1b``), so that it is seen, not obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def escape(text: str) -> str:
    """User text (names, labels, reasons) for rich markup: shown as it is, control characters made visible."""
    return markup_escape(visible(text))


def joined(names: list[str]) -> str:
    """Names in a sentence: 'Name', 'Name and Owner', 'A, B and C'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
