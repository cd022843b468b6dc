"""Import a CSV file into a SQLite table: all of it, or nothing.

Users feed the engine spreadsheet exports.  A silently mangled value (an order
number losing its leading zeros, a typo turning a numeric column into text)
would make every policy built on it quietly wrong, so the whole file is checked
first and the database only changes in one transaction once it is known good.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils.utils import ValueTracker

from .errors import DataError, RunError, UsageError
from .database import damaged, is_damage
from .expr_types import with_article
from .file_kinds import kind_of_bytes
from .progress import Progress, silent
from .csv_reader import CsvFile, show
from .csv_decimal_comma import FORMATTED_NUMBER, DecimalCommaColumn, read_with_decimal_comma
from .csv_decimal_comma import canonical as decimal_comma_canonical, converter as decimal_comma_number
from .csv_import_constraints import refused_lines
from .csv_import_keys import duplicate_keys
from .csv_erp_values import ErpLook, amount, iso_date, not_a_date, not_a_number
from . import csv_totals, wal_tidy

TYPES = ("integer", "float", "text", "date")
MODES = ("create", "replace", "append")

_SQL_TYPES = {"integer": "INTEGER", "float": "REAL", "text": "TEXT", "date": "TEXT"}
_EXPECTED = {"integer": "an integer", "float": "a number", "date": "a date"}
_MAX_LISTED = 10
_BATCH_ROWS = 5_000
_NUMERIC_MAJORITY = 0.9
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# SQLite turns a REAL into text (CAST, printf('%s'), its shell) with 15 significant digits:
# only values with at most that many come back out exactly as they went in.
_REAL_DIGITS = 15
# ASCII digits only: str.isdigit() and int() also accept e.g. Arabic-Indic digits.
# No exponents: '1E5' is as likely a product code as a number, and Excel writes big ids as '1.23457E+15'.
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_CANONICAL_FLOAT = re.compile(r"-?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)")
_ANY_INT = re.compile(r"[+-]?[0-9]+")
_ANY_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_USAGE = "crm-rules import FILE.csv --db DATABASE --table TABLE"
# A database given as the CSV file: the arguments were mixed up.
_NOT_CSV_HINTS = {"sqlite": f"the CSV file is the FILE argument and --db names the database: {_USAGE}"}
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}


@dataclass(frozen=True)
class Imported:
    """What an import did, for the command's summary."""

    rows: int
    decimal_comma: tuple[str, ...] = ()  # the columns whose numbers were read with a decimal comma ('12,5')
    # (column, 'amounts' or 'dates', an example) of the columns kept as text that a run could not read as
    # numbers or dates, and --type COLUMN=float or =date could (csv_erp_values)
    erp_text: tuple[tuple[str, str, str], ...] = ()
    # the totals rows left out (--skip-totals): (line, what it holds) of the first few, and how many in all
    totals: tuple[tuple[int, str], ...] = ()
    totals_count: int = 0


def import_csv(db_path: Path, csv_path: Path, table: str, **options: Any) -> int:
    """Import ``csv_path`` into ``table`` of ``db_path`` and return the number of rows imported (options and all:
    see import_csv_file)."""
    return import_csv_file(db_path, csv_path, table, **options).rows


def import_csv_file(
    db_path: Path,
    csv_path: Path,
    table: str,
    *,
    mode: str = "create",
    types: dict[str, str] | None = None,
    progress: Progress = silent,
    encoding: str | None = None,
    skip_totals: bool = False,
) -> Imported:
    """Import ``csv_path`` into ``table`` of ``db_path``; what was imported.

    ``mode`` is 'create' (the table must not exist), 'replace' (drop and
    recreate it) or 'append' (the table must exist with the same columns).
    ``types`` forces a column (named in any case, as SQLite does) to
    'integer', 'float' or 'text' instead of detecting it.  Messages speak of
    the CLI's options, the one place users meet this function.  On any error
    the database is left exactly as it was.
    ``progress`` hears of the rows checked (first pass) and written (second).
    ``encoding``: the file's, when it is not UTF-8 (``--encoding``, a codec name checked_encoding gave).
    ``skip_totals``: leave out the rows that sum the others ('合计', csv_totals) instead of refusing the file.
    """
    db_path, csv_path = Path(db_path), Path(csv_path)
    _check_arguments(db_path, csv_path, table, mode, types)
    existing = _existing_table(db_path, table)
    _check_mode(db_path, table, mode, existing)
    source = CsvFile(csv_path, _NOT_CSV_HINTS, encoding, encoding_option=True)
    plan = _validate(source, db_path, types or {}, existing if mode == "append" else None, progress, skip_totals)
    rows = _write(db_path, table, mode, source, plan, progress)
    return Imported(rows, tuple(name for name, comma in zip(plan.columns, plan.decimal_comma) if comma), plan.erp_text,
                    tuple(plan.totals.first), plan.totals.count)


