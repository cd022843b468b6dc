"""Run a policy against a database: compute in temp tables, then write one run.

Everything is computed first in the connection's temp schema, without
holding a write lock; the results are then written in a single
``BEGIN IMMEDIATE`` transaction, so a failed run leaves no partial results
and readers never see half a run.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, run_metrics
from .classify_sql import compile_classification, match_flags
from .data_binding import Binding, bind
from .database import RunConnection, connect, damaged, is_damage, open_for_run, temp_dirs, use_wal
from .classify_sql import OVERRIDES
from .errors import DamagedDatabaseError, DataError, RunError, UsageError
from .overrides import load_overrides, split_expired
from .explain import explain_storage
from .expr_sql import SqlParams, quote_identifier as q
from .expr_types import BOOL
from .data_checks import check_customers, check_rows
from .metric_sql import CID, CNAME, MetricPlan, RunDates, compile_metrics, decimal_total
from .policy_files import canonical_json
from .plugin_sql import ACTIONS, ERRORS, BatchOp, compile_actions, compile_plugin_layers, setup_statements, trimmed_owner
from .policy_model import Policy, written_service_levels
from .progress import Progress, silent
from .results_store import check_writable, ensure_schema
from .source_scans import jobs, run_scans
from .window_workers import WindowWorker


def parse_as_of(value: str | None, option: str = "--as-of") -> str:
    """A date argument: explicit YYYY-MM-DD, or today when not given."""
    if value is None:
        return dt.date.today().isoformat()
    try:
        day = dt.date.fromisoformat(value.strip()) if len(value.strip()) == 10 else None
    except ValueError:
        day = None
    if day == dt.date.max:  # windows end before the next day, which the calendar does not have
        raise UsageError(f"{option} {value!r} is the calendar's last day; runs need the day after it",
                         hint=f"use an earlier date, e.g. {option} 9999-12-30")
    if day is not None:
        return day.isoformat()
    raise UsageError(f"{option} {value!r} is not a date", hint=f"write it as YYYY-MM-DD, e.g. {option} 2026-06-30")


@dataclass
class Computed:
    """A policy evaluated in temp tables, ready to be written or explained."""

    rc: RunConnection
    policy: Policy
    as_of: str
    binding: Binding
    metric_plan: MetricPlan
    result_table: str
    notes: list[str] = field(default_factory=list)
    with_overrides: bool = False  # the result has _rule_tier and _override columns
    groups: list[tuple] = field(default_factory=list)  # _grouped(): customers per combination of grades

    def tier_minimum(self) -> list[list]:
        """[tier, lowest tier metric] per tier the rules give (NULL tier first, then by name), as ``GROUP BY
        _rule_tier`` gives them: the Pareto cut-offs explain quotes are the rules' own, which an override lifting
        a small customer into A (or a floor of B on one with no revenue) does not move."""
        lowest: dict = {}
        for row in self.groups:
            tier, value = row[_RULE_TIER], row[_MINIMUM]
            if tier not in lowest or (value is not None and (lowest[tier] is None
                                                            or _sqlite_order(value) < _sqlite_order(lowest[tier]))):
                lowest[tier] = value
        return [[tier, lowest[tier]] for tier in sorted(lowest, key=_nulls_first)]


TEMP_CACHE_KIB = 256 * 1024


def _execute(conn: sqlite3.Connection, operations: list, as_of: str, as_of_next: str) -> None:
    dates = {"as_of": as_of, "as_of_next": as_of_next}
    for op in operations:
        if isinstance(op, BatchOp):
            op.run(conn, dates)
        else:
            conn.execute(op.sql, {**op.params, **dates})


@dataclass
class _Steps:
    """Counts the compiled steps of a run for the progress display (one unit a statement)."""

    progress: Progress
    total: int
    done: int = 0

    def run(self, conn: sqlite3.Connection, operations: list, as_of: str, as_of_next: str) -> None:
        for op in operations:
            _execute(conn, [op], as_of, as_of_next)
            self.step()

    def step(self) -> None:
        self.done += 1
        self.progress("computing", self.done, self.total)


def _load_overrides(rc: RunConnection, policy: Policy, as_of: str, path: Path | None) -> tuple[list, list[str], bool]:
    """(active overrides, notes on expired ones, whether the policy uses overrides at all)."""
    found = load_overrides(rc.conn, rc.source_schema, policy, path)
    if found is None:
        return [], [], False
    active, notes = split_expired(found, as_of)
    return active, notes, True


def _stage_overrides(conn: sqlite3.Connection, overrides: list) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {OVERRIDES}")
    conn.execute(f"CREATE TABLE {OVERRIDES} (cid, kind TEXT, tier TEXT, json TEXT, source TEXT)")
    conn.executemany(f"INSERT INTO {OVERRIDES} VALUES (?, ?, ?, ?, ?)",
                     [(o.customer, o.kind, o.tier, o.as_json(), o.where) for o in overrides])


def _plugin_error_notes(conn: sqlite3.Connection, policy: Policy, customers: int) -> list[str]:
    """A note per entry with errors (on_error: skip), with its most frequent message.  A count alone hid a
    plugin that failed for every customer (a bug, not bad data) behind a run that exited 0."""
    sections = {step.entry: step.section for step in policy.plugin_steps + policy.action_steps}
    notes = []
    for name, plugin, n, message in conn.execute(
            f"SELECT entry, plugin, count(*), (SELECT message FROM {ERRORS} AS m WHERE m.entry = e.entry "
            f"GROUP BY message ORDER BY count(*) DESC, message LIMIT 1) FROM {ERRORS} AS e "
            f"GROUP BY entry, plugin ORDER BY entry"):
        entry = f"{sections[name]}.{name}" if name in sections else name
        message = message if len(message) <= 300 else message[:299] + "…"
        if customers and n >= customers:
            notes.append(f"plugin {plugin!r} failed in {entry} for every customer ({n:,}; on_error: skip left their "
                         f"outputs empty), e.g. {message}: that is the plugin's bug or its params', not the data's; "
                         f"see crm_errors")
        else:
            notes.append(f"plugin {plugin!r} failed in {entry} for {n:,} customer(s) (on_error: skip left their "
                         f"outputs empty), most often: {message}; see crm_errors")
    return notes


def compute(rc: RunConnection, policy: Policy, as_of: str, overrides: Path | None = None,
            progress: Progress = silent) -> Computed:
    conn = rc.conn
    # The per-customer work tables live in the temp schema; keeping their pages in memory (up to
    # this much, whatever the number of orders) saves re-reading them from the temp file per layer.
    conn.execute(f"PRAGMA temp.cache_size = -{TEMP_CACHE_KIB}")
    data_version = _data_version(rc)
    binding = bind(conn, rc.source_schema, policy)
    check_customers(rc, policy, binding)
    active_overrides, override_notes, with_overrides = _load_overrides(rc, policy, as_of, overrides)
    as_of_next = conn.execute("SELECT date(?, '+1 day')", (as_of,)).fetchone()[0]
    dates = RunDates(as_of, as_of_next, conn)
    plan = compile_metrics(policy, binding, dates)
    plugin_ops, graded_from = compile_plugin_layers(policy, plan.table, windows=plan.windows)
    classification, result = compile_classification(policy, graded_from, overrides=with_overrides)
    owner = trimmed_owner(f"t.{q('account_manager')}") if "account_manager" in binding.attributes else "NULL"
    actions = compile_actions(policy, result, owner)
    sorts = WindowWorker(plan.base, TEMP_CACHE_KIB)  # some window sorts run in a worker process
    metric_ops = sorts.wrap(plan.statements)
    metric_ops.insert(plan.base_ready, sorts.start())
    prepare = sorts.wrap(setup_statements() + plugin_ops)
    rules = sorts.wrap(classification + actions)
    scans = list(plan.sources.values())
    steps = _Steps(progress, len(jobs(scans)) + len(metric_ops) + len(prepare) + len(rules))
    try:
        run_scans(conn, rc.source_path, scans, {"as_of": as_of, "as_of_next": as_of_next}, TEMP_CACHE_KIB,
                  done=lambda _: steps.step())
        steps.run(conn, metric_ops, as_of, as_of_next)
        data_notes = check_rows(rc, policy, binding, plan, as_of)
        steps.run(conn, prepare, as_of, as_of_next)
        if policy.hit_policy == "unique":
            _check_unique(conn, policy, graded_from)
        if with_overrides:
            _stage_overrides(conn, active_overrides)
        steps.run(conn, rules, as_of, as_of_next)
    except sqlite3.OperationalError as exc:
        raise RunError(f"the database could not compute the policy: {exc}", hint=_compute_hint(str(exc))) from exc
    except sqlite3.DatabaseError as exc:  # a worker process's error comes back as its message alone
        if not is_damage(exc):
            raise
        raise damaged(rc.source_path, exc) from None  # what workers read is the source
    finally:
        sorts.close()
    computed = Computed(rc, policy, as_of, binding, plan, result, data_notes + override_notes, with_overrides)
    if _data_version(rc) != data_version:
        computed.notes.append(
            f"the data changed while the run read it (another program committed to {rc.source_path} meanwhile): "
            "each table was read as it was when its scan began, so the results may mix the data before and after; "
            "run again when the writes are done, or on a snapshot (sqlite3 crm.db \".backup snapshot.db\")")
    computed.groups = _grouped(conn, policy, result, with_overrides)
    computed.notes += _plugin_error_notes(conn, policy, sum(row[0] for row in computed.groups))
    missing = sum(row[0] for row in computed.groups if row[5] is None)
    if policy.service_levels and missing:
        computed.notes.append(f"{missing:,} customer(s) match no service level (no entry for their tier/stage)")
    return computed


def _data_version(rc: RunConnection) -> int:
    """Changes when another connection commits to the source database.  A run reads it through several
    statements and worker processes, each seeing the data as it is when it starts (SQLite has no snapshot that
    processes can share), so a commit in between can make a run count an invoice without its order."""
    return rc.conn.execute(f"PRAGMA {q(rc.source_schema)}.data_version").fetchone()[0]


def _check_unique(conn: sqlite3.Connection, policy: Policy, table: str) -> None:
    params = SqlParams(prefix="u")
    flags = match_flags([t.rule for t in policy.tiers], params)
    if len(flags) < 2:
        return
    total = " + ".join(f for _, f in flags)
    cols = ", ".join(f"{f} AS {q('f_' + rid)}" for rid, f in flags)
    row = conn.execute(
        f"SELECT {CID}, {cols} FROM {table} AS m WHERE ({total}) > 1 LIMIT 1", params.values).fetchone()
    if row:
        matched = [rid for (rid, _), flag in zip(flags, row[1:]) if flag]
        n = conn.execute(f"SELECT count(*) FROM {table} AS m WHERE ({total}) > 1", params.values).fetchone()[0]
        places = {r: policy.source.position(policy.tier(r).rule.path) for r in matched}
        rules = " and ".join(f"{r!r} ({pos.file}:{pos.line})" for r, pos in places.items())
        raise RunError(f"hit policy unique: customer {row[0]!r} matches tier rules {rules}; {n:,} customer(s) match more than one rule",
                       hint="make the conditions exclusive, or use hit_policy: first")


def _sqlite_order(value) -> tuple:
    """Sort key of a non-NULL value as SQLite orders them: numbers, then text, then blobs."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, value) if isinstance(value, str) else (2, 0, value)


