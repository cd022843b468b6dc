"""Retention actions: exit barriers, churn early warning, upgrade candidates, phase-out reviews.

Each generator compiles to one ``INSERT ... SELECT`` per kind of action over
the graded customers (``SqlActions``).  Conditions, due dates and reasons are
SQL (``printf`` and concatenation), so a reason shows each customer's own
figures without any per-customer Python.

Tier and stage names in the params are checked against the policy's own
(``ctx.check_grade``): a misspelt tier would match nobody, and the action
would silently never fire.
"""

from __future__ import annotations

from typing import Any

from crm_rules.engine import hookimpl
from crm_rules.engine.expr_ast import Name, walk
from crm_rules.engine.expr_parser import parse_expression
from crm_rules.engine.expr_types import BOOL, NUMBER, TEXT
from crm_rules.engine.name_rules import NAME_PATTERN  # a mismatch is said in words
from crm_rules.engine.plugin_api import Action, SqlActions
from crm_rules.engine.plugin_context import PluginContext
from crm_rules.engine.time_spans import TRAILING_WINDOW_PATTERN  # a mismatch names the window meant, or why not

DEFAULT_PRIORITY = 3


# ---- schema pieces -----------------------------------------------------------

def _names(description: str) -> dict:
    return {"type": "array", "minItems": 1, "uniqueItems": True, "description": description,
            "items": {"type": "string", "minLength": 1, "description": "A tier or stage id, as in the policy."}}


def _priority(default: str = f"default {DEFAULT_PRIORITY}") -> dict:
    return {"type": "integer", "minimum": 1, "maximum": 9, "description": f"Priority, 1 = most urgent ({default})."}


DUE_IN_DAYS = {"type": "integer", "minimum": 0, "maximum": 3650,
               "description": "Due date = the as-of date + this many days (default 0: due on the as-of date)."}
ACTION_NAME = {"type": "string", "pattern": NAME_PATTERN,
               "description": "Name of the action written to crm_actions: letters, digits and _, starting with a letter."}
LABEL = {"type": "string", "minLength": 1,
         "description": "Text used in the reason (default: the action name with spaces); may be Chinese."}
WHEN = {"type": "string", "minLength": 1,
        "description": "Condition over metrics, attributes, scores and tier/subgrade/stage/service_level; "
                       "its values are listed in the reason."}
METRIC = {"type": "string", "minLength": 1}


def _metric(description: str) -> dict:
    return {**METRIC, "description": description}


def _barrier_item(kind: str, action_required: bool) -> dict:
    props: dict[str, Any] = {
        "action": {**ACTION_NAME, "description": ACTION_NAME["description"]
                   + (" Required." if action_required else " Default loyalty_rebate.")},
        "label": LABEL,
        "when": WHEN,
        "tiers": _names("Tiers this action is for (default: the generator's `tiers`)."),
        "stages": _names("Stages this action is for (default: the generator's `stages`)."),
        "priority": _priority("default: the generator's `priority`"),
        "due_in_days": {**DUE_IN_DAYS, "description": "Due date = as-of + this many days (default: the generator's `due_in_days`)."},
    }
    if kind == "economic":
        props["rebate"] = {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                           "description": "Rebate rate on revenue, e.g. 0.02 for 2% (shown in the reason and details)."}
        props["points"] = {"type": "number", "exclusiveMinimum": 0,
                           "description": "Loyalty points multiplier, e.g. 2 for double points (shown in the reason and details)."}
    return {"type": "object", "additionalProperties": False, "required": ["action"] if action_required else [],
            "description": f"One {kind} exit barrier.", "properties": props}


