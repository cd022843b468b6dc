"""Take the window functions out of a layer so that each ordering is sorted once.

SQLite evaluates every window of a SELECT inside that SELECT: each distinct
``OVER (ORDER BY ...)`` is a sort of every customer, an ``OVER ()`` a pass
through a buffer of every row, and the same ordering written in two layers (a
quintile among the metrics, a percentile in the value score, another in the
credit check) is sorted once per layer.  At 1M customers each pass costs 2-5 s,
and the base policy had thirteen of them.  So before a layer is built its window
calls are found and:

- the aggregates over the whole population (``COUNT(x) OVER ()``) of a layer
  are computed by one scan into a one-row table, read by scalar subqueries
  (which SQLite evaluates once per statement);
- every other call is computed by one statement per ``OVER`` clause into a
  narrow table keyed by ``_rid``, which the layer joins.

A call already computed for an earlier layer (same text, same parameter
values) is reused.  Another call of an ordering an earlier layer sorts (a
Pareto share among the metrics, a rank of the same column in the credit
check) joins that earlier sort, when every column it reads was there then and
has not changed since: the run is compiled whole before it executes, so the
earlier statement can still take it.  One sort then serves both (a sort of
a million customers is about 2 s of work).

The calls are found with sqlglot's SQLite tokenizer, so quoted names, string
literals and comments cannot be mistaken for SQL; the SQL itself is never
rewritten by sqlglot, only cut where the tokens say.  SQL that does not
tokenize, or that nests a window inside another, is left as it is.  The
tokens are kept in the user cache (user_cache), keyed by the SQL and
sqlglot's version.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from . import user_cache
from .expr_sql import quote_identifier as q
from .statement import Statement

# Aggregate functions: over the whole population (an empty OVER clause) they equal the plain aggregate.
_AGGREGATES = {"count", "sum", "total", "avg", "min", "max", "group_concat", "string_agg"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class WindowCall:
    """One ``f(...) [FILTER (...)] OVER (spec)`` in a piece of SQL."""

    start: int  # offset of the function name
    end: int  # offset just past the closing parenthesis of the OVER clause
    function: str  # the call without its OVER clause
    name: str  # the function name, lower case
    spec: str  # what is inside OVER ( ... ), whitespace collapsed
    params: tuple[str, ...]  # names of the :parameters the call uses


# Window functions whose values depend only on the sorted rows: a sort can be computed by another
# connection (window_workers) and give the same values.
_SORTABLE = {"rank", "dense_rank", "percent_rank", "cume_dist", "row_number", "ntile"} | _AGGREGATES
# Words of an OVER clause the tokenizer gives as names.
_CLAUSE_WORDS = {"NULLS", "FIRST", "LAST", "ROWS", "RANGE", "GROUPS", "UNBOUNDED", "PRECEDING", "FOLLOWING",
                 "CURRENT", "ROW", "EXCLUDE", "NO", "OTHERS", "TIES"}


@dataclass(frozen=True)
class WindowSort:
    """One sort of a run: the window calls of one ordering, computed into a narrow table keyed by ``_rid``."""

    table: str  # the temp table it fills (unqualified)
    alias: str
    calls: tuple[tuple[str, str], ...]  # (column of the table, window call with its OVER clause)
    columns: frozenset[str] | None  # the columns of ``alias`` it reads, when it reads nothing else; else None

    def query(self, source: str, join: str = "") -> str:
        """The SELECT of the table's rows from ``source`` (and ``join``), in ``_rid`` order.

        Rows come out of the window in its order; inserted so, each lands at a random place of the
        ``_rid`` B-tree.  Sorting them back by ``_rid`` first costs less (at 1M rows: 2.8 s, not 3.6 s)."""
        ranked = f"SELECT {self.alias}._rid AS _rid, " + ", ".join(f"{sql} AS {c}" for c, sql in self.calls)
        return f"SELECT * FROM ({ranked} FROM {source} AS {self.alias} {join}) ORDER BY _rid"

    def insert(self, source: str, join: str = "") -> str:
        """The INSERT filling the table (created by the run) from ``source``: :meth:`query`'s rows."""
        return f"INSERT INTO temp.{q(self.table)} {self.query(source, join)}"


