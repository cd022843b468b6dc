"""Policy test files: example customers and the grades a policy must give them.

A test file ``X.test.yaml`` sits next to the policy ``X.yaml`` (or names it
with ``policy:``).  Each case describes one customer (customer columns, small
histories of orders, invoices, interactions and contracts, or generators
such as ``revenue_12m: 300_000``) and what the policy must give it: tier,
sub-grade, stage, service level, credit outcome, actions, or any metric or
plugin output.  ``table:`` turns one case into many (one per row), and CSV
files can hold histories or table rows.

This module reads a test file into cases ready to write to a database, and
reports every problem of the file at once (file:line:col); policy_tests runs
them.

Dates anywhere in a test file may be relative to ``as_of``: ``-30d``,
``-2w``, ``-6m``, ``-3y``, ``+60d``, and steps in turn such as ``-13m-10d``
(counted as metric windows count them, date_windows.shifted: a month-end
stays a month-end, -1m of 2026-02-28 is 2026-01-31).  Customers default to industry ``retail``, ``created_at: -5y``
and ``credit_limit: 100000``; the id is the case name as a slug.

Generators (``generate:`` of a case, or table columns of the same names):

- ``revenue_12m`` and ``orders_12m`` (default 1 when the revenue is not 0):
  orders adding up exactly to the revenue, the latest ``recency_days`` before
  as_of (default 30, or 360 / orders_12m when that is shorter, so a frequent
  buyer's last order is not overdue); half of the revenue in the last 6 months
  (ceil(n/2) orders, up to 175 days back) and half in the 6 months before
  (190 to 360 days back), so the 6-month trend is 0 (missing for one order);
  with ``recency_days`` over 175 all orders fall in the earlier half.
- ``margin_12m``: the generated orders' cost is revenue x (1 - margin), split
  so that profit adds up exactly; default: no cost.
- ``orders_12m: 0`` with ``recency_days`` (>= 366): one order of amount 0
  that long ago (a customer whose last order is older than 12 months).
- ``complaints_12m``, ``referrals_12m``: interactions of kind ``complaint`` /
  ``referral`` spread over the last 12 months.

Every generated order or interaction is a row of the test database, and a
test customer needs only the few that decide its grades: the counts are at
most 10,000 a customer and 200,000 a file; ``recency_days`` at most 36,500,
``revenue_12m`` at most 10^15 either way, ``margin_12m`` from -100 to 1.
Numbers anywhere in a test file (YAML or CSV) must be finite: .inf and .nan
are errors at their place, not values that fail later in the run.

The policy's ``data:`` section (its own table and column names) decides the
test database: every table and column is created as the policy maps it
(``database_layout``), so a policy over ``clients``/``sales`` with
``amount: net_amount`` is tested as it runs.  A test file keeps its own
names: customer columns by attribute name (``created_at`` is the ``since``
attribute; any attribute the policy declares, e.g. ``segment``, can be set),
history rows as [date, amount, cost, discount] lists or as mappings by name
(``{date: -10d, amount: 5000, channel: web}``: also the source's own
``columns``; the data mapping's logical names and the policy's column names
are accepted too, as in a CSV export of the real table).  A value for
something the policy maps to null (``industry: null``) is an error.

Expected metric, output and attribute values must be of the type of what they
check (a number, unquoted, for a numeric metric; true/false; text; a date,
relative ones allowed), and ranges must have min <= max: a mismatch is an
error at its line, not a failing case.

Table cells: YAML ``null`` is a value (e.g. expect no sub-grade); an empty CSV
cell leaves the column unset; ``[]`` in an ``expect.actions`` cell means none
and ``a; b`` lists several.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field, replace
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from .counterfactuals import value_text
from .data_mapping import SOURCE_FIELDS, SOURCES, DataMapping
from .date_windows import shifted
from .csv_decimal_comma import DecimalCommaColumn, canonical, read_with_decimal_comma
from .csv_reader import CsvFile
from .errors import DataError, Diagnostic, PolicyError, UsageError
from .expr_types import BOOL, DATE, NUMBER, TEXT, did_you_mean, is_iso_date
from .file_kinds import CSV, SQLITE, UTF16, YAML, kind_of, wrong_kind
from .plugin_api import SqlActions
from .policy_files import TEST_SUFFIX, is_test_file, policy_files_in, resolve_policy_path, shipped_policies_dir
from .policy_model import Policy, load_policy
from .rule_table import split_list_cell
from .schema_validation import validate_document, value_at
from .yaml_source import Position, SourceDocument, format_path, load_yaml_file

SCHEMA_NAME = "policy-test.schema.json"

# The test file's names of the fields of history rows, positionally ([date, amount, cost, discount], ...);
# customer values are named by the data mapping's attributes (`created_at` stands for `since`).  A policy's
# `data:` section decides which table and column each one is written to (see database_layout): the names
# of a test file do not change with it.
HISTORY_COLUMNS = {
    "orders": ("order_date", "amount", "cost", "discount"),
    "receivables": ("issue_date", "due_date", "amount", "paid_amount", "paid_date"),
    "interactions": ("date", "kind"),
    "contracts": ("start_date", "end_date", "kind"),
}
# What each history field is in the data mapping: a logical field of the source, or one of its `columns`.
HISTORY_LOGICAL = {
    "orders": {"order_date": "date", "amount": "amount", "cost": "cost", "discount": "discount"},
    "receivables": {"issue_date": "date", "due_date": "due_date", "amount": "amount", "paid_amount": "paid_amount",
                    "paid_date": "paid_date"},
    "interactions": {"date": "date", "kind": "kind"},
    "contracts": {"start_date": "start", "end_date": "end", "kind": "kind"},
}
HISTORY_REQUIRED = {"orders": 2, "receivables": 3, "interactions": 2, "contracts": 1}
HISTORY_DEFAULTS = {"orders": (None, None, 0, 0), "receivables": (None, None, None, 0, None),
                    "interactions": (None, None), "contracts": (None, None, "annual")}
DATE_COLUMNS = {"created_at", "since", "order_date", "issue_date", "due_date", "paid_date", "date", "start_date", "end_date"}
NUMBER_COLUMNS = {"credit_limit", "amount", "cost", "discount", "paid_amount"}
NULLABLE = {"cost", "discount", "paid_amount", "paid_date", "end_date", "kind"}
ID = "id"  # the type of the customer id (text or a whole number, stored as text)

# Defaults of every customer (a file's `defaults.customer` and the case's `customer` override them);
# keyed by attribute name (`since` is the `created_at` of a test file).
DEFAULT_CUSTOMER = {"region": None, "industry": "retail", "since": "-5y", "account_manager": None,
                    "credit_limit": 100_000}
# Customer attributes a test file can give whatever the policy maps, and their types (one the policy maps
# to null has no column in the test database: a value given for it is an error).
STANDARD_CUSTOMER = {"region": TEXT, "industry": TEXT, "since": DATE, "account_manager": TEXT, "credit_limit": NUMBER}


@dataclass(frozen=True)
class Field:
    """A value a test file gives (a customer column, a field of a history row) and where it is written."""

    name: str  # the test file's name
    column: str | None  # the column of the policy's data mapping; None: the policy maps none (data.X: null)
    type: str  # number, text, date, bool, or ID
    mapping: str  # its entry in the data mapping, for messages (data.customers.attributes.region)
    nullable: bool = True


@dataclass
class TableLayout:
    """One table of the test database, named as the policy's data mapping names it."""

    concept: str  # customers, orders, receivables, interactions, contracts
    table: str
    key: str  # customers: the id column; a history table: its customer column
    fields: list[Field]  # customers: every value a case can set; histories: a row's values, in order
    aliases: dict[str, str] = field(default_factory=dict)  # other accepted names -> field name

    def find(self, name: str) -> Field | None:
        name = self.aliases.get(name, name)
        return next((f for f in self.fields if f.name == name), None)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def database_layout(mapping: DataMapping) -> dict[str, TableLayout]:
    """The test database of a policy: its data mapping's tables and columns, keyed by concept.

    The customer row holds the id, the name and every attribute the mapping declares (custom ones too), plus
    the standard test values whose attribute the policy removed (no column: a value given for one is an
    error).  A history row holds the test file's positional fields, then the source's own ``columns``.
    """
    cust = mapping.customers
    fields = [Field("id", cust.key, ID, "data.customers.id", nullable=False),
              Field("name", mapping.customer_name, TEXT, "data.customers.name")]
    for name, col in mapping.attributes.items():
        if name not in ("id", "name"):
            fields.append(Field(name, col.column, col.type, f"data.customers.attributes.{name}"))
    taken = {f.name for f in fields}
    for name, type_ in STANDARD_CUSTOMER.items():
        if name not in taken:
            fields.append(Field(name, None, type_, f"data.customers.attributes.{name}"))
    if "lead_source" not in taken:  # a demo-schema column; a policy reads it once it maps the attribute
        used = {f.column.lower() for f in fields if f.column}
        fields.append(Field("lead_source", None if "lead_source" in used else "lead_source", TEXT,
                            "data.customers.attributes.lead_source"))
    aliases = {} if "created_at" in taken else {"created_at": "since"}
    layout = {"customers": TableLayout("customers", cust.table, cust.key, fields, aliases)}
    for concept in SOURCES:
        source = mapping.sources[concept]
        logical = HISTORY_LOGICAL[concept]
        rows = []
        for name in HISTORY_COLUMNS[concept]:
            col = source.columns.get(logical[name])
            where = f"data.{concept}.{logical[name]}" if logical[name] in SOURCE_FIELDS[concept] else \
                f"data.{concept}.columns.{logical[name]}"
            rows.append(Field(name, col.column if col else None, DATE if name in DATE_COLUMNS else
                              NUMBER if name in NUMBER_COLUMNS else TEXT, where,
                              nullable=name in NULLABLE))
        standard = set(logical.values())
        for name, col in source.columns.items():
            if name not in standard and name not in HISTORY_COLUMNS[concept]:
                rows.append(Field(name, col.column, col.type, f"data.{concept}.columns.{name}"))
        names = {f.name for f in rows}
        aliases = {lg: name for name, lg in logical.items() if lg not in names}
        for f in rows:  # the policy's own column names, e.g. the header of an export of the real table
            if f.column and f.column not in names and f.column not in aliases:
                aliases[f.column] = f.name
        layout[concept] = TableLayout(concept, source.table, source.key, rows, aliases)
    return layout