def _nulls_first(value):
    return (value is not None, value)


def _counted(counts: dict) -> dict:
    """Largest first, as the summary tables show them (ties by value, for a stable order)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], _nulls_first(kv[0]))))


def _in_order(counts: dict, values: tuple[str, ...]) -> dict:
    """An output's counts in the order of the values its plugin declares (a grade scale), then the others largest
    first; a declared value no customer has is left out, as the others are."""
    first = {v: counts[v] for v in values if v in counts}
    return first | _counted({v: n for v, n in counts.items() if v not in first})


#: Position of the lowest tier metric in a row of ``_grouped``.
_MINIMUM = 7  # row of _grouped(): the lowest tier metric, then the tier the rules give, then the outputs
_RULE_TIER = 8


#: Stands for NULL in a key of ``_grouped``'s table, whose UNIQUE constraint would take every NULL for a
#: different value: a one-byte blob, which no tier, stage or plugin output (text or number) equals.
_NULL_KEY = "x'00'"
_GROUPS = "temp._crm_groups"


def _grouped(conn: sqlite3.Connection, policy: Policy, table: str, with_overrides: bool) -> list[tuple]:
    """Rows of (customers, revenue, tier, stage, sub-grade, service level, overridden, lowest tier metric,
    tier the rules give, each summarized output): one pass over every combination (a few hundred rows at most).

    The run summary, the note on customers without a service level and the lowest tier metric per tier
    (for ``explain``) are all folded from these rows: each separate count would read the whole
    per-customer table again (a second or more each at a million customers).  The rows are counted by
    an upsert into a table of the combinations, not by a GROUP BY, which first sorts the million rows by
    all the keys (at a million customers 3.4 s against 1.5 s); a combination's revenue is added up row
    by row in the order a GROUP BY's sum adds it, and the rows come out in the GROUP BY's order.
    """
    outputs = [name for name, out in policy.outputs.items() if out.column.summarize]
    overridden = "_tier_rule = 'override'" if with_overrides else "NULL"
    keys = ["_tier", "_stage", "_subgrade", "_service_level", overridden, "_rule_tier" if with_overrides else "_tier"]
    keys += [f"coalesce({q(name)}, '')" for name in outputs]
    revenue = q(policy.revenue_metric) if policy.revenue_metric else "NULL"
    lowest = q(policy.tier_metric) if policy.tier_method == "pareto" else "NULL"
    columns = [f"k{i}" for i in range(len(keys))]
    conn.execute(f"DROP TABLE IF EXISTS {_GROUPS}")
    conn.execute(f"CREATE TABLE {_GROUPS} ({', '.join(columns)}, n, revenue, lowest, UNIQUE ({', '.join(columns)}))")
    # a NULL revenue or metric is skipped, as sum() and min() skip it; "WHERE true" ends the SELECT for the parser
    conn.execute(f"INSERT INTO {_GROUPS} SELECT {', '.join(f'ifnull({key}, {_NULL_KEY})' for key in keys)}, "
                 f"1, {revenue}, {lowest} FROM {table} WHERE true ON CONFLICT ({', '.join(columns)}) DO UPDATE SET "
                 "n = n + 1, revenue = CASE WHEN excluded.revenue IS NULL THEN revenue WHEN revenue IS NULL "
                 "THEN excluded.revenue ELSE revenue + excluded.revenue END, lowest = CASE WHEN excluded.lowest IS NULL "
                 "THEN lowest WHEN lowest IS NULL THEN excluded.lowest ELSE min(lowest, excluded.lowest) END")
    back = [f"nullif({c}, {_NULL_KEY})" for c in columns]
    rows = conn.execute(f"SELECT n, revenue, {', '.join(back[:5])}, lowest{''.join(', ' + b for b in back[5:])} "
                        f"FROM {_GROUPS} ORDER BY {', '.join(back)}").fetchall()
    conn.execute(f"DROP TABLE {_GROUPS}")
    return rows


def summarize(computed: Computed) -> dict:
    """Counts per tier, stage and service level, and revenue share per tier."""
    policy = computed.policy
    revenue = policy.revenue_metric
    outputs_summarized = [name for name, out in policy.outputs.items() if out.column.summarize]
    tiers: dict = {}
    grid: dict = {}
    stage_counts: dict = {}
    subgrades: dict = {}
    services: dict = {}
    outputs: dict = {name: {} for name in outputs_summarized}
    overrides = 0
    for row in computed.groups:
        n, rev, tier, stage, subgrade, service, is_override = row[:_MINIMUM]
        service = "" if service is None else service
        entry = tiers.setdefault(tier, {"customers": 0, "revenue": None})
        entry["customers"] += n
        if rev is not None:
            entry["revenue"] = (entry["revenue"] or 0) + rev
        grid[(tier, stage)] = grid.get((tier, stage), 0) + n
        stage_counts[stage] = stage_counts.get(stage, 0) + n
        if subgrade is not None:
            subgrades[subgrade] = subgrades.get(subgrade, 0) + n
        services[service] = services.get(service, 0) + n
        overrides += n if is_override else 0
        for name, value in zip(outputs_summarized, row[_RULE_TIER + 1:]):
            if policy.outputs[name].column.type == BOOL:  # stored as 1/0; counted as the policy writes them
                value = {1: "true", 0: "false"}.get(value, value)
            outputs[name][value] = outputs[name].get(value, 0) + n
    ordered = {}
    for tier in policy.tiers:
        ordered[tier.id] = tiers.pop(tier.id, {"customers": 0, "revenue": 0 if revenue else None})
        ordered[tier.id]["revenue"] = decimal_total(ordered[tier.id]["revenue"])
    total_rev = decimal_total(sum((v["revenue"] or 0) for v in ordered.values())) if revenue else None
    for v in ordered.values():  # of a net total of 0 or less (returns outweigh sales) a share means nothing, as in the report
        v["revenue_share"] = (v["revenue"] or 0) / total_rev if revenue and total_rev > 0 else None
    conn = computed.rc.conn
    actions = _counted(dict(conn.execute(f"SELECT action, count(*) FROM {ACTIONS} GROUP BY action").fetchall()))
    return {
        "customers": sum(v["customers"] for v in ordered.values()),
        "revenue_metric": revenue,
        "total_revenue": total_rev,
        "tiers": ordered,
        "subgrades": {s.id: subgrades.get(s.id, 0) for tier in policy.tiers for s in tier.subgrades},
        "stages": {s.id: stage_counts.get(s.id, 0) for s in policy.stages},
        "tier_stage": [[tier, stage, n] for (tier, stage), n in sorted(grid.items(), key=lambda kv: tuple(map(_nulls_first, kv[0])))],
        # a policy without service levels would list every customer under "(none)", a table that says nothing
        "service_levels": dict(sorted(services.items())) if policy.service_levels else {},
        "outputs": {name: _in_order(counts, policy.outputs[name].column.values) for name, counts in outputs.items()},
        "actions": actions,
        "plugin_errors": conn.execute(f"SELECT count(*) FROM {ERRORS}").fetchone()[0],
        "overrides": overrides,
    }


def _compute_hint(text: str) -> str | None:
    """While computing, a run writes only its temporary files: a full disk is theirs, not the database's."""
    if "full" not in text:
        return _write_hint(text)
    folders = temp_dirs()
    where = (f"its work tables in {folders[0]} and its worker processes' files in {folders[1]}" if len(folders) > 1
             else f"its work tables and its worker processes' files in {folders[0]}")
    return (f"a temporary folder's disk is full: a run keeps {where}, not beside the database; free space there, "
            f"or set TMPDIR (and SQLITE_TMPDIR, when set) to a folder on a disk with room, and run again")


