"""Checks of the user's data that a run cannot do without.

SQLite reads 'abc' as 0 and skips a row whose date is NULL without a word;
a grade computed from such data would look fine and be wrong.  Each source's
rows are checked by a scan that runs beside the metrics' scans (source_scans),
and the customers table by one scan before them (check_customers); each
answers yes or no.  Only when one finds something are the bad rows counted
(one more scan of that table) and examples looked up: each example names its
row, and a problem with more rows than examples ends with how many there are
in all and the query that lists them.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .csv_decimal_comma import FORMATTED_NUMBER
from .csv_erp_values import amount, is_marked_amount, iso_date
from .data_binding import Binding
from .data_mapping import SOURCE_FIELDS, WINDOW_FIELD, Column, Table
from .database import RunConnection, table_columns
from .errors import DataError
from .expr_sql import quote_identifier as q
from .expr_types import BOOL, DATE, NUMBER, with_article
from .metric_sql import (BAD_ROWS, DATE_PROBLEM, NUMBER_PROBLEM, has_offset_sql, CID, DATED, DATED_ROWS, DROPPED, MetricPlan,
                         bad_date_sql, bad_number_sql, column_affinity, matched_column)
from .policy_model import Policy
from .row_names import row_column, row_name
from . import data_freshness, number_overflow
from .filter_notes import unmatched_filter_notes
from .source_filters import RowFilter, dropped_note, sql_literal, written_out
from .yaml_source import format_path

EXAMPLES = 3

#: A number stored as text: the text of a well-formed number (what SQLite's arithmetic reads in full).
_NUMERIC_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _fail(problems: list[str], hint: str) -> None:
    if problems:
        raise DataError("the data cannot be used as it is:\n  - " + "\n  - ".join(problems), hint=hint)


def bad_attribute_sql(col: str, type_: str) -> str | None:
    """True for a value of a customer attribute of ``type_`` that conditions would compare wrongly; None: any value.

    - number: text or a blob (bad_number_sql, as for a source's number columns).  A condition compares
      text as greater than every number ('lots' > 1000000), and a number stored as text ('5000', in a
      column without a type or declared TEXT) compares as text too ('5000' > '1000000').
    - bool: anything but 0, 1 or NULL, the values the engine writes for false and true (a policy's
      ``true`` is the parameter 1; a plugin's bool output is stored as 0 or 1): 'yes' or 'true' would be
      neither equal to true nor to false.
    - date: not ISO text (bad_date_sql).
    """
    if type_ == NUMBER:
        return bad_number_sql(col)
    if type_ == BOOL:
        return f"{col} NOT IN (0, 1)"
    if type_ == DATE:
        return bad_date_sql(col)
    return None


@dataclass(frozen=True)
class _Check:
    """One test of a table's rows: ``sql`` (over alias ``r``) is true for a bad row."""

    column: str
    sql: str
    what: str  # the problem ("has no id"), or the type of the attribute whose values are checked
    label: str = ""  # "table 't', column 'c'" as the lines of this check start; default from table and column
    params: dict = field(default_factory=dict, compare=False)  # of a source's filter in ``sql`` (_filtered)
    kept: str = ""  # the source's filter (true for a row it keeps) when ``sql`` looks at those rows only (_filtered)
    # the date check this one was split from (split_dates): when the other parts found no row, it lists the same
    # rows in a third of the SQL, which the user copies
    whole: str = ""


def _and_more(total: int, shown: int, what: str, listing: str, own_line: bool = False) -> str:
    """What follows the examples when they are not all: how many more, how many in all, and the query that
    lists them all; "" when they are all.

    After the examples on their line: " and 2 more (5 ids in all; list them with: Q)".  On a line of its own
    the query ends the line, out of the parentheses, to be copied as it stands:
    "... and 2 more (5 rows in all); list them with: Q".
    """
    if total <= shown:
        return ""
    more = f"and {total - shown:,} more ({total:,} {what} in all"
    return f"... {more}); list them with: {listing}" if own_line else f" {more}; list them with: {listing})"


def _listing(table: str, row_col: str | None, sql: str, params: dict | None = None) -> str:
    """The query that lists the rows: values a source's filter binds are written out, for it to run as it stands."""
    return f"SELECT {'rowid, ' if row_col == 'rowid' else ''}* FROM {q(table)} AS r WHERE {written_out(sql, params or {})}"


def _counts(conn: sqlite3.Connection, table_sql: str, checks: list[_Check]) -> list[int]:
    """How many rows fail each check: one scan for all of them."""
    params = {k: v for c in checks for k, v in c.params.items()}
    return list(conn.execute(f"SELECT {', '.join(f'count(CASE WHEN {c.sql} THEN 1 END)' for c in checks)} "
                             f"FROM {table_sql} AS r", params).fetchone())


def _customer_checks(policy: Policy, binding: Binding) -> list[_Check]:
    cust = policy.data.customers
    checks = [_Check(cust.key, f"r.{q(cust.key)} IS NULL", "has no id")]
    for name, column in binding.attributes.items():
        # every date attribute, as before (``since`` is read by tenure and the as-of note without being named
        # in a condition); numbers and bools where the policy reads them
        if column.type != DATE and name not in binding.used:
            continue
        sql = bad_attribute_sql(f"r.{q(column.column)}", column.type)
        if sql is None:
            continue
        attribute = f" (attribute {name!r})" if name != column.column else ""
        checks.append(_Check(column.column, sql, column.type, f"table {cust.table!r}, column {column.column!r}{attribute}"))
    return checks


#: The problem of a date with a time-zone offset, told apart from the other bad dates (split_dates).
OFFSET_PROBLEM = "has a time-zone offset, which is not supported"
OFFSET_FIX = ("time-zone offsets are not supported: store the local date/time without the offset "
              "('2026-06-01T07:00:00', not '2026-06-01T07:00:00+08:00')")


#: The problem of empty text or a zero date (MySQL's '0000-00-00') where a date belongs: NULL is "no date".
EMPTY_DATE_PROBLEM = "is empty text or a zero date, not a date (NULL is no date)"


def split_dates(checks: list[_Check], date_what: str) -> list[_Check]:
    """``checks`` with each date check (what ``date_what``) split by the fix its rows need: dates with a
    time-zone offset, empty text and zero dates (which mean "no date", and must be NULL to mean it to the
    metrics: an unpaid invoice's paid date, an open-ended contract's end), then the other bad dates.

    Only for the examples and counts, once a check has found bad rows: the checks that run on every row
    test a date column once (bad_date_sql), and the split costs nothing when the data is good.
    """
    out = []
    for check in checks:
        if check.what != date_what:
            out.append(check)
            continue
        col = f"r.{q(check.column)}"
        offset = f"({check.sql}) AND typeof({col}) = 'text' AND date({col}) IS NOT NULL AND {has_offset_sql(col)}"
        empty = f"({check.sql}) AND typeof({col}) = 'text' AND trim({col}) IN ('', {_ZERO_DATES})"
        out.append(replace(check, sql=offset, what=OFFSET_PROBLEM))
        out.append(replace(check, sql=empty, what=EMPTY_DATE_PROBLEM))
        out.append(replace(check, sql=f"({check.sql}) AND NOT coalesce({offset}, 0) AND NOT coalesce({empty}, 0)",
                           whole=check.sql))
    return out


_ZERO_DATES = "'0000-00-00', '0000-00-00 00:00:00'"


def _attribute_problem(type_: str, value) -> str:
    if type_ in (OFFSET_PROBLEM, EMPTY_DATE_PROBLEM):
        return type_
    if type_ == DATE:
        return "is not a YYYY-MM-DD date"
    if type_ == BOOL:
        return "is not true or false (store 1 for true, 0 for false)"
    if isinstance(value, str) and not value.strip():
        return "is not a number but empty text (store NULL for a value that is unknown)"
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        return "is text, not a number (a number stored as text compares as text: '5000' > '1000000')"
    if isinstance(value, str) and FORMATTED_NUMBER.fullmatch(value.strip()):
        return "is not a number: it is written with a decimal comma or thousands separators"
    return "is not a number"


#: Formats one example of a check's bad rows, less the check's label: (check, customer id, the checked
#: column's value, the row's name or None when no column tells rows apart) -> text.
_LineFor = Callable[[_Check, object, object, str | None], str]


def _example_lines(conn: sqlite3.Connection, binding: Binding, t: Table, checks: list[_Check], noun: str,
                   line_for: _LineFor) -> tuple[list[str], list[_Check]]:
    """The lines on the bad rows of table ``t`` (a check found some): for each check that has bad rows, up to
    EXAMPLES of them, each named by its row, then how many more ``noun`` there are and the query that lists
    them all; and the checks that have bad rows.

    The rows of every check are counted in one scan; only the checks that have rows are looked up.
    """
    table = binding.table(t.table)
    row_col = row_column(conn, binding.schema, t.table, t.key)
    row_sql = f"r.{q(row_col)}" if row_col else "NULL"
    lines, failed = [], []
    counts = _counts(conn, table, checks)
    # columns with dates split off from their check that some row has (split_dates): the rest of it is not the whole
    split_off = {c.column for c, n in zip(checks, counts) if n and c.what in (OFFSET_PROBLEM, EMPTY_DATE_PROBLEM)}
    for check, total in zip(checks, counts):
        if not total:
            continue
        failed.append(check)
        label = check.label or f"table {t.table!r}, column {check.column!r}"
        rows = conn.execute(f"SELECT r.{q(t.key)}, r.{q(check.column)}, {row_sql} FROM {table} AS r "
                            f"WHERE {check.sql} LIMIT {EXAMPLES}", check.params).fetchall()
        shown = [f"{label}: {line_for(check, cid, value, row_name(row_col, row) if row_col else None)}"
                 for cid, value, row in rows]
        shown = list(dict.fromkeys(shown))  # rows that nothing tells apart (a view without an id) are one line
        more = ""
        if total > len(shown):
            whole = check.whole if check.whole and check.column not in split_off else check.sql
            listing = _listing_by_value(conn, table, t.table, row_col, check) or _listing(
                t.table, row_col, whole, check.params)
            more = _and_more(total, len(shown), noun, listing, own_line=True)
        lines += shown + ([f"{label}: {more}"] if more else [])
    return lines, failed


#: The most distinct bad values a listing names one by one, instead of repeating the check's SQL.
_LISTED_VALUES = 10
_DATE_PROBLEMS = (DATE_PROBLEM, OFFSET_PROBLEM, EMPTY_DATE_PROBLEM, DATE)


def _listing_by_value(conn: sqlite3.Connection, table_sql: str, table: str, row_col: str | None,
                      check: _Check) -> str | None:
    """A short query listing the rows of a date check that has a few bad values: ``WHERE col IN (...)``.

    The check's own SQL (a date's round trip, the time-zone and empty-text tests) ran to several hundred
    characters, which a user copies and cannot read.  A date's check depends on the value alone, so the rows
    with those values are exactly the bad ones (among the rows a source's filter keeps, when the check looks at
    those only: the filter, written out, stays in the listing); not so for a number column, whose affinity would
    match the text '5000' with the good number 5000.  None when there are more values than _LISTED_VALUES (one
    more scan of the bad rows, on a run that fails anyway).
    """
    if check.what not in _DATE_PROBLEMS:
        return None
    values = [v for (v,) in conn.execute(f"SELECT DISTINCT r.{q(check.column)} FROM {table_sql} AS r "
                                         f"WHERE {check.sql} LIMIT {_LISTED_VALUES + 1}", check.params)]
    if len(values) > _LISTED_VALUES or not all(isinstance(v, (str, int)) for v in values):
        return None
    listed = f"r.{q(check.column)} IN ({', '.join(map(sql_literal, values))})"
    return _listing(table, row_col, f"{check.kept} AND {listed}" if check.kept else listed, check.params)


def _customer_line(check: _Check, cid, value, where: str | None) -> str:
    if check.what == "has no id":
        return f"empty (NULL) in {where or 'a row'}; every customer needs an id"
    who = f"customer {cid}" if cid is not None else f"{where or 'a row'}, without an id"
    return f"{value!r} ({who}) {_attribute_problem(check.what, value)}"


def check_customers(rc: RunConnection, policy: Policy, binding: Binding) -> None:
    """Before any metric: the customers table has rows, ids, readable date attributes, and number and bool
    attributes (those the policy reads) that hold numbers and 1/0.

    One scan of the customers table answers for every check (a check is one more expression per row);
    only when it finds something are the rows counted and examples looked up.
    """
    conn, cust = rc.conn, policy.data.customers
    table = binding.table(cust.table)
    if conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
        raise DataError(f"the customers table {cust.table!r} is empty: there is nobody to grade",
                        hint="import your customers first (crm-rules import customers.csv --db ... --table customers)")
    checks = _customer_checks(policy, binding)
    if not conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table} AS r WHERE "
                        f"{' OR '.join(f'({c.sql})' for c in checks)})").fetchone()[0]:
        return
    problems, failed_checks = _example_lines(conn, binding, cust, split_dates(checks, DATE), "customers", _customer_line)
    failed = {check.what for check in failed_checks}
    fixes = [fix for what, fix in _CUSTOMER_FIXES.items() if what in failed]
    fixes[:0] = _value_fixes(conn, binding, cust, failed_checks)
    _fail(problems, "; ".join(fixes) + ("; or map the attribute to another column" if failed - {"has no id"} else ""))