def database_schema(layout: dict[str, TableLayout]) -> list[tuple[str, list[tuple[str, str]], bool]]:
    """(table, [(column, SQL type)], customers?) of each table to create; concepts mapped to one table share it."""
    sql_type = {NUMBER: "REAL", BOOL: "INTEGER", ID: "TEXT"}
    tables: dict[str, tuple[str, dict[str, tuple[str, str]], bool]] = {}
    for concept, t in layout.items():
        name, cols, is_customers = tables.get(t.table.lower(), (t.table, {}, False))
        keyed = [(t.key, ID)] + [(f.column, f.type) for f in t.fields if f.column]
        for column, type_ in keyed:
            cols.setdefault(column.lower(), (column, sql_type.get(type_, "TEXT")))
        tables[t.table.lower()] = (name, cols, is_customers or concept == "customers")
    return [(name, list(cols.values()), is_customers) for name, cols, is_customers in tables.values()]


# Generators: name -> kind of value (see the module docstring and the schema).
GENERATORS = {
    "revenue_12m": "number",
    "orders_12m": "count",
    "margin_12m": "margin",
    "recency_days": "count",
    "complaints_12m": "count",
    "referrals_12m": "count",
}
# Limits of the generators: a test customer needs only the few rows that decide its grades, and every generated
# order or interaction is a row of the test database (100,000,000 orders took the process down; 1,000,000 took
# 11 s and 450 MB).  A file's generated rows together are capped too, for a table of many such rows.
MAX_GENERATED_ROWS = 10_000  # orders_12m, complaints_12m, referrals_12m of one customer
MAX_FILE_GENERATED_ROWS = 200_000  # every generated row of one test file (about 4 s to build and grade)
MAX_RECENCY_DAYS = 36_500  # 100 years
MAX_REVENUE = 10 ** 15  # |revenue_12m|: amounts are stored as REAL, exact to about 15 digits
MIN_MARGIN = -100  # a cost of 101 times the revenue
GENERATED_SPAN_DAYS = 360  # generated 12-month rows lie within this many days of as_of (inside any 12-month window)
RECENT_HALF_DAYS = 175  # generated orders of the last 6 months lie within this many days of as_of
EARLIER_HALF_DAYS = 190  # ... and those of the 6 months before from this many days on
INTERACTION_FIRST_DAY = 14

_COUNTED = {"orders_12m": "orders", "complaints_12m": "complaints", "referrals_12m": "referrals"}


def _generator_limit(name: str, value: int | float) -> str | None:
    """What puts a generator's number (finite, of the right kind) beyond what a test can use, or None."""
    if name in _COUNTED and value > MAX_GENERATED_ROWS:
        return (f"at most {MAX_GENERATED_ROWS:,} generated {_COUNTED[name]} for one customer, got {yaml_value(value)}: "
                f"each is a row of the test database, and a test customer needs only the few that decide its grades"
                + (" (fewer orders of larger amounts give the same revenue)" if name == "orders_12m" else ""))
    if name == "recency_days" and value > MAX_RECENCY_DAYS:
        return f"at most {MAX_RECENCY_DAYS:,} (100 years before as_of), got {yaml_value(value)}"
    if name == "revenue_12m" and abs(value) > MAX_REVENUE:
        return (f"at most {MAX_REVENUE:,} either way, got {yaml_value(value)}: the generated amounts are stored as "
                f"REAL numbers, exact to about 15 digits")
    if name == "margin_12m" and value > 1:
        return f"a margin is at most 1 (100%), got {yaml_value(value)}"
    if name == "margin_12m" and value < MIN_MARGIN:
        return (f"at least {MIN_MARGIN} (a cost of {1 - MIN_MARGIN} times the revenue), got {yaml_value(value)}")
    return None


GRADES = ("tier", "subgrade", "stage", "service_level")
SPECIAL_EXPECT = GRADES + ("credit_outcome", "actions", "actions_include")
DEFAULT_TOLERANCE = 1e-9


def tolerance(expected: dict | float) -> float:
    """How far a number may be from ``expected`` (a number, or ``{approx: x[, tolerance: t]}``) and still match:
    the tolerance given, else DEFAULT_TOLERANCE relative to the value (at least absolute)."""
    if isinstance(expected, dict):
        return expected.get("tolerance", DEFAULT_TOLERANCE * max(1, abs(expected["approx"])))
    return DEFAULT_TOLERANCE * max(1, abs(expected))
COVERAGE_KINDS = ("tiers", "subgrades", "stages", "service_levels")

_CSV_BOOLS = {"true": 1, "false": 0, "1": 1, "0": 0}

_FIRST_DAY, _LAST_DAY = dt.date.min.isoformat(), dt.date.max.isoformat()
_RELATIVE = re.compile(r"(?:[+-][0-9]+[dwmy])+")  # steps taken in turn: -13m-10d is 13 months back, then 10 days
_RELATIVE_STEP = re.compile(r"([+-])([0-9]+)([dwmy])")
_UNITS = {"d": "days", "w": "weeks", "m": "months", "y": "years"}


# ---- the model of a test file -------------------------------------------------------

@dataclass
class Where:
    """Where a value came from: a YAML position (with its path) or a CSV cell."""

    pos: Position
    path: str
    csv: bool = False  # a CSV cell: text such as "true" or "100" may stand for a value of another type
    text: str | None = None  # a CSV cell's text as written: what a text column or id holds ('007', not 7)

    def __str__(self) -> str:
        return f"{self.pos.file}:{self.pos.line}:{self.pos.col}"


@dataclass
class Case:
    name: str
    customer_id: str
    customer: dict[str, Any]
    histories: dict[str, list[tuple]]
    expect: dict[str, Any]
    expect_where: dict[str, Where]
    where: Where
    background: bool = False


@dataclass
class PolicyTestFile:
    path: Path
    display: str
    policy: Policy
    policy_path: Path
    as_of: str
    cases: list[Case]
    population: list[Case]
    description: str = ""
    layout: dict[str, TableLayout] = field(default_factory=dict)  # the tables and columns the cases are written to