def _write_hint(text: str, wal: bool | None = None, separate: bool = False) -> str | None:
    """``wal``: False when the results database could not be switched to WAL mode (``use_wal``); ``separate``: the
    results go to a --results-db (which another --results-db may replace), not into the data's database."""
    if ("locked" in text or "busy" in text) and wal is False:  # a reader's shared lock holds up the commit too
        return ("another program is writing to the database, or keeps a read transaction open on it (a DB browser, "
                "a `sqlite3` shell after BEGIN), which holds up a run's commit until the database is in WAL mode; "
                "run again when it is done")
    if "locked" in text or "busy" in text:
        return "another program is writing to the database; run again when it is done"
    if ("readonly" in text or "read-only" in text) and separate:
        return "the --results-db file or its folder is read-only; make them writable, or give another --results-db"
    if "readonly" in text or "read-only" in text:
        return "the database file or its folder is read-only; use --results-db to write the results elsewhere"
    if "full" in text:
        return "the disk is full; free some space (or use --results-db on another disk) and run again"
    if "I/O" in text or "disk" in text:
        return "the disk could not be written; check it and run again"
    return None


def plugins_used(policy: Policy) -> dict[str, str]:
    """Name and version of each plugin the policy used: part of what makes a run reproducible."""
    from .plugin_manager import get_plugin_manager

    _, infos = get_plugin_manager()
    used = {s.plugin for s in policy.plugin_steps + policy.action_steps} | policy.function_plugins
    return {name: infos[name].version if name in infos else "unknown" for name in sorted(used)}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _definitions(policy: Policy) -> list[tuple]:
    rows = []
    for i, tier in enumerate(policy.tiers):
        rows.append(("tier", tier.id, None, tier.rule.label, i, json.dumps(tier.rule.extra, ensure_ascii=False)))
        for j, sub in enumerate(tier.subgrades):
            rows.append(("subgrade", sub.id, tier.id, sub.label, j, json.dumps(sub.extra, ensure_ascii=False)))
    for i, stage in enumerate(policy.stages):
        rows.append(("stage", stage.id, None, stage.label, i, json.dumps(stage.extra, ensure_ascii=False)))
    # one row per entry as written: an entry for several tiers has parent 'A, B, C' and details.tier [A, B, C]
    for i, sl in enumerate(written_service_levels(policy.service_levels)):
        tier = list(sl.tiers) if sl.shared else sl.tier
        details = {"tier": tier, "subgrade": sl.subgrade, "stage": sl.stage, **sl.details}
        rows.append(("service_level", sl.id, sl.tier_text, sl.details.get("label", sl.id), i,
                     json.dumps(details, ensure_ascii=False)))
    for i, m in enumerate(policy.metrics.values()):
        if not m.internal:
            rows.append(("metric", m.name, None, m.label, i, json.dumps({"kind": m.kind, "type": m.type, **m.spec}, ensure_ascii=False)))
    return rows


