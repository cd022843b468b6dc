"""Turn a schema-valid policy document into a checked, typed policy model.

The JSON Schema checks shapes; this module checks meaning: one kind per
metric, expressions that parse and type-check against known names, no
metric cycles, ids that are unique and referenced correctly.  All problems
are collected and raised together so users fix them in one pass.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import expr_ast as ast
from . import calendar_windows, metric_offset
from .data_mapping import SOURCES, DataMapping, build_data_mapping
from .errors import Diagnostic, PolicyError, UsageError
from .expr_parser import KEYWORDS, ExpressionSyntaxError, parse_expression
from .expr_sql import SqlParams, function_plugins, to_sql
from .expr_types import (BOOL, DATE, NULL, NUMBER, TEXT, TYPES, ExpressionTypeError, TypeChecker, check_round_digits, did_you_mean,
                         is_iso_date, value_type, with_article)
from .ime_text import iso_date, number_fix
from .policy_files import content_hash, load_policy_document, resolve_policy_path, shipped_policy_names
from .plugin_api import BatchActions, BatchOutputs, Column, SqlActions, SqlOutputs
from .plugin_context import PluginContext, output_name, unknown_grade
from .plugin_manager import Contribution, get_registry
from .plugin_source import module_of, raised_at
from .unmapped_columns import row_source, unmapped_column
from . import removed_names
from .plugin_plan import PLUGIN_BUG_HINT, check_connection, check_plan, function_sql_problem
from .run_metrics import KEY_COLUMNS, is_reserved
from .errors import PluginError
from .schema_validation import schema_validator, validate_document, validate_params
from .user_text import joined
from .yaml_source import DUPLICATE_HINT, Position, SourceDocument, format_path

AGGREGATES = ("sum", "avg", "min", "max", "count_distinct")
POPULATION = ("rank", "percentile", "ntile", "cumulative_share")
# kind -> options allowed beside the kind key
METRIC_KINDS: dict[str, set[str]] = {
    **{k: {"from", "where", "window", "offset", "default"} for k in AGGREGATES},
    "count": {"where", "window", "offset", "default"},
    "recency": {"where", "window"},
    "repurchase_rate": {"where", "window", "offset"},
    "tenure": set(),
    "trend": {"from", "where", "window", "offset"},
    "collection_rate": {"window", "offset"},
    "on_time_rate": {"window", "offset"},
    "overdue": {"min_days", "max_days"},
    "outstanding": set(),
    "contract_days_left": {"where"},
    "expr": set(),
    "attribute": set(),
    "rank": {"better"},
    "percentile": {"better"},
    "ntile": {"better", "n"},
    "cumulative_share": set(),
}
COMMON_METRIC_KEYS = {"label", "description"}
# Metrics computed by the engine itself for tier methods; users cannot define them.
INTERNAL_KINDS = ("positive_count",)


@dataclass
class Expr:
    """A parsed expression and where its text is, for errors and explanations."""

    text: str
    node: ast.Node
    path: tuple


@dataclass
class Metric:
    name: str
    kind: str
    spec: dict
    path: tuple
    type: str = NUMBER
    source: str | None = None  # for metrics read from a source table
    operand: Expr | None = None  # row expression (aggregates) or customer expression (expr)
    where: Expr | None = None
    of: str | None = None  # the metric a population metric ranks
    deps: set[str] = field(default_factory=set)
    internal: bool = False

    @property
    def label(self) -> str:
        return self.spec.get("label") or self.name

    @property
    def is_population(self) -> bool:
        return self.kind in POPULATION or self.kind in INTERNAL_KINDS


@dataclass
class Rule:
    id: str
    label: str
    condition: Expr | None
    is_default: bool
    path: tuple
    extra: dict = field(default_factory=dict)


@dataclass
class Tier:
    rule: Rule
    subgrades: list[Rule]

    @property
    def id(self) -> str:
        return self.rule.id


@dataclass
class ServiceLevel:
    """One service level for one tier.

    An entry written for several tiers (``tier: [A, B, C]``) becomes one ServiceLevel per tier, in the
    entry's place and with its id: everything that picks, counts or checks service levels per tier
    (the run's CASE, explain, analyze, coverage) then reads it exactly as if it were written once per
    tier.  ``tiers`` keeps the written list for what shows the entry as written (definitions, the
    rule table); it is ``(tier,)`` for an entry of one tier.
    """

    id: str
    tier: str
    subgrade: str | None
    stage: str | None
    details: dict
    path: tuple
    condition: Expr | None = None
    tiers: tuple[str, ...] = ()

    @property
    def specificity(self) -> int:
        return (4 if self.condition else 0) + (2 if self.subgrade else 0) + (1 if self.stage else 0)

    @property
    def shared(self) -> bool:
        """Written for several tiers (``tier: [A, B]``)."""
        return len(self.tiers) > 1

    @property
    def tier_text(self) -> str:
        """The tier or tiers as written: 'A', or 'A, B, C' for a shared entry (the rule table's cell form)."""
        return ", ".join(self.tiers) if self.tiers else self.tier


def written_service_levels(levels: list[ServiceLevel]) -> list[ServiceLevel]:
    """One ServiceLevel per entry as written (the first of a shared entry's), in the policy's order.

    For what lists entries rather than tiers: the stored definitions (one row per id), coverage."""
    seen: set[str] = set()
    out = []
    for sl in levels:
        if sl.id not in seen:
            seen.add(sl.id)
            out.append(sl)
    return out


@dataclass
class PluginStep:
    """One entry of the scores/credit/actions sections, compiled by its plugin."""

    section: str
    entry: str
    contribution: Contribution
    plan: Any
    on_error: str
    params: SqlParams
    path: tuple
    used: set[str] = field(default_factory=set)  # policy names the plugin reads

    @property
    def plugin(self) -> str:
        return self.contribution.plugin


@dataclass
class Output:
    """A name a plugin entry adds to the policy's scope."""

    name: str
    column: Column
    step: PluginStep


@dataclass
class Policy:
    name: str
    version: str | None
    description: str
    sha256: str
    document: dict
    files: list[str]
    source: SourceDocument
    data: DataMapping
    metrics: dict[str, Metric]
    tier_method: str
    tier_metric: str | None
    hit_policy: str
    tiers: list[Tier]
    stages: list[Rule]
    service_levels: list[ServiceLevel]
    revenue_metric: str | None
    key_metrics: list[str]
    plugin_steps: list[PluginStep] = field(default_factory=list)
    action_steps: list[PluginStep] = field(default_factory=list)
    outputs: dict[str, Output] = field(default_factory=dict)
    overrides: tuple[str, str] | None = None  # ("file", path) or ("table", name)
    function_plugins: frozenset[str] = frozenset()  # plugins whose expression functions it calls
    expressions: dict[tuple, str] = field(default_factory=dict)  # path -> text of every expression (policy_warnings)

    def scope(self) -> dict[str, str]:
        """Names usable in customer-level conditions, with their types."""
        names = {n: c.type for n, c in self.data.attributes.items()}
        names.update({n: m.type for n, m in self.metrics.items()})
        names.update({n: o.column.type for n, o in self.outputs.items()})
        return names

    def tier(self, tier_id: str) -> Tier | None:
        return next((t for t in self.tiers if t.id == tier_id), None)


def sqlite_can_parse(node: ast.Node) -> None:
    """SQLite's parser has a shallow stack: find out now, not in the middle of a run.

    The SQL of each plugin function called is checked on its own too, so that its mistakes name the plugin.
    """
    params = SqlParams()
    sql = to_sql(node, lambda name: "NULL", params)
    failed: sqlite3.Error | None = None
    try:
        check_connection().execute(f"EXPLAIN SELECT {sql}", {**dict.fromkeys(params.values), "as_of": None})
    except sqlite3.OperationalError as exc:
        if "overflow" in str(exc) or "too many" in str(exc) or "too large" in str(exc):
            raise ExpressionTypeError("the expression is nested too deeply for SQLite; split it into metrics", node) from None
        failed = exc
    except sqlite3.ProgrammingError as exc:  # a parameter the plugin bound itself
        failed = exc
    for call in reversed([n for n in ast.walk(node) if isinstance(n, ast.Call)]):  # a call after its arguments'
        contribution = get_registry().get("function", call.function)  # None for a built-in
        if contribution is not None:
            _check_plugin_function(call, contribution)
    if failed is not None:
        raise failed


def _check_plugin_function(call: ast.Call, contribution: Contribution) -> None:
    """A function's SQL may read only its arguments (NULL here): a column, table or parameter of its own,
    or an aggregate, passes the checks of the text alone and fails the run, or grades everyone alike."""
    params = SqlParams()
    sql = to_sql(call, lambda name: "NULL", params)
    problem = function_sql_problem(sql, {**dict.fromkeys(params.values), "as_of": None})
    if problem is not None:
        raise PluginError(f"function {call.function}() of plugin {contribution.plugin!r} returned invalid SQL: {problem} "
                          f"(SQL: {sql[:200]})",
                          hint=PLUGIN_BUG_HINT)


class _Builder:
    def __init__(self, doc: SourceDocument, schema_failed: set[tuple] | frozenset[tuple] = frozenset()):
        self.doc = doc
        self.problems: list[Diagnostic] = []
        self.schema_failed = schema_failed  # what the schema rejected (see _schema_failures): not checked again
        # Entries already reported: names they would define raise no more errors.  A plugin entry
        # also stands for its outputs (entry_suffix), a metric only for itself.
        self.failed_entries: set[str] = set()
        self.failed_metrics: set[str] = set()
        self.function_plugins: set[str] = set()  # plugins whose expression functions the policy calls
        self.expressions: dict[tuple, str] = {}  # path -> text of each expression that parsed (policy_warnings)
        self.labels: dict[str, str] = {}  # a metric's label -> its name: a condition that names a metric by its label

    def from_failed_entry(self, name: str | None) -> bool:
        return name is not None and (name in self.failed_metrics
                                     or any(name == e or name.startswith(e + "_") for e in self.failed_entries))

    def keyword_name(self, path: tuple, name: str) -> bool:
        """Report a name the expression language reads as a keyword (``true``, ``in``): nothing could use it."""
        if name.lower() not in KEYWORDS:
            return False
        self.error(path, f"{name!r} is a keyword of the expression language; choose another name")
        return True

    def unknown_metric(self, path: tuple, name: str, metrics: dict) -> None:
        """Report a metric name nothing defines, unless it is one an entry already reported as wrong."""
        if not self.from_failed_entry(name):
            removed = self.removal_note(path, name)
            self.error(path, f"unknown metric {name!r}" + (f": {removed}" if removed else did_you_mean(name, metrics)),
                       key=False)

    def removal_note(self, path: tuple, name: str) -> str | None:
        """What removed ``name``, named at ``path``, when an ``extends`` child did (removed_names)."""
        return removed_names.note(self.doc.removed, name, self.doc.value_position(path), path, self.doc.file)

    def error(self, path: tuple, message: str, *, key: bool = True) -> None:
        pos = self.doc.position(path) if key else self.doc.value_position(path)
        self.problems.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), message))

    def text_error(self, path: tuple, line: int, col: int, message: str) -> None:
        """A problem at ``line``:``col`` of the expression at ``path``."""
        pos = self.doc.text_position(path, line, col)
        self.problems.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), message))

    def parse(self, text: str, path: tuple) -> ast.Node | None:
        try:
            node = parse_expression(text)
        except ExpressionSyntaxError as exc:
            for problem in exc.problems:
                pos = self.doc.text_position(path, problem.line, problem.col)
                self.problems.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), f"syntax error: {problem.message}"))
            return None
        self.expressions[tuple(path)] = text
        return node

    def typecheck(self, node: ast.Node, path: tuple, checker: TypeChecker, condition: bool) -> str | None:
        """The type of the expression, or None when it is reported as wrong (or uses a name of a failed entry).

        Every unknown name is reported, not just the first.  The types of the rest are still checked, the
        unknown names standing for values of any type (missing ones), so a type error reported with them
        is one of its own.
        """
        unknown = checker.unknown_names(node)
        for exc in unknown:
            if not self.from_failed_entry(exc.unknown):  # the entry's own error says it all
                self._expression_problem(path, exc, unmapped_column(checker.source, exc, node, path))
        if unknown:
            checker = TypeChecker({**checker.scope, **{exc.unknown: NULL for exc in unknown}}, checker.scope_label,
                                  checker.source)
        try:
            if condition:
                checker.check_condition(node)
                found = BOOL
            else:
                found = checker.infer(node)
            check_round_digits(node)
            if unknown:
                return None
            try:
                sqlite_can_parse(node)
            except PluginError as exc:  # a plugin function failed or gave bad SQL: say which expression called it
                pos = self.doc.value_position(path)
                raise PluginError(str(Diagnostic(pos.file, pos.line, pos.col, format_path(path), exc.message)),
                                  hint=exc.hint) from exc
            self.function_plugins |= function_plugins(node)
            return found
        except ExpressionTypeError as exc:
            self._expression_problem(path, exc)
            return None

    def _expression_problem(self, path: tuple, exc: ExpressionTypeError, advice: str = "") -> None:
        pos = self.doc.text_position(path, exc.line, exc.col)
        hint = f" ({exc.hint})" if exc.hint and "did you mean" not in exc.message and not exc.hint.startswith("known:") else ""
        hint += advice
        message = exc.message.partition("; did you mean")[0] if advice else exc.message
        removed = self.removal_note(path, exc.unknown) if exc.unknown is not None else None
        if removed is not None:  # not a misspelling: no "did you mean", and the line that removed it
            message, hint = exc.message.partition("; did you mean")[0] + f": {removed}", ""
        named = self.labels.get(exc.unknown) if exc.unknown is not None and "did you mean" not in exc.message else None
        if named is not None:  # `最近购买天数 > 120`: the label a report shows, where the condition needs the name
            hint += f"; {exc.unknown!r} is the label of metric {named!r}: a condition names a metric, write {named}"
        self.problems.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), message + hint))

    # ---- metrics -------------------------------------------------------
    def metrics(self, section: dict, data: DataMapping) -> dict[str, Metric]:
        metrics: dict[str, Metric] = {}
        for name, spec in section.items():
            path = ("metrics", name)
            kind = self._metric_kind(name, spec, path, data)
            if kind is None:
                self.failed_metrics.add(name)  # reported: what uses it does not say it is unknown
                continue
            metrics[name] = self._metric(name, kind, spec, path, data)
        self.labels.update({str(m.label).strip(): n for n, m in metrics.items() if str(m.label).strip() != n})
        self._resolve_types(metrics, data)
        return metrics

    def _metric_kind(self, name: str, spec: dict, path: tuple, data: DataMapping) -> str | None:
        """The kind of the metric, or None when its name or its kind keys are reported as wrong."""
        if path in self.schema_failed:
            return None
        if name.startswith("_"):
            self.error(path, f"metric names starting with '_' are reserved: rename {name!r}")
            return None
        if is_reserved(name):
            self.error(path, f"metric name {name!r} is reserved: runs store metric values in table crm_metrics, "
                             f"whose key columns are {' and '.join(KEY_COLUMNS)}; rename the metric")
            return None
        if self.keyword_name(path, name):
            return None
        if name in data.attributes:
            self.error(path, f"metric {name!r} has the same name as a customer attribute; rename one of them")
            return None
        kinds = [k for k in spec if k in METRIC_KINDS]
        if len(kinds) != 1:
            what = f"has {len(kinds)} ({', '.join(kinds)})" if kinds else "has none"
            self.error(path, f"a metric needs exactly one kind key (sum, count, recency, expr, ntile, ...); this one {what}")
            return None
        kind = kinds[0]
        for key in spec:
            if key == "offset":  # said with the reason and the way to write it (_metric, for plugins' metrics too)
                continue
            if key != kind and key not in METRIC_KINDS[kind] and key not in COMMON_METRIC_KEYS:
                allowed = sorted(METRIC_KINDS[kind] | COMMON_METRIC_KEYS)
                self.error(path + (key,), f"{key!r} does not apply to {with_article(kind)} metric; allowed: {', '.join(allowed) or '(none)'}")
        return kind

    def _row_checker(self, source: str, data: DataMapping) -> TypeChecker:
        cols = data.sources[source].columns
        return TypeChecker({n: c.type for n, c in cols.items()}, scope_label=f"{source} column",
                           source=row_source(source, data))

    def _metric(self, name: str, kind: str, spec: dict, path: tuple, data: DataMapping) -> Metric:
        m = Metric(name, kind, spec, path)
        if kind in AGGREGATES or kind == "trend":
            m.source = spec.get("from", "orders")
        elif kind in ("count", "recency", "repurchase_rate"):
            m.source = spec[kind]
        elif kind in ("collection_rate", "on_time_rate", "overdue", "outstanding"):
            m.source = "receivables"
        elif kind == "contract_days_left":
            m.source = "contracts"
        if kind == "trend" and spec.get("window", "all") == "all":
            self.error(path, "a trend needs a window (e.g. `window: 6 months`) to compare with the window before it")
        if kind == "repurchase_rate" and spec.get("window", "all") == "all":
            self.error(path, "a repurchase_rate needs a window (e.g. `window: 12 months`): it is the share of its months with a purchase")
        if (why := calendar_windows.refused(name, kind, spec)) is not None:  # trend, repurchase_rate
            self.error(path + ("window",), why, key=False)
        if "offset" in spec:
            why = metric_offset.refused(name, kind, spec)
            if why is None and kind not in ("trend", "repurchase_rate"):  # those two were just told they need a window
                why = metric_offset.without_window(spec)
            if why is not None:
                self.error(path + ("offset",), why)
        if kind == "overdue" and "max_days" in spec and spec.get("min_days", 1) > spec["max_days"]:
            low, high = spec.get("min_days", 1), spec["max_days"]
            where, fix = ("min_days", "swap them") if "min_days" in spec else ("max_days", "make max_days at least 1")
            self.error(path + (where,), f"min_days {low}{'' if 'min_days' in spec else ' (the default)'} is more than max_days "
                                        f"{high}: no invoice is overdue by at least {low} and at most {high} days, so the "
                                        f"metric would be 0 for everyone; {fix}", key=False)
        typed = kind == "count"  # the type of the metric's values is known (for its default)
        if m.source:
            checker = self._row_checker(m.source, data)
            if kind in AGGREGATES or kind == "trend":
                node = self.parse(spec[kind], path + (kind,))
                if node is not None:
                    found = self.typecheck(node, path + (kind,), checker, condition=False)
                    typed = found in TYPES
                    if found and kind in ("sum", "avg", "trend") and found != NUMBER:
                        self.error(path + (kind,), f"{kind} needs a number, but {spec[kind]!r} is a {found}", key=False)
                        typed = False
                    elif found and kind in ("min", "max") and found == BOOL:
                        self.error(path + (kind,), f"{kind} needs a number, date or text", key=False)
                        typed = False
                    if found:
                        m.type = found if kind in ("min", "max") else NUMBER
                    m.operand = Expr(spec[kind], node, path + (kind,))
            if typed and "default" in METRIC_KINDS[kind]:
                self._check_default(m)
            if "where" in spec:
                node = self.parse(spec["where"], path + ("where",))
                if node is not None and self.typecheck(node, path + ("where",), checker, condition=True):
                    m.where = Expr(spec["where"], node, path + ("where",))
        if kind == "expr":
            node = self.parse(spec["expr"], path + ("expr",))
            if node is not None:
                m.operand = Expr(spec["expr"], node, path + ("expr",))
                m.deps = ast.names_in(node)
        elif kind == "attribute":
            attr = spec["attribute"]
            if attr not in data.attributes and (removed := self.removal_note(path + ("attribute",), attr)) is not None:
                self.error(path + ("attribute",), f"unknown customer attribute {attr!r}: {removed}", key=False)
            elif attr not in data.attributes:
                self.error(path + ("attribute",), f"unknown customer attribute {attr!r}{did_you_mean(attr, data.attributes)}; "
                           f"map it under data.customers.attributes", key=False)
            else:
                m.type = data.attributes[attr].type
        elif kind in POPULATION:
            m.of = spec[kind]
            m.deps = {m.of}
        return m

    def _check_default(self, m: Metric) -> None:
        """A default must be of the metric's type: SQLite orders any text above any number, so a text default
        of a sum made `z > 1_000_000` true for every customer without rows."""
        value = m.spec.get("default")
        found = value_type(value)
        if value is None or found == m.type or (found == TEXT and m.type == DATE and is_iso_date(value)):
            return
        wanted = {NUMBER: ("a number", "write a number, e.g. `default: 0`"),
                  DATE: ("a date", "write a date in quotes, e.g. `default: '2026-01-01'`"),
                  TEXT: ("text", f"quote it: `default: '{value}'`")}
        what, fix = wanted.get(m.type, (with_article(m.type), "change or remove it"))
        if m.type == NUMBER and (written := number_fix(value)) is not None:
            fix = written  # '10,000', '1万', '１０': YAML reads a number written as in a report as text
        elif m.type == DATE and (day := iso_date(value)) is not None:
            fix = f"write it as YYYY-MM-DD, in quotes: `default: '{day}'`"
        actual = "not a date" if m.type == DATE and found == TEXT else {NUMBER: "a number", TEXT: "text"}.get(found, with_article(found))
        self.error(m.path + ("default",), f"the default must be {what}, like the values of this {m.kind} metric, "
                                          f"but {value!r} is {actual}; {fix}", key=False)

    def _resolve_types(self, metrics: dict[str, Metric], data: DataMapping) -> None:
        state: dict[str, str] = {}
        attributes = {n: c.type for n, c in data.attributes.items()}

        def visit(name: str, chain: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = chain[chain.index(name):] + [name]
                if len(cycle) == 2:  # `margin_12m: {expr: profit_12m / margin_12m}`: a slip of the name meant
                    self.error(metrics[name].path, f"metric {name!r} is computed from itself ({metrics[name].kind}: "
                                                   f"{metrics[name].spec.get(metrics[name].kind)}), so it has no value "
                                                   f"to start from; name the metric it is computed from instead")
                else:
                    self.error(metrics[name].path, f"metrics depend on each other in a cycle: {' -> '.join(cycle)}")
                raise _Cycle
            state[name] = "visiting"
            m = metrics[name]
            for dep in sorted(m.deps):
                if dep in metrics:
                    visit(dep, chain + [name])
            if m.kind == "expr" and m.operand:
                scope = dict(attributes)
                scope.update({n: x.type for n, x in metrics.items() if state.get(n) == "done"})
                scope.update({n: x.type for n, x in metrics.items() if n not in scope})
                found = self.typecheck(m.operand.node, m.operand.path, TypeChecker(scope, "metric or attribute"), condition=False)
                m.type = found if found and found != "null" else NUMBER
                m.deps = {d for d in m.deps if d in metrics}
            elif m.kind in POPULATION:
                if m.of not in metrics:
                    self.unknown_metric(m.path + (m.kind,), m.of, metrics)
                    m.deps = set()
                elif metrics[m.of].type != NUMBER:
                    self.error(m.path + (m.kind,), f"{m.kind} needs a numeric metric, but {m.of!r} is a {metrics[m.of].type}", key=False)
            state[name] = "done"

        for name in metrics:
            try:
                visit(name, [])
            except _Cycle:
                for n, s in state.items():
                    if s == "visiting":
                        state[n] = "done"
                        metrics[n].deps = set()

    # ---- rules -----------------------------------------------------------
    def rules(self, items: list[dict], base: tuple, scope: dict[str, str], what: str, need_default: bool = True) -> list[Rule]:
        rules: list[Rule] = []
        defaults = []
        checker = TypeChecker(scope, "metric or attribute")
        for i, item in enumerate(items):
            path = base + (i,)
            condition = None
            if "when" in item:
                node = self.parse(item["when"], path + ("when",))
                if node is not None and self.typecheck(node, path + ("when",), checker, condition=True):
                    condition = Expr(item["when"], node, path + ("when",))
                if item.get("default"):
                    self.error(path, f"{what} {item['id']!r} has both `when` and `default: true`; a default has no condition")
            elif not item.get("default"):
                self.error(path, f"{what} {item['id']!r} needs a `when` condition, or `default: true`")
            if item.get("default"):
                defaults.append((item["id"], path))
            extra = {k: v for k, v in item.items() if k not in ("id", "label", "when", "default", "subgrades")}
            rules.append(Rule(item["id"], item.get("label") or item["id"], condition, bool(item.get("default")), path, extra))
        if need_default and not defaults:
            self.error(base, f"no default {what}: mark the {what} for customers no rule matches with `default: true`")
        if len(defaults) > 1:  # at the second one: the first is where the reader's eye has already been
            ids = [d for d, _ in defaults]
            others = "the others" if len(ids) > 2 else "the other"
            self.error(defaults[1][1] + ("default",),
                       f"more than one default {what}: {', '.join(ids)}; one {what} takes the customers no rule "
                       f"matches: keep `default: true` on one of them (usually the last) and give {others} a `when` "
                       f"condition")
        return rules

    def check_unique(self, rules: list[Rule], seen: dict[str, tuple[tuple, str]], what: str) -> None:
        """Report ids used twice, naming the other use.  All tiers are checked before any sub-grade, so
        the other use of a sub-grade's id (a tier's) may come later in the file: "first used" only when
        it is earlier."""
        for r in rules:
            if r.id not in seen:
                seen[r.id] = (r.path, what)
                continue
            other_path, other_what = seen[r.id]
            here, other = self.doc.position(r.path + ("id",)), self.doc.position(other_path + ("id",))
            same_file = other.file == here.file
            when = "first" if same_file and (other.line, other.col) < (here.line, here.col) else "also"
            by = f" by the {other_what}" if other_what != what else ""
            where = f"line {other.line}" if same_file else f"{other.file}:{other.line}"
            self.error(r.path + ("id",), f"duplicate {what} id {r.id!r} ({when} used{by} at {where})")


class _Cycle(Exception):
    pass


# Names an action generator can use for a customer's grades, and their result columns.
RESULT_NAMES = {"tier": "_tier", "subgrade": "_subgrade", "stage": "_stage", "service_level": "_service_level"}

SECTION_KINDS = {"scores": ("scorer", (SqlOutputs, BatchOutputs)), "credit": ("credit_check", (SqlOutputs, BatchOutputs)),
                 "actions": ("action", (SqlActions, BatchActions))}


def _other_section(registry: Any, section: str, name: str) -> str | None:
    """The message for a ``use:`` that names a contribution of another section's kind (an action generator under
    ``scores``), or None: a "did you mean" among this section's kind would send the author to a wrong name."""
    for other, (kind, _) in SECTION_KINDS.items():
        if other != section and registry.get(kind, name) is not None:
            what = {"scorer": "a scorer", "credit_check": "a credit check", "action": "an action generator"}[kind]
            return (f"{name!r} is {what}, which the {other} section uses, not {section}: move this entry under "
                    f"`{other}:`")
    return None


def _plugin_entries(b: _Builder, section: str, entries: dict, data: DataMapping, metrics: dict[str, Metric],
                    scope: dict[str, str], outputs: dict[str, Output], start: int,
                    grades: dict[str, list[str] | None] | None = None) -> list[PluginStep]:
    """Look up, check and compile each entry of a plugin section; its outputs join ``scope``.

    ``grades``: for actions, the ids the policy gives each of RESULT_NAMES, which the entries' params name.
    """
    from .metric_sql import CID, CNAME  # the columns every layer's table has; metric_sql imports this module

    kind, plan_types = SECTION_KINDS[section]
    registry = get_registry()
    steps: list[PluginStep] = []
    for i, (entry, spec) in enumerate(entries.items()):
        path = (section, entry)
        if path in b.schema_failed or b.keyword_name(path, entry):
            b.failed_entries.add(entry)  # reported: neither it nor its outputs raise more errors
            continue
        if entry in scope:
            b.error(path, f"{entry!r} is already a metric, attribute or plugin output; give this entry another name")
            continue
        contribution = registry.get(kind, spec["use"])
        b.failed_entries.add(entry)  # until it compiles
        if contribution is None:
            elsewhere = _other_section(registry, section, spec["use"])
            if elsewhere is not None:  # `use: churn_warning` under scores: right name, wrong section
                b.error(path + ("use",), elsewhere, key=False)
                continue
            installed = registry.names(kind)
            suggestion, note = did_you_mean(spec['use'], installed), registry.absent_note()
            # Nothing like it is loaded: most often its package went into another Python than crm-rules runs in.
            where = "" if suggestion or note else f", which lists the plugins installed in {sys.prefix}"
            b.error(path + ("use",), f"unknown {kind.replace('_', ' ')} {spec['use']!r}{suggestion} "
                    f"(installed: {', '.join(installed) or 'none'}{note}; see `crm-rules plugins`{where})", key=False)
            continue
        spec.setdefault("params", {})
        owner = f"{kind.replace('_', ' ')} {contribution.name!r} of plugin {contribution.plugin!r}"
        problems = validate_params(b.doc, contribution.schema, path + ("params",), owner)
        if problems:
            b.problems.extend(problems)
            continue
        ctx = PluginContext(b, data, metrics, scope, entry, path, start + i)
        ctx.owner = owner
        if section == "actions":
            ctx.locals = {name: (f"t.{column}", TEXT) for name, column in RESULT_NAMES.items()}
            ctx.grades = dict(grades or {})
        try:
            plan = contribution.fn(ctx, spec["params"])
        except Exception as exc:
            where = raised_at(exc, module_of(contribution.fn))
            raise PluginError(f"plugin {contribution.plugin!r} failed while compiling {section}.{entry} "
                              f"({kind} {contribution.name!r}){f' at {where}' if where else ''}: {type(exc).__name__}: {exc}",
                              hint="this is a bug in the plugin; run with --debug for the traceback") from exc
        if ctx.failed:
            continue
        if not isinstance(plan, plan_types):
            expected = " or ".join(t.__name__ for t in plan_types)
            got = ("None without reporting a problem" if plan is None
                   else f"{type(plan).__name__} {_short_repr(plan)}")
            raise PluginError(f"{kind} {contribution.name!r} of plugin {contribution.plugin!r} (in {section}.{entry}) "
                              f"returned {got}, expected {expected}",
                              hint=f"this is a bug in the plugin: return {expected}, or report the problem in the params "
                                   f"with ctx.error(where, message) and then return None" if plan is None else
                              f"this is a bug in the plugin: return {expected} (from crm_rules.engine.plugin_api)"
                              f"{_wrapped(plan, section)}")
        columns = {CID, CNAME, *scope, *metrics, *(RESULT_NAMES.values() if section == "actions" else ())}
        check_plan(plan, columns, lambda suffix, entry=entry: output_name(entry, suffix),
                   f"{kind} {contribution.name!r} of plugin {contribution.plugin!r} (in {section}.{entry})")
        b.failed_entries.discard(entry)
        step = PluginStep(section, entry, contribution, plan, spec.get("on_error", "fail"), ctx.sql_params, path, ctx.used)
        steps.append(step)
        columns = ([c for s in plan.steps for c in s.items()] if isinstance(plan, SqlOutputs)
                   else list(plan.outputs.items()) if isinstance(plan, BatchOutputs) else [])
        for suffix, column in columns:
            name = output_name(entry, suffix)
            if suffix.startswith("_"):
                continue
            if name in scope:
                b.error(path, f"output {name!r} of {section}.{entry} clashes with an existing name; rename the entry")
                continue
            if is_reserved(name):
                b.error(path, f"output {name!r} of {section}.{entry} has a reserved name (a key column of table "
                              f"crm_metrics, where runs store it); rename the entry")
                continue
            scope[name] = column.type
            outputs[name] = Output(name, column, step)
    return steps


def _wrapped(plan: Any, section: str) -> str:
    """``", e.g. SqlActions(the list)"``: the plan a plugin meant to return when it returned its contents."""
    if section == "actions" and isinstance(plan, list):
        return ", e.g. SqlActions(the list)"
    if section != "actions" and isinstance(plan, dict):
        return ", e.g. SqlOutputs([the dict])"
    if section != "actions" and isinstance(plan, list):
        return ", e.g. SqlOutputs(the list)"
    return ""


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tiers(b: _Builder, section: dict, metrics: dict[str, Metric], scope: dict[str, str],
           outputs: dict[str, Output] | None = None) -> tuple[str, str | None, str, list[Tier]]:
    method = section.get("method", "rules")
    hit_policy = section.get("hit_policy", "first")
    levels = section["levels"]
    base = ("tiers", "levels")
    metric = section.get("metric")
    if method != "rules":
        for i, level in enumerate(levels):
            for key in ("when", "default"):
                if key in level:
                    b.error(base + (i, key), f"`{key}` is for method rules; method {method} places customers by {metric or 'a metric'}")
        if "hit_policy" in section:
            b.error(("tiers", "hit_policy"), f"hit_policy is for method rules, not {method}")
        if metric is None:
            b.error(("tiers",), f"method {method} needs `metric:` (the metric customers are ranked by)")
        elif metric not in metrics and metric in (outputs or {}):
            # A plugin's score looks like a metric in every other place (conditions, explain); "unknown metric"
            # sent its author hunting for a typo.  The ranking is computed with the metrics, before plugins run.
            step = outputs[metric].step
            b.error(("tiers", "metric"), f"{metric!r} is an output of {step.section}.{step.entry} (plugin "
                    f"{step.plugin!r}), not a metric: method {method} ranks customers by a metric, computed before "
                    f"the plugin entries; grade by the output with method rules (`when: \"{metric} >= ...\"`)",
                    key=False)
            metric = None
        elif metric not in metrics:
            b.unknown_metric(("tiers", "metric"), metric, metrics)
            metric = None
        elif metrics[metric].type != NUMBER:
            b.error(("tiers", "metric"), f"{metric!r} is a {metrics[metric].type}; tiers need a numeric metric", key=False)
            metric = None
        levels = _generated_levels(b, method, section, metric, metrics) if metric else []
        scope = {**scope, **{n: m.type for n, m in metrics.items()}}
    else:
        for key in ("metric", "zero_value"):
            if key in section:
                b.error(("tiers", key), f"`{key}` is for methods pareto, quantile and top_n")
        for i, level in enumerate(levels):
            for key in ("up_to", "top"):
                if key in level:
                    b.error(base + (i, key), f"`{key}` is for methods pareto/quantile/top_n, not rules")
    rules = b.rules(levels, base, scope, "tier") if levels else []
    tiers = []
    for rule, level in zip(rules, levels):
        subs = []
        if "subgrades" in level:
            subs = b.rules(level["subgrades"], base + (levels.index(level), "subgrades"), scope, f"sub-grade of {rule.id}")
        tiers.append(Tier(rule, subs))
    return method, metric, hit_policy, tiers


def _rejected_conditions(b: _Builder, section: Any, base: tuple, scope: dict[str, str]) -> None:
    """Check the `when` conditions of a tiers or lifecycle section the schema rejected.

    Such a section is not built (one tier id in Chinese, one misspelt key), but its conditions can still be
    read; without this, a `≥` or an unquoted '华东' in them came only in the next `validate`, after the id
    was fixed.
    """
    items = section.get(base[-1]) if isinstance(section, dict) else None
    checker = TypeChecker(scope, "metric or attribute")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        entries = [(base + (i,), item)]
        subgrades = item.get("subgrades")
        if isinstance(subgrades, list):
            entries += [(base + (i, "subgrades", j), sub) for j, sub in enumerate(subgrades) if isinstance(sub, dict)]
        for path, entry in entries:
            when = entry.get("when")
            if isinstance(when, str) and when.strip():
                node = b.parse(when, path + ("when",))
                if node is not None:
                    b.typecheck(node, path + ("when",), checker, condition=True)


def _generated_levels(b: _Builder, method: str, section: dict, metric: str, metrics: dict[str, Metric]) -> list[dict]:
    """Pareto/quantile/top_n become ordinary rules over engine-computed metrics."""
    levels = section["levels"]
    key = "up_to" if method == "pareto" else "top"
    cut = [lv for lv in levels if key in lv]
    rest = [lv for lv in levels if key not in lv]
    zero = section.get("zero_value")
    ids = [lv["id"] for lv in levels]
    if zero is not None and zero not in ids:
        b.error(("tiers", "zero_value"), f"unknown tier {zero!r}{did_you_mean(zero, ids)}", key=False)
        return []
    if levels[: len(cut)] != cut:
        b.error(("tiers", "levels"), f"levels with `{key}` must come first, in order, before the rest")
        return []
    if not rest:
        b.error(("tiers", "levels"), f"the last level must have no `{key}`: it holds everyone else")
        return []
    values = [lv[key] for lv in cut]
    if any(x >= y for x, y in zip(values, values[1:])):
        b.error(("tiers", "levels"), f"`{key}` values must increase from level to level: {values}")
    if method == "quantile" and any(v > 1 for v in values):
        b.error(("tiers", "levels"), "quantile `top` values are shares of customers between 0 and 1, e.g. 0.2")
    if method == "top_n" and any(v != int(v) for v in values):
        b.error(("tiers", "levels"), "top_n `top` values are whole numbers of customers")
    zero = zero or rest[0]["id"]
    extra_rest = [lv["id"] for lv in rest[1:] if lv["id"] != zero]
    if extra_rest:
        b.error(("tiers", "levels"), f"levels {extra_rest} have no `{key}`; only one level holds the rest (and `zero_value` may name one more)")
    helper = _tier_helpers(method, metric, metrics)
    out = []
    for lv in levels:
        new = {k: v for k, v in lv.items() if k not in (key, "when", "default")}  # _tiers reports both
        if key in lv:
            v = lv[key]
            if method == "pareto":
                new["when"] = f"{metric} > 0 and {helper} < {v!r}"
            elif method == "quantile":
                # the share of customers ahead against `top`, not the count against top × population: 0.07 * 100
                # is 7.000000000000001 in floating point, which let an 8th customer into the top 7%
                new["when"] = f"{metric} > 0 and ({helper} - 1) / _tier_population < {v!r}"
            else:
                new["when"] = f"{metric} > 0 and {helper} <= {int(v)}"
        elif lv["id"] == zero:
            new["default"] = True
        else:
            new["when"] = f"{metric} > 0"
        out.append(new)
    return out


def _tier_helpers(method: str, metric: str, metrics: dict[str, Metric]) -> str:
    def add(name: str, kind: str, spec: dict) -> None:
        metrics[name] = Metric(name, kind, spec, ("tiers", "metric"), NUMBER, of=metric, deps={metric}, internal=True)

    if method == "pareto":
        add("_tier_share", "cumulative_share", {"cumulative_share": metric, "label": f"share of {metric} held by customers ahead"})
        return "_tier_share"
    add("_tier_rank", "rank", {"rank": metric, "label": f"rank by {metric}"})
    if method == "quantile":
        add("_tier_population", "positive_count", {"label": f"customers with {metric} > 0"})
    return "_tier_rank"


def _declared_ids(items: Any) -> list[str] | None:
    """The ids a YAML list of levels or stages declares, or None when one cannot be read (the schema says why)."""
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in items):
        return None
    return [i["id"] for i in items]