@dataclass
class _Entry:
    """One case (or one row of a table) before histories are generated: raw values and where they came from."""

    name: str
    where: Where
    customer: dict[str, Any] = field(default_factory=dict)
    customer_where: dict[str, Where] = field(default_factory=dict)
    histories: dict[str, list[tuple[tuple, list[Where]]]] = field(default_factory=dict)  # rows and their cells' places
    generate: dict[str, Any] = field(default_factory=dict)
    generate_where: dict[str, Where] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    expect_where: dict[str, Where] = field(default_factory=dict)


# ---- finding test files ---------------------------------------------------------------

def find_test_files(paths: list[str | Path]) -> list[Path]:
    """Test files for each argument: a test file, a policy (its X.test.yaml), a directory (every *.test.yaml
    under it) or a shipped policy name."""
    found: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            files = sorted(f for f in p.rglob(f"*{TEST_SUFFIX}") if f.is_file())
            if not files:
                raise UsageError(f"{arg}: no test files (*{TEST_SUFFIX}) in this directory",
                                 hint=f"write a test file next to a policy, e.g. policy.yaml -> policy{TEST_SUFFIX}")
            found += files
        elif p.is_file():
            if p.name.endswith(TEST_SUFFIX):
                found.append(p)
            else:
                _refuse_other_kind(arg, p)
                sibling = p.with_name(p.name[: -len(p.suffix)] + TEST_SUFFIX) if p.suffix else p.with_name(p.name + TEST_SUFFIX)
                if not sibling.is_file():
                    raise UsageError(f"{arg}: no test file {sibling} next to this policy",
                                     hint=f"write one, e.g. `as_of: 2026-06-30` and `cases: [{{name: big buyer, generate: "
                                          f"{{revenue_12m: 250_000}}, expect: {{tier: A}}}}]` (`crm-rules schema --test` prints their "
                                          f"format; `crm-rules demo` copies the shipped policies' test files), or pass a "
                                          f"*{TEST_SUFFIX} file")
                found.append(sibling)
        else:
            name = str(arg)
            name = name[: -len(".yaml")] if name.endswith(".yaml") else name
            shipped = shipped_policies_dir().joinpath(f"{name}{TEST_SUFFIX}") if "/" not in name and "\\" not in name else None
            if shipped is not None and shipped.is_file():
                found.append(Path(str(shipped)))
            else:
                raise UsageError(f"{arg}: not found", hint="give a test file, a policy file, a directory or a shipped policy name")
    unique: dict[Path, Path] = {}
    for f in found:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def _refuse_other_kind(arg: str | Path, path: Path, expected: str = "a policy or a policy test file") -> None:
    """A database, workbook or CSV file given to ``test`` is no policy whose test file is next to it.

    Looking for ``crm.test.yaml`` next to ``crm.db`` answered a database with "no test file next to this policy".
    """
    kind = kind_of(path)
    if kind is None or kind in (YAML, UTF16):
        return
    runs = (f"crm-rules test runs test files (*{TEST_SUFFIX}: example customers and the grades they must get), "
            f"given themselves, by their policy or by folder")
    if kind is SQLITE:
        hint = f"{runs}; it needs no database: a test file brings its own customers"
    elif kind is CSV:
        hint = f"{runs}; a CSV table of cases is named in its test file (table: {{csv: {path.name}}})"
    else:
        hint = f"{runs}; {kind.goes_to}"
    raise wrong_kind(arg, kind, expected, hint)


# ---- loading a test file ----------------------------------------------------------------

@dataclass(frozen=True)
class _Wrong:
    """A value not of the type asked for (see _Loader.typed): its caller reports it, in its own words."""

    quoted: str | None = None  # the type's own value in quotes (the text 'true'): the fix is to drop them


