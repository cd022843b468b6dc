"""Why a customer has their grades: every rule in order, and what failed by how much.

The explanation is computed by the same SQL as the run (so it cannot
disagree with it), then each condition's parts are evaluated for the one
customer in a single query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import expr_ast as ast
from .classify_sql import DEFAULT_RULE
from .counterfactuals import describe, pareto_sentences
from .database import open_for_run
from .errors import UsageError
from .expr_sql import SqlParams, quote_identifier as q, to_sql
from .metric_sql import CID, CNAME
from .plugin_sql import ACTIONS
from .policy_model import Policy, Rule
from .runner import compute

_FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}


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
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
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


def _explain_rules(ev: _Evaluator, rules: list[Rule], chosen: str | None, chosen_rule: str | None) -> list[dict]:
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
                    left, right = next(side_values), next(side_values)
                    check["values"] = {leaf.left.text: left, leaf.right.text: right}
                    check.update(_threshold(leaf, left, right, ok))
                elif isinstance(leaf, ast.Between):
                    vals = [next(side_values) for _ in range(3)]
                    check["values"] = {leaf.operand.text: vals[0]}
                elif isinstance(leaf, (ast.InList, ast.IsNull)):
                    check["values"] = {leaf.operand.text: next(side_values)}
                checks.append(check)
            entry["checks"] = checks
        entry["decided"] = not decided and entry["matched"] and rule.id == chosen
        decided = decided or entry["decided"]
        out.append(entry)
    return out


def _metric_entry(policy: Policy, name: str, value: Any) -> dict:
    if name in policy.metrics:
        m = policy.metrics[name]
        return {"name": name, "label": m.label, "value": value, "internal": m.internal}
    out = policy.outputs[name]
    label = out.column.label or name
    return {"name": name, "label": f"{label} ({out.step.section}.{out.step.entry}, plugin {out.step.plugin})",
            "value": value, "internal": False}


def explain_customer(db: Path, policy: Policy, customer_id: str, as_of: str, overrides: Path | None = None) -> dict:
    rc = open_for_run(db, write=False)
    try:
        computed = compute(rc, policy, as_of, overrides)
        conn, table = rc.conn, computed.result_table
        row = conn.execute(f"SELECT {CID} FROM {table} WHERE {CID} = ? OR CAST({CID} AS TEXT) = ? LIMIT 1",
                           (customer_id, customer_id)).fetchone()
        if row is None:
            raise UsageError(f"customer {customer_id!r} not found in table {policy.data.customers.table!r}",
                             hint=f"use a value of column {policy.data.customers.key!r}")
        key = row[0]
        ev = _Evaluator(conn, table, key, as_of)
        names = list(policy.metrics) + list(policy.outputs)
        attrs = computed.metric_plan.attributes
        cols = [CNAME, "_tier", "_tier_rule", "_subgrade", "_subgrade_rule", "_stage", "_stage_rule", "_service_level"]
        values = conn.execute(
            f"SELECT {', '.join(q(c) for c in cols + attrs + names)} FROM {table} WHERE {CID} = ?", (key,)).fetchone()
        base = dict(zip(cols, values[: len(cols)]))
        override, rule_tier = None, base["_tier"]
        if computed.with_overrides:
            stored, rule_tier = conn.execute(f"SELECT _override, _rule_tier FROM {table} WHERE {CID} = ?", (key,)).fetchone()
            if stored is not None:
                override = {**json.loads(stored), "rule_tier": rule_tier, "applied": base["_tier_rule"] == "override"}
        attributes = dict(zip(attrs, values[len(cols): len(cols) + len(attrs)]))
        metrics = [_metric_entry(policy, n, v) for n, v in zip(names, values[len(cols) + len(attrs):])]
        conn.row_factory = None
        action_rows = conn.execute(
            f"SELECT action, category, plugin, entry, reason, priority, due_date FROM {ACTIONS} WHERE cid = ? "
            f"ORDER BY due_date, priority, action", (key,)).fetchall()
        actions = [dict(zip(("action", "category", "plugin", "generator", "reason", "priority", "due_date"), r)) for r in action_rows]
        tier = policy.tier(base["_tier"])
        tier_rules = _explain_rules(ev, [t.rule for t in policy.tiers], base["_tier"], base["_tier_rule"])
        sub_rules = _explain_rules(ev, tier.subgrades, base["_subgrade"], base["_subgrade_rule"]) if tier and tier.subgrades else None
        stage_rules = _explain_rules(ev, policy.stages, base["_stage"], base["_stage_rule"]) if policy.stages else None
        labels = {t.id: t.rule.label for t in policy.tiers} | {s.id: s.label for s in policy.stages}
        labels |= {s.id: s.label for t in policy.tiers for s in t.subgrades}
        if policy.tier_method == "pareto" and rule_tier is not None:
            lowest = dict(conn.execute(f"SELECT _tier, min({q(policy.tier_metric)}) FROM {table} GROUP BY _tier").fetchall())
            value = conn.execute(f"SELECT {q(policy.tier_metric)} FROM {table} WHERE {CID} = ?", (key,)).fetchone()[0]
            tier_why = pareto_sentences(policy.tier_metric, value, rule_tier, [t.id for t in policy.tiers], lowest, labels)
        else:
            tier_why = describe("tier", [t.rule for t in policy.tiers], tier_rules, labels)
        why = {"tier": tier_why,
               "subgrade": describe("sub-grade", tier.subgrades, sub_rules, labels) if sub_rules else None,
               "stage": describe("stage", policy.stages, stage_rules, labels) if stage_rules else None}
        service = next((s for s in policy.service_levels if s.id == base["_service_level"]), None)
        stage = next((s for s in policy.stages if s.id == base["_stage"]), None)
        return {
            "customer_id": key, "customer_name": base[CNAME], "policy": policy.name, "policy_sha256": policy.sha256,
            "as_of": as_of, "attributes": attributes, "metrics": metrics,
            "why": why,
            "override": override,
            "tier": {"id": base["_tier"], "rule": base["_tier_rule"], "method": policy.tier_method, "rules": tier_rules},
            "subgrade": ({"id": base["_subgrade"], "rule": base["_subgrade_rule"], "rules": sub_rules} if sub_rules else None),
            "stage": ({"id": base["_stage"], "rule": base["_stage_rule"], "strategy": stage.extra.get("strategy") if stage else None,
                       "rules": stage_rules} if stage_rules else None),
            "actions": actions,
            "service_level": ({"id": service.id, "tier": service.tier, "subgrade": service.subgrade, "stage": service.stage,
                               **service.details} if service else None),
        }
    finally:
        rc.close()
