"""Credit check ``credit_6c``: a 6C credit score, exposure, aging and an outcome per customer.

A credit officer wants one row per customer answering: how good is this
customer's credit (score and grade over the six Cs), how much do they owe us
(exposure against their limit, overdue receivables by age), what do we do now
(ok / warn / hold / block, with the reason in words) and what should we offer
(recommended limit and payment terms per grade).

Everything compiles to SQL the engine runs set-based: factor scores are
window functions over all customers, receivables come from hidden engine
metrics (one GROUP BY scan), and rules are ``CASE WHEN`` lists.  There is no
per-customer Python.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from crm_rules.engine import hookimpl
from crm_rules.engine.expr_ast import names_in
from crm_rules.engine.expr_parser import ExpressionSyntaxError, parse_expression
from crm_rules.engine.expr_sql import quote_identifier as q
from crm_rules.engine.expr_types import NUMBER, TEXT, TypeChecker, did_you_mean
from crm_rules.engine.plugin_api import Column, SqlOutputs
from crm_rules.engine.plugin_context import PluginContext

from .sql_helpers import (BANDS_SCHEMA, GRADES_SCHEMA, NORMALIZATIONS, bands as bands_sql, check_bands_keys, grade_case,
                          normalize)

WEIGHT_TOLERANCE = 1e-6
SCALE = 100
SIX_CS = ("character", "capacity", "capital", "collateral", "conditions", "continuity")
CLAMP = "none"  # normalisation of a metric that is already a 0..1 score
OUTCOMES = ("ok", "warn", "hold", "block")

# The rubric used when a policy gives no `factors`: it needs no policy metrics,
# only the receivables, orders and customer-since date the engine already reads.
DEFAULT_FACTORS: dict[str, dict] = {
    "character": {"weight": 0.4, "metric": {"on_time_rate": "receivables"}, "normalize": CLAMP,
                  "label": "share of invoices paid in full on time"},
    "capacity": {"weight": 0.3, "metric": {"sum": "amount", "window": "12 months"}, "normalize": "percentile",
                 "label": "revenue of the last 12 months"},
    "continuity": {"weight": 0.3, "metric": {"tenure": "years"}, "normalize": "bands", "label": "years as a customer",
                   "bands": [{"up_to": 1, "score": 0.2}, {"up_to": 3, "score": 0.6}, {"up_to": 5, "score": 0.8},
                             {"score": 1.0}]},
}
DEFAULT_GRADES = [{"id": "AAA", "min": 85}, {"id": "AA", "min": 70}, {"id": "A", "min": 55}, {"id": "B", "min": 40},
                  {"id": "C"}]
DEFAULT_TERMS = {
    "AAA": {"limit_factor": 1.5, "terms": "open credit 60 days"},
    "AA": {"limit_factor": 1.2, "terms": "net 45"},
    "A": {"limit_factor": 1.0, "terms": "net 30"},
    "B": {"limit_factor": 0.5, "terms": "deposit 20%, net 30"},
    "C": {"limit_factor": 0, "terms": "prepayment 100%"},
}
DEFAULT_AGING = [30, 60, 90]
DEFAULT_LIMIT = "credit_limit"
DEFAULT_LIMIT_BASE = "limit"
LATER_NAMES = ("recommended_limit", "terms")  # outputs computed from limit_base


# -- params schema -------------------------------------------------------------

def _described(schema: dict, descriptions: dict[str, str]) -> dict:
    """A copy of a shared item schema with a description on each item property."""
    out = copy.deepcopy(schema)
    for key, text in descriptions.items():
        out["items"]["properties"][key]["description"] = text
    return out


FACTOR_BANDS_SCHEMA = _described(BANDS_SCHEMA, {"up_to": "Upper end of the band (inclusive).",
                                                 "score": "Score of values in the band, 0..1."})
CREDIT_GRADES_SCHEMA = _described(GRADES_SCHEMA, {
    "id": "Grade id, e.g. AAA; `terms` needs an entry for it.", "label": "Display name.",
    "min": "Lowest score (0..100, rounded to 2 decimals) of the grade; the last grade has none."})
CREDIT_GRADES_SCHEMA["description"] += " Default: AAA >= 85, AA >= 70, A >= 55, B >= 40, C."

FACTOR_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["weight"],
    "properties": {
        "weight": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                   "description": "Weight of this C; the weights of the factors given must add up to 1."},
        "metric": {"type": "string", "description": "Metric (or earlier score) measuring this C; give `metric` or `attribute`."},
        "normalize": {"enum": [*NORMALIZATIONS, CLAMP],
                      "description": "How the metric becomes a 0..1 score: `none` clamps a metric that already is one "
                                     "(e.g. on_time_rate); default `bands` if `bands` is given, else the top-level `normalize`."},
        "better": {"enum": ["high", "low"], "description": "Whether high metric values are good (default) or bad (e.g. days to pay); "
                                                           "not with `bands`, which give each range its score."},
        "bands": FACTOR_BANDS_SCHEMA,
        "attribute": {"type": "string",
                      "description": "Text attribute (e.g. industry, region) looked up in `table`; instead of `metric`."},
        "table": {"type": "object", "minProperties": 1,
                  "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
                  "description": "Score 0..1 of each value of `attribute`, e.g. {retail: 0.6, manufacturing: 0.8}."},
        "default": {"type": "number", "minimum": 0, "maximum": 1,
                    "description": "Score of attribute values not in `table` (and of a missing value); "
                                   "without it such customers skip this C and the others are re-weighted."},
        "label": {"type": "string", "description": "What this factor measures, for people reading the policy."},
    },
}

OUTCOME_RULE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["outcome"],
    "properties": {
        "outcome": {"enum": list(OUTCOMES), "description": "The outcome when `when` holds."},
        "when": {"type": "string",
                 "description": "Condition over metrics and the names score, grade, worst_grade, exposure, limit, "
                                "utilisation, overdue_total, aging_<from>_<to>, aging_<last>_plus, recommended_limit, "
                                "terms; a rule without `when` is the default and must come last."},
        "reason": {"type": "string",
                   "description": "Reason text; `{name}` inserts a value (numbers as 1,234.00, `{name:.0f}` with 0 "
                                  "decimals, `{name:.1%}` as a percentage)."},
        "label": {"type": "string", "description": "Display name of the rule."},
    },
}

CREDIT_6C_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "factors": {
            "type": "object", "additionalProperties": False, "minProperties": 1,
            "description": "The six Cs, each optional; default: character = on-time payment rate (0.4), "
                           "capacity = 12-month revenue percentile (0.3), continuity = years as a customer in bands (0.3).",
            "properties": {
                "character": {**FACTOR_SCHEMA, "description": "Willingness to pay: payment history, e.g. on_time_rate."},
                "capacity": {**FACTOR_SCHEMA, "description": "Ability to pay: revenue or profit."},
                "capital": {**FACTOR_SCHEMA, "description": "Financial strength, e.g. equity or total purchases."},
                "collateral": {**FACTOR_SCHEMA, "description": "Security held: deposits, guarantees."},
                "conditions": {**FACTOR_SCHEMA, "description": "Outside risk, e.g. an industry or region risk table."},
                "continuity": {**FACTOR_SCHEMA, "description": "Length of the relationship, e.g. bands on tenure_years."},
            },
        },
        "normalize": {"enum": [*NORMALIZATIONS, CLAMP],
                      "description": "Default normalisation of metric factors without `bands` (default percentile)."},
        "grades": CREDIT_GRADES_SCHEMA,
        "exposure": {"type": "array", "minItems": 1, "items": {"type": "string"},
                     "description": "Metrics added up to the exposure (default: open receivables, due or not)."},
        "credit_limit": {"type": "string",
                         "description": "Metric or numeric attribute holding the credit limit (default credit_limit, "
                                        "if the data maps it); a missing or zero limit gives no utilisation."},
        "aging": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1},
                  "description": "Increasing day edges of the overdue buckets (default [30, 60, 90]: "
                                 "aging_1_30, aging_31_60, aging_61_90, aging_90_plus)."},
        "outcomes": {"type": "array", "minItems": 1, "items": OUTCOME_RULE_SCHEMA,
                     "description": "Ordered outcome rules, first match wins; no match is ok. Default: block for the "
                                    "oldest bucket or the worst grade, hold over the limit, warn near it, for "
                                    "middle buckets or without a score (no factor has a value), else ok."},
        "terms": {"type": "object", "minProperties": 1,
                  "description": "Recommendation per grade id (default for AAA..C: 1.5, 1.2, 1.0, 0.5, 0).",
                  "additionalProperties": {
                      "type": "object", "additionalProperties": False, "required": ["limit_factor", "terms"],
                      "properties": {
                          "limit_factor": {"type": "number", "minimum": 0,
                                           "description": "Recommended limit = limit_factor x limit_base."},
                          "terms": {"type": "string", "description": "Payment terms offered, e.g. 'net 30', 'prepayment 50%'."}}}},
        "limit_base": {"type": "string",
                       "description": "Number expression the recommended limit is a multiple of, over metrics and "
                                      "limit, exposure, score (default `limit`, the current limit); e.g. "
                                      "`coalesce(limit, revenue_12m / 12 * 2)` for two months of revenue when there is no limit."},
    },
}


# -- factors and score ---------------------------------------------------------

def hidden_metric(ctx: PluginContext, spec: dict, label: str, where: Any) -> str | None:
    """An engine metric only this entry sees; the label is what `explain` shows for it."""
    return ctx.metric({**spec, "label": f"{label} (credit check {ctx.entry})"}, where)


def _metric_sql(ctx: PluginContext, factor: dict, where: list) -> str | None:
    """A policy metric by name, or (default rubric only) a hidden engine metric spec."""
    if isinstance(factor["metric"], dict):
        return hidden_metric(ctx, factor["metric"], factor.get("label", "factor"), where)
    return ctx.ref(factor["metric"], where)


def _table_factor(ctx: PluginContext, factor: dict, where: list) -> str | None:
    """CASE attribute WHEN value THEN score ... ELSE default END: risk tables by industry or region."""
    if "table" not in factor:
        ctx.error(where, "a factor with `attribute` needs a `table` of scores per value")
        return None
    x = ctx.ref(factor["attribute"], where + ["attribute"], types=(TEXT,))
    if x is None:
        return None
    whens = " ".join(f"WHEN {ctx.literal(k)} THEN {ctx.literal(v)}" for k, v in factor["table"].items())
    default = ctx.literal(factor["default"]) if "default" in factor else "NULL"
    return f"(CASE {x} {whens} ELSE {default} END)"


def _misplaced_keys(ctx: PluginContext, factor: dict, where: list) -> bool:
    """A factor is either a metric or an attribute table; keys of the other kind are mistakes."""
    if ("metric" in factor) == ("attribute" in factor):
        ctx.error(where, "a factor needs exactly one of `metric` or `attribute`")
        return True
    other = ("table", "default") if "metric" in factor else ("normalize", "better", "bands")
    wrong = [k for k in other if k in factor]
    for key in wrong:
        kind = "metric" if "metric" in factor else "attribute"
        ctx.error(where + [key], f"`{key}` does not apply to a factor with `{kind}`")
    return bool(wrong)


def _factor_sql(ctx: PluginContext, factor: dict, where: list, default_method: str) -> str | None:
    """The factor's 0..1 score per customer (NULL when its value is missing)."""
    if _misplaced_keys(ctx, factor, where):
        return None
    if "attribute" in factor:
        return _table_factor(ctx, factor, where)
    x = _metric_sql(ctx, factor, where + ["metric"])
    keys_ok = check_bands_keys(ctx, factor, where)
    if x is None or not keys_ok:
        return None
    method = factor.get("normalize", "bands" if "bands" in factor else default_method)
    better_high = factor.get("better", "high") == "high"
    if method == CLAMP:
        clamped = f"min(max({x}, 0.0), 1.0)"
        return clamped if better_high else f"(1 - {clamped})"
    if method == "bands":  # bands are explicit scores, `better` does not apply
        if "bands" not in factor:
            ctx.error(where, "normalize: bands needs a `bands` list")
            return None
        return bands_sql(ctx, x, factor["bands"], where + ["bands"])
    return normalize(ctx, method, x, better_high, factor, where)