class _Loader:
    def __init__(self, path: Path, doc: SourceDocument):
        self.path = path
        self.doc = doc
        self.problems: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()  # the problems, for the check that reports each once
        self.as_of = ""
        self.layout: dict[str, TableLayout] = {}  # the policy's database_layout, once the policy is loaded
        self.reported: set[Position] = set()  # CSV cells with a problem, read as empty: nothing more is said of them
        self.generated_rows = 0  # rows the generators gave so far (at most MAX_FILE_GENERATED_ROWS a file)

    # -- positions and errors
    def at(self, path: tuple, key: bool = False) -> Where:
        pos = self.doc.position(path) if key else self.doc.value_position(path)
        return Where(pos, format_path(path) if path else "")

    def error(self, where: Where, message: str, about: str | None = None) -> None:
        """A problem at ``where``; ``about`` names the column or generator when the path does not."""
        if where.pos in self.reported:
            return
        if about and where.path != about and not where.path.endswith("." + about):
            message = f"{about}: {message}"
        problem = Diagnostic(where.pos.file, where.pos.line, where.pos.col, where.path, message)
        if problem not in self._seen:  # a default shared by every case: once
            self._seen.add(problem)
            self.problems.append(problem)

    # -- values
    def date(self, value: Any, where: Where) -> str | None:
        """An ISO date, or a relative date (-30d, -6m, -1y, -13m-10d) counted from as_of as metric windows count
        it (date_windows.shifted: a month-end stays a month-end)."""
        if value is None:
            return None
        text = str(value).strip()
        if _RELATIVE.fullmatch(text):
            day = self.as_of
            for sign, n, unit in _RELATIVE_STEP.findall(text):
                day = shifted(day, int(sign + n), _UNITS[unit])
                if day in (_FIRST_DAY, _LAST_DAY):  # shifted stops at the ends of the calendar
                    self.error(where, f"{text!r} from as_of {self.as_of} is "
                                      f"{'before year 1' if sign == '-' else 'after year 9999'}, outside the calendar")
                    return None
            return day
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            if is_iso_date(text):
                return text
            self.error(where, f"{text!r} is not a real date")
            return None
        self.error(where, f"{text!r} is not a date: write YYYY-MM-DD or a date relative to as_of such as -30d, -6m, -1y")
        return None

    def typed(self, value: Any, type_: str, where: Where) -> Any:
        """``value`` (not None) as a BOOL or DATE value, or a _Wrong when it is of another kind.

        BOOL: true/false, also 0/1 and, in a CSV cell (text to begin with), true/false/1/0 in any case; the
        text 'true' in YAML is a _Wrong whose fix is to drop the quotes.  DATE: a text read by ``date`` (an
        ISO date, or one relative to as_of); None when it is no date, which ``date`` has reported.
        """
        if type_ == BOOL:
            text = str(value).strip().lower()
            if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
                return bool(value)
            if where.csv and isinstance(value, (str, int)) and text in _CSV_BOOLS:
                return bool(_CSV_BOOLS[text])
            return _Wrong(text if isinstance(value, str) and text in ("true", "false") else None)
        if isinstance(value, str):  # DATE
            return self.date(value, where)
        return _Wrong()

    def number(self, value: Any, where: Where, *, nullable: bool = False) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and not -(2 ** 63) <= value < 2 ** 63:
                return float(value)  # beyond SQLite's 64-bit integers: stored as SQLite itself would store it
            return value
        self.error(where, f"expected a number, got {json.dumps(value, ensure_ascii=False)}")
        return None

    def column_value(self, f: Field, value: Any, where: Where) -> Any:
        """A customer or history value, checked and converted for its column's type."""
        column = f.name
        if value is None:
            return None
        if f.type in (BOOL, DATE):
            typed = self.typed(value, f.type, where)
            if not isinstance(typed, _Wrong):
                return int(typed) if f.type == BOOL else typed  # a condition column holds 0/1
            if f.type == DATE:
                self.error(where, f"expected a date, got {json.dumps(value, ensure_ascii=False)}", column)
            else:
                fix = ", without quotes" if typed.quoted else ""
                self.error(where, f"expected true or false{fix}, got {yaml_value(value)}", column)
            return None
        if f.type == NUMBER:
            return self.number(value, where, nullable=True)
        if f.type in (ID, TEXT) and where.text is not None:
            return where.text  # a CSV cell: the text as written, e.g. the id 007 (read as the number 7)
        if f.type == ID:
            if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
                self.error(where, f"a customer id must be text or a whole number, got {json.dumps(value, ensure_ascii=False)}")
                return None
            return str(value)
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        self.error(where, f"expected text, got {json.dumps(value, ensure_ascii=False)}", column)
        return None

    def unmapped(self, f: Field, where: Where) -> None:
        """A value given for a field the policy's data mapping has no column for."""
        self.error(where, f"the policy maps no column for {f.name} ({f.mapping} is null), so the test database has "
                          f"none: remove the value, or map the column in the policy's data section", f.name)

    def generator_value(self, name: str, value: Any, where: Where) -> Any:
        kind = GENERATORS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(where, f"expected a number, got {json.dumps(value, ensure_ascii=False)}", name)
            return None
        if kind == "count" and (value != int(value) or value < 0):
            self.error(where, f"expected a whole number >= 0, got {yaml_value(value)}", name)
            return None
        problem = _generator_limit(name, value)
        if problem:
            self.error(where, problem, name)
            return None
        return int(value) if kind == "count" else value

    # -- CSV files
    def read_csv(self, ref: str, where: Where) -> tuple[str, list[Where], list[str], list[list[tuple[Any, Where]]]] | None:
        """(display name, header, each header cell's place, rows of (value, place)) of a CSV file relative to the test file."""
        target = Path(ref)
        if not target.is_absolute():
            target = self.path.parent / target
        display = str(target)
        source = CsvFile(target)
        try:
            records = list(source.records())  # (the line each starts on, its cells), or where it is broken
            lines = target.read_text(encoding="utf-8-sig").splitlines()
        except FileNotFoundError:
            self.error(where, f"CSV file {ref!r} not found (looked for {target})")
            return None
        except DataError as exc:  # not UTF-8, an unclosed quote, a workbook: with its line and the fix
            self.error(where, f"CSV file {ref!r}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return None
        except OSError as exc:
            self.error(where, f"cannot read CSV file {ref!r}: {exc.strerror}")
            return None
        rows: list[list[tuple[Any, Where]]] = []
        header: list[str] | None = None
        header_where: list[Where] = []
        body: list[tuple[list[str], list[Where]]] = []
        for line, cells in records:
            if not any(c.strip() for c in cells):
                continue
            starts = _field_columns(lines[line - 1], source.delimiter) if line <= len(lines) else []
            places = [Where(Position(display, line, starts[j] if j < len(starts) else 1), "") for j in range(len(cells))]
            if header is None:
                header = [c.strip() for c in cells]
                header_where = [Where(w.pos, h) for w, h in zip(places, header)]
                continue
            body.append((cells, places))
        commas = _decimal_comma_columns([cells for cells, _ in body]) if source.delimiter == ";" else set()
        for cells, places in body:
            row = []
            for j, (c, w) in enumerate(zip(cells, places)):
                value = _csv_cell(canonical(c.strip()) if j in commas else c)
                cell = Where(w.pos, header[j] if j < len(header) else "", csv=True, text=c.strip())
                if not _finite(value):  # 1e999: a number too large for a float
                    self.error(cell, f"must be a finite number, got {c.strip()}")
                    self.reported.add(cell.pos)  # the cell is read as empty: no second problem about it
                    value = None
                row.append((value, cell))
            rows.append(row)
        if header is None:
            self.error(where, f"CSV file {ref!r} is empty (it needs a header row)")
            return None
        return display, header_where, header, rows

    def history_defaults(self, table: str) -> list:
        """A row of ``table`` before its values: the test file's defaults, then none for the source's own columns."""
        return list(HISTORY_DEFAULTS[table]) + [None] * (len(self.layout[table].fields) - len(HISTORY_COLUMNS[table]))

    def unknown_field(self, table: str, name: str, where: Where) -> None:
        names = self.layout[table].names
        self.error(where, f"unknown column {name!r} for {table}{did_you_mean(name, names + list(self.layout[table].aliases))}; "
                          f"columns: {', '.join(names)}")

    def csv_history(self, table: str, ref: str, where: Where) -> list[tuple[tuple, list[Where]]]:
        loaded = self.read_csv(ref, where)
        if loaded is None:
            return []
        display, header_where, header, rows = loaded
        layout = self.layout[table]
        names = layout.names
        index: list[int] = []
        ok = True
        for h, w in zip(header, header_where):
            f = layout.find(h)
            if f is None:
                self.unknown_field(table, h, w)
                ok = False
            elif names.index(f.name) in index:
                self.error(w, f"column {h!r} is {f.name}, which an earlier column already gives")
                ok = False
            index.append(names.index(f.name) if f is not None else -1)
        missing = [c for i, c in enumerate(names[: HISTORY_REQUIRED[table]]) if i not in index]
        if missing:
            self.error(Where(Position(display, 1, 1), ""), f"{table} CSV needs the column(s) {', '.join(missing)}")
        if not ok or missing:
            return []
        out = []
        for cells in rows:
            if len(cells) != len(header):
                self.error(Where(cells[0][1].pos, ""), f"{len(cells)} values for {len(header)} columns ({', '.join(header)})")
                continue
            row = self.history_defaults(table)
            wheres = [Where(cells[0][1].pos, c, csv=True) for c in names]
            for i, (cell, w) in zip(index, cells):
                if cell is not None:
                    row[i] = cell
                wheres[i] = w
            out.append((tuple(row), wheres))
        return out

    def history_rows(self, table: str, items: list, path: tuple) -> list[tuple[tuple, list[Where]]]:
        """YAML rows of a history: lists of the positional fields, or mappings by name (the source's own
        columns too)."""
        layout = self.layout[table]
        names = layout.names
        out = []
        for j, r in enumerate(items):
            rpath = path + (j,)
            if isinstance(r, dict):
                row = self.history_defaults(table)
                wheres = [self.at(rpath, key=True) for _ in names]
                given: dict[int, str] = {}
                for key, value in r.items():
                    f = layout.find(key)
                    if f is None:
                        self.unknown_field(table, key, self.at(rpath + (key,), key=True))
                        continue
                    i = names.index(f.name)
                    if i in given:
                        self.error(self.at(rpath + (key,), key=True), f"{key!r} and {given[i]!r} are both {f.name}")
                        continue
                    given[i] = key
                    row[i] = value
                    wheres[i] = self.at(rpath + (key,))
                out.append((tuple(row), wheres))
            else:
                out.append((tuple(r), [self.at(rpath + ((k,) if k < len(r) else ())) for k in range(len(names))]))
        return out

    # -- cases
    def customer_field(self, name: str, where: Where) -> Field | None:
        """The customer value a test file names (an attribute of the policy's data mapping, id, name, ...)."""
        f = self.layout["customers"].find(name)
        if f is None:
            layout = self.layout["customers"]
            names = [f.name for f in layout.fields if f.column]
            also = {field_: alias for alias, field_ in layout.aliases.items()}
            shown = [f"{n} (or {also[n]})" if n in also else n for n in names]
            self.error(where, f"unknown customer column {name!r}{did_you_mean(name, names + list(layout.aliases))}; "
                              f"a customer has: {', '.join(shown)} (declare another attribute under "
                              f"data.customers.attributes of the policy)")
        return f

    def entries(self, items: list[dict], base: tuple, defaults: _Entry, background: bool) -> list[_Entry]:
        out: list[_Entry] = []
        for i, item in enumerate(items):
            path = base + (i,)
            fallback = f"population {i + 1}" if background else f"case {i + 1}"
            entry = self.entry(item, path, defaults, item.get("name", fallback))
            if "table" in item:
                out += self.table_rows(item, path, entry, background)
            else:
                out.append(entry)
        return out

    def entry(self, item: dict, path: tuple, base: _Entry, name: str) -> _Entry:
        """A case's own values over ``base`` (the file's defaults)."""
        e = _Entry(name, self.at(path))
        e.customer = dict(base.customer)
        e.customer_where = dict(base.customer_where)
        e.histories = {t: list(rows) for t, rows in base.histories.items()}
        e.generate, e.generate_where = dict(base.generate), dict(base.generate_where)
        given: dict[str, str] = {}
        for column, value in item.get("customer", {}).items():
            f = self.customer_field(column, self.at(path + ("customer", column), key=True))
            if f is None:
                continue
            if f.name in given:
                self.error(self.at(path + ("customer", column), key=True),
                           f"{column!r} and {given[f.name]!r} both set {f.name}: give one")
                continue
            given[f.name] = column
            w = self.at(path + ("customer", column))
            e.customer[f.name] = (value, w)
            e.customer_where[f.name] = w
        for table in HISTORY_COLUMNS:
            rows: list[tuple[tuple, list[Where]]] | None = None
            if table in item:
                rows = self.history_rows(table, item[table], path + (table,))
            if f"{table}_csv" in item:
                rows = (rows or []) + self.csv_history(table, item[f"{table}_csv"], self.at(path + (f"{table}_csv",)))
            if rows is not None:
                e.histories[table] = rows
        for name_, value in item.get("generate", {}).items():
            e.generate[name_] = value
            e.generate_where[name_] = self.at(path + ("generate", name_))
        for key, value in item.get("expect", {}).items():
            e.expect[key] = value
            e.expect_where[key] = self.at(path + ("expect", key))
        return e

    def table_rows(self, item: dict, path: tuple, shared: _Entry, background: bool) -> list[_Entry]:
        table = item["table"]
        tpath = path + ("table",)
        if "csv" in table:
            if "rows" in table or "columns" in table:
                self.error(self.at(tpath + ("csv",), key=True), "give either `csv` or `columns` and `rows`, not both")
                return []
            loaded = self.read_csv(table["csv"], self.at(tpath + ("csv",)))
            if loaded is None:
                return []
            display, column_where, columns, cells = loaded
            if not cells:
                self.error(self.at(tpath + ("csv",)), f"CSV file {table['csv']!r} has no rows")
                return []
            row_where = [Where(row[0][1].pos, "") for row in cells]
            from_csv = True
        else:
            if "columns" not in table or "rows" not in table:
                self.error(self.at(tpath, key=True), "a table needs `columns` and `rows` (or a `csv` file)")
                return []
            columns = table["columns"]
            column_where = [self.at(tpath + ("columns", j)) for j in range(len(columns))]
            cells = [[(v, self.at(tpath + ("rows", r, j))) for j, v in enumerate(row)] for r, row in enumerate(table["rows"])]
            row_where = [self.at(tpath + ("rows", r)) for r in range(len(table["rows"]))]
            from_csv = False
        targets = []
        ok = True
        for column, w in zip(columns, column_where):
            target = self.column_target(column)
            if target is None:
                known = ["name", "id", *self.layout["customers"].names[2:], *GENERATORS, "expect.tier", "expect.subgrade",
                         "expect.stage", "expect.service_level", "expect.actions"]
                self.error(w, f"unknown column {column!r}{did_you_mean(column, known)}: use name, id, a customer column "
                              f"(customer.X), a generator ({', '.join(GENERATORS)}) or expect.X")
                ok = False
            elif target[0] == "expect" and background:
                self.error(w, "population customers are not checked: remove the expect column")
                ok = False
            elif target in targets:
                first = columns[targets.index(target)]
                self.error(w, f"column {column!r} appears twice" if first == column else
                              f"columns {first!r} and {column!r} set the same value ({target[1]})")
                ok = False
            targets.append(target)
        if not ok:
            return []
        out = []
        for r, (row, rw) in enumerate(zip(cells, row_where)):
            if len(row) != len(columns):
                self.error(rw, f"row has {len(row)} values for {len(columns)} columns ({', '.join(columns)})")
                continue
            label = next((w.text if w.text is not None else str(v) for (v, w), t in zip(row, targets)
                          if t == ("case", "name") and v not in (None, "")), str(r + 1))
            e = _Entry(f"{shared.name}[{label}]", rw)
            e.customer, e.customer_where = dict(shared.customer), dict(shared.customer_where)
            e.histories = {t: list(rows_) for t, rows_ in shared.histories.items()}
            e.generate, e.generate_where = dict(shared.generate), dict(shared.generate_where)
            e.expect, e.expect_where = dict(shared.expect), dict(shared.expect_where)
            for (value, w), (kind, key) in zip(row, targets):
                if kind == "case":
                    continue
                if value is None and (from_csv or kind == "generate"):
                    continue  # an empty cell leaves the value unset
                if kind == "customer":
                    e.customer[key] = (value, w)
                    e.customer_where[key] = w
                elif kind == "generate":
                    e.generate[key] = value
                    e.generate_where[key] = w
                else:
                    if key in ("actions", "actions_include") and isinstance(value, str):  # "a; b", or "[]" for none
                        value = [] if value.strip() == "[]" else split_list_cell(value)
                    e.expect[key] = value
                    e.expect_where[key] = w
            out.append(e)
        return out

    def column_target(self, column: str) -> tuple[str, str] | None:
        """Which part of a case a table column sets."""
        customers = self.layout["customers"]
        if column == "name":
            return ("case", "name")
        if column.startswith("customer.") and customers.find(column[len("customer."):]) is not None:
            return ("customer", customers.find(column[len("customer."):]).name)
        if column.startswith("generate.") and column[len("generate."):] in GENERATORS:
            return ("generate", column[len("generate."):])
        if column in GENERATORS:
            return ("generate", column)
        if customers.find(column) is not None:
            return ("customer", customers.find(column).name)
        if column.startswith("expect.") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column[len("expect."):]):
            return ("expect", column[len("expect."):])
        return None

    def build(self, e: _Entry, background: bool) -> Case:
        customer = {}
        for column, raw in e.customer.items():
            explicit = isinstance(raw, tuple)
            value, w = raw if explicit else (raw, Where(e.where.pos, e.where.path))
            f = self.layout["customers"].find(column)
            if f.column is None:  # the policy removed the attribute: only a value the file gives is a problem
                if explicit and value is not None:
                    self.unmapped(f, w)
                continue
            customer[column] = self.column_value(f, value, w)
        histories: dict[str, list[tuple]] = {}
        for table, rows in e.histories.items():
            fields = self.layout[table].fields
            defaults = self.history_defaults(table)
            converted = []
            for row, wheres in rows:
                values = []
                for f, value, w, default in zip(fields, list(row) + defaults[len(row):], wheres, defaults):
                    if value is None and not f.nullable:
                        self.error(w, f"{table}: {f.name} is required")
                        values.append(None)
                        continue
                    if f.column is None and value is not None and value != default:
                        self.unmapped(f, w)
                    value = self.column_value(f, value, w)
                    values.append(default if value is None else value)  # null: the default (cost 0, kind annual)
                converted.append(tuple(values))
            histories[table] = converted
        generated = self.generated(e, background)
        for table, rows in generated.items():
            pad = self.history_defaults(table)
            histories[table] = histories.get(table, []) + [tuple(row) + tuple(pad[len(row):]) for row in rows]
        expect = {}
        for key, value in e.expect.items():
            if key in ("actions", "actions_include"):
                if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                    self.error(e.expect_where[key], f"{key}: expected a list of action names")
                    continue
                value = sorted(set(value))
            elif key in GRADES + ("credit_outcome",) and value is not None and not isinstance(value, str):
                text = e.expect_where[key].text
                value = text if text is not None else str(value)
            elif isinstance(value, list):
                self.error(e.expect_where[key], f"{key}: expected a value, got a list")
                continue
            expect[key] = value
        return Case(e.name, "", customer, histories, expect, dict(e.expect_where), e.where, background)

    def generated(self, e: _Entry, background: bool) -> dict[str, list[tuple]]:
        g: dict[str, Any] = {}
        for name, value in e.generate.items():
            checked = self.generator_value(name, value, e.generate_where[name])
            if checked is not None:
                g[name] = checked
        where = lambda name: e.generate_where.get(name, e.where)  # noqa: E731
        out: dict[str, list[tuple]] = {}
        revenue = Decimal(str(g.get("revenue_12m", 0)))
        n = g.get("orders_12m", 1 if revenue != 0 else 0)
        recency = g.get("recency_days")
        rows = (n if n > 0 else recency is not None) + g.get("complaints_12m", 0) + g.get("referrals_12m", 0)
        if self.generated_rows + rows > MAX_FILE_GENERATED_ROWS:
            if self.generated_rows <= MAX_FILE_GENERATED_ROWS:  # said once, at the case that goes beyond
                biggest = max((k for k in _COUNTED if k in g), key=lambda k: g[k], default=None)
                self.error(where(biggest) if biggest else e.where,
                           f"the generated rows of this file come to more than {MAX_FILE_GENERATED_ROWS:,} with this "
                           f"{'population customer' if background else 'case'}: a test database that big takes long "
                           f"to build and grade; generate fewer orders and interactions per customer", biggest)
            self.generated_rows = MAX_FILE_GENERATED_ROWS + 1
            return out
        self.generated_rows += rows
        if n > 0:
            last = min(30, GENERATED_SPAN_DAYS // n) if recency is None else recency
            if last > GENERATED_SPAN_DAYS:
                self.error(where("recency_days"), f"recency_days {last} is beyond the generated 12-month orders "
                           f"(at most {GENERATED_SPAN_DAYS}); set orders_12m: 0 for a customer whose last order is older")
                return out
            margin = g.get("margin_12m")
            if margin is not None and self.layout["orders"].find("cost").column is None:
                self.unmapped(self.layout["orders"].find("cost"), where("margin_12m"))
            orders = []
            for days, total in _order_plan(n, last, revenue):
                amounts = _split(total, len(days))
                profits = _split(total * Decimal(str(margin)), len(days)) if margin is not None else amounts
                orders += [(shifted(self.as_of, -d, "days"),
                            _num(a), _num(a - p), 0) for d, a, p in zip(days, amounts, profits)]
            out["orders"] = orders
        else:
            if revenue != 0:
                self.error(where("orders_12m"), "revenue_12m needs at least one order: orders_12m must be 1 or more")
            if "margin_12m" in g:
                self.error(where("margin_12m"), "margin_12m applies to generated orders; there are none (orders_12m: 0)")
            if recency is not None:
                if recency < 366:
                    self.error(where("recency_days"), f"with no orders in the last 12 months the last order must be older: "
                               f"recency_days at least 366, got {recency}")
                else:
                    date = shifted(self.as_of, -recency, "days")
                    out["orders"] = [(date, 0, 0, 0)]
        interactions = []
        for name, kind in (("complaints_12m", "complaint"), ("referrals_12m", "referral")):
            for d in _spread(g.get(name, 0), INTERACTION_FIRST_DAY, GENERATED_SPAN_DAYS):
                interactions.append((shifted(self.as_of, -d, "days"), kind))
        if interactions:
            out["interactions"] = interactions
        return out


def yaml_value(value: Any) -> str:
    """A value as a test file writes it: true, false, null, 'quoted text', 180000, 0.25."""
    if isinstance(value, str):
        return value_text(value)  # quoted: '180000' is text, 180000 a number
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"  # as YAML writes them
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    return value_text(value)  # true, false, null


def _field_columns(line: str, delimiter: str) -> list[int]:
    """1-based column where each field of a CSV line starts (quotes respected)."""
    starts, quoted = [1], False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            starts.append(i + 2)
    return starts


def _csv_cell(text: str) -> Any:
    """A CSV cell as a value: empty -> None, numbers -> numbers, anything else text."""
    t = text.strip()
    if t == "":
        return None
    if re.fullmatch(r"[+-]?[0-9]+", t):
        return int(t)
    if re.fullmatch(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?", t):
        return float(t)
    return t


def _decimal_comma_columns(rows: list[list[str]]) -> set[int]:
    """The columns of a ';'-separated table whose numbers are written with a decimal comma (12,5 and 1.234,56), as
    Excel writes them in most of Europe; the rules are import's (:mod:`csv_decimal_comma`)."""
    width = max((len(r) for r in rows), default=0)
    columns = [DecimalCommaColumn(lambda n: len(n.lstrip("-").replace(".", "")) <= 15) for _ in range(width)]
    for cells in rows:
        for column, cell in zip(columns, cells):
            if cell.strip():
                column.observe(cell.strip())
    return {j for j, applies in enumerate(read_with_decimal_comma(columns)) if applies}


def _finite(value: Any) -> bool:
    """False for a float that is infinite or not a number (YAML .inf, -.inf, .nan; 1e999 in a CSV cell)."""
    return not isinstance(value, float) or math.isfinite(value)


def _spread(n: int, first: int, last: int) -> list[int]:
    """n days before as_of, the latest ``first`` days before it, evenly back to ``last``."""
    if n <= 0:
        return []
    if n == 1:
        return [first]
    return [first + (last - first) * i // (n - 1) for i in range(n)]


def _order_plan(n: int, last: int, revenue: Decimal) -> list[tuple[list[int], Decimal]]:
    """Days (before as_of) and total amount of the generated orders, in one or two groups.

    Half of the revenue falls in the last 6 months (ceil(n/2) orders from ``last`` to 175 days before as_of)
    and half in the 6 months before (the other orders, 190 to 360 days before), so a 6-month trend of the
    generated orders is 0 (and missing for a single order).  When the latest order is older than 175 days,
    every order falls in the earlier half.
    """
    if n == 1:
        return [([last], revenue)]
    if last > RECENT_HALF_DAYS:
        return [(_spread(n, last, GENERATED_SPAN_DAYS), revenue)]
    recent = (n + 1) // 2
    half = revenue / 2
    return [(_spread(recent, last, RECENT_HALF_DAYS), revenue - half),
            (_spread(n - recent, EARLIER_HALF_DAYS, GENERATED_SPAN_DAYS), half)]


def _split(total: Decimal, n: int) -> list[Decimal]:
    """``total`` in n parts that add up exactly (whole numbers when the total is whole, else cents)."""
    unit = Decimal(1) if total == total.to_integral_value() else Decimal("0.01")
    part = (total / n).quantize(unit, rounding=ROUND_FLOOR)
    parts = [part] * n
    parts[0] += total - part * n
    return parts


def _num(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


def _slug(text: str) -> str:
    return re.sub(r"[^\w]+", "-", text.lower(), flags=re.UNICODE).strip("-")


def _default_policy_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(TEST_SUFFIX)] + ".yaml")


def _defaults_entry(loader: _Loader, data: dict) -> _Entry:
    base = _Entry("", loader.at(()))
    base.customer = dict(DEFAULT_CUSTOMER)
    if "defaults" in data:
        d = loader.entry(data["defaults"], ("defaults",), base, "")
        d.expect, d.expect_where = {}, {}
        return d
    return base


def invalid_test_file(problems: list[Diagnostic] | Diagnostic, hint: str | None = None) -> PolicyError:
    """The PolicyError of problems in policy test files and the CSV files they read (each at its file:line:col).

    Its ``subject`` names those files, for the CLI's summary line (``error: 1 problem in cards.csv``): a CSV file
    a test file reads is not "the policy", which is what a lone file not named *.test.yaml is taken for.
    """
    problems = [problems] if isinstance(problems, Diagnostic) else problems
    return PolicyError(problems, hint=hint, subject=", ".join(sorted({d.file for d in problems})))


TEST_FILE_HINT = ("a test file gives as_of and cases (`crm-rules schema --test` prints the JSON Schema of test files); "
                  "start from a shipped one, e.g. the vip_card.test.yaml that `crm-rules demo` copies next to its policy")


def _read_test_yaml(path: Path, display: str) -> SourceDocument:
    """The YAML of a test file; what load_yaml_file says of a policy (an empty file, a database) said of a test file."""
    _refuse_other_kind(display, path, "a policy test file")  # a database or a workbook named *.test.yaml
    try:
        return load_yaml_file(path, display_name=display)
    except PolicyError as exc:
        hint = exc.hint or ""
        if any(d.message == "the file is empty" for d in exc.diagnostics):
            hint = TEST_FILE_HINT
        elif hint.startswith("a policy is a few hundred lines"):  # a file over the size limit
            hint = "a test file is a few hundred lines; is this the right file? Many cases fit in a CSV table (table: {csv: cases.csv})"
        else:
            hint = hint.replace("policies hold plain data", "test files hold plain data")
        raise invalid_test_file(exc.diagnostics, hint=hint or None) from None


def _number_problems(doc: SourceDocument, schema_problems: list[Diagnostic]) -> list[Diagnostic]:
    """Numbers of the YAML no value can be: .inf, -.inf and .nan anywhere (JSON Schema takes them for numbers),
    and generators beyond their limits (the schema's maximum says no why).  They replace the schema's problem
    at the same place, unless that one says a number does not belong there at all (a quoted text does)."""
    by_path: dict[str, list[Diagnostic]] = {}
    for d in schema_problems:
        by_path.setdefault(d.path, []).append(d)
    out: list[Diagnostic] = []

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, path + (i,))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            problem = None
            if not _finite(value):
                wanted = [d for d in by_path.get(format_path(path), []) if d.message.startswith("expected ")]
                if wanted and not any(w in d.message.split(", got")[0] for d in wanted for w in ("number", "integer")):
                    return  # e.g. "expected string or null, got a number": the schema's problem says it
                problem = f"must be a finite number, got {yaml_value(value)}"
            elif _is_generator_path(path):
                problem = _generator_limit(path[-1], value)
            if problem:
                pos = doc.value_position(path)
                out.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), problem))

    walk(doc.data, ())
    return out


