"""Compile tier, sub-grade, lifecycle and service-level rules to CASE expressions.

Rules are ordered decision lists, which is exactly SQL's ``CASE WHEN``: the
first true condition wins and ``ELSE`` is the default rule.  Alongside each
grade we record which rule decided it (its id, or ``default``).
"""

from __future__ import annotations

from .expr_sql import SqlParams, quote_identifier as q, to_sql
from .metric_sql import CID, Statement
from .policy_model import Policy, Rule

DEFAULT_RULE = "default"


def _condition(rule, params: SqlParams, alias: str = "m") -> str:
    return to_sql(rule.condition.node, lambda name: f"{alias}.{q(name)}", params)


def service_level_case(policy: Policy, params: SqlParams, alias: str = "g") -> str:
    """Most specific matching entry first: condition > sub-grade > stage > tier only."""
    ordered = sorted(enumerate(policy.service_levels), key=lambda p: (-p[1].specificity, p[0]))
    whens = []
    for _, sl in ordered:
        tests = [f"{alias}._tier = {params.add(sl.tier)}"]
        if sl.subgrade:
            tests.append(f"{alias}._subgrade = {params.add(sl.subgrade)}")
        if sl.stage:
            tests.append(f"{alias}._stage = {params.add(sl.stage)}")
        if sl.condition:
            tests.append(_condition(sl, params, alias))
        whens.append(f"WHEN {' AND '.join(tests)} THEN {params.add(sl.id)}")
    return f"CASE {' '.join(whens)} END" if whens else "NULL"


def decision(rules: list[Rule], params: SqlParams) -> tuple[str, str]:
    """(CASE giving the id, CASE giving the deciding rule) for a first-hit rule list."""
    whens, rule_whens = [], []
    default = next((r for r in rules if r.is_default), None)
    for rule in rules:
        if rule.condition is None:
            continue
        cond = _condition(rule, params)
        value = params.add(rule.id)
        whens.append(f"WHEN {cond} THEN {value}")
        rule_whens.append(f"WHEN {cond} THEN {value}")
    else_id = params.add(default.id) if default else "NULL"
    else_rule = params.add(DEFAULT_RULE) if default else "NULL"
    if not whens:
        return else_id, else_rule
    return (f"CASE {' '.join(whens)} ELSE {else_id} END", f"CASE {' '.join(rule_whens)} ELSE {else_rule} END")


def match_flags(rules: list[Rule], params: SqlParams) -> list[tuple[str, str]]:
    """(rule id, SQL 0/1 flag) for each conditional rule, to detect overlaps."""
    return [(r.id, f"(CASE WHEN {_condition(r, params)} THEN 1 ELSE 0 END)") for r in rules if r.condition is not None]


def compile_classification(policy: Policy, table: str, prefix: str = "_crm") -> tuple[list[Statement], str]:
    params = SqlParams(prefix="k")
    tier_case, tier_rule = decision([t.rule for t in policy.tiers], params)
    stage_case, stage_rule = decision(policy.stages, params) if policy.stages else ("NULL", "NULL")
    graded = f"{prefix}_graded"
    statements = [
        Statement(f"DROP TABLE IF EXISTS temp.{q(graded)}"),
        Statement(
            f"CREATE TEMP TABLE {q(graded)} AS SELECT m.*, {tier_case} AS _tier, {tier_rule} AS _tier_rule, "
            f"{stage_case} AS _stage, {stage_rule} AS _stage_rule FROM {table} AS m",
            dict(params.values),
        ),
    ]
    sub_params = SqlParams(prefix="s")
    sub_cases, sub_rule_cases = [], []
    for tier in policy.tiers:
        if tier.subgrades:
            case, rule = decision(tier.subgrades, sub_params)
            tid = sub_params.add(tier.id)
            sub_cases.append(f"WHEN {tid} THEN {case}")
            sub_rule_cases.append(f"WHEN {tid} THEN {rule}")
    sub = f"CASE m._tier {' '.join(sub_cases)} END" if sub_cases else "NULL"
    sub_rule = f"CASE m._tier {' '.join(sub_rule_cases)} END" if sub_cases else "NULL"
    result = f"{prefix}_result"
    statements += [
        Statement(f"DROP TABLE IF EXISTS temp.{q(result)}"),
        Statement(
            f"CREATE TEMP TABLE {q(result)} AS SELECT g.*, {service_level_case(policy, sub_params)} AS _service_level "
            f"FROM (SELECT m.*, {sub} AS _subgrade, {sub_rule} AS _subgrade_rule FROM temp.{q(graded)} AS m) AS g",
            dict(sub_params.values),
        ),
        Statement(f"CREATE UNIQUE INDEX temp.{q(result + '_cid')} ON {q(result)}({CID})"),
    ]
    return statements, f"temp.{q(result)}"
