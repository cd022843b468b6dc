"""Add computed columns to the per-customer table, one narrow layer at a time.

The per-customer table is wide (every metric, 60 columns and more), and
copying it costs far more than a layer's own arithmetic: at 100k customers a
full-width copy takes about 0.4 s, a narrow layer 0.04 s.  So each layer is a
narrow table keyed by the base table's rowid holding only its new columns, and
a view joins the base and the layers.  SQLite flattens the view into each
query, reads only the columns a query uses and skips the layers it does not
use (LEFT JOIN on a unique key), so nothing is copied and each expression is
computed once per customer.  Window functions are computed apart, once per
ordering (window_sql).

Still, each layer is a pass over every customer, with a lookup per layer it
reads (about 1 s at 1M customers).  Steps that build on each other without a
window in between (a score's factors, then the score, then its grade) are
stacked into one layer: each step is a subquery over the one before, kept
from being flattened into it, so SQLite runs them as co-routines that hand
every customer's row up the stack in one pass, each expression computed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .expr_sql import quote_identifier as q
from .statement import Statement
from .window_sql import WindowTables, columns_read, find_window_calls


def keyed_view(name: str, table: str) -> list[Statement]:
    """Statements creating view ``temp.name`` of ``table`` with its rowid as ``_rid``: where chains start."""
    return [Statement(f"DROP VIEW IF EXISTS temp.{q(name)}"),
            Statement(f"CREATE TEMP VIEW {q(name)} AS SELECT rowid AS _rid, * FROM {table}")]


@dataclass
class LayerStep:
    """Columns (name -> SQL over ``alias`` and ``join``) that one step of a stacked layer adds."""

    columns: dict[str, str]
    params: dict = field(default_factory=dict)
    join: str = ""
    alias: str = "t"


# Keeps a subquery from being flattened into the query over it (SQLite's rule: no OFFSET in a
# flattened subquery), so it runs as a co-routine and its expressions are computed once per row.
_NOT_FLATTENED = "LIMIT -1 OFFSET 0"


class LayerChain:
    """Layers added on top of ``source``, a view with a ``_rid`` key (``keyed_view`` or another chain's)."""

    def __init__(self, source: str, windows: WindowTables | None = None) -> None:
        self.source = source  # what reads the newest layer: a view of every column so far
        self._base = source
        self._layers: list[tuple[str, list[str]]] = []  # (narrow table, its columns)
        self.windows = windows if windows is not None else WindowTables()  # shared with the chains built on this one

    def add(self, name: str, columns: dict[str, str], params: dict, join: str = "", alias: str = "t") -> list[Statement]:
        """Statements adding ``columns`` (name -> SQL over ``alias`` and ``join``) as layer ``name``.

        Afterwards ``source`` is the view ``temp.name`` of every column so far.
        """
        return self.add_stacked(name, [LayerStep(columns, params, join, alias)])

    def add_stacked(self, name: str, steps: list[LayerStep]) -> list[Statement]:
        """Statements adding the columns of ``steps``, each of which may read those of the steps before, as layer ``name``.

        Only the first step may use window functions (they need the rows of a layer that exists);
        steps that cannot be stacked (see ``_stackable``) become layers of their own, ``name_1``, ``name_2``...
        """
        first_step, rest = steps[0], steps[1:]
        reads = self._stackable(steps)
        if reads is None:
            statements = self.add_stacked(name if not rest else f"{name}_0", [first_step])
            for k, step in enumerate(rest, 1):
                statements += self.add_stacked(f"{name}_{k}", [step])
            return statements
        narrow = f"temp.{q(name + '_n')}"
        first_columns, first, window_joins = self.windows.hoist(name, first_step.columns, self.source, first_step.params,
                                                                first_step.join, first_step.alias)
        added = [*first_columns, *(c for step in rest for c in step.columns)]
        params = {k: v for step in steps for k, v in step.params.items()}
        a = first_step.alias
        carried = sorted(set().union(*reads))  # columns of the source that later steps read
        select = (f"SELECT {a}._rid AS _rid{''.join(f', {a}.{q(c)} AS {q(c)}' for c in carried)}"
                  f"{''.join(f', {sql} AS {q(c)}' for c, sql in first_columns.items())} "
                  f"FROM {self.source} AS {a} {first_step.join} {window_joins}")
        done = list(first_columns)
        for k, step in enumerate(rest, 1):
            carried = sorted(set().union(*reads[k:]))
            b = step.alias
            select = (f"SELECT {b}._rid AS _rid{''.join(f', {b}.{q(c)} AS {q(c)}' for c in [*carried, *done])}"
                      f"{''.join(f', {sql} AS {q(c)}' for c, sql in step.columns.items())} "
                      f"FROM ({select} {_NOT_FLATTENED}) AS {b} {step.join}")
            done += list(step.columns)
        self._layers.append((narrow, added))
        self.windows.added(added)
        picked = "".join(f", l{i}.{q(c)}" for i, (_, cols) in enumerate(self._layers) for c in cols)
        joins = " ".join(f"LEFT JOIN {table} AS l{i} ON l{i}._rid = b._rid" for i, (table, _) in enumerate(self._layers))
        view = f"temp.{q(name)}"
        column_list = ", ".join(q(c) for c in added)
        statements = [
            Statement(f"DROP VIEW IF EXISTS {view}"),
            Statement(f"DROP TABLE IF EXISTS {narrow}"),
            Statement(f"CREATE TEMP TABLE {q(name + '_n')} (_rid INTEGER PRIMARY KEY, {column_list})"),
            *first,
            Statement(f"INSERT INTO {narrow} (_rid, {column_list}) {select}", params),
            Statement(f"CREATE TEMP VIEW {q(name)} AS SELECT b.*{picked} FROM {self._base} AS b {joins}"),
        ]
        self.source = view
        return statements

    def _stackable(self, steps: list[LayerStep]) -> list[frozenset[str]] | None:
        """For each step after the first, the columns of the source it reads; None when the steps cannot be stacked.

        They cannot when a later step has a window, names a column the tokenizer cannot place (no
        table, or SQL it cannot read), adds a column named like one already there, or gives a
        parameter another value than an earlier step.
        """
        reads: list[frozenset[str]] = []
        added: set[str] = set()
        params: dict = {}
        for k, step in enumerate(steps):
            if any(name in added or name == "_rid" for name in step.columns):
                return None
            if any(params.get(key, value) != value for key, value in step.params.items()):
                return None
            if k:
                sql = " ".join([*step.columns.values(), step.join])
                read = columns_read(sql, step.alias)
                if read is None or find_window_calls(sql) != []:
                    return None
                reads.append(frozenset(read - added - {"_rid"}))
            added.update(step.columns)
            params.update(step.params)
        return reads

    def problems_in(self, columns: dict[str, str], cid: str) -> list[str]:
        """Queries of (cid, problem) for each row where a column of ``columns`` has a problem: ``columns`` is
        name -> SQL over ``{0}`` (that column) of the problem's text, or NULL; ``cid`` names the id column.

        Each scans only the narrow layer table holding those columns: through the view of every layer, a
        check of a score's outputs read each customer's row of all layers (10% of a run's per-customer SQL).
        """
        queries = []
        for table, cols in self._layers:
            hit = [c for c in cols if c in columns]
            if hit:
                found = columns[hit[0]].format(q(hit[0])) if len(hit) == 1 else \
                    f"coalesce({', '.join(columns[c].format(q(c)) for c in hit)})"
                queries.append(f"SELECT (SELECT s.{cid} FROM {self._base} AS s WHERE s._rid = n._rid) AS cid, n.problem FROM "
                               f"(SELECT _rid, {found} AS problem FROM {table}) AS n WHERE n.problem IS NOT NULL")
        return queries

    def blank(self, columns: list[str], rows_where: str) -> list[str]:
        """UPDATE statements setting ``columns`` to NULL for the rows of ``source`` where ``rows_where`` holds."""
        self.windows.forget(columns)  # windows computed so far may read the columns blanked here
        updates = []
        for table, cols in self._layers:
            hit = [c for c in cols if c in columns]
            if hit:
                sets = ", ".join(f"{q(c)} = NULL" for c in hit)
                updates.append(f"UPDATE {table} SET {sets} WHERE _rid IN (SELECT _rid FROM {self.source} WHERE {rows_where})")
        return updates