def _grouped_problems(doc: SourceDocument) -> list[Diagnostic]:
    """Each number of a [ ] list written with a thousands separator: `orders: [[-10d, 5,000]]` is an order of 5 with a
    cost of 0 (and `[-10d, 1,500, 1,000]` a row too long); a test file's lists take no such number, so it is refused,
    with both readings, rather than tested as something nobody meant."""
    out = []
    for path, written in sorted(doc.grouped.items(), key=lambda item: (doc.value_position(item[0]).line, doc.value_position(item[0]).col)):
        parts = written.split(",")
        pos = doc.value_position(path)
        out.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path),
                              f"{written!r} reads as {len(parts)} values, {', '.join(parts)}, since ',' separates the "
                              f"values of a [ ] list; write the number without thousands separators, "
                              f"{''.join(parts)} (or {'_'.join(parts)}); if they are {len(parts)} values, put a "
                              f"space after each comma: {', '.join(parts)}"))
    return out


def _long_rows(doc: SourceDocument, problems: list[Diagnostic]) -> list[Diagnostic]:
    """``problems`` with "is too long" of a history row written as a list said as what it is: a row with more
    values than the list form's fields (`[-9d, visit, 2]` for an interaction with a score), which is written by
    name, with the policy's own columns (``{date: -9d, kind: visit, score: 2}``)."""
    rows = {format_path(path): path for path in doc.values
            if len(path) >= 2 and path[-2] in HISTORY_COLUMNS and isinstance(path[-1], int)}
    out = []
    for d in problems:
        path = rows.get(d.path) if d.message.endswith(" is too long") else None
        value = value_at(doc.data, path) if path else None
        if not isinstance(value, list):
            out.append(d)
            continue
        source = path[-2]
        fields = HISTORY_COLUMNS[source]
        named = [f"{name}: {_plain(v)}" for name, v in zip(fields, value)]
        named += [f"COLUMN{i + 1}: {_plain(v)}" if len(value) > len(fields) + 1 else f"COLUMN: {_plain(v)}"
                  for i, v in enumerate(value[len(fields):])]
        out.append(replace(d, message=(
            f"[{', '.join(_plain(v) for v in value)}] has {len(value)} values, but a row of {source} written as a list "
            f"holds at most {len(fields)} ({', '.join(fields)}); write a row with the policy's own columns by name, "
            f"e.g. {{{', '.join(named)}}}, COLUMN being a name of data.{source}.columns")))
    return out


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _is_generator_path(path: tuple) -> bool:
    """defaults.generate.X, cases[i].generate.X, population[i].generate.X"""
    return (len(path) >= 3 and path[-2] == "generate" and path[-1] in GENERATORS
            and (path[:-2] == ("defaults",) or (len(path) == 4 and path[0] in ("cases", "population")
                                                 and isinstance(path[1], int))))