def _declared_tiers(section: Any) -> dict[str, list[str]] | None:
    """Tier id -> its sub-grade ids, as ``tiers.levels`` declares them; None when they cannot be read.

    Service levels are checked against these, not against the built tiers: when the tiers cannot be
    built (an unknown ``tiers.metric``, pareto levels out of order, a level the schema rejects) their ids
    are still known, and "unknown tier 'A'" about a tier the file defines hides the one real error.
    """
    levels = section.get("levels") if isinstance(section, dict) else None
    if _declared_ids(levels) is None:
        return None
    tiers: dict[str, list[str]] = {}
    for level in levels:
        subgrades = _declared_ids(level.get("subgrades", []))
        if subgrades is None:
            return None
        tiers.setdefault(level["id"], []).extend(subgrades)
    return tiers


def _grade_ids(data: dict, stage_ids: list[str] | None) -> dict[str, list[str] | None]:
    """The ids a customer's tier, sub-grade, stage and service level can have, as the policy declares them.

    None for one that cannot be read (the schema says why); an empty list where the policy has no such section.
    """
    tiers = _declared_tiers(data.get("tiers")) if "tiers" in data else None
    levels = data.get("service_levels", [])
    return {"tier": None if tiers is None else list(tiers),
            "subgrade": None if tiers is None else list(dict.fromkeys(s for subs in tiers.values() for s in subs)),
            "stage": stage_ids if "lifecycle" in data else [],
            "service_level": _declared_ids(levels) if levels is not None else []}