def columns_read(sql: str, alias: str, other_tables: bool = True) -> frozenset[str] | None:
    """The columns ``alias."x"`` that ``sql`` reads; None if it does not tokenize or names a column
    without a table (it could be ``alias``'s), or with ``other_tables`` false, any other table's."""
    tokens = _tokens(sql)
    if tokens is None:
        return None
    found = set()
    for i, token in enumerate(tokens):
        kind = token.kind
        before = tokens[i - 1].kind if i else ""
        qualified = before == "DOT" and i >= 2
        if qualified and tokens[i - 2].text == alias:
            if kind == "STAR":
                return None  # alias.*: every column
            found.add(token.text)  # whatever the tokenizer calls it: t.date is a DATE token, t.end an END
            continue
        if kind not in ("VAR", "IDENTIFIER"):
            continue
        after = tokens[i + 1].kind if i + 1 < len(tokens) else ""
        if kind == "VAR" and (after == "L_PAREN" or before == "COLON" or token.text.upper() in _CLAUSE_WORDS
                              or (token.text == alias and after == "DOT")):
            continue  # a function, a parameter, a word of the OVER clause, the alias itself
        elif other_tables and (qualified or after == "DOT" or before == "ALIAS"):
            continue  # another table's column, the name of that table, or the name it is given
        else:
            return None
    return frozenset(found)


class Token(NamedTuple):
    """What is read of a sqlglot token: its type's name, its text and its span in the SQL."""

    kind: str
    text: str
    start: int
    end: int


@lru_cache(maxsize=512)
def _tokens(sql: str) -> tuple[Token, ...] | None:
    """The tokens of ``sql``; None when it does not tokenize.

    Kept in the user cache by content: a fresh process that compiles a policy would otherwise import
    sqlglot and tokenize its layers, a tenth of a second, as long as the whole SQL of a run over a few
    thousand customers.  The policies' SQL binds its values as parameters, so it is the same from run
    to run and day to day."""
    memo = f"sql-tokens-{user_cache.content_key(_TOKENS_FORMAT, _sqlglot_version(), sql)}.json"
    cached = user_cache.read(memo)
    if cached is not None:
        try:
            found = json.loads(cached)
            return None if found is None else tuple(Token(*token) for token in found)
        except (ValueError, TypeError):
            pass  # not what this version wrote: tokenize again
    tokens = _tokenize(sql)
    user_cache.write(memo, json.dumps(tokens).encode("utf-8"))
    return tokens


_TOKENS_FORMAT = "1"  # of the cached token lists: a new format is a new key


@lru_cache(maxsize=None)
def _sqlglot_version() -> str:
    """Read from the metadata's ``Version:`` line: ``importlib.metadata.version`` parses the file with the
    email package, whose import alone is 3 ms of every run."""
    try:
        metadata = importlib.metadata.distribution("sqlglot").read_text("METADATA") or ""
    except importlib.metadata.PackageNotFoundError:  # importable, but without its metadata
        metadata = ""
    for line in metadata.splitlines():
        if not line:
            break  # the end of the headers
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    import sqlglot

    return sqlglot.__version__


def _tokenize(sql: str) -> tuple[Token, ...] | None:
    from sqlglot.dialects.sqlite import SQLite
    from sqlglot.errors import TokenError

    try:
        return tuple(Token(t.token_type.name, t.text, t.start, t.end) for t in SQLite().tokenize(sql))
    except TokenError:
        return None


def _matching(tokens, i: int, step: int) -> int | None:
    """Index of the parenthesis that closes (``step`` 1) or opens (``step`` -1) the one at ``tokens[i]``."""
    opening, closing = ("L_PAREN", "R_PAREN") if step == 1 else ("R_PAREN", "L_PAREN")
    depth = 0
    for j in range(i, len(tokens) if step == 1 else -1, step):
        kind = tokens[j].kind
        depth += (kind == opening) - (kind == closing)
        if depth == 0:
            return j
    return None