def _factor_columns(ctx: PluginContext, params: dict) -> dict[str, Column]:
    factors = params.get("factors", DEFAULT_FACTORS)
    total = sum(f["weight"] for f in factors.values())
    if abs(total - 1) > WEIGHT_TOLERANCE:
        ctx.error("factors", f"the weights add up to {total:g}; they must add up to 1")
    default_method = params.get("normalize", "percentile")
    columns = {}
    for name in SIX_CS:
        if name in factors:
            sql = _factor_sql(ctx, factors[name], ["factors", name], default_method)
            if sql is not None:
                columns[f"_f_{name}"] = Column("number", sql, label=factors[name].get("label", name))
    return columns


def _score_sql(ctx: PluginContext, factors: dict) -> str:
    """Weighted mean over the factors a customer has (missing ones re-weight the rest), 0..100, 2 decimals.

    Rounding before grading keeps float noise (55.00000000000001) from deciding a grade.
    """
    terms, present = [], []
    for name in SIX_CS:
        if name in factors:
            f, w = ctx.col(f"_f_{name}"), ctx.literal(factors[name]["weight"])
            terms.append(f"coalesce({w} * {f}, 0)")
            present.append(f"(CASE WHEN {f} IS NOT NULL THEN {w} ELSE 0 END)")
    return f"round({SCALE} * ({' + '.join(terms)}) / NULLIF({' + '.join(present)}, 0), 2)"