# --- arguments -------------------------------------------------------------


def _check_arguments(db_path: Path, csv_path: Path, table: str, mode: str, types: dict | None) -> None:
    if mode not in MODES:
        raise UsageError(f"unknown import mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    _check_table_name(table)
    if not csv_path.exists():
        raise UsageError(f"{csv_path}: no such file")
    if not csv_path.is_file():
        raise UsageError(f"{csv_path}: is not a file")
    if db_path.is_dir():
        raise UsageError(f"{db_path}: is a directory, not a database file")
    if not db_path.exists():
        if mode == "append":
            raise UsageError(f"{db_path}: no such database", hint="import without --append to create it")
        if not db_path.parent.is_dir():
            raise UsageError(f"{db_path}: directory {db_path.parent} does not exist")
        named = kind_of_bytes(b"", db_path)  # a database named data.csv or base.yaml: the arguments were mixed up
        if named is not None:
            raise UsageError(f"--db {db_path}: would create a SQLite database named like {named.what}",
                             hint=f"--db names the database (created if missing), e.g. --db crm.db; the CSV file "
                                  f"is the FILE argument: {_USAGE}")
    if types is not None and not isinstance(types, dict):
        raise UsageError(f"types must map column names to types, got {type(types).__name__}")
    for column, kind in (types or {}).items():
        if kind not in TYPES:
            raise UsageError(
                f"{_type_flag(column, kind)}: unknown type {kind!r}",
                hint=_did_you_mean(str(kind), TYPES, "use one of: " + ", ".join(TYPES)),
            )


def _check_table_name(table: str) -> None:
    if not isinstance(table, str) or not table.strip():
        raise UsageError(f"table name must be a non-empty string, got {table!r}")
    if "\x00" in table:
        raise UsageError(f"table name {table!r} contains a NUL character")
    if _fold(table).startswith("sqlite_"):
        raise UsageError(f"table name {table!r} is reserved: names starting with 'sqlite_' belong to SQLite")
    if _fold(table).startswith("crm_"):
        raise UsageError(f"table name {table!r} is reserved: names starting with 'crm_' hold crm-rules results",
                         hint="import your data under another name and map it in the policy's data: section")


def _did_you_mean(word: str, choices: Iterable[str], fallback: str) -> str:
    """Compares folded names: SQLite's names ignore case, so a case difference is no typo."""
    by_fold = {_fold(choice): choice for choice in choices}
    match = difflib.get_close_matches(_fold(word), list(by_fold), n=1)
    return f"did you mean {by_fold[match[0]]!r}?" if match else fallback


def _type_flag(column: str, kind: str) -> str:
    """The --type option for ``column``, quoted for the shell if the name needs it."""
    return "--type " + shlex.quote(f"{column}={kind}")


def _fold(name: str) -> str:
    """SQLite compares identifiers case-insensitively, but only for ASCII letters."""
    return name.translate(_ASCII_LOWER)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --- the database as it is ----------------------------------------------------


@dataclass(frozen=True)
class _Table:
    kind: str  # 'table', 'view' or 'index': they share one namespace
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, declared type)
    filled: tuple[str, ...] = ()  # columns an INSERT without them fills: the rowid alias and those with a DEFAULT


def _existing_table(db_path: Path, table: str) -> _Table | None:
    """What ``table`` currently is, read without ever creating or changing the file."""
    if not db_path.exists():
        return None
    reading = wal_tidy.opening(db_path)  # a rejected import leaves no -wal/-shm files behind either
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        wal_tidy.closed(reading)
        raise DataError(f"{db_path}: cannot open database: {exc}") from None
    try:
        return _lookup_table(conn, table)
    except sqlite3.OperationalError as exc:
        raise DataError(f"{db_path}: cannot read database: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise DataError(
            f"{db_path}: is not a SQLite database ({exc})",
            hint=f"--db names the database (created if missing); the CSV file is the FILE argument: {_USAGE}",
        ) from None
    finally:
        conn.close()
        wal_tidy.closed(reading)


