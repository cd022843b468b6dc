"""Runs over time: the list of runs, a customer's history, what changed between runs, and pruning.

Runs are immutable.  A run is written once, in one transaction (``runner.write_run``), and nothing
in crm-rules updates or deletes a result row afterwards, with one exception: :func:`prune`,
which deletes whole runs and only when the user asks for it (``crm-rules prune --keep N``).
No other command prunes, whatever the number of runs.  Prune records each run it deletes in
``crm_pruned_runs``, so that the oldest run it kept is not taken for the policy's first
(:func:`pruned_runs`).

Every reader here opens the database read-only.  Transitions come from the ``crm_transitions``
view (see ``results_store.VIEWS``).  If the results were last written by an older crm-rules
(schema 2, before the view existed), a read-only connection cannot add the view to the file,
so the same definition is created as a TEMP view on the connection instead.  The next
``apply`` adds the view to the file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path

from .database import connect, results_only_authorizer
from .errors import DataError, UsageError
from .export import resolve_run, results_elsewhere
from .expr_types import did_you_mean
from .results_store import LATEST_FIRST, RUN_ORDER, VIEWS, ensure_schema, require_results, stored_version

# Tables holding a run's rows (by run_id), children first; crm_runs is deleted last.
RUN_TABLES = ("crm_metrics", "crm_assignments", "crm_definitions", "crm_actions", "crm_errors")

RUN_COLUMNS = ("run_id", "policy_name", "policy_version", "policy_sha256", "as_of", "started_at", "finished_at",
               "status", "customers", "error")
HISTORY_COLUMNS = ("run_id", "policy_name", "policy_sha256", "as_of", "customer_id", "customer_name", "tier",
                   "tier_rule", "subgrade", "subgrade_rule", "stage", "stage_rule", "service_level")
# A change's direction -> its key in changes()["totals"]; also the order of the changed-customers list.  The first
# four and the last two are crm_transitions.direction; "sub-grade" (same tier and stage, another sub-grade) and
# "service level" (only the service level changed) are the changes the view leaves out, added by changes().  The
# view's "same tier" is a customer whose tier stayed and whose stage changed: "changed stage only", stage_only.
DIRECTIONS = {"upgrade": "upgrades", "downgrade": "downgrades", "unranked": "unranked", "same tier": "stage_only",
              "sub-grade": "subgrade_only", "service level": "service_level_only", "new": "new", "removed": "removed"}
# totals["same_tier"] was the key of stage_only until the report's "kept their tier" (kept_tier: every customer whose
# tier stayed, whatever else changed) showed it read as that; scripts may read it, so it stays, always equal to it.
COMPATIBLE_TOTALS = {"same_tier": "stage_only"}
# The totals that count again customers the directions and "unchanged" (which add up to both runs' customers) count.
RECOUNTED_TOTALS = ("stage_changes", "kept_tier", *COMPATIBLE_TOTALS)
SHORT_SHA = 12
# Names listed in a hint (policies, actions, owners) before the rest are only counted.
LISTED = 10

# Every customer of run :rid whose grades differ from run :pid, the previous successful run of its policy.  The
# tier and stage changes, new and removed customers come from crm_transitions (documented, what BI tools read), with
# the service levels added; the view leaves out customers whose tier and stage stayed while their sub-grade or
# service level changed, so the second half adds them, looked up by the primary keys as the view does.  The deciding
# rules are this run's, all three (the view has no subgrade_rule: it comes from the run's row, as the service level);
# a removed customer has none.  tier_rule_before is the previous run's: a tier that changed because a manual override
# began (tier_rule 'override') or ended (tier_rule_before 'override') is the business's decision, not the data's.
CHANGES_SQL = """
SELECT t.customer_id, t.customer_name, t.direction, t.tier_before, t.tier_after, t.subgrade_before, t.subgrade_after,
       t.stage_before, t.stage_after, p.service_level AS service_level_before, a.service_level AS service_level_after,
       t.tier_rule, a.subgrade_rule, t.stage_rule, p.tier_rule AS tier_rule_before
FROM {view} AS t
LEFT JOIN crm_assignments AS p ON p.run_id = :pid AND p.customer_id = t.customer_id
LEFT JOIN crm_assignments AS a ON a.run_id = :rid AND a.customer_id = t.customer_id
WHERE t.run_id = :rid
UNION ALL
SELECT a.customer_id, a.customer_name,
       CASE WHEN p.subgrade IS NOT a.subgrade THEN 'sub-grade' ELSE 'service level' END,
       p.tier, a.tier, p.subgrade, a.subgrade, p.stage, a.stage, p.service_level, a.service_level, a.tier_rule,
       a.subgrade_rule, a.stage_rule, p.tier_rule
