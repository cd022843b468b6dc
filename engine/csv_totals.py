"""Totals rows in a CSV export: '合计,,,"¥34,431,318.75"' at the end of an ERP's order list.

Reports and ERP exports close a list with a row that sums it, and some put a subtotal after each group.  Such a
row is no record: imported, it became an order of no customer with the amount of all orders together, or worse,
in a customers file with the label in the id column, a customer named '合计' whom every run graded.  The import
refuses such rows, naming their lines, unless told to leave them out (``--skip-totals``), the choice for an
export that always has one.

A row is a totals row when its first value that is not empty is one of the words such exports write there: an
order number or a customer id never is.
"""

from __future__ import annotations

import re

from .csv_reader import show

# Chinese (simplified and traditional), English and German words for a total or subtotal, compared without
# spaces ('合  计', as a table is laid out), case and a closing colon
_LABELS = frozenset({
    "合计", "总计", "小计", "共计", "总和", "合計", "總計", "小計", "共計",
    "total", "totals", "grandtotal", "subtotal", "sum", "gesamt", "summe", "zwischensumme",
})
_SPACES_AND_COLON = re.compile(r"[\s:：]+")


def label(fields: list[str]) -> tuple[int, str] | None:
    """(position, value) of the totals word that makes ``fields`` a totals row, or None for a record."""
    for position, value in enumerate(fields):
        text = value.strip()
        if text:
            return (position, text) if _SPACES_AND_COLON.sub("", text).casefold() in _LABELS else None
    return None


def described(columns: list[str], fields: list[str], position: int, word: str) -> str:
    """'合计' in '订单号', 金额 '¥34,431,318.75': the word and the values the row sums, for a message."""
    name = columns[position] if position < len(columns) else f"column {position + 1}"
    sums = [f"{columns[j] if j < len(columns) else f'column {j + 1}'} {show(value.strip())}"
            for j, value in enumerate(fields) if j != position and value.strip()]
    shown = ", ".join(sums[:3]) + (", ..." if len(sums) > 3 else "")
    return f"{show(word)} in {name!r}" + (f", {shown}" if shown else "")
