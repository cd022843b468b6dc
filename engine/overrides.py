"""Manual overrides: a person fixes a customer's tier, with a reason, an author and an expiry.

Rules grade everyone; sometimes the business knows better (a strategic
partner, a customer under legal review).  Overrides come from a YAML or CSV
file, or a table in the user's database, and are applied after the rules:
`tier` sets the tier, `floor` keeps the customer at least that good,
`ceiling` at most that good.  Every override is checked, positioned and
recorded; an expired one is ignored with a note, never silently.

An overrides file that holds nothing (an empty file, only comments, ``[]``,
a CSV file with no rows) means no overrides.  Whatever is wrong with a file's
content is a DataError naming the file and its line (a failed run records it);
a file that is missing is a UsageError when it was given on the command line
(``--overrides``) and a DataError when a policy names it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

# Which of these customer ids the customers table lacks: checked with the other problems of the overrides, so a
# file's every mistake is told at once, before the run reads any order
MissingCustomers = Callable[[list[str]], set[str]]

from .errors import DataError, PolicyError, UsageError
from .expr_sql import quote_identifier as q
from .expr_types import closest, did_you_mean, is_iso_date
from .csv_reader import CsvFile
from .database import table_columns
from .file_kinds import kind_of_bytes
from .yaml_source import decode_utf8, load_yaml_text

KINDS = ("tier", "floor", "ceiling")
FIELDS = ("customer", *KINDS, "reason", "author", "expires")
REQUIRED = ("customer", "reason", "author")
EXAMPLES = 3  # problems of one kind shown; the rest are counted
COMMAND_LINE = "--overrides"  # named_in of a file given on the command line

_FIX = "fix the overrides (one per customer: customer, tier|floor|ceiling, reason, author, expires)"
_QUOTE_COMMAS = ('every row needs as many fields as the header: put a value that contains a comma in double quotes, '
                 'e.g. C000001,B,"Under renegotiation, signed by CEO",Sarah Miller')
_SAVE_AS_UTF8 = ("save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8'); files from Windows are often in its local "
                 "code page (GBK in China, Windows-1252 in Europe)")
_LIST_EXAMPLE = "- {customer: C000001, tier: A, reason: Strategic partner, author: Sarah Miller}"
# What is given instead of a YAML or CSV file (file_kinds), and what to do instead.
_SAVE_AS_CSV = "save the sheet as CSV (in Excel: Save As > 'CSV UTF-8 (Comma delimited)') and give that file"
_NOT_OVERRIDES_HINTS = {
    "sqlite": "overrides kept in a table of your database are named in the policy: overrides: {table: NAME}",
    "xlsx": _SAVE_AS_CSV, "xls": _SAVE_AS_CSV, "utf16": _SAVE_AS_UTF8}


@dataclass(frozen=True)
class Override:
    customer: str
    kind: str  # tier | floor | ceiling
    tier: str
    reason: str
    author: str
    expires: str | None
    where: str  # file:line, or table and row, for messages

    def as_json(self) -> str:
        return json.dumps({"kind": self.kind, "tier": self.tier, "reason": self.reason, "author": self.author,
                           "expires": self.expires, "source": self.where}, ensure_ascii=False)


class _Problems:
    """Problems by kind, in the order found: a few examples of each kind are shown, the rest counted."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[str]] = {}
        self.hints: list[str] = []

    def add(self, kind: str, message: str) -> None:
        self.by_kind.setdefault(kind, []).append(message)

    def hint(self, text: str) -> None:
        if text not in self.hints:
            self.hints.append(text)

    def __bool__(self) -> bool:
        return bool(self.by_kind)

    def lines(self) -> list[str]:
        out = []
        for kind, messages in self.by_kind.items():
            out += messages[:EXAMPLES]
            if len(messages) > EXAMPLES:
                out.append(f"... and {len(messages) - EXAMPLES:,} more: {kind} ({len(messages):,} in all)")
        return out

    def error(self, source: str) -> DataError:
        total = sum(len(m) for m in self.by_kind.values())
        return DataError(f"the overrides in {source} cannot be used ({total:,} problem{'s' if total != 1 else ''}):\n  - "
                         + "\n  - ".join(self.lines()), hint="; ".join([*self.hints, _FIX]))