FROM crm_assignments AS a JOIN crm_assignments AS p ON p.run_id = :pid AND p.customer_id = a.customer_id
WHERE a.run_id = :rid AND p.tier = a.tier AND p.stage IS a.stage
  AND (p.subgrade IS NOT a.subgrade OR p.service_level IS NOT a.service_level)"""


def _open(db: Path, option: str = "--db") -> sqlite3.Connection:
    conn = connect(db, mode="ro", option=option)
    try:
        require_results(conn, db)
    except UsageError:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def _policy_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT policy_name FROM crm_runs ORDER BY policy_name")]


def _check_policy(conn: sqlite3.Connection, db: Path, policy: str | None) -> None:
    """A --policy filter that matches no run is a typo, not an empty result."""
    if policy is None:
        return
    names = _policy_names(conn)
    if policy not in names:
        close = did_you_mean(policy, names)  # a typo, else the runs may be in another database
        raise UsageError(f"{db}: no runs of policy {policy!r}{close}", hint=f"policies with runs here: {listing(names)}"
                         + ("" if close else f"; {results_elsewhere('--db', f'the runs of {policy!r}')}"))


def listing(names: list[str]) -> str:
    """Names for a hint: the first LISTED of them and how many more, so that thousands of owners stay one line."""
    shown = ", ".join(map(str, names[:LISTED])) or "(none)"
    return shown + (f", ... ({len(names):,} in all)" if len(names) > LISTED else "")


def _transitions(conn: sqlite3.Connection) -> str:
    """The name to query transitions from: this version's definition as a TEMP view, which hides the stored one
    (absent, or of an older schema until the next run migrates it: they ordered runs by id)."""
    conn.execute(VIEWS["crm_transitions"].format(s="temp."))
    return "crm_transitions"


def _previous_run(conn: sqlite3.Connection, run: sqlite3.Row) -> sqlite3.Row | None:
    """The policy's successful run just before ``run`` in RUN_ORDER: of the latest date before it, or of the same
    date and run before it."""
    return conn.execute(
        f"SELECT * FROM crm_runs WHERE policy_name = ? AND status = 'succeeded' "
        f"AND (as_of < ? OR (as_of = ? AND run_id < ?)) ORDER BY {LATEST_FIRST} LIMIT 1",
        (run["policy_name"], run["as_of"], run["as_of"], run["run_id"])).fetchone()


def newer_failures(db: Path, run_id: int, policy: str | None = None) -> dict | None:
    """The failed runs that would have been shown instead of run ``run_id`` had they succeeded, or None.

    A command without ``--run`` shows the latest successful run (of ``policy``, else of any policy): when last
    night's run failed, that is yesterday's, and the user must be told.  These are the failed runs after it in
    RUN_ORDER among the same runs: ``{"run_id", "policy_name", "as_of"}`` of the latest of them, ``count`` of
    them, and ``shown_as_of``, the date of run ``run_id``.
    A failed backfill (an earlier date) is not one: it would not have been shown either.
    """
    conn = _open(db)
    try:
        run = conn.execute("SELECT as_of FROM crm_runs WHERE run_id = ?", (run_id,)).fetchone()
        sql = "FROM crm_runs WHERE status = 'failed' AND (as_of > :as_of OR (as_of = :as_of AND run_id > :rid))"
        args = {"as_of": run["as_of"], "rid": run_id, "policy": policy}
        if policy is not None:
            sql += " AND policy_name = :policy"
        count = conn.execute(f"SELECT count(*) {sql}", args).fetchone()[0]
        if not count:
            return None
        latest = conn.execute(f"SELECT run_id, policy_name, as_of {sql} ORDER BY {LATEST_FIRST} LIMIT 1", args).fetchone()
        return dict(latest) | {"count": count, "shown_as_of": run["as_of"]}
    finally:
        conn.close()


def pruned_runs(conn: sqlite3.Connection, policy: str, before, after=None) -> int:
    """Successful runs of ``policy`` that prune deleted from before run ``before`` (and after run ``after``), in RUN_ORDER.

    ``before`` and ``after`` are runs (anything with ``as_of`` and ``run_id``).  Without them the oldest kept run
    looked like the policy's first run, and a run whose previous runs were pruned like a run with nothing before it.
    Results that were never pruned by a crm-rules recording it have no crm_pruned_runs table: 0.
    """
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crm_pruned_runs'").fetchone():
        return 0
    sql = ("SELECT count(*) FROM crm_pruned_runs WHERE policy_name = ? AND status = 'succeeded' "
           "AND (as_of < ? OR (as_of = ? AND run_id < ?))")
    args = [policy, before["as_of"], before["as_of"], before["run_id"]]
    if after is not None:
        sql += " AND (as_of > ? OR (as_of = ? AND run_id > ?))"
        args += [after["as_of"], after["as_of"], after["run_id"]]
    return conn.execute(sql, args).fetchone()[0]


def made_before(conn: sqlite3.Connection, run) -> int:
    """Successful runs of ``run``'s policy made before it (lower run ids) that grade a later date.

    For a run without a previous run these are all the policy's earlier runs: it is not the policy's first run but
    a backfill of its earliest date, and "the first successful run of policy base" misled about run 19 of 19.
    """
    return conn.execute("SELECT count(*) FROM crm_runs WHERE policy_name = ? AND status = 'succeeded' AND run_id < ? "
                        "AND as_of > ?", (run["policy_name"], run["run_id"], run["as_of"])).fetchone()[0]


def list_runs(db: Path, policy: str | None = None) -> list[dict]:
    """Every run (failed ones too), oldest first, optionally of one policy."""
    conn = _open(db)
    try:
        _check_policy(conn, db, policy)
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM crm_runs"
        args: list = []
        if policy is not None:
            sql, args = sql + " WHERE policy_name = ?", [policy]
        return [{c: r[c] for c in RUN_COLUMNS} | {"policy_sha256_short": (r["policy_sha256"] or "")[:SHORT_SHA],
                                                   "overrides": _overrides_of(r["counts"])}
                for r in conn.execute(sql.replace(" FROM", ", counts FROM", 1) + " ORDER BY run_id", args)]
    finally:
        conn.close()


def _overrides_of(counts: str | None) -> int | None:
    """Customers whose tier a manual override set in the run (``counts["overrides"]``), None for a failed run."""
    try:
        found = (json.loads(counts) if counts else {}).get("overrides")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, int) else None


def reruns(items: list[dict]) -> list[list[dict]]:
    """Successful runs that graded the same date with the same policy content, in RUN_ORDER, each group of two or more:
    in a list of runs they read alike but for their ids (a re-run after new data came in, one with overrides), and
    only the last of each group stands for its date in crm_current and in what the next run is compared with."""
    groups: dict[tuple, list[dict]] = {}
    for r in items:
        if r["status"] == "succeeded":
            groups.setdefault((r["policy_name"], r["policy_sha256"], r["as_of"]), []).append(r)
    return [sorted(g, key=lambda r: r["run_id"]) for g in groups.values() if len(g) > 1]


def _id_candidates(customer_id: str) -> list:
    """The id as typed, and as an integer when it is one: ids keep the source column's type."""
    candidates: list = [customer_id]
    if re.fullmatch(r"\s*-?\d{1,18}\s*", customer_id):
        candidates.append(int(customer_id))
    return candidates