def _lookup_table(conn: sqlite3.Connection, table: str) -> _Table | None:
    row = conn.execute(
        "SELECT type, name FROM sqlite_master"
        " WHERE type IN ('table', 'view', 'index') AND lower(name) = lower(?)"
        " ORDER BY type = 'table' DESC LIMIT 1",
        (table,),
    ).fetchone()
    if row is None:
        return None
    info = conn.execute("SELECT name, type, dflt_value, pk FROM pragma_table_info(?)", (row[1],)).fetchall()
    keys = [name for name, _, _, pk in info if pk]
    # the table fills these itself: an INTEGER PRIMARY KEY (the rowid: SQLite numbers new rows) and a column
    # with a DEFAULT, so a file of new orders need not invent their ids
    filled = tuple(name for name, kind, default, _ in info
                   if default is not None or (keys == [name] and kind.upper() == "INTEGER"))
    return _Table(row[0], row[1], tuple((name, kind) for name, kind, _, _ in info), filled)


def _check_mode(db_path: Path, table: str, mode: str, existing: _Table | None) -> None:
    if existing is not None and existing.kind != "table":
        raise UsageError(f"{db_path}: {table!r} is {with_article(existing.kind)}, not a table", hint="choose another table name")
    if mode == "create" and existing is not None:
        raise UsageError(
            f"{db_path}: table {existing.name!r} already exists",
            hint="use --replace to drop and recreate it, or --append to add the rows to it",
        )
    if mode == "append" and existing is None:
        raise UsageError(
            f"{db_path}: table {table!r} does not exist, cannot append to it",
            hint="import without --append to create it",
        )


# --- reading the file ------------------------------------------------------------


def _header(source: CsvFile, records: Iterator[tuple[int, list[str]]]) -> list[str]:
    first = next(records, None)
    if first is None:
        raise DataError(f"{source.display}: the file is empty", hint="the first line must name the columns")
    line, fields = first
    names = [name.strip() for name in fields]
    empty = [str(position) for position, name in enumerate(names, start=1) if not name]
    if empty:
        raise DataError(
            f"{source.display}:{line}: empty column name(s) in the header at position(s) {', '.join(empty)}",
            hint="give every column a name in the first line of the file",
        )
    duplicates = _duplicates(names)
    if duplicates:
        raise DataError(
            f"{source.display}:{line}: duplicate column name(s) in the header: {', '.join(duplicates)}",
            hint="rename the columns so that each name is unique (SQLite ignores the case of names)",
        )
    return names


def _duplicates(names: list[str]) -> list[str]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_fold(name), []).append(name)
    return [" / ".join(repr(name) for name in group) for group in groups.values() if len(group) > 1]


# --- validation pass -----------------------------------------------------------


def _is_integer(value: str) -> bool:
    """Only integers that come back out of SQLite exactly as written."""
    return _CANONICAL_INT.fullmatch(value) is not None and _INT64_MIN <= int(value) <= _INT64_MAX


def _is_float(value: str) -> bool:
    """Only numbers a REAL holds exactly as written, so a column mixing them can be REAL.

    Beyond 15 significant digits a double rounds ('9007199254740993', '12345678901234567.89');
    subnormal numbers hold even fewer.
    """
    if _CANONICAL_FLOAT.fullmatch(value) is None:
        return False
    if len(value) <= _REAL_DIGITS:
        return True  # too short to be rounded, overflow or be subnormal
    if not _few_enough_digits(value):
        return False
    if "." not in value:
        return _is_integer(value)  # a 30-digit id of zeros would come back as 1e+29
    number = float(value)
    return math.isfinite(number) and (number == 0 or abs(number) >= sys.float_info.min)


def _few_enough_digits(value: str) -> bool:
    """At most 15 significant digits in a canonical number; zeros at either end only place the point."""
    return len(value) <= _REAL_DIGITS or len(value.lstrip("-").replace(".", "").strip("0")) <= _REAL_DIGITS


class _RoundTripTracker(ValueTracker):
    """sqlite-utils' type tracker, minus the guesses that lose information.

    Its tests use int()/float(), which accept '00123', '1_000', ' 12', 'nan',
    '1e400' and non-ASCII digits, numbers too large for SQLite INTEGER, and
    numbers with more digits than a REAL keeps.
    """

    def test_integer(self, value: object) -> bool:
        return _is_integer(str(value))

    def test_float(self, value: object) -> bool:
        return _is_float(str(value))


@dataclass
class _Problems:
    """Keeps the first few problems per source; only the earliest lines are shown."""

    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.first) < _MAX_LISTED:
            self.first.append((line, message))

    def wants_details(self) -> bool:
        """Lets hot loops skip formatting messages nobody will see."""
        return len(self.first) < _MAX_LISTED