def _text(value: Any) -> str | None:
    """A value as the text an override holds; None when it is missing (blank counts as missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.strip() if isinstance(value, str) else str(value)
    return text or None


def _record(values: dict, where: str, tiers: list[str], problems: _Problems) -> Override | None:
    found: list[tuple[str, str]] = []  # (kind, message) of this record
    text: dict[str, str | None] = {}
    for key, value in values.items():
        if isinstance(value, (list, dict, bytes)):
            what = {list: "a list", dict: "a mapping", bytes: "binary data"}[type(value)]
            found.append((f"{key} is not text", f"{where}: {key} is {what}, not text"))
        else:
            text[key] = _text(value)
    for key in text:
        if key not in FIELDS and text[key] is not None:
            found.append((f"unknown field {key!r}", f"{where}: unknown field {key!r}{did_you_mean(key, FIELDS)}"))
    kinds = [k for k in KINDS if text.get(k) is not None]
    if len(kinds) != 1 and not any(k in values and k not in text for k in KINDS):
        found.append(("give exactly one of tier, floor or ceiling",
                      f"{where}: give exactly one of tier, floor or ceiling (found {', '.join(kinds) or 'none'})"))
    for key in REQUIRED:
        if text.get(key) is None and not (key in values and key not in text):
            found.append((f"{key} is required", f"{where}: {key} is required (who is overridden, why, and who decided)"))
    expires = text.get("expires")
    if expires is not None and not is_iso_date(expires):
        found.append(("expires is not a date", f"{where}: expires {expires!r} is not a date; write it as YYYY-MM-DD"))
    tier = text[kinds[0]] if len(kinds) == 1 else None
    if tier is not None and tier not in tiers:
        found.append((f"unknown tier {tier!r}",
                      f"{where}: unknown tier {tier!r}{did_you_mean(tier, tiers)} (tiers: {', '.join(tiers)})"))
    for kind, message in found:
        problems.add(kind, message)
    if found or tier is None:
        return None
    return Override(str(text["customer"]), kinds[0], tier, str(text["reason"]), str(text["author"]), expires, where)


def _checked(records: list[tuple[dict, str]], tiers: list[str], source: str,
             problems: _Problems | None = None, missing: MissingCustomers | None = None) -> list[Override]:
    problems = problems if problems is not None else _Problems()
    out, seen = [], {}
    named: list[tuple[str, str]] = []  # (customer, where) of every record that names one, problems or not
    for values, where in records:
        customer = values.get("customer")
        if customer is not None and not isinstance(customer, (list, dict, bytes)) and _text(customer) is not None:
            named.append((_text(customer), where))
        override = _record(values, where, tiers, problems)
        if override is None:
            continue
        if override.customer in seen:
            problems.add("a customer with two overrides",
                         f"{where}: customer {override.customer!r} already has an override at {seen[override.customer]}")
            continue
        seen[override.customer] = where
        out.append(override)
    gone = missing([c for c, _ in named]) if missing is not None and named else set()
    for customer, where in named:
        if customer in gone:
            problems.add("a customer who is not in the customers table",
                         f"{where}: customer {customer!r} is not in the customers table")
            problems.hint("fix the customer id, or remove the override of a customer who is gone")
    if problems:
        raise problems.error(source)
    return out


def _check_columns(names: list[str], rows: list[list[Any]], where: str) -> _Problems:
    """Problems with the columns of a CSV header or a table, each said once (not once per row)."""
    problems = _Problems()

    def filled(i: int) -> bool:
        return any(i < len(row) and _text(row[i]) is not None for row in rows)

    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name:
            if filled(i - 1):
                problems.add("a column without a name", f"{where}: column {i} has no name, but rows have values in it")
        elif name in seen:
            problems.add("a column named twice", f"{where}: column {name!r} appears twice (columns {seen[name]} and {i})")
        else:
            seen[name] = i
    missing = [n for n in REQUIRED if n not in seen]
    others = [n for n in seen if n not in FIELDS]
    meant = set()  # the columns the unknown ones are taken for: a missing column one of them names is said there
    for name in others:
        if filled(seen[name] - 1):  # a column that is empty in every row is ignored, as an empty field is
            choices = [*missing, *FIELDS]
            meant.add(closest(name, choices))
            problems.add(f"unknown column {name!r}", f"{where}: unknown column {name!r}{did_you_mean(name, choices)}")
    for name in missing:
        if name not in meant:
            problems.add(f"no column {name!r}", f"{where}: no column {name!r}{did_you_mean(name, others)} "
                                                f"(every override needs customer, reason and author)")
    if not any(k in seen or k in meant for k in KINDS):
        problems.add("no column tier, floor or ceiling",
                     f"{where}: no column tier, floor or ceiling (the tier each override sets, keeps at least or at most)")
    if problems:
        problems.hint(f"the columns are {', '.join(FIELDS)} (customer, reason, author and one of tier, floor, "
                      f"ceiling are needed; names are lowercase)")
    return problems


# --- files -----------------------------------------------------------------------------------------


def _missing(path: Path, named_in: str | None, what: str) -> Exception:
    """The error for an overrides file that cannot be opened: whose mistake it is depends on who named it."""
    if named_in is None:  # a caller that does not say
        return UsageError(f"overrides file {path} {what}",
                          hint=f"check the path: a file given with --overrides is relative to the current directory "
                               f"({Path.cwd()}), one named in a policy (overrides: {{file: ...}}) is relative to the "
                               f"policy file")
    if named_in == COMMAND_LINE:
        return UsageError(f"overrides file {path} {what}",
                          hint=f"check the path given with --overrides: it is relative to the current directory "
                               f"({Path.cwd()})")
    what = "was not found" if what == "not found" else what
    return DataError(f"the overrides file {path} named in the policy ({named_in}: overrides.file) {what}",
                     hint="fix overrides.file in the policy (a relative path is relative to the policy file), "
                          "or create the file (an empty file means no overrides)")


def _read(path: Path, named_in: str | None) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _missing(path, named_in, "not found") from None
    except IsADirectoryError:
        raise _missing(path, named_in, "is a directory, not a YAML or CSV file") from None
    except OSError as exc:
        raise _missing(path, named_in, f"cannot be read ({exc.strerror})") from None
    kind = kind_of_bytes(raw)  # the first bytes name only files that are neither YAML nor CSV
    if kind is not None:
        raise DataError(f"the overrides file {path} is {kind.what}, not a YAML or CSV file",
                        hint=_NOT_OVERRIDES_HINTS[kind.key])
    return raw


def _unreadable(exc: PolicyError) -> DataError:
    """A problem the YAML reader found (syntax, encoding), said as the overrides file's, not the policy's."""
    hint = (exc.hint or "").replace("policies hold", "overrides files hold") or None
    return DataError("the overrides file cannot be read: " + "; ".join(map(str, exc.diagnostics)), hint=hint)


def _decoded(raw: bytes, path: Path) -> str:
    try:
        return decode_utf8(raw, str(path))
    except PolicyError as exc:
        error = _unreadable(exc)
        error.hint = "save the file as UTF-8"
        raise error from None


def load_overrides_file(path: Path, tiers: list[str], *, named_in: str | None = None,
                        missing: MissingCustomers | None = None) -> list[Override]:
    """Overrides from a YAML list or a CSV file (header: customer, tier|floor|ceiling, reason, author, expires).

    ``named_in``: who names the file, for the error when it is missing: COMMAND_LINE (--overrides, relative to
    the current directory), the position of ``overrides: {file: ...}`` in a policy (``p.yaml:12:12``), or None
    when the caller does not say.  A file with no overrides in it (empty, only comments, ``[]``, only a CSV
    header) gives none.  ``missing``: finds the customers the data lacks (None: not checked).
    """
    raw = _read(path, named_in)
    if path.suffix.lower() == ".csv":
        return _load_csv(path, tiers, missing)
    return _load_yaml(path, _decoded(raw, path), tiers, missing)


def _load_yaml(path: Path, text: str, tiers: list[str], missing: MissingCustomers | None) -> list[Override]:
    try:
        doc = load_yaml_text(text, str(path))
    except PolicyError as exc:
        if not text.strip() or _holds_nothing(text):
            return []  # empty, or only comments: no overrides
        raise _unreadable(exc) from None
    if doc.data is None:  # `null` or `~`
        return []
    if not isinstance(doc.data, list):
        what = "a mapping" if isinstance(doc.data, dict) else f"the single value {doc.data!r}"
        hint = ("a CSV file must be named *.csv to be read as CSV" if isinstance(doc.data, str) and "," in doc.data
                else f"write one override per item: {_LIST_EXAMPLE}")
        raise DataError(f"the overrides file {path}:1:1 holds {what}, not a list of overrides", hint=hint)
    problems = _Problems()
    records: list[tuple[dict, str]] = []
    for i, item in enumerate(doc.data):
        pos = doc.position((i,))
        if not isinstance(item, dict):
            problems.add("an item that is not a mapping",
                         f"{pos.file}:{pos.line}:{pos.col}: item {i + 1} is not a mapping (customer, tier, reason, author)")
            problems.hint(f"write one override per item: {_LIST_EXAMPLE}")
            continue
        misread = False
        for key in item:
            at = doc.value_position((i, key))
            reading = doc.readings.get(at)
            if reading is not None and item[key] is not None:  # `expires: ~` or `expires:` is no expiry, as meant
                written, read = reading
                problems.add("a word YAML reads as something else",
                             f"{at.file}:{at.line}:{at.col}: {key}: YAML reads {written} as {read}; quote it: '{written}'")
                misread = True
        if misread:
            continue
        records.append((item, f"{pos.file}:{pos.line}"))
    return _checked(records, tiers, f"file {path}", problems, missing)


def _holds_nothing(text: str) -> bool:
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader) is None
    except yaml.YAMLError:
        return False


def _csv_rows(path: Path) -> tuple[list[tuple[int, list[str]]], str]:
    """(start line, fields) of each record that holds something, and the delimiter (',' or, if the header has
    no comma, ';' or tab as spreadsheets of some regions write)."""
    source = CsvFile(path)
    try:
        # blank lines and a sheet's formatted-but-empty rows (,,,) hold nothing
        rows = [(line, fields) for line, fields in source.records() if "".join(fields).strip()]
    except DataError as exc:
        raise DataError(f"the overrides file cannot be read: {exc.message}", hint=exc.hint) from None
    return rows, source.delimiter


def _load_csv(path: Path, tiers: list[str], missing: MissingCustomers | None) -> list[Override]:
    rows, delimiter = _csv_rows(path)
    if not rows:
        return []  # an empty file: no overrides
    (header_line, header), body = rows[0], rows[1:]
    names = [name.strip() for name in header]
    problems = _check_columns(names, [fields for _, fields in body], f"{path}:{header_line}")
    if problems:
        raise problems.error(f"file {path}")
    records = []
    for line, fields in body:
        if len(fields) != len(names):
            problems.add("a row whose fields do not match the header",
                         f"{path}:{line}: expected {len(names)} fields as in the header ({', '.join(names)}), "
                         f"found {len(fields)}")
            problems.hint(_QUOTE_COMMAS)
            if delimiter != ",":
                problems.hint(f"the header has no comma, so the file was read as separated by "
                              f"{'tabs' if delimiter == chr(9) else 'semicolons'}")
            continue
        records.append(({name: value for name, value in zip(names, fields) if name}, f"{path}:{line}"))
    return _checked(records, tiers, f"file {path}", problems, missing)


# --- tables ----------------------------------------------------------------------------------------


def load_overrides_table(conn: sqlite3.Connection, schema: str, table: str, tiers: list[str],
                         missing: MissingCustomers | None = None) -> list[Override]:
    from .database import table_columns

    columns = table_columns(conn, schema, table)
    if columns is None:
        names = [r[0] for r in conn.execute(f"SELECT name FROM {q(schema)}.sqlite_master "
                                            f"WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")]
        raise DataError(f"the overrides table {table!r} does not exist{did_you_mean(table, names)}",
                        hint="create it, or fix overrides.table in the policy")
    try:  # a table's rowid finds the row again; a view or a WITHOUT ROWID table has none
        rows = conn.execute(f"SELECT rowid, * FROM {q(schema)}.{q(table)}").fetchall()
    except sqlite3.OperationalError:
        rows = [(None, *r) for r in conn.execute(f"SELECT * FROM {q(schema)}.{q(table)}").fetchall()]
    if any(r[0] is None for r in rows):  # then rows are counted in the order SQLite returns them
        rows = [(i, *r[1:]) for i, r in enumerate(rows, start=1)]
    problems = _check_columns(columns, [list(r[1:]) for r in rows], f"table {table!r}")
    if problems:
        raise problems.error(f"table {table!r}")
    return _checked([(dict(zip(columns, row[1:])), f"table {table!r}, row {row[0]}") for row in rows], tiers,
                    f"table {table!r}", missing=missing)


def load_overrides(conn: sqlite3.Connection, schema: str, policy: Any, path: Path | None) -> list[Override] | None:
    """The overrides of a computation: from ``path`` (--overrides) if given, else from the policy's source;
    None when there is no source at all.  A missing file given with --overrides is a UsageError, one the
    policy names is a DataError (the policy's problem, recorded with a failed run)."""
    tiers = [t.id for t in policy.tiers]
    missing = _missing_customers(conn, schema, policy.data.customers)
    if path is not None:
        return load_overrides_file(Path(path), tiers, named_in=COMMAND_LINE, missing=missing)
    if policy.overrides is None:
        return None
    kind, where = policy.overrides
    if kind == "table":
        return load_overrides_table(conn, schema, where, tiers, missing)
    pos = policy.source.value_position(("overrides", "file"))
    return load_overrides_file(Path(where), tiers, named_in=f"{pos.file}:{pos.line}:{pos.col}", missing=missing)


def _missing_customers(conn: sqlite3.Connection, schema: str, customers: Any) -> MissingCustomers | None:
    """The lookup of ids the customers table lacks; None when there is no such table or column to look in (the
    run says so in its own words).  The ids are compared as the run's join compares them: in the key column's
    type, so the text '42' of a CSV file finds the customer 42 of an INTEGER key."""
    have = {c.lower() for c in table_columns(conn, schema, customers.table) or ()}
    if customers.key.lower() not in have:
        return None
    sql = (f"SELECT j.value FROM json_each(?) AS j WHERE NOT EXISTS "
           f"(SELECT 1 FROM {q(schema)}.{q(customers.table)} AS c WHERE c.{q(customers.key)} = j.value)")

    def missing(ids: list[str]) -> set[str]:
        return {r[0] for r in conn.execute(sql, (json.dumps(ids),))}
    return missing


def split_expired(overrides: list[Override], as_of: str) -> tuple[list[Override], list[str]]:
    """The overrides in force on the as-of date, and a note for each expired one."""
    active, notes = [], []
    for o in overrides:
        if o.expires is not None and o.expires < as_of:
            notes.append(f"override of customer {o.customer} ({o.kind} {o.tier}) expired on {o.expires}: ignored ({o.where})")
        else:
            active.append(o)
    return active, notes