def customer_history(db: Path, customer_id: str, policy: str | None = None) -> list[dict]:
    """The customer's grades in every successful run they appear in, oldest first."""
    conn = _open(db)
    try:
        _check_policy(conn, db, policy)
        ids = _id_candidates(customer_id)
        sql = (f"SELECT {', '.join('r.' + c if c in ('policy_name', 'policy_sha256', 'as_of') else 'a.' + c for c in HISTORY_COLUMNS)} "
               f"FROM crm_runs AS r JOIN crm_assignments AS a ON a.run_id = r.run_id "
               f"AND a.customer_id IN ({', '.join('?' * len(ids))}) WHERE r.status = 'succeeded'")
        args = list(ids)
        if policy is not None:
            sql += " AND r.policy_name = ?"
            args.append(policy)
        rows = [dict(r) for r in conn.execute(sql + " ORDER BY r.as_of, r.run_id", args)]  # RUN_ORDER
        if not rows:
            raise _not_found(conn, db, customer_id, policy)
        return rows
    finally:
        conn.close()


def history_pruned(db: Path, history: list[dict]) -> dict[str, int]:
    """Per policy of a customer's ``history``: its successful runs before the customer's first row of it that prune
    deleted.  Where there are any, the first row is not where the customer's history began."""
    conn = _open(db)
    try:
        firsts: dict[str, dict] = {}
        for row in history:
            firsts.setdefault(row["policy_name"], row)
        return {name: pruned_runs(conn, name, row) for name, row in firsts.items()}
    finally:
        conn.close()


