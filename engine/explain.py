"""Why a customer has their grades: every rule in order, and what failed by how much.

Two ways to the same answer:

* **from a stored run** (fast, independent of the number of customers): when
  the results tables hold a succeeded run of the same policy content
  (``policy.sha256``), as-of date, engine and plugin versions and the same
  overrides, the customer's stored row (grades, deciding rules, and from
  ``crm_metrics`` every metric and plugin output it lists and the internal
  metrics its conditions read) is read by primary key (``(run_id,
  customer_id)`` of both tables), the customer's attributes by the customers table's key, and
  copied into a one-row temp table with the result table's column types.  The
  rule explanations and counterfactuals are evaluated against that row.
  Population metrics (ranks, shares, ntiles) are stored values, so nobody else
  is read; what Pareto sentences need about the population (the lowest value
  per tier) was stored with the run (``crm_runs.counts["explain"]``).
* **computed now**: the whole policy is computed in temp tables (minutes on
  millions of customers), exactly like a run, and the customer is read from
  there.  Used with ``recompute=True``, and whenever a stored run cannot give
  the identical answer: no such run, a run written before runs stored what
  explain needs, other overrides, another engine or plugin version, a customer
  missing from the run, or a run that no longer agrees with the customer's
  data (the stored decisions are checked against the rules re-evaluated on
  the row).  ``result["source"]`` says which path answered and why.

Both paths evaluate each condition's parts for the one customer in a single
query with the SQL the run uses, so they cannot disagree with it.

A run can be explained from storage only if the runner wrote it with
``explain_storage()`` (crm_metrics holding :func:`metrics_needed_for_explain`,
values exactly as computed, and the facts this module needs in
``crm_runs.counts["explain"]``).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from . import expr_ast as ast
from .classify_sql import DEFAULT_RULE, OVERRIDE_RULE, OVERRIDES, service_level_case
from .counterfactuals import describe, pareto_sentences
from .data_binding import bind
from .database import attach_read_only, connect, named_file, open_for_run
from .errors import PolicyError, UsageError
from .explain_since import since_previous_run
from .expr_sql import SqlParams, quote_identifier as q, to_sql
from .expr_types import BOOL, NUMBER, TypeChecker, value_type
from .metric_offset import window_dates
from .metric_sql import CID, CNAME, _attribute_sql
from .output_file import same_file
from .overrides import load_overrides, split_expired
from .pareto_cutoffs import cutoffs, levels, others, rank_cutoffs
from .plugin_sql import ACTIONS
from .policy_model import Metric, Policy, Rule, build_policy
from .results_store import has_results
from .source_filters import customer_rows
from .run_metrics import TABLE as METRICS_TABLE, RunMetrics, as_bool
from .yaml_source import load_yaml_text

_FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "=": "=", "!=": "!="}

#: Version of what a run stores for explain (counts["explain"]["format"]); runs without it are recomputed.
#: Format 2: the lowest tier metric per tier the rules give (format 1 grouped by the tier after overrides,
#: so its Pareto cut-offs hold only for runs without overrides).
FACTS_FORMAT = 2
ROW = "_crm_explain_row"  # the one-row temp table of the stored path
_GRADES = ["_tier", "_tier_rule", "_subgrade", "_subgrade_rule", "_stage", "_stage_rule", "_service_level"]
_ACTION_FIELDS = ("action", "category", "plugin", "generator", "reason", "priority", "due_date")
_DECLARED = {"", "TEXT", "NUM", "INT", "REAL", "INTEGER", "NUMERIC", "BLOB"}  # CREATE TABLE AS types (and a few more)


# --- what the runner stores for explain -------------------------------------------------------------

def _condition_names(policy: Policy) -> set[str]:
    """Names the tier, sub-grade, stage and service-level conditions read."""
    rules = [t.rule for t in policy.tiers] + [s for t in policy.tiers for s in t.subgrades] + policy.stages
    nodes = [r.condition.node for r in rules if r.condition] + [s.condition.node for s in policy.service_levels if s.condition]
    return {name for node in nodes for name in ast.names_in(node)}


def explained_metrics(policy: Policy) -> list[str]:
    """The metrics an explanation lists, in policy order: every metric and plugin output, and of the
    internal metrics those a condition reads (``_tier_share``, ``_tier_rank``, ... of generated tiers);
    plugins' hidden helpers, which no condition reads, are not shown (nor stored with runs)."""
    read = _condition_names(policy)
    return [n for n, m in policy.metrics.items() if not m.internal or n in read] + list(policy.outputs)


def metrics_needed_for_explain(policy: Policy) -> list[str]:
    """Names a run must store in ``crm_metrics`` (besides ``summary.key_metrics``) for an
    explanation from it: what it lists and what its conditions read (:func:`explained_metrics`).
    Attributes are read from the customers table by key."""
    return explained_metrics(policy)


def _overrides_digest(jsons: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(jsons)).encode()).hexdigest()


def _split_table(table: str) -> tuple[str, str]:
    schema, name = table.split(".", 1)
    return schema, name.strip('"').replace('""', '"')


def explain_facts(computed: Any) -> dict:
    """What explain needs about a computed run beyond each customer's row (JSON-able, small):
    the result table's column types, the overrides in force, and for Pareto tiers the lowest
    tier metric per tier."""
    conn, policy, table = computed.rc.conn, computed.policy, computed.result_table
    schema, name = _split_table(table)
    declared = {r[1]: r[2] or "" for r in conn.execute(f"PRAGMA {q(schema)}.table_info({q(name)})")}
    names = list(computed.metric_plan.attributes) + metrics_needed_for_explain(policy)
    facts: dict = {"format": FACTS_FORMAT, "types": {n: declared[n] for n in names if declared[n]},  # others: none
                   "attributes": list(computed.metric_plan.attributes),
                   "overrides": _overrides_digest(r[0] for r in conn.execute(f"SELECT json FROM {OVERRIDES}"))
                   if computed.with_overrides else _overrides_digest([])}
    if policy.tier_method == "pareto":
        facts["lowest"] = computed.tier_minimum()
    return facts


