"""Read spreadsheet cells as the types the policy has, so a round trip changes nothing.

A CSV cell is text and an XLSX cell is whatever the spreadsheet program
guessed; neither says whether `12` is a number or a label.  The policy does:
the schema gives most columns a type, and in free-form maps (``attributes``)
the YAML already holds typed values.  A cell that still holds what the export
wrote keeps the YAML's value exactly (so `0.10` stays `0.10`, and a float
stored with 16 digits by the spreadsheet is not an edit); an edited cell is
read as that type, and when it is not one, the message says what to write.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from . import yaml_edit as ye
from .ime_text import IME, number_fix
from .rule_table import ColumnSpec, split_id_cell, split_list_cell, to_cell
from .rule_table_io import cell_text

MISSING = object()  # an empty cell, or a key the row does not have


class CellProblem(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def format_cell(value: Any) -> str:
    """A value in a change listing: JSON, so text is quoted and a number is visibly a number."""
    return "(empty)" if value is MISSING else ye.escape_unprintable(json.dumps(value, ensure_ascii=False))

_NUMBER = re.compile(r"[+-]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")  # 1,000 and 1,234,567.5
_DECIMAL_COMMA = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+")  # 0,8 and 1.234,5
_DOT_GROUPS = re.compile(r"[+-]?[1-9]\d{0,2}(\.\d{3})+")  # 3.000 and 1.234.567: thousands, where ',' is the decimal
# Deliberately not csv_decimal_comma's FORMATTED_NUMBER, which only says that a value is some regional number: these
# must tell which separator is the decimal one (1,000 is a thousand, or one where ';' separates) to write the fix.


def parse_number(text: str, decimal_comma: bool = False) -> int | float:
    """A number as written in a cell; the hint of a number written the way a spreadsheet locale writes it says
    how to write it instead.

    ``decimal_comma`` says the file comes from a locale whose decimal separator is a comma (a CSV separated by ';'),
    where `1,000` means one, not a thousand, and `3.000` means three thousand, not three.  A number typed with a
    Chinese input method (`０.８５`, `０．８５`) is the number it shows, as Python reads full-width digits anyway;
    one written as a report writes it (`10万`, `30天`) gets the number to write.
    """
    s = text.strip()
    if decimal_comma and _DOT_GROUPS.fullmatch(s):
        plain = s.replace(".", "")
        small = f", or {float(s):g} if that is meant" if s.count(".") == 1 else ""
        raise CellProblem(f"{text!r} is not a number", hint=(
            f"the file is separated by ';', as a spreadsheet saves it where ',' is the decimal separator and '.' "
            f"groups thousands, so {s} may be {plain}: write {plain}{small}"))
    if _NUMBER.fullmatch(s) and "__" not in s and not s.endswith("_"):
        s = s.replace("_", "")
        return int(s) if re.fullmatch(r"[+-]?\d+", s) else float(s)
    typed = unicodedata.normalize("NFKC", s)  # full-width digits and punctuation as their ASCII twins
    if typed != s:
        try:
            return parse_number(typed, decimal_comma)
        except CellProblem as problem:
            raise CellProblem(f"{text!r} is not a number", hint=number_fix(s) or f"{problem.hint}; it holds full-width "
                              f"characters, {IME}") from None
    if s.endswith("%") and _NUMBER.fullmatch(s[:-1].strip()):
        fraction = float(s[:-1].strip().replace("_", "")) / 100
        raise CellProblem(f"{text!r} is not a number", hint=f"write percentages as fractions: {fraction:g} for {s}")
    if _DECIMAL_COMMA.fullmatch(s) and (decimal_comma or not _THOUSANDS.fullmatch(s)):
        point = s.replace(".", "").replace(",", ".")
        point = re.sub(r"^([+-]?)\.", r"\g<1>0.", point)  # ,5 is 0.5
        separators = " and no thousands separators" if "." in s else ""
        raise CellProblem(f"{text!r} is not a number", hint=f"write the decimal point as '.'{separators}: {point}")
    if "," in s and _NUMBER.fullmatch(s.replace(",", "")):
        raise CellProblem(f"{text!r} is not a number", hint=f"write it without thousands separators: {s.replace(',', '')}")
    raise CellProblem(f"{text!r} is not a number", hint=number_fix(s) or "write a plain number such as 0.05 or 150000")


def as_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else cell_text(raw)


def _parse_as(raw: Any, kind: str, decimal_comma: bool = False) -> Any:
    """A raw cell (text from CSV, typed from XLSX) as one type; CellProblem when it is not that type."""
    if kind == "str":
        # spaces around a text are invisible in a cell (and a full-width one is typed with the text): not part of it
        return as_text(raw).strip()
    if kind == "number":
        if isinstance(raw, bool):
            raise CellProblem(f"{cell_text(raw)} is not a number", hint="write a number, or leave the cell empty")
        if isinstance(raw, (int, float)):
            return raw
        return parse_number(str(raw), decimal_comma)
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = unicodedata.normalize("NFKC", as_text(raw)).strip().lower()  # ＴＲＵＥ typed with an input method
        if word in ("true", "yes", "是"):  # 是/否: yes and no, as Chinese forms ask them
            return True
        if word in ("false", "no", "否"):
            return False
        raise CellProblem(f"{as_text(raw)!r} is not true or false", hint="write true or false, or leave the cell empty")
    if kind in ("list", "dict"):
        text = as_text(raw).strip()
        if kind == "dict" or text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                example = '["first item", "second item"]' if kind == "list" else '{"key": "value"}'
                raise CellProblem(f"{text!r} is not valid JSON ({exc.msg} at character {exc.pos + 1})",
                                   hint=f"write it like {example}" + (", or as items separated by '; ' (or '；')" if kind == "list" else ""))
            if not isinstance(value, list if kind == "list" else dict):
                raise CellProblem(f"{text!r} is not a JSON {'list' if kind == 'list' else 'object'}")
            return value
        return split_list_cell(text)
    raise ValueError(kind)


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "str"


_KIND_TYPES = {"text": ["str"], "number": ["number"], "integer": ["number"], "bool": ["bool"], "list": ["list"]}
_DESCRIBE = {"str": "text", "number": "a number", "bool": "true or false", "list": "a list", "dict": "a map (JSON object)"}


def _unchanged(raw: Any, original: Any, kind: str | None = None) -> bool:
    """Does the cell still hold what the export wrote for ``original``?"""
    if original is MISSING:
        return False
    exported = to_cell(original, kind)
    if isinstance(raw, str):
        return raw == (exported if isinstance(exported, str) else cell_text(exported))
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and isinstance(exported, float) and not isinstance(original, bool):
        # spreadsheets keep 15 significant digits (openpyxl writes 16): the last bits of a float are not an edit
        return math.isclose(raw, exported, rel_tol=1e-14)
    return ye.same(raw, exported)


def _ids(raw: Any, original: Any) -> str | list[str]:
    """One id, or a list of them (``A, B, C``): a list only where the cell names several, so a one-tier entry stays
    ``tier: A``; the same ids in the same order as the YAML keep its value (``[A]`` or ``A``) as written."""
    ids = split_id_cell(as_text(raw))
    if not ids:
        raise CellProblem(f"{as_text(raw)!r} names no id", hint="write one id, or several separated by commas: A, B, C")
    written = original if isinstance(original, list) else [original]
    if ids == written:
        return original
    return ids[0] if len(ids) == 1 else ids


def read_cell(raw: Any, column: ColumnSpec, original: Any, column_types: list[str], decimal_comma: bool = False) -> Any:
    """The value of a cell, typed as the policy has it there; MISSING for an empty cell.

    A cell that still holds what the export wrote keeps the YAML's value exactly.  Otherwise the
    schema's type decides; in free-form columns (``attributes.*``) the types the column already
    holds do, non-text first, so `true` becomes true where the column has true/false values and
    `12` stays text where it holds only text.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if original is not MISSING and (original is None or original == ""):
            return original  # the YAML holds an empty value there; an empty cell keeps it
        return MISSING
    if _unchanged(raw, original, column.kind):
        return original
    if column.kind == "ids":
        return _ids(raw, original)
    if column.kind in _KIND_TYPES:
        candidates = _KIND_TYPES[column.kind]
    elif column.kind == "text_or_list":
        candidates = [type_name(original)] if original is not MISSING and original is not None else \
            ["list" if "list" in column_types else "str"]
    else:  # free-form: the type the YAML has in this cell first, then the others the column holds
        own = [type_name(original)] if original is not MISSING and original is not None else []
        held = set(own) | set(column_types)
        candidates = [t for t in ("bool", "number", "list", "dict", "str") if t in held] or ["bool", "number", "str"]
    first_problem = None
    for kind in candidates:
        try:
            value = _parse_as(raw, kind, decimal_comma)
        except CellProblem as problem:
            first_problem = first_problem or problem
            continue
        if kind == "number" and isinstance(original, int) and not isinstance(original, bool) \
                and isinstance(value, float) and value.is_integer():
            value = int(value)  # 60.0 from a spreadsheet where the policy has 60
        return value
    why = "the policy has " + ("a number" if candidates == ["number"] else _DESCRIBE.get(candidates[0], candidates[0])) + " here"
    raise CellProblem(f"{first_problem.message}; {why}", first_problem.hint)
