"""`orders_12m in [1,500]`: a list of 1 and 500, or 1500 written as a report writes it?

A comma separates the items of a list (and the arguments of a function), so the expression reads two numbers,
and a policy that meant one thousand five hundred grades by 1 and 500 without a word.  Thousands that start
with 0 (`[1,000]`) cannot be list items as written and the parser refuses them (``expr_parser._thousands``);
the rest cannot be told apart from a list written without spaces (`[110,120,310]`: three region codes).  So
they are warnings (``policy_warnings``): `validate` shows them, `validate --strict` stops on them, and writing
what was meant plainly, `1500` or `[1, 500]`, makes them go.
"""

from __future__ import annotations

import re

from .expr_parser import tokens as expression_tokens

_LEAD, _GROUP = re.compile(r"\d{1,3}"), re.compile(r"\d{3}")


def grouped_numbers(text: str) -> list[tuple[int, int, str]]:
    """(line, col, written) of each run of numbers like ``1,500`` or ``2,500,000`` in the expression ``text``:
    a number of one to three digits, then groups of three, each joined by a comma with no space around it."""
    tokens = expression_tokens(text)
    found = []
    i = 0
    while i < len(tokens):
        first, last = tokens[i], i
        if first.type == "NUMBER" and _LEAD.fullmatch(first):
            while (last + 2 < len(tokens) and tokens[last + 1].type == "COMMA" and tokens[last + 2].type == "NUMBER"
                   and tokens[last].end_pos == tokens[last + 1].start_pos == tokens[last + 2].start_pos - 1
                   and _GROUP.fullmatch(tokens[last + 2])):
                last += 2
        if last > i:
            found.append((first.line, first.column, text[first.start_pos:tokens[last].end_pos]))
        i = last + 1
    return found


def grouped_number_warning(written: str) -> str:
    """What to say of ``written`` (``1,500``), and the two ways to write it plainly."""
    items = written.split(",")
    return (f"{written!r} reads as {len(items)} numbers, {', '.join(items)}, since ',' separates the items of a "
            f"list; if it is one number, write {''.join(items)} (or {'_'.join(items)}); if it is {len(items)} "
            f"numbers, put a space after each comma: {', '.join(items)}")