def explain_storage(computed: Any, stored: list[str]) -> tuple[list[str], dict]:
    """For ``runner.write_run``: (the metrics to store in crm_metrics: ``stored`` and what explain needs,
    facts to store as ``counts["explain"]``).  Call it before the write transaction."""
    names = list(dict.fromkeys(list(stored) + metrics_needed_for_explain(computed.policy)))
    facts = explain_facts(computed)
    facts["bools"] = [n for n in names if _type_of(computed.policy, n) == BOOL]  # 1 and 0 in the table: shown true/false
    return names, facts


def _type_of(policy: Policy, name: str) -> str | None:
    """The type of a metric, plugin output or attribute of the policy."""
    if name in policy.metrics:
        return policy.metrics[name].type
    if name in policy.outputs:
        return policy.outputs[name].column.type
    column = policy.data.attributes.get(name)
    return column.type if column is not None else None


def _shown(policy: Policy, name: str, value: Any) -> Any:
    """A value as explanations give it: a true/false one as True or False, not the 1 or 0 SQLite stores."""
    return as_bool(value) if _type_of(policy, name) == BOOL else value


# --- evaluating rules for one customer --------------------------------------------------------------

@dataclass
class _Evaluator:
    conn: Any
    table: str
    key: Any
    as_of: str

    def values(self, nodes: list[ast.Node]) -> list[Any]:
        if not nodes:
            return []
        params = SqlParams(prefix="e")
        cols = ", ".join(to_sql(n, lambda name: f"m.{q(name)}", params) for n in nodes)
        row = self.conn.execute(f"SELECT {cols} FROM {self.table} AS m WHERE m.{CID} = :key",
                                {**params.values, "key": self.key, "as_of": self.as_of}).fetchone()
        return list(row)


def _leaves(node: ast.Node) -> list[ast.Node]:
    """The atomic tests of a condition (what and/or/not combine)."""
    if isinstance(node, ast.Logical):
        return [leaf for item in node.items for leaf in _leaves(item)]
    if isinstance(node, ast.Not):
        return _leaves(node.operand)
    return [node]


def _threshold(leaf: ast.Node, left: Any, right: Any, passed: Any) -> dict:
    """For a single-metric threshold: the metric, its value, the threshold, and (when failed) the gap."""
    if not isinstance(leaf, ast.Compare) or leaf.op not in _FLIP:
        return {}
    if not all(value_type(v) == NUMBER for v in (left, right)):
        return {}
    if isinstance(leaf.left, ast.Name) and not isinstance(leaf.right, ast.Name):
        name, now, target, op = leaf.left.name, left, right, leaf.op
    elif isinstance(leaf.right, ast.Name) and not isinstance(leaf.left, ast.Name):
        name, now, target, op = leaf.right.name, right, left, _FLIP[leaf.op]
    else:
        return {}
    found = {"metric": name, "value": now, "threshold": target, "op": op}
    if not passed:
        found["gap"] = abs(target - now)
    return found


def _explain_rules(ev: _Evaluator, rules: list[Rule], chosen: str | None, chosen_rule: str | None,
                   checker: TypeChecker) -> list[dict]:
    """Each rule, whether it matched and, for one that did not, each test of its condition with the values of
    its sides (a true/false side as True or False: ``checker`` knows which)."""

    def shown(node: ast.Node, value: Any) -> Any:
        return as_bool(value) if checker.infer(node) == BOOL else value

    out = []
    conds = [r for r in rules if r.condition is not None]
    outcomes = ev.values([r.condition.node for r in conds])
    truth = {r.id: v for r, v in zip(conds, outcomes)}
    decided = False
    for rule in rules:
        entry: dict = {"id": rule.id, "label": rule.label, "default": rule.is_default}
        if rule.condition is None:
            entry.update(condition=None, matched=chosen_rule == DEFAULT_RULE and chosen == rule.id)
        else:
            value = truth[rule.id]
            entry.update(condition=rule.condition.text, matched=bool(value), unknown=value is None)
            leaves = _leaves(rule.condition.node)
            sides = []
            for leaf in leaves:
                if isinstance(leaf, (ast.Compare, ast.Between)):
                    sides += [leaf.left, leaf.right] if isinstance(leaf, ast.Compare) else [leaf.operand, leaf.low, leaf.high]
                elif isinstance(leaf, (ast.InList, ast.IsNull)):
                    sides.append(leaf.operand)
            results = ev.values(leaves)
            side_values = iter(ev.values(sides))
            checks = []
            for leaf, ok in zip(leaves, results):
                check = {"test": leaf.text, "passed": None if ok is None else bool(ok)}
                if isinstance(leaf, ast.Compare):
                    left, right = shown(leaf.left, next(side_values)), shown(leaf.right, next(side_values))
                    check["values"] = {leaf.left.text: left, leaf.right.text: right}
                    check.update(_threshold(leaf, left, right, ok))  # none for true/false: nothing is short
                elif isinstance(leaf, ast.Between):
                    vals = [next(side_values) for _ in range(3)]
                    check["values"] = {leaf.operand.text: vals[0]}
                    if ok is not None and all(value_type(v) == NUMBER for v in vals):  # the words of a miss, a move's target
                        check.update(value=vals[0], range=vals[1:])
                elif isinstance(leaf, (ast.InList, ast.IsNull)):
                    check["values"] = {leaf.operand.text: shown(leaf.operand, next(side_values))}
                elif not isinstance(leaf, ast.Literal):  # a true/false metric or call: the test is its own value
                    check["values"] = {leaf.text: shown(leaf, ok)}
                checks.append(check)
            entry["checks"] = checks
        entry["decided"] = not decided and entry["matched"] and rule.id == chosen
        decided = decided or entry["decided"]
        out.append(entry)
    return out


def _metric_entry(policy: Policy, name: str, value: Any, as_of: str) -> dict:
    value = _shown(policy, name, value)
    if name in policy.metrics:
        m = policy.metrics[name]
        if isinstance(value, float) and value.is_integer() and _whole(m):
            value = int(value)
        # a window that ends before the as-of date (offset) or a calendar one (year to date) says which dates it
        # read: the value is not one of a trailing window ending on the as-of date
        dates = window_dates(m.spec, as_of)
        label = f"{m.label} ({dates[0]} – {dates[1]})" if dates else m.label
        return {"name": name, "label": label, "value": value, "internal": m.internal}
    out = policy.outputs[name]
    label = out.column.label or name
    return {"name": name, "label": f"{label} ({out.step.section}.{out.step.entry}, plugin {out.step.plugin})",
            "value": value, "internal": False}