# -- exposure, limit, aging ------------------------------------------------------

def _exposure_sql(ctx: PluginContext, params: dict) -> str | None:
    if "exposure" not in params:
        return hidden_metric(ctx, {"outstanding": "receivables"}, "open receivables", "exposure")
    parts = [ctx.ref(name, ["exposure", i]) for i, name in enumerate(params["exposure"])]
    if any(p is None for p in parts):
        return None
    return "(" + " + ".join(f"coalesce({p}, 0)" for p in parts) + ")"


def _limit_sql(ctx: PluginContext, params: dict) -> str | None:
    """The limit named in params; by default the credit_limit attribute, or none if the data has no such column."""
    if "credit_limit" in params:
        return ctx.ref(params["credit_limit"], "credit_limit")
    return ctx.ref(DEFAULT_LIMIT, "credit_limit") if ctx.type_of(DEFAULT_LIMIT) == NUMBER else "NULL"


def aging_buckets(edges: list[int]) -> list[tuple[str, int, int | None]]:
    """(suffix, min_days, max_days) per bucket: [30, 60] -> aging_1_30, aging_31_60, aging_60_plus."""
    out, low = [], 1
    for edge in edges:
        out.append((f"aging_{low}_{edge}", low, edge))
        low = edge + 1
    out.append((f"aging_{edges[-1]}_plus", edges[-1] + 1, None))
    return out