def _classify(value: str) -> str:
    """How the value could be stored without changing it, as one of these kinds:

    'integer' (INTEGER or REAL), 'long integer' (INTEGER only: too many digits for REAL),
    'float' (REAL), 'number' (looks numeric, but only TEXT keeps it: '007', '1E5'),
    'formatted' (a number in regional format, '10,5') or 'text'.
    The type tracker's tests give the same answer for every value of one kind.
    """
    if _ANY_NUMBER.fullmatch(value) is None:
        return "formatted" if FORMATTED_NUMBER.fullmatch(value) else "text"
    if _is_integer(value):
        return "integer" if _few_enough_digits(value) else "long integer"
    return "float" if _is_float(value) else "number"


def _not_expected(column: str, raw: str, expected: str, decimal_commas: bool = False) -> str:
    """A value that is not the number its column needs; a regional format gets named, and where a decimal comma
    can be read (``decimal_commas``: a file separated by semicolons) a number with decimals where --type asked
    for integers gets the type that keeps them."""
    if expected == _EXPECTED["date"]:
        return f"column {column!r}: {show(raw)} {not_a_date(raw)}"
    number = decimal_comma_canonical(raw.strip()) if decimal_commas and expected == _EXPECTED["integer"] else None
    if number is not None and "." in number:
        note = f" ({number} with a decimal comma; {_type_flag(column, 'float')} keeps the decimals)"
    else:
        note = " (decimal comma or thousands separator)" if FORMATTED_NUMBER.fullmatch(raw.strip()) else not_a_number(raw)
    return f"column {column!r}: {show(raw)} is not {expected}{note}"


@dataclass
class _ColumnProfile:
    name: str
    tracker: _RoundTripTracker = field(default_factory=_RoundTripTracker)
    kinds: dict[str, int] = field(default_factory=dict)
    not_numbers: _Problems = field(default_factory=_Problems)
    not_forced: _Problems = field(default_factory=_Problems)  # values not of the column's forced type (--type)
    forced_formatted: bool = False  # one of those is a number in regional format ('10,5')
    erp: ErpLook = field(default_factory=ErpLook)

    def observe(self, line: int, raw: str, value: str) -> None:
        self.erp.observe(value)
        kind = _classify(value)
        seen = self.kinds.get(kind, 0)
        if not seen:
            # The tracker's verdict depends only on which kinds it has seen,
            # so one value of each kind is enough and keeps large files fast.
            self.tracker.evaluate(value)
        self.kinds[kind] = seen + 1
        if kind in ("text", "formatted"):
            if self.not_numbers.wants_details():
                self.not_numbers.add(line, _not_expected(self.name, raw, "a number"))
            else:
                self.not_numbers.count += 1

    @property
    def filled(self) -> int:
        return sum(self.kinds.values())

    @property
    def numeric(self) -> int:
        return self.kinds.get("integer", 0) + self.kinds.get("long integer", 0) + self.kinds.get("float", 0)

    def detected_type(self) -> str:
        return self.tracker.guessed_type if self.filled else "text"

    def looks_numeric_with_typos(self) -> bool:
        """Mostly numbers plus a few stray words is almost always a data-entry error.

        So is a column of numbers some of which are written as '10,5' (regional settings):
        stored as text, every comparison in a policy would quietly go wrong.
        """
        if not self.filled or not self.not_numbers.count:
            return False
        only_numbers = self.kinds.keys() <= {"integer", "long integer", "float", "formatted"}
        return self.numeric >= _NUMERIC_MAJORITY * self.filled or only_numbers


@dataclass(frozen=True)
class _Plan:
    """What the validation pass decided; the insert pass only follows it."""

    columns: list[str]
    types: list[str]
    rows: int
    decimal_comma: list[bool]  # per column: its numbers are written with a decimal comma (csv_decimal_comma)
    amounts: bool = True  # --type integer/float also read '¥1,234.50' (not in a ';' file: there '1,234' is 1.234)
    erp_text: tuple[tuple[str, str, str], ...] = ()  # see Imported.erp_text
    skip_totals: bool = False  # the insert pass leaves out the totals rows (the check pass refused them otherwise)
    totals: _Problems = field(default_factory=lambda: _Problems())  # the totals rows left out