def _coverage(tier: str, subgrade: str | None, stage: str | None, when: str | None) -> str:
    """'tier 'A', every sub-grade and stage 'stable'': what a service level applies to, in words."""
    parts = [f"tier {tier!r}", f"sub-grade {subgrade!r}" if subgrade else "every sub-grade",
             f"stage {stage!r}" if stage else "every stage"]
    return f"{', '.join(parts[:-1])} and {parts[-1]}" + (f", when {when!r}" if when else "")


def _inherited(b: _Builder, path: tuple, section: str) -> str:
    """Why an inherited entry names a grade the policy lacks: the child replaced ``section``, not the entry's own.

    "unknown tier 'C'" at <shipped>/base.yaml named a line the user never wrote, of a file they did not change."""
    here, there = b.doc.value_position(path).file, b.doc.value_position((section,)).file
    if here == there or here == b.doc.file:  # written next to the section, or in the policy itself: its own mistake
        return ""
    return f"; these {path[0]} are inherited from {here}, but {there} replaces {section}: write {path[0]} in {there} too"


def _written_tiers(b: _Builder, item: dict, path: tuple, tiers: dict[str, list[str]] | None) -> list[str]:
    """The tiers an entry is for: its one tier, or each of a list (``tier: [A, B, C]``), unknown ones named each.

    A sub-grade belongs to one tier, so ``subgrade`` with a list is refused; a tier listed twice is named
    rather than reported as two entries covering the same customers.  The schema refuses an empty list.
    """
    written = item["tier"]
    if isinstance(written, str):
        if tiers is not None and written not in tiers:
            b.error(path + ("tier",), unknown_grade("tier", written, list(tiers)) + _inherited(b, path, "tiers"), key=False)
        return [written]
    out: list[str] = []
    for j, tier in enumerate(written):
        if tier in out:
            b.error(path + ("tier", j), f"tier {tier!r} is listed twice; remove one", key=False)
            continue
        if tiers is not None and tier not in tiers:
            b.error(path + ("tier", j), unknown_grade("tier", tier, list(tiers)) + _inherited(b, path, "tiers"), key=False)
        out.append(tier)
    if "subgrade" in item and len(out) > 1:
        b.error(path + ("subgrade",), f"a sub-grade belongs to one tier, and this entry names {len(out)} "
                                      f"({', '.join(out)}); write tier: <one tier> with subgrade, or write one entry "
                                      f"per tier", key=False)
    return out