#: What each failed check of the customers table asks for, in the hint.
_CUSTOMER_FIXES = {
    "has no id": "give every customer an id",
    DATE: "store dates as text 'YYYY-MM-DD'",
    OFFSET_PROBLEM: OFFSET_FIX,
    EMPTY_DATE_PROBLEM: "store NULL for a date that is unknown, not empty text or a zero date",
    NUMBER: "store numbers as numbers, not text (a column declared TEXT holds every number as text: re-import "
            "it as a number column), NULL where unknown",
    BOOL: "store true as 1 and false as 0 (NULL where unknown)",
}


def check_declared_types(conn: sqlite3.Connection, policy: Policy, binding: Binding) -> None:
    """``validate --db``: no number column the policy reads is declared TEXT, from the schema alone.

    Such a column stores every number as text ('1819.16', as ``sqlite3 .import`` makes its columns), which
    conditions compare as text; a run refuses its rows (the row checks, with examples and counts), and
    validate, which reads no rows, can tell from the declared type already.
    """
    columns = {(policy.data.customers.table, c.column): "" for name, c in binding.attributes.items()
               if c.type == NUMBER and name in binding.used}
    for source in sorted(binding.sources):
        t = policy.data.sources[source]
        for f in sorted(binding.fields.get(source, ())):
            if f in t.columns and t.columns[f].type == NUMBER:
                columns.setdefault((t.table, t.columns[f].column), _typed_column(source, t.columns[f]))
    declared_text = [(table, column, typed) for (table, column), typed in columns.items()
                     if column_affinity(conn, binding.table(table), column) == "TEXT"]
    _fail([f"table {table!r}, column {column!r} is declared TEXT, which stores every number as text (a number "
           f"stored as text compares as text: '5000' > '1000000'); a run refuses its rows"
           + (f"; if it holds dates or text, not numbers, give it its type: {typed}" if typed else "")
           for table, column, typed in declared_text],
          f"store numbers as numbers: {_import_again([column for _, column, _ in declared_text], one=len(declared_text) == 1)}"
          + ("; or give a column of dates or text its type in data.<source>.columns (one without a type is a number)"
             if any(typed for _, _, typed in declared_text) else ""))