def _validate(source: CsvFile, db_path: Path, types: dict[str, str], existing: _Table | None,
              progress: Progress = silent, skip_totals: bool = False) -> _Plan:
    """Read the whole file once, deciding column types and collecting every problem.

    ``existing`` is the table being appended to, whose declared types win over detection.
    """
    records = source.records()
    columns = _header(source, records)
    forced = _forced_types(source, columns, types)
    declared: dict[str, tuple[str, str]] = {}  # appending: folded name -> (our type, declared type) of typed columns
    if existing is not None:
        _check_same_columns(source, db_path, existing, columns)
        declared = {_fold(name): (ours, kind) for name, kind in existing.columns if (ours := _type_of_declared(kind))}
        _check_types_agree(db_path, existing, columns, forced, declared)
        forced = [kind or declared.get(_fold(name), (None,))[0] for name, kind in zip(columns, forced)]
    profiles = [_ColumnProfile(name) for name in columns]
    bad_width = _Problems()
    totals = _Problems()  # refused, or with skip_totals left out
    # numbers such as 1.234,56 are only looked for in the number columns of a ';'-separated file
    commas = [DecimalCommaColumn(_is_float) if source.delimiter == ";" and kind != "text" else None for kind in forced]
    amounts = source.delimiter != ";"
    rows = 0
    for line, fields in records:
        if _is_blank_row(fields):
            continue
        if (word := csv_totals.label(fields)) is not None:
            totals.add(line, csv_totals.described(columns, fields, *word) if totals.wants_details() else "")
            continue
        if len(fields) != len(columns):
            bad_width.add(line, f"expected {_fields(len(columns))} as in the header, found {len(fields)}")
            continue
        rows += 1
        if rows % _BATCH_ROWS == 0:
            progress("checking rows", rows, None)
        for raw, kind, profile, comma in zip(fields, forced, profiles, commas):
            value = raw.strip()
            if not value:
                continue
            if comma is not None:
                comma.observe(value)
            if kind is None:
                profile.observe(line, raw, value)
            elif kind != "text" and not _fits(kind, value, amounts):
                profile.not_forced.add(line, _not_expected(profile.name, raw, _EXPECTED[kind], source.delimiter == ";"))
                profile.forced_formatted = profile.forced_formatted or FORMATTED_NUMBER.fullmatch(value) is not None
    decimal_comma = [comma and not (kind == "integer" and column.with_comma)  # 12,5 is no integer
                     for comma, kind, column in zip(read_with_decimal_comma(commas), forced, commas)]
    final_types = [(kind or ("float" if column.with_comma else "integer")) if comma else kind or profile.detected_type()
                   for kind, profile, comma, column in zip(forced, profiles, decimal_comma, commas)]
    suspicious = [
        profile for kind, profile, comma in zip(forced, profiles, decimal_comma)
        if kind is None and not comma and profile.looks_numeric_with_typos()
    ]
    bad_values = [profile.not_forced for profile, comma in zip(profiles, decimal_comma) if not comma]
    bad_columns = [profile.name for profile, comma in zip(profiles, decimal_comma) if profile.not_forced.count and not comma]
    formatted = (any(profile.forced_formatted and not comma for profile, comma in zip(profiles, decimal_comma))
                 or any(profile.kinds.get("formatted") for profile in suspicious))
    typed = {name: declared[_fold(name)][1] for name in bad_columns if _fold(name) in declared}
    erp_text = tuple((profile.name, profile.erp.kind, profile.erp.example)
                     for profile, kind, final in zip(profiles, forced, final_types)
                     if kind is None and final == "text" and profile.erp.kind is not None
                     and (amounts or profile.erp.kind == "dates"))
    refused_totals = _Problems() if skip_totals else _refused_totals(totals)
    # the columns a run would refuse next, said with this refusal, so that one more import does it all
    also = tuple(item for item in erp_text if all(item[0] != profile.name for profile in suspicious))
    _raise_problems(source, bad_width, [*bad_values, *(profile.not_numbers for profile in suspicious)], suspicious,
                    formatted, _AppendTarget(existing.name, typed) if existing is not None else None, amounts,
                    refused_totals, also)
    return _Plan(columns, final_types, rows, decimal_comma, amounts, erp_text, skip_totals, totals)


def _refused_totals(totals: _Problems) -> _Problems:
    """The totals rows as the problems they are without --skip-totals."""
    refused = _Problems(totals.count)
    refused.first = [(line, f"a totals row, not a record: {what}") for line, what in totals.first]
    return refused