def _whole(m: Metric) -> bool:
    """Whether ``m`` counts in whole units that SQLite computes as a float: days between two dates (a julianday
    difference) or a number rounded to no decimals.  Shown as 72, where 72.00 reads as an amount."""
    node = m.operand.node if m.kind == "expr" and m.operand is not None else None
    return isinstance(node, ast.Call) and (node.function == "days_between"
                                           or (node.function == "round" and len(node.args) == 1))


@dataclass
class _Customer:
    """Everything an explanation reads about one customer, from either path."""

    key: Any
    name: Any
    grades: dict  # _tier, _tier_rule, _subgrade, ... as the run decided them
    attributes: dict
    values: dict  # metric and plugin output -> value
    override: dict | None
    rule_tier: Any  # the tier the rules alone give
    actions: list[dict]
    lowest: dict | None  # Pareto: tier -> lowest tier metric in it
    source: dict = field(default_factory=dict)
    pareto_values: list | None = None  # Pareto: every customer's positive tier metric, largest first (None: not read)


def _assemble(policy: Policy, as_of: str, ev: _Evaluator, c: _Customer) -> dict:
    g = c.grades
    metrics = [_metric_entry(policy, n, c.values.get(n), as_of) for n in explained_metrics(policy)]
    tier = policy.tier(g["_tier"])
    # An override sets the tier without a rule: the rule list shows how the rules alone decide (rule_tier),
    # so that "would be A if ..." reads from the rules and no rule is marked for a tier it did not give.
    overridden = g["_tier_rule"] == OVERRIDE_RULE
    by_rules = policy.tier(c.rule_tier) if overridden else None
    rule_decided = (c.rule_tier, by_rules.id if by_rules.rule.condition is not None else DEFAULT_RULE) \
        if by_rules else (None, None) if overridden else (g["_tier"], g["_tier_rule"])
    checker = TypeChecker(policy.scope())
    tier_rules = _explain_rules(ev, [t.rule for t in policy.tiers], *rule_decided, checker)
    sub_rules = (_explain_rules(ev, tier.subgrades, g["_subgrade"], g["_subgrade_rule"], checker)
                 if tier and tier.subgrades else None)
    stage_rules = _explain_rules(ev, policy.stages, g["_stage"], g["_stage_rule"], checker) if policy.stages else None
    labels = {t.id: t.rule.label for t in policy.tiers} | {s.id: s.label for s in policy.stages}
    labels |= {s.id: s.label for t in policy.tiers for s in t.subgrades}
    ranked = policy.tier_method in RANKED_METHODS and c.pareto_values is not None  # else: the rank conditions
    if (policy.tier_method == "pareto" or ranked) and c.rule_tier is not None:
        own = c.values.get(policy.tier_metric)
        rest = None if c.pareto_values is None else others(c.pareto_values, own if isinstance(own, (int, float)) else None)
        cuts = None if rest is None else cutoffs(policy, rest) if policy.tier_method == "pareto" else rank_cutoffs(policy, rest)
        default = next((t.id for t in policy.tiers if t.rule.is_default), None)
        tier_why = pareto_sentences(policy.tier_metric, own, c.rule_tier, levels(policy), c.lowest or {}, labels, cuts,
                                    default, method=policy.tier_method)
    else:
        tier_why = describe("tier", [t.rule for t in policy.tiers], tier_rules, labels)
    if overridden:
        tier_why["because"] = f"without the override, {tier_why['because']}"
    why = {"tier": tier_why,
           "subgrade": describe("sub-grade", tier.subgrades, sub_rules, labels) if sub_rules else None,
           "stage": describe("stage", policy.stages, stage_rules, labels) if stage_rules else None}
    # an entry for several tiers is one ServiceLevel per tier: the customer's tier picks the one that served them
    service = next((s for s in policy.service_levels if s.id == g["_service_level"] and s.tier == g["_tier"]),
                   next((s for s in policy.service_levels if s.id == g["_service_level"]), None))
    stage = next((s for s in policy.stages if s.id == g["_stage"]), None)
    return {
        "customer_id": c.key, "customer_name": c.name, "policy": policy.name, "policy_sha256": policy.sha256,
        "as_of": as_of, "source": c.source, "attributes": {n: _shown(policy, n, v) for n, v in c.attributes.items()},
        "metrics": metrics,
        "source_filters": [],  # what each source's data.<source>.where drops of the customer's rows (_filtered_rows)
        "why": why,
        "override": c.override,
        "tier": {"id": g["_tier"], "rule": g["_tier_rule"], "method": policy.tier_method, "rules": tier_rules},
        "subgrade": ({"id": g["_subgrade"], "rule": g["_subgrade_rule"], "rules": sub_rules} if sub_rules else None),
        "stage": ({"id": g["_stage"], "rule": g["_stage_rule"], "strategy": stage.extra.get("strategy") if stage else None,
                   "rules": stage_rules} if stage_rules else None),
        "actions": c.actions,
        "service_level": ({"id": service.id, "tier": service.tier, "tiers": list(service.tiers or (service.tier,)),
                           "subgrade": service.subgrade, "stage": service.stage,
                           **service.details} if service else None),
        "since": None,  # what changed since the previous run: explain_since, where runs are stored
    }