def find_window_calls(sql: str) -> list[WindowCall] | None:
    """The window calls of ``sql`` in text order; None when it cannot be taken apart safely."""
    tokens = _tokens(sql)
    if tokens is None:
        return None
    calls: list[WindowCall] = []
    for i, token in enumerate(tokens):
        if token.kind != "OVER":
            continue
        if i + 1 >= len(tokens) or tokens[i + 1].kind != "L_PAREN" or i < 3:
            return None  # a named window (OVER w) or a stray OVER
        spec_end = _matching(tokens, i + 1, 1)
        call_end = i - 1
        if tokens[call_end].kind != "R_PAREN":
            return None
        opened = _matching(tokens, call_end, -1)
        if opened is not None and opened > 0 and tokens[opened - 1].text.upper() == "FILTER":
            call_end = opened - 2  # f(...) FILTER (WHERE ...) OVER (...)
            opened = _matching(tokens, call_end, -1) if call_end > 0 and tokens[call_end].kind == "R_PAREN" else None
        if spec_end is None or opened is None or opened == 0 or not _NAME.match(tokens[opened - 1].text):
            return None
        first = opened - 1
        if first > 0 and tokens[first - 1].kind == "DOT":
            return None
        inner = tokens[first:spec_end + 1]
        if any(t.kind == "OVER" for t in inner if t is not token):
            return None  # a window inside a window: SQLite's error to give, not ours
        params = tuple(sorted({tokens[k + 1].text for k in range(first, spec_end)
                               if tokens[k].kind == "COLON" and tokens[k + 1].start == tokens[k].end + 1}))
        calls.append(WindowCall(
            start=tokens[first].start, end=tokens[spec_end].end + 1,
            function=sql[tokens[first].start:tokens[i - 1].end + 1],
            name=tokens[first].text.lower(),
            spec=" ".join(sql[tokens[i + 1].end + 1:tokens[spec_end].start].split()),
            params=params))
    for a, b in zip(calls, calls[1:]):
        if b.start < a.end:
            return None  # overlapping spans: nested
    return calls


@dataclass
class _OpenSort:
    """A sort that later layers may still add calls of its ordering to (see the module's docstring)."""

    create: Statement  # CREATE TABLE of the narrow table, one column per call
    insert: Statement  # its rows (``insert.sort``)
    source: str
    changed: set[str] = field(default_factory=set)  # columns added or blanked since, lower case: calls reading them cannot join