def _typed_column(source: str, column: Column) -> str:
    """For a column of ``data.<source>.columns`` read as a number: its entry written with a date type, "" for a
    field of the source (an amount is a number whatever the mapping says).

    A column there without a type is a number: ``cancelled_at: 取消日期`` reads a column of dates as numbers, which
    a run refuses as text in a number column; the fix is then the type, not an import that stores numbers.
    """
    if column.name in SOURCE_FIELDS[source]:
        return ""
    return f"data.{source}.columns.{column.name}: {{column: {column.column}, type: date}} (or type: text)"


def _import_again(columns: list[str], one: bool) -> str:
    """The fix of number columns declared TEXT, where an UPDATE would store text again."""
    flags = " ".join(dict.fromkeys(f"--type {column}=float" for column in columns))
    return (f"import {'it' if one else 'them'} again with crm-rules import --replace, which stores numbers as numbers "
            f"({flags} if it takes a column for text; float also reads amounts written ¥1,234.50)")


def check_rows(rc: RunConnection, policy: Policy, binding: Binding, plan: MetricPlan, as_of: str) -> list[str]:
    """After the scans: no unreadable rows, ids are unique (then the per-customer table has its index by
    id), and every row's customer exists.

    Returns notes on data that a run can use but that point to a mistake: a mistyped ``--as-of`` (a year too
    early grades everyone on nothing, or customers before they joined), a source table that is empty (an
    export of a period without rows, a header-only file or the wrong table mapped grades every customer on nothing) or a metric's filter that keeps none
    of its rows (the policy's codes are not the data's: filter_notes); the run looks as valid as any other.  They are notes, not errors: an empty table or one with no row yet can be right (no contracts
    yet, a backfill from before the first invoice).
    """
    conn, problems, fixes = rc.conn, [], []
    dated = {}  # source -> whether some row is dated on or before the as-of date
    run_dates = {"as_of": as_of, "as_of_next": conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]}
    dropped_notes = []  # what each source's filter (data.<source>.where) dropped
    all_dropped: set[str] = set()
    for source, table in plan.checks.items():
        bad, dated[source] = conn.execute(f"SELECT total({BAD_ROWS}), max({DATED}) FROM {table}").fetchone()
        if dated[source] is None:  # the scan kept only such rows (metric_sql: SourceAggregation.check)
            dated[source] = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {plan.aggregates[source]})").fetchone()[0]
        rf = plan.sources[source].filter
        if rf is not None:
            rows, dropped = conn.execute(f"SELECT {DATED_ROWS}, {DROPPED} FROM {table}").fetchone()
            dropped_notes.append(dropped_note(rf, policy.data.sources[source].table, dropped, rows, as_of))
            dated[source] = rows > 0  # whatever the filter keeps: its note says when it keeps none of them
            if rows and dropped == rows:
                all_dropped.add(source)  # its metrics' own filters keep none either: said once, by that note
        if bad:
            lines, source_fixes = _source_problems(conn, policy.data.sources[source], binding, plan.problems[source],
                                                   rf, run_dates)
            problems += lines
            fixes += source_fixes
    _fail(problems, "; ".join(dict.fromkeys(_number_fixes(fixes) + ["fix or remove these rows, or re-import them"])))
    _check_unique_ids(conn, policy, binding, plan)
    customers = binding.table(policy.data.customers.table)
    key = q(policy.data.customers.key)
    # Ids are unique now, so an aggregate has a row of an unknown customer exactly when it has more rows
    # than the customers the join found in it: one pass over the customers instead of a lookup per row.
    sources = list(plan.aggregates)
    # The same pass counts the customers who joined after the as-of date (a "since" later than it).
    since = [f"total({q('since')} > :as_of)"] if "since" in plan.attributes else []
    # ... and those without one, whose tenure is then unknown: a rule `tenure_years < 2` matches none of them
    tenures = [m.name for m in policy.metrics.values() if m.kind == "tenure"] if binding.tenure_from_since else []
    if since and tenures:
        since.append(f"total({q('since')} IS NULL)")
    # ... and the total of each sum (or other metric) that can pass the largest number (number_overflow)
    overflowing = number_overflow.overflowing(policy)
    totals = [number_overflow.total_sql(m) for m in overflowing]
    # ... and each source's latest row, by the recency metric on it (data_freshness)
    latest = data_freshness.terms(policy)
    terms = [f'total({q(matched_column(s))})' for s in sources] + totals + latest + since
    found = list(conn.execute(f"SELECT {', '.join(terms)} FROM temp.{q(plan.base)}", {"as_of": as_of}).fetchone()
                 if terms else ())
    after_totals = len(sources) + len(totals)
    after_latest = after_totals + len(latest)
    found, totals, latest, since_counts = (found[:len(sources)], found[len(sources):after_totals],
                                           found[after_totals:after_latest], found[after_latest:])
    notes = data_freshness.stale_notes(policy, as_of, latest)
    if since and tenures and (no_since := int(since_counts.pop())):
        notes.append(f"{no_since:,} customer(s) have no {binding.attributes['since'].column!r} (NULL): their "
                     f"{', '.join(tenures)} {'is' if len(tenures) == 1 else 'are'} empty, so no rule on "
                     f"{'it' if len(tenures) == 1 else 'them'} matches them; fill the dates in, or say what they get, "
                     f"e.g. `{tenures[0]} is null or {tenures[0]} < 2`")
    if since and (joined_later := int(since_counts.pop())):
        notes.append(f"{joined_later:,} customer(s) joined after the as-of date {as_of} (their "
                     f"{binding.attributes['since'].column!r} is later): they are graded before they existed, "
                     f"with a negative tenure; is --as-of right?")
    empty, undated = [], []  # empty tables; tables of which no row is dated on or before the as-of date
    removals = []  # the DELETE of each source's rows of unknown customers, for the hint
    nothing_yet: set[str] = set()  # the sources of ``undated``
    for source, matched in zip(sources, found):
        table = plan.aggregates[source]
        t = policy.data.sources[source]
        if not plan.sources[source].rows:
            empty.append(source)
        elif not dated[source]:
            nothing_yet.add(source)
            # by the date that places its rows in time (WINDOW_FIELD), whatever dates its metrics' windows use
            undated.append(f"{t.table!r} (by {t.columns[WINDOW_FIELD[source]].column})")
        unknown = conn.execute(f"SELECT count({CID}) FROM {table}").fetchone()[0] - int(matched)
        if not unknown:
            continue
        orphans = conn.execute(f"SELECT a.{CID} FROM {table} AS a WHERE a.{CID} IS NOT NULL AND NOT EXISTS "
                               f"(SELECT 1 FROM {customers} AS c WHERE c.{key} = a.{CID}) LIMIT {EXAMPLES}").fetchall()
        if orphans:
            rf = plan.sources[source].filter  # the rows it drops are not looked at: not listed either
            kept = "" if rf is None else f" AND {rf.shown(rf.sql, run_dates)}"
            ids = ", ".join(repr(o[0]) for o in orphans) + _and_more(
                unknown, len(orphans), "unknown customer ids", f"SELECT DISTINCT r.{q(t.key)} FROM {q(t.table)} AS r "
                f"WHERE r.{q(t.key)} NOT IN (SELECT {key} FROM {q(policy.data.customers.table)}){kept}")
            problems.append(f"table {t.table!r} has rows for customers that are not in {policy.data.customers.table!r}: "
                            f"{ids}{_written_otherwise(conn, customers, key, policy.data.customers.table, t, orphans)}")
            removals.append(f"DELETE FROM {q(t.table)} WHERE {q(t.key)} NOT IN (SELECT {key} FROM "
                            f"{q(policy.data.customers.table)})")
    _fail(problems, "add the missing customers (an export of the customers that left some out?), or remove their rows "
                    f"({'; '.join(removals)}); a typo in an id?")
    _fail(number_overflow.problems(conn, policy, binding, f"temp.{q(plan.base)}", overflowing, totals, run_dates),
          "correct the wrong values (no amount of money comes near 1e308), or remove their rows, then run again")
    if empty:
        notes.append(_empty_note(policy, binding, empty))
    if undated:
        notes.append(f"no row of {', '.join(sorted(undated))} is dated on or before the as-of date {as_of}: "
                     f"{'its' if len(undated) == 1 else 'their'} metrics are empty for every customer; is --as-of right?")
    notes += dropped_notes
    # the filters that keep no row of a source that has rows by then (those without are noted above)
    notes += unmatched_filter_notes(conn, policy, binding, plan, as_of, skip=set(empty) | nothing_yet | all_dropped)
    return notes


