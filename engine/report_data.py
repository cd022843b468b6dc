"""What ``crm-rules report`` shows about one run, gathered with plain SQL over the results tables.

Every figure is an aggregate computed by SQLite (GROUP BY, window functions), so the cost in
Python does not grow with the number of customers: only the Pareto curve's sampled points (a few
hundred), the embedded customer rows (``max_rows``, the top customers by revenue) and the
action list due soon come back row by row.  Nothing here writes: the results database is opened
read-only, exactly as ``export``, ``changes`` and ``history`` open it, and the run is chosen by
the same helper (:func:`export.resolve_run`).

Where a figure comes from:

* tiers, stages, credit outcomes and aging: ``crm_assignments`` and the run's ``crm_metrics`` (the
  revenue metric and every plugin output, e.g. ``credit_check_outcome`` and the aging buckets
  ``credit_check_aging_1_30`` ...; read through :class:`run_metrics.RunMetrics`), labels from
  ``crm_definitions``;
* the transition matrix: ``crm_assignments`` of this run and of the previous successful run of the
  same policy (:func:`run_history._previous_run`, as ``crm-rules changes`` finds it);
* actions: ``crm_actions``;
* aging, when the run has no credit check storing buckets: the receivables of the customer
  database (``source_db``), open on the run's as-of date, by the same rules as the ``overdue``
  metric (payments after the as-of date did not exist yet).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from .data_mapping import build_data_mapping
from .database import connect
from .export import resolve_run
from .metric_offset import window_dates
from .expr_sql import quote_identifier as q
from .run_history import _open, _previous_run, made_before, pruned_runs
from .run_metrics import RunMetrics, as_bool
from .source_filters import compile_filter, from_document
from .plugin_sql import trimmed_owner

MAX_ROWS = 5000  # customers embedded in the page's table: enough to browse, small enough to stay fast
CURVE_POINTS = 400  # samples of the Pareto curve; plenty for a chart 800 pixels wide
DUE_SOON_DAYS = 7
DUE_SOON_LIST = 50
OWNERS_LISTED = 15
TABLE_METRICS = 6  # metric columns of the customer table besides the revenue metric
_AGING_KEY = re.compile(r"_aging_(\d+)_(\d+|plus)$")


def gather(db: Path, run_id: int | None = None, policy: str | None = None, source_db: Path | None = None,
           max_rows: int = MAX_ROWS) -> dict:
    """Everything the report shows about a run (default: the newest successful run), as plain dicts."""
    apart = source_db is not None and Path(source_db) != Path(db)  # the runs are in a --results-db
    conn = _open(db, "--results-db" if apart else "--db")
    try:
        run = resolve_run(conn, run_id, policy, results_option=None if apart else "--results-db")
        rid = run["run_id"]
        document = _document(conn, run["policy_sha256"])
        counts = json.loads(run["counts"] or "{}")
        definitions = _definitions(conn, rid)
        stored = RunMetrics.of_run(conn, rid)
        keys = list(stored.names)
        revenue = counts.get("revenue_metric") or (document.get("summary") or {}).get("revenue") \
            or (document.get("tiers") or {}).get("metric")
        revenue = revenue if revenue in keys else None
        credit = _credit_entries(document, keys)
        groups = _groups(conn, stored, revenue, credit)
        data = {
            "run": _run_info(run, counts),
            "policy": {"name": run["policy_name"], "version": run["policy_version"], "sha256": run["policy_sha256"],
                       "description": document.get("description", ""),
                       "tier_method": (document.get("tiers") or {}).get("method"), "revenue_metric": revenue,
                       "revenue_label": _metric_label(definitions, document, revenue, run["as_of"])},
            "definitions": definitions,
            "tiers": _tiers(groups, definitions, document),
            "tier_stage": _tier_stage(groups),
            "pareto": _pareto(conn, stored, revenue, sum(g["n"] for g in groups), sum(g["negative"] or 0 for g in groups))
            if revenue else None,
            "transitions": _transitions(conn, run, definitions),
            "credit": [_credit(groups, entry) for entry in credit],
            "aging_source": None,
            "actions": _actions(conn, rid, run["as_of"]),
            "errors": conn.execute("SELECT count(*) FROM crm_errors WHERE run_id = ?", (rid,)).fetchone()[0],
            "customers": _customers(conn, stored, revenue, _table_metrics(document, keys, revenue, credit),
                                    definitions, document, max_rows, run["as_of"]),
        }
        if not credit:
            data["aging_source"] = _aging_from_source(source_db, document, run["as_of"])
        return data
    finally:
        conn.close()


# --- the run and its definitions ---------------------------------------------------------------

def _run_info(run: sqlite3.Row, counts: dict) -> dict:
    info = {k: run[k] for k in ("run_id", "policy_name", "policy_version", "policy_sha256", "as_of", "started_at",
                                "finished_at", "customers", "engine_version", "source_db")}
    info["notes"] = json.loads(run["notes"] or "[]")
    info["plugins"] = json.loads(run["plugins"] or "{}") if "plugins" in run.keys() else {}
    info["total_revenue"] = counts.get("total_revenue")
    info["overrides"] = counts.get("overrides", 0)
    return info


def _document(conn: sqlite3.Connection, sha: str) -> dict:
    """The policy as the run used it (labels, Pareto cut-offs, credit entries); {} if it was not stored."""
    try:
        row = conn.execute("SELECT document FROM crm_policies WHERE sha256 = ?", (sha,)).fetchone()
    except sqlite3.OperationalError:  # results written before crm_policies existed
        return {}
    return json.loads(row[0]) if row else {}


def _definitions(conn: sqlite3.Connection, rid: int) -> dict[str, list[dict]]:
    """kind -> definitions in policy order; a label equal to the id is dropped (nothing to add)."""
    out: dict[str, list[dict]] = {k: [] for k in ("tier", "subgrade", "stage", "service_level", "metric")}
    for kind, id_, parent, label in conn.execute(
            "SELECT kind, id, parent, label FROM crm_definitions WHERE run_id = ? ORDER BY kind, position, id", (rid,)):
        out.setdefault(kind, []).append({"id": id_, "parent": parent, "label": label if label and label != id_ else ""})
    return out


def _metric_label(definitions: dict, document: dict, name: str | None, as_of: str | None = None) -> str:
    """The label of a metric or plugin output; a metric whose window ends before the as-of date (``offset``) or is
    a calendar window (``year to date``) has its window's dates after it, since the report's headings read as
    figures of a trailing window ending on the run's own date."""
    if name is None:
        return ""
    for d in definitions.get("metric", []):
        if d["id"] == name:
            dates = window_dates((document.get("metrics") or {}).get(name), as_of) if as_of else None
            return (d["label"] or name) + (f" ({dates[0]} – {dates[1]})" if dates else "")
    for section in ("scores", "credit"):
        entry = (document.get(section) or {}).get(name)
        if isinstance(entry, dict) and entry.get("label"):
            return entry["label"]
    return name