def history_absences(db: Path, history: list[dict]) -> dict[str, list[dict]]:
    """Per policy of a customer's ``history``: the policy's successful runs after the customer's first row of it
    that do not grade the customer (``{"run_id", "as_of"}``, in RUN_ORDER).

    The history lists only the runs a customer is in: one removed from the data ended with their last grade, which
    read as their grade today, and one missing from a run in between was compared with a run months before it.
    """
    conn = _open(db)
    try:
        firsts: dict[str, dict] = {}
        for row in history:
            firsts.setdefault(row["policy_name"], row)
        ids = _id_candidates(str(history[0]["customer_id"]))
        return {name: [dict(r) for r in conn.execute(
            f"SELECT r.run_id, r.as_of FROM crm_runs AS r WHERE r.policy_name = ? AND r.status = 'succeeded' "
            f"AND (r.as_of > ? OR (r.as_of = ? AND r.run_id > ?)) AND NOT EXISTS (SELECT 1 FROM crm_assignments AS a "
            f"WHERE a.run_id = r.run_id AND a.customer_id IN ({', '.join('?' * len(ids))})) ORDER BY {RUN_ORDER}",
            (name, first["as_of"], first["as_of"], first["run_id"], *ids))]
            for name, first in firsts.items()}
    finally:
        conn.close()


def _not_found(conn: sqlite3.Connection, db: Path, customer_id: str, policy: str | None) -> UsageError:
    """Why a customer has no history, and where to look instead.

    With --policy the customer may well exist, in another policy's runs: saying so beats suggesting an id,
    which used to suggest the very id that was typed (found in the latest run of any policy)."""
    of = f" of policy {policy!r}" if policy else ""
    message = f"customer {customer_id!r} not found in any successful run{of} in {db}"
    if policy is None:
        return UsageError(message, hint=_id_hint(conn, customer_id, db, None))
    if not conn.execute("SELECT 1 FROM crm_runs WHERE policy_name = ? AND status = 'succeeded'", (policy,)).fetchone():
        return UsageError(f"policy {policy!r} has no successful run in {db}: there is no history of any customer",
                          hint=f"every run of it failed; `crm-rules runs --db {db} --policy {policy}` says why")
    ids = _id_candidates(customer_id)
    found: dict[str, list[int]] = {}
    for name, run_id in conn.execute(
            f"SELECT r.policy_name, r.run_id FROM crm_runs AS r JOIN crm_assignments AS a ON a.run_id = r.run_id "
            f"AND a.customer_id IN ({', '.join('?' * len(ids))}) WHERE r.status = 'succeeded' "
            f"ORDER BY r.policy_name, r.run_id", ids):
        found.setdefault(name, []).append(run_id)
    if not found:
        return UsageError(message, hint=_id_hint(conn, customer_id, db, policy))
    where = ", ".join(f"{name!r} ({run_list_text(run_ids)})" for name, run_ids in found.items())
    return UsageError(message, hint=f"it appears only in runs of polic{'y' if len(found) == 1 else 'ies'} {where}: "
                                    f"leave out --policy, or use --policy {next(iter(found))}")


def run_list_text(run_ids: list[int]) -> str:
    """'run 4', 'runs 4, 5', or '12 runs, 4 to 57' when listing them all would not help."""
    if len(run_ids) == 1:
        return f"run {run_ids[0]}"
    if len(run_ids) <= 5:
        return f"runs {', '.join(map(str, run_ids))}"
    return f"{len(run_ids)} runs, {run_ids[0]} to {run_ids[-1]}"