def _not_found(policy: Policy, customer_id: str, conn: Any, binding: Any) -> UsageError:
    """The customer is not in the customers table: give the id it holds written another way (spaces around it,
    other capitals), which the user cannot see in a listing, else the ids close to it (id_suggestions: a zero
    left out, two characters swapped), else what its ids look like.  Looked up by the key's index, if any."""
    from .id_suggestions import by_name, named, near_ids, said

    cust = policy.data.customers
    table, key = binding.table(cust.table), q(cust.key)
    near = conn.execute(f"SELECT {key} FROM {table} WHERE trim(CAST({key} AS TEXT)) = trim(?) COLLATE NOCASE LIMIT 1",
                        (customer_id,)).fetchone()
    if near:
        hint = f"did you mean {near[0]!r}? (the id is stored so: {shlex.quote(str(near[0]))} on the command line)"
    elif close := near_ids(conn, table, key, customer_id, q(policy.data.customer_name)):
        hint = said(close)
    elif policy.data.customer_name and (names := by_name(conn, table, key, q(policy.data.customer_name), customer_id)):
        hint = named(customer_id, names, "crm-rules explain")
    else:
        sample = conn.execute(f"SELECT {key} FROM {table} WHERE {key} IS NOT NULL LIMIT 1").fetchone()
        hint = f"use a value of column {cust.key!r}" + (f" (ids look like {sample[0]!r})" if sample else "")
    return UsageError(f"customer {customer_id!r} not found in table {cust.table!r}", hint=hint)


# Ties of (due_date, priority, action) are ordered by the other fields, the same on both paths.  The
# unary + (a no-op) keeps SQLite from walking the run's (run_id, due_date) index to avoid the sort.
_ACTION_ORDER = "+due_date, priority, action, category, plugin, {entry}, reason"


# --- computed now -----------------------------------------------------------------------------------

def _explain_computed(rc: Any, policy: Policy, customer_id: str, as_of: str, overrides: Path | None, why_now: str,
                      results: str | None = None, db: Path | None = None) -> dict:
    """``results``: the schema of the stored runs, if any: the grades computed now are compared with the policy's
    latest run before ``as_of`` (explain_since), as a stored run of that date would be."""
    from .runner import compute  # runner imports this module (explain_storage)

    binding = bind(rc.conn, rc.source_schema, policy)  # (the schema only)
    if _source_customer(rc.conn, policy, binding, customer_id, []) is None:  # before every customer is computed
        raise _not_found(policy, customer_id, rc.conn, binding)
    computed = compute(rc, policy, as_of, overrides)
    result = _from_computed(computed, customer_id, f"computed now: {why_now}")
    if results is not None:
        ev = _Evaluator(rc.conn, computed.result_table, result["customer_id"], as_of)
        result["since"] = since_previous_run(rc.conn, results, policy, result,
                                             {"run_id": None, "as_of": as_of, "source_db": str(db)},
                                             lambda prev: _tier_by_rules_of(rc.conn, results, prev, ev))
    return result


def _from_computed(computed: Any, customer_id: str, text: str) -> dict:
    """The explanation of one customer of a policy computed in temp tables (``runner.compute``)."""
    policy, as_of = computed.policy, computed.as_of
    conn, table = computed.rc.conn, computed.result_table
    row = conn.execute(f"SELECT {CID} FROM {table} WHERE {CID} = ? OR CAST({CID} AS TEXT) = ? LIMIT 1",
                       (customer_id, customer_id)).fetchone()
    if row is None:
        raise _not_found(policy, customer_id, conn, computed.binding)
    key = row[0]
    names = explained_metrics(policy)
    attrs = computed.metric_plan.attributes
    cols = [CNAME, *_GRADES]
    values = conn.execute(
        f"SELECT {', '.join(q(c) for c in cols + attrs + names)} FROM {table} WHERE {CID} = ?", (key,)).fetchone()
    base = dict(zip(cols, values[: len(cols)]))
    override, rule_tier = None, base["_tier"]
    if computed.with_overrides:
        stored, rule_tier = conn.execute(f"SELECT _override, _rule_tier FROM {table} WHERE {CID} = ?", (key,)).fetchone()
        if stored is not None:
            override = {**json.loads(stored), "rule_tier": rule_tier, "applied": base["_tier_rule"] == OVERRIDE_RULE}
    action_rows = conn.execute(
        f"SELECT action, category, plugin, entry, reason, priority, due_date FROM {ACTIONS} WHERE cid = ? "
        f"ORDER BY {_ACTION_ORDER.format(entry='entry')}", (key,)).fetchall()
    lowest = dict(computed.tier_minimum()) if policy.tier_method == "pareto" else None
    pareto_values = None
    if policy.tier_method in ("pareto", *RANKED_METHODS):
        metric = q(policy.tier_metric)
        pareto_values = [v for (v,) in conn.execute(f"SELECT {metric} FROM {table} WHERE {metric} > 0 ORDER BY 1 DESC")]
    customer = _Customer(
        key=key, name=base[CNAME], grades=base,
        attributes=dict(zip(attrs, values[len(cols): len(cols) + len(attrs)])),
        values=dict(zip(names, values[len(cols) + len(attrs):])),
        override=override, rule_tier=rule_tier,
        actions=[dict(zip(_ACTION_FIELDS, r)) for r in action_rows], lowest=lowest, pareto_values=pareto_values,
        source={"path": "computed", "run_id": None, "text": text, "notes": list(computed.notes),
                "policy": _version(policy, policy)})
    result = _assemble(policy, as_of, _Evaluator(conn, table, key, as_of), customer)
    result["source_filters"] = _filtered_rows(conn, policy, computed.binding, key, as_of)
    return result


def _filtered_rows(conn: Any, policy: Policy, binding: Any, key: Any, as_of: str) -> list[dict]:
    """Per source with a filter that the policy reads: the customer's rows dated on or before ``as_of`` and how many
    of them the filter drops, counted in the data as it is now: the metrics shown read only the others."""
    return customer_rows(conn, {s: policy.data.sources[s] for s in sorted(binding.sources)}, binding.table, key, as_of)


# --- from a stored run ------------------------------------------------------------------------------

# One customer of one run: a lookup of the primary key (run_id, customer_id).
ASSIGNMENT_SQL = ("SELECT customer_name, tier, tier_rule, subgrade, subgrade_rule, stage, stage_rule, service_level, "
                  "rule_tier, override FROM {rs}.crm_assignments WHERE run_id = ? AND customer_id = ?")
# The customer's actions: with only the (run_id, due_date) index of crm_actions this reads every action
# of the run (60 ms for 330,000 actions); an index on (run_id, customer_id) makes it a lookup.
ACTIONS_SQL = ("SELECT action, category, plugin, generator, reason, priority, due_date FROM {rs}.crm_actions "
               "WHERE run_id = ? AND customer_id = ? ORDER BY " + _ACTION_ORDER.format(entry="generator"))