def _aging_columns(ctx: PluginContext, edges: list[int]) -> dict[str, Column]:
    if any(a >= b for a, b in zip(edges, edges[1:])):
        ctx.error("aging", f"the day edges must increase: {edges}")
        return {}
    columns = {}
    for suffix, low, high in aging_buckets(edges):
        spec = {"overdue": "amount", "min_days": low, **({"max_days": high} if high else {})}
        label = f"receivables overdue {low}-{high} days" if high else f"receivables overdue more than {low - 1} days"
        columns[suffix] = Column("number", hidden_metric(ctx, spec, label, "aging"), label=label)
    return columns


# -- reason texts ----------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FORMAT = re.compile(r"^\.(\d)([f%])$")


def _number_text(x: str, decimals: int) -> str:
    """SQL text of a number with thousands separators (SQLite's ``%,d`` groups integers only)."""
    scale = 10 ** decimals
    units = f"CAST(round(abs({x}) * {scale}) AS INTEGER)"
    sign = f"(CASE WHEN {x} < 0 AND {units} > 0 THEN '-' ELSE '' END)"
    whole = f"printf('%,d', {units} / {scale})"
    if decimals == 0:
        return f"{sign} || {whole}"
    return f"{sign} || {whole} || printf('.%0{decimals}d', {units} % {scale})"