def load_test_file(path: Path, display: str | None = None) -> PolicyTestFile:
    """Read, validate and expand one test file; raises PolicyError (invalid_test_file) with every problem
    (file:line:col), or the policy's own PolicyError when the policy it tests is invalid."""
    path = Path(path)
    display = display or str(path)
    doc = _read_test_yaml(path, display)
    if not isinstance(doc.data, dict):
        raise invalid_test_file(Diagnostic(display, 1, 1, "", "a test file must be a mapping (policy, as_of, cases, ...)"),
                              hint=TEST_FILE_HINT)
    problems = _long_rows(doc, validate_document(doc, SCHEMA_NAME))
    numbers = _number_problems(doc, problems) + _grouped_problems(doc)
    if numbers:
        replaced = {d.path for d in numbers} | {format_path(path[:-1]) for path in doc.grouped}  # ("is too long")
        problems = [d for d in problems if d.path not in replaced] + numbers
    if problems:
        raise invalid_test_file(problems, hint="`crm-rules schema --test` prints the format of test files (a JSON Schema); "
                                                  "`crm-rules demo` copies the shipped policies' test files, to start from")
    data = doc.data
    loader = _Loader(path, doc)
    loader.as_of = data["as_of"]
    if not is_iso_date(loader.as_of):
        loader.error(loader.at(("as_of",)), f"{loader.as_of!r} is not a real date")
        raise invalid_test_file(loader.problems)
    hint = None
    if "policy" in data:
        problem = _not_a_policy(data["policy"], path)
        policy_path = None if problem else resolve_policy_path(data["policy"], path)
        if problem:
            loader.error(loader.at(("policy",)), problem[0])
            hint = problem[1]
        elif policy_path is None:
            loader.error(loader.at(("policy",)), f"cannot find policy {data['policy']!r} (a path relative to this file, "
                                                 f"or a shipped policy name)")
    else:
        policy_path = _default_policy_path(path)
        if not policy_path.is_file():
            loader.error(loader.at((), key=True), f"no policy {policy_path.name} next to this test file; "
                                                   f"name the policy with `policy:`")
            policy_path = None
    if loader.problems:
        raise invalid_test_file(loader.problems, hint=hint)
    policy = load_policy(policy_path)
    loader.layout = database_layout(policy.data)
    defaults = _defaults_entry(loader, data)
    cases = loader.entries(data["cases"], ("cases",), defaults, background=False)
    population = loader.entries(data.get("population", []), ("population",), defaults, background=True)
    built = [loader.build(e, False) for e in cases]
    back = [loader.build(e, True) for e in population]
    _assign_ids(loader, built, back)
    _check_expectations(loader, policy, built)
    if loader.problems:
        raise invalid_test_file(loader.problems)
    return PolicyTestFile(path, display, policy, policy_path, loader.as_of, built, back, data.get("description", ""),
                          loader.layout)