def _subgrades_of(tier: str, sub: str, tiers: dict[str, list[str]]) -> str:
    """What a service level's unknown ``sub`` of ``tier`` was meant to be: a close sub-grade of the tier, else the
    tier's sub-grades (or that it has none, and whose they are), so the fix is in the message."""
    own = tiers[tier]
    if own:
        return did_you_mean(sub, own) or f" (its sub-grades: {joined(own)})"
    owner = next((t for t, subs in tiers.items() if sub in subs), None)
    if owner is not None:
        return f"; {sub!r} is a sub-grade of tier {owner!r}: write tier: {owner}"
    return "; it has no sub-grades" + ("" if any(tiers.values()) else ", nor has any tier of the policy")


def _service_levels(b: _Builder, items: list[dict], tiers: dict[str, list[str]] | None, stages: list[str] | None,
                    scope: dict[str, str]) -> list[ServiceLevel]:
    """The service levels; ``tiers`` and ``stages`` are the declared ids (None: unreadable, references not checked).

    An entry for several tiers gives one ServiceLevel per tier, in its place: equally specific entries keep
    the order they are written in, so the first listed still wins for every tier."""
    out: list[ServiceLevel] = []
    seen_ids: dict[str, tuple] = {}
    seen_keys: dict[tuple, str] = {}
    for i, item in enumerate(items):
        path = ("service_levels", i)
        if path in b.schema_failed:
            continue
        written = _written_tiers(b, item, path, tiers)
        sub = item.get("subgrade")
        if sub is not None and len(written) == 1 and tiers is not None and written[0] in tiers \
                and sub not in tiers[written[0]]:
            tier = written[0]
            b.error(path + ("subgrade",), f"tier {tier!r} has no sub-grade {sub!r}{_subgrades_of(tier, sub, tiers)}",
                    key=False)
        stage = item.get("stage")
        if stage is not None and stages is not None and stage not in stages:
            where = f"{did_you_mean(stage, stages)}" if stages else "; the policy has no lifecycle section"
            b.error(path + ("stage",), f"unknown stage {stage!r}{where}", key=False)
        if item["id"] in seen_ids:
            b.error(path + ("id",), f"duplicate service level id {item['id']!r}")
        seen_ids[item["id"]] = path
        condition = None
        if "when" in item:
            node = b.parse(item["when"], path + ("when",))
            if node is not None and b.typecheck(node, path + ("when",), TypeChecker(scope, "metric or attribute"), condition=True):
                condition = Expr(item["when"], node, path + ("when",))
        details = {k: v for k, v in item.items() if k not in ("id", "tier", "subgrade", "stage", "when")}
        for tier in written:
            key = (tier, sub, stage, item.get("when"))
            if key in seen_keys:
                b.error(path, f"service levels {seen_keys[key]!r} and {item['id']!r} both cover {_coverage(*key)}, so "
                              f"{item['id']!r} never applies{' there' if len(written) > 1 else ''} (the first listed "
                              f"wins); remove it, or narrow it with subgrade, stage or when")
                break
            seen_keys[key] = item["id"]
        for tier in written:
            out.append(ServiceLevel(item["id"], tier, sub, stage, details, path, condition, tuple(written)))
    return out