def _formatted(ctx: PluginContext, sql: str, type_: str, fmt: str, where: Any) -> str | None:
    if type_ != NUMBER:
        if fmt:
            ctx.error(where, f"a format such as {fmt!r} applies to numbers only")
            return None
        return f"CAST({sql} AS TEXT)"
    match = _FORMAT.match(fmt) if fmt else None
    if fmt and not match:
        ctx.error(where, f"unknown format {fmt!r}; use .2f (2 decimals) or .1% (a percentage)")
        return None
    decimals, kind = (int(match.group(1)), match.group(2)) if match else (2, "f")
    text = f"printf('%.{decimals}f%%', {sql} * 100.0)" if kind == "%" else _number_text(sql, decimals)
    return f"(CASE WHEN {sql} IS NOT NULL THEN {text} END)"  # printf() prints NULL as 0


def reason_sql(ctx: PluginContext, template: str, names: dict[str, tuple[str, str]], where: Any) -> str | None:
    """SQL text of a reason template: literal pieces bound as parameters, ``{name[:fmt]}`` as formatted values."""
    parts, pos = [], 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            parts.append(ctx.literal(template[pos:m.start()]))
        name, _, fmt = m.group(1).partition(":")
        name = name.strip()
        if name in names:
            sql, type_ = names[name]
        elif ctx.type_of(name) is not None:
            sql, type_ = f"t.{q(name)}", ctx.type_of(name)
        else:
            known = list(names) + list(ctx.scope)
            ctx.error(where, f"unknown name {name!r} in the reason{did_you_mean(name, known)}")
            return None
        text = _formatted(ctx, sql, type_, fmt.strip(), where)
        if text is None:
            return None
        parts.append(f"coalesce({text}, 'n/a')")
        pos = m.end()
    if pos < len(template) or not parts:
        parts.append(ctx.literal(template[pos:]))
    return " || ".join(f"({p})" for p in parts)


# -- outcomes ----------------------------------------------------------------------

def default_outcomes(edges: list[int]) -> list[dict]:
    """Block for the oldest bucket or the worst grade, hold over the limit, warn near it, in middle buckets or
    without a score."""
    buckets = [suffix for suffix, _, _ in aging_buckets(edges)]
    oldest = buckets[-1]
    rules = [
        {"outcome": "block", "when": f"{oldest} > 0", "reason": f"overdue > {edges[-1]} days: {{{oldest}}}"},
        {"outcome": "block", "when": "grade = worst_grade", "reason": "credit grade {grade} (score {score:.1f})"},
        {"outcome": "hold", "when": "utilisation > 1",
         "reason": "exposure {exposure} exceeds the credit limit {limit} ({utilisation:.0%})"},
        {"outcome": "hold", "when": "limit = 0 and exposure > 0", "reason": "exposure {exposure} with no credit granted (limit 0)"},
        {"outcome": "warn", "when": "utilisation > 0.8", "reason": "utilisation {utilisation:.0%} of the credit limit {limit}"},
    ]
    for suffix, low, high in reversed(aging_buckets(edges)[1:-1]):
        rules.append({"outcome": "warn", "when": f"{suffix} > 0", "reason": f"overdue {low}-{high} days: {{{suffix}}}"})
    # no factor has a value (a new customer without payment history): nothing to grant credit on
    rules.append({"outcome": "warn", "when": "score is null",
                  "reason": "no credit score: none of the factors has a value; review before granting credit"})
    rules.append({"outcome": "ok", "reason": "grade {grade}, utilisation {utilisation:.0%}"})
    return rules