def _not_a_policy(ref: str, test_file: Path) -> tuple[str, str] | None:
    """(problem, hint) when a test file's `policy:` names a test file or a directory, not a policy; else None."""
    if is_test_file(ref):
        policy = ref[: -len(TEST_SUFFIX)] + ".yaml" if ref.endswith(TEST_SUFFIX) else ref[: -len(".test")]
        found = policy and resolve_policy_path(policy, test_file)
        return (f"{ref!r} is a policy test file, not a policy",
                f"`policy:` names the policy this file tests: did you mean `policy: {policy}`?" if found and found.is_file()
                else "`policy:` names the policy this file tests (a YAML file, or a shipped policy's name), not a test file")
    target = Path(ref) if Path(ref).is_absolute() else test_file.parent / ref
    if target.is_dir():
        inside = policy_files_in(target)
        shown = ref.rstrip("/\\")
        return (f"{ref!r} is a directory, not a policy file",
                f"name a policy file in it, e.g. `policy: {shown}/{inside[0]}`" if inside else
                "`policy:` names a policy file (.yaml) or a shipped policy, not a directory")
    return None


def _assign_ids(loader: _Loader, cases: list[Case], population: list[Case]) -> None:
    names: dict[str, Case] = {}
    for case in cases:
        if case.name in names:
            loader.error(case.where, f"duplicate case name {case.name!r} (first at {names[case.name].where})")
        names.setdefault(case.name, case)
    taken: dict[str, Case] = {}
    for case in cases + population:  # explicit ids first
        cid = case.customer.get("id")
        if cid is not None:
            if cid in taken:
                loader.error(case.where, f"customer id {cid!r} is also used by {taken[cid].name!r} ({taken[cid].where})")
            taken[cid] = case
            case.customer_id = cid
    for i, case in enumerate(cases + population):
        if case.customer_id:
            continue
        base = _slug(case.name) or f"case-{i + 1}"
        if case.background:
            base = base if base.startswith("population") else f"population-{base}"
        cid, n = base, 2
        while cid in taken:
            cid, n = f"{base}-{n}", n + 1
        taken[cid] = case
        case.customer_id = cid
    for case in cases + population:
        case.customer["id"] = case.customer_id
        if "name" not in case.customer:
            case.customer["name"] = case.name


