"""Ids close to a customer id that is not in the customers table: the "did you mean" of ``explain``.

An id is typed from a ticket or a phone call: a zero dropped or doubled (``C00002`` for ``C000002``), two
characters swapped, an O for a 0, another system's padding (``2``, ``C2``).  The customers table can hold
millions of ids, so it is never read into Python: the ids one edit away from the typed one (a character
left out, swapped, changed or added, over the characters ids are made of), the typed number with each
padding, and (by the key's index) the ids that sort just before and after it are looked up in SQL: a few
milliseconds by the index, one scan of the table without one (a fifth of a second at a million rows);
difflib, as every other "did you mean" here, ranks the few found.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import string
from typing import Any

SHOWN = 3  # suggestions at most
NEIGHBOURS = 5  # ids on each side of the typed one in the key's order
CUTOFF = 0.6  # difflib's ratio below which an id is not close (its get_close_matches default)
MARGIN = 0.05  # ids this much less close than the closest are not shown beside it
MAX_EDITED = 40  # longer input gets no one-edit variants (thousands of them), only padding and neighbours
MAX_ALPHABET = 40
_NUMBERED = re.compile(r"(.*?)(\d+)")


def near_ids(conn: Any, table: str, key: str, typed: str, name: str | None = None) -> list[tuple[Any, Any]]:
    """Up to SHOWN (id, name) of ``table`` (SQL) whose key (``key``, SQL) is close to ``typed``, closest first.

    ``name``: the SQL of the customer's name column, or None."""
    typed = typed.strip()
    if not typed:
        return []
    shown = name or "NULL"
    found: dict[str, tuple[Any, Any]] = {}
    for order, cmp in (("", ">"), (" DESC", "<")):
        sql = (f"SELECT {key}, {shown} FROM {table} WHERE {key} {cmp} ? AND {key} IS NOT NULL "
               f"ORDER BY {key}{order} LIMIT {NEIGHBOURS}")
        if not _by_index(conn, sql, typed):  # a sort of every id, twice: the one-edit lookup below is enough
            break
        for row in conn.execute(sql, (typed,)):
            found.setdefault(str(row[0]), (row[0], row[1]))
    sample = [text for text in found] or [str(r[0]) for r in conn.execute(
        f"SELECT {key} FROM {table} WHERE {key} IS NOT NULL LIMIT {NEIGHBOURS}")]
    tried = _variants(typed, sample)
    values: list[Any] = sorted(tried)
    values += [int(v) for v in tried if v.isdigit() and len(v) < 19]  # an INTEGER key column holds numbers
    for row in conn.execute(f"SELECT {key}, {shown} FROM {table} WHERE {key} IN (SELECT value FROM json_each(?))",
                            (json.dumps(values),)):
        found.setdefault(str(row[0]), (row[0], row[1]))
    found.pop(typed, None)
    return [found[text] for text in _ranked(typed, list(found))]


def _by_index(conn: Any, sql: str, typed: str) -> bool:
    """Whether SQLite reads the ids of ``sql`` in order from an index (the key's), rather than sorting them all."""
    plan = " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (typed,)))
    return "TEMP B-TREE" not in plan and not plan.startswith("SCAN")


def _variants(typed: str, sample: list[str]) -> set[str]:
    """The strings one edit away from ``typed`` over the characters of it, of ``sample`` ids and the digits; and
    its number with the heads (``C``, ``CUST-``) of ``typed`` and the sample ids at every padding up to theirs."""
    out: set[str] = set()
    if own := _NUMBERED.fullmatch(typed):
        numbered = [own, *(m for m in map(_NUMBERED.fullmatch, sample) if m)]
        number = str(int(own.group(2)))
        widest = max(len(m.group(2)) for m in numbered)
        for head in {m.group(1) for m in numbered}:
            out.update(head + number.zfill(width) for width in range(len(number), widest + 2))
    if len(typed) <= MAX_EDITED:
        alphabet = sorted(set(typed) | set(typed.upper()) | set(typed.lower()) | set(string.digits)
                          | {c for text in sample for c in text})[:MAX_ALPHABET]
        for i in range(len(typed) + 1):
            out.update(typed[:i] + c + typed[i:] for c in alphabet)
            if i < len(typed):
                out.add(typed[:i] + typed[i + 1:])
                out.update(typed[:i] + c + typed[i + 1:] for c in alphabet)
            if i + 1 < len(typed):
                out.add(typed[:i] + typed[i + 1] + typed[i] + typed[i + 2:])
        out.update((typed.upper(), typed.lower()))
    out.discard(typed)
    return out


