"""Compare two policies (or a stored run and a policy) over the whole customer base.

Both sides are evaluated on one read-only connection: the old policy is
computed with the ordinary :func:`runner.compute`, its grades are copied into
``temp._diff_old``, then the new policy is computed (``compute`` drops and
recreates its own temp tables) and copied into ``temp._diff_new``.  With
``against_run`` the old side is read from that run's ``crm_assignments``
instead, and the new policy is computed as of the run's as-of date (another
``as_of`` is refused: the diff would mix what the policy changes with what the
days in between changed).  The two sides are joined on the customer id in SQL, and every count
below is one ``GROUP BY`` over that join; Python only shapes the results.

What is compared
----------------
* ``tiers``, ``subgrades``, ``stages``: transition matrices, ``matrix[from][to]``
  = customers graded ``from`` by the old side and ``to`` by the new one.  Rows
  follow the old side's order of definition, columns the new side's; every
  cell is present (zeros included).  ``"(none)"`` stands for no value (a tier
  without sub-grades, a policy without lifecycle stages, no matching service
  level) and ``"(absent)"`` for a customer missing on that side (only with
  ``against_run``, when customers were added or removed since the run).
* ``service_levels``: how many customers change service level, and the
  changed (from, to) pairs with their counts.
* ``revenue_share``: per tier, customers, revenue and share of the total
  revenue on each side, and the change of share (new − old).  Each side uses
  its own revenue metric (``summary.revenue``, else the tier metric), so the
  shares are those ``apply`` would print.
* ``costs``: what the service levels cost, only where the policy gives unit
  costs (nothing is reported for a cost the policy does not give):

  - ``cost`` = Σ over customers of their service level's
    ``attributes.cost_per_customer``;
  - ``discount_given`` = Σ over customers of their service level's
    ``discount`` × the customer's revenue (the side's revenue metric, named
    in ``revenue_metric`` of each side: when the two sides use different
    metrics, or one metric over other rows (another ``window`` or
    ``offset``), the change of this total is partly the change of metric,
    and a note says so);
  - ``account_managers`` = per service level that gives
    ``attributes.accounts_per_manager`` (how many customers one account
    manager looks after): ⌈customers ÷ accounts_per_manager⌉ (whole people,
    rounded up per service level), summed over levels.  A level without it
    adds no account managers (pooled or self-service levels) and is not
    missing.  ``account_manager`` is free text (``dedicated senior``,
    ``专属客户经理``, ``pooled``) and does not decide what is counted; it is
    shown next to the count.

  Totals sum the levels that give the unit; ``missing`` lists service levels
  with customers that lack ``cost_per_customer`` or ``discount`` (their share
  is not in the total).  A unit that is not a number (``cost_per_customer:
  "2400"``), a negative one, or an ``accounts_per_manager`` of 0 or less is
  not used: ``invalid`` names it, per cost and service level, with the value
  given.  Customers without a service level are in no total (they get no
  service) and are not listed as missing; the run's note counts them.
  ``change`` (new − old) is given for a total present on both sides.  A
  side without a revenue metric gives no ``discount_given``; its levels that
  give a discount are listed in ``discount_without_revenue``.
* ``actions``: per action id, the customers who have it on each side and
  those who gain it, lose it or keep it with another priority or due date;
  with ``list_customers`` also who (see :mod:`.action_diff`).  None when the
  stored run has no actions table to compare with (a note says so).
* ``movers`` (only with ``list_customers``): every customer whose tier,
  sub-grade, stage or service level differs, ordered by customer id.

An error while computing one side (a missing column, overrides naming a tier
that policy does not have) says which side: ``new policy 'vip_card': ...``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .action_diff import (NEW_ACTIONS, OLD_ACTIONS, compare_actions, copy_computed_actions, copy_run_actions, headline,
                          print_action_customers, print_actions)
from .database import RunConnection, attach_read_only, connect, open_for_run
from .errors import CrmRulesError, PolicyError, RunError, UsageError
from .export import resolve_run
from .expr_sql import quote_identifier as q
from .metric_offset import period
from .metric_sql import CID, CNAME, decimal_total
from .output_file import same_file
from .policy_model import Policy
from .run_metrics import RunMetrics
from .runner import compute, parse_as_of

NONE = "(none)"
ABSENT = "(absent)"
OLD, NEW = "temp._diff_old", "temp._diff_new"
PAIRS = "temp._diff_pairs"
FIELDS = ("tier", "subgrade", "stage", "service_level")


@dataclass
class Side:
    """What one side of a comparison is, and the definitions its grades refer to."""

    source: str  # "policy" | "run"
    policy: str
    policy_sha256: str
    as_of: str
    revenue_metric: str | None
    tiers: list[str]
    subgrades: list[str]
    stages: list[str]
    service_levels: dict[str, dict]  # id -> details (discount, account_manager, attributes, ...)
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)
    has_actions: bool = True  # False: a stored run whose results have no crm_actions table
    graded: str | None = None  # a stored run's source_db: the data database it graded
    revenue_period: str | None = None  # the rows the revenue metric reads, in words (metric_offset.period)

    def describe(self) -> dict:
        return {"source": self.source, "policy": self.policy, "policy_sha256": self.policy_sha256,
                "run_id": self.run_id, "as_of": self.as_of, "revenue_metric": self.revenue_metric}


def _policy_side(policy: Policy, as_of: str, notes: list[str]) -> Side:
    revenue = policy.metrics.get(policy.revenue_metric or "")
    return Side("policy", policy.name, policy.sha256, as_of, policy.revenue_metric,
                [t.id for t in policy.tiers], [s.id for t in policy.tiers for s in t.subgrades],
                [s.id for s in policy.stages], {sl.id: dict(sl.details) for sl in policy.service_levels}, notes=notes,
                revenue_period=period(revenue.spec) if revenue is not None else None)


def _copy_computed(rc: RunConnection, policy: Policy, as_of: str, target: str, overrides: Path | None = None) -> Side:
    computed = compute(rc, policy, as_of, overrides)
    revenue = f"r.{q(policy.revenue_metric)}" if policy.revenue_metric else "NULL"
    conn = rc.conn
    conn.execute(f"DROP TABLE IF EXISTS {target}")
    conn.execute(f"CREATE TEMP TABLE {q(target.split('.', 1)[1])} AS SELECT r.{CID} AS cid, r.{CNAME} AS name, "
                 f"r._tier AS tier, r._subgrade AS subgrade, r._stage AS stage, r._service_level AS service_level, "
                 f"{revenue} AS revenue FROM {computed.result_table} AS r")
    copy_computed_actions(conn, OLD_ACTIONS if target == OLD else NEW_ACTIONS)  # the next compute drops them
    return _policy_side(policy, as_of, list(computed.notes))


def _run_side(rc: RunConnection, run_id: int, results_db: Path | None) -> Side:
    """The old side from a stored run: its assignments, and its definitions from crm_definitions."""
    runs = connect(results_db, mode="ro", option="--results-db") if results_db is not None else rc.conn
    try:
        run = dict(resolve_run(runs, run_id, results_option=None if results_db is not None else "--results-db"))
        runs.row_factory = None
        counts = json.loads(run["counts"] or "{}")
        definitions: dict[str, list] = {"tier": [], "subgrade": [], "stage": [], "service_level": []}
        revenue_period = None
        for kind, did, parent, details in runs.execute(
                "SELECT kind, id, parent, details FROM crm_definitions WHERE run_id = ? ORDER BY position", (run["run_id"],)):
            if kind in definitions:
                definitions[kind].append((did, parent, json.loads(details or "{}")))
            elif kind == "metric" and did == counts.get("revenue_metric"):
                revenue_period = period(json.loads(details or "{}"))
    finally:
        if results_db is not None:
            runs.close()
    schema = "main"
    if results_db is not None:
        attach_read_only(rc.conn, results_db, "_diff_runs")
        schema = "_diff_runs"
    revenue = counts.get("revenue_metric")
    stored = RunMetrics.of_run(rc.conn, run["run_id"], schema)
    rc.conn.execute(f"DROP TABLE IF EXISTS {OLD}")
    rc.conn.execute(f"CREATE TEMP TABLE _diff_old AS SELECT a.customer_id AS cid, a.customer_name AS name, a.tier AS tier, "
                    f"a.subgrade AS subgrade, a.stage AS stage, a.service_level AS service_level, "
                    f"{stored.column(revenue) if revenue else 'NULL'} AS revenue "
                    f"FROM {q(schema)}.crm_assignments AS a{stored.join()} WHERE a.run_id = :run", {"run": run["run_id"]})
    has_actions = copy_run_actions(rc.conn, schema, run["run_id"], OLD_ACTIONS)
    tiers = [d for d, _, _ in definitions["tier"]]
    # sub-grades are numbered within their tier: list them tier by tier
    subgrades = [sid for t in tiers for sid, parent, _ in definitions["subgrade"] if parent == t]
    notes = json.loads(run.get("notes") or "[]")
    return Side("run", run["policy_name"], run["policy_sha256"], run["as_of"], revenue, tiers, subgrades,
                [d for d, _, _ in definitions["stage"]],
                {d: {k: v for k, v in det.items() if k not in ("tier", "subgrade", "stage")}
                 for d, _, det in definitions["service_level"]},
                run_id=run["run_id"], notes=notes, has_actions=has_actions, graded=run["source_db"],
                revenue_period=revenue_period)


def _pairs(conn: sqlite3.Connection) -> None:
    """One row per customer of either side: old and new grades side by side (a full outer join)."""
    cols_old = ", ".join(f"o.{f} AS old_{f}" for f in FIELDS)
    cols_new = ", ".join(f"n.{f} AS new_{f}" for f in FIELDS)
    nulls_old = ", ".join(f"NULL AS old_{f}" for f in FIELDS)
    for table in (OLD, NEW):
        name = table.split(".", 1)[1]
        conn.execute(f"CREATE INDEX IF NOT EXISTS temp.{q(name + '_cid')} ON {q(name)}(cid)")
    conn.execute(f"DROP TABLE IF EXISTS {PAIRS}")
    conn.execute(
        f"CREATE TEMP TABLE _diff_pairs AS "
        f"SELECT o.cid AS cid, coalesce(n.name, o.name) AS name, 1 AS in_old, n.cid IS NOT NULL AS in_new, "
        f"{cols_old}, {cols_new}, o.revenue AS old_revenue, n.revenue AS new_revenue "
        f"FROM {OLD} AS o LEFT JOIN {NEW} AS n ON n.cid = o.cid "
        f"UNION ALL "
        f"SELECT n.cid, n.name, 0, 1, {nulls_old}, {cols_new}, NULL, n.revenue "
        f"FROM {NEW} AS n WHERE NOT EXISTS (SELECT 1 FROM {OLD} AS o WHERE o.cid = n.cid)")


def _label(present: int, value: Any) -> str:
    if not present:
        return ABSENT
    return NONE if value is None else str(value)


def _order(defined: list[str], seen: set[str]) -> list[str]:
    """Defined ids first, in their order, then any other value seen (none and absent last)."""
    extra = sorted(v for v in seen if v not in defined and v not in (NONE, ABSENT))
    tail = [v for v in (NONE, ABSENT) if v in seen]
    return list(defined) + extra + tail


def _merged(old: list[str], new: list[str]) -> list[str]:
    """Both sides' ids in one list: the new side's order, and each id only the old side has after the one it followed
    there.  Old ids first and new ones after them listed a tier added between B and C after C."""
    out = list(new)
    for i, item in enumerate(old):
        if item not in out:
            before = next((old[j] for j in range(i - 1, -1, -1) if old[j] in out), None)
            out.insert(out.index(before) + 1 if before is not None else 0, item)
    return [v for v in out if v not in (NONE, ABSENT)] + [v for v in (NONE, ABSENT) if v in out]


def _matrix(conn: sqlite3.Connection, f: str, old_defined: list[str], new_defined: list[str]) -> dict:
    rows = conn.execute(f"SELECT in_old, old_{f}, in_new, new_{f}, count(*) FROM {PAIRS} GROUP BY 1, 2, 3, 4").fetchall()
    cells = {}
    for in_old, old, in_new, new, n in rows:
        key = (_label(in_old, old), _label(in_new, new))
        cells[key] = cells.get(key, 0) + n
    froms = _order(old_defined, {k[0] for k in cells})
    tos = _order(new_defined, {k[1] for k in cells})
    matrix = {a: {b: cells.get((a, b), 0) for b in tos} for a in froms}
    changed = sum(n for (a, b), n in cells.items() if a != b)
    return {"from": froms, "to": tos, "matrix": matrix, "changed": changed}


def _tier_revenue(conn: sqlite3.Connection, side: str) -> dict[str, tuple[int, float | None]]:
    rows = conn.execute(f"SELECT {side}_tier, count(*), sum({side}_revenue) FROM {PAIRS} "
                        f"WHERE in_{side} GROUP BY 1").fetchall()
    return {t: (n, decimal_total(rev)) for t, n, rev in rows}  # as apply's counts: no noise of the addition order


def _revenue_share(conn: sqlite3.Connection, old: Side, new: Side) -> dict:
    per = {"old": _tier_revenue(conn, "old"), "new": _tier_revenue(conn, "new")}
    sides = {"old": old, "new": new}
    totals = {s: (decimal_total(sum((rev or 0) for _, rev in per[s].values())) if sides[s].revenue_metric else None)
              for s in per}
    tiers = _merged(_order(old.tiers, set(per["old"])), _order(new.tiers, set(per["new"])))
    out = {}
    for t in tiers:
        entry = {}
        for s in ("old", "new"):
            n, rev = per[s].get(t, (0, None))
            has_revenue = sides[s].revenue_metric is not None
            entry[f"{s}_customers"] = n
            entry[f"{s}_revenue"] = (rev or 0) if has_revenue else None
            entry[f"{s}_share"] = ((rev or 0) / totals[s] if totals[s] else 0.0) if has_revenue else None
        entry["change"] = (entry["new_share"] - entry["old_share"]
                           if entry["old_share"] is not None and entry["new_share"] is not None else None)
        out[t] = entry
    return {"old_metric": old.revenue_metric, "new_metric": new.revenue_metric,
            "old_total": totals["old"], "new_total": totals["new"], "tiers": out}


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


#: cost key -> (where the service level gives its unit, its label in the cost table)
COST_UNITS = {"cost": ("attributes.cost_per_customer", "Service cost (cost_per_customer)"),
              "discount_given": ("discount", "Discount given (discount × revenue)"),
              "account_managers": ("attributes.accounts_per_manager", "Account managers needed (accounts_per_manager)")}


def _unit(details: dict, attributes: dict, key: str, invalid: dict[str, dict], sl: str, *,
          positive: bool = False) -> float | None:
    """The service level's unit for ``key`` (a number; for ``positive``, above 0), else None (and, when
    something else was given, the given value in ``invalid``)."""
    where = COST_UNITS[key][0]
    container, name = (attributes, where.split(".", 1)[1]) if where.startswith("attributes.") else (details, where)
    if name not in container or container[name] is None:
        return None
    value = _number(container[name])
    if value is None or (positive and value <= 0) or (not positive and value < 0) or math.isnan(value):
        invalid.setdefault(key, {})[sl] = container[name]
        return None
    return value


def _side_costs(conn: sqlite3.Connection, side_name: str, side: Side) -> dict:
    rows = conn.execute(f"SELECT {side_name}_service_level, count(*), sum({side_name}_revenue) FROM {PAIRS} "
                        f"WHERE in_{side_name} GROUP BY 1").fetchall()
    counts = {(sl if sl is not None else NONE): (n, decimal_total(rev)) for sl, n, rev in rows}
    levels: dict[str, dict] = {}
    totals: dict[str, float] = {}
    missing: dict[str, list[str]] = {"cost": [], "discount_given": []}
    invalid: dict[str, dict] = {}
    no_revenue: list[str] = []  # levels giving a discount when the side has no revenue metric to apply it to
    for sl in list(side.service_levels) + [s for s in counts if s not in side.service_levels]:
        n, rev = counts.get(sl, (0, None))
        entry: dict[str, Any] = {"customers": n}
        if side.revenue_metric:
            entry["revenue"] = rev or 0
        if sl == NONE:  # customers without a service level get no service: nothing to cost, nothing missing
            levels[sl] = entry
            continue
        details = side.service_levels.get(sl, {})
        attributes = details.get("attributes") if isinstance(details.get("attributes"), dict) else {}
        cpc = _unit(details, attributes, "cost", invalid, sl)
        if cpc is not None:
            entry["cost"] = decimal_total(cpc * n)
        elif n:
            missing["cost"].append(sl)
        discount = _unit(details, attributes, "discount_given", invalid, sl)
        if discount is not None and side.revenue_metric:
            entry["discount_given"] = decimal_total(discount * (rev or 0))
        elif discount is not None:
            no_revenue.append(sl)
        elif n:
            missing["discount_given"].append(sl)
        # account_manager is free text (any wording, any language): what is counted is where the service
        # level says how many customers one manager looks after; a level without it adds no managers
        # (pooled, self-service), which is not a missing unit
        per_manager = _unit(details, attributes, "account_managers", invalid, sl, positive=True)
        if per_manager is not None:
            manager = details.get("account_manager")
            if isinstance(manager, str) and manager.strip():
                entry["account_manager"] = manager  # who is counted, as the policy calls them
            entry["account_managers"] = math.ceil(n / per_manager)
        levels[sl] = entry
    for key in ("cost", "discount_given", "account_managers"):
        if any(key in e for e in levels.values()):
            totals[key] = decimal_total(sum(e.get(key, 0) for e in levels.values()))
    missing = {k: [sl for sl in v if sl not in invalid.get(k, {})] for k, v in missing.items()}
    return {"revenue_metric": side.revenue_metric, "service_levels": levels, "totals": totals,
            "missing": {k: v for k, v in missing.items() if k in totals and v},
            "invalid": invalid, "discount_without_revenue": no_revenue}


def _difference(new: float, old: float) -> float:
    """new - old to the digits the two totals have (15 significant ones, as decimal_total keeps): the subtraction
    cancels the leading digits, and 6262389.9371 - 5772540.9208 printed 489849.0162999993 in diff --json."""
    if isinstance(new, int) and isinstance(old, int):
        return new - old
    largest = max(abs(new), abs(old))
    if not math.isfinite(largest) or largest == 0:
        return new - old
    return round(new - old, 15 - (math.floor(math.log10(largest)) + 1))


def _costs(conn: sqlite3.Connection, old: Side, new: Side) -> dict:
    o, n = _side_costs(conn, "old", old), _side_costs(conn, "new", new)
    change = {k: _difference(n["totals"][k], o["totals"][k]) for k in ("cost", "discount_given", "account_managers")
              if k in o["totals"] and k in n["totals"]}
    return {"old": o, "new": n, "change": change}


def _service_levels(conn: sqlite3.Connection) -> dict:
    rows = conn.execute(f"SELECT in_old, old_service_level, in_new, new_service_level, count(*) FROM {PAIRS} "
                        f"GROUP BY 1, 2, 3, 4").fetchall()
    merged: dict[tuple[str, str], int] = {}
    for in_old, old, in_new, new, n in rows:
        key = (_label(in_old, old), _label(in_new, new))
        merged[key] = merged.get(key, 0) + n
    transitions = sorted(({"from": a, "to": b, "customers": n} for (a, b), n in merged.items() if a != b),
                         key=lambda t: (-t["customers"], t["from"], t["to"]))
    return {"changed": sum(t["customers"] for t in transitions), "transitions": transitions}


def _changed_sql(f: str) -> str:
    return f"(in_old != in_new OR old_{f} IS NOT new_{f})"


def _customers(conn: sqlite3.Connection) -> dict:
    sums = ", ".join(f"sum({_changed_sql(f)})" for f in FIELDS)
    any_change = " OR ".join(_changed_sql(f) for f in FIELDS)
    row = conn.execute(f"SELECT count(*), sum(in_old AND in_new), sum(in_old AND NOT in_new), sum(in_new AND NOT in_old), "
                       f"{sums}, sum({any_change}) FROM {PAIRS}").fetchone()
    row = [v or 0 for v in row]
    return {"total": row[0], "both": row[1], "only_old": row[2], "only_new": row[3],
            "changed": {**dict(zip(FIELDS, row[4:8])), "any": row[8]}}


def _movers(conn: sqlite3.Connection) -> list[dict]:
    any_change = " OR ".join(_changed_sql(f) for f in FIELDS)
    cols = ", ".join(f"old_{f}, new_{f}" for f in FIELDS)
    out = []
    for row in conn.execute(f"SELECT cid, name, in_old, in_new, {cols} FROM {PAIRS} WHERE {any_change} ORDER BY cid"):
        cid, name, in_old, in_new = row[:4]
        item: dict[str, Any] = {"customer_id": cid, "customer_name": name}
        changed = []
        for i, f in enumerate(FIELDS):
            old, new = row[4 + 2 * i], row[5 + 2 * i]
            item[f] = [old if in_old else ABSENT, new if in_new else ABSENT]
            if in_old != in_new or old != new:
                changed.append(f)
        item["changed"] = changed
        out.append(item)
    return out


@contextmanager
def _side_errors(side: str, overrides: Path | None, both: bool = True):
    """Name the side (``old policy 'base'``) in an error computing it: both sides run the same steps, and
    ``--overrides`` is applied to both, so "unknown tier 'A'" alone does not say which policy lacks it."""
    try:
        yield
    except PolicyError:
        raise  # file:line diagnostics name their file already
    except CrmRulesError as exc:
        hint = exc.hint
        if overrides is not None and "unknown tier" in exc.message:
            also = ("--overrides applies to both policies: every tier it names must be a tier of both" if both else
                    "--overrides applies to the new policy: every tier it names must be one of its tiers")
            hint = f"{hint}; {also}" if hint else also
        raise type(exc)(f"{side}: {exc.message}", hint=hint) from exc


def _refuse_other_date(run: Side, as_of: str | None) -> None:
    """A stored run is compared as of its own date: with another one, every customer whose data changed in
    between would move too, and the diff could not tell what the policy did from what the days did (the run's
    own policy "changed" hundreds of tiers).  The same date, given explicitly, is fine."""
    if as_of is None or as_of == run.as_of:
        return
    raise UsageError(
        f"--as-of {as_of} is not the as-of date of run {run.run_id} ({run.as_of}): with --against-run the new "
        f"policy is graded as of the run's date, so that only the policy differs, not the data",
        hint=f"leave out --as-of (or give --as-of {run.as_of}); to compare policies as of {as_of}, give both "
             f"policy files (crm-rules diff --db DB OLD_POLICY NEW_POLICY --as-of {as_of}); to see what changed "
             f"since the run, apply as of {as_of}, then crm-rules changes")


def diff_policies(db: Path, old_policy: Policy | None, new_policy: Policy, as_of: str | None,
                  against_run: int | None = None, *, list_customers: bool = False,
                  results_db: Path | None = None, overrides: Path | None = None) -> dict:
    """Grades of ``old_policy`` (or of stored run ``against_run``) versus ``new_policy``; see the module doc.

    ``as_of`` None means today; with ``against_run`` it is the run's as-of date, and another date is refused.
    ``results_db`` is where the runs are, when not in ``db`` (``--results-db``).
    """
    if (old_policy is None) == (against_run is None):
        raise UsageError("compare with either an old policy or a stored run (--against-run), not both or neither")
    rc = open_for_run(db, write=False)
    try:
        conn = rc.conn
        try:
            if against_run is not None:
                old = _run_side(rc, against_run, results_db)
                _refuse_other_date(old, as_of)
                date = old.as_of
            else:
                date = as_of or parse_as_of(None)
                with _side_errors(f"old policy {old_policy.name!r}", overrides):
                    old = _copy_computed(rc, old_policy, date, OLD, overrides)  # the same manual decisions on both sides
            with _side_errors(f"new policy {new_policy.name!r}", overrides, both=against_run is None):
                new = _copy_computed(rc, new_policy, date, NEW, overrides)
            _pairs(conn)
        except sqlite3.OperationalError as exc:
            raise RunError(f"could not compare the policies: {exc}") from exc
        result = {
            "as_of": date,
            "old": old.describe(),
            "new": new.describe(),
            "customers": _customers(conn),
            "tiers": _matrix(conn, "tier", old.tiers, new.tiers),
            "subgrades": _matrix(conn, "subgrade", old.subgrades, new.subgrades),
            "stages": _matrix(conn, "stage", old.stages, new.stages),
            "service_levels": _service_levels(conn),
            "revenue_share": _revenue_share(conn, old, new),
            "costs": _costs(conn, old, new),
            "actions": compare_actions(conn, PAIRS, list_customers) if old.has_actions else None,
            "notes": [f"old: {n}" for n in old.notes] + [f"new: {n}" for n in new.notes],
        }
        if not old.has_actions:
            result["notes"].append(f"run {old.run_id}'s results have no actions table (crm_actions): they were "
                                   f"written before crm-rules stored actions, so actions are not compared")
        if old.graded is not None and not same_file(old.graded, db):
            # a results database serving several data databases: the run's customers and data are another file's
            result["notes"].append(f"run {old.run_id} graded {old.graded} and the new policy grades {db}: customers "
                                   f"in only one of them count as absent on the other side, and the others' grades "
                                   f"change with their data as well as with the policy")
        if old.revenue_metric != new.revenue_metric:
            result["notes"].append(
                f"the revenue metric differs: old {old.revenue_metric or '(none)'}, new {new.revenue_metric or '(none)'}; "
                f"revenue shares and discounts given are measured with each side's own metric, so their change "
                f"is partly the change of metric")
        elif old.revenue_period and new.revenue_period and old.revenue_period != new.revenue_period:
            result["notes"].append(
                f"the revenue metric {new.revenue_metric} reads other rows: old {old.revenue_period}, new "
                f"{new.revenue_period}; revenue shares and discounts given are measured with each side's own "
                f"definition, so their change is partly the change of period")
        if list_customers:
            result["movers"] = _movers(conn)
        return result
    finally:
        rc.close()


# ---- terminal output ---------------------------------------------------------

def _arrow(pair: list) -> str:
    old, new = (NONE if v is None else str(v) for v in pair)
    return old if old == new else f"{old} → {new}"


MOVERS_FULL_WIDTH = 120  # terminal columns the movers table needs to show customers' names readably


def print_diff(console, result: dict, limit: int = 50) -> None:
    """Rich tables for a :func:`diff_policies` result; ``limit`` rows of movers and transitions (0 = all)."""
    from .user_text import escape

    from .render import fmt_number, pct
    from .terminal_table import print_indented, print_listing, titled_table, words_fit

    def table(title: str, *columns: str, whole: tuple[str, ...] = ()):
        """Column names escaped: tier and sub-grade names are the policy's text."""
        return titled_table(title, *(escape(c) for c in columns), whole=tuple(escape(c) for c in whole))

    def name(side: dict) -> str:
        what = f"run {side['run_id']} ({side['policy']})" if side["source"] == "run" else side["policy"]
        return f"{escape(what)} (sha256 {side['policy_sha256'][:12]})"

    c = result["customers"]
    print_indented(console, f"[b]{name(result['old'])}[/b] → [b]{name(result['new'])}[/b] as of {result['as_of']}: "
                            f"{c['total']:,} customers; {c['changed']['tier']:,} change tier, {c['changed']['stage']:,} "
                            f"stage, {c['changed']['service_level']:,} service level{headline(result.get('actions'))}")
    if c["only_old"] or c["only_new"]:
        print_indented(console, f"{c['only_old']:,} customer(s) only in the old run, {c['only_new']:,} only in the "
                                f"data now")
    for key, title in (("tiers", "Tiers, old → new"), ("subgrades", "Sub-grades, old → new"),
                       ("stages", "Lifecycle stages, old → new")):
        m = result[key]
        if key != "tiers" and (not m["changed"] or m["from"] == m["to"] == [NONE]):
            if m["from"] != [NONE] or m["to"] != [NONE]:
                console.print(f"{title.split(',')[0]}: no customer changes", highlight=False)
            continue
        # the ids heading the columns never break ("standar" / "d"): where they do not fit, the grid goes row by row
        grid = table(title, "old \\ new", *[t + ">" for t in m["to"]], "total>", whole=("old \\ new", *m["to"]))
        for a in m["from"]:
            row = m["matrix"][a]
            grid.add_row(escape(a), *[("[b]" if a != b and row[b] else "") + fmt_number(row[b]) + ("[/b]" if a != b and row[b] else "")
                                      for b in m["to"]], fmt_number(sum(row.values())))
        console.print(grid)
    sl = result["service_levels"]
    if sl["transitions"]:
        t = table(f"Service level changes: {sl['changed']:,} customers", "From", "To", "Customers>")
        shown = sl["transitions"] if limit == 0 else sl["transitions"][:limit]
        for tr in shown:
            t.add_row(escape(tr["from"]), escape(tr["to"]), fmt_number(tr["customers"]))
        console.print(t)
        if len(shown) < len(sl["transitions"]):
            console.print(f"{len(sl['transitions']) - len(shown):,} more; use --limit 0 or --format json", highlight=False)
    else:
        console.print("Service levels: no customer changes", highlight=False)
    rs = result["revenue_share"]
    metric = (rs["old_metric"] or "no revenue metric" if rs["old_metric"] == rs["new_metric"]
              else f"{rs['old_metric'] or 'none'} → {rs['new_metric'] or 'none'}")

    def share_table(customers: tuple[str, str]):
        t = table(f"Customers and revenue share per tier ({metric})", "Tier", *customers, "Old share>", "New share>",
                  "Change>", whole=("Tier", "Change"))  # "-80.0 pp" is one figure
        for tier, e in rs["tiers"].items():
            change = "—" if e["change"] is None else f"{e['change'] * 100:+.1f} pp"
            t.add_row(escape(tier), fmt_number(e["old_customers"]), fmt_number(e["new_customers"]),
                      pct(e["old_share"]), pct(e["new_share"]), change)
        return t
    # at 60 columns "customers" broke in the headings ("customer" / "s") and "-80.0 pp" over two lines: the
    # headings are shortened, as apply's "Rev. share" is
    t = share_table(("Old customers>", "New customers>"))
    console.print(t if words_fit(console, t) else share_table(("Old cust.>", "New cust.>")))
    costs = result["costs"]
    keys = [k for k in ("cost", "discount_given", "account_managers")
            if k in costs["old"]["totals"] or k in costs["new"]["totals"]]
    labels = {k: label for k, (_, label) in COST_UNITS.items()}
    # discounts are a fraction of each side's revenue metric: name it, as the revenue share table does
    labels["discount_given"] = f"Discount given (discount × {metric})"
    if keys:
        # amounts never break: at 60 columns "3,772,306.03" came out as "3,772,306.0" over "3"
        # and the measures' units never break ("(cost_per_cu" / "stomer)"): where they leave the measures too little
        # room (60 columns), the table is shown row by row
        def cost_table(whole: tuple[str, ...]):
            t = table("Cost of service levels", "Measure", "Old>", "New>", "Change>", whole=whole)
            for k in keys:
                old, new, change = costs["old"]["totals"].get(k), costs["new"]["totals"].get(k), costs["change"].get(k)
                t.add_row(escape(labels[k]), fmt_number(old), fmt_number(new), "—" if change is None else
                          f"{change:+,.2f}" if isinstance(change, float) else f"{change:+,}")
            return t
        t = cost_table(("Old", "New", "Change"))
        console.print(t if words_fit(console, t) else cost_table(("Measure", "Old", "New", "Change")))
    else:
        print_indented(console, "Costs: no service level gives unit costs (attributes.cost_per_customer, discount, "
                                "attributes.accounts_per_manager)")
    for side in ("old", "new"):
        for k, levels in costs[side].get("missing", {}).items():
            measure = labels[k].split(" (")[0]
            print_indented(console, f"note: {side} service levels without {COST_UNITS[k][0]}: "
                                    f"{escape(', '.join(levels))} (their customers are not in {measure})")
        if costs[side].get("discount_without_revenue"):
            print_indented(console, f"note: {side}: discount given not computed for "
                                    f"{escape(', '.join(costs[side]['discount_without_revenue']))}: the policy has no "
                                    f"revenue metric to apply it to (summary.revenue)")
        for k, given in costs[side].get("invalid", {}).items():
            wanted = "a number above 0" if k == "account_managers" else "a number, 0 or more"
            for sl, value in given.items():
                print_indented(console, f"note: {side} service level {escape(sl)}: {COST_UNITS[k][0]} "
                                        f"{escape(repr(value))} is not {wanted}; not used")
    print_actions(console, result.get("actions"))
    movers = result.get("movers")
    if movers is not None and not movers:  # a table of no rows said nothing the headline had not
        console.print("Customers whose grades change: none", highlight=False)
    elif movers is not None:
        # Below MOVERS_FULL_WIDTH the names are left out, as `changes` and `actions` do: with them, 80 columns (a
        # pipe, a cron log) broke ids inside the word ("standard-win/back", "C00000/1")
        grades = ("Tier", "Sub-grade", "Stage", "Service level")
        print_listing(console, f"Customers whose grades change: {len(movers):,}", ("Customer", "Name") + grades,
                      movers, lambda m: {"Customer": escape(str(m["customer_id"])),
                                         "Name": escape(m["customer_name"] or ""),
                                         **{g: escape(_arrow(m[f])) for g, f in zip(grades, FIELDS)}},
                      limit=limit, whole=("Customer",), optional=("Name",), full_width=MOVERS_FULL_WIDTH,
                      json_hint="--format json")
    print_action_customers(console, result.get("actions"), limit)
    for note in result["notes"]:
        print_indented(console, f"note: {escape(note)}")
