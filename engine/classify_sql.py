"""Compile tier, sub-grade, lifecycle and service-level rules to CASE expressions.

Rules are ordered decision lists, which is exactly SQL's ``CASE WHEN``: the
first true condition wins and ``ELSE`` is the default rule.  Alongside each
grade we record which rule decided it (its id, or ``default``).
"""

from __future__ import annotations

from itertools import groupby

from .expr_sql import SqlParams, quote_identifier as q, to_sql
from .metric_sql import CID
from .statement import Statement
from .sql_layers import LayerChain, LayerStep
from .policy_model import Policy, Rule

DEFAULT_RULE = "default"


def _condition(rule, params: SqlParams, alias: str = "m") -> str:
    return to_sql(rule.condition.node, lambda name: f"{alias}.{q(name)}", params)


def service_level_case(policy: Policy, params: SqlParams, alias: str = "g", subgrade: str | None = None) -> str:
    """Most specific matching entry first: condition > sub-grade > stage > tier only.

    ``subgrade``: SQL of the sub-grade when it is not yet a column of ``alias``.
    """
    ordered = sorted(enumerate(policy.service_levels), key=lambda p: (-p[1].specificity, p[0]))
    whens = []
    # An entry for several tiers is one ServiceLevel per tier, adjacent here (same place, same specificity):
    # one WHEN with _tier IN (...) tests its condition once, not once per tier.
    for _, group in groupby(ordered, key=lambda p: p[1].path):
        levels = [sl for _, sl in group]
        sl = levels[0]
        tiers = ", ".join(params.add(s.tier) for s in levels)
        tests = [f"{alias}._tier = {tiers}" if len(levels) == 1 else f"{alias}._tier IN ({tiers})"]
        if sl.subgrade:
            tests.append(f"{subgrade or f'{alias}._subgrade'} = {params.add(sl.subgrade)}")
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


OVERRIDES = "temp._crm_overrides"
OVERRIDE_RULE = "override"


def _overridden(policy: Policy, params: SqlParams) -> tuple[str, str]:
    """(final tier, deciding rule) SQL over graded rows ``g`` left-joined to overrides ``o``."""
    position = "CASE {} " + " ".join(f"WHEN {params.add(t.id)} THEN {i}" for i, t in enumerate(policy.tiers)) + " END"
    rule_pos, override_pos = position.format("g._rule_tier"), position.format("o.tier")
    tier = (f"CASE o.kind WHEN 'tier' THEN o.tier "
            f"WHEN 'floor' THEN CASE WHEN {rule_pos} > {override_pos} THEN o.tier ELSE g._rule_tier END "
            f"WHEN 'ceiling' THEN CASE WHEN {rule_pos} < {override_pos} THEN o.tier ELSE g._rule_tier END "
            f"ELSE g._rule_tier END")
    rule = (f"CASE WHEN o.kind = 'tier' OR ({tier}) IS NOT g._rule_tier THEN {params.add(OVERRIDE_RULE)} "
            f"ELSE g._rule_tier_rule END")
    return tier, rule


def compile_classification(policy: Policy, table: str, prefix: str = "_crm",
                           overrides: bool = False) -> tuple[list[Statement], str]:
    """``overrides``: rows of temp._crm_overrides (cid, kind, tier, json) apply after the tier rules.

    Tiers and stages, overrides, and sub-grades with service levels are the
    steps of one layer over ``table`` (a chain's view); the result is its view.
    """
    params = SqlParams(prefix="k")
    tier_case, tier_rule = decision([t.rule for t in policy.tiers], params)
    stage_case, stage_rule = decision(policy.stages, params) if policy.stages else ("NULL", "NULL")
    by_rules = "_rule_tier" if overrides else "_tier"
    steps = [LayerStep({by_rules: tier_case, f"{by_rules}_rule": tier_rule, "_stage": stage_case, "_stage_rule": stage_rule},
                       dict(params.values), alias="m")]
    if overrides:
        o_params = SqlParams(prefix="o")
        tier, rule = _overridden(policy, o_params)
        steps.append(LayerStep({"_tier": tier, "_tier_rule": rule, "_override": "o.json"}, dict(o_params.values),
                               join=f"LEFT JOIN {OVERRIDES} AS o ON o.cid = g.{CID}", alias="g"))
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
    # The sub-grade CASE is cheap to evaluate again where a service level names a sub-grade.
    service_level = service_level_case(policy, sub_params, alias="m", subgrade=f"({sub})")
    steps.append(LayerStep({"_subgrade": sub, "_subgrade_rule": sub_rule, "_service_level": service_level},
                           dict(sub_params.values), alias="m"))
    chain = LayerChain(table)
    statements = chain.add_stacked(f"{prefix}_result", steps)
    return statements, chain.source