def _written_otherwise(conn: sqlite3.Connection, customers: str, key: str, table: str, source: Table,
                       orphans: list[tuple]) -> str:
    """'; 'K00001' is 'K00001 ' in 'customers' (spaces around it)': an unknown id that is a customer's id written
    another way, which an operator who sees K00001 in both tables cannot tell from the message alone."""
    for (orphan,) in orphans:
        row = conn.execute(f"SELECT c.{key} FROM {customers} AS c WHERE trim(CAST(c.{key} AS TEXT)) = "
                           f"trim(CAST(? AS TEXT)) COLLATE NOCASE LIMIT 1", (orphan,)).fetchone()
        if row is None:
            continue
        found = row[0]
        if type(found) is not type(orphan):
            kind = {str: "text", bytes: "blob"}
            how = f"{kind.get(type(found), 'a number')} there, {kind.get(type(orphan), 'a number')} here"
            fix = "store the ids of both tables as text (or both as numbers)"
        elif str(found).strip() != str(orphan).strip():
            how, fix = "in other capitals", "write each id the same way in every table"
        elif isinstance(found, str) and found != found.strip():
            how, fix = "with spaces around it", f"trim the ids, e.g. UPDATE {q(table)} SET {key} = trim({key})"
        else:
            how, fix = "without the spaces", f"trim the ids, e.g. UPDATE {q(source.table)} SET {q(source.key)} = trim({q(source.key)})"
        return f"; {orphan!r} is {found!r} in {table!r} ({how}): {fix}"
    return ""


