"""Compile a policy's metrics into set-based SQL over temp tables.

One GROUP BY scan per source table computes every aggregate of that source
(conditional aggregation), then the customers table is joined once, then
derived and population metrics are added in as few layers as window
functions allow.  No per-customer Python anywhere.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from dataclasses import dataclass, field

from . import date_windows
from .data_binding import Binding
from .data_mapping import DATE_FIELDS, REQUIRED_FIELDS, WINDOW_FIELD
from .expr_sql import SqlParams, quote_identifier as q, tie_key, to_sql
from .expr_types import DATE
from .sql_layers import LayerChain, keyed_view
from .statement import Statement
from .window_sql import WindowTables
from .policy_model import AGGREGATES, Expr, Metric, Policy
from .scan_plan import from_clause
from .source_filters import RowFilter, compile_filter

CID, CNAME = "_cid", "_cname"
BAD_ROWS = "_bad_rows"
DATE_PROBLEM = "is not a YYYY-MM-DD date"  # a row check's problem of a date column (bad_date_sql)
NUMBER_PROBLEM = "is not a number"  # a source row check's problem of a number column (bad_number_sql)
DATED = "_dated"  # column of a row check's one row: whether some row is dated on or before the as-of date
# columns of the row check of a source with a filter (data.<source>.where): its rows dated on or before the as-of
# date, and how many of them the filter drops
DATED_ROWS, DROPPED = "_dated_rows", "_dropped"


def bad_date_sql(col: str) -> str:
    """True for a value that is not an ISO date text (YYYY-MM-DD, a time may follow, with no time-zone offset).

    A round trip through julianday() turns impossible days ('2026-02-30') into
    real ones (March 2) and bare numbers into Julian-day dates, so the result
    must equal the text it was given.  This runs for every row of every
    source, so the common case is settled first by one call: a plain date is
    its own ``date(x, '+0 days')`` (the modifier makes date() recompute the
    day, as the round trip does; plain date('2026-02-30') echoes it), and NULL
    never gets further.  Measured on 10M rows: 2.5 s against 4.5 s for the
    round trip alone; GLOB is slower still.

    A time-zone offset ('2026-06-01T07:00:00+08:00') is refused whatever the day: date() converts such a
    time to UTC (2026-05-31) where the metrics' text comparisons with window dates read the local day, so
    a row would be counted in one window and dated in another.  After the date ('-' is the date's own
    separator) a '+' or '-' can only be an offset; 'Z' (UTC, no offset) keeps its day both ways.  Only
    rows with a time reach this test.
    """
    return (f"(date({col}, '+0 days') IS NOT {col} AND "
            f"(typeof({col}) != 'text' OR date(julianday({col})) IS NOT substr({col}, 1, 10) "
            f"OR {has_offset_sql(col)}))")


def has_offset_sql(col: str) -> str:
    """True for a date text with a time-zone offset ('+08:00', '-05:00' after the date).

    SQLite reads an offset only as the text's end, ``[+-]HH:MM`` (spaces after it allowed): another form
    makes date() NULL, refused as no date.  The length settles the common times first ('YYYY-MM-DD
    HH:MM:SS' is 19 characters; with an offset at least 22): a GLOB over the rest of every time was 0.45
    µs a row, 13 s on 10M rows of three timestamp columns.
    """
    end = f"rtrim({col})"
    return f"(length({col}) >= 22 AND substr({end}, -6, 1) IN ('+', '-') AND substr({end}, -3, 1) = ':')"


def bad_number_sql(col: str) -> str:
    """True for a value of a number column that is stored as text (or a blob), whatever the text.

    Not only the text SQLite would silently read as 0 or as its first digits ('abc', '1,234.50'): a
    number stored as text ('1819.16', as a column declared TEXT or ``sqlite3 .import`` stores every
    value) sums right but compares as text, above every number, so ``where: amount >= 10000`` holds for
    every row, min() and max() order it as text and a tier comes out wrong without a word.
    ``col >= ''`` is "text or blob" in one comparison, without a function call: numbers sort before all
    text, and text before all blobs.
    """
    return f"{col} >= ''"


def row_problems(source: str, key: str, columns: dict, numeric_used: set[str],
                 dates_used: set[str] = frozenset()) -> list[tuple[str, str, str]]:
    """(column, problem, SQL that is true for a bad row) for one source's rows (alias ``r``).

    ``dates_used``: the date columns of ``data.<source>.columns`` the policy reads (in a source's or a metric's
    filter, or a metric's expression).  '03/05/2026' or '2026-13-01' in one compares as text with the as-of
    date (``cancelled_at > as_of()``) and keeps or drops its row wrongly without a word, as a bad order date
    would; NULL is no date, which a filter may test (``cancelled_at is null``).
    """
    def col(logical: str) -> str:
        return f"r.{q(columns[logical].column)}"

    checks = [(key, "has no customer id", f"r.{q(key)} IS NULL")]
    for f in DATE_FIELDS[source]:
        if f in REQUIRED_FIELDS[source]:
            checks.append((columns[f].column, f"has no {f.replace('_', ' ')}", f"{col(f)} IS NULL"))
        checks.append((columns[f].column, DATE_PROBLEM, bad_date_sql(col(f))))
    dated = {columns[f].column for f in DATE_FIELDS[source]}
    for f in sorted(dates_used):
        if columns[f].column not in dated:  # a second name for a column checked already is not checked twice
            dated.add(columns[f].column)
            checks.append((columns[f].column, DATE_PROBLEM, bad_date_sql(col(f))))
    for f in sorted(numeric_used):
        if f in REQUIRED_FIELDS[source]:
            checks.append((columns[f].column, f"has no {f.replace('_', ' ')}", f"{col(f)} IS NULL"))
        checks.append((columns[f].column, NUMBER_PROBLEM, bad_number_sql(col(f))))
    return checks




@dataclass(frozen=True)
class SourceAggregation:
    """One source's GROUP BY as a run executes it, with the source columns it reads and its row check.

    The columns decide the plan (scan_plan) and what ``crm-rules index`` proposes.
    """

    name: str  # temp table it creates (unqualified)
    query: Statement  # the SELECT, which source_scans may run on a connection of its own
    columns: frozenset[str]
    rows: int  # how many rows the source has
    check: Statement | None = None  # SELECT of one row: ``_bad_rows`` 1 if some row cannot be read, else 0;
    # ``_dated`` 1 if some row is dated (by the source's window date) on or before the as-of date, else 0; NULL
    # when the GROUP BY keeps only such rows, so that it has a row exactly when there is one
    cost: int = 0  # the GROUP BY's work, in rough units: source_scans starts the biggest first
    check_cost: int = 0
    # Set when the customers key has numeric affinity and the source's customer column has not (number_ids): the
    # INSERT of the groups of ``mixed_name``'s ids, regrouped by the number the join reads them as
    merge: Statement | None = None
    filter: RowFilter | None = None  # the source's data.<source>.where: in the scan's WHERE, and in the row check

    @property
    def mixed_name(self) -> str:
        """Temp table of the ids (``raw``) of this GROUP BY's groups that are one customer to the join (number_ids)."""
        return self.name.replace("_agg_", "_mixed_", 1)

    def join_key(self, alias: str) -> str:
        """What the customers join compares with the customer key (written ``+c.key`` when this is a number_id)."""
        return numeric_id_sql(f"{alias}.{CID}") if self.merge is not None else f"{alias}.{CID}"

    def number_index(self) -> Statement:
        """The unique index of the ids as numbers (number_ids): the join's lookup, and the test that no two groups
        are one number."""
        return Statement(f"CREATE UNIQUE INDEX temp.{q(self.name + '_number')} ON {q(self.name)}({numeric_id_sql(CID)})")

    @property
    def target(self) -> str:
        return f"temp.{q(self.name)}"

    @property
    def check_name(self) -> str:
        """Temp table of the row check's one row."""
        return self.name.replace("_agg_", "_check_", 1)

    @property
    def statement(self) -> Statement:
        return Statement(f"CREATE TEMP TABLE {self.target} AS\n{self.query.sql}", self.query.params)

    def index(self) -> Statement:
        """The unique index the customers join looks the aggregates up by."""
        return Statement(f"CREATE UNIQUE INDEX temp.{q(self.name + '_cid')} ON {q(self.name)}({CID})")


@dataclass(frozen=True)
class MetricFilter:
    """A metric's ``where`` as its source's GROUP BY runs it, for the note on a filter that keeps no row
    (filter_notes)."""

    metric: str
    where: Expr  # the filter as written, and its syntax tree (the columns it compares with literals)
    sql: str  # the compiled filter over the source's rows (alias ``r``), with the GROUP BY's parameters
    found: tuple[str, ...]  # SQL over the source's aggregate table, true for a customer with a row the filter kept


def matched_column(source: str) -> str:
    """Column of the base table: 1 where the customer has a row in ``source``'s aggregates, else 0."""
    return f"_crm_in_{source}"


@dataclass
class MetricPlan:
    statements: list  # Statements (and one BatchOp), run after the sources' GROUP BYs (source_scans.run_scans)
    table: str  # view of one row per customer with every metric
    attributes: list[str]  # attribute columns present in that view
    sources: dict[str, SourceAggregation] = field(default_factory=dict)  # source -> its GROUP BY
    problems: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # source -> row checks
    filters: dict[str, list[MetricFilter]] = field(default_factory=dict)  # source -> its metrics' where filters
    base: str = ""  # name of the temp table under the view: customers and their aggregates, one row each
    base_ready: int = 0  # how many of ``statements`` run before the base table exists
    windows: WindowTables = field(default_factory=WindowTables)  # window results, shared with the plugin layers

    def key_index(self) -> Statement:
        """The index that finds one customer (explain, overrides); built once the ids are known to be unique."""
        return Statement(f"CREATE UNIQUE INDEX IF NOT EXISTS temp.{q(self.base + '_cid')} ON {q(self.base)}({CID})")

    @property
    def aggregates(self) -> dict[str, str]:
        """source -> temp table of its GROUP BY."""
        return {source: agg.target for source, agg in self.sources.items()}

    @property
    def checks(self) -> dict[str, str]:
        """source -> temp table of its row check (one row: ``_bad_rows``)."""
        return {source: f"temp.{q(agg.check_name)}" for source, agg in self.sources.items()}


@dataclass
class RunDates:
    as_of: str
    as_of_next: str
    conn: sqlite3.Connection

    def window_end(self, offset: str | None = None) -> str:
        """Last day of a window that ends ``offset`` before the as-of date (date_windows.window_end)."""
        return date_windows.window_end(self.as_of, offset)

    def window_start(self, window: str | None, periods: int = 1, offset: str | None = None) -> str | None:
        """First day of a window of ``periods`` × ``window`` ending on the as-of date, or ``offset`` before it; of a
        calendar window (`year to date`), the first day of the period that holds that end."""
        if window in (None, "all"):
            return None
        if (months := date_windows.calendar_months(window)) is not None:
            if periods != 1:  # trend's window before: refused for calendar windows (calendar_windows.refused)
                raise ValueError(f"a calendar window ({window}) has no window before it")
            return date_windows.period_start(self.window_end(offset), months)
        count, unit = date_windows.span(window)
        return date_windows.window_start(self.window_end(offset), count * periods, unit)

    def after_end(self, offset: str) -> str:
        """The day after the last day of a window ``offset`` before the as-of date: the bound its rows lie below."""
        return date_windows.shifted(self.window_end(offset), 1, "days")

    def window_months(self, window: str) -> float:
        """Length of a window in calendar months (for per-month rates); a calendar window has none fixed (a
        repurchase_rate refuses one: calendar_windows.refused)."""
        if date_windows.calendar_months(window) is not None:
            raise ValueError(f"a calendar window ({window}) has no fixed length in months")
        count, unit = date_windows.span(window)
        return count * {"days": 1 / 30.4375, "weeks": 7 / 30.4375, "months": 1, "years": 12}[unit]

    def month_period(self, day: str, offset: str | None = None) -> str:
        """SQL of how many whole months before the window's end (the as-of date, or ``offset`` before it) the date
        ``day`` lies: 0 for the month ending on it.

        The months end on the end's day of the month, or on each month's last day when the end is one, as
        date_windows.months_before counts them: a customer who buys once each calendar month buys once in each.
        """
        as_of = dt.date.fromisoformat(self.window_end(offset))
        at_month_end = as_of.day == calendar.monthrange(as_of.year, as_of.month)[1]
        # the rows' dates are ISO texts (the row check refuses others): substr() reads them at half the cost
        # of strftime(), which parses each date again for every field
        months = (f"({as_of.year * 12 + as_of.month} - CAST(substr({day}, 1, 4) AS INTEGER) * 12 "
                  f"- CAST(substr({day}, 6, 2) AS INTEGER)")
        return f"{months})" if at_month_end else f"{months} - (CAST(substr({day}, 9, 2) AS INTEGER) > {as_of.day}))"

    def days_before(self, days: int) -> str:
        return self.conn.execute("SELECT date(?, ?)", (self.as_of, f"{-days:+d} days")).fetchone()[0]


@dataclass(frozen=True)
class _Aggregate:
    """One aggregate of a source's GROUP BY: ``fn`` of ``value`` over the rows where every condition holds.

    Kept as parts, not SQL text, so that a condition every aggregate of the source has can become the
    scan's WHERE (``_SourceQuery.aggregation``): the rows it rules out then never reach the GROUP BY's sort.
    """

    fn: str  # SUM, COUNT, MIN, MAX, AVG or COUNT DISTINCT
    conditions: tuple[str, ...]
    value: str = "1"
    as_date: bool = False  # date() of the result: a date column's min or max as 'YYYY-MM-DD'

    def sql(self, in_where: frozenset[str] = frozenset()) -> str:
        kept = [c for c in self.conditions if c not in in_where]
        operand = f"CASE WHEN {' AND '.join(kept)} THEN {self.value} END" if kept else self.value
        call = f"COUNT(DISTINCT {operand})" if self.fn == "COUNT DISTINCT" else f"{self.fn}({operand})"
        if self.fn == "SUM":
            return decimal_sum(call)
        return f"date({call})" if self.as_date else call


def decimal_sum(call: str) -> str:
    """A floating-point sum to 15 significant digits, the precision a double holds for any decimal.

    Floating-point addition depends on the order of the rows: 50000 + 49999.99 + 0.01 is
    99999.99999999999, the same amounts in another order 100000.0, and a rule
    ``revenue_12m >= 100_000`` would tier the same customer differently after a reload of the
    table.  Amounts with a few decimals sum to a number with at most 15 digits, which the
    rounding recovers whatever the order.  Integer sums stay exact integers.  A sum beyond a double's
    range stays infinite: printf writes it 'Inf', which CAST reads as 0.  (SQLite computes the repeated
    aggregate call once.)
    """
    return (f"CASE typeof({call}) WHEN 'real' THEN CASE WHEN abs({call}) < 1e308 "
            f"THEN CAST(printf('%.15g', {call}) AS REAL) ELSE {call} END ELSE {call} END")


def decimal_total(value: float | None) -> float | None:
    """A sum taken in Python (a run's revenue per tier and in all, added up from its groups) to 15 significant digits,
    as :func:`decimal_sum` takes every metric's sum: unrounded, the totals a run stores in ``crm_runs.counts`` carried
    the noise of the addition order (134826637.16000003, 6738455.879999997), which BI tools and ``export --format
    json`` showed as they are.  Integers, infinities and None are returned unchanged."""
    if isinstance(value, float) and abs(value) < 1e308:
        return float(f"{value:.15g}")
    return value


class _SourceQuery:
    """Accumulates the aggregate columns of one source's GROUP BY."""

    def __init__(self, policy: Policy, binding: Binding, source: str, dates: RunDates):
        self.table = policy.data.sources[source]
        self.binding = binding
        self.source = source
        self.dates = dates
        self.params = SqlParams(prefix=f"{source[0]}")
        self.columns: list[tuple[str, _Aggregate]] = []
        self.cuts: set[str] = set()  # the conditions "dated before the day after the as-of date"
        self.numeric_used: set[str] = set()  # numeric columns read, checked for unreadable text
        self.dates_used: set[str] = set()  # date columns of data.<source>.columns read, checked as the source's dates
        self.read: set[str] = set()  # physical columns read (for the choice of plan)
        self.filters: list[MetricFilter] = []  # the metrics' where filters, and the aggregates that read them
        self._wheres: dict[str, str] = {}  # metric -> its where, compiled once (trend's two windows share it)
        self._added: list[tuple[str, _Aggregate]] = []  # the aggregates of the metric being added (metric())

    def col(self, logical: str) -> str:
        if self.table.columns[logical].type == "number":
            self.numeric_used.add(logical)
        elif self.table.columns[logical].type == DATE and logical not in DATE_FIELDS[self.source]:
            self.dates_used.add(logical)
        self.read.add(self.table.columns[logical].column)
        return f"r.{q(self.table.columns[logical].column)}"

    def expr(self, node) -> str:
        return to_sql(node, lambda name: self.col(name), self.params)

    def cut(self, column_sql: str) -> str:
        """The condition that a row dated by ``column_sql`` existed on the as-of date."""
        condition = f"{column_sql} < :as_of_next"
        self.cuts.add(condition)
        return condition

    def metric(self, m: Metric) -> str:
        """Add the aggregates ``m`` needs; return its final SQL over the joined row.  A ``where`` is kept with the
        aggregates that read it: their columns tell, without another scan, whether it kept any row."""
        self._added = []
        sql = _source_metric(m, self)
        if m.where is not None:
            found = tuple(f"{q(alias)} > 0" if aggregate.fn.startswith("COUNT") else f"{q(alias)} IS NOT NULL"
                          for alias, aggregate in self._added)
            self.filters.append(MetricFilter(m.name, m.where, self.where(m), found))
        return sql

    def where(self, m: Metric) -> str:
        """The SQL of ``m``'s where filter (compiled once per metric)."""
        if m.name not in self._wheres:
            self._wheres[m.name] = self.expr(m.where.node)
        return self._wheres[m.name]

    def window(self, metric: Metric, field_name: str | None = None, periods: int = 1,
               upto_periods: int = 0) -> tuple[str, ...]:
        """The conditions of a row of ``metric``'s window: ``periods`` windows back from its end, and with
        ``upto_periods`` only those before the last ``upto_periods`` of them (trend's window before)."""
        d = self.col(field_name or WINDOW_FIELD[self.source])
        parts = [self.cut(d)]
        window, offset = metric.spec.get("window"), metric.spec.get("offset")
        start = self.dates.window_start(window, periods, offset)
        if start:
            parts.append(f"{d} >= {self.params.date(start)}")
        if upto_periods:
            parts.append(f"{d} < {self.params.date(self.dates.window_start(window, upto_periods, offset))}")
        elif offset is not None:  # a window that ends before the as-of date: the cut above drops only later rows
            parts.append(f"{d} < {self.params.date(self.dates.after_end(offset))}")
        if metric.where is not None:
            parts.append(self.where(metric))
        return tuple(parts)

    def add(self, alias: str, aggregate: _Aggregate) -> str:
        """The column holding ``aggregate``: ``alias``, or the column of an equal aggregate added before."""
        for known, known_aggregate in self.columns:
            if known_aggregate == aggregate:
                self._added.append((known, aggregate))
                return known
        self.columns.append((alias, aggregate))
        self._added.append((alias, aggregate))
        return alias

    def paid_as_of(self, offset: str | None = None) -> str:
        """What had been paid on the as-of date (a later payment did not exist yet), or on the last day of a window
        ``offset`` before it: a collection rate of last year's quarter is the one a run on its last day computed,
        comparable with this quarter's, whose later payments are not known yet either."""
        bound = ":as_of_next" if offset is None else self.params.date(self.dates.after_end(offset))
        return (f"(CASE WHEN {self.col('paid_date')} IS NULL OR {self.col('paid_date')} < {bound} "
                f"THEN coalesce({self.col('paid_amount')}, 0) ELSE 0 END)")

    def problems(self) -> list[tuple[str, str, str]]:
        return row_problems(self.source, self.table.key, self.table.columns, self.numeric_used, self.dates_used)

    def aggregation(self, name: str, number_ids: bool = False) -> SourceAggregation:
        """The source's GROUP BY; ``number_ids``: the customers key reads this source's ids as numbers and the
        source's column does not (see number_ids)."""
        key = f"r.{q(self.table.key)}"
        # Rows dated after the as-of date did not exist yet on it: when no aggregate counts them, the scan
        # drops them before the sort (a fifth of the GROUP BY's time on ten million orders, from the
        # comparisons alone).  Only that cut moves: a window's start would also hide the rows of unknown
        # customers that lie before it from the orphan check (data_checks), which reads the aggregates.
        in_where = frozenset(self.cuts).intersection(*(a.conditions for _, a in self.columns))
        conditions = sorted(in_where) if self.columns else []
        # The source's filter drops its rows in the scan's WHERE too, before the sort; compiled before the row
        # checks are listed, which check the number and date columns it reads (source_filters)
        rf = compile_filter(self.table, self.col)
        params = self.params.values if rf is None else {**self.params.values, **rf.params}
        if rf is not None:
            conditions.append(rf.sql)
        where = f"\nWHERE {' AND '.join(conditions)}" if conditions else ""
        cols = ",\n  ".join(f"{a.sql(in_where)} AS {q(alias)}" for alias, a in self.columns)
        problems = self.problems()
        read = frozenset(self.read | {column for column, _, _ in problems})
        table = self.binding.table(self.table.table)
        source = from_clause(self.dates.conn, self.binding.schema, self.table.table, self.table.key, set(read))
        # The row check is a scan of its own, not a column of the GROUP BY: the two then run at the same
        # time, on two cores (source_scans), and at a million customers the check of three date columns
        # costs about as much as the aggregation itself.  It also tells whether any row is dated on or before
        # the as-of date by the source's own date (the note on a mistyped --as-of), when the aggregates
        # cannot: when the scan's WHERE is not that date's cut (receivables' windows are cut by due dates).
        # The first old row ends the search (every row is read only when none is old: a mistyped --as-of).
        bad = " OR ".join(sql for _, _, sql in problems)
        dated = f"r.{q(self.table.columns[WINDOW_FIELD[self.source]].column)} < :as_of_next"
        if rf is None:
            dated = "NULL" if dated in conditions else f"EXISTS (SELECT 1 FROM {table} AS r WHERE {dated})"
            check = Statement(f"SELECT EXISTS (SELECT 1 {source} WHERE {bad}) AS {BAD_ROWS}, {dated} AS {DATED}")
        else:
            check = _filtered_check(problems, rf, dated, source, params)
        rows = row_count(self.dates.conn, table)
        merge = None
        if number_ids:  # the groups the join finds one customer in, regrouped from their rows (number_ids)
            number = numeric_id_sql(key)
            mixed = f"{key} IN (SELECT raw FROM temp.{q(name.replace('_agg_', '_mixed_', 1))})"
            merge = Statement(f"INSERT INTO temp.{q(name)}\nSELECT {number} AS {CID},\n  {cols}\nFROM {table} AS r\n"
                              f"WHERE {' AND '.join([mixed, *conditions])}\nGROUP BY {number}", params)
        return SourceAggregation(name, Statement(f"SELECT {key} AS {CID},\n  {cols}\n{source}{where}\nGROUP BY {key}",
                                                 params), read, rows, check,
                                 cost=rows * (10 + len(self.columns)),
                                 check_cost=int(rows * (2 + (rf is not None)
                                                        + sum(_CHECK_COST.get(what, 0) for _, what, _ in problems))),
                                 merge=merge, filter=rf)


def _filtered_check(problems: list[tuple[str, str, str]], rf: RowFilter, dated: str, source: str,
                    params: dict) -> Statement:
    """The row check of a source with a filter: one pass over its rows that also counts what the filter drops.

    The rows the filter drops are not the policy's data and are not checked, except for the columns the filter
    itself reads: a row whose filter column cannot be read (text in a number column) must not vanish unseen.
    The counts of the note on the filter (source_filters.dropped_note) are taken in this pass, which reads every
    row anyway when the data is good: a separate count would be one more scan of the table.
    """
    every = [sql for column, _, sql in problems if column in rf.columns]
    kept = [sql for column, _, sql in problems if column not in rf.columns]
    bad = " OR ".join(every + ([f"({rf.sql} AND ({' OR '.join(kept)}))"] if kept else []))
    dated_rows = f"count(CASE WHEN {dated} THEN 1 END)"
    dropped = f"count(CASE WHEN {dated} AND {rf.drops()} THEN 1 END)"
    return Statement(f"SELECT count(CASE WHEN {bad} THEN 1 END) > 0 AS {BAD_ROWS}, {dated_rows} > {dropped} AS {DATED}, "
                     f"{dated_rows} AS {DATED_ROWS}, {dropped} AS {DROPPED} {source}", params)


#: Rough cost per row of a row check's test, against 10 for reading the row and 1 per aggregate of a GROUP BY
#: (measured on 10M orders: their GROUP BY 19 s, the check of a date 2.5 s, of a number 0.6 s).
_CHECK_COST = {DATE_PROBLEM: 2.5, NUMBER_PROBLEM: 0.6}


def row_count(conn: sqlite3.Connection, table: str) -> int:
    """Rows of ``table``: a count, which SQLite answers from the smallest index (0.1 s for 10M rows)."""
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def approximate_rows(conn: sqlite3.Connection, table: str) -> int:
    """The largest rowid: the row count of a table nobody deleted from, found without a scan (0 for a view)."""
    try:
        return conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.OperationalError:  # a view or a WITHOUT ROWID table
        return 0


def numeric_id_sql(col: str) -> str:
    """``col`` as a key of numeric affinity compares it: text that SQLite reads as a number ('1', '1.0', ' 1',
    '01') as that number, anything else as it is.

    ``CAST(x AS NUMERIC) = x`` is SQLite's own test: the CAST has numeric affinity, so the comparison applies
    numeric affinity to a ``col`` of text or no affinity, exactly as the join of a numeric customer key does,
    and is true only for text that it turns into a number ('abc' stays text, and its CAST, 0, differs).
    """
    return f"CASE WHEN CAST({col} AS NUMERIC) = {col} THEN CAST({col} AS NUMERIC) ELSE {col} END"


def affinity(declared: str | None) -> str:
    """The affinity of a column declared ``declared``, by SQLite's rules (datatype3.html, 3.1)."""
    upper = (declared or "").upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not upper or "BLOB" in upper:
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


NUMERIC_AFFINITIES = ("INTEGER", "REAL", "NUMERIC")


def column_affinity(conn: sqlite3.Connection, table: str, column: str) -> str:
    """Affinity of ``column`` of ``table`` (schema-qualified): that of a view's column too, which the view's
    declared types do not always give ('' for a CAST(x AS INTEGER)), from an empty CREATE TABLE AS, whose
    declared types SQLite writes from the affinities."""
    probe = "_crm_affinity_probe"
    conn.execute(f"DROP TABLE IF EXISTS temp.{q(probe)}")
    conn.execute(f"CREATE TEMP TABLE {q(probe)} AS SELECT t.{q(column)} AS x FROM {table} AS t LIMIT 0")
    try:
        return affinity(conn.execute(f"SELECT type FROM pragma_table_xinfo('{probe}', 'temp')").fetchone()[0])
    finally:
        conn.execute(f"DROP TABLE temp.{q(probe)}")


def number_ids(conn: sqlite3.Connection, sources: list[SourceAggregation], dates: dict) -> None:
    """Index the ids of the sources whose ids the customers join reads as numbers, and regroup the groups of
    one customer (``agg.merge``: a customers key of numeric affinity, a source column of text or none).

    A source's GROUP BY groups by the value as it is stored, so the number 1 and the text '1' (or '01',
    '1.0', ' 1') are two groups; the key reads text that looks like a number as that number, so both groups
    would join customer 1, who would then be in the per-customer table twice.  Grouping every row by the
    number would cost a function call per row and the order of a covering index; instead the GROUP BY stays
    as it is, and the unique index of its ids read as numbers, which the join looks customers up by (its
    plain index is of no use to it: SQLite uses an index only for a comparison of the index's own affinity),
    finds the groups of one customer as it is built: only then are those groups found and regrouped from
    their rows (the source's index on the customer column finds them), and the index built again.

    No other pair of affinities joins one customer to two groups: a numeric source column stores numbers as
    numbers, and a key of text or no affinity is not compared as a number with a column of text or none.
    """
    for agg in sources:
        if agg.merge is None:
            continue
        try:
            conn.execute(agg.number_index().sql)
        except sqlite3.IntegrityError:
            _regroup(conn, agg, dates)
            conn.execute(agg.number_index().sql)


def _regroup(conn: sqlite3.Connection, agg: SourceAggregation, dates: dict) -> None:
    """Replace the groups of ``agg`` that are one number by one group each, aggregated again from their rows."""
    t, cid, mixed = agg.target, q(CID), f"temp.{q(agg.mixed_name)}"
    conn.execute(f"DROP TABLE IF EXISTS {mixed}")
    conn.execute(f"CREATE TEMP TABLE {q(agg.mixed_name)} AS SELECT a.rowid AS rid, a.{cid} AS raw FROM {t} AS a "
                 f"WHERE {numeric_id_sql(f'a.{cid}')} IN (SELECT {numeric_id_sql(f'b.{cid}')} FROM {t} AS b "
                 f"WHERE b.{cid} IS NOT NULL GROUP BY 1 HAVING count(*) > 1)")
    try:
        conn.execute(f"DELETE FROM {t} WHERE rowid IN (SELECT rid FROM {mixed})")
        conn.execute(agg.merge.sql, {**agg.merge.params, **dates})
    finally:
        conn.execute(f"DROP TABLE {mixed}")


def _source_metric(m: Metric, sq: _SourceQuery) -> str:
    """Add the aggregates ``m`` needs to its source query; return its final SQL over the joined row."""
    a = f"a_{m.source}"
    ref = lambda alias: f"{a}.{q(alias)}"  # noqa: E731
    kind = m.kind
    if kind in AGGREGATES:
        operand = sq.expr(m.operand.node)
        fn = "COUNT DISTINCT" if kind == "count_distinct" else kind.upper()
        column = sq.add(m.name, _Aggregate(fn, sq.window(m), operand, as_date=m.type == DATE))
        default = m.spec.get("default", 0 if kind in ("sum", "count_distinct") else None)
        return f"coalesce({ref(column)}, {sq.params.add(default)})" if default is not None else ref(column)
    if kind == "count":
        column = sq.add(m.name, _Aggregate("COUNT", sq.window(m)))
        return f"coalesce({ref(column)}, {sq.params.add(m.spec.get('default', 0))})"
    if kind == "recency":
        # date(MAX(d)), as a `max` of the date column is written: the scan computes the two once
        column = sq.add(m.name, _Aggregate("MAX", sq.window(m), sq.col(WINDOW_FIELD[m.source]), as_date=True))
        return f"CAST(julianday(:as_of) - julianday({ref(column)}) AS INTEGER)"
    if kind == "trend":
        operand = sq.expr(m.operand.node)
        cur = sq.add(m.name + "__cur", _Aggregate("SUM", sq.window(m, periods=1), operand))
        prev = sq.add(m.name + "__prev", _Aggregate("SUM", sq.window(m, periods=2, upto_periods=1), operand))
        # over a previous period of 0 or less (credit notes outweighing sales) a growing customer got -1900%
        return f"(CASE WHEN {ref(prev)} > 0 THEN coalesce({ref(cur)}, 0) * 1.0 / {ref(prev)} - 1 END)"
    if kind == "contract_days_left":
        start, end = sq.col("start"), sq.col("end")
        cond = (sq.cut(start), f"date({end}) >= :as_of") + ((sq.where(m),) if m.where is not None else ())
        return ref(sq.add(m.name, _Aggregate("MAX", cond, f"CAST(julianday(date({end})) - julianday(:as_of) AS INTEGER)")))
    if kind == "repurchase_rate":
        d = sq.col(WINDOW_FIELD[m.source])
        count, unit = date_windows.span(m.spec["window"])
        offset = m.spec.get("offset")
        if unit in date_windows.UNIT_MONTHS:  # months ending on the window's end, as the window's own start is counted
            periods = count * date_windows.UNIT_MONTHS[unit]
            period = sq.dates.month_period(d, offset)
        else:  # a window of days or weeks: equal parts about a month long, as many as fit (at least one)
            periods = max(1, round(sq.dates.window_months(m.spec["window"])))
            start = sq.params.date(sq.dates.window_start(m.spec["window"], offset=offset))
            end = ":as_of_next" if offset is None else sq.params.date(sq.dates.after_end(offset))
            period = (f"CAST((julianday(date({d})) - julianday({start})) * {periods} "
                      f"/ (julianday({end}) - julianday({start})) AS INTEGER)")
        column = sq.add(m.name, _Aggregate("COUNT DISTINCT", sq.window(m), period))
        return f"({ref(column)} * 1.0 / {sq.params.add(periods)})"
    due, amount = sq.col("due_date"), sq.col("amount")
    if kind in ("collection_rate", "on_time_rate"):
        in_window = sq.window(m, "due_date")
        if kind == "collection_rate":
            paid = sq.add(m.name + "__paid", _Aggregate("SUM", in_window,
                                                          f"min({sq.paid_as_of(m.spec.get('offset'))}, {amount})"))
            billed = sq.add(m.name + "__billed", _Aggregate("SUM", in_window, amount))
            return f"({ref(paid)} * 1.0 / NULLIF({ref(billed)}, 0))"
        on_time = (f"{sq.col('paid_date')} IS NOT NULL AND date({sq.col('paid_date')}) <= date({due}) "
                   f"AND coalesce({sq.col('paid_amount')}, 0) >= {amount} - 0.005")
        ok = sq.add(m.name + "__ok", _Aggregate("COUNT", in_window + (on_time,)))
        n = sq.add(m.name + "__n", _Aggregate("COUNT", in_window))
        return f"({ref(ok)} * 1.0 / NULLIF({ref(n)}, 0))"
    if kind in ("overdue", "outstanding"):
        open_amount = f"({amount} - {sq.paid_as_of()})"
        is_open = (sq.cut(sq.col("date")), f"{open_amount} > 0.005")
        if kind == "outstanding":
            return f"coalesce({ref(sq.add(m.name, _Aggregate('SUM', is_open, open_amount)))}, 0)"
        min_days = m.spec.get("min_days", 1)
        # due on or before (as-of − min_days), written as "< the day after" so due dates with a time compare
        # right; the cheap date tests come first so the open amount is only worked out for rows in range
        cond = (f"{due} < {sq.params.date(sq.dates.days_before(min_days - 1))}",)
        if "max_days" in m.spec:  # aging buckets: at most max_days past due
            cond += (f"{due} >= {sq.params.date(sq.dates.days_before(m.spec['max_days']))}",)
        cond += is_open
        what = m.spec["overdue"]
        if what == "amount":
            column = sq.add(m.name, _Aggregate("SUM", cond, open_amount))
        elif what == "count":
            column = sq.add(m.name, _Aggregate("COUNT", cond))
        else:
            column = sq.add(m.name, _Aggregate("MAX", cond, f"CAST(julianday(:as_of) - julianday(date({due})) AS INTEGER)"))
        return f"coalesce({ref(column)}, 0)"
    raise AssertionError(kind)  # pragma: no cover


def _tenure_sql(m: Metric, policy: Policy, binding: Binding, queries: dict) -> str:
    divisor = {"days": 1, "months": 30.4375, "years": 365.25}[m.spec["tenure"]]
    if binding.tenure_from_since:
        start = f"c.{q(policy.data.attributes['since'].column)}"
    else:
        sq = queries["orders"]
        alias = sq.add(m.name + "__first", _Aggregate("MIN", (sq.cut(sq.col("date")),), f"date({sq.col('date')})"))
        start = f"a_orders.{q(alias)}"
    days = f"(julianday(:as_of) - julianday(date({start})))"
    return days if divisor == 1 else f"round({days} / {divisor}, 2)"


def _population_sql(m: Metric, col: str) -> str:
    better_high = m.spec.get("better", "high") == "high"
    # NULLS LAST rather than a leading `x IS NULL` key: one sort key fewer, about 10% off each window
    best_first = f"{tie_key(col)} {'DESC' if better_high else 'ASC'} NULLS LAST"
    worst_first = f"{tie_key(col)} {'ASC' if better_high else 'DESC'} NULLS LAST"
    n = f"COUNT({col}) OVER ()"
    if m.kind == "rank":
        return f"CASE WHEN {col} IS NOT NULL THEN RANK() OVER (ORDER BY {best_first}) END"
    if m.kind == "percentile":
        return (f"CASE WHEN {col} IS NOT NULL THEN "
                f"coalesce((RANK() OVER (ORDER BY {worst_first}) - 1) * 1.0 / NULLIF({n} - 1, 0), 1.0) END")
    if m.kind == "ntile":
        k = int(m.spec.get("n", 5))
        return (f"CASE WHEN {col} IS NOT NULL THEN "
                f"1 + CAST({k} * (RANK() OVER (ORDER BY {worst_first}) - 1) / {n} AS INTEGER) END")
    if m.kind == "cumulative_share":
        positive = f"CASE WHEN {col} > 0 THEN {col} END"
        # Ahead = every peer group strictly ahead = the total less the running sum up to and
        # including this customer's peers, in the ascending order the ntile and percentile of the
        # same metric use: one sort serves them all (window_sql computes each ordering once).
        total = f"SUM({positive}) OVER ()"
        upto = f"SUM({positive}) OVER (ORDER BY {tie_key(col)} ASC NULLS LAST)"
        return f"CASE WHEN {col} > 0 THEN max({total} - {upto}, 0) * 1.0 / {total} END"
    if m.kind == "positive_count":
        return f"COUNT(CASE WHEN {col} > 0 THEN 1 END) OVER ()"
    raise AssertionError(m.kind)  # pragma: no cover


def _layers(policy: Policy) -> dict[str, int]:
    """Layer of each derived/population metric.

    Expressions are inlined within a layer; only a window function whose input
    itself contains a window function must wait for the next layer.
    """
    layer: dict[str, int] = {}
    windowed: dict[str, bool] = {}

    def of(name: str) -> int:
        m = policy.metrics.get(name)
        if m is None or not (m.kind == "expr" or m.is_population):
            return 0  # an attribute or a base metric, present in the first table
        if name not in layer:
            if m.kind == "expr":
                layer[name] = max((of(d) for d in m.deps), default=0)
                windowed[name] = any(windowed.get(d, False) and layer.get(d) == layer[name] for d in m.deps)
            else:
                layer[name] = of(m.of) + (1 if windowed.get(m.of, False) else 0)
                windowed[name] = True
        return layer[name]

    for name in policy.metrics:
        of(name)
    return layer


def compile_metrics(policy: Policy, binding: Binding, dates: RunDates, prefix: str = "_crm") -> MetricPlan:
    statements: list = []
    queries = {s: _SourceQuery(policy, binding, s, dates) for s in sorted(binding.sources)}
    base_cols: dict[str, str] = {}
    params = SqlParams(prefix="c")
    for m in policy.metrics.values():
        if m.source:
            base_cols[m.name] = queries[m.source].metric(m)
        elif m.kind == "tenure":
            base_cols[m.name] = _tenure_sql(m, policy, binding, queries)
        elif m.kind == "attribute":
            attr = policy.data.attributes[m.spec["attribute"]]
            base_cols[m.name] = _attribute_sql(f"c.{q(attr.column)}", attr.type)
    joins = []
    sources: dict[str, SourceAggregation] = {}
    customers, key = binding.table(policy.data.customers.table), q(policy.data.customers.key)
    numeric_key = None
    for source, sq in queries.items():
        if not sq.columns:
            continue
        if numeric_key is None:  # probed once, when there is a source to join
            numeric_key = column_affinity(dates.conn, customers, policy.data.customers.key) in NUMERIC_AFFINITIES
        t = policy.data.sources[source]
        as_numbers = numeric_key and column_affinity(dates.conn, binding.table(t.table), t.key) not in NUMERIC_AFFINITIES
        agg = sources[source] = sq.aggregation(f"{prefix}_agg_{source}", number_ids=as_numbers)  # run by source_scans
        # an id read as a number is looked up as one (by number_ids' index), without affinity: the values compare
        # as the plain comparison compares them, a number of the key with a number, text (not a number) with text
        joins.append(f"LEFT JOIN {agg.target} AS a_{source} ON {agg.join_key(f'a_{source}')} = "
                     f"{'+' if as_numbers else ''}c.{key}")
    attrs = list(binding.attributes)
    select = [f"c.{q(policy.data.customers.key)} AS {CID}", f"c.{q(policy.data.customer_name)} AS {CNAME}"]
    select += [f"{_attribute_sql(f'c.{q(c.column)}', c.type)} AS {q(n)}" for n, c in binding.attributes.items()]
    select += [f"{sql} AS {q(name)}" for name, sql in base_cols.items()]
    # which customers the join found in each aggregate: their sum, against the aggregate's rows, tells
    # whether a source has rows of unknown customers without looking each one up again (data_checks)
    select += [f"a_{source}.{CID} IS NOT NULL AS {q(matched_column(source))}" for source in sources]
    layers = _layers(policy)
    table = f"temp.{q(f'{prefix}_m0')}"
    numbered = [agg for agg in sources.values() if agg.merge is not None]
    if numbered:
        from .plugin_sql import BatchOp  # (plugin_sql imports this module)

        statements.append(BatchOp(lambda conn, run_dates: number_ids(conn, numbered, run_dates),
                                  "index the customer ids read as numbers; one group per customer"))
    statements.append(Statement(f"DROP TABLE IF EXISTS {table}"))
    all_params = {}
    for sq in queries.values():
        all_params.update(sq.params.values)
    statements.append(Statement(
        f"CREATE TEMP TABLE {q(f'{prefix}_m0')} AS\nSELECT {', '.join(select)}\n"
        f"FROM {binding.table(policy.data.customers.table)} AS c\n" + "\n".join(joins), all_params))
    base_ready = len(statements)
    depth = max(layers.values(), default=0)
    statements += keyed_view(f"{prefix}_m", table)
    chain = LayerChain(f"temp.{q(prefix + '_m')}")
    for level in range(0, depth + 1):
        names = [n for n, lv in layers.items() if lv == level]
        if not names:
            continue
        inline: dict[str, str] = {}

        def resolve(name: str, level=level, inline=inline) -> str:
            if name in inline:
                return f"({inline[name]})"
            return f"t.{q(name)}"

        for name in _ordered(names, policy):
            m = policy.metrics[name]
            if m.kind == "expr":
                inline[name] = to_sql(m.operand.node, resolve, params)
            else:
                inline[name] = _population_sql(m, resolve(m.of))
        statements += chain.add(f"{prefix}_m{level + 1}", {n: inline[n] for n in names}, dict(params.values))
    return MetricPlan(statements, chain.source, attrs, sources, {s: sq.problems() for s, sq in queries.items() if sq.columns},
                      filters={s: sq.filters for s, sq in queries.items() if sq.filters},
                      base=f"{prefix}_m0", base_ready=base_ready, windows=chain.windows)


def _attribute_sql(col: str, type_: str) -> str:
    return f"date({col})" if type_ == DATE else col


def _ordered(names: list[str], policy: Policy) -> list[str]:
    """Dependencies before dependants, so inlining finds their SQL."""
    done: list[str] = []

    def visit(n: str) -> None:
        if n in done or n not in names:
            return
        for d in sorted(policy.metrics[n].deps):
            visit(d)
        done.append(n)

    for n in names:
        visit(n)
    return done