@dataclass
class WindowTables:
    """The narrow window tables of a run, shared by every layer chain of it.

    A table computed for an earlier layer stays valid for later ones because a
    layer only adds columns; ``forget`` drops those that read a column whose
    values change afterwards (plugin outputs blanked on error).
    """

    computed: dict[tuple, tuple[str, str, bool]] = field(default_factory=dict)  # key -> (table, column, one row?)
    count: int = 0
    open: dict[tuple[str, str], _OpenSort] = field(default_factory=dict)  # (alias, spec) -> the sort of that ordering

    def added(self, columns: list[str]) -> None:
        """A layer added ``columns``: an earlier sort did not have them."""
        for sort in self.open.values():
            sort.changed.update(c.lower() for c in columns)

    def forget(self, columns: list[str]) -> None:
        names = set(columns)
        for key in list(self.computed):
            _, join, function, spec, _ = key
            tokens = _tokens(f"{join} {function} {spec}")
            if tokens is None or names & {t.text for t in tokens}:
                del self.computed[key]
        self.added(columns)  # their values change: a later call reading them cannot join an earlier sort

    def hoist(self, layer: str, columns: dict[str, str], source: str, params: dict, join: str,
              alias: str) -> tuple[dict[str, str], list[Statement], str]:
        """(columns without their window calls, statements computing them first, joins the layer adds)."""
        if not any("over" in sql.lower() for sql in columns.values()):
            return columns, [], ""  # no window without OVER: most layers, and no tokenizer (nor its import) needed
        found = {name: find_window_calls(sql) for name, sql in columns.items()}
        if any(calls is None for calls in found.values()):
            return columns, [], ""

        def key_of(call: WindowCall) -> tuple:
            return alias, join, call.function, call.spec, tuple((p, repr(params.get(p))) for p in call.params)

        pending: dict[str | None, dict[tuple, WindowCall]] = {}  # spec (None: whole population) -> {key: call}
        for calls in found.values():
            for call in calls:
                if key_of(call) not in self.computed:
                    whole = not call.spec and call.name in _AGGREGATES
                    pending.setdefault(None if whole else call.spec, {})[key_of(call)] = call
        statements: list[Statement] = []
        for spec, items in pending.items():
            if spec is not None and not join.strip() and self._join_open(alias, spec, items, params):
                continue
            table = f"{layer}_w{self.count}"
            self.count += 1
            names = [f"c{k}" for k in range(len(items))]
            source_rows = f"FROM {source} AS {alias} {join}"
            statements.append(Statement(f"DROP TABLE IF EXISTS temp.{q(table)}"))
            if spec is None:  # one scan computes every whole-population aggregate of the layer; one row
                statements.append(Statement(f"CREATE TEMP TABLE {q(table)} AS SELECT "
                                            + ", ".join(f"{call.function} AS {c}" for call, c in zip(items.values(), names))
                                            + f" {source_rows}", params))
            else:  # one sort per ordering; a narrow table keyed like the layers
                calls = tuple((c, f"{call.function} OVER ({spec})") for call, c in zip(items.values(), names))
                sort = WindowSort(table, alias, calls, _sorted_columns(calls, items.values(), alias, join))
                create = Statement(_create_narrow(table, names))
                insert = Statement(sort.insert(source, join), params, sort)
                statements += [create, insert]
                if not join.strip():
                    self.open[(alias, spec)] = _OpenSort(create, insert, source)
            for key, column in zip(items, names):
                self.computed[key] = (table, column, spec is None)
        used: dict[str, str] = {}  # narrow window table -> its alias in the layer
        out: dict[str, str] = {}
        for name, sql in columns.items():
            pieces, at = [], 0
            for call in found[name]:
                table, column, one_row = self.computed[key_of(call)]
                if one_row:
                    value = f"(SELECT {column} FROM temp.{q(table)})"
                else:
                    value = f"{used.setdefault(table, f'_w{len(used)}')}.{column}"
                pieces += [sql[at:call.start], value]
                at = call.end
            out[name] = "".join(pieces) + sql[at:]
        joins = " ".join(f"LEFT JOIN temp.{q(table)} AS {ref} ON {ref}._rid = {alias}._rid" for table, ref in used.items())
        return out, statements, joins

    def _join_open(self, alias: str, spec: str, items: dict[tuple, WindowCall], params: dict) -> bool:
        """Add ``items``, calls of ordering ``spec``, to the earlier sort of that ordering if they can join it."""
        earlier = self.open.get((alias, spec))
        if earlier is None:
            return False
        sort, have = earlier.insert.sort, earlier.insert.params
        new_calls = tuple((f"c{len(sort.calls) + k}", f"{call.function} OVER ({spec})") for k, call in enumerate(items.values()))
        reads = columns_read(" ".join(sql for _, sql in new_calls), alias, other_tables=False)
        if reads is None or {c.lower() for c in reads} & earlier.changed:
            return False
        used = {p: params.get(p) for call in items.values() for p in call.params}
        if any(p in have and repr(have[p]) != repr(value) for p, value in used.items()):
            return False  # a parameter of the earlier statement with another value
        calls = sort.calls + new_calls
        movable = _sorted_columns(new_calls, items.values(), alias, "")
        grown = WindowSort(sort.table, alias, calls,
                           sort.columns | movable if sort.columns is not None and movable is not None else None)
        earlier.create.sql = _create_narrow(sort.table, [c for c, _ in calls])
        earlier.insert.sql = grown.insert(earlier.source)
        earlier.insert.params = {**have, **used}
        earlier.insert.sort = grown
        for key, (column, _) in zip(items, new_calls):
            self.computed[key] = (sort.table, column, False)
        return True


def _create_narrow(table: str, columns: list[str]) -> str:
    return f"CREATE TEMP TABLE {q(table)} (_rid INTEGER PRIMARY KEY, {', '.join(columns)})"


def _sorted_columns(calls, found, alias: str, join: str) -> frozenset[str] | None:
    """WindowSort.columns of ``calls`` (``found`` their WindowCalls): None unless another connection can sort them."""
    if join.strip() or any(call.name not in _SORTABLE for call in found):
        return None
    return columns_read(" ".join(sql for _, sql in calls), alias, other_tables=False)