EXIT_BARRIERS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "tiers": _names("Tiers that get exit barriers (default: all tiers)."),
        "stages": _names("Lifecycle stages that get economic and technical barriers (default [stable]; every "
                         "customer of the tiers when the policy has no lifecycle)."),
        "priority": _priority(),
        "due_in_days": DUE_IN_DAYS,
        "economic": {"type": "array", "minItems": 1, "items": _barrier_item("economic", action_required=False),
                     "description": "Economic barriers (category economic): rebates, points; e.g. {action: loyalty_rebate, rebate: 0.02}."},
        "technical": {"type": "array", "minItems": 1, "items": _barrier_item("technical", action_required=True),
                      "description": "Technical barriers (category technical): integration, dedicated service; "
                                     "e.g. {action: edi_integration, when: 'orders_12m >= 24'}."},
        "contractual": {
            "type": "object", "additionalProperties": False,
            "description": "A renewal offer (category contractual) when the contract ends within `days_before_end` days.",
            "properties": {
                "action": {**ACTION_NAME, "description": ACTION_NAME["description"] + " Default renewal_offer."},
                "days_before_end": {"type": "integer", "minimum": 0, "maximum": 3650,
                                    "description": "Offer renewal this many days before the contract ends (default 90)."},
                "look_ahead_days": {"type": "integer", "minimum": 0, "maximum": 3650,
                                    "description": "Also list renewals that fall due within this many days after the as-of date, "
                                                   "with their future due date (default 0: only those due now)."},
                "metric": _metric("A metric of days left on the contract (e.g. a contract_days_left metric); "
                                  "default: the engine computes days to the end of the latest-ending active contract."),
                "tiers": _names("Tiers that get renewal offers (default: the generator's `tiers`)."),
                "stages": _names("Stages that get renewal offers (default: every stage)."),
                "priority": _priority("default: the generator's `priority`"),
                "when": WHEN,
            },
        },
    },
}


CHURN_WARNING_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "volume_drop": {
            "type": "object", "additionalProperties": False, "required": ["metric"],
            "description": "Signal: volume this period vs the previous one fell at least this much.",
            "properties": {
                "metric": _metric("A trend metric (this period ÷ previous − 1), e.g. revenue_prev_12m_trend."),
                "below": {"type": "number", "minimum": -1, "exclusiveMaximum": 0,
                          "description": "Fires when the trend is at or below this, a fraction from -1 up to (not "
                                         "including) 0: -0.3 (the default) is a drop of 30% or more; not -30."},
                "label": {**LABEL, "description": "Name of the signal in the reason (default 'volume')."},
                "versus": {**LABEL, "description": "What the trend compares with, in the reason (default 'previous "
                                                   "period'), e.g. 'same quarter last year' for a year-on-year metric: "
                                                   "'volume -50% vs same quarter last year'."},
            },
        },
        "purchase_gap": {
            "type": "object", "additionalProperties": False,
            "description": "Signal: no purchase for more than k × the customer's usual interval between purchases.",
            "properties": {
                "recency": _metric("Metric: days since the last purchase (default: the engine's recency over orders)."),
                "interval": _metric("Metric: the customer's usual days between purchases (default: the engine computes "
                                    "(last − first order day) ÷ (orders − 1) over `window`, or over all "
                                    "orders for a customer with fewer than two in the window)."),
                "window": {"type": "string", "pattern": TRAILING_WINDOW_PATTERN,
                           "description": "Window of the default interval: `24 months`, `3y` or `all` (default all); "
                                          "not a calendar window (`year to date`), which is only days long at the "
                                          "start of its period."},
                "k": {"type": "number", "exclusiveMinimum": 0, "description": "Multiple of the usual interval (default 2)."},
            },
        },
        "complaints": {
            "type": "object", "additionalProperties": False, "required": ["metric"],
            "description": "Signal: complaints at least `min`, and/or more than in the previous period.",
            "properties": {
                "metric": _metric("Metric: complaints in the recent period, e.g. complaints_90d."),
                "min": {"type": "number", "minimum": 1,
                        "description": "Fires at this many complaints or more, at least 1 (0 would alert every "
                                       "customer); default 1 unless `previous` is given."},
                "previous": _metric("Metric: complaints in the period before; the signal needs a rise over it."),
                "label": {**LABEL, "description": "Name of the signal in the reason (default 'complaints')."},
            },
        },
        "tiers": _names("Only customers of these tiers (default: all)."),
        "stages": _names("Only customers in these lifecycle stages (default: all)."),
        "priority": _priority(),
        "priority_by_tier": {"type": "object", "description": "Priority per tier, e.g. {A: 1, B: 2}; other tiers get `priority`.",
                             "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 9,
                                                                       "description": "Priority of this tier's alerts, 1 = most urgent."}},
        "due_in_days": DUE_IN_DAYS,
    },
}

