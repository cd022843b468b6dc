"""The forms the schemas allow for names and ids, said in words.

The schemas write them as regular expressions, which editors and jsonschema check, but
"it must match ^[A-Za-z0-9_][A-Za-z0-9_.-]*$" tells the analyst who wrote `id: 金卡` nothing: not that
Chinese letters are the problem, nor where Chinese text may go instead.  A message about a value of one
of these forms says what the form holds and which of the value's characters it does not.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"  # metrics, attributes, columns: names in expressions
ID_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"  # tiers, sub-grades, stages, service levels

_LETTERS = string.ascii_letters
_SHOWN = 5  # characters listed at most


@dataclass(frozen=True)
class Form:
    what: str  # "name", "id"
    rule: str  # what it holds, in words
    first: str  # the characters it may start with
    rest: str  # the characters it may hold


FORMS = {
    NAME_PATTERN: Form("name", "letters A-Z and a-z, digits and _, starting with a letter or _",
                       _LETTERS + "_", _LETTERS + string.digits + "_"),
    ID_PATTERN: Form("id", "letters A-Z and a-z, digits, _, . and -, starting with a letter, a digit or _",
                     _LETTERS + string.digits + "_", _LETTERS + string.digits + "_.-"),
}


def _shown(ch: str) -> str:
    return {" ": "a space", "\t": "a tab", "\u3000": "a full-width space", "\n": "a line break"}.get(ch, repr(ch))


def _what_is_wrong(form: Form, value: str) -> str:
    """Which characters of ``value`` the form does not allow, or how it starts."""
    if not value:
        return "it is empty"
    wrong = list(dict.fromkeys(ch for ch in value if ch not in form.rest))
    if wrong:
        listed = ", ".join(_shown(ch) for ch in wrong[:_SHOWN]) + (", ..." if len(wrong) > _SHOWN else "")
        return f"not allowed: {listed}"
    return f"it starts with {_shown(value[0])}"


def in_words(pattern: str, value: object, *, defines: bool = False) -> str | None:
    """Why ``value`` does not have the form ``pattern`` stands for, as a message; None for a pattern that is
    not a name's or an id's.  ``defines``: the value is the id of what it names (a tier's own ``id:``, not a
    reference to one), which may have a label for the text that is not allowed in the id."""
    form = FORMS.get(pattern)
    if form is None or not isinstance(value, str):
        return None
    message = f"is not a valid {form.what}: use {form.rule} ({_what_is_wrong(form, value)})"
    if defines and any(ch not in form.rest for ch in value):
        message += "; other text, such as Chinese, goes in its label"
    return message