class _CannotUseRun(Exception):
    """The stored run cannot give the answer the full computation would: say why, and compute."""


def _active_override_jsons(rc: Any, policy: Policy, as_of: str, path: Path | None) -> tuple[bool, list[str]]:
    """(whether overrides are in play, the active ones as the run stores them) — as ``runner.compute`` loads them."""
    found = load_overrides(rc.conn, rc.source_schema, policy, path)
    if found is None:
        return False, []
    active, _ = split_expired(found, as_of)
    return True, [o.as_json() for o in active]


def _dicts(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def _stored_policy(conn: Any, rs: str, run: dict) -> Policy | None:
    """The policy as run ``run`` stored it in crm_policies, to explain the run without a file or with another version.

    Each run keeps its resolved policy document (``extends`` applied, sources inlined), so a policy file edited
    since the run is no reason to ask for the old file.  None when the document is not there to give back the
    run's content.
    """
    row = conn.execute(f"SELECT document FROM {rs}.crm_policies WHERE sha256 = ?", (run["policy_sha256"],)).fetchone()
    if row is None:
        return None
    doc = load_yaml_text(row[0], f"<policy of run {run['run_id']}>")
    metrics = doc.data.get("metrics")
    if isinstance(metrics, dict):  # stored with sorted keys: the metrics in the order the run listed them
        listed = {name: i for i, name in enumerate(json.loads(run.get("metrics") or "[]"))}
        doc.data["metrics"] = {k: metrics[k] for k in sorted(metrics, key=lambda k: listed.get(k, len(listed)))}
    try:
        stored = build_policy(doc, [])
    except PolicyError as exc:  # valid for the crm-rules that made the run, not for this one
        first = exc.diagnostics[0].message if exc.diagnostics else exc.message
        gone = plugins_gone(run["run_id"], run.get("plugins"))
        if gone is not None:  # not this version's checks: a plugin the run used is missing
            raise UsageError(f"run {run['run_id']} cannot be explained: the policy it stored (sha256 "
                             f"{run['policy_sha256'][:12]}) needs a plugin that is not loaded ({first})", hint=gone) from None
        raise UsageError(f"run {run['run_id']} cannot be explained: the policy it stored (sha256 "
                         f"{run['policy_sha256'][:12]}) does not pass this version's checks ({first})",
                         hint=f"`crm-rules export --run {run['run_id']}` and `crm-rules history CUSTOMER` show what the run "
                              f"stored: the grades, the deciding rules and the metrics") from None
    return stored if stored.sha256 == run["policy_sha256"] else None


def _find_run(conn: Any, rs: str, policy: Policy | None, as_of: str | None, run_id: int | None,
              source: Path | None) -> tuple[dict, Policy]:
    """The run named, or the latest succeeded run of this policy content and date (of this source database
    when the results are stored apart from it), and the policy to explain it with: a run named by id without a
    policy, or whose policy file has changed since, is explained with the version the run stored."""
    if run_id is not None:
        found = _dicts(conn.execute(f"SELECT * FROM {rs}.crm_runs WHERE run_id = ?", (run_id,)))
        from .export import run_failed, run_not_found, run_of_another_policy  # (not for every explanation)

        elsewhere = "--results-db" if source is None else None  # how the runs' own database would be given
        if not found:
            raise run_not_found(conn, run_id, rs, results_option=elsewhere)
        run = found[0]
        if run["status"] != "succeeded":
            raise run_failed(conn, run_id, run["error"], rs)
        if policy is None:  # `explain C1 --run 8`: the run's own policy
            policy = _stored_policy(conn, rs, run)
            if policy is None:
                raise UsageError(f"run {run_id} has no stored policy document to explain it with (sha256 "
                                 f"{run['policy_sha256'][:12]})", hint="give --policy, the file the run was made with")
        if run["policy_name"] != policy.name:  # another policy, not another version of it: say where its runs are
            raise run_of_another_policy(conn, run, policy.name, rs, results_option=elsewhere,
                                        itself="to explain run {run} of {db}, leave out --policy (the run stored its policy)")
        if run["policy_sha256"] != policy.sha256:
            stored = _stored_policy(conn, rs, run)
            if stored is None:
                raise UsageError(f"run {run_id} was made with other policy content (sha256 {run['policy_sha256'][:12]}, "
                                 f"this policy is {policy.sha256[:12]})",
                                 hint="pass the policy file the run was made with, or drop --run")
            policy = stored
        if as_of is not None and run["as_of"] != as_of:
            raise UsageError(f"run {run_id} is as of {run['as_of']}, not {as_of}", hint="drop --as-of, or drop --run")
        if source is not None and not same_file(run["source_db"], source):
            raise _graded_elsewhere(run, source, named_file(conn, rs))
        return run, policy
    found = _dicts(conn.execute(
        f"SELECT * FROM {rs}.crm_runs WHERE status = 'succeeded' AND policy_sha256 = ? AND as_of = ? "
        f"ORDER BY run_id DESC", (policy.sha256, as_of)))
    found = [r for r in found if source is None or same_file(r["source_db"], source)]
    if not found:
        raise _CannotUseRun(f"no succeeded run of policy {policy.name} (sha256 {policy.sha256[:12]}) as of {as_of} is "
                            f"stored in {named_file(conn, rs)}")
    return found[0], policy


def _graded_elsewhere(run: dict, source: Path, results: str) -> UsageError:
    """A run of a results database that serves several data databases, named with the --db of another: its
    explanation reads the attributes of the customers it graded, which are in the database it graded.  The hint
    said only to --recompute, which explains from the other database, when giving the run's own was the fix."""
    graded, rid = run["source_db"], run["run_id"]
    now = f"to explain from {source} as it is now instead, replace --run with --recompute --as-of {run['as_of']}"
    there = graded is not None and Path(graded).is_file()
    return UsageError(f"run {rid} in {results} graded {graded}, not {source}: an explanation of it reads the "
                      f"customers of the database it graded",
                      hint=f"give --db {shlex.quote(str(graded))}; or, {now}" if there else
                      f"{graded or 'the database it graded'} is no longer there; {now}")


def _run_facts(run: dict, policy: Policy) -> dict:
    from .runner import plugins_used

    rid = run["run_id"]
    facts = (json.loads(run.get("counts") or "null") or {}).get("explain")
    if not isinstance(facts, dict) or facts.get("format") not in (1, FACTS_FORMAT):
        raise _CannotUseRun(f"run {rid} was written without what explain reads from stored runs")
    if facts["format"] == 1 and policy.tier_method == "pareto" and facts.get("overrides") != _overrides_digest([]):
        raise _CannotUseRun(f"run {rid} stored Pareto cut-offs that counted its overridden customers")
    if run.get("engine_version") != __version__:
        raise _CannotUseRun(f"run {rid} was made by crm-rules {run.get('engine_version')}, this is {__version__}")
    if json.loads(run.get("plugins") or "null") != plugins_used(policy):
        raise _CannotUseRun(f"run {rid} was made with other plugin versions ({run.get('plugins')})")
    return facts


def _source_customer(conn: Any, policy: Policy, binding: Any, customer_id: str, attributes: list[str]) -> tuple | None:
    """(key, attribute values) of the customer in the customers table, looked up by its key column (its index).

    Matches what ``CID = ? OR CAST(CID AS TEXT) = ?`` finds on the computed table for ids stored as
    text, integers, reals or blobs (the key is compared with the column's affinity, as there)."""
    cust = policy.data.customers
    attr_sql = [_attribute_sql(f"c.{q(binding.attributes[n].column)}", binding.attributes[n].type) for n in attributes]
    sql = (f"SELECT c.{q(cust.key)}, {', '.join(attr_sql) or 'NULL'}, CAST(c.{q(cust.key)} AS TEXT) = :text "
           f"FROM {binding.table(cust.table)} AS c WHERE c.{q(cust.key)} = :key LIMIT 1")
    candidates: list[Any] = [customer_id]
    try:
        candidates.append(int(customer_id))
    except ValueError:
        pass
    try:
        candidates.append(float(customer_id))
    except ValueError:
        pass
    candidates.append(customer_id.encode())
    for i, candidate in enumerate(candidates):
        row = conn.execute(sql, {"key": candidate, "text": customer_id}).fetchone()
        if row is not None and (i == 0 or row[-1]):  # other forms only where CAST(id AS TEXT) gives the text back
            return row[0], list(row[1:1 + len(attributes)]) if attributes else []
    return None


def _first_hit(rules: list[Rule], entries: list[dict] | None) -> tuple[str | None, str | None]:
    """(id, deciding rule) by the conditions as evaluated now: what the run's CASE gives."""
    for rule, entry in zip(rules, entries or []):
        if rule.condition is not None and entry["matched"]:
            return rule.id, rule.id
    default = next((r for r in rules if r.is_default), None)
    return (default.id, DEFAULT_RULE) if default else (None, None)


def _check_decisions(conn: Any, policy: Policy, as_of: str, result: dict, grades: dict, rule_tier: Any,
                     row_table: str) -> None:
    """The stored decisions must be what the rules give on the stored row; else the data changed since."""
    problems = []
    by_rules = _first_hit([t.rule for t in policy.tiers], result["tier"]["rules"])
    if by_rules[0] != rule_tier or (grades["_tier_rule"] != OVERRIDE_RULE and by_rules[1] != grades["_tier_rule"]):
        problems.append(f"tier rules give {by_rules[0]}, the run has {rule_tier}")
    tier = policy.tier(grades["_tier"])
    subs = tier.subgrades if tier else []
    got = _first_hit(subs, (result["subgrade"] or {}).get("rules")) if subs else (None, None)
    if got != (grades["_subgrade"], grades["_subgrade_rule"]):
        problems.append(f"sub-grade rules give {got[0]}, the run has {grades['_subgrade']}")
    got = _first_hit(policy.stages, (result["stage"] or {}).get("rules")) if policy.stages else (None, None)
    if got != (grades["_stage"], grades["_stage_rule"]):
        problems.append(f"stage rules give {got[0]}, the run has {grades['_stage']}")
    params = SqlParams(prefix="s")
    case = service_level_case(policy, params, "g")
    as_of_next = conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]
    level = conn.execute(f"SELECT {case} FROM {row_table} AS g",
                         {**params.values, "as_of": as_of, "as_of_next": as_of_next}).fetchone()[0]
    if level != grades["_service_level"]:
        problems.append(f"service levels give {level}, the run has {grades['_service_level']}")
    if problems:
        raise _CannotUseRun(f"run {result['source']['run_id']} no longer agrees with the data of customer "
                            f"{result['customer_id']} ({'; '.join(problems)})")