UPGRADE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["from_tiers", "when"],
    "properties": {
        "from_tiers": _names("Lower tiers whose customers may qualify, e.g. [B, C]."),
        "to_tier": {"type": "string", "minLength": 1, "description": "The tier they are candidates for (shown in the reason and details)."},
        "when": {**WHEN, "description": "Growth or potential that qualifies, e.g. 'revenue_prev_12m_trend >= 0.3 and margin_12m >= 0.2'."},
        "stages": _names("Only customers in these lifecycle stages (default: all)."),
        "priority": _priority(),
        "due_in_days": DUE_IN_DAYS,
    },
}

PHASE_OUT_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["tiers", "when"],
    "properties": {
        "tiers": _names("Bottom tiers to review, e.g. [C]."),
        "when": {**WHEN, "description": "Condition for a phase-out review, e.g. 'margin_12m < 0.05 and orders_12m <= 2'."},
        "stages": _names("Only customers in these lifecycle stages (default: all)."),
        "priority": _priority(),
        "due_in_days": DUE_IN_DAYS,
    },
}


# ---- SQL helpers --------------------------------------------------------------

def _in(ctx: PluginContext, local: str, values: list[str] | None, where: Any) -> str | None:
    """``tier IN (...)`` for a filter, or None when there is no filter."""
    if not values:
        return None
    at = list(where) if isinstance(where, list) else [where]
    if not all([ctx.check_grade(local, v, at + [i]) for i, v in enumerate(values)]):
        return None
    col = ctx.ref(local, where, (TEXT,))
    return f"{col} IN ({', '.join(ctx.literal(v) for v in values)})"


def _all(conditions: list[str | None]) -> str:
    parts = [f"({c})" for c in conditions if c]
    return " AND ".join(parts) or "1"


def _due(ctx: PluginContext, days: int) -> str | None:
    return f"date({ctx.as_of}, {ctx.literal(f'+{int(days)} days')})" if days else None


def _who(ctx: PluginContext) -> str:
    """'stable A customer' (stage and tier of each customer; either may be missing)."""
    stage, tier = ctx.ref("stage", None, (TEXT,)), ctx.ref("tier", None, (TEXT,))
    return f"(ltrim(coalesce({stage}, '') || ' ' || coalesce({tier}, '')) || ' customer')"


def _text(sql: str, type_: str) -> str:
    """A value as short text for reasons: integers without '.0', others rounded to 4 decimals."""
    if type_ == NUMBER:
        return (f"(CASE WHEN {sql} IS NULL THEN 'missing' WHEN {sql} = CAST({sql} AS INTEGER) "
                f"THEN CAST(CAST({sql} AS INTEGER) AS TEXT) ELSE CAST(round({sql}, 4) AS TEXT) END)")
    if type_ == BOOL:
        return f"(CASE WHEN {sql} IS NULL THEN 'missing' WHEN {sql} THEN 'true' ELSE 'false' END)"
    return f"coalesce(CAST({sql} AS TEXT), 'missing')"


def _values(ctx: PluginContext, text: str, where: Any) -> str:
    """SQL text 'name=value, ...' of the names a (checked) condition uses, in order of appearance."""
    names = list(dict.fromkeys(n.name for n in walk(parse_expression(text)) if isinstance(n, Name)))
    parts = []
    for name in names:
        type_ = ctx.locals[name][1] if name in ctx.locals else ctx.type_of(name)
        if type_ is None:  # pragma: no cover - the condition was type-checked
            continue
        parts.append(f"{ctx.literal(name + '=')} || {_text(ctx.ref(name, where, (type_,)), type_)}")
    return " || ', ' || ".join(parts) or "''"


def _label(item: dict, action: str) -> str:
    return item.get("label") or action.replace("_", " ")


def _percent(rate: float) -> str:
    return f"{round(rate * 100, 6):g}%"


# ---- exit_barriers ------------------------------------------------------------

def _default_stages(ctx: PluginContext) -> list[str] | None:
    """The stages that get economic and technical barriers when the params name none: [stable].

    Without a lifecycle section no customer has a stage, and a filter on [stable] matched nobody: the
    generator never fired.  There it is no filter; a lifecycle without a stage 'stable' must say which.
    """
    known = ctx.grades.get("stage")
    if known is None or "stable" in known:
        return ["stable"]
    if known:
        ctx.error(None, f"`stages` is not given and its default, [stable], is no stage of this policy (its stages: "
                        f"{', '.join(known)}): write `stages:` with the stages that get exit barriers")
    return None