# --- tiers, stages and credit: one GROUP BY over the run ----------------------------------------

def _credit_entries(document: dict, keys: list[str]) -> list[dict]:
    """Credit checks whose outcome the run stored, with their aging bucket keys in day order."""
    found = []
    for name, entry in (document.get("credit") or {}).items():
        if f"{name}_outcome" not in keys:
            continue
        buckets = []
        for key in keys:
            m = _AGING_KEY.search(key)
            if key.startswith(f"{name}_aging_") and m and key == f"{name}{m.group(0)}":
                low, high = int(m.group(1)), m.group(2)
                buckets.append({"key": key, "low": low, "high": None if high == "plus" else int(high)})
        buckets.sort(key=lambda b: b["low"])
        params = (entry or {}).get("params") or {}
        current = "exposure" not in params and f"{name}_exposure" in keys and f"{name}_overdue_total" in keys
        found.append({"name": name, "label": (entry or {}).get("label") or name, "buckets": buckets,
                      "current": current})
    return found


def _groups(conn: sqlite3.Connection, stored: RunMetrics, revenue: str | None, credit: list[dict]) -> list[dict]:
    """Customers, revenue and open receivables per tier, stage and credit outcome: a few dozen rows.

    Each value is read once per customer in a subquery that ``LIMIT -1`` keeps SQLite from flattening
    into the aggregate (flattened, every reference would parse a legacy run's JSON again).
    """
    wanted = ([revenue] if revenue else []) + [c["name"] + "_outcome" for c in credit]
    for c in credit:
        wanted += [b["key"] for b in c["buckets"]]
        wanted += [c["name"] + "_exposure", c["name"] + "_overdue_total"] if c["current"] else []
    alias = {k: f"v{i}" for i, k in enumerate(dict.fromkeys(wanted))}
    inner = "".join(f", {stored.column(k)} AS {a}" for k, a in alias.items())
    keys = ["tier", "stage"] + [alias[c["name"] + "_outcome"] for c in credit]
    sums = [f"sum({alias[revenue]})" if revenue else "NULL", f"sum({alias[revenue]} < 0)" if revenue else "0",
            f"sum(max({alias[revenue]}, 0))" if revenue else "NULL"]
    names = []
    for c in credit:
        for b in c["buckets"]:
            sums += [f"sum({alias[b['key']]})", f"sum({alias[b['key']]} > 0.005)"]
            names += [(c["name"], b["key"]), (c["name"], "n:" + b["key"])]
        if c["current"]:
            sums.append(f"sum({alias[c['name'] + '_exposure']} - {alias[c['name'] + '_overdue_total']})")
            names.append((c["name"], "current"))
    sql = (f"SELECT count(*), {', '.join(sums)}, {', '.join(keys)} FROM (SELECT a.tier, a.stage{inner} "
           f"FROM crm_assignments AS a{stored.join()} WHERE a.run_id = ? LIMIT -1) GROUP BY {', '.join(keys)}")
    out = []
    for row in conn.execute(sql, (stored.run_id,)):
        n, rev, negative, positive = row[:4]
        values = row[4:4 + len(names)]
        group_keys = row[4 + len(names):]
        out.append({"n": n, "revenue": rev, "negative": negative, "positive": positive, "tier": group_keys[0],
                    "stage": group_keys[1],
                    "outcomes": {c["name"]: group_keys[2 + i] for i, c in enumerate(credit)},
                    "sums": {f"{e}:{k}": v for (e, k), v in zip(names, values)}})
    return out