def _check_types_agree(db_path: Path, existing: _Table, columns: list[str], forced: list[str | None],
                       declared: dict[str, tuple[str, str]]) -> None:
    """Appending, a --type may only repeat what the table declares: the table keeps its column types, and text
    put in an INTEGER column would sit among its numbers, sorting and comparing as no number does."""
    for name, kind in zip(columns, forced):
        ours, sql_type = declared.get(_fold(name), (None, ""))
        if kind is None or ours is None or kind == ours or (kind, ours) == ("date", "text"):
            continue
        need = f"every value of {name!r} must then be {_EXPECTED[ours]}" if ours in _EXPECTED else f"{name!r} is kept as text"
        raise UsageError(
            f"{_type_flag(name, kind)}: column {name!r} of table {existing.name!r} in {db_path} is declared "
            f"{sql_type}, and --append keeps the table's column types",
            hint=f"leave out {_type_flag(name, kind)} ({need}), or import into a new table, or with --replace, "
                 f"to make {name!r} {kind}",
        )


def _fits(kind: str, value: str, amounts: bool = False) -> bool:
    """Forced types are lenient on form ('+7', '007') since the user asked for a number; with ``amounts`` also on
    a currency sign and thousands separators ('¥1,234.50'); a date must be one written year first."""
    if kind == "date":
        return iso_date(value) is not None
    if amounts:
        value = amount(value) or value
    if kind == "integer":
        return _ANY_INT.fullmatch(value) is not None and _INT64_MIN <= int(value) <= _INT64_MAX
    return _ANY_NUMBER.fullmatch(value) is not None and math.isfinite(float(value))


def _fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count} fields"


def _is_blank_row(fields: list[str]) -> bool:
    """Spreadsheets export formatted-but-empty rows as ',,,'; they carry no data."""
    return not "".join(fields).strip()


def _forced_types(source: CsvFile, columns: list[str], types: dict[str, str]) -> list[str | None]:
    """The type forced on each column, or None; names match as SQLite's do, ignoring case."""
    by_fold = {_fold(column): column for column in columns}
    forced: dict[str, str] = {}
    given: dict[str, str] = {}
    for name, kind in types.items():
        column = by_fold.get(_fold(str(name)))
        if column is None:
            listing = "columns are: " + ", ".join(repr(column) for column in columns[:20])
            raise UsageError(
                f"{_type_flag(name, kind)}: {source.display} has no column {name!r}",
                hint=_did_you_mean(str(name), columns, listing),
            )
        if forced.get(column, kind) != kind:
            raise UsageError(
                f"{_type_flag(given[column], forced[column])} and {_type_flag(name, kind)}"
                f" both name column {column!r} of {source.display}",
                hint="give one --type per column",
            )
        forced[column], given[column] = kind, name
    return [forced.get(column) for column in columns]


def _check_same_columns(source: CsvFile, db_path: Path, existing: _Table, columns: list[str]) -> None:
    table_names = {_fold(name): name for name, _ in existing.columns}
    file_names = {_fold(name): name for name in columns}
    filled = {_fold(name) for name in existing.filled}
    missing = [repr(name) for key, name in table_names.items() if key not in file_names and key not in filled]
    extra = [repr(name) for key, name in file_names.items() if key not in table_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"extra column(s) {', '.join(extra)}")
        # "its id may be left out" read as a contradiction beside "missing column(s) 'id'" when the table's id is
        # no INTEGER PRIMARY KEY, as in every table crm-rules import creates: say which, and why
        required = ""
        if missing:
            them = "it is" if len(missing) == 1 else "they are"
            required = (f" ({', '.join(missing)}: {them} neither; add {'it' if len(missing) == 1 else 'them'} to "
                        f"the file)")
        raise DataError(
            f"{source.display}: columns do not match table {existing.name!r} in {db_path}: {'; '.join(parts)}",
            hint="the header must name the table's columns, in any order; only an INTEGER PRIMARY KEY, which SQLite "
                 f"numbers itself, and columns with a DEFAULT may be left out{required}; use --replace to recreate "
                 "the table",
        )