def _empty_note(policy: Policy, binding: Binding, sources: list[str]) -> str:
    """The note on source tables without a single row: which tables, the metrics left empty by them, and
    what usually leaves a table so and its fix.

    Not a failed import: an import is all-or-nothing and leaves a table as it was when it fails.  An export of
    a period without rows, or a file of only its header (which ``import`` notes), empties a table on purpose;
    a mapping to the wrong table looks the same.
    """
    tables = ", ".join(sorted(repr(policy.data.sources[s].table) for s in sources))
    names = list(dict.fromkeys(format_path(m.path) if m.internal else m.name  # a plugin's by its policy entry
                               for m in policy.metrics.values() if m.source in sources or (
                                   m.kind == "tenure" and "orders" in sources and not binding.tenure_from_since)))
    metrics = ", ".join(names[:EXAMPLES]) + (f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else "")
    one = len(sources) == 1
    mapping = f"data.{sources[0]}.table" if one else "data.<source>.table"
    table = policy.data.sources[sources[0]].table if one else "TABLE"
    return (f"the {'table' if one else 'tables'} {tables} {'is' if one else 'are'} empty (no rows at all): "
            f"{'its' if one else 'their'} metrics{f' ({metrics})' if metrics else ''} are empty for every customer, "
            f"as if nobody had any; if that is not so, the likely causes are an export of a period with no rows, a "
            f"file of only its header imported, or {mapping} naming the wrong table: import the file with the rows "
            f"(crm-rules import FILE --db DB --table {table} --replace) or map {mapping} to the table that holds them")


def _source_problems(conn: sqlite3.Connection, t: Table, binding: Binding, problems: list[tuple[str, str, str]],
                     rf: RowFilter | None = None, dates: dict | None = None) -> tuple[list[str], list[str | _NumberFix]]:
    """The lines on one source's bad rows (its row check found some): up to EXAMPLES rows of each problem,
    each named by its row, then how many more and the query that lists them all; and the fix of each
    problem found, for the hint.  ``rf``: the source's filter, whose dropped rows are checked only in the
    columns it reads (metric_sql._filtered_check), as the run's check did."""
    checks = split_dates([_filtered(_Check(column, sql, what), rf, dates) for column, what, sql in problems],
                         DATE_PROBLEM)
    lines, failed = _example_lines(conn, binding, t, checks, "rows", _source_line)
    required = {column for column, what, _ in problems if what.startswith("has no ")}
    handled: set[str] = set()
    seen = _value_fixes(conn, binding, t, failed, handled)
    failed = [check for check in failed if check.column not in handled]
    return lines, [*seen, *(_source_fix(conn, binding, t, check, check.column in required) for check in failed)]


def _filtered(check: _Check, rf: RowFilter | None, dates: dict | None) -> _Check:
    """``check`` of the rows ``rf`` keeps, unless it checks a column the filter reads (then of every row)."""
    if rf is None or check.column in rf.columns:
        return check
    return _Check(check.column, f"{rf.sql} AND ({check.sql})", check.what, check.label, {**rf.params, **(dates or {})},
                  rf.sql)


#: How many of a failed check's values tell what they are (_value_fixes)
_SAMPLE = 50