def exit_barriers(ctx: PluginContext, params: dict) -> SqlActions | None:
    if not any(k in params for k in ("economic", "technical", "contractual")):
        ctx.error(None, "nothing to generate: give `economic`, `technical` and/or `contractual` actions")
        return None
    tiers, stages = params.get("tiers"), params.get("stages", _default_stages(ctx))
    priority, due_in = params.get("priority", DEFAULT_PRIORITY), params.get("due_in_days", 0)
    actions: list[Action] = []
    seen: dict[str, list] = {}

    def unique(name: str, where: list, item: dict) -> None:
        """One generator entry emits each action name once (else crm_actions gets duplicates)."""
        if name in seen:
            first = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in seen[name])
            ctx.error(where + ["action"] if "action" in item else where,
                      f"action {name!r} is already generated by params{first}; give it another name")
        else:
            seen[name] = where

    for kind in ("economic", "technical"):
        for i, item in enumerate(params.get(kind, [])):
            where = [kind, i]
            name = item.get("action", "loyalty_rebate")
            unique(name, where, item)
            conditions = [_in(ctx, "tier", item.get("tiers", tiers), where + ["tiers"] if "tiers" in item else "tiers"),
                          _in(ctx, "stage", item.get("stages", stages), where + ["stages"] if "stages" in item else "stages")]
            text = _label(item, name)
            if kind == "economic":
                text += f" {_percent(item['rebate'])}" if "rebate" in item else ""
                text += f", points x{item['points']:g}" if "points" in item else ""
            reason = f"printf('%s: %s', {_who(ctx)}, {ctx.literal(text)})"
            if "when" in item:
                conditions.append(ctx.condition(item["when"], where + ["when"]))
                if ctx.failed:
                    continue
                reason = f"printf('%s: %s (%s)', {_who(ctx)}, {ctx.literal(text)}, {_values(ctx, item['when'], where + ['when'])})"
            details = {k: v for k, v in item.items() if k not in ("action", "priority", "due_in_days")}
            actions.append(Action(name, _all(conditions), kind, reason, item.get("priority", priority),
                                  _due(ctx, item.get("due_in_days", due_in)), details))
    if "contractual" in params:
        action = _contractual(ctx, params["contractual"], tiers, priority, unique)
        if action is not None:
            actions.append(action)
    if ctx.failed:
        return None
    return SqlActions(actions)


def _contractual(ctx: PluginContext, item: dict, tiers: list[str] | None, priority: int, unique) -> Action | None:
    where = ["contractual"]
    name = item.get("action", "renewal_offer")
    unique(name, where, item)
    before, ahead = item.get("days_before_end", 90), item.get("look_ahead_days", 0)
    if "metric" in item:
        days = ctx.ref(item["metric"], where + ["metric"])
    else:
        days = ctx.metric({"contract_days_left": "contracts", "label": f"days left on the contract ({ctx.entry})"}, where)
    conditions = [_in(ctx, "tier", item.get("tiers", tiers), where + ["tiers"] if "tiers" in item else "tiers"),
                  _in(ctx, "stage", item.get("stages"), where + ["stages"])]
    if "when" in item:
        conditions.append(ctx.condition(item["when"], where + ["when"]))
    if days is None or ctx.failed:
        return None
    n = ctx.literal(before)
    conditions.append(f"{days} IS NOT NULL AND {days} <= {ctx.literal(before + ahead)}")
    whole = f"CAST({days} AS INTEGER)"
    # The offer is due `before` days ahead of the end; an offer already late is due now.
    due = f"max(date({ctx.as_of}, printf('%+d days', {whole} - {n})), {ctx.as_of})"
    reason = (f"(CASE WHEN {whole} = 0 THEN 'contract ends today' "
              f"WHEN {whole} < 0 THEN printf('contract ended %d days ago', -{whole}) "
              f"ELSE printf('contract ends in %d days', {whole}) END)")
    details = {"days_before_end": before, **{k: v for k, v in item.items() if k not in ("action", "priority", "days_before_end")}}
    return Action(name, _all(conditions), "contractual", reason, item.get("priority", priority), due, details)