# Sections of independent entries: an entry the schema rejects is skipped, the others are still checked.
ENTRY_SECTIONS = ("metrics", "scores", "credit", "actions", "service_levels")


def _schema_failures(doc: SourceDocument) -> set[tuple] | None:
    """What the schema rejects, as the parts the meaning checks skip; None when they cannot run at all.

    One rejected entry must not hide the problems of all the others (an empty `expr:` was once the only
    message, and 17 more came after fixing it).  A rejected metric, plugin entry or service level is
    skipped as ``(section, name or index)``, and its name raises no errors where it is used; a rejected
    ``tiers``, ``lifecycle`` or ``summary`` is skipped whole as ``(section,)``; ``()`` stands for unknown
    top-level keys.  A rejected ``data`` section, or a section of entries that is not a mapping or list,
    leaves the checks without the names they need: the schema's messages are then all there is.
    """
    failed: set[tuple] = set()
    for error in schema_validator("policy.schema.json").iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if "propertyNames" in error.schema_path:  # a name the schema rejects: its entry fails
            path += (error.instance,)
        entries = path[:1] and path[0] in ENTRY_SECTIONS
        if path[:1] == ("data",) or (entries and len(path) < 2):
            return None
        failed.add(path[:2] if entries else path[:1])
    return failed