def write_run(computed: Computed, summary: dict, started_at: str) -> int:
    computed.rc.attach_results()
    conn, policy, rs = computed.rc.conn, computed.policy, q(computed.rc.results_schema)
    stored = list(dict.fromkeys(policy.key_metrics + ([policy.revenue_metric] if policy.revenue_metric else [])))
    metric_names, explain_facts = explain_storage(computed, stored)  # what `explain` reads back from the run
    computed.rc.results_wal = use_wal(conn, computed.rc.results_schema)
    conn.execute("BEGIN IMMEDIATE")
    try:
        ensure_schema(conn, computed.rc.results_schema, writable=True)  # checked before computing; now under the lock
        conn.execute(f"INSERT OR IGNORE INTO {rs}.crm_policies VALUES (?, ?, ?)",
                     (policy.sha256, policy.name, canonical_json(policy.document)))
        cur = conn.execute(
            f"INSERT INTO {rs}.crm_runs (policy_name, policy_version, policy_sha256, as_of, started_at, finished_at, "
            f"status, customers, counts, engine_version, plugins, metrics, source_db, notes) "
            f"VALUES (?, ?, ?, ?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?)",
            (policy.name, policy.version, policy.sha256, computed.as_of, started_at, _now(), summary["customers"],
             json.dumps({**summary, "explain": explain_facts}, ensure_ascii=False), __version__,
             json.dumps(plugins_used(policy), ensure_ascii=False), json.dumps(metric_names, ensure_ascii=False),
             computed.rc.recorded_source, json.dumps(computed.notes, ensure_ascii=False)))
        run_id = cur.lastrowid
        conn.execute(
            f"INSERT INTO {rs}.crm_actions (run_id, customer_id, action, category, plugin, generator, reason, details, "
            f"priority, due_date, owner) SELECT ?, cid, action, category, plugin, entry, reason, details, priority, "
            f"due_date, owner FROM {ACTIONS} ORDER BY due_date, priority, cid, action", (run_id,))
        conn.execute(f"INSERT INTO {rs}.crm_errors SELECT ?, cid, plugin, entry, message FROM {ERRORS} ORDER BY entry, cid",
                     (run_id,))
        conn.executemany(f"INSERT INTO {rs}.crm_definitions VALUES ({run_id}, ?, ?, ?, ?, ?, ?)", _definitions(policy))
        overridden = computed.with_overrides
        conn.execute(
            f"INSERT INTO {rs}.crm_assignments (run_id, customer_id, customer_name, tier, subgrade, stage, service_level, "
            f"tier_rule, subgrade_rule, stage_rule, rule_tier, override) SELECT ?, r.{CID}, r.{CNAME}, r._tier, "
            f"r._subgrade, r._stage, r._service_level, r._tier_rule, r._subgrade_rule, r._stage_rule, "
            f"{'r._rule_tier, r._override' if overridden else 'r._tier, NULL'} "
            f"FROM {computed.result_table} AS r ORDER BY r.{CID}", (run_id,))
        if metric_names:
            run_metrics.add_columns(conn, computed.rc.results_schema, metric_names)
            conn.execute(run_metrics.insert_sql(computed.rc.results_schema, metric_names, computed.result_table, CID), (run_id,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
            conn.execute("ROLLBACK")
        raise
    return run_id


def record_failure(rc: RunConnection, policy: Policy, as_of: str, started_at: str, error: str) -> None:
    """Best effort: keep a trace of the failed attempt; never masks the original error."""
    try:
        conn, rs = rc.conn, q(rc.results_schema)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if not rc.results_exist():
            return  # no earlier runs here: leave the database exactly as it was
        conn.execute("BEGIN IMMEDIATE")
        ensure_schema(conn, rc.results_schema, writable=True)  # another program's tables or a trigger: the run's error
        conn.execute(f"INSERT OR IGNORE INTO {rs}.crm_policies VALUES (?, ?, ?)",  # the attempt can be traced too
                     (policy.sha256, policy.name, canonical_json(policy.document)))
        conn.execute(
            f"INSERT INTO {rs}.crm_runs (policy_name, policy_version, policy_sha256, as_of, started_at, finished_at, status, "
            f"engine_version, source_db, error) VALUES (?, ?, ?, ?, ?, ?, 'failed', ?, ?, ?)",
            (policy.name, policy.version, policy.sha256, as_of, started_at, _now(), __version__, rc.recorded_source, error))
        conn.execute("COMMIT")
    except (sqlite3.Error, DataError):  # DataError: results tables of a newer crm-rules, not to be written into
        if rc.conn.in_transaction:
            rc.conn.execute("ROLLBACK")


def _check_results(rc: RunConnection) -> None:
    """The results tables the run would write are crm-rules' own and have no triggers (``check_writable``)."""
    if rc.results_attached:  # the results go to the data's own database
        check_writable(rc.conn, rc.results_schema)
    elif rc.results_path.exists():
        conn = connect(rc.results_path, mode="ro", option="--results-db")
        try:
            check_writable(conn)
        finally:
            conn.close()


@dataclass
class RunOutcome:
    run_id: int | None
    summary: dict
    as_of: str
    notes: list[str]


def apply_policy(db: Path, policy: Policy, as_of: str, results_db: Path | None = None, dry_run: bool = False,
                 overrides: Path | None = None, progress: Progress = silent) -> RunOutcome:
    started = _now()
    rc = open_for_run(db, results_db, write=not dry_run)
    try:
        _check_results(rc)  # before computing anything: a run that cannot be written fails at once
        try:
            computed = compute(rc, policy, as_of, overrides, progress)
        except sqlite3.OperationalError as exc:  # e.g. locked while reading the tables' layout
            raise RunError(f"could not read the database: {exc}", hint=_write_hint(str(exc))) from exc
        summary = summarize(computed)
        if dry_run:
            return RunOutcome(None, summary, as_of, computed.notes)
        try:
            progress("writing results", 0, 1)
            run_id = write_run(computed, summary, started)
            progress("writing results", 1, 1)
        except sqlite3.OperationalError as exc:
            raise RunError(f"could not write the results to {rc.results_path}: {exc}; nothing was written",
                           hint=_write_hint(str(exc), rc.results_wal, results_db is not None)) from exc
        return RunOutcome(run_id, summary, as_of, computed.notes)
    except (RunError, DataError) as exc:  # what went wrong in the data or while computing: kept for the record
        # not in a damaged results database, though: writing to it may spread the damage
        if not dry_run and not (isinstance(exc, DamagedDatabaseError) and rc.results_path.resolve() in exc.files):
            record_failure(rc, policy, as_of, started, exc.message)
        raise
    finally:
        rc.close()