def _value_fixes(conn: sqlite3.Connection, binding: Binding, t: Table, checks: list[_Check],
                 handled: set[str] | None = None) -> list[str]:
    """The fixes the bad values of table ``t`` point to, before the general ones.

    An ERP export loaded as it is holds dates written '2025/03/29' and amounts written '¥21,411.17', which
    ``crm-rules import --type COL=date`` (or ``=float``) stores right: one command for the table, whatever
    columns need it.  Numbers in every row of a date column, or dates in every row of a number column, are a
    ``data:`` mapping naming the wrong column.  The columns these fixes are for are added to ``handled``: their
    general fix would mislead (an UPDATE with CAST reads '¥1,234.50' as 0).
    """
    fixes, flags, found = [], [], []
    table = binding.table(t.table)
    for check in checks:
        if check.what not in (DATE, DATE_PROBLEM, NUMBER, NUMBER_PROBLEM):
            continue
        dates = check.what in (DATE, DATE_PROBLEM)
        values = [v for (v,) in conn.execute(f"SELECT r.{q(check.column)} FROM {table} AS r WHERE {check.sql} "
                                             f"LIMIT {_SAMPLE}", check.params)]
        if not values:
            continue
        if all(isinstance(v, (int, float)) if dates else isinstance(v, str) and iso_date(v) for v in values) \
                and _every_value_fails(conn, table, check):
            fixes.append(_mapping_fix(conn, binding, t, check.column, dates))
            if handled is not None:
                handled.add(check.column)
        elif not all(isinstance(v, str) for v in values):
            continue
        elif dates and all(iso_date(v) for v in values):
            if handled is not None:
                handled.add(check.column)
            flags.append(shlex.quote(f"{check.column}=date"))
            found.append(f"{check.column!r} dates written year first ({values[0]!r} is stored as {iso_date(values[0])!r})")
        elif not dates and all(amount(v) is not None for v in values) and any(map(is_marked_amount, values)):
            if handled is not None:
                handled.add(check.column)
            flags.append(shlex.quote(f"{check.column}=float"))
            example = next(v for v in values if is_marked_amount(v))
            found.append(f"{check.column!r} amounts with a currency sign or thousands separators ({example!r} is "
                         f"stored as {float(amount(example))!r})")
    if flags:
        fixes.insert(0, f"{t.table!r} holds {' and '.join(found)}: import {t.table}.csv again with crm-rules import "
                        f"{t.table}.csv --db ... --table {shlex.quote(t.table)} --replace "
                        + " ".join(f"--type {flag}" for flag in flags)
                        + " (the file the table came from, with the options of that import too: --encoding, "
                          "--skip-totals, its other --types)")
    return fixes


def _every_value_fails(conn: sqlite3.Connection, table: str, check: _Check) -> bool:
    """Every value of the checked column fails the check (a mapping to the wrong column, not a few bad rows)."""
    col = f"r.{q(check.column)}"
    return conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {table} AS r WHERE {col} IS NOT NULL "
                        f"AND NOT coalesce(({check.sql}), 0))", check.params).fetchone()[0] == 1


def _mapping_fix(conn: sqlite3.Connection, binding: Binding, t: Table, column: str, dates: bool) -> str:
    """Name the key of the policy that maps ``column``, and the columns of the table that hold what it needs
    (told from their first value)."""
    table = binding.table(t.table)
    key = f"data.{t.concept}"
    for name, c in t.columns.items():
        if c.column == column and c.type == (DATE if dates else NUMBER):
            key = (f"data.customers.attributes.{name}" if t.concept == "customers" else f"data.{t.concept}.{name}"
                   if name in SOURCE_FIELDS.get(t.concept, {}) else f"data.{t.concept}.columns.{name}")
            break
    candidates = []
    for name in table_columns(conn, binding.schema, t.table) or []:  # the source's schema: the run attaches it
        first = conn.execute(f"SELECT r.{q(name)} FROM {table} AS r WHERE r.{q(name)} IS NOT NULL LIMIT 1").fetchone()
        value = first[0] if first else None
        if name != column and (isinstance(value, str) and iso_date(value) is not None if dates
                               else isinstance(value, (int, float))):
            candidates.append(repr(name))
    need, holds = ("dates", "numbers") if dates else ("numbers", "dates")
    typed = "" if dates or t.concept == "customers" else next(
        (_typed_column(t.concept, c) for c in t.columns.values() if c.column == column and c.type == NUMBER), "")
    return (f"every value of {t.table!r}.{column!r} is {'a number' if dates else 'a date'}: {key} names a column of {holds}, not of {need}; "
            + (f"if the policy reads it as a date, give it its type: {typed}; otherwise " if typed else "")
            + f"map it to the column that holds the {need}"
            + (f" ({', '.join(candidates[:5])} in {t.table!r})" if candidates else ""))


def _source_line(check: _Check, cid, value, where: str | None) -> str:
    if check.what.startswith("has no "):
        of = f" (customer {cid})" if cid is not None else ""
        return f"empty (NULL) in {where or 'a row'}{of}; every row needs {with_article(check.what[len('has no '):])}"
    what = _attribute_problem(NUMBER, value) if check.what == NUMBER_PROBLEM else check.what
    return f"{value!r} (customer {cid}) {what}" + (f" ({where})" if where else "")


def _source_fix(conn: sqlite3.Connection, binding: Binding, t: Table, check: _Check, required: bool) -> str | _NumberFix:
    """What the hint asks for about a failed check of source table ``t`` (_number_fixes merges those of numbers);
    ``required``: the checked column must not be NULL either."""
    table, column = q(t.table), q(check.column)
    if check.column == t.key and check.what.startswith("has no "):
        return (f"give every row of {t.table!r} its customer id, or remove the rows without one "
                f"(DELETE FROM {table} WHERE {column} IS NULL)")
    if check.what.startswith("has no "):
        return f"fill in the empty (NULL) {check.column!r} of {t.table!r}, or remove those rows"
    if check.what == NUMBER_PROBLEM:
        return _NumberFix(t.table, check.column, column_affinity(conn, binding.table(t.table), check.column) == "TEXT")
    if check.what == OFFSET_PROBLEM:
        return OFFSET_FIX
    if check.what == EMPTY_DATE_PROBLEM and required:
        return f"every row of {t.table!r} needs its {check.column!r}: store the date, or remove those rows"
    if check.what == EMPTY_DATE_PROBLEM:
        return (f"store NULL for no date (an unpaid invoice's paid date, an open-ended contract's end), not empty text "
                f"or a zero date, e.g. UPDATE {table} SET {column} = NULL WHERE trim({column}) IN ('', {_ZERO_DATES})")
    return "store dates as text 'YYYY-MM-DD'"