def _outcome_cases(ctx: PluginContext, rules: list[dict], names: dict, where: str,
                   grades: list[str]) -> tuple[str, str] | None:
    """(outcome CASE, reason CASE) over the same ordered conditions; no match is ok without a reason.

    Every rule is compiled even after a problem, so the user sees all problems at once.
    """
    outcome_whens, reason_whens = [], []
    default_outcome, default_reason = ctx.literal("ok"), "NULL"
    for i, rule in enumerate(rules):
        reason = reason_sql(ctx, rule["reason"], names, [where, i, "reason"]) if "reason" in rule else "NULL"
        if "when" not in rule:
            if i != len(rules) - 1:
                ctx.error([where, i], "only the last rule may have no `when` (it is the default)")
            default_outcome, default_reason = ctx.literal(rule["outcome"]), reason
            continue
        cond = ctx.condition(rule["when"], [where, i, "when"], names, values={"grade": grades})
        outcome_whens.append(f"WHEN {cond} THEN {ctx.literal(rule['outcome'])}")
        reason_whens.append(f"WHEN {cond} THEN {reason}")
    if ctx.failed:
        return None
    return (f"CASE {' '.join(outcome_whens)} ELSE {default_outcome} END",
            f"CASE {' '.join(reason_whens)} ELSE {default_reason} END")


# -- recommendation --------------------------------------------------------------

def _check_terms(ctx: PluginContext, params: dict, grades: list[dict]) -> dict:
    """Every grade needs terms, and every key of the policy's `terms` must be a grade."""
    terms = params.get("terms", DEFAULT_TERMS)
    ids = [g["id"] for g in grades]
    missing = [g for g in ids if g not in terms]
    if missing:
        where = "terms" if "terms" in params else "grades"
        ctx.error(where, f"no terms for grade(s) {', '.join(missing)}; give `terms` with an entry per grade")
    for key in params.get("terms", {}):
        if key not in ids:
            ctx.error(["terms", key], f"unknown grade {key!r}{did_you_mean(key, ids)}; grades: {', '.join(ids)}")
    return terms


def _limit_base_sql(ctx: PluginContext, params: dict, names: dict) -> str | None:
    """The base the per-grade factor multiplies; must be a number expression.

    It may use every short name known before the recommendation (score, grade, worst_grade, exposure, limit,
    utilisation, overdue_total, the buckets), not recommended_limit and terms, which it defines.
    """
    text = params.get("limit_base", DEFAULT_LIMIT_BASE)
    if isinstance(text, str):
        node = None
        try:
            node = parse_expression(text)
        except ExpressionSyntaxError:  # ctx.expr below reports it at its place
            pass
        circular = sorted(names_in(node) & set(LATER_NAMES)) if node is not None else []
        if circular:
            ctx.error("limit_base", f"limit_base cannot use {', '.join(circular)}: the recommendation is computed from "
                                    f"limit_base; it may use metrics and {', '.join(names)}")
            return None
    sql = ctx.expr(text, "limit_base", names)
    if sql is None:
        return None
    # ctx.expr does not return the type it inferred: infer it again (the text is known to be valid).
    scope = {**ctx.scope, **{n: t for n, (_, t) in {**ctx.locals, **names}.items()}}
    found = TypeChecker(scope).infer(parse_expression(text))
    if found not in (NUMBER, "null"):
        ctx.error("limit_base", f"limit_base must be a number, but {text!r} is a {found}")
        return None
    return sql