# A plain word YAML may read as something else: yes/no/on/off, ~, 010, 1_000, 1:30.
def _with_yaml_readings(doc: SourceDocument, problems: list[Diagnostic]) -> list[Diagnostic]:
    """The problems, those about a word YAML did not read as written with a hint saying so.

    PyYAML follows YAML 1.1, where `id: NO` is false and `on:` is the key "true"; then "expected string,
    got true/false false" or "'true' is a keyword" is puzzling next to what the file says.  The loader
    keeps such words where it read them (``SourceDocument.readings``).
    """
    out = []
    for d in problems:
        reading = doc.readings.get(Position(d.file, d.line, d.col))
        if reading is not None:
            written, read = reading
            d = Diagnostic(d.file, d.line, d.col, d.path, f"{d.message} (YAML reads {written} as {read}; quote it: '{written}')")
        out.append(d)
    return out


def _policy_error(doc: SourceDocument, problems: list[Diagnostic]) -> PolicyError:
    """Every problem of the policy; the hint for duplicate keys, the one kind of problem without its fix in the message."""
    hint = None
    if doc.duplicates:
        hint = DUPLICATE_HINT if len(problems) == len(doc.duplicates) else f"for each duplicate key, {DUPLICATE_HINT}"
    return PolicyError(_with_yaml_readings(doc, problems), hint=hint)