def _id_hint(conn: sqlite3.Connection, customer_id: str, db: Path, policy: str | None) -> str:
    """A near id (another case, spaces around it) in the latest successful run (of the policy), or what ids look like."""
    sql, args = "SELECT run_id FROM crm_runs WHERE status = 'succeeded'", []
    if policy is not None:
        sql, args = sql + " AND policy_name = ?", [policy]
    found = conn.execute(f"{sql} ORDER BY {LATEST_FIRST} LIMIT 1", args).fetchone()  # not a backfill run last
    if found is None:
        return "there are no successful runs here yet"
    latest = found[0]
    near = conn.execute("SELECT customer_id FROM crm_assignments WHERE run_id = ? AND CAST(customer_id AS TEXT) = ? "
                        "COLLATE NOCASE AND CAST(customer_id AS TEXT) != ? LIMIT 1",
                        (latest, customer_id.strip(), customer_id)).fetchone()
    if near is not None:
        return f"did you mean {near[0]!r}? ids are matched exactly"
    from .id_suggestions import by_name, named, near_ids, said  # the ids one typo away, looked up by the run's primary key

    run_rows = f"(SELECT customer_id, customer_name FROM crm_assignments WHERE run_id = {int(latest)})"
    if close := near_ids(conn, run_rows, "customer_id", customer_id, "customer_name"):
        return said(close)
    if names := by_name(conn, run_rows, "customer_id", "customer_name", customer_id):
        return named(customer_id, names, "crm-rules history")
    sample = conn.execute("SELECT customer_id FROM crm_assignments WHERE run_id = ? ORDER BY customer_id LIMIT 1",
                          (latest,)).fetchone()
    example = f" (ids look like {sample[0]!r})" if sample else ""
    if policy is None:
        return f"`crm-rules export --db {db}` lists the customers of the latest run{example}"
    return f"`crm-rules export --db {db} --run {latest}` lists the customers of the latest run of {policy!r}{example}"


def changes(db: Path, run_id: int | None = None, policy: str | None = None) -> dict:
    """What changed in a run (default: the latest successful run) since the previous successful run of its policy.

    ``changes`` lists every customer whose tier, sub-grade, stage or service level changed, and the new and
    removed ones.  ``totals`` counts them by direction (the keys of DIRECTIONS: a sub-grade or service level
    that changed under the same tier and stage is a change too, not "unchanged"), plus ``stage_changes``
    (customers in both runs whose stage changed, whatever their tier did) and ``unchanged`` (customers in both
    runs with all four grades the same), so that the directions and ``unchanged`` add up to the customers of
    both runs; ``kept_tier`` (customers in both runs whose tier stayed, what the report calls "kept their
    tier") and ``same_tier`` (the old name of ``stage_only``, see COMPATIBLE_TOTALS) count some of them again.  ``matrix`` has one entry per
    (tier before, tier after) pair with its number of customers, unchanged pairs included; ``from`` is
    None for new customers and ``to`` None for removed ones, so the counts add up to both runs' sizes.
    ``pruned_runs`` counts the policy's successful runs between the two (before the run, when there is no
    previous run) that ``prune`` deleted: a run without a previous one is its policy's first only without them,
    and without ``made_before`` (runs of later dates made before it: it is then a backfill of the earliest date).
    Each change has this run's deciding rules and ``tier_rule_before``, the previous run's tier rule, so that a
    move a manual override made (or undid, when it ended) can be told from a move of the data.
    """
    conn = _open(db)
    try:
        _check_policy(conn, db, policy)
        run = resolve_run(conn, run_id, policy)
        rid = run["run_id"]
        prev = _previous_run(conn, run)
        tiers = [r[0] for r in conn.execute(
            "SELECT id FROM crm_definitions WHERE run_id = ? AND kind = 'tier' ORDER BY position, id", (rid,))]
        result = {
            "run_id": rid, "policy_name": run["policy_name"], "policy_sha256": run["policy_sha256"], "as_of": run["as_of"],
            "customers": conn.execute("SELECT count(*) FROM crm_assignments WHERE run_id = ?", (rid,)).fetchone()[0],
            "previous_run_id": None, "previous_as_of": None, "previous_policy_sha256": None, "policy_changed": False,
            "source_db": run["source_db"], "previous_source_db": None,
            "previous_customers": 0, "totals": _totals({k: 0 for k in DIRECTIONS.values()} | {"stage_changes": 0,
                                                                                               "unchanged": 0}, []),
            "tiers": tiers, "previous_only_tiers": [], "matrix": [], "changes": [],
            "pruned_runs": pruned_runs(conn, run["policy_name"], run, prev), "made_before": 0,
        }
        if prev is None:
            result["made_before"] = made_before(conn, run)
            return result
        pid = prev["run_id"]
        result.update(previous_run_id=pid, previous_as_of=prev["as_of"], previous_policy_sha256=prev["policy_sha256"],
                      policy_changed=prev["policy_sha256"] != run["policy_sha256"], previous_source_db=prev["source_db"],
                      previous_customers=conn.execute("SELECT count(*) FROM crm_assignments WHERE run_id = ?",
                                                      (pid,)).fetchone()[0])
        rows = [dict(r) for r in conn.execute(CHANGES_SQL.format(view=_transitions(conn)), {"rid": rid, "pid": pid})]
        order = {d: i for i, d in enumerate(DIRECTIONS)}
        rows.sort(key=lambda r: (order.get(r["direction"], len(order)), _sort_key(r["customer_id"])))
        result["changes"] = rows
        totals = result["totals"]
        totals.update(Counter(DIRECTIONS[r["direction"]] for r in rows))
        totals["stage_changes"] = sum(1 for r in rows if r["direction"] not in ("new", "removed")
                                      and r["stage_before"] != r["stage_after"])
        pairs = conn.execute(
            "SELECT p.tier, a.tier, count(*) "
            "FROM crm_assignments AS a JOIN crm_assignments AS p ON p.run_id = ? AND p.customer_id = a.customer_id "
            "WHERE a.run_id = ? GROUP BY p.tier, a.tier", (pid, rid)).fetchall()
        # CHANGES_SQL lists every customer of both runs with a grade changed: the others are unchanged
        changed = sum(1 for r in rows if r["direction"] not in ("new", "removed"))
        totals["unchanged"] = sum(n for _, _, n in pairs) - changed
        counts = {(before, after): n for before, after, n in pairs}
        if totals["new"]:
            counts.update(Counter((None, r["tier_after"]) for r in rows if r["direction"] == "new"))
        if totals["removed"]:
            counts.update(Counter((r["tier_before"], None) for r in rows if r["direction"] == "removed"))
        # Tiers this run defines, in their order; then tiers only the previous run had, in its order.
        old = [r[0] for r in conn.execute("SELECT id FROM crm_definitions WHERE run_id = ? AND kind = 'tier' "
                                          "ORDER BY position, id", (pid,)) if r[0] not in tiers]
        seen = {t for pair in counts for t in pair if t is not None}
        rank = {t: i for i, t in enumerate(tiers + old + sorted(seen - set(tiers) - set(old)))}
        result["tiers"] = list(rank)
        result["previous_only_tiers"] = old  # renamed or dropped: a row of the matrix, never a column
        last = len(rank)
        result["matrix"] = [{"from": f, "to": t, "customers": n} for (f, t), n in sorted(
            counts.items(), key=lambda kv: (rank.get(kv[0][0], last), rank.get(kv[0][1], last)))]
        result["totals"] = _totals(totals, result["matrix"])
        return result
    finally:
        conn.close()