def _recommendation(ctx: PluginContext, terms: dict, grade: str, base: str) -> dict[str, Column]:
    factor_whens = " ".join(f"WHEN {ctx.literal(g)} THEN {ctx.literal(t['limit_factor'])}" for g, t in terms.items())
    terms_whens = " ".join(f"WHEN {ctx.literal(g)} THEN {ctx.literal(t['terms'])}" for g, t in terms.items())
    # never negative: a base below 0 (e.g. limit - overdue_total with more overdue than limit) recommends no credit
    return {"recommended_limit": Column("number", f"round(max((CASE {grade} {factor_whens} END) * ({base}), 0.0), 2)",
                                        label="recommended credit limit"),
            "terms": Column("text", f"(CASE {grade} {terms_whens} END)", label="recommended payment terms")}


# -- the check ---------------------------------------------------------------------

def _names(ctx: PluginContext, suffixes: list[str], worst_grade: str) -> dict[str, tuple[str, str]]:
    """Local names the params' conditions, reasons and limit_base may use."""
    types = {"grade": TEXT, "recommended_limit": NUMBER, "terms": TEXT}
    names = {s or "score": (ctx.col(s), types.get(s, NUMBER)) for s in suffixes}
    names["worst_grade"] = (ctx.literal(worst_grade), TEXT)
    return names


def credit_6c(ctx: PluginContext, params: dict) -> SqlOutputs | None:
    """Four SQL layers: factor scores, exposure and aging; score and utilisation; grade; recommendation and outcome.

    Each part is compiled even when an earlier one has a problem, so every problem is reported at once.
    """
    factors = params.get("factors", DEFAULT_FACTORS)
    grades = params.get("grades", DEFAULT_GRADES)
    edges = params.get("aging", DEFAULT_AGING)
    first = _factor_columns(ctx, params)
    first |= {"exposure": Column("number", _exposure_sql(ctx, params), label="credit exposure"),
              "limit": Column("number", _limit_sql(ctx, params), label="credit limit")}
    first |= _aging_columns(ctx, edges)
    buckets = [s for s, _, _ in aging_buckets(edges)]
    second = {"": Column("number", _score_sql(ctx, factors), label="6C credit score"),
              "utilisation": Column("number", f"{ctx.col('exposure')} * 1.0 / NULLIF({ctx.col('limit')}, 0)",
                                    label="exposure / credit limit"),
              "overdue_total": Column("number", " + ".join(ctx.col(s) for s in buckets), label="overdue receivables")}
    third = {"grade": Column("text", grade_case(ctx, ctx.col(""), grades, "grades"), label="credit grade", summarize=True,
                             values=tuple(str(g["id"]) for g in grades))}  # best first, as the summary lists them
    names = _names(ctx, ["", "grade", "exposure", "limit", "utilisation", "overdue_total", *buckets], grades[-1]["id"])
    terms = _check_terms(ctx, params, grades)
    base = _limit_base_sql(ctx, params, names)
    fourth = _recommendation(ctx, terms, ctx.col("grade"), base or "NULL")
    names |= {s: (f"({c.sql})", c.type) for s, c in fourth.items()}
    cases = _outcome_cases(ctx, params.get("outcomes", default_outcomes(edges)), names, "outcomes",
                           [str(g["id"]) for g in grades])
    if ctx.failed or cases is None:
        return None
    fourth |= {"outcome": Column("text", cases[0], label="credit outcome (ok/warn/hold/block)", summarize=True,
                                 values=("ok", "warn", "hold", "block")),
               "reason": Column("text", cases[1], label="why this outcome")}
    # A negative limit is bad data, not "no credit": the customer's outputs would be nonsense (negative
    # utilisation, recommended limit), so it is a per-customer error and the entry's on_error decides.
    limit = ctx.col("limit")
    error = (f"CASE WHEN {limit} < 0 THEN {ctx.literal('negative credit limit ')} || {_number_text(limit, 2)} "
             f"|| {ctx.literal(': a credit limit is 0 (no credit) or more; fix the data')} END")
    return SqlOutputs([first, second, third, fourth], error=error)


@hookimpl
def crm_rules_register_credit_checks(register):
    register("credit_6c", credit_6c, CREDIT_6C_SCHEMA)