@dataclass(frozen=True)
class _NumberFix:
    """A number column holding text, whose fix is merged with the others' into one (_number_fixes)."""

    table: str
    column: str
    declared_text: bool  # every number in it is text, and an UPDATE would store text again


def _number_fixes(fixes: list[str | _NumberFix]) -> list[str]:
    """The fixes with those of number columns stored as text merged into one: the columns declared TEXT are
    imported again; the others' values converted where they are."""
    numbers = [fix for fix in fixes if isinstance(fix, _NumberFix)]
    if not numbers:
        return list(fixes)
    advice = []
    declared = [fix for fix in numbers if fix.declared_text]
    if declared:
        names = ", ".join(f"{fix.table}.{fix.column}" for fix in declared)
        one = len(declared) == 1
        advice.append(f"{names} {'is' if one else 'are'} declared TEXT, which stores every number as text: "
                      f"{_import_again([fix.column for fix in declared], one)}")
    for fix in numbers:
        if not fix.declared_text:
            table, column = q(fix.table), q(fix.column)
            advice.append(f"convert {fix.table}.{fix.column} in place: UPDATE {table} SET {column} = CAST({column} AS "
                          f"REAL) WHERE typeof({column}) = 'text' (once text that is no number is fixed: CAST reads "
                          f"'abc' as 0, and '1,200.50' as 1)")
    merged = "store numbers as numbers, not text: " + "; ".join(advice)
    return list(dict.fromkeys(merged if isinstance(fix, _NumberFix) else fix for fix in fixes))


def _check_unique_ids(conn: sqlite3.Connection, policy: Policy, binding: Binding, plan: MetricPlan) -> None:
    """Customer ids are unique, also when read as text: the number 2 and the text '2' (a column without a
    type keeps both) are two customers to SQLite's unique index, but the export shows two customers 2 and
    explain, which is given an id as text, finds only one of them.

    Building the unique index of the per-customer table is the first check.  Ids of two types can only
    be in it when its smallest id is a number and its largest is text (numbers sort before text): two
    lookups in that index; only then is each number's text looked up in it.
    """
    cust = policy.data.customers
    base = f"temp.{q(plan.base)}"
    try:  # the index explain and overrides find a customer by; building it is the check, the examples come after
        conn.execute(plan.key_index().sql)
    except sqlite3.IntegrityError:
        customers = conn.execute(f"SELECT count(*) FROM {binding.table(cust.table)}").fetchone()[0]
        if conn.execute(f"SELECT count(*) FROM {base}").fetchone()[0] > customers:
            _joined_twice(conn, policy, binding, plan)  # a customer in a row per group of a source: not their fault
        dupes = conn.execute(f"SELECT {CID}, count(*) FROM {base} GROUP BY {CID} HAVING count(*) > 1 "
                             f"LIMIT {EXAMPLES}").fetchall()
        total = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {base} GROUP BY {CID} HAVING count(*) > 1)").fetchone()[0]
        rows = _rows_of_ids(conn, binding, cust, row_column(conn, binding.schema, cust.table, cust.key),
                            [cid for cid, _ in dupes], ": ", policy.data.customer_name)
        ids = ", ".join(f"{cid!r} ({n} times{names})" for (cid, n), names in zip(dupes, rows))
        _duplicates(cust, ids, total, len(dupes), f"SELECT {q(cust.key)}, count(*) FROM {q(cust.table)} "
                                                  f"GROUP BY {q(cust.key)} HAVING count(*) > 1",
                    hint_more=_removing_copies(conn, binding, cust))
    lowest, highest = conn.execute(f"SELECT (SELECT min({CID}) FROM {base}), (SELECT max({CID}) FROM {base})").fetchone()
    if not (isinstance(lowest, (int, float)) and isinstance(highest, (str, bytes))):
        return
    # a number's text equal to a text id (the text is its own id: not the number, whatever the column's type)
    same = (f"FROM {base} AS a JOIN {base} AS b ON b.{CID} = CAST(a.{CID} AS TEXT) "
            f"WHERE a.{CID} < '' AND b.{CID} >= '' AND b.{CID} < x'' AND b.{CID} IS NOT a.{CID}")
    pairs = conn.execute(f"SELECT a.{CID}, b.{CID} {same} LIMIT {EXAMPLES}").fetchall()
    if not pairs:
        return
    total = conn.execute(f"SELECT count(*) {same}").fetchone()[0]
    row_col = row_column(conn, binding.schema, cust.table, cust.key)
    values = [value for pair in pairs for value in pair]  # number, text, number, text, ...
    named = [f"{value!r} ({'text' if isinstance(value, str) else 'a number'}{names})"
             for value, names in zip(values, _rows_of_ids(conn, binding, cust, row_col, values, "; ",
                                                          policy.data.customer_name))]
    ids = ", ".join(f"{named[i]} and {named[i + 1]}" for i in range(0, len(named), 2))
    as_text = f"CAST({q(cust.key)} AS TEXT)"
    same_text = f"{as_text} IN (SELECT {as_text} FROM {q(cust.table)} GROUP BY 1 HAVING count(*) > 1) ORDER BY {as_text}"
    _duplicates(cust, ids, total, len(pairs), _listing(cust.table, row_col, same_text),
                what="pairs", why=" when read as text (a number and the same text are one id to explain and export)",
                hint_more="; store every id as text (in a column declared TEXT), as the other tables refer to them")


