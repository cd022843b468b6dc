"""Value scoring: a weighted multi-factor customer value score, and RFM.

Both compile to SQL window functions, so scoring a million customers is a
few sorts inside SQLite, not a Python loop.
"""

from __future__ import annotations

from crm_rules.engine import hookimpl
from crm_rules.engine.plugin_api import Column, SqlOutputs
from crm_rules.engine.plugin_context import PluginContext

from .sql_helpers import (BANDS_SCHEMA, GRADES_SCHEMA, NORMALIZATIONS, check_bands_keys, first_match, grade_case, normalize,
                          ntile)

WEIGHT_TOLERANCE = 1e-6

WEIGHTED_VALUE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["factors"],
    "properties": {
        "normalize": {"enum": list(NORMALIZATIONS), "description": "Default normalisation of factors to 0..1 (default percentile)."},
        "missing": {"enum": ["skip", "zero", "mean"],
                    "description": "A customer's missing factor: skip it and re-weight the others (default), count it as 0, or as the average."},
        "scale": {"type": "number", "exclusiveMinimum": 0, "description": "Score of a perfect customer (default 100)."},
        "factors": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["metric", "weight"],
            "properties": {
                "metric": {"type": "string", "description": "Metric (or earlier score) measuring this factor."},
                "weight": {"type": "number", "exclusiveMinimum": 0, "description": "Weights must add up to 1."},
                "normalize": {"enum": list(NORMALIZATIONS),
                              "description": "How this factor becomes 0..1: default `bands` if `bands` is given, else the top-level `normalize`."},
                "better": {"enum": ["high", "low"], "description": "Whether high values are good (default) or bad (costs, discounts); not with `bands`."},
                "bands": {**BANDS_SCHEMA, "description": BANDS_SCHEMA["description"] + " Given bands score the factor (normalize: bands)."},
                "label": {"type": "string"}}}},
        "grades": GRADES_SCHEMA,
    },
}


def weighted_value(ctx: PluginContext, params: dict) -> SqlOutputs | None:
    factors = params["factors"]
    total = sum(f["weight"] for f in factors)
    if abs(total - 1) > WEIGHT_TOLERANCE:
        ctx.error("factors", f"the weights add up to {total:g}; they must add up to 1")
    normalized = {}
    for i, factor in enumerate(factors):
        x = ctx.ref(factor["metric"], ["factors", i, "metric"])
        method = factor.get("normalize", "bands" if "bands" in factor else params.get("normalize", "percentile"))
        keys_ok = check_bands_keys(ctx, factor, ["factors", i])
        if x is not None and keys_ok:
            sql = normalize(ctx, method, x, factor.get("better", "high") == "high", factor, ["factors", i])
            if sql is not None:
                normalized[f"_f{i}"] = Column("number", sql, label=factor.get("label", factor["metric"]))
    grade = grade_case(ctx, ctx.col(""), params["grades"], "grades") if "grades" in params else None
    if ctx.failed:
        return None
    missing = params.get("missing", "skip")
    terms, present = [], []
    for i, factor in enumerate(factors):
        f, w = ctx.col(f"_f{i}"), ctx.literal(factor["weight"])
        if missing == "zero":
            f = f"coalesce({f}, 0)"
        elif missing == "mean":
            f = f"coalesce({f}, AVG({f}) OVER ())"
        terms.append(f"coalesce({w} * {f}, 0)")
        present.append(f"(CASE WHEN {f} IS NOT NULL THEN {w} ELSE 0 END)")
    scale = ctx.literal(params.get("scale", 100))
    # rounded so that float noise (49.99999999999999) never moves a customer across a grade boundary
    score = f"round({scale} * ({' + '.join(terms)}) / NULLIF({' + '.join(present)}, 0), 6)"
    steps = [normalized, {"": Column("number", score, label="value score")}]
    if grade is not None:
        steps.append({"grade": Column("text", grade, label="value grade", summarize=True,
                                      values=tuple(str(g["id"]) for g in params["grades"]))})
    return SqlOutputs(steps)


DEFAULT_RFM_SEGMENTS = [
    {"id": "champions", "label": "Champions", "when": "r >= 4 and f >= 4 and m >= 4"},
    {"id": "loyal", "label": "Loyal", "when": "f >= 4 and r >= 3"},
    {"id": "cant_lose", "label": "Can't lose them", "when": "r <= 2 and f >= 4"},
    {"id": "at_risk", "label": "At risk", "when": "r <= 2 and f >= 3 and m >= 3"},
    {"id": "potential_loyalist", "label": "Potential loyalist", "when": "r >= 4 and f >= 2"},
    {"id": "new", "label": "New", "when": "r >= 4"},
    {"id": "lost", "label": "Lost", "when": "r = 1 and f <= 2"},
    {"id": "hibernating", "label": "Hibernating", "when": "r <= 2"},
    {"id": "need_attention", "label": "Need attention"},
]

RFM_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["recency", "frequency", "monetary"],
    "properties": {
        "recency": {"type": "string", "description": "Metric: days since the last purchase (lower is better)."},
        "frequency": {"type": "string", "description": "Metric: number of purchases."},
        "monetary": {"type": "string", "description": "Metric: amount spent."},
        "n": {"type": "integer", "minimum": 2, "maximum": 9, "description": "Scores 1..n (default 5, quintiles)."},
        "segments": {"type": "array", "minItems": 1,
                     "description": "Named segments, first match wins, over r, f and m (and any metric); the last may have no `when`.",
                     "items": {"type": "object", "additionalProperties": False, "required": ["id"], "properties": {
                         "id": {"type": "string", "minLength": 1}, "label": {"type": "string"},
                         "when": {"type": "string"}, "default": {"type": "boolean"}}}},
    },
}


def rfm(ctx: PluginContext, params: dict) -> SqlOutputs | None:
    n = params.get("n", 5)
    refs = {key: ctx.ref(params[name], name) for key, name in (("r", "recency"), ("f", "frequency"), ("m", "monetary"))}
    if ctx.failed:
        return None
    scores = {"r": Column("number", ntile(refs["r"], n, better_high=False), label="RFM recency score"),
              "f": Column("number", ntile(refs["f"], n), label="RFM frequency score"),
              "m": Column("number", ntile(refs["m"], n), label="RFM monetary score")}
    names = {k: (ctx.col(k), "number") for k in scores}
    segment = first_match(ctx, params.get("segments", DEFAULT_RFM_SEGMENTS), "segments", names)
    if segment is None:
        return None
    total = f"{ctx.col('r')} + {ctx.col('f')} + {ctx.col('m')}"
    return SqlOutputs([scores, {"": Column("text", segment, label="RFM segment", summarize=True),
                                "score": Column("number", total, label="RFM total score")}])


@hookimpl
def crm_rules_register_scorers(register):
    register("weighted_value", weighted_value, WEIGHTED_VALUE_SCHEMA)
    register("rfm", rfm, RFM_SCHEMA)
