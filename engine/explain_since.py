"""What changed for one customer since the policy's previous run: the half of a grade's explanation that spans two runs.

``explain`` says why a customer has each grade in one run.  An analyst who runs a policy every month is asked the
other question, why the customer moved since last month, and had to explain both runs and compare two screens of
metrics by eye, with no word on whether the policy, the data or a manual override made the move.  Both runs are
stored, so the answer is two lookups by primary key (the previous run's grades and metric values of the customer):
the grades that changed, the values the deciding rules read that changed with them, and what made the move (an
override that began or ended, a policy edit, the data).

The previous run is the one ``changes`` compares with (``run_history``: the policy's successful run just before in
RUN_ORDER); grades computed now are compared with the policy's latest run of an earlier date, as the stored run of
their date would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import expr_ast as ast
from .classify_sql import OVERRIDE_RULE
from .expr_sql import quote_identifier as q
from .output_file import same_file
from .policy_model import Policy
from .results_store import LATEST_FIRST
from .run_metrics import RunMetrics, as_bool

#: The grades compared, as (key in an explanation, words for it).
GRADES = (("tier", "tier"), ("subgrade", "sub-grade"), ("stage", "stage"), ("service_level", "service level"))

_PREVIOUS_ROW = ("SELECT tier, tier_rule, subgrade, stage, service_level FROM {rs}.crm_assignments "
                 "WHERE run_id = ? AND customer_id = ?")


def previous_run(conn: Any, schema: str, policy_name: str, as_of: str, run_id: int | None) -> dict | None:
    """The run a change is measured from: for a stored run, the policy's successful run just before it (of the latest
    date before, or of the same date and an earlier id); for grades computed now, the latest successful run of an
    earlier date, the one a stored run of ``as_of`` would be compared with (so that both explain alike)."""
    rs = q(schema)
    if run_id is None:
        where, args = "as_of < ?", (as_of,)
    else:
        where, args = "(as_of < ? OR (as_of = ? AND run_id < ?))", (as_of, as_of, run_id)
    cur = conn.execute(f"SELECT * FROM {rs}.crm_runs "
                       f"WHERE policy_name = ? AND status = 'succeeded' AND {where} ORDER BY {LATEST_FIRST} LIMIT 1",
                       (policy_name, *args))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def _grades(result: dict) -> dict:
    return {"tier": result["tier"]["id"], "tier_rule": result["tier"]["rule"],
            "subgrade": (result.get("subgrade") or {}).get("id"),
            "stage": (result.get("stage") or {}).get("id"),
            "service_level": (result.get("service_level") or {}).get("id")}


def _read_by(policy: Policy, grades: set[str], tiers: set[str]) -> set[str]:
    """Names the rules of the changed grades read (the tier metric too: a Pareto tier's rules read its share); of
    sub-grades and service levels, those of the customer's tier before and after."""
    rules = []
    if "tier" in grades:
        rules += [t.rule for t in policy.tiers]
    if "subgrade" in grades:
        rules += [s for t in policy.tiers if t.id in tiers for s in t.subgrades]
    if "stage" in grades:
        rules += policy.stages
    conditions = [r.condition for r in rules if r.condition is not None]
    if "service_level" in grades:
        conditions += [s.condition for s in policy.service_levels if s.condition is not None and s.tier in tiers]
    names = {n for c in conditions for n in ast.names_in(c.node)}
    if "tier" in grades and policy.tier_metric:
        names.add(policy.tier_metric)
    return names


def since_previous_run(conn: Any, schema: str, policy: Policy, result: dict, run: dict,
                       old_rules_tier: Callable[[dict], Any] | None = None) -> dict | None:
    """How the explained customer's grades differ from the policy's previous run, or None when there is none.

    ``result``: the explanation (``explain._assemble``); ``run``: ``{"run_id", "as_of", "source_db"}`` of the run
    explained (``run_id`` None for grades computed now).  ``old_rules_tier(previous run)``: the tier the previous
    run's policy gives on the customer's values now (None when it cannot say), which tells a move the policy's
    change made from one the data made: ``tier_by_previous_rules``.  Returns ``{"run_id", "as_of", "policy_version",
    "policy_sha256"`` (of the previous run), ``"policy_version_now", "policy_changed", "same_date", "in_previous", "changes": [{"grade", "before", "after"}],
    "override": "began" | "ended" | None, "metrics": [{"name", "before", "after"}], "other_database",
    "tier_by_previous_rules"}``.
    """
    prev = previous_run(conn, schema, policy.name, run["as_of"], run.get("run_id"))
    if prev is None:
        return None
    key = result["customer_id"]
    row = conn.execute(_PREVIOUS_ROW.format(rs=q(schema)), (prev["run_id"], key)).fetchone()
    since = {"run_id": prev["run_id"], "as_of": prev["as_of"], "policy_version": prev["policy_version"],
             "policy_sha256": prev["policy_sha256"], "policy_version_now": policy.version,
             "policy_changed": prev["policy_sha256"] != policy.sha256,
             "same_date": prev["as_of"] == run["as_of"], "in_previous": row is not None, "changes": [],
             "override": None, "metrics": [], "tier_by_previous_rules": None,
             "other_database": bool(run.get("source_db") and prev["source_db"]
                                    and not same_file(prev["source_db"], run["source_db"]))}
    if row is None:
        return since
    before = dict(zip(("tier", "tier_rule", "subgrade", "stage", "service_level"), row))
    now = _grades(result)
    changed = {g for g, _ in GRADES if before[g] != now[g]}
    since["changes"] = [{"grade": g, "before": before[g], "after": now[g]} for g, _ in GRADES if g in changed]
    if (before["tier_rule"] == OVERRIDE_RULE) != (now["tier_rule"] == OVERRIDE_RULE):
        since["override"] = "began" if now["tier_rule"] == OVERRIDE_RULE else "ended"
    if not changed:
        return since
    if (since["policy_changed"] and "tier" in changed and since["override"] is None
            and now["tier_rule"] != OVERRIDE_RULE and old_rules_tier is not None):
        since["tier_by_previous_rules"] = old_rules_tier(prev)
    read = _read_by(policy, changed, {before["tier"], now["tier"]})
    values_before = RunMetrics.of_run(conn, prev["run_id"], schema).of_customer(conn, key)
    for m in result["metrics"]:
        name = m["name"]
        if name not in read or name not in values_before:
            continue
        old = as_bool(values_before[name]) if isinstance(m["value"], bool) else values_before[name]
        if old != m["value"]:
            since["metrics"].append({"name": name, "before": old, "after": m["value"]})
    return since
