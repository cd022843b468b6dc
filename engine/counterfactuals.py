"""Explanations business staff can read: why a customer has a grade, and the nearest change.

From the rule-by-rule evaluation of ``explain`` we say, in one sentence, why
the deciding rule applies, what the customer would need to reach each better
grade ("would be A1 if revenue_12m ≥ 500,000 (now 462,300)"), and what would
make them drop.  Only single-metric thresholds give such sentences; other
conditions are quoted as they are written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from . import expr_ast as ast
from .pareto_cutoffs import Cutoff

SYMBOL = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "=": "=", "!=": "≠"}
NEGATE = {">=": "<", ">": "≤", "<=": ">", "<": "≥", "=": "≠", "!=": "="}


#: A float this large has no exact digits left to show (2**53 is 9.0e15): 1e+308, not 309 digits of noise.
HUGE = 1e16


def value_text(value: Any) -> str:
    """A customer's value as the policy's conditions write one: 72,363.87, 'retail', true, null.

    A metric can overflow to infinity (``expr: "1e400"``, a huge product): "∞" says so, where
    Python's "inf" reads like a typo to business staff."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if not isinstance(value, (int, float)):
        return repr(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else "∞" if value > 0 else "-∞"
    if isinstance(value, float) and abs(value) >= HUGE:
        return f"{value:.6g}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4g}"


def shortfall(check: dict, number: Callable[[Any], str] = value_text) -> str:
    """How a failed test misses, in the direction its value must move ("short by 4.5", "over by 4.5"), or "".

    The distance alone misleads: ``tenure_years < 0.5`` failing at 5 is not "short by 4.5", the
    value must come down; and ``rev > 0`` failing at 0 is short by nothing, the bound itself is
    excluded.  Reads a threshold check (``op``, ``value``, ``threshold``: the metric on the left)
    or a ``between`` check (``value``, ``range``: inclusive bounds).
    """
    if check.get("passed") or "value" not in check or not ("range" in check or "threshold" in check):
        return ""  # a passed test (the plain report lists those of the deciding rule) misses nothing
    value = check["value"]
    low, high = check.get("range") or (check["threshold"], check["threshold"])
    op = check.get("op", "between")
    if op == "!=":
        return f"must differ from {number(low)}"
    if op == "between" and low > high:
        return f"the range {number(low)} to {number(high)} is empty"
    if value < low and op in (">=", ">", "=", "between"):
        return f"short by {number(low - value)}"
    if value > high and op in ("<=", "<", "=", "between"):
        return f"over by {number(value - high)}"
    if value == low and op in (">", "<"):
        return f"must be {'above' if op == '>' else 'below'} {number(low)}"
    return ""  # NaN, or a test that did not fail


def _needed(node: ast.Node, checks: dict[str, dict]) -> list[dict] | None:
    """The failing threshold tests that must flip for ``node`` to hold (the fewest, for `or`), or None."""
    if isinstance(node, ast.Logical):
        parts = [_needed(item, checks) for item in node.items]
        if node.op == "and":
            return None if any(p is None for p in parts) else [c for p in parts for c in p]
        viable = [p for p in parts if p is not None]
        return min(viable, key=len) if viable else None
    check = checks.get(node.text)
    if check is None or check["passed"] is None:
        return None
    if check["passed"]:
        return []
    return [check] if "gap" in check else None


def _onto(needed: list[dict]) -> dict[str, tuple] | None:
    """The metrics of the needed tests moved onto their thresholds (see _ACROSS), or None if that is not one place."""
    moved: dict[str, tuple] = {}
    for c in needed:
        if c["op"] not in _ONTO or moved.setdefault(c["metric"], (c["threshold"], _ONTO[c["op"]])) != \
                (c["threshold"], _ONTO[c["op"]]):
            return None
    return moved


def _requirement(check: dict) -> str:
    return f"{check['metric']} {SYMBOL[check['op']]} {value_text(check['threshold'])} (now {value_text(check['value'])})"


def _keepers(node: ast.Node, checks: dict[str, dict]) -> list[dict]:
    """Threshold tests of an `and` chain that hold now; any one failing would undo the rule."""
    if isinstance(node, ast.Logical) and node.op == "and":
        return [c for item in node.items for c in _keepers(item, checks)]
    check = checks.get(node.text)
    return [check] if check and check["passed"] and "op" in check else []


def describe(kind: str, rules: list, entries: list[dict], labels: dict[str, str]) -> dict:
    """Sentences for one decision (tier, sub-grade or stage): why, how to move up, what would move it down."""
    decided = next((i for i, e in enumerate(entries) if e["decided"]), None)
    if decided is None:
        return {"because": f"no {kind} rule decided", "up": [], "down": []}
    entry, rule = entries[decided], rules[decided]
    name = lambda e: f"{e['id']}" + (f" ({labels[e['id']]})" if labels.get(e["id"]) and labels[e["id"]] != e["id"] else "")  # noqa: E731
    if rule.condition is None:
        because = f"{kind} {name(entry)}: no rule above matched, so the default applies"
    else:
        # the values of the tests that hold; when none does, a `not` made the rule hold: the values it negates
        shown = read_values(c for c in entry.get("checks", []) if c["passed"]) or read_values(entry.get("checks", []))
        because = f"{kind} {name(entry)} because {rule.condition.text}" + (f" ({', '.join(shown)})" if shown else "")
    up = []
    for i, (e, r) in enumerate(zip(entries[:decided], rules[:decided])):
        if r.condition is None:
            continue
        checks = {c["test"]: c for c in e.get("checks", [])}
        needed = _needed(r.condition.node, checks)
        if needed:
            requirement = " and ".join(_requirement(c) for c in needed)
            moved = _onto(needed)
            first = _decides(moved, rules, entries) if moved is not None else None
            if first is not None and first < i:  # a rule above matches first: say so, not "would be"
                up.append(f"{name(e)} needs {requirement}, but then {name(entries[first])} applies first")
            else:
                up.append(f"would be {name(e)} if {requirement}")
        elif needed is None:
            now = read_values(e.get("checks", []))
            up.append(f"would be {name(e)} if {r.condition.text}" + (f" (now {', '.join(now)})" if now else ""))
    down = []
    if rule.condition is not None:
        checks = {c["test"]: c for c in entry.get("checks", [])}
        for c in _keepers(rule.condition.node, checks):
            change = f"if {c['metric']} {NEGATE[c['op']]} {value_text(c['threshold'])} (now {value_text(c['value'])})"
            target = _decides({c["metric"]: (c["threshold"], _ACROSS[c["op"]])}, rules, entries) \
                if c["op"] in _ACROSS else None  # `x = 5` failing leaves x anywhere else
            if target is None:
                down.append(f"would no longer be {name(entry)} {change}")
            else:
                verb = "would drop to" if target > decided else "would be"
                down.append(f"{verb} {name(entries[target])} {change}")  # the default too, by its id: "the default" named none
    return {"because": because, "up": up, "down": down}


def pareto_sentences(metric: str, value: Any, tier: str, levels: list[tuple[str, float | None]], lowest: dict[str, Any],
                     labels: dict[str, str], cuts: dict[str, Cutoff] | None, default: str | None = None,
                     method: str = "pareto") -> dict:
    """Pareto tiers speak in the metric, not in cumulative shares: the value this customer needs for each better
    tier, and below which they leave theirs (pareto_cutoffs), everyone else as they are.  So do quantile and
    top_n tiers (``method``), not in ranks, with the cut-offs of pareto_cutoffs.rank_cutoffs.

    ``levels``: (tier, up_to or top, or None) in order; ``default``: the tier of those with no positive value.  Without ``cuts`` (a stored run too large to read every value
    of), the lowest value now in each tier stands in for its cut-off, said as "about": the customer's own value
    is part of the total, so their cut-off is near it but not on it."""
    order = [t for t, _ in levels]
    share = dict(levels)
    position = order.index(tier)
    now = f"now {value_text(value)}"
    up, down = [], []
    if cuts is not None:
        above = math.inf  # a tier whose cut-off a better tier's already takes has no values of its own
        for better in order[:position]:
            if better in cuts and cuts[better].least < above:
                above = cuts[better].least
                up.append(f"would be {better} if {metric} ≥ {value_text(above)} ({now})")
        if tier in cuts and position + 1 < len(order):
            cut = cuts[tier]
            below = next((t for t in order[position + 1:] if t not in cuts or cuts[t].admits(cut.value)), order[-1])
            if cut.value <= 0 and default is not None:  # any positive value keeps the tier: without one, the default
                below = default
            down.append(f"would drop to {below} if {metric} < {value_text(cut.least)} ({now})")
    else:
        about = f"the lowest {metric} in {{}} now; the cut-off moves a little with this customer's own {metric}; {now}"
        up = [f"would be {t} if {metric} ≥ about {value_text(lowest[t])} ({about.format(t)})"
              for t in order[:position] if lowest.get(t) is not None and share.get(t) is not None]
        if share.get(tier) is not None and position + 1 < len(order) and lowest.get(tier) is not None:
            down.append(f"would drop to {order[position + 1]} if {metric} < about {value_text(lowest[tier])} "
                        f"({about.format(tier)})")
    if share.get(tier) is None and default not in (None, tier) and isinstance(value, (int, float)) and value > 0:
        down.append(f"would drop to {default} if {metric} ≤ 0 ({now})")  # the rest holds the positive values
    label = f" ({labels[tier]})" if labels.get(tier) and labels[tier] != tier else ""
    if method == "pareto":
        because = f"tier {tier}{label} by Pareto share of {metric} (now {value_text(value)})"
    else:  # quantile, top_n: the rule is on the rank, the sentences above are in values of the metric
        top = share.get(tier)
        within = "" if top is None else f", in the top {int(top):,}" if method == "top_n" else f", in the top {top:.0%}"
        because = f"tier {tier}{label} by rank of {metric}{within} (now {value_text(value)})"
    return {"because": because, "up": up, "down": down}


def read_values(checks: Iterable[dict]) -> list[str]:
    """``name = value`` of each value the tests of an explanation read, once each, literals left out."""
    return list(dict.fromkeys(f"{k} = {value_text(v)}" for c in checks for k, v in c.get("values", {}).items()
                              if not is_literal(k)))


def is_literal(text: str) -> bool:
    """Whether a check's operand is a literal of the condition (500_000, 'retail', true): its value needs no "= ..."
    beside it."""
    t = text.strip().replace("_", "").replace(".", "", 1).lstrip("-")
    return t.isdigit() or t[:1] in ("'", '"') or t.lower() in ("true", "false", "null")


# Where a value moved to a threshold lies: just below it (-1), on it (0) or just above it (+1); for a kept test
# (moved across it, so that the test fails) and for a needed one (moved onto it, so that the test passes).
_ACROSS = {">=": -1, ">": 0, "<=": 1, "<": 0, "!=": 0}
_ONTO = {">=": 0, ">": 1, "<=": 0, "<": -1, "=": 0}
_HOLDS = {">=": lambda s: s >= 0, ">": lambda s: s > 0, "<=": lambda s: s <= 0, "<": lambda s: s < 0,
          "=": lambda s: s == 0, "!=": lambda s: s != 0}


def _decides(moved: dict[str, tuple], rules: list, entries: list[dict]) -> int | None:
    """The index of the rule that decides once the metrics of ``moved`` (metric -> (threshold, side), see
    _ACROSS) lie there, or None if unknown.

    Not simply the next rule that matches now: with `A: orders_12m >= 1 and revenue_12m >= 100`, `B: revenue_12m >=
    200`, a customer with 300 in A does not drop to B below 100, since B needs 200; and a rule above can start
    to match too.  Tests of other metrics keep their results; a test of a moved metric that is not a threshold
    (``revenue_12m / orders_12m > 50``) makes the answer unknown.
    """
    default = None
    for i, (r, e) in enumerate(zip(rules, entries)):
        if r.condition is None:
            default = i
            continue
        holds = _holds_at(r.condition.node, {c["test"]: c for c in e.get("checks", [])}, moved)
        if holds is _UNSURE:
            return None
        if holds:  # a condition that is NULL does not match, as in the run's CASE
            return i
    return default


_UNSURE = "unsure"  # a test whose result at the moved values we cannot tell (beside SQL's True, False and None)


def _holds_at(node: ast.Node, checks: dict[str, dict], moved: dict[str, tuple]) -> Any:
    """Whether a condition holds (True, False, None as SQL's NULL, or _UNSURE) with the metrics of ``moved`` moved."""
    if isinstance(node, ast.Logical):
        parts = [_holds_at(item, checks, moved) for item in node.items]
        decides = node.op == "or"  # True decides an `or`, False an `and`
        if decides in parts:
            return decides
        return _UNSURE if _UNSURE in parts else None if None in parts else not decides
    if isinstance(node, ast.Not):
        inner = _holds_at(node.operand, checks, moved)
        return inner if inner in (None, _UNSURE) else not inner
    check = checks.get(node.text)
    names = ast.names_in(node)
    if check is None or len(names & moved.keys()) > 1:
        return _UNSURE
    if not names & moved.keys():
        return check["passed"]
    metric = next(iter(names & moved.keys()))
    threshold, side = moved[metric]

    def sign(bound: Any) -> int:  # of (the moved value − bound)
        diff = threshold - bound
        return (diff > 0) - (diff < 0) if diff else side

    if isinstance(node, ast.Between) and isinstance(node.operand, ast.Name) and node.operand.name == metric \
            and "range" in check:
        low, high = check["range"]
        return sign(low) >= 0 and sign(high) <= 0
    if check.get("metric") != metric or check.get("op") not in _HOLDS:
        return _UNSURE
    return _HOLDS[check["op"]](sign(check["threshold"]))