def _keyword_data_names(b: _Builder, section: Any) -> None:
    """Attributes and source columns are names in expressions too: none may be a keyword."""
    for concept, table in (section or {}).items():
        key = "attributes" if concept == "customers" else "columns"
        for name, ref in (table.get(key) or {}).items():
            if ref is not None:  # `name: null` removes a default mapping
                b.keyword_name(("data", concept, key, name), name)


def _source_filters(b: _Builder, section: Any, data: DataMapping) -> None:
    """Parse and type-check each source's ``where`` (source_filters) over that source's columns, as a metric's
    ``where`` over its source is: the same names, the same messages at the same kind of place."""
    for source in SOURCES:
        spec = section.get(source) if isinstance(section, dict) else None
        text = spec.get("where") if isinstance(spec, dict) else None
        if not isinstance(text, str):  # absent, or `where: null` (no filter, also over an inherited one)
            continue
        path = ("data", source, "where")
        node = b.parse(text, path)
        if node is not None and b.typecheck(node, path, b._row_checker(source, data), condition=True):
            data.sources[source].where = Expr(text, node, path)


def build_policy(doc: SourceDocument, files: list[str]) -> Policy:
    """Check meaning and build the model, or raise PolicyError with every problem.

    Schema errors do not stop the meaning checks: what the schema rejects is skipped (see
    ``_schema_failures``), so the first run of `validate` lists every problem it can.
    """
    # Plugins load before any part of the policy compiles: a plugin that cannot be loaded is then reported as
    # itself, not as a problem of the first expression that happened to look up a function (metrics.x.expr: ...).
    get_registry()
    problems = validate_document(doc)
    failed = _schema_failures(doc) if problems else set()
    problems = doc.duplicates + problems  # the first of each key's values is checked
    if failed is None:
        raise _policy_error(doc, problems)
    data = doc.data
    b = _Builder(doc, failed)
    mapping = build_data_mapping(data.get("data"))
    _keyword_data_names(b, data.get("data"))
    _source_filters(b, data.get("data"), mapping)
    metrics = b.metrics(data.get("metrics", {}), mapping)
    scope = {n: c.type for n, c in mapping.attributes.items()}
    scope.update({n: m.type for n, m in metrics.items()})
    outputs: dict[str, Output] = {}
    plugin_steps = []
    for section in ("scores", "credit"):
        plugin_steps += _plugin_entries(b, section, data.get(section, {}), mapping, metrics, scope, outputs, len(plugin_steps))
    seen: dict[str, tuple[tuple, str]] = {}
    method, tier_metric, hit_policy, tiers = "rules", None, "first", []
    if "tiers" not in data:
        if () not in failed:  # else an unknown top-level key is reported, likely a misspelt `tiers:`
            b.error((), "missing required section 'tiers'")
    elif ("tiers",) not in failed:
        method, tier_metric, hit_policy, tiers = _tiers(b, data["tiers"], metrics, scope, outputs)
    else:
        _rejected_conditions(b, data["tiers"], ("tiers", "levels"), scope)
    scope.update({n: m.type for n, m in metrics.items()})
    b.check_unique([t.rule for t in tiers], seen, "tier")
    for t in tiers:
        b.check_unique(t.subgrades, seen, "sub-grade")
    stages = []
    if "lifecycle" in data and ("lifecycle",) not in failed:
        stages = b.rules(data["lifecycle"]["stages"], ("lifecycle", "stages"), scope, "stage")
        b.check_unique(stages, {}, "stage")
    elif "lifecycle" in data:
        _rejected_conditions(b, data["lifecycle"], ("lifecycle", "stages"), scope)
    lifecycle = data.get("lifecycle", {"stages": []})
    stage_ids = _declared_ids(lifecycle.get("stages")) if isinstance(lifecycle, dict) else None
    service_levels = _service_levels(b, data.get("service_levels", []), _declared_tiers(data.get("tiers")), stage_ids, scope)
    action_steps = _plugin_entries(b, "actions", data.get("actions", {}), mapping, metrics, dict(scope), {}, len(plugin_steps),
                                   _grade_ids(data, stage_ids))
    summary = data.get("summary", {}) if ("summary",) not in failed else {}
    revenue = summary.get("revenue")
    if revenue is not None and revenue not in metrics:
        b.unknown_metric(("summary", "revenue"), revenue, metrics)
        revenue = None
    elif revenue is not None and metrics[revenue].type != NUMBER:
        b.error(("summary", "revenue"), f"{revenue!r} is a {metrics[revenue].type} metric; the revenue share per tier "
                                        f"needs a numeric one, e.g. revenue_12m", key=False)
        revenue = None
    key_metrics = summary.get("key_metrics")
    if key_metrics is None:
        key_metrics = [n for n, m in metrics.items() if not m.internal] + list(outputs)
    for i, name in enumerate(key_metrics):
        if name not in metrics and name not in outputs:
            b.unknown_metric(("summary", "key_metrics", i), name, metrics)
    problems = list(dict.fromkeys(problems + b.problems))
    if problems:
        raise _policy_error(doc, problems)
    return Policy(
        name=data["name"], version=str(data["version"]) if "version" in data else None,
        description=data.get("description", ""), sha256=content_hash(data), document=data, files=files,
        source=doc, data=mapping, metrics=metrics, tier_method=method, tier_metric=tier_metric,
        hit_policy=hit_policy, tiers=tiers, stages=stages, service_levels=service_levels,
        revenue_metric=revenue or tier_metric, key_metrics=list(key_metrics),
        plugin_steps=plugin_steps, action_steps=action_steps, outputs=outputs,
        overrides=_overrides_source(doc), function_plugins=frozenset(b.function_plugins), expressions=b.expressions,
    )


def _overrides_source(doc: SourceDocument) -> tuple[str, str] | None:
    section = doc.data.get("overrides")
    if not section:
        return None
    if "file" in section:
        where = Path(doc.value_position(("overrides", "file")).file)
        return "file", str(where.parent / section["file"]) if not Path(section["file"]).is_absolute() else section["file"]
    return "table", section["table"]


def load_policy(path: str | Path) -> Policy:
    """Load, merge, validate and build the policy at ``path`` (or a shipped policy name)."""
    resolved = resolve_policy_path(str(path))
    if resolved is None:
        raise UsageError(f"policy {str(path)!r} not found",
                         hint=f"give a path to a YAML file, or a shipped policy: {', '.join(shipped_policy_names())}")
    doc, files = load_policy_document(resolved)
    return build_policy(doc, files)