def _totals(totals: dict, matrix: list[dict]) -> dict:
    """``totals`` with ``kept_tier`` (the matrix's diagonal) and the keys kept for compatibility, each after its own."""
    kept = sum(m["customers"] for m in matrix if m["from"] is not None and m["from"] == m["to"])
    out = {}
    for key, value in (totals | {"kept_tier": kept}).items():
        if key in COMPATIBLE_TOTALS:
            continue  # set from the key it is the old name of
        out[key] = value
        out.update({old: value for old, new in COMPATIBLE_TOTALS.items() if new == key})
    return out


def _sort_key(value) -> tuple:
    """Customer ids may be integers or text (the source column's type); sort numbers first, like SQLite."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def prune(db: Path, keep: int, policy: str | None = None, dry_run: bool = False) -> dict:
    """Delete old runs, explicitly: per policy, keep the newest ``keep`` successful runs and every run after the oldest of them.

    Newest means the latest as-of dates, and of two runs of the same date the later one: a backfill (an
    earlier as-of date graded after later ones) is not what "keep the newest" should keep, and counting by
    run id used to keep it and delete the latest dates.  Runs of a policy older than its oldest kept
    successful run (by as-of date, then run id) are deleted, failed ones included; failed runs after it
    stay (they belong to the kept period).  A policy without a successful run
    keeps all of its runs.  With ``policy``, only that policy's runs are considered.  All rows of the
    deleted runs go (crm_assignments, crm_definitions, crm_actions, crm_errors, crm_runs), and so do
    crm_policies documents that no remaining run uses, in one transaction: all or nothing; each deleted
    run is recorded in crm_pruned_runs (its id, policy, as-of date, status).  Run ids
    are never reused (crm_runs is AUTOINCREMENT).  ``dry_run`` reports what would go and changes nothing.
    Nothing else in crm-rules ever calls this.

    Results written by a newer crm-rules are refused, as ``apply`` refuses them (the same check): that version
    may keep a run's rows in tables this one does not know, which deleting the runs would leave dangling.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise UsageError(f"--keep {keep!r}: must be a whole number of at least 1",
                         hint="--keep N keeps each policy's newest N successful runs; to see what would go, add --dry-run")
    conn = connect(db, mode="ro" if dry_run else "rw")
    try:
        require_results(conn, db)
        _check_policy(conn, db, policy)
        if dry_run:
            stored_version(conn)  # apply's check, read-only: a dry run refuses a newer crm-rules' tables too
        else:
            conn.set_authorizer(results_only_authorizer("main"))  # prune can only ever touch crm_ tables
            conn.execute("BEGIN IMMEDIATE")  # decide and delete under the write lock: a concurrent run is seen or waits
        try:
            if not dry_run:
                ensure_schema(conn)  # apply's check: refuses a newer schema (and brings an older one up to date)
            result = _prune(conn, keep, policy, dry_run)
            if not dry_run:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result
    except sqlite3.Error as exc:  # locked, read-only, full disk, a trigger of the user's: nothing was deleted
        raise DataError(f"{db}: could not prune: {exc}; nothing was deleted", hint=_hint(str(exc))) from None
    finally:
        conn.close()