def _action_names(policy: Policy) -> set[str] | None:
    """The actions the policy can generate, when every generator declares them (SQL actions); else None."""
    names: set[str] = set()
    for step in policy.action_steps:
        if not isinstance(step.plan, SqlActions):
            return None
        names |= {a.action for a in step.plan.actions}
    return names


def credit_outcome_name(policy: Policy) -> str | None:
    """The output holding the outcome of the policy's credit check (``<entry>_outcome``), if there is one."""
    if "credit_outcome" in policy.outputs:
        return "credit_outcome"
    found = [f"{s.entry}_outcome" for s in policy.plugin_steps if s.section == "credit" and f"{s.entry}_outcome" in policy.outputs]
    return found[0] if len(found) == 1 else None


def _no_credit_outcome(policy: Policy) -> str:
    """Why ``expect.credit_outcome`` names no output of ``policy``, and which of its outputs to name instead."""
    checks = [s.entry for s in policy.plugin_steps if s.section == "credit"]
    outcomes = [f"{c}_outcome" for c in checks if f"{c}_outcome" in policy.outputs]
    if len(outcomes) > 1:
        return (f"the policy has {len(outcomes)} credit checks ({', '.join(checks)}), so credit_outcome could be "
                f"either: expect the outcome of one by name instead ({', '.join(outcomes)})")
    named = sorted(n for n in policy.outputs if n.endswith("_outcome"))
    if checks:
        what = f"the policy's credit check {checks[0]!r} gives no outcome output"
    else:
        what = "the policy has no credit check, so there is no credit outcome to expect"
    return what + (f"; its outcome outputs: {', '.join(named)}" if named else
                   ": remove credit_outcome, or expect a grade, metric or plugin output the policy has")


def _check_expectations(loader: _Loader, policy: Policy, cases: list[Case]) -> None:
    tiers = [t.id for t in policy.tiers]
    subgrades = {s.id: t.id for t in policy.tiers for s in t.subgrades}
    stages = [s.id for s in policy.stages]
    services = list(dict.fromkeys(s.id for s in policy.service_levels))  # an entry for several tiers: one id
    actions = _action_names(policy)
    names = {n for n, m in policy.metrics.items() if not m.internal} | set(policy.outputs) | set(policy.data.attributes)
    types = policy.scope()
    for case in cases:
        if not case.expect:
            loader.error(case.where, f"case {case.name!r} checks nothing: give `expect` (tier, stage, ...)")
        for key, value in case.expect.items():
            w = case.expect_where[key]
            if key == "tier" and value is None:
                loader.error(w, f"every customer gets a tier, so none (null) cannot be expected; tiers: {', '.join(tiers)}")
            elif key == "tier" and value not in tiers:
                loader.error(w, f"unknown tier {value!r}{did_you_mean(str(value), tiers)}; tiers: {', '.join(tiers)}")
            elif key == "subgrade" and value is not None:
                if value not in subgrades:
                    known = list(subgrades)
                    loader.error(w, f"unknown sub-grade {value!r}{did_you_mean(str(value), known)}"
                                    + (f"; sub-grades: {', '.join(known)}" if known else "; the policy has no sub-grades"))
                elif case.expect.get("tier") in tiers and subgrades[value] != case.expect["tier"]:
                    loader.error(w, f"sub-grade {value!r} belongs to tier {subgrades[value]!r}, not {case.expect['tier']!r}")
            elif key == "stage" and value is not None and value not in stages:
                loader.error(w, f"unknown stage {value!r}{did_you_mean(str(value), stages)}"
                                + (f"; stages: {', '.join(stages)}" if stages else "; the policy has no lifecycle section"))
            elif key == "service_level" and value is not None and value not in services:
                loader.error(w, f"unknown service level {value!r}{did_you_mean(str(value), services)}")
            elif key == "credit_outcome" and credit_outcome_name(policy) is None:
                loader.error(w, _no_credit_outcome(policy))
            elif key in ("actions", "actions_include") and actions is not None:
                for a in value:
                    if a not in actions:
                        loader.error(w, f"the policy generates no action {a!r}{did_you_mean(a, sorted(actions))}; "
                                        f"actions: {', '.join(sorted(actions)) or '(none)'}")
            elif key not in SPECIAL_EXPECT:
                if key not in names:
                    loader.error(w, f"unknown name {key!r}{did_you_mean(key, sorted(names))}: expect a grade "
                                    f"({', '.join(SPECIAL_EXPECT)}) or a metric, plugin output or attribute of the policy")
                else:
                    what = "metric" if key in policy.metrics else "plugin output" if key in policy.outputs else "attribute"
                    case.expect[key] = _expected_value(loader, key, value, types.get(key), what, w)


_TYPE_NAMES = {NUMBER: "a number", TEXT: "text", DATE: "a date", BOOL: "true or false"}
_KIND_NAMES = {NUMBER: "numeric", TEXT: "text", DATE: "date", BOOL: "true/false"}


def _expected_value(loader: _Loader, key: str, value: Any, type_: str | None, what: str, w: Where) -> Any:
    """An expected metric, output or attribute value checked against the type of what it checks (``what``:
    metric, plugin output, attribute): the value to compare (a relative date counted from as_of, a CSV cell
    read as the type), or the value unchanged after reporting a problem with its fix."""
    if value is None or type_ not in _TYPE_NAMES:
        return value  # null expects no value
    expected = f"expected {_TYPE_NAMES[type_]} ({key} is a {_KIND_NAMES[type_]} {what})"
    got = f"the text {yaml_value(value)}" if isinstance(value, str) else yaml_value(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, dict):
        if type_ != NUMBER:
            loader.error(w, f"{expected}, got the range {yaml_value(value)}: a range is for numbers")
        elif "approx" in value and ("min" in value or "max" in value):
            loader.error(w, "give either approx (and tolerance) or min/max, not both")
        elif "tolerance" in value and "approx" not in value:
            loader.error(w, "tolerance goes with approx")
        elif "min" in value and "max" in value and value["min"] > value["max"]:
            swapped = {"min": value["max"], "max": value["min"]}
            loader.error(w, f"min {yaml_value(value['min'])} is above max {yaml_value(value['max'])}, so no value can "
                            f"pass: write {yaml_value(swapped)}")
        return value
    if type_ == NUMBER:
        if number:
            return value
        spelt = _number_text(value) if isinstance(value, str) else None
        fix = (f"write {spelt}, without quotes" if spelt is not None else
               f"write the number it must be (e.g. {key}: 12) or a range (e.g. {key}: {{min: 1}})" if isinstance(value, bool)
               else "write a number, {min: a, max: b} or {approx: x, tolerance: t}")
        loader.error(w, f"{expected}, got {got}: {fix}")
        return value
    if type_ in (BOOL, DATE):
        typed = loader.typed(value, type_, w)
        if not isinstance(typed, _Wrong):
            return value if typed is None else typed  # None: no date, which loader.date reported
        fix = (f"write {typed.quoted}, without quotes" if typed.quoted else "write true or false" if type_ == BOOL
               else "write YYYY-MM-DD or a date relative to as_of such as -30d")
        loader.error(w, f"{expected}, got {got}: {fix}")
        return value
    if type_ == TEXT:
        if isinstance(value, str):
            return value
        if number and w.csv:  # a CSV cell such as 100: the text it shows
            return w.text if w.text is not None else str(value)
        fix = (f"write {yaml_value(str(value))}, in quotes" if number else
               "quote the text (YAML reads yes/no/on/off unquoted as true/false)")
        loader.error(w, f"{expected}, got {got}: {fix}")
    return value


def _number_text(text: str) -> str | None:
    """The number a text spells (180000, 180_000, 1,234.5, 3.5e6), written as YAML reads a number; else None."""
    value = _csv_cell(text.replace("_", "").replace(",", ""))
    return yaml_value(value) if isinstance(value, (int, float)) else None