def _explain_stored(rc: Any, schema: str, policy: Policy | None, customer_id: str, as_of: str | None,
                    overrides: Path | None, run_id: int | None, source: Path | None) -> dict:
    conn, rs = rc.conn, q(schema)
    given = policy
    run, policy = _find_run(conn, rs, policy, as_of, run_id, source)
    rid, as_of = run["run_id"], run["as_of"]
    facts = _run_facts(run, policy)
    if run_id is None:
        with_overrides, active = _active_override_jsons(rc, policy, as_of, overrides)
        if _overrides_digest(active) != facts.get("overrides"):
            raise _CannotUseRun(f"the overrides in force differ from those of run {rid}")
    else:
        with_overrides = True  # a named run is explained with the overrides it applied (none: NULL, rule_tier = tier)
    binding = bind(conn, rc.source_schema, policy)
    attrs = list(binding.attributes)
    types = facts.get("types", {})
    names = metrics_needed_for_explain(policy)
    if attrs != facts.get("attributes") or any(types.get(n, "") not in _DECLARED for n in attrs + names):
        raise _CannotUseRun(f"the customers table changed since run {rid}")
    found = _source_customer(conn, policy, binding, customer_id, attrs)
    if found is None:
        if conn.execute(ASSIGNMENT_SQL.format(rs=rs), (rid, customer_id)).fetchone() is not None:
            raise UsageError(f"customer {customer_id!r} is in run {rid} but no longer in table "
                             f"{policy.data.customers.table!r}, whose attributes the explanation reads",
                             hint=f"`crm-rules history {shlex.quote(str(customer_id))} --db "
                                  f"{shlex.quote(str(rc.results_path))}` shows the grades and deciding rules the runs "
                                  f"stored, and `crm-rules export --run {rid} --db {shlex.quote(str(rc.results_path))}` "
                                  f"the metrics of this one")
        raise _not_found(policy, customer_id, conn, binding)
    key, attribute_values = found
    row = conn.execute(ASSIGNMENT_SQL.format(rs=rs), (rid, key)).fetchone()
    if row is None:
        raise _CannotUseRun(f"customer {key!r} is not in run {rid}")
    name, grades, rule_tier, override_json = row[0], dict(zip(_GRADES, row[1:8])), row[8], row[9]
    values = RunMetrics.of_run(conn, rid, schema).of_customer(conn, key)
    override = None
    if with_overrides:
        if override_json is not None:
            override = {**json.loads(override_json), "rule_tier": rule_tier, "applied": grades["_tier_rule"] == OVERRIDE_RULE}
    else:
        rule_tier = grades["_tier"]
    # The one-row table: the result table's columns (with its declared types, which decide how SQLite
    # compares), the grades (for the service-level check) and the key.
    cols = attrs + names
    declared = [f"{q(c)} {types.get(c, '')}".rstrip() for c in cols]
    conn.execute(f"DROP TABLE IF EXISTS temp.{q(ROW)}")
    conn.execute(f"CREATE TEMP TABLE {q(ROW)} ({CID}, {', '.join(declared)}, {', '.join(q(g) for g in _GRADES)})")
    conn.execute(f"INSERT INTO temp.{q(ROW)} VALUES ({', '.join('?' * (1 + len(cols) + len(_GRADES)))})",
                 [key, *attribute_values, *(values.get(n) for n in names), *(grades[g] for g in _GRADES)])
    action_rows = conn.execute(ACTIONS_SQL.format(rs=rs), (rid, key)).fetchall()
    lowest = {t: v for t, v in facts.get("lowest", [])} if policy.tier_method == "pareto" else None
    pareto_values = _stored_pareto_values(conn, schema, policy, run) \
        if policy.tier_method in ("pareto", *RANKED_METHODS) else None
    customer = _Customer(
        key=key, name=name, grades=grades, attributes=dict(zip(attrs, attribute_values)),
        values={n: values.get(n) for n in names}, override=override, rule_tier=rule_tier,
        actions=[dict(zip(_ACTION_FIELDS, r)) for r in action_rows], lowest=lowest, pareto_values=pareto_values,
        source={"path": "stored", "run_id": rid, "finished_at": run.get("finished_at"),
                "text": f"from run {rid} in {named_file(conn, rs)} (finished {run.get('finished_at')})"
                        + _version_text(policy, given),
                "notes": json.loads(run.get("notes") or "[]"), "policy": _version(policy, given, rid)})
    ev = _Evaluator(conn, f"temp.{q(ROW)}", key, as_of)
    result = _assemble(policy, as_of, ev, customer)
    result["source_filters"] = _filtered_rows(conn, policy, binding, key, as_of)
    _check_decisions(conn, policy, as_of, result, grades, rule_tier, ev.table)
    result["since"] = since_previous_run(conn, schema, policy, result, run,
                                         lambda prev: _tier_by_rules_of(conn, schema, prev, ev))
    return result


