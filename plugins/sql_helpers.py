"""SQL fragments the built-in plugins share: normalisation, scores and grade tables.

Every function takes SQL built by the plugin context (quoted columns, bound
parameters) and returns SQL; nothing here sees user text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from crm_rules.engine.expr_sql import tie_key
from crm_rules.engine.plugin_context import PluginContext

NORMALIZATIONS = ("minmax", "percentile", "zscore", "bands")

BANDS_SCHEMA = {
    "type": "array", "minItems": 1,
    "description": "Score bands in increasing order of `up_to`; the last band has no `up_to` and takes the rest.",
    "items": {"type": "object", "additionalProperties": False, "required": ["score"], "properties": {
        "up_to": {"type": "number"}, "score": {"type": "number", "minimum": 0, "maximum": 1}}},
}

GRADES_SCHEMA = {
    "type": "array", "minItems": 1,
    "description": "Grades from best to worst: the first whose `min` the score reaches; the last has no `min`.",
    "items": {"type": "object", "additionalProperties": False, "required": ["id"], "properties": {
        "id": {"type": "string", "minLength": 1}, "label": {"type": "string"}, "min": {"type": "number"}}},
}


def percentile(x: str, better_high: bool = True) -> str:
    """Share of customers strictly worse, 0..1 (ties share); NULL stays NULL."""
    order = "ASC" if better_high else "DESC"
    return (f"CASE WHEN {x} IS NOT NULL THEN coalesce((RANK() OVER (ORDER BY {tie_key(x)} {order} NULLS LAST) - 1) * 1.0 "
            f"/ NULLIF(COUNT({x}) OVER () - 1, 0), 1.0) END")


def ntile(x: str, n: int, better_high: bool = True) -> str:
    """Score 1..n (n = best); equal values always get the same score."""
    order = "ASC" if better_high else "DESC"
    return (f"CASE WHEN {x} IS NOT NULL THEN 1 + CAST({int(n)} * (RANK() OVER (ORDER BY {tie_key(x)} {order} NULLS LAST) - 1) "
            f"/ COUNT({x}) OVER () AS INTEGER) END")


def minmax(x: str, better_high: bool = True) -> str:
    """(x - min) / (max - min) over all customers; 0.5 when everyone is equal."""
    scaled = (f"coalesce(({x} - MIN({x}) OVER ()) * 1.0 / NULLIF(MAX({x}) OVER () - MIN({x}) OVER (), 0), "
              f"CASE WHEN {x} IS NOT NULL THEN 0.5 END)")
    return scaled if better_high else f"(1 - {scaled})"


def zscore(x: str, better_high: bool = True) -> str:
    """z = (x - mean) / population sd, mapped from [-3, 3] to [0, 1] and clipped."""
    mean = f"AVG({x}) OVER ()"
    sd = f"sqrt(max(AVG({x} * {x}) OVER () - {mean} * {mean}, 0))"
    z = f"coalesce(({x} - {mean}) / NULLIF({sd}, 0), CASE WHEN {x} IS NOT NULL THEN 0 END)"
    if not better_high:
        z = f"(-{z})"
    return f"min(max(({z} + 3) / 6.0, 0.0), 1.0)"


def bands(ctx: PluginContext, x: str, items: Sequence[dict], where: Any) -> str | None:
    """Explicit scores per value range: CASE WHEN x <= up_to THEN score ..."""
    limits = [b["up_to"] for b in items if "up_to" in b]
    if "up_to" in items[-1]:
        ctx.error(where, "the last band must have no `up_to`: it takes all larger values")
        return None
    if any("up_to" not in b for b in items[:-1]) or any(a >= b for a, b in zip(limits, limits[1:])):
        ctx.error(where, "bands need strictly increasing `up_to` values (no two equal), with only the last band open")
        return None
    whens = " ".join(f"WHEN {x} <= {ctx.literal(b['up_to'])} THEN {ctx.literal(b['score'])}" for b in items[:-1])
    last = ctx.literal(items[-1]["score"])
    return f"CASE WHEN {x} IS NULL THEN NULL {whens} ELSE {last} END" if whens else f"CASE WHEN {x} IS NOT NULL THEN {last} END"


def check_bands_keys(ctx: PluginContext, factor: dict, where: list, bands_method: str = "bands") -> bool:
    """`bands` are explicit scores: an explicit other `normalize`, or `better: low`, next to them is a mistake.

    Returns whether the keys are fine (each mistake is reported at its key).
    """
    if "bands" not in factor:
        return True
    ok = True
    if factor.get("normalize", bands_method) != bands_method:
        ctx.error(list(where) + ["normalize"],
                  f"`normalize: {factor['normalize']}` contradicts `bands`: a factor with `bands` is scored by its "
                  "bands; drop `bands` or `normalize`")
        ok = False
    if factor.get("better", "high") != "high":
        ctx.error(list(where) + ["better"],
                  "`better: low` does not apply to `bands`: the bands give each range its score; "
                  "give lower scores to higher ranges instead")
        ok = False
    return ok


def normalize(ctx: PluginContext, method: str, x: str, better_high: bool, spec: dict, where: Any) -> str | None:
    if method == "bands":
        if "bands" not in spec:
            ctx.error(where, "normalize: bands needs a `bands` list")
            return None
        return bands(ctx, x, spec["bands"], list(where) + ["bands"])
    make: Callable[[str, bool], str] = {"minmax": minmax, "percentile": percentile, "zscore": zscore}[method]
    return make(x, better_high)


def _path(where: Any) -> list:
    return [where] if isinstance(where, str) else list(where)


def grade_case(ctx: PluginContext, score: str, grades: Sequence[dict], where: Any) -> str | None:
    """The first grade whose ``min`` the score reaches; the last grade takes the rest."""
    if "min" in grades[-1] or any("min" not in g for g in grades[:-1]):
        ctx.error(where, "every grade but the last needs `min`; the last has none and takes the rest")
        return None
    ok = True
    seen: dict[str, int] = {}
    for i, g in enumerate(grades):
        if g["id"] in seen:
            ctx.error(_path(where) + [i, "id"], f"duplicate grade id {g['id']!r} (also grade {seen[g['id']] + 1})")
            ok = False
        seen.setdefault(g["id"], i)
    mins = [g["min"] for g in grades[:-1]]
    if any(a <= b for a, b in zip(mins, mins[1:])):
        ctx.error(where, "grades go from best to worst: `min` values must decrease, with no two equal")
        ok = False
    if not ok:
        return None
    whens = " ".join(f"WHEN {score} >= {ctx.literal(g['min'])} THEN {ctx.literal(g['id'])}" for g in grades[:-1])
    last = ctx.literal(grades[-1]["id"])
    return f"CASE WHEN {score} IS NULL THEN NULL {whens} ELSE {last} END"


def first_match(ctx: PluginContext, rules: Sequence[dict], where: Any, names: dict, value_key: str = "id") -> str | None:
    """CASE over ordered ``{id, when}`` rules; a rule without ``when`` (or with ``default: true``) ends the list."""
    whens, default = [], "NULL"
    for i, rule in enumerate(rules):
        if "when" in rule and rule.get("default"):
            ctx.error(_path(where) + [i], f"rule {rule[value_key]!r} has both `when` and `default: true`; a default has no condition")
            return None
        if "when" not in rule or rule.get("default"):
            if i != len(rules) - 1:
                ctx.error(_path(where) + [i], "only the last rule may have no `when` (it is the default)")
                return None
            default = ctx.literal(rule[value_key])
            continue
        cond = ctx.condition(rule["when"], _path(where) + [i, "when"], names)
        if cond is None:
            return None
        whens.append(f"WHEN {cond} THEN {ctx.literal(rule[value_key])}")
    return f"CASE {' '.join(whens)} ELSE {default} END" if whens else default