def _joined_twice(conn: sqlite3.Connection, policy: Policy, binding: Binding, plan: MetricPlan) -> None:
    """The per-customer table has more rows than the customers table: the join found a customer in two groups
    of a source's GROUP BY (two forms of one id that the GROUP BY tells apart and the join's comparison does
    not).  metric_sql.number_ids regroups the forms it knows of, so this is a safeguard: the message names
    the source table and column, the forms and their rows, never the customers table, whose ids are fine."""
    cust = policy.data.customers
    customers, key = binding.table(cust.table), q(cust.key)
    lines, total = [], 0
    for source, agg in plan.aggregates.items():
        t = policy.data.sources[source]
        twice = (f"FROM {customers} AS c JOIN {agg} AS a ON a.{CID} = c.{key} GROUP BY c.{key} "
                 f"HAVING count(*) > 1")
        found = conn.execute(f"SELECT c.{key} {twice} LIMIT {EXAMPLES}").fetchall()
        if not found:
            continue
        count = conn.execute(f"SELECT count(*) FROM (SELECT 1 {twice})").fetchone()[0]
        total += count
        row_col = row_column(conn, binding.schema, t.table, t.key)
        for (cid,) in found:
            forms = [form for (form,) in conn.execute(
                f"SELECT a.{CID} FROM {customers} AS c JOIN {agg} AS a ON a.{CID} = c.{key} WHERE c.{key} IS ?", (cid,))]
            named = [f"{form!r} ({'text' if isinstance(form, str) else 'a number'}{names})"
                     for form, names in zip(forms, _rows_of_ids(conn, binding, t, row_col, forms, ": "))]
            lines.append(f"table {t.table!r}, column {t.key!r}: customer {cid!r} is stored as {' and '.join(named)}")
        more = _and_more(count, len(found), "customers", f"SELECT c.{key} FROM {q(cust.table)} AS c JOIN "
                         f"(SELECT DISTINCT {q(t.key)} AS k FROM {q(t.table)}) AS a ON a.k = c.{key} "
                         f"GROUP BY c.{key} HAVING count(*) > 1", own_line=True)
        if more:
            lines.append(f"table {t.table!r}, column {t.key!r}: {more}")
    if lines:
        raise DataError(f"{total:,} customer(s) of table {cust.table!r} match more than one form of their id in a "
                        f"source table (each form would make them a customer of their own):\n  - " + "\n  - ".join(lines),
                        hint=f"store each customer id in one form, as {cust.table!r}.{cust.key!r} stores it "
                             f"(a number as a number, not as text: UPDATE the rows named)")


def _removing_copies(conn: sqlite3.Connection, binding: Binding, cust: Table) -> str:
    """The hint's part on removing duplicated customers: an export that wrote some customers twice (every
    column the same) is fixed by keeping one row of each, which a DELETE does; rows that differ need a choice."""
    table, key = binding.table(cust.table), q(cust.key)
    row_col = row_column(conn, binding.schema, cust.table, cust.key)
    distinct_rows, distinct_ids = conn.execute(
        f"SELECT (SELECT count(*) FROM (SELECT DISTINCT * FROM {table})), (SELECT count(DISTINCT {key}) FROM {table})"
    ).fetchone()
    if distinct_rows != distinct_ids:
        return ("; or, when the rows of an id are the same customer written twice, keep the right one and delete the "
                "others (or export the file again without them)")
    if row_col is None:
        return "; the rows of each duplicated id are identical (written twice): remove the copies at the source"
    row, name = q(row_col), q(cust.table)
    return (f"; the rows of each duplicated id are identical (the export wrote them twice): keep one of each with "
            f"DELETE FROM {name} WHERE {row} NOT IN (SELECT min({row}) FROM {name} GROUP BY {key})")


def _duplicates(cust: Table, ids: str, total: int, shown: int, listing: str, what: str = "ids", why: str = "",
                hint_more: str = "") -> None:
    more = _and_more(total, shown, what, listing)
    raise DataError(f"customer ids are not unique in table {cust.table!r}{why}: {ids}{more}",
                    hint=f"make data.customers.id name a column whose values are unique (now {cust.key!r}){hint_more}")


def _rows_of_ids(conn: sqlite3.Connection, binding: Binding, cust: Table, row_col: str | None, ids: list,
                 lead: str, name_col: str | None = None) -> list[str]:
    """For each of ``ids``: ``lead`` and the names of the rows of ``cust`` (the customers table, or a source
    table and its customer column) that have it, "" when none (or when no column tells rows apart).

    ``name_col``: the customers' name column (data.customers.name), whose value follows each row's name
    ("rowid 14 宁波徐记装饰"): the rowids alone do not tell the operator which of the rows to keep.

    One query finds the rows of all the ids (never NULL: check_customers refused those).  It also says which
    ids each row has, by SQLite's comparison (the key column's affinity and collation, as the IN), not by
    Python's ``==``: 'a' finds 'A' in a column declared COLLATE NOCASE.
    """
    if row_col is None or not ids:
        return [""] * len(ids)
    params = [f"?{n}" for n in range(1, len(ids) + 1)]
    key = q(cust.key)
    found: list[list] = [[] for _ in ids]
    name_sql = f"{q(name_col)}" if name_col else "NULL"
    for row, name, *has in conn.execute(f"SELECT {q(row_col)}, {name_sql}, {', '.join(f'{key} IS {p}' for p in params)} "
                                        f"FROM {binding.table(cust.table)} WHERE {key} IN ({', '.join(params)})", ids):
        for names, has_id in zip(found, has):
            if has_id and len(names) <= EXAMPLES:  # one more than shown tells that there are more
                names.append(_named_row(row_col, row, name))
    return [lead + ", ".join(names[:EXAMPLES]) + (", ..." if len(names) > EXAMPLES else "")
            if names else "" for names in found]


def _named_row(row_col: str, row, name) -> str:
    """A row by its key, then the customer's name when it has one (empty text and NULL add nothing)."""
    text = str(name).strip() if name is not None else ""
    return f"{row_name(row_col, row)} {text}" if text else row_name(row_col, row)