def _type_of_declared(declared: str) -> str | None:
    """Map a declared SQLite type to ours with SQLite's own affinity rules; None means detect."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "float"
    return None


@dataclass(frozen=True)
class _AppendTarget:
    """The table an import appends to, and the declared types of the columns with values that are not those types."""

    table: str
    typed: dict[str, str]  # column -> declared type


def _raise_problems(
    source: CsvFile,
    bad_width: _Problems,
    bad_values: list[_Problems],
    suspicious: list[_ColumnProfile],
    formatted: bool,
    appending: _AppendTarget | None = None,
    amounts: bool = False,
    totals: _Problems | None = None,
    also: tuple[tuple[str, str, str], ...] = (),
) -> None:
    totals = totals or _Problems()
    groups = [bad_width, *bad_values, totals]
    total = sum(group.count for group in groups)
    if not total:
        return
    listed = sorted(item for group in groups for item in group.first)[:_MAX_LISTED]
    lines = [f"{source.display}:{line}: {message}" for line, message in listed]
    if total > len(listed):
        lines.append(f"... and {total - len(listed)} more")
    header = f"cannot import {source.display}: {total} bad row(s) or value(s), nothing was imported"
    hint = _problem_hint(source, bad_width, total - bad_width.count - totals.count, suspicious, formatted, appending,
                         amounts, totals.count)
    if also and appending is None:
        hint += "; " + _also_hint(also)
    raise DataError("\n".join([header, *lines]), hint=hint)


def _problem_hint(
    source: CsvFile, bad_width: _Problems, bad_values: int, suspicious: list[_ColumnProfile], formatted: bool,
    appending: _AppendTarget | None = None, amounts: bool = False, totals: int = 0,
) -> str:
    if totals and not bad_width.count and not bad_values:  # only totals rows: one fix, said first
        return ("a row that sums the others is no record: delete it from the file, or import with --skip-totals, "
                "which leaves such rows out (for an export that always ends with one)")
    advice = ["fix these rows in the file"]
    if totals:
        advice.append("delete the totals rows, or leave them out with --skip-totals")
    money = [profile for profile in suspicious if amounts and profile.erp.kind == "amounts"]
    if money:  # '¥1,234.50' among plain numbers: the reading the user can ask for, before the general advice
        flags = " ".join(_type_flag(profile.name, "float") for profile in money)
        advice.append(f"amounts written with a currency sign or thousands separators ({money[0].erp.example}) are "
                      f"read as numbers with {flags}")
    if bad_width.count:
        separators = _DELIMITER_NAMES[source.delimiter]
        advice.append(f"every row needs as many fields as the header; values containing {separators} must be in"
                      " double quotes")
        if source.delimiter != ",":
            advice.append(f"the header has no commas, so the file was read as separated by {separators}")
    if formatted:
        advice.append("numbers need '.' as the decimal point and no thousands separators (10.5, 1200.5)")
        if source.delimiter == ";":
            advice.append("in a file separated by semicolons, a column's numbers may have a decimal comma (1.234,56; "
                          "12,5) instead, when every value of the column is written so")
    if suspicious:
        shares = ", ".join(
            f"{profile.name!r} ({profile.numeric * 100 // profile.filled}% numbers)" if profile.numeric
            else repr(profile.name) for profile in suspicious
        )
        flags = " ".join(_type_flag(profile.name, "text") for profile in suspicious)
        advice.append(f"or, if {shares} should be text, keep it as text with {flags}")
    if appending is not None and appending.typed:
        # --type cannot change a column of an existing table (it is refused): only a new table can hold such values
        columns = ", ".join(f"{name!r} is {sql_type}" for name, sql_type in appending.typed.items())
        advice.append(f"the rows are appended to table {appending.table!r}, whose declared types decide ({columns}); "
                      f"to keep such values as text, import into a new table, or with --replace")
    elif bad_values and not suspicious:
        advice.append("or keep the column as text with --type COLUMN=text")
    return "; ".join(advice)


def _also_hint(columns: tuple[tuple[str, str, str], ...]) -> str:
    """The columns of amounts or dates as an ERP writes them that this import would keep as text, and a run then
    refuses: named with the refusal of another column, they get their --type in the same import again."""
    how = {"amounts": ("amounts with a currency sign or thousands separators", "float"),
           "dates": ("dates written year first", "date")}
    named = ", ".join(f"{name!r} ({how[kind][0]}, {example})" for name, kind, example in columns)
    flags = " ".join(_type_flag(name, how[kind][1]) for name, kind, _ in columns)
    return f"add {flags} too: {named} would be kept as text, which a run refuses where a policy reads it"


# --- writing -------------------------------------------------------------------


def _converters(plan: _Plan) -> list[Callable[[str], object]]:
    def read(number: Callable[[str], object]) -> Callable[[str], object]:
        return (lambda value: number(amount(value) or value)) if plan.amounts else number

    def date(value: str) -> str:
        iso = iso_date(value)
        if iso is None:
            raise ValueError(value)
        return iso

    by_type: dict[str, Callable[[str], object]] = {"integer": read(int), "float": read(float), "date": date}
    return [decimal_comma_number(kind) if comma else by_type.get(kind, str)
            for kind, comma in zip(plan.types, plan.decimal_comma)]


def _converted_rows(source: CsvFile, plan: _Plan) -> Iterator[list[object]]:
    """Second pass over the file; anything unexpected means it changed since validation."""
    return (row for _, row in _numbered_rows(source, plan))


def _numbered_rows(source: CsvFile, plan: _Plan) -> Iterator[tuple[int, list[object]]]:
    """The rows as they are inserted, each with the line it starts on."""
    converters = _converters(plan)
    text = [kind == "text" for kind in plan.types]
    records = source.records()
    next(records)  # header
    for line, fields in records:
        if _is_blank_row(fields):
            continue
        if csv_totals.label(fields) is not None:
            if plan.skip_totals:
                continue
            raise source.changed(line)
        if len(fields) != len(plan.columns):
            raise source.changed(line)
        row = []
        for raw, convert, keep in zip(fields, converters, text):
            value = raw.strip()
            try:
                row.append(None if not value else raw if keep else convert(value))
            except ValueError:
                raise source.changed(line) from None
        yield line, row


def _write(db_path: Path, table: str, mode: str, source: CsvFile, plan: _Plan, progress: Progress) -> int:
    created = not db_path.exists()
    try:
        conn = sqlite3.connect(db_path, isolation_level=None)
    except sqlite3.Error as exc:
        raise UsageError(f"{db_path}: cannot open database: {exc}") from None
    try:
        rows = _write_in_transaction(conn, db_path, table, mode, source, plan, progress)
    except BaseException as exc:
        conn.close()
        if created:
            _remove_new_database(db_path)
        if isinstance(exc, sqlite3.DatabaseError) and is_damage(exc):
            raise damaged(db_path, exc) from None
        raise
    conn.close()
    return rows


def _write_in_transaction(
    conn: sqlite3.Connection, db_path: Path, table: str, mode: str, source: CsvFile, plan: _Plan, progress: Progress
) -> int:
    """Every statement, DDL included, runs inside one explicit transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        existing = _lookup_table(conn, table)  # it may have changed since the first look
        _check_mode(db_path, table, mode, existing)
        if mode == "replace" and existing is not None:
            conn.execute(f"DROP TABLE {_quote(existing.name)}")
        if mode != "append":
            definitions = ", ".join(
                f"{_quote(name)} {_SQL_TYPES[kind]}" for name, kind in zip(plan.columns, plan.types)
            )
            conn.execute(f"CREATE TABLE {_quote(table)} ({definitions})")
        rows = _insert_rows(conn, table, source, plan, progress)
        if rows != plan.rows:
            raise source.changed()
        conn.execute("COMMIT")
        return rows
    except sqlite3.Error as exc:
        _rollback(conn)
        if isinstance(exc, sqlite3.IntegrityError) and mode == "append":
            existing = _lookup_table(conn, table)
            found = existing and duplicate_keys(conn, existing.name, plan.columns, _numbered_rows(source, plan),
                                                source.display)
            if found:
                raise found from None
            refused = existing and refused_lines(conn, existing.name, plan.columns, _numbered_rows(source, plan),
                                                 source.display)
            if refused:
                raise refused from None
        raise RunError(f"{db_path}: could not import into table {table!r}: {exc}; nothing was written") from None
    except BaseException:
        _rollback(conn)
        raise


def _insert_rows(conn: sqlite3.Connection, table: str, source: CsvFile, plan: _Plan, progress: Progress) -> int:
    names = ", ".join(_quote(name) for name in plan.columns)
    placeholders = ", ".join("?" for _ in plan.columns)
    statement = f"INSERT INTO {_quote(table)} ({names}) VALUES ({placeholders})"
    rows = 0
    batch: list[list[object]] = []
    for row in _converted_rows(source, plan):
        batch.append(row)
        if len(batch) >= _BATCH_ROWS:
            conn.executemany(statement, batch)
            rows += len(batch)
            batch.clear()
            progress("writing rows", rows, plan.rows)
    conn.executemany(statement, batch)
    progress("writing rows", rows + len(batch), plan.rows)
    return rows + len(batch)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _remove_new_database(db_path: Path) -> None:
    """A database file this import created must not outlive a failed import."""
    for leftover in (db_path, Path(f"{db_path}-journal")):
        leftover.unlink(missing_ok=True)
