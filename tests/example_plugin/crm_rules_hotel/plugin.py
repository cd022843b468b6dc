"""Hotel loyalty club plugin: elite status, loyalty points and status-match offers.

It uses the *Python batch* path of the plugin API: the engine reads the
inputs named here in chunks of rows and calls ``compute(rows)``; the plugin
never loops over the database itself.  Per-customer problems (a member with
negative nights, say) are returned as ``Exception`` instances so the policy's
``on_error`` decides whether the run stops or records them and goes on.

Contributions:

- scorer ``hotel_elite``: points, elite status, next status and the nights
  still missing for it;
- action generator ``stay_reward``: ``status_match_offer`` for members a few
  nights short of the next status;
- expression function ``nights_to_status(nights, threshold)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from crm_rules.engine import hookimpl
from crm_rules.engine.plugin_api import BatchActions, BatchOutputs, Column
from crm_rules.engine.plugin_context import PluginContext

NUMBER, TEXT = "number", "text"

# Best status first; the last one is everybody else.  A member reaches a
# status with `min_nights` nights OR `min_points` points in the period.
DEFAULT_STATUSES: list[dict[str, Any]] = [
    {"id": "platinum", "label": "白金会员 Platinum", "min_nights": 50, "min_points": 2_500_000},
    {"id": "gold", "label": "金卡会员 Gold", "min_nights": 25, "min_points": 1_000_000},
    {"id": "silver", "label": "银卡会员 Silver", "min_nights": 10},
    {"id": "member", "label": "会员 Member"},
]
DEFAULT_POINTS_PER_UNIT = 10
DEFAULT_BONUS_AFTER_NIGHTS = 25
DEFAULT_BONUS_MULTIPLIER = 2
DEFAULT_POINTS_PER_STAY = 0

METRIC_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}

HOTEL_ELITE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["nights", "spend"],
    "properties": {
        "nights": {**METRIC_NAME, "description": "Metric: nights stayed in the qualifying period (e.g. nights_12m)."},
        "spend": {**METRIC_NAME, "description": "Metric: amount spent in the qualifying period (e.g. revenue_12m)."},
        "stays": {**METRIC_NAME, "description": "Metric: number of stays, for `points_per_stay` (e.g. orders_12m)."},
        "points_per_unit": {"type": "number", "exclusiveMinimum": 0,
                            "description": f"Points per currency unit spent (default {DEFAULT_POINTS_PER_UNIT})."},
        "points_per_stay": {"type": "number", "minimum": 0,
                            "description": f"Bonus points per stay; needs `stays` (default {DEFAULT_POINTS_PER_STAY})."},
        "bonus_after_nights": {"type": "number", "minimum": 0,
                               "description": "Spend points are multiplied by `bonus_multiplier` for members with more "
                                              f"nights than this (default {DEFAULT_BONUS_AFTER_NIGHTS})."},
        "bonus_multiplier": {"type": "number", "minimum": 1,
                             "description": f"Points multiplier above `bonus_after_nights` (default {DEFAULT_BONUS_MULTIPLIER})."},
        "statuses": {
            "type": "array", "minItems": 2,
            "description": "Elite statuses from best to worst; the first one reached wins (nights OR points). "
                           "Every status but the last needs `min_nights`; the last has no thresholds.",
            "items": {
                "type": "object", "additionalProperties": False, "required": ["id"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "label": {"type": "string"},
                    "min_nights": {"type": "number", "exclusiveMinimum": 0},
                    "min_points": {"type": "number", "exclusiveMinimum": 0},
                },
            },
        },
    },
}

STAY_REWARD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": {**METRIC_NAME, "description": "Name of the `hotel_elite` entry under `scores:` (e.g. elite)."},
        "within_nights": {"type": "integer", "minimum": 1,
                          "description": "Offer a status match when at most this many nights are missing (default 5)."},
        "urgent_within": {"type": "integer", "minimum": 0,
                          "description": "Priority 1 (else 2) when at most this many nights are missing (default 2)."},
        "skip_stages": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True,
                        "description": "Lifecycle stages that get no offer (default [lost])."},
        "offer_days": {"type": "integer", "minimum": 1, "maximum": 365,
                       "description": "Days the member has to complete the missing nights (default 90)."},
    },
}

NIGHTS_TO_STATUS_SIGNATURE = {"args": [NUMBER, NUMBER], "returns": NUMBER}


# ---------------------------------------------------------------------------
# The arithmetic, as plain functions (unit-tested directly)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Status:
    id: str
    label: str
    min_nights: float | None = None
    min_points: float | None = None


@dataclass(frozen=True)
class Programme:
    """The loyalty programme's rules, from the scorer's params."""

    statuses: tuple[Status, ...]
    points_per_unit: float = DEFAULT_POINTS_PER_UNIT
    points_per_stay: float = DEFAULT_POINTS_PER_STAY
    bonus_after_nights: float = DEFAULT_BONUS_AFTER_NIGHTS
    bonus_multiplier: float = DEFAULT_BONUS_MULTIPLIER

    @classmethod
    def from_params(cls, params: dict) -> "Programme":
        statuses = tuple(Status(s["id"], s.get("label", s["id"]), s.get("min_nights"), s.get("min_points"))
                         for s in params.get("statuses", DEFAULT_STATUSES))
        return cls(statuses,
                   points_per_unit=params.get("points_per_unit", DEFAULT_POINTS_PER_UNIT),
                   points_per_stay=params.get("points_per_stay", DEFAULT_POINTS_PER_STAY),
                   bonus_after_nights=params.get("bonus_after_nights", DEFAULT_BONUS_AFTER_NIGHTS),
                   bonus_multiplier=params.get("bonus_multiplier", DEFAULT_BONUS_MULTIPLIER))


def _whole(x: float) -> int:
    """Drop fractions, without float noise turning 29.0 into 28.999999."""
    return math.floor(round(x, 6))


def loyalty_points(programme: Programme, nights: float, spend: float, stays: float = 0) -> int:
    """Points for the period: spend × points per unit (× the bonus multiplier above the
    bonus nights), plus points per stay; fractions of a point are dropped."""
    multiplier = programme.bonus_multiplier if nights > programme.bonus_after_nights else 1
    return _whole(spend * programme.points_per_unit * multiplier + stays * programme.points_per_stay)


def elite_status(programme: Programme, nights: float, points: float) -> tuple[Status, Status | None, int | None]:
    """(status, next status, nights missing for it): the first status whose nights or points
    threshold is reached; at the top there is no next status."""
    for i, status in enumerate(programme.statuses):
        reached = ((status.min_nights is None and status.min_points is None)
                   or (status.min_nights is not None and nights >= status.min_nights)
                   or (status.min_points is not None and points >= status.min_points))
        if reached:
            if i == 0:
                return status, None, None
            nxt = programme.statuses[i - 1]
            # Not reached, so nights < nxt.min_nights: at least one night is missing.
            return status, nxt, max(1, math.ceil(round(nxt.min_nights - nights, 6)))
    raise AssertionError("the last status has no thresholds")  # checked when the policy is loaded


def _number(row: dict, key: str | None, what: str) -> float:
    if key is None:
        return 0
    value = row.get(key)
    if value is None:  # no stays in the period
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} ({key}) is {value!r}, not a number")
    return value


def score_row(programme: Programme, row: dict, nights_key: str, spend_key: str, stays_key: str | None) -> dict:
    """Outputs of one member, by suffix; raises ValueError on data that cannot be right."""
    nights = _number(row, nights_key, "nights")
    spend = _number(row, spend_key, "spend")
    stays = _number(row, stays_key, "stays")
    if nights < 0:
        raise ValueError(f"nights ({nights_key}) is {nights:g}: nights cannot be negative "
                         f"(a cancellation booked without its stay?)")
    if spend < 0:
        raise ValueError(f"spend ({spend_key}) is {spend:g}: spend cannot be negative (a refund without its stay?)")
    if stays < 0:
        raise ValueError(f"stays ({stays_key}) is {stays:g}: stays cannot be negative")
    points = loyalty_points(programme, nights, spend, stays)
    status, nxt, missing = elite_status(programme, nights, points)
    return {"": status.id, "points": points, "next": nxt.id if nxt else None, "nights_to_next": missing}


# ---------------------------------------------------------------------------
# scorer: hotel_elite
# ---------------------------------------------------------------------------

def _check_statuses(ctx: PluginContext, statuses: list[dict]) -> None:
    ids = [s["id"] for s in statuses]
    for i, s in enumerate(statuses):
        if ids.index(s["id"]) != i:
            ctx.error(["statuses", i, "id"], f"duplicate status id {s['id']!r}")
    last = statuses[-1]
    if "min_nights" in last or "min_points" in last:
        ctx.error(["statuses", len(statuses) - 1], "the last status takes everybody else: give it no `min_nights`/`min_points`")
    for i, s in enumerate(statuses[:-1]):
        if "min_nights" not in s:
            ctx.error(["statuses", i], f"status {s['id']!r} needs `min_nights` (members are told how many nights they miss)")
    nights = [s["min_nights"] for s in statuses[:-1] if "min_nights" in s]
    if len(nights) == len(statuses) - 1 and any(a <= b for a, b in zip(nights, nights[1:])):
        ctx.error("statuses", f"statuses go from best to worst: `min_nights` must decrease, got {nights}")


def hotel_elite(ctx: PluginContext, params: dict) -> BatchOutputs | None:
    if "points_per_stay" in params and "stays" not in params:
        ctx.error("points_per_stay", "points per stay need `stays` (a metric counting stays)")
    names = {key: params.get(key) for key in ("nights", "spend", "stays")}
    for key, name in names.items():
        if name is not None:
            ctx.ref(name, key)  # reports an unknown or non-numeric metric at params.<key>
    statuses = params.get("statuses", DEFAULT_STATUSES)
    _check_statuses(ctx, statuses)
    if ctx.failed:
        return None
    programme = Programme.from_params(params)
    nights_key, spend_key, stays_key = names["nights"], names["spend"], names["stays"]

    def compute(rows: list[dict]) -> list[dict | Exception]:
        out: list[dict | Exception] = []
        for row in rows:
            try:
                out.append(score_row(programme, row, nights_key, spend_key, stays_key))
            except ValueError as exc:
                out.append(exc)
        return out

    inputs = [n for n in (nights_key, spend_key, stays_key) if n is not None]
    return BatchOutputs(
        inputs=list(dict.fromkeys(inputs)),
        outputs={
            "": Column(TEXT, label="会员等级 Elite status", summarize=True),
            "points": Column(NUMBER, label="积分 Loyalty points"),
            "next": Column(TEXT, label="下一等级 Next status"),
            "nights_to_next": Column(NUMBER, label="升级还差晚数 Nights to the next status"),
        },
        compute=compute,
    )


# ---------------------------------------------------------------------------
# action generator: stay_reward
# ---------------------------------------------------------------------------

def offer_for(row: dict, status_key: str, within: int, urgent: int, skip_stages: set[str], offer_days: int) -> list[dict]:
    """A status-match offer for a member a few nights short of the next status, or nothing."""
    status, nxt = row.get(status_key), row.get(f"{status_key}_next")
    missing, points = row.get(f"{status_key}_nights_to_next"), row.get(f"{status_key}_points")
    if status is None or nxt is None or missing is None or missing > within:
        return []
    if row.get("stage") in skip_stages:
        return []
    missing = int(missing)
    return [{
        "action": "status_match_offer",
        "category": "upgrade",
        "reason": f"{missing} night(s) short of {nxt} (now {status})",
        "priority": 1 if missing <= urgent else 2,
        "details": {
            "current_status": status,
            "next_status": nxt,
            "nights_to_next": missing,
            "points": points,
            "tier": row.get("tier"),
            "stage": row.get("stage"),
            "offer": f"status match: {nxt} benefits now, kept with {missing} more night(s) within {offer_days} days",
            "offer_days": offer_days,
        },
    }]


def stay_reward(ctx: PluginContext, params: dict) -> BatchActions | None:
    entry = params["status"]
    wanted = {entry: TEXT, f"{entry}_next": TEXT, f"{entry}_nights_to_next": NUMBER, f"{entry}_points": NUMBER}
    for name, kind in wanted.items():
        if ctx.type_of(name) is None:
            ctx.error("status", f"no output {name!r}: `status` must name a `hotel_elite` entry under scores:")
            return None
        ctx.ref(name, "status", (kind,))
    if ctx.failed:
        return None
    within = params.get("within_nights", 5)
    urgent = params.get("urgent_within", 2)
    if urgent > within:
        ctx.error("urgent_within", f"urgent_within ({urgent}) cannot exceed within_nights ({within})")
        return None
    skip = set(params.get("skip_stages", ["lost"]))
    days = params.get("offer_days", 90)

    def compute(rows: list[dict]) -> list[list[dict] | Exception]:
        return [offer_for(row, entry, within, urgent, skip, days) for row in rows]

    # tier and stage are given by the engine to action generators; the rest are the scorer's outputs.
    return BatchActions(inputs=["tier", "stage", *wanted], compute=compute)


# ---------------------------------------------------------------------------
# expression function: nights_to_status(nights, threshold)
# ---------------------------------------------------------------------------

def nights_to_status_sql(nights: str, threshold: str) -> str:
    """Nights still missing to reach ``threshold`` (0 once reached); NULL stays NULL."""
    return f"max(0, ({threshold}) - ({nights}))"


# ---------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------

@hookimpl
def crm_rules_register_scorers(register):
    register("hotel_elite", hotel_elite, HOTEL_ELITE_SCHEMA)


@hookimpl
def crm_rules_register_actions(register):
    register("stay_reward", stay_reward, STAY_REWARD_SCHEMA)


@hookimpl
def crm_rules_register_functions(register):
    register("nights_to_status", nights_to_status_sql, NIGHTS_TO_STATUS_SIGNATURE)