def _tier_by_rules_of(conn: Any, schema: str, run: dict, ev: _Evaluator) -> str | None:
    """The tier the tier rules of ``run``'s stored policy give on the customer's values in ``ev``: the previous
    month's rules on this month's values, which says whether a policy edit or the data moved the customer.  None when
    the policy is not stored, no longer loads, or its rules read a value the explanation's row does not have."""
    try:
        old = _stored_policy(conn, q(schema), run)
    except UsageError:  # a plugin it used is gone, or this version's checks refuse it
        return None
    if old is None:
        return None
    rules = [t.rule for t in old.tiers]
    read = {n for r in rules if r.condition for n in ast.names_in(r.condition.node)}
    if not read <= _columns(ev.conn, ev.table):
        return None
    return _first_hit(rules, _explain_rules(ev, rules, None, None, TypeChecker(old.scope())))[0]


def _columns(conn: Any, table: str) -> set[str]:
    return {d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description}


def _version(used: Policy, given: Policy | None, run_id: int | None = None) -> dict:
    """Which version of the policy explained: the file given, or the document the run stored (the file changed,
    or none was given)."""
    return {"sha256": used.sha256, "file_sha256": given.sha256 if given is not None else None,
            "stored_with_run": None if used is given else run_id}


def _version_text(used: Policy, given: Policy | None) -> str:
    if used is given:
        return ""
    if given is None:
        return f", with the policy as the run stored it (sha256 {used.sha256[:12]})"
    return (f", with the policy as the run stored it (sha256 {used.sha256[:12]}); the policy file has changed since "
            f"(sha256 {given.sha256[:12]} now)")


def _attach_results(rc: Any, results_db: Path | None) -> str | None:
    """Schema holding the results tables (read-only), or None when there are none."""
    if results_db is None:
        return "main" if has_results(rc.conn, "main") else None
    results_db = Path(results_db)
    # a missing file or one that is no SQLite database: the messages (and hints) of the other commands, before ATTACH
    connect(results_db, mode="ro", option="--results-db").close()
    attach_read_only(rc.conn, results_db, "results")
    return "results" if has_results(rc.conn, "results") else None


def _no_runs_hint(rc: Any, results_db: Path | None) -> str:
    """Where a --run may be, when the database looked in has no runs: the --db's own runs, with a --results-db that
    has none (another program's file, a typo of a name), or a --results-db not given."""
    if results_db is None:
        return "if apply wrote the runs with --results-db FILE, add --results-db FILE"
    if has_results(rc.conn, "main"):
        return (f"{named_file(rc.conn)} has runs of its own: leave out --results-db to read them, or give as "
                f"--results-db the database apply wrote the runs to")
    return "give as --results-db the database apply wrote the runs to"