def _number(text: str) -> int | None:
    m = _NUMBERED.fullmatch(text)
    return int(m.group(2)) if m else None


def _ranked(typed: str, texts: list[str]) -> list[str]:
    """The close ones of ``texts``: the same number as ``typed`` (another padding or head) when any has it, else
    those difflib finds about as close as the closest.  Of equally close ones, first those made of the very
    characters typed (two swapped: among ten ids one digit away, the one meant would never be shown), then those
    that begin as ``typed`` does for longer (``C002000`` for ``C002001``: the end is where ids are mistyped)."""
    folded = typed.casefold()

    def ratio(text: str) -> float:
        return difflib.SequenceMatcher(None, folded, text.casefold()).ratio()

    def order(scored: tuple[float, str]) -> tuple:
        r, text = scored
        swapped = sorted(text.casefold()) == sorted(folded)
        return -r, not swapped, -len(os.path.commonprefix([folded, text.casefold()])), text

    number = _number(typed)
    same = [t for t in texts if number is not None and _number(t) == number]
    scored = [(ratio(t), t) for t in (same or texts)]
    best = max((r for r, _ in scored), default=0)
    if not same:
        scored = [(r, t) for r, t in scored if r >= max(CUTOFF, best - MARGIN)]
    return [t for _, t in sorted(scored, key=order)[:SHOWN]]


def said(near: list[tuple[Any, Any]]) -> str:
    """"did you mean 'C000002' (Acme GmbH)?", or several: "..., 'C000020' (Beta AG) or 'C000021'?"."""
    items = [f"{key!r}" + (f" ({name})" if name not in (None, "") else "") for key, name in near]
    listed = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
    return f"did you mean {listed}?"


def by_name(conn: Any, table: str, key: str, name: str | None, typed: str) -> list[tuple[Any, Any]]:
    """Up to SHOWN + 1 (id, name) of ``table`` whose name (``name``, SQL) is ``typed``, or else holds it: an operator
    looks a customer up by the name on the invoice (宁波徐记装饰工程有限公司, or 徐记) where the command takes the id.
    One scan of the table, on the way to an error only."""
    typed = typed.strip()
    if name is None or len(typed) < 2:
        return []
    rows = conn.execute(f"SELECT {key}, {name} FROM {table} WHERE trim({name}) = ? ORDER BY {key} LIMIT {SHOWN + 1}",
                        (typed,)).fetchall()
    return rows or conn.execute(f"SELECT {key}, {name} FROM {table} WHERE instr({name}, ?) > 0 ORDER BY {key} "
                                f"LIMIT {SHOWN + 1}", (typed,)).fetchall()


def named(typed: str, found: list[tuple[Any, Any]], command: str) -> str:
    """"'徐记' is in the name of 'KH00012' (宁波徐记装饰工程有限公司): the command takes a customer's id, e.g. crm-rules
    explain KH00012", for the customers by_name found."""
    whole = all(str(n).strip() == typed.strip() for _, n in found)
    items = [f"{key!r}" if whole else f"{key!r} ({name})" for key, name in found[:SHOWN]]
    listed = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
    more = ", and more" if len(found) > SHOWN else ""
    what = ("the name of customer" if len(found) == 1 else "the name of customers") if whole else "in the name of"
    return (f"{typed.strip()!r} is {what} {listed}{more}: the command takes a customer's id, "
            f"e.g. {command} {shlex.quote(str(found[0][0]))}")
