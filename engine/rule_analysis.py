"""Find rules that never decide anything, and gaps and overlaps in threshold tables.

Two kinds of evidence:

* **Data** (over the real customers, as of a date): the policy is computed
  as for a dry run, then for every rule list one query counts, per rule, the
  customers whose condition is true (``matched``, ``SUM(CASE WHEN cond ...)``)
  and the customers the rule decided (``decided``, from the ``_tier_rule``,
  ``_subgrade_rule``, ``_stage_rule`` and ``_service_level`` columns).  A rule
  with a condition that matches nobody and decides nobody is **dead**; one
  that matches customers but decides none is **shadowed**: earlier rules (for
  service levels: more specific entries) take all of them (``taken_by``).
  Sub-grade rules count only customers of their tier; a service level
  "matches" the customers of its tier, sub-grade and stage that meet its
  condition.  Defaults have no condition and are never dead.
* **Overlaps on the data** (tiers with ``hit_policy: unique``): ``apply``
  stops at the first customer who meets two tier rules; the analysis does
  not.  It evaluates the tiers as first hit would (the same grades wherever
  the rules do not overlap) and counts, in ``unique_conflicts``, the
  customers who meet more than one tier rule, per pair of rules, with an
  example customer: what has to change before ``apply`` runs.  Any
  condition counts here, not only intervals of one metric.
* **Static** (from the conditions alone, whatever the data): a condition
  that compares ONE metric with constants (``<``, ``<=``, ``>``, ``>=``,
  ``=``, ``!=``, ``between``, ``in [...]``, ``is null``, combined with
  ``and``/``or``/``not``) is a set of intervals of that metric (plus whether
  it holds when the metric is empty).  In tier (method ``rules``), sub-grade
  and lifecycle lists:

  - a rule whose set lies within the union of the earlier rules' sets on the
    same metric is shadowed (``x >= 100`` after ``x >= 50``), or never true;
  - two rules whose sets intersect overlap: harmless for first hit (the
    earlier rule takes the values; ``effective`` shows what is left to each
    rule after the earlier rules on the same metric) and a problem for
    ``hit_policy: unique`` (``apply`` stops on a customer there);
  - when every conditional rule of a list is an interval of the same metric
    (a threshold table), the values no rule covers are **gaps**: customers
    there get the default.  Empty values are a gap too, unless a rule covers
    them or the metric always has one (see below).

  Metrics that only take whole numbers (counts, recency and contract days,
  ntile scores, ranks, overdue days and counts) are analysed over the
  integers, so ``x <= 9`` and ``x >= 10`` leave no gap.  Sums and counts
  (unless ``default: null``) and overdue and outstanding receivables always
  have a value: no gap of empty values is reported for them.  Conditions
  that are not intervals of one metric are listed in ``not_analysed`` with
  the reason; service levels and tiers of methods pareto/quantile/top_n are
  checked on data only.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import expr_ast as ast
from .classify_sql import DEFAULT_RULE
from .database import open_for_run
from .errors import RunError
from .expr_sql import SqlParams, quote_identifier as q, to_sql
from .expr_types import NUMBER
from .metric_sql import CID
from .policy_model import Policy, Rule
from .runner import compute

INF = math.inf
INTEGER_KINDS = {"count", "count_distinct", "recency", "contract_days_left", "ntile", "rank", "positive_count"}


# ---- intervals ---------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    lo: float
    lo_closed: bool
    hi: float
    hi_closed: bool

    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))


def _n(v: float) -> str:
    if v == INF:
        return "+inf"
    if v == -INF:
        return "-inf"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    return repr(v) if isinstance(v, float) else str(v)


def interval_text(iv: Interval) -> str:
    return f"{'[' if iv.lo_closed else '('}{_n(iv.lo)}, {_n(iv.hi)}{']' if iv.hi_closed else ')'}"


def interval_condition(iv: Interval, name: str) -> str:
    """The interval as a condition a policy author would write."""
    if iv.lo == iv.hi:
        return f"{name} = {_n(iv.lo)}"
    low = None if iv.lo == -INF else f"{_n(iv.lo)} {'<=' if iv.lo_closed else '<'} "
    high = None if iv.hi == INF else f" {'<=' if iv.hi_closed else '<'} {_n(iv.hi)}"
    if low is None and high is None:
        return f"any value of {name}"
    if low is None:
        return f"{name}{high}"
    if high is None:
        return f"{name} {'>=' if iv.lo_closed else '>'} {_n(iv.lo)}"
    return f"{low}{name}{high}"


class IntervalSet:
    """A union of disjoint intervals of the reals (or of the integers)."""

    def __init__(self, items: list[Interval], integer: bool):
        self.integer = integer
        self.items = _normalize([i for i in items if not i.empty()], integer)

    @classmethod
    def everything(cls, integer: bool) -> IntervalSet:
        return cls([Interval(-INF, False, INF, False)], integer)

    def is_empty(self) -> bool:
        return not self.items

    def union(self, other: IntervalSet) -> IntervalSet:
        return IntervalSet(self.items + other.items, self.integer)

    def intersect(self, other: IntervalSet) -> IntervalSet:
        out = []
        for a in self.items:
            for b in other.items:
                lo, lo_c = max((a.lo, not a.lo_closed), (b.lo, not b.lo_closed))
                hi, hi_c = min((a.hi, a.hi_closed), (b.hi, b.hi_closed))
                out.append(Interval(lo, not lo_c, hi, hi_c))
        return IntervalSet(out, self.integer)

    def complement(self) -> IntervalSet:
        out, lo, lo_closed = [], -INF, False
        for iv in self.items:
            out.append(Interval(lo, lo_closed, iv.lo, not iv.lo_closed))
            lo, lo_closed = iv.hi, not iv.hi_closed
        out.append(Interval(lo, lo_closed if lo != INF else False, INF, False))
        return IntervalSet([i for i in out if not (i.lo == i.hi == INF or i.lo == i.hi == -INF)], self.integer)

    def minus(self, other: IntervalSet) -> IntervalSet:
        return self.intersect(other.complement())

    def within(self, other: IntervalSet) -> bool:
        return self.minus(other).is_empty()

    def text(self) -> str:
        return " ∪ ".join(interval_text(i) for i in self.items) if self.items else "∅"


def _normalize(items: list[Interval], integer: bool) -> list[Interval]:
    if integer:
        ints = []
        for iv in items:
            lo = iv.lo if iv.lo == -INF else (math.ceil(iv.lo) if iv.lo_closed else math.floor(iv.lo) + 1)
            hi = iv.hi if iv.hi == INF else (math.floor(iv.hi) if iv.hi_closed else math.ceil(iv.hi) - 1)
            if lo <= hi:
                ints.append(Interval(lo, lo != -INF, hi, hi != INF))
        ints.sort(key=lambda i: i.lo)
        out: list[Interval] = []
        for iv in ints:
            if out and iv.lo <= out[-1].hi + 1:
                last = out[-1]
                if iv.hi > last.hi:
                    out[-1] = Interval(last.lo, last.lo_closed, iv.hi, iv.hi_closed)
            else:
                out.append(iv)
        return out
    items = sorted(items, key=lambda i: (i.lo, not i.lo_closed))
    out = []
    for iv in items:
        if out:
            last = out[-1]
            if iv.lo < last.hi or (iv.lo == last.hi and (iv.lo_closed or last.hi_closed)):
                if (iv.hi, iv.hi_closed) > (last.hi, last.hi_closed):
                    out[-1] = Interval(last.lo, last.lo_closed, iv.hi, iv.hi_closed)
                continue
        out.append(iv)
    return out


@dataclass
class Cond:
    """Where a one-metric condition is true: a set of values, and its truth when the metric is empty."""

    values: IntervalSet
    null: bool | None  # True / False / None (unknown, which a rule treats as false)

    @property
    def covers_null(self) -> bool:
        return self.null is True

    def never_true(self) -> bool:
        return self.values.is_empty() and not self.covers_null


class NotInterval(Exception):
    """The condition is not an interval set of one metric; the message says why."""


def _and3(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or3(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _constant(node: ast.Node) -> float | None:
    if isinstance(node, ast.Literal) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Negate):
        inner = _constant(node.operand)
        return None if inner is None else -inner
    return None


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


def _compare(op: str, c: float, integer: bool) -> IntervalSet:
    make = {
        "<": [Interval(-INF, False, c, False)], "<=": [Interval(-INF, False, c, True)],
        ">": [Interval(c, False, INF, False)], ">=": [Interval(c, True, INF, False)],
        "=": [Interval(c, True, c, True)],
        "!=": [Interval(-INF, False, c, False), Interval(c, False, INF, False)],
    }
    return IntervalSet(make[op], integer)


def extract(node: ast.Node, numeric: set[str], integer: set[str]) -> tuple[str, Cond]:
    """(metric, where the condition holds), or NotInterval."""

    def metric_of(n: ast.Node) -> str | None:
        if isinstance(n, ast.Name):
            if n.name not in numeric:
                raise NotInterval(f"{n.name} is not a number")
            return n.name
        return None

    def visit(n: ast.Node) -> tuple[str, Cond]:
        match n:
            case ast.Logical(op=op, items=items):
                parts = [visit(i) for i in items]
                names = sorted({p[0] for p in parts})
                if len(names) > 1:
                    raise NotInterval(f"combines more than one metric ({', '.join(names)})")
                cond = parts[0][1]
                for _, c in parts[1:]:
                    if op == "and":
                        cond = Cond(cond.values.intersect(c.values), _and3(cond.null, c.null))
                    else:
                        cond = Cond(cond.values.union(c.values), _or3(cond.null, c.null))
                return names[0], cond
            case ast.Not(operand=o):
                name, c = visit(o)
                return name, Cond(c.values.complement(), None if c.null is None else not c.null)
            case ast.Compare(op=op, left=left, right=right):
                name, const = metric_of(left), _constant(right)
                if name is None:
                    name, const, op = metric_of(right), _constant(left), _FLIP[op]
                if name is None or const is None:
                    raise NotInterval("not a comparison of one metric with a number")
                return name, Cond(_compare(op, const, name in integer), None)
            case ast.Between(operand=o, low=lo, high=hi):
                name, low, high = metric_of(o), _constant(lo), _constant(hi)
                if name is None or low is None or high is None:
                    raise NotInterval("not `metric between number and number`")
                return name, Cond(IntervalSet([Interval(low, True, high, True)], name in integer), None)
            case ast.InList(operand=o, items=items, negated=neg):
                name, consts = metric_of(o), [_constant(i) for i in items]
                if name is None or any(c is None for c in consts):
                    raise NotInterval("not `metric in [numbers]`")
                values = IntervalSet([Interval(c, True, c, True) for c in consts], name in integer)
                return name, Cond(values.complement() if neg else values, None)
            case ast.IsNull(operand=o, negated=neg):
                name = metric_of(o)
                if name is None:
                    raise NotInterval("`is null` of an expression, not of a metric")
                whole = IntervalSet.everything(name in integer)
                return name, (Cond(whole, False) if neg else Cond(IntervalSet([], name in integer), True))
        raise NotInterval("not a comparison of one metric with constants")

    return visit(node)


# ---- the analysis ------------------------------------------------------------

@dataclass
class _List:
    name: str  # "tiers", "subgrades of A", "lifecycle stages"
    kind: str  # tier | subgrade | stage
    rules: list[Rule]
    parent: str | None
    rule_column: str
    hit_policy: str = "first"
    static: bool = True


def _integer_metrics(policy: Policy) -> set[str]:
    """Metrics whose values are whole numbers.  A count with ``default: null`` still is (its empty value is
    no number at all); one with a fractional default is not."""
    out = set()
    for name, m in policy.metrics.items():
        default = m.spec.get("default", 0)
        whole = default is None or (isinstance(default, int) and not isinstance(default, bool)) or (
            isinstance(default, float) and default.is_integer())
        if m.kind in INTEGER_KINDS and whole:
            out.add(name)
        elif m.kind == "overdue" and m.spec["overdue"] in ("days", "count"):
            out.add(name)
    return out


def _never_null(policy: Policy) -> set[str]:
    """Metrics that always have a value: sums and counts default to 0 unless the policy says otherwise, and
    overdue and outstanding receivables are 0 for a customer with none."""
    return {name for name, m in policy.metrics.items()
            if (m.kind in ("sum", "count", "count_distinct") and m.spec.get("default", 0) is not None)
            or m.kind in ("overdue", "outstanding")}


def _lists(policy: Policy) -> list[_List]:
    lists = [_List("tiers", "tier", [t.rule for t in policy.tiers], None, "_tier_rule", policy.hit_policy,
                   static=policy.tier_method == "rules")]
    for tier in policy.tiers:
        if tier.subgrades:
            lists.append(_List(f"subgrades of {tier.id}", "subgrade", tier.subgrades, tier.id, "_subgrade_rule"))
    if policy.stages:
        lists.append(_List("lifecycle stages", "stage", policy.stages, None, "_stage_rule"))
    return lists


def _cond_sql(node: ast.Node, params: SqlParams) -> str:
    return to_sql(node, lambda name: f"m.{q(name)}", params)


def _chunked(items: list, size: int = 200):
    for i in range(0, len(items), size):
        yield items[i: i + size]


def _sums(conn: sqlite3.Connection, table: str, flags: list[str], params: SqlParams, as_of: str) -> list[int]:
    out: list[int] = []
    for chunk in _chunked(flags):
        cols = ", ".join(f"coalesce(sum(CASE WHEN {f} THEN 1 ELSE 0 END), 0)" for f in chunk)
        out += list(conn.execute(f"SELECT {cols} FROM {table} AS m", {**params.values, "as_of": as_of}).fetchone())
    return out


def _taken_by(conn: sqlite3.Connection, table: str, flag: str, column: str, params: SqlParams, as_of: str) -> dict:
    rows = conn.execute(f"SELECT m.{column}, count(*) FROM {table} AS m WHERE {flag} GROUP BY 1 ORDER BY 2 DESC, 1",
                        {**params.values, "as_of": as_of}).fetchall()
    return {r: n for r, n in rows}


def _status(entry: dict) -> str:
    if entry["default"]:
        return "unused default" if entry["decided"] == 0 else "ok"
    if entry["decided"]:
        return "ok"
    return "shadowed" if entry["matched"] else "dead"


def _data_rules(conn: sqlite3.Connection, table: str, policy: Policy, as_of: str,
                with_overrides: bool = False) -> tuple[list[dict], dict]:
    """Per rule: matched and decided counts; and (list, id, parent) -> (SQL flag, params, column) for taken_by."""
    entries: list[dict] = []
    flags_of: dict[tuple, tuple[str, SqlParams, str]] = {}
    for lst in _lists(policy):
        if lst.kind == "tier" and with_overrides:
            lst.rule_column = "_rule_tier_rule"  # with overrides: what the tier rules decided, before overrides
        params = SqlParams(prefix="a")
        scope = f"m._tier = {params.add(lst.parent)} AND " if lst.parent else ""
        conds = [r for r in lst.rules if r.condition is not None]
        flags = [f"({scope}{_cond_sql(r.condition.node, params)})" for r in conds]
        matched = dict(zip((r.id for r in conds), _sums(conn, table, flags, params, as_of)))
        where = "WHERE m._tier = :t" if lst.parent else ""
        decided = dict(conn.execute(f"SELECT m.{lst.rule_column}, count(*) FROM {table} AS m {where} GROUP BY 1",
                                    {"t": lst.parent}).fetchall())
        for r in lst.rules:
            entry = {"list": lst.name, "kind": lst.kind, "id": r.id, "parent": lst.parent,
                     "condition": r.condition.text if r.condition else None, "default": r.is_default,
                     "matched": matched.get(r.id), "decided": decided.get(DEFAULT_RULE if r.is_default else r.id, 0)}
            entry["status"] = _status(entry)
            entries.append(entry)
        for r, f in zip(conds, flags):
            flags_of[(lst.name, r.id, lst.parent)] = (f, params, lst.rule_column)
    if policy.service_levels:
        params = SqlParams(prefix="v")
        flags, texts = [], []
        for sl in policy.service_levels:
            tests = [f"m._tier = {params.add(sl.tier)}"]
            text = [f"tier {sl.tier}"]
            if sl.subgrade:
                tests.append(f"m._subgrade = {params.add(sl.subgrade)}")
                text.append(f"sub-grade {sl.subgrade}")
            if sl.stage:
                tests.append(f"m._stage = {params.add(sl.stage)}")
                text.append(f"stage {sl.stage}")
            if sl.condition:
                tests.append(_cond_sql(sl.condition.node, params))
                text.append(f"when {sl.condition.text}")
            flags.append(f"({' AND '.join(tests)})")
            texts.append(", ".join(text))
        matched = _sums(conn, table, flags, params, as_of)
        # per tier: an entry written for several tiers (tier: [A, B]) is one row per tier, like one written per tier
        decided = {(t, s): n for t, s, n in conn.execute(f"SELECT _tier, _service_level, count(*) FROM {table} "
                                                         f"GROUP BY 1, 2").fetchall()}
        for sl, f, text, n in zip(policy.service_levels, flags, texts, matched):
            entry = {"list": "service levels", "kind": "service_level", "id": sl.id, "parent": sl.tier,
                     "condition": text, "default": False, "matched": n, "decided": decided.get((sl.tier, sl.id), 0)}
            entry["status"] = _status(entry)
            entries.append(entry)
            flags_of[_flag_key(entry)] = (f, params, "_service_level")
    return entries, flags_of


def _flag_key(entry: dict) -> tuple:
    """The key of an entry's SQL flag: (list, id, parent), since an id alone is not one entry (the rows of a service
    level written for several tiers share its id, one per tier; sub-grades of different tiers may share theirs)."""
    return entry["list"], entry["id"], entry["parent"]


def _describe(entry: dict) -> dict:
    return {k: entry[k] for k in ("list", "kind", "id", "parent", "condition")}


def _static(policy: Policy) -> tuple[list[dict], list[dict], dict[tuple[str, str], dict], list[str]]:
    """(threshold tables, not analysed, (list, id) -> static shadowing evidence, notes)."""
    numeric = {n for n, t in policy.scope().items() if t == NUMBER}
    integer = _integer_metrics(policy)
    tables, skipped, shadow, notes = [], [], {}, []
    for lst in _lists(policy):
        if not lst.static:
            notes.append(f"tiers use method {policy.tier_method}: their rules are generated from cut-offs on "
                         f"{policy.tier_metric}; checked on data only")
            continue
        default = next((r.id for r in lst.rules if r.is_default), None)
        found: list[tuple[Rule, str, Cond]] = []
        for r in lst.rules:
            if r.condition is None:
                continue
            try:
                metric, cond = extract(r.condition.node, numeric, integer)
            except NotInterval as exc:
                skipped.append({"list": lst.name, "kind": lst.kind, "id": r.id, "parent": lst.parent,
                                "condition": r.condition.text, "reason": str(exc)})
                continue
            found.append((r, metric, cond))
        if not found:
            continue
        conditional = [r for r in lst.rules if r.condition is not None]
        metrics = list(dict.fromkeys(m for _, m, _ in found))
        rules_out, overlaps = [], []
        for i, (r, metric, cond) in enumerate(found):
            earlier = [(e, c) for e, m, c in found[:i] if m == metric]
            covered = IntervalSet([], metric in integer)
            covered_null = False
            for _, c in earlier:
                covered = covered.union(c.values)
                covered_null = covered_null or c.covers_null
            effective = cond.values.minus(covered)
            effective_null = cond.covers_null and not covered_null
            rules_out.append({"id": r.id, "metric": metric, "covers": cond.values.text(), "null": cond.covers_null,
                              "effective": effective.text(), "effective_null": effective_null})
            if cond.never_true():
                shadow[(lst.name, r.id)] = {"metric": metric, "never_true": True, "covered_by": []}
            elif effective.is_empty() and not effective_null:
                by = [e.id for e, c in earlier
                      if not c.values.intersect(cond.values).is_empty() or (c.covers_null and cond.covers_null)]
                shadow[(lst.name, r.id)] = {"metric": metric, "never_true": False, "covered_by": by}
            for e, c in earlier:
                both = c.values.intersect(cond.values)
                both_null = c.covers_null and cond.covers_null
                if both.is_empty() and not both_null:
                    continue
                where = [interval_text(iv) for iv in both.items] + (["null"] if both_null else [])
                problem = lst.hit_policy == "unique"
                overlaps.append({
                    "metric": metric, "rules": [e.id, r.id], "intervals": where, "problem": problem,
                    "message": f"{e.id!r} and {r.id!r} both cover {metric} in {' ∪ '.join(where)}; "
                               + ("hit_policy unique: apply stops on a customer there" if problem
                                  else f"first hit: {e.id!r} takes them")})
        table: dict[str, Any] = {"list": lst.name, "kind": lst.kind, "parent": lst.parent, "hit_policy": lst.hit_policy,
                                 "metrics": metrics, "rules": rules_out, "overlaps": overlaps}
        if len(found) == len(conditional) and len(metrics) == 1:
            metric = metrics[0]
            union = IntervalSet([], metric in integer)
            for _, _, c in found:
                union = union.union(c.values)
            gaps = []
            for iv in union.complement().items:
                gaps.append({"metric": metric, "interval": interval_text(iv), "low": _bound(iv.lo), "high": _bound(iv.hi),
                             "low_closed": iv.lo_closed, "high_closed": iv.hi_closed, "goes_to": default,
                             "message": f"{metric} in {interval_text(iv)} ({interval_condition(iv, metric)}) is covered "
                                        f"by no rule; customers there get the default ({default})"})
            if not any(c.covers_null for _, _, c in found) and metric not in _never_null(policy):
                gaps.append({"metric": metric, "interval": "null", "low": None, "high": None, "low_closed": None,
                             "high_closed": None, "goes_to": default,
                             "message": f"customers without a value of {metric} match no rule; they get the default ({default})"})
            table["gaps"] = gaps
        else:
            why = "rules on more than one metric" if len(metrics) > 1 else "some conditions are not intervals"
            table["gaps"] = None
            table["gaps_note"] = f"gaps not computed: {why}"
        tables.append(table)
    if policy.service_levels:
        notes.append("service levels are checked on data only (their order is by specificity, not by position)")
    return tables, skipped, shadow, notes


def static_findings(policy: Policy) -> list[tuple[_List, Rule, dict]]:
    """What the intervals alone show, rule by rule in policy order: a rule never true, a rule every value of which an
    earlier rule takes (``covered_by``), and, under ``hit_policy: unique``, a tier rule overlapping an earlier one."""
    tables, _, shadow, _ = _static(policy)
    overlaps: dict[tuple[str, str], list[dict]] = {}
    for table in tables:
        for o in table["overlaps"]:
            if o["problem"]:
                overlaps.setdefault((table["list"], o["rules"][1]), []).append(o)
    out = []
    for lst in _lists(policy):
        for rule in lst.rules:
            found = shadow.get((lst.name, rule.id))
            if found is not None:
                out.append((lst, rule, {"kind": "never true" if found["never_true"] else "shadowed", **found}))
                continue
            for o in overlaps.get((lst.name, rule.id), ()):
                out.append((lst, rule, {"kind": "overlap", "metric": o["metric"], "other": o["rules"][0],
                                        "where": " ∪ ".join(o["intervals"])}))
    return out


def _bound(v: float) -> float | None:
    return None if v in (INF, -INF) else v


def _unique_conflicts(conn: sqlite3.Connection, table: str, policy: Policy, as_of: str) -> dict:
    """For ``hit_policy: unique``: the customers whose data meets more than one tier rule (on which ``apply``
    stops), in all and per pair of rules, with the lowest customer id of each pair as an example."""
    params = SqlParams(prefix="w")
    conds = [(t.id, f"({_cond_sql(t.rule.condition.node, params)})") for t in policy.tiers if t.rule.condition is not None]
    pairs = [(a, b, f"({fa} AND {fb})") for i, (a, fa) in enumerate(conds) for b, fb in conds[i + 1:]]
    if not pairs:
        return {"customers": 0, "pairs": []}
    values = {**params.values, "as_of": as_of}
    total = " + ".join(f"(CASE WHEN {f} THEN 1 ELSE 0 END)" for _, f in conds)
    customers = conn.execute(f"SELECT count(*) FROM {table} AS m WHERE ({total}) > 1", values).fetchone()[0]
    out = []
    for (a, b, both), n in zip(pairs, _sums(conn, table, [f for _, _, f in pairs], params, as_of)):
        if n:
            example = conn.execute(f"SELECT min(m.{CID}) FROM {table} AS m WHERE {both}", values).fetchone()[0]
            out.append({"rules": [a, b], "customers": n, "example": example})
    return {"customers": customers, "pairs": out}


def analyze_policy(db: Path, policy: Policy, as_of: str, overrides: Path | None = None) -> dict:
    """Dead and shadowed rules (on the data as of ``as_of``), and static gaps and overlaps; see the module doc.

    Returns ``{"policy", "policy_sha256", "as_of", "customers", "hit_policy", "rules", "dead", "shadowed",
    "unique_conflicts", "threshold_tables", "not_analysed", "notes"}``.

    With ``hit_policy: unique``, customers who meet two tier rules make ``apply`` stop; the analysis is
    there to find them, so it does not stop: the policy is evaluated as first hit would (the same grades
    wherever the rules do not overlap) and ``unique_conflicts`` counts the customers who meet more than one
    tier rule, per pair of rules, with an example (None for hit policy first).  Finding them is the
    analysis succeeding: the command exits 0, as it does for dead rules and gaps.
    """
    unique = policy.hit_policy == "unique"
    # compute() stops at the first customer two tier rules match under unique; first hit grades the same
    # customers the same way and lets every rule be counted
    evaluated = replace(policy, hit_policy="first") if unique else policy
    rc = open_for_run(db, write=False)
    try:
        try:
            computed = compute(rc, evaluated, as_of, overrides)
            conn, table = rc.conn, computed.result_table
            customers = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            entries, flags_of = _data_rules(conn, table, policy, as_of, computed.with_overrides)
            tables, skipped, shadow, notes = _static(policy)
            conflicts = _unique_conflicts(conn, table, policy, as_of) if unique else None
            if conflicts and conflicts["customers"]:
                notes.insert(0, f"hit_policy unique: {conflicts['customers']:,} customer(s) match more than one tier "
                                f"rule, so apply stops on this data; the tier rules' decided counts are what first hit "
                                f"would give")
            overridden = conn.execute(f"SELECT count(*) FROM {table} WHERE _tier_rule = 'override'").fetchone()[0]
            if overridden:
                notes.insert(0, f"{overridden:,} customer(s) have their tier set by an override; tier counts are the "
                                f"rules' decisions, sub-grade and service level counts follow the overridden tier")
            dead, shadowed = [], []
            for e in entries:
                key = (e["list"], e["id"])
                static = shadow.get(key)
                if e["status"] == "dead":
                    dead.append(_describe(e))
                if e["status"] == "shadowed" or static:
                    taken = None
                    if e["status"] == "shadowed":
                        flag, params, column = flags_of[_flag_key(e)]
                        taken = _taken_by(conn, table, flag, column, params, as_of)
                    shadowed.append({**_describe(e), "matched": e["matched"], "taken_by": taken, "static": static})
        except sqlite3.OperationalError as exc:
            raise RunError(f"could not analyse the policy: {exc}") from exc
        return {"policy": policy.name, "policy_sha256": policy.sha256, "as_of": as_of, "customers": customers,
                "hit_policy": policy.hit_policy, "rules": entries, "dead": dead, "shadowed": shadowed,
                "unique_conflicts": conflicts, "threshold_tables": tables, "not_analysed": skipped,
                "notes": list(computed.notes) + notes}
    finally:
        rc.close()


# ---- terminal output ---------------------------------------------------------

_STATUS = {"ok": "[green]ok[/green]", "dead": "[red]dead[/red]", "shadowed": "[yellow]shadowed[/yellow]",
           "unused default": "[dim]unused default[/dim]"}


def _who(e: dict) -> str:
    return f"{e['kind'].replace('_', ' ')} {e['id']}" + (f" (of {e['parent']})" if e["kind"] == "subgrade" else "")


def print_analysis(console, result: dict) -> None:
    """Rich tables for an :func:`analyze_policy` result."""
    from .user_text import escape

    from .render import fmt_number
    from .terminal_table import print_indented, titled_table, words_fit

    conflicts = result.get("unique_conflicts")
    clash = (f"; [red]{conflicts['customers']:,} customer(s) match more than one tier rule[/red] "
             f"(hit_policy unique: apply stops on them)" if conflicts and conflicts["customers"] else "")
    print_indented(console, f"[b]{escape(result['policy'])}[/b] (sha256 {result['policy_sha256'][:12]}) as of "
                            f"{result['as_of']}: {result['customers']:,} customers; {len(result['dead'])} dead rule(s), "
                            f"{len(result['shadowed'])} shadowed{clash}")
    # One table per rule list, named in its title: with the list as a column, a metric name in a condition
    # ("revenue_prev_12m_trend") broke inside the word at 80 columns (a pipe, a cron log)
    for name in dict.fromkeys(e["list"] for e in result["rules"]):
        rows = [(escape(e["id"]), escape("(default)" if e["default"] else e["condition"] or ""),
                 fmt_number(e["matched"]), fmt_number(e["decided"]), _STATUS.get(e["status"], e["status"]))
                for e in result["rules"] if e["list"] == name]
        t = titled_table(f"Rules on the data: {escape(name)}", "Rule", "Condition", "Matched>", "Decided>", "Status",
                         whole=("Rule",))
        for row in rows:
            t.add_row(*row)
        if not words_fit(console, t):
            # at 60 columns the rule ids broke ("diamond-butl" / "er") and so did the metrics in the conditions
            # ("revenue_prev" / "_12m_trend"): each condition goes under its rule, in the rule's column
            t = titled_table(f"Rules on the data: {escape(name)}", "Rule", "Matched>", "Decided>", "Status")
            for rule, condition, *rest in rows:
                t.add_row(f"{rule}\n[dim]{condition}[/dim]" if condition else rule, *rest)
        console.print(t)
    for e in result["dead"]:
        print_indented(console, f"[red]dead[/red]: {escape(_who(e))}: {escape(e['condition'] or '')} matches no customer")
    unique_lists = {"tiers"} if result.get("hit_policy") == "unique" else set()  # sub-grades and stages: first hit
    for e in result["shadowed"]:
        parts = []
        unique = e["list"] in unique_lists
        if e["taken_by"]:
            taken = ", ".join(f"{k} {n:,}" for k, n in e["taken_by"].items())
            parts.append(f"matches {e['matched']:,} customer(s), all also matched by earlier rules ({taken}): "
                         f"hit_policy unique stops on them" if unique else
                         f"matches {e['matched']:,} customer(s), all decided earlier ({taken})")
        if e["static"]:
            s = e["static"]
            by = ", ".join(s["covered_by"])
            parts.append("can never be true" if s["never_true"] else
                         f"every value of {s['metric']} it covers is also covered by {by} (hit_policy unique: "
                         f"a customer there stops apply)" if unique else
                         f"every value of {s['metric']} it covers is taken by {by} first")
        print_indented(console, f"[yellow]shadowed[/yellow]: {escape(_who(e))}: {escape('; '.join(parts))}")
    if conflicts and conflicts["customers"]:
        console.print()
        print_indented(console, f"[b]Tier rules that overlap on the data[/b] (hit_policy unique: apply stops on these "
                                f"{conflicts['customers']:,} customer(s); make the conditions exclusive, or use "
                                f"hit_policy: first):")
        for c in conflicts["pairs"]:
            a, b = c["rules"]
            print_indented(console, f"  [red]overlap[/red]: {escape(repr(a))} and {escape(repr(b))}: {c['customers']:,} "
                                    f"customer(s), e.g. {escape(str(c['example']))}")
    for table in result["threshold_tables"]:
        console.print()
        print_indented(console, f"[b]{escape(table['list'])}[/b] (hit policy {table['hit_policy']}), "
                                f"intervals of {escape(', '.join(table['metrics']))}:")
        for r in table["rules"]:
            null = " and empty values" if r["null"] else ""
            # under unique no rule takes values from another: what first hit would leave is no information
            effective = ("" if r["effective"] == r["covers"] or table["hit_policy"] == "unique"
                         else f"; first hit leaves it {r['effective']}")
            print_indented(console, f"  {escape(r['id'])}: {escape(r['metric'])} in {escape(r['covers'])}{null}"
                                    f"{escape(effective)}")
        for o in table["overlaps"]:
            mark = "[red]overlap[/red]" if o["problem"] else "overlap"
            print_indented(console, f"  {mark}: {escape(o['message'])}")
        if table["gaps"] is None:
            print_indented(console, f"  {escape(table['gaps_note'])}")
        for g in table["gaps"] or []:
            print_indented(console, f"  gap: {escape(g['message'])}")
    if result["not_analysed"]:
        console.print("\n[b]Not analysed statically[/b] (not intervals of one metric):")
        for e in result["not_analysed"]:
            print_indented(console, f"  {escape(_who(e))}: {escape(e['condition'])} — {escape(e['reason'])}")
    for note in result["notes"]:
        print_indented(console, f"note: {escape(note)}")