#: Tier methods whose rules are on the customer's rank: explain turns them into values of the tier metric too, from
#: every customer's value (pareto_cutoffs.rank_cutoffs); without those values it shows the rank conditions.
RANKED_METHODS = ("quantile", "top_n")

#: A stored run of up to this many customers is read whole for exact Pareto cut-offs (0.1 s at this size);
#: explain of a larger one stays a few lookups and says "about" (pareto_cutoffs).
PARETO_READ_LIMIT = 100_000


def _stored_pareto_values(conn: Any, schema: str, policy: Policy, run: dict) -> list | None:
    """Every customer's positive tier metric in the run, largest first; None for a run too large to read whole
    in an explanation, or one that did not store the metric."""
    if (run.get("customers") or 0) > PARETO_READ_LIMIT:
        return None
    stored = RunMetrics.of_run(conn, run["run_id"], schema)
    if policy.tier_metric not in stored.names:
        return None
    value = stored.column(policy.tier_metric)
    rows = (f"{q(schema)}.crm_assignments AS a{stored.join()} WHERE a.run_id = ?" if stored.legacy else
            f"{q(schema)}.{METRICS_TABLE} AS m WHERE m.run_id = ?")  # (no join: half the time)
    return [v for (v,) in conn.execute(f"SELECT {value} FROM {rows} AND {value} > 0 ORDER BY 1 DESC", (run["run_id"],))]


def explain_customer(db: Path, policy: Policy | None, customer_id: str, as_of: str | None,
                     overrides: Path | None = None, *, run_id: int | None = None, recompute: bool = False,
                     results_db: Path | None = None) -> dict:
    """Explain one customer: from a stored run when one gives the identical answer, else computed now.

    ``run_id``: explain that stored run, with the overrides it applied and, when ``policy`` is None or another
    version of the run's policy (the file was edited since), with the policy document the run stored (an error if it
    cannot be explained from storage); ``as_of`` may then be None (the run's date).  ``result["source"]["policy"]``
    says which version explained.  ``recompute``: always compute
    now.  ``results_db``: where the runs are stored when not in ``db``.  ``result["source"]`` says
    which path answered: ``{"path": "stored", "run_id", "finished_at", "text": "from run N (finished …)"}``
    or ``{"path": "computed", "run_id": None, "text": "computed now: <why>"}``, with the run's ``notes`` (on
    the data, e.g. an as-of date it contradicts: the first thing to know when a grade looks wrong).
    """
    if as_of is None and run_id is None:
        raise UsageError("an as-of date is needed unless a stored run is named")
    if policy is None and run_id is None:
        raise UsageError("explain needs --policy, unless --run names a stored run (whose policy it then uses)",
                         hint="give --policy FILE (or a shipped policy's name, e.g. -p base), or --run N")
    if recompute and run_id is not None:
        raise UsageError("--run and --recompute exclude each other", hint="--run explains a stored run; --recompute computes now")
    if overrides is not None and run_id is not None:
        raise UsageError("--run and --overrides exclude each other",
                         hint="a stored run is explained with the overrides it applied")
    rc = open_for_run(db, write=False)
    try:
        rs = _attach_results(rc, results_db)
        if recompute:
            why_now = "--recompute"
        else:
            try:
                if rs is None:
                    if run_id is not None:
                        raise UsageError(f"run {run_id} not found: {results_db or db} has no stored runs",
                                         hint=_no_runs_hint(rc, results_db))
                    raise _CannotUseRun(f"{results_db or db} has no stored runs")
                source = Path(db) if results_db is not None else None  # a results database may serve several
                return _explain_stored(rc, rs, policy, customer_id, as_of, overrides, run_id, source)
            except _CannotUseRun as exc:
                if run_id is not None:
                    raise UsageError(f"run {run_id} cannot be explained from storage: {exc}",
                                     hint="use --recompute (without --run) to explain from the data as it is now") from None
                why_now = str(exc)
        return _explain_computed(rc, policy, customer_id, as_of, overrides, why_now, rs, Path(db))
    finally:
        rc.close()


def load_policy_of_run(policy: str | Path, db: Path, run_id: int | None) -> Policy:
    """The policy, or its errors with the plugins the named run used that are not installed now.

    A run keeps the versions of its plugins; when one has been uninstalled since, the policy no longer
    loads (``unknown scorer``), and the message should say which package the run needs back.
    """
    from .errors import PolicyError
    from .policy_model import load_policy

    try:
        return load_policy(policy)
    except PolicyError as exc:
        if run_id is None or not Path(db).is_file():
            raise
        conn = connect(Path(db), mode="ro")
        try:
            row = conn.execute("SELECT plugins FROM crm_runs WHERE run_id = ?", (run_id,)).fetchone() \
                if has_results(conn) else None
        finally:
            conn.close()
        gone = plugins_gone(run_id, (row or [None])[0])
        if gone is None:
            raise
        raise PolicyError(exc.diagnostics, hint=gone) from None


def plugins_gone(run_id: int, plugins: str | None) -> str | None:
    """"run 12 was made with plugin churn_risk 0.1.0, which is not installed now: ...": the plugins of a run's record
    (``crm_runs.plugins``) that are not loaded now, uninstalled or blocked, and how to get them back; or None."""
    from .plugin_manager import BLOCK_ENV, get_plugin_manager, get_registry

    installed = get_plugin_manager()[1]
    blocked = set(get_registry().blocked)
    missing = {name: version for name, version in json.loads(plugins or "{}").items() if name not in installed}
    if not missing:
        return None
    said = []
    for names, why, fix in (([n for n in sorted(missing) if n not in blocked], "not installed now", "install {} again"),
                            ([n for n in sorted(missing) if n in blocked], f"blocked by {BLOCK_ENV} now",
                             f"unset {BLOCK_ENV} or take {{}} out of the list")):
        if names:
            many = len(names) > 1
            needed = ", ".join(f"{name} {missing[name]}" for name in names)
            said.append(f"run {run_id} was made with plugin{'s' * many} {needed}, which {'are' if many else 'is'} "
                        f"{why}: {fix.format('them' if many else 'it')} to explain the run")
    return "; ".join(said)