def _hint(text: str) -> str | None:
    if "locked" in text or "busy" in text:
        return ("another program is writing to the database, or reading it in an open transaction (a DB browser, "
                "a `sqlite3` shell after BEGIN) when it is not in WAL mode; run again when it is done")
    if "readonly" in text or "read-only" in text:
        return "the database file or its folder is read-only"
    return None


def _prune(conn: sqlite3.Connection, keep: int, policy: str | None, dry_run: bool) -> dict:
    names = [policy] if policy is not None else _policy_names(conn)
    per_policy, doomed = [], []
    for name in names:
        runs = conn.execute("SELECT run_id, status, as_of FROM crm_runs WHERE policy_name = ? "
                            f"ORDER BY {LATEST_FIRST}", (name,)).fetchall()
        kept = [(r[2], r[0]) for r in runs if r[1] == "succeeded"][:keep]
        gone = sorted(r[0] for r in runs if kept and (r[2], r[0]) < kept[-1])
        per_policy.append({"policy_name": name, "kept_runs": sorted(run_id for _, run_id in kept), "deleted_runs": gone})
        doomed += gone
    doomed.sort()
    ids = "(SELECT value FROM json_each(:ids))"
    params = {"ids": json.dumps(doomed)}
    tables = [t for t in RUN_TABLES
              if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (t,)).fetchone()]
    # Policy documents used only by the doomed runs.
    orphans = [r[0] for r in conn.execute(
        f"SELECT DISTINCT policy_sha256 FROM crm_runs WHERE run_id IN {ids} AND policy_sha256 NOT IN "
        f"(SELECT policy_sha256 FROM crm_runs WHERE run_id NOT IN {ids}) "
        f"AND policy_sha256 IN (SELECT sha256 FROM crm_policies) ORDER BY policy_sha256", params)]
    if not dry_run:  # before crm_runs loses them: what was deleted, for pruned_runs
        conn.execute("INSERT OR REPLACE INTO crm_pruned_runs (run_id, policy_name, as_of, status, pruned_at) "
                     f"SELECT run_id, policy_name, as_of, status, :at FROM crm_runs WHERE run_id IN {ids}",
                     params | {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    rows = {}
    for table in tables + ["crm_runs"]:
        if dry_run:
            rows[table] = conn.execute(f"SELECT count(*) FROM {table} WHERE run_id IN {ids}", params).fetchone()[0]
        else:
            rows[table] = conn.execute(f"DELETE FROM {table} WHERE run_id IN {ids}", params).rowcount
    if not dry_run and orphans:
        conn.execute("DELETE FROM crm_policies WHERE sha256 IN (SELECT value FROM json_each(?))",
                     (json.dumps(orphans),))
    rows["crm_policies"] = len(orphans)
    return {"keep": keep, "policy": policy, "dry_run": dry_run, "deleted_runs": doomed, "policies": per_policy,
            "rows": rows, "deleted_policy_documents": orphans}

