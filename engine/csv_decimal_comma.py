"""Numbers with a decimal comma in a semicolon-separated CSV file: ``1.234,56`` and ``12,5``, read as numbers.

Excel in most of Europe writes its CSV files with ``;`` between values because the comma is its decimal
separator, and ``.`` groups thousands.  Refusing every such number sent users to re-save the file with other
regional settings.  They are read only where that cannot be a guess:

- only in a file separated by ``;`` (a ``,``-separated file cannot hold an unquoted decimal comma, and a quoted
  ``"12,5"`` there is text or a mistake, as before);
- only in a column where at least one value has a decimal comma and *every* value is such a number: digits,
  optionally ``.`` every three digits, optionally ``,`` and decimals (``12``, ``1.234``, ``1.234,56``, ``-0,5``),
  with no leading zeros (``007`` is an id), and each fits a REAL exactly (15 digits);
- once a column of the file has shown the decimal comma, a column whose numbers use only the ``.`` of thousands
  (``1.000``, ``25.000``, ``7``) is read so too, as integers: in that file ``1.000`` is a thousand, not 1.0;
- a column forced to text (``--type COL=text``) or to integer is never read so.

A column mixing ``12.5`` and ``12,5`` is not consistent: it is refused, naming the values, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# '10,5', '1.200,50', '1,234.56': a decimal comma or thousands separators, as regional settings write numbers
# (the import and the data checks name such values).
# Deliberately not rule_table_cells' _THOUSANDS/_DECIMAL_COMMA: this only says that a value is some regional
# number ('1.234.567' too), in ASCII digits, to name it; those tell a decimal comma from a thousands comma to
# write the corrected number, and run only on cells that are not already numbers (where '1.234' is one).
FORMATTED_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,3}(?:[.,][0-9]{3})+(?:[.,][0-9]+)?|[0-9]+,[0-9]+)")

# sign, integer part (no leading zeros; '.' every three digits or none at all), decimals after the comma
_NUMBER = re.compile(r"([+-]?)(0|[1-9][0-9]{0,2}(?:\.[0-9]{3})+|[1-9][0-9]*)(?:,([0-9]+))?")


def canonical(value: str) -> str | None:
    """``value`` (stripped) written with a decimal point and no grouping ('1.234,56' -> '1234.56'), or None."""
    match = _NUMBER.fullmatch(value)
    if match is None:
        return None
    sign, whole, decimals = match.groups()
    return ("-" if sign == "-" else "") + whole.replace(".", "") + (f".{decimals}" if decimals is not None else "")


@dataclass
class DecimalCommaColumn:
    """Whether one column's values are all numbers written with a decimal comma (at least one with a comma).

    ``exact`` says whether a canonical number fits the column's storage exactly (the import's REAL test).
    """

    exact: Callable[[str], bool]
    consistent: bool = True
    with_comma: int = 0
    grouped: int = 0  # values with '.' between thousands (and no comma): 1.000

    def observe(self, value: str) -> None:
        if not self.consistent:
            return
        number = canonical(value)
        if number is None or not self.exact(number):
            self.consistent = False
        elif "," in value:
            self.with_comma += 1
        elif "." in value:
            self.grouped += 1

    @property
    def shows_comma(self) -> bool:
        """Every value a decimal-comma number, at least one with the comma: the column proves the format."""
        return self.consistent and self.with_comma > 0

    def applies(self, file_shows_comma: bool) -> bool:
        """Read with a decimal comma: the column proves it, or the file does and the column groups thousands."""
        return self.shows_comma or (file_shows_comma and self.consistent and self.grouped > 0)


def read_with_decimal_comma(columns: list[DecimalCommaColumn | None]) -> list[bool]:
    """Per column, whether its numbers are read with a decimal comma."""
    shown = any(column is not None and column.shows_comma for column in columns)
    return [column is not None and column.applies(shown) for column in columns]


def converter(kind: str) -> Callable[[str], int | float]:
    """Reads a value the column's check accepted as ``kind`` ('integer' or 'float'); ValueError (the file changed)
    for any other."""
    make = int if kind == "integer" else float

    def convert(value: str) -> int | float:
        number = canonical(value)
        if number is None:
            raise ValueError(value)
        return make(number)

    return convert