# ---- churn_warning ------------------------------------------------------------

def churn_warning(ctx: PluginContext, params: dict) -> SqlActions | None:
    signals: list[tuple[str, str]] = []  # (condition, text) in SQL
    details: dict[str, Any] = {}
    if "volume_drop" in params:
        spec = params["volume_drop"]
        x = ctx.ref(spec["metric"], ["volume_drop", "metric"])
        below, label = spec.get("below", -0.3), spec.get("label", "volume")
        # The metric may compare with any period (a year-on-year metric with the same quarter last year), and
        # the reason is what the account manager reads: it says which one, when the policy says so.
        versus = spec.get("versus", "previous period")
        details["volume_drop"] = {"metric": spec["metric"], "below": below, **({"versus": versus} if "versus" in spec else {})}
        if x is not None:
            signals.append((f"{x} <= {ctx.literal(below)}",
                            f"printf('%s %+.0f%% vs %s', {ctx.literal(label)}, {x} * 100.0, {ctx.literal(versus)})"))
    if "purchase_gap" in params:
        spec = params["purchase_gap"]
        k = spec.get("k", 2)
        over_all = None  # SQL: true where the usual interval is taken over all orders, not the window's
        recency = (ctx.ref(spec["recency"], ["purchase_gap", "recency"]) if "recency" in spec
                   else ctx.metric({"recency": "orders", "label": f"days since the last order ({ctx.entry})"}, ["purchase_gap"]))
        if "interval" in spec:
            interval = ctx.ref(spec["interval"], ["purchase_gap", "interval"])
        else:
            window = spec.get("window", "all")
            interval = _usual_interval(ctx, window)
            if window != "all" and interval is not None and (everything := _usual_interval(ctx, "all")) is not None:
                # fewer than two orders in the window: a customer who stopped buying before it began is the
                # clearest gap of all, so their usual interval is taken over all their orders instead
                interval, over_all = f"coalesce({interval}, {everything})", f"{interval} IS NULL"
        details["purchase_gap"] = {"k": k, **{key: spec[key] for key in ("recency", "interval") if key in spec},
                                   **({"window": spec.get("window", "all")} if "interval" not in spec else {})}
        if recency is not None and interval is not None:
            basis = f"CASE WHEN {over_all} THEN ', over all orders' ELSE '' END" if over_all else "''"
            signals.append((f"{interval} > 0 AND {recency} > {ctx.literal(k)} * {interval}",
                            f"printf('no order for %d days (usual interval %g days%s)', {recency}, round({interval}, 1), "
                            f"{basis})"))
    if "complaints" in params:
        spec = params["complaints"]
        x = ctx.ref(spec["metric"], ["complaints", "metric"])
        label = spec.get("label", "complaints")
        prev = ctx.ref(spec["previous"], ["complaints", "previous"]) if "previous" in spec else None
        minimum = spec.get("min", None if "previous" in spec else 1)
        details["complaints"] = {"metric": spec["metric"], **({"min": minimum} if minimum is not None else {}),
                                 **({"previous": spec["previous"]} if "previous" in spec else {})}
        if x is not None and not ctx.failed:
            tests = ([f"{x} >= {ctx.literal(minimum)}"] if minimum is not None else []) + ([f"{x} > {prev}"] if prev else [])
            text = (f"printf('%s: %g (previous period %g)', {ctx.literal(label)}, {x}, {prev})" if prev
                    else f"printf('%s: %g', {ctx.literal(label)}, {x})")
            signals.append((" AND ".join(tests), text))
    if not details:
        ctx.error(None, "no signal to watch: give `volume_drop`, `purchase_gap` and/or `complaints`")
    filters = [_in(ctx, "tier", params.get("tiers"), "tiers"), _in(ctx, "stage", params.get("stages"), "stages")]
    by_tier = params.get("priority_by_tier", {})
    for tier_id in by_tier:
        ctx.check_grade("tier", tier_id, ["priority_by_tier", tier_id], key=True)
    if ctx.failed:
        return None
    fired = " OR ".join(f"({c})" for c, _ in signals)
    texts = " || ".join(f"coalesce('; ' || CASE WHEN {c} THEN {t} END, '')" for c, t in signals)
    reason = f"substr({texts}, 3)"
    default = params.get("priority", DEFAULT_PRIORITY)
    due = _due(ctx, params.get("due_in_days", 0))
    tier = ctx.ref("tier", None, (TEXT,))
    actions = []
    for tier_id, priority in by_tier.items():
        actions.append(Action("churn_alert", _all(filters + [f"{tier} = {ctx.literal(tier_id)}", fired]), "churn",
                              reason, priority, due, details))
    rest = f"{tier} IS NULL OR {tier} NOT IN ({', '.join(ctx.literal(t) for t in by_tier)})" if by_tier else None
    actions.append(Action("churn_alert", _all(filters + [rest, fired]), "churn", reason, default, due, details))
    return SqlActions(actions)