def _tiers(groups: list[dict], definitions: dict, document: dict) -> list[dict]:
    """Each tier in policy order (then any tier the definitions lack), with its share of customers and revenue.

    ``revenue_share`` is of the net revenue (what the tiers' revenue adds up to); ``curve_share`` counts
    negative revenue as 0, as the Pareto curve and Pareto tiers do, so that a tier's cut-off marker sits on
    the curve and never reads "A holds 90%" beside a cut-off of 80% when returns made someone's revenue negative.
    """
    targets = {lvl.get("id"): lvl.get("up_to") for lvl in (document.get("tiers") or {}).get("levels", [])
               if isinstance(lvl, dict)}
    order = [d["id"] for d in definitions["tier"]]
    labels = {d["id"]: d["label"] for d in definitions["tier"]}
    stats: dict = {}
    for g in groups:
        s = stats.setdefault(g["tier"], {"customers": 0, "revenue": None, "positive": 0})
        s["customers"] += g["n"]
        if g["revenue"] is not None:
            s["revenue"] = (s["revenue"] or 0) + g["revenue"]
        s["positive"] += g["positive"] or 0
    order += sorted((t for t in stats if t not in order), key=str)
    total_n = sum(s["customers"] for s in stats.values())
    total_rev = sum(s["revenue"] or 0 for s in stats.values())
    total_positive = sum(s["positive"] for s in stats.values())
    out = []
    for t in order:
        s = stats.get(t, {"customers": 0, "revenue": None, "positive": 0})
        out.append({"id": t, "label": labels.get(t, ""), "customers": s["customers"], "revenue": s["revenue"],
                    "customer_share": s["customers"] / total_n if total_n else 0,
                    "revenue_share": (s["revenue"] or 0) / total_rev if total_rev > 0 else None,
                    "curve_share": s["positive"] / total_positive if total_positive > 0 else None,
                    "target": targets.get(t)})
    return out


def _tier_stage(groups: list[dict]) -> dict:
    """tier -> stage -> customers."""
    out: dict = {}
    for g in groups:
        cell = out.setdefault(g["tier"], {})
        cell[g["stage"]] = cell.get(g["stage"], 0) + g["n"]
    return out


def _credit(groups: list[dict], entry: dict) -> dict:
    """Outcomes per tier and in all, and the open receivables per aging bucket, of one credit check."""
    name = entry["name"]
    by_tier: dict = {}
    totals: dict = {}
    sums: dict = {}
    for g in groups:
        outcome = g["outcomes"][name]
        by_tier.setdefault(g["tier"], {})
        by_tier[g["tier"]][outcome] = by_tier[g["tier"]].get(outcome, 0) + g["n"]
        totals[outcome] = totals.get(outcome, 0) + g["n"]
        for key, value in g["sums"].items():
            if key.startswith(name + ":") and value is not None:
                sums[key] = sums.get(key, 0) + value
    aging = []
    if entry["current"]:
        aging.append({"label": "not yet due", "amount": sums.get(f"{name}:current", 0), "customers": None})
    for b in entry["buckets"]:
        label = f"{b['low']}–{b['high']} days" if b["high"] is not None else f"> {b['low']} days"
        aging.append({"label": label, "amount": sums.get(f"{name}:{b['key']}", 0),
                      "customers": sums.get(f"{name}:n:{b['key']}", 0)})
    return {"name": name, "label": entry["label"], "by_tier": by_tier, "totals": totals, "aging": aging}