def _usual_interval(ctx: PluginContext, window: str) -> str | None:
    """SQL: a customer's days between orders over ``window``, (last − first order day) ÷ (orders − 1); NULL for
    fewer than two orders there."""
    of = ctx.entry if window == "all" else f"{ctx.entry}, {window}"
    first = ctx.metric({"min": "date", "window": window, "label": f"first order day ({of})"}, ["purchase_gap"])
    last = ctx.metric({"max": "date", "window": window, "label": f"last order day ({of})"}, ["purchase_gap"])
    # orders, not distinct order days: a per-customer DISTINCT costs a sort of every order
    days = ctx.metric({"count": "orders", "window": window, "label": f"orders ({of})"}, ["purchase_gap"])
    if None in (first, last, days):
        return None
    return f"((julianday({last}) - julianday({first})) / NULLIF({days} - 1, 0))"


# ---- upgrade_candidates and phase_out_review ------------------------------------

def upgrade_candidates(ctx: PluginContext, params: dict) -> SqlActions | None:
    to_tier = params.get("to_tier")
    if to_tier is not None and to_tier in params["from_tiers"]:
        ctx.error("to_tier", f"{to_tier!r} is one of `from_tiers`; an upgrade goes to another tier")
    elif to_tier is not None:
        ctx.check_grade("tier", to_tier, "to_tier")
    condition = ctx.condition(params["when"], "when")
    filters = [_in(ctx, "tier", params["from_tiers"], "from_tiers"), _in(ctx, "stage", params.get("stages"), "stages")]
    if ctx.failed:
        return None
    tier = ctx.ref("tier", None, (TEXT,))
    target = f"upgrade to {to_tier}" if to_tier else "an upgrade"
    reason = f"printf('%s customer, candidate for %s: %s', {tier}, {ctx.literal(target)}, {_values(ctx, params['when'], 'when')})"
    details = {"when": params["when"], **({"to_tier": to_tier} if to_tier else {})}
    return SqlActions([Action("upgrade_review", _all(filters + [condition]), "upgrade", reason,
                              params.get("priority", DEFAULT_PRIORITY), _due(ctx, params.get("due_in_days", 0)), details)])


def phase_out_review(ctx: PluginContext, params: dict) -> SqlActions | None:
    condition = ctx.condition(params["when"], "when")
    filters = [_in(ctx, "tier", params["tiers"], "tiers"), _in(ctx, "stage", params.get("stages"), "stages")]
    if ctx.failed:
        return None
    tier = ctx.ref("tier", None, (TEXT,))
    reason = f"printf('%s customer, phase-out review: %s', {tier}, {_values(ctx, params['when'], 'when')})"
    return SqlActions([Action("phase_out_review", _all(filters + [condition]), "phase_out", reason,
                              params.get("priority", DEFAULT_PRIORITY), _due(ctx, params.get("due_in_days", 0)),
                              {"when": params["when"]})])


@hookimpl
def crm_rules_register_actions(register):
    register("exit_barriers", exit_barriers, EXIT_BARRIERS_SCHEMA)
    register("churn_warning", churn_warning, CHURN_WARNING_SCHEMA)
    register("upgrade_candidates", upgrade_candidates, UPGRADE_SCHEMA)
    register("phase_out_review", phase_out_review, PHASE_OUT_SCHEMA)