# --- Pareto curve -----------------------------------------------------------------------------

def _pareto(conn: sqlite3.Connection, stored: RunMetrics, revenue: str, n: int, negative: int) -> dict:
    """Cumulative revenue share against share of customers, best first, sampled to ~CURVE_POINTS points.

    One window query; negative or missing revenue counts as 0 (a customer cannot hold a negative
    share of the curve), and ``negative`` says how many customers that concerned.
    """
    step = max(1, n // CURVE_POINTS)
    rows = conn.execute(
        f"SELECT rn, cum, total FROM (SELECT row_number() OVER w AS rn, sum(x) OVER w AS cum, sum(x) OVER () AS total "
        f"FROM (SELECT max(coalesce({stored.column(revenue)}, 0), 0) AS x "
        f"FROM crm_assignments AS a{stored.join()} WHERE a.run_id = :rid LIMIT -1) "
        f"WINDOW w AS (ORDER BY x DESC ROWS UNBOUNDED PRECEDING)) WHERE rn % :step = 0 OR rn = :n OR rn <= 1",
        {"rid": stored.run_id, "step": step, "n": n}).fetchall()
    total = rows[0][2] if rows else 0
    if not total:
        return {"n": n, "total": 0, "points": [], "negative": negative}
    points = [(0.0, 0.0)] + [(rn / n, cum / total) for rn, cum, _ in rows]
    return {"n": n, "total": total, "points": points, "negative": negative}


# --- transitions since the previous run ----------------------------------------------------------

def _transitions(conn: sqlite3.Connection, run: sqlite3.Row, definitions: dict) -> dict:
    """Customers per (tier before, tier after) since the policy's previous successful run.

    ``from`` is None for customers new in this run, ``to`` None for customers it no longer has,
    so the rows add up to both runs' sizes, as in ``crm-rules changes``.  ``pruned``: the policy's successful runs
    between the two (before this run, without a previous one) that prune deleted.
    """
    prev = _previous_run(conn, run)
    pruned = pruned_runs(conn, run["policy_name"], run, prev)  # between them; without a previous run, before it
    if prev is None:  # the policy's first run, unless runs were pruned or this is a backfill of its earliest date
        return {"previous": None, "pruned": pruned, "made_before": made_before(conn, run)}
    rid, pid = run["run_id"], prev["run_id"]
    cells = conn.execute(
        "SELECT p.tier, a.tier, count(*) FROM crm_assignments AS a LEFT JOIN crm_assignments AS p "
        "ON p.run_id = :pid AND p.customer_id = a.customer_id WHERE a.run_id = :rid GROUP BY p.tier, a.tier "
        "UNION ALL SELECT p.tier, NULL, count(*) FROM crm_assignments AS p WHERE p.run_id = :pid AND NOT EXISTS "
        "(SELECT 1 FROM crm_assignments AS a WHERE a.run_id = :rid AND a.customer_id = p.customer_id) GROUP BY p.tier",
        {"rid": rid, "pid": pid}).fetchall()
    tiers = [d["id"] for d in definitions["tier"]]
    old = [r[0] for r in conn.execute("SELECT id FROM crm_definitions WHERE run_id = ? AND kind = 'tier' "
                                      "ORDER BY position, id", (pid,)) if r[0] not in tiers]
    seen = {t for f, to, _ in cells for t in (f, to) if t is not None}
    order = tiers + old + sorted(seen - set(tiers) - set(old), key=str)
    rank = {t: i for i, t in enumerate(tiers)}
    # kept_tier: the customers of both runs whose tier stayed, whatever their stage did, as in `changes --json`
    totals = {"upgrades": 0, "downgrades": 0, "kept_tier": 0, "new": 0, "removed": 0, "unranked": 0}
    for f, to, n in cells:
        if f is None:
            totals["new"] += n
        elif to is None:
            totals["removed"] += n
        elif f == to:
            totals["kept_tier"] += n
        elif f in rank and to in rank:
            totals["upgrades" if rank[to] < rank[f] else "downgrades"] += n
        else:
            totals["unranked"] += n
    return {"previous": {"run_id": pid, "as_of": prev["as_of"], "policy_sha256": prev["policy_sha256"],
                         "policy_changed": prev["policy_sha256"] != run["policy_sha256"]},
            "tiers": order, "cells": [{"from": f, "to": to, "customers": n} for f, to, n in cells], "totals": totals,
            "pruned": pruned}


# --- actions ---------------------------------------------------------------------------------

def _actions(conn: sqlite3.Connection, rid: int, as_of: str) -> dict:
    """The action queue: by action, owner and priority, and the actions due within DUE_SOON_DAYS of the as-of date."""
    soon = conn.execute("SELECT date(?, ?)", (as_of, f"+{DUE_SOON_DAYS} days")).fetchone()[0]
    args = {"rid": rid, "soon": soon}
    total, due_soon = conn.execute("SELECT count(*), coalesce(sum(due_date <= :soon), 0) FROM crm_actions "
                                   "WHERE run_id = :rid", args).fetchone()
    by_action = [dict(zip(("action", "category", "plugin", "count", "customers", "priority", "next_due", "due_soon"), r))
                 for r in conn.execute(
        "SELECT action, category, plugin, count(*), count(DISTINCT customer_id), min(priority), min(due_date), "
        "coalesce(sum(due_date <= :soon), 0) FROM crm_actions WHERE run_id = :rid GROUP BY action, category, plugin "
        "ORDER BY count(*) DESC, action", args)]
    by_owner = [dict(zip(("owner", "count", "due_soon", "priority"), r)) for r in conn.execute(
        f"SELECT {trimmed_owner('owner')} AS name, count(*), coalesce(sum(due_date <= :soon), 0), min(priority) "
        "FROM crm_actions WHERE run_id = :rid GROUP BY name ORDER BY count(*) DESC, name IS NULL, name", args)]
    by_priority = [dict(zip(("priority", "count", "due_soon"), r)) for r in conn.execute(
        "SELECT priority, count(*), coalesce(sum(due_date <= :soon), 0) FROM crm_actions WHERE run_id = :rid "
        "GROUP BY priority ORDER BY priority IS NULL, priority", args)]
    by_category = [dict(zip(("category", "count"), r)) for r in conn.execute(
        "SELECT category, count(*) FROM crm_actions WHERE run_id = :rid GROUP BY category ORDER BY count(*) DESC", args)]
    listed = [dict(zip(("due_date", "priority", "action", "category", "customer_id", "customer_name", "tier", "owner",
                        "reason"), r)) for r in conn.execute(
        f"SELECT x.due_date, x.priority, x.action, x.category, x.customer_id, a.customer_name, a.tier, "
        f"{trimmed_owner('x.owner')}, x.reason "
        "FROM crm_actions AS x LEFT JOIN crm_assignments AS a ON a.run_id = x.run_id AND a.customer_id = x.customer_id "
        "WHERE x.run_id = :rid AND x.due_date <= :soon ORDER BY x.due_date, x.priority IS NULL, x.priority, "
        f"x.customer_id, x.action LIMIT {DUE_SOON_LIST}", args)]
    return {"total": total, "due_soon": due_soon, "soon": soon, "days": DUE_SOON_DAYS, "by_action": by_action,
            "by_owner": by_owner[:OWNERS_LISTED], "owners": len(by_owner),
            "owners_more": sum(o["count"] for o in by_owner[OWNERS_LISTED:]), "by_priority": by_priority,
            "by_category": by_category, "due_soon_list": listed}


# --- the customer table ------------------------------------------------------------------------

def _table_metrics(document: dict, keys: list[str], revenue: str | None, credit: list[dict]) -> list[str]:
    """The metric columns of the customer table, besides the revenue metric.

    The policy's own ``summary.key_metrics`` when it lists them; otherwise the scores and each credit
    check's grade and outcome (the plugin outputs people sort by), then the tier metric.
    """
    summary = document.get("summary") or {}
    if summary.get("key_metrics"):
        wanted = list(summary["key_metrics"])
    else:
        wanted = list(document.get("scores") or {})
        for c in credit:
            wanted += [f"{c['name']}_grade", f"{c['name']}_outcome"]
        wanted.append((document.get("tiers") or {}).get("metric"))
    chosen = [k for k in dict.fromkeys(wanted) if k and k in keys and k != revenue]
    return chosen[:TABLE_METRICS]


def _customers(conn: sqlite3.Connection, stored: RunMetrics, revenue: str | None, metrics: list[str], definitions: dict,
               document: dict, max_rows: int, as_of: str) -> dict:
    """The top ``max_rows`` customers by revenue (by id when there is none), with their grades and metrics."""
    total = conn.execute("SELECT count(*) FROM crm_assignments WHERE run_id = ?", (stored.run_id,)).fetchone()[0]
    names = ([revenue] if revenue else []) + metrics
    cols = "".join(f", {stored.column(n)}" for n in names)
    order = f"{stored.column(revenue)} IS NULL, {stored.column(revenue)} DESC, a.customer_id" if revenue else "a.customer_id"
    rows = conn.execute(
        f"SELECT a.customer_id, a.customer_name, a.tier, a.subgrade, a.stage, a.service_level{cols} "
        f"FROM crm_assignments AS a{stored.join()} WHERE a.run_id = ? ORDER BY {order} LIMIT ?", (stored.run_id, max(0, max_rows))).fetchall()
    true_false = stored.bools(conn)
    bools = {6 + i for i, n in enumerate(names) if n in true_false}  # 1/0 in the table, true/false here
    return {"total": total, "shown": len(rows), "limit": max_rows, "ordered_by": revenue,
            "metrics": [{"name": n, "label": _metric_label(definitions, document, n, as_of)} for n in names],
            "rows": [[as_bool(v) if i in bools else v for i, v in enumerate(r)] for r in rows]}


# --- aging from the customer database (runs without a credit check) -------------------------------

def _aging_from_source(source_db: Path | None, document: dict, as_of: str) -> dict:
    """Open receivables on ``as_of`` by days past due, from the receivables table the policy reads.

    Same rules as the ``overdue`` and ``outstanding`` metrics: a receivable is open when issued by
    the as-of date and not fully paid by then (a later payment did not exist yet).  Returns
    ``{"buckets": [...]}`` or ``{"reason": why not}``.
    """
    if source_db is None:
        return {"reason": "the run has no credit check storing aging buckets, and no customer database was given"}
    mapping = from_document(build_data_mapping(document.get("data")).sources["receivables"], document.get("data"))
    rf = compile_filter(mapping, alias=None)  # the receivables the run's metrics read: data.receivables.where's
    kept = "" if rf is None else f" AND {rf.sql}"
    c = {name: q(col.column) for name, col in mapping.columns.items()}
    try:
        conn = connect(Path(source_db), mode="ro")
    except Exception as exc:  # the figures are optional: say why they are missing instead of failing the report
        return {"reason": f"the run has no credit check storing aging buckets, and {source_db} cannot be read ({exc})"}
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?",
                            (mapping.table,)).fetchone():
            return {"reason": f"the run has no credit check storing aging buckets, and {source_db} has no "
                              f"{mapping.table} table"}
        paid = (f"(CASE WHEN {c['paid_date']} IS NULL OR {c['paid_date']} < :next THEN coalesce({c['paid_amount']}, 0) "
                f"ELSE 0 END)")
        days = f"CAST(julianday(:as_of) - julianday(date({c['due_date']})) AS INTEGER)"
        rows = conn.execute(
            f"SELECT CASE WHEN d <= 0 THEN 0 WHEN d <= 30 THEN 1 WHEN d <= 60 THEN 2 WHEN d <= 90 THEN 3 ELSE 4 END AS b, "
            f"sum(open), count(DISTINCT cid) FROM (SELECT {days} AS d, {c['amount']} - {paid} AS open, "
            f"{q(mapping.key)} AS cid FROM {q(mapping.table)} WHERE {c['date']} < :next{kept}) "
            f"WHERE open > 0.005 GROUP BY b",
            {**(rf.params if rf else {}), "as_of": as_of,
             "next": conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]}).fetchall()
    except sqlite3.Error as exc:
        return {"reason": f"the receivables in {source_db} cannot be read ({exc})"}
    finally:
        conn.close()
    found = {b: (amount, n) for b, amount, n in rows}
    labels = ["not yet due", "1–30 days", "31–60 days", "61–90 days", "> 90 days"]
    return {"buckets": [{"label": labels[i], "amount": found.get(i, (0, 0))[0] or 0,
                         "customers": found.get(i, (0, 0))[1]} for i in range(5)],
            "table": mapping.table, "db": str(source_db)}

