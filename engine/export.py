"""Export a run's assignments as CSV or JSON for spreadsheets and other systems."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
import sqlite3
from pathlib import Path
from typing import Any

from .database import connect, named_file, table_columns
from .errors import UsageError
from .output_file import check_out, write_atomic
from .results_store import LATEST_FIRST, has_results, require_results
from .run_metrics import RunMetrics, as_bool
from .spreadsheet_cells import guarded

BASE_COLUMNS = ["run_id", "customer_id", "customer_name", "tier", "subgrade", "stage", "service_level",
                "tier_rule", "subgrade_rule", "stage_rule", "rule_tier"]
# A manual override in force, one CSV column per field of the stored override (JSON has it as one object): whoever
# reads grades in a spreadsheet sees who set a tier by hand, why, and until when, next to the tier the rules gave
OVERRIDE_FIELDS = ["kind", "tier", "reason", "author", "expires", "source"]
OVERRIDE_COLUMNS = [f"override_{f}" for f in OVERRIDE_FIELDS]
RECENT = 10  # run ids a "run not found" names
# The columns of crm_runs that hold JSON.  The export's "run" gives them as JSON values: plugins and notes were
# strings holding JSON ("[]") next to counts and metrics as objects, so a script had to parse some twice.
RUN_JSON_COLUMNS = ("counts", "plugins", "metrics", "notes")


def json_ready(value: Any) -> Any:
    """``value`` with every infinite or NaN float, however deep in dicts, lists and tuples, made None.

    JSON has no Infinity or NaN.  Python's json writes them as the bare words ``Infinity`` and
    ``NaN``, which JSON.parse, jq and every strict reader reject, so one overflowing metric
    (``expr: "1e400"``) would make a whole export unreadable.  null is what JavaScript's
    ``JSON.stringify`` writes for them too.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def resolve_run(conn: sqlite3.Connection, run_id: int | None, policy_name: str | None = None, *,
                results_option: str | None = "--db") -> sqlite3.Row:
    """The run named (``run_id``), else the latest successful run (of ``policy_name``).

    ``results_option``: how the command is given a results database when the runs are not in this one (see
    :func:`results_elsewhere`), for the hint when the run or policy is not here."""
    require_results(conn, named_file(conn))
    conn.row_factory = sqlite3.Row
    if run_id is None:
        sql, args = "SELECT * FROM crm_runs WHERE status = 'succeeded'", []
        if policy_name:
            sql, args = sql + " AND policy_name = ?", [policy_name]
        row = conn.execute(sql + f" ORDER BY {LATEST_FIRST} LIMIT 1", args).fetchone()
        if row is None:
            if not policy_name:
                db = named_file(conn)
                raise UsageError(f"no successful run found in {db}",
                                 hint=f"`crm-rules runs --db {shlex.quote(db)}` lists its runs and why they failed")
            from .expr_types import did_you_mean
            from .run_history import listing  # run_history reads runs through this module

            names = [r[0] for r in conn.execute(
                "SELECT DISTINCT policy_name FROM crm_runs WHERE status = 'succeeded' ORDER BY policy_name")]
            close = did_you_mean(policy_name, names)
            hint = f"policies with successful runs here: {listing(names)}"
            if not close and not conn.execute("SELECT 1 FROM crm_runs WHERE policy_name = ?", (policy_name,)).fetchone():
                hint += f"; {results_elsewhere(results_option, f'the runs of {policy_name!r}')}"
            raise UsageError(f"no successful run found for policy {policy_name!r} in {named_file(conn)}{close}",
                             hint=hint.removesuffix("; "))
        return row
    row = conn.execute("SELECT * FROM crm_runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise run_not_found(conn, run_id, results_option=results_option)
    if row["status"] != "succeeded":
        raise run_failed(conn, run_id, row["error"])
    if policy_name is not None and row["policy_name"] != policy_name:
        raise run_of_another_policy(conn, row, policy_name, results_option=results_option)
    return row


# What names a run in every --json output that reads one (runs, changes, history, actions, export, report): the
# columns of crm_runs, under their own names, so that a script joins them to each other and to the table.
RUN_IDENTITY = ("run_id", "policy_name", "policy_version", "policy_sha256", "as_of")


def run_identity(db: Path, run_id: int) -> dict:
    """The RUN_IDENTITY of a stored run, for a command whose answer would otherwise say only its id."""
    conn = connect(db, mode="ro")
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute(f"SELECT {', '.join(RUN_IDENTITY)} FROM crm_runs WHERE run_id = ?", (run_id,)).fetchone()
        return {c: row[c] for c in RUN_IDENTITY}
    finally:
        conn.close()


def results_elsewhere(option: str | None, what: str) -> str:
    """How to read ``what`` when apply wrote it to a results database of its own (``apply --results-db FILE``).

    Runs are numbered per database, so a forgotten --results-db (or one given where the runs are in --db) finds
    another policy's run of the same id, or none.  ``option`` is how the command takes the results database:
    ``--db`` (the commands that read only runs), ``--results-db`` (explain, diff and report, whose --db is the
    data), or None when a --results-db was given (this is it: nothing to add)."""
    if option == "--db":
        return f"if apply wrote {what} with --results-db FILE, give FILE as --db"
    if option == "--results-db":
        return f"if apply wrote {what} with --results-db FILE, add --results-db FILE"
    return ""


def _successful_runs(conn: sqlite3.Connection, schema: str, policy_name: str) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT run_id FROM {schema}.crm_runs WHERE policy_name = ? "
                                       f"AND status = 'succeeded' ORDER BY run_id", (policy_name,))]


def run_of_another_policy(conn: sqlite3.Connection, run, wanted: str, schema: str = "main", *,
                          results_option: str | None = "--db",
                          itself: str = "to use run {run} of {db}, leave out --policy") -> UsageError:
    """The error for a --run of another policy than the --policy given, and where the runs of that policy are.

    The run's id is most often right in another database: the runs' results database was left out (or given where
    the runs are in --db), and the hint offered the policy of the run found, as if the id were right and --policy
    the mistake.  ``schema`` (may be quoted): where the run was found, when not main; main is then the --db of the
    data, whose own runs are looked in too.  ``itself``: how to use the run found ({run}: its id, {db}: its database)."""
    from .run_history import run_list_text  # (run_history reads runs through this module)

    db, rid = named_file(conn, schema), run["run_id"]
    message = f"run {rid} in {db} is a run of policy {run['policy_name']!r}, not {wanted!r}"
    itself = itself.format(run=rid, db=db)
    if found := _successful_runs(conn, schema, wanted):
        return UsageError(message, hint=f"{db} has {run_list_text(found)} of policy {wanted!r}; {itself}")
    none = f"{db} has no successful run of policy {wanted!r}"
    if schema.strip('"') != "main" and has_results(conn) and (found := _successful_runs(conn, "main", wanted)):
        return UsageError(message, hint=f"{none}, but {named_file(conn)} has {run_list_text(found)} of it: leave out "
                                        f"--results-db to read {'it' if len(found) == 1 else 'them'}; {itself}")
    elsewhere = results_elsewhere(results_option, "its runs")
    return UsageError(message, hint=f"{none}{': ' + elsewhere if elsewhere else ''}; {itself}")


def run_failed(conn: sqlite3.Connection, run_id: int, error: str | None, schema: str = "main") -> UsageError:
    """The error for a run id whose run failed (it has no results), naming the database it is in."""
    db = named_file(conn, schema)
    return UsageError(f"run {run_id} in {db} failed and has no results: {error}",
                      hint=f"leave out --run for the latest successful run; `crm-rules runs --db {shlex.quote(db)}` "
                           f"lists the runs")


def _highest_run_id(conn: sqlite3.Connection, schema: str) -> int:
    """The highest run id this database has ever given (crm_runs is AUTOINCREMENT: sqlite_sequence keeps it)."""
    seq = None
    if conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        seq = conn.execute(f"SELECT seq FROM {schema}.sqlite_sequence WHERE name = 'crm_runs'").fetchone()
    highest = conn.execute(f"SELECT max(run_id) FROM {schema}.crm_runs").fetchone()[0]
    return max(seq[0] if seq else 0, highest or 0)


def run_not_found(conn: sqlite3.Connection, run_id: int, schema: str = "main", *,
                  results_option: str | None = "--db") -> UsageError:
    """The error for a run id that is not in ``schema``'s crm_runs, naming the database and its recent runs.

    A run that ``prune`` deleted is named as such, with its policy and date (crm_pruned_runs keeps them): an
    analyst following last month's log to "run 12" was told only that it was not found.  The database is
    named: with --results-db, or several databases, "run 99 not found" did not say where it was looked for.
    An id this database never gave is another database's: the hint says how to give the runs' database
    (``results_option``, as for :func:`resolve_run`).
    """
    db = named_file(conn, schema)
    known = [r[0] for r in conn.execute(f"SELECT run_id FROM {schema}.crm_runs ORDER BY run_id DESC LIMIT {RECENT + 1}")]
    hint = f"recent runs: {', '.join(map(str, known[:RECENT])) or '(none)'}"
    if len(known) > RECENT:
        hint += f" (`crm-rules runs --db {shlex.quote(db)}` lists them all)"
    pruned = None
    if conn.execute(f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' "
                    f"AND name = 'crm_pruned_runs'").fetchone():
        pruned = conn.execute(f"SELECT policy_name, as_of, status, pruned_at FROM {schema}.crm_pruned_runs "
                              f"WHERE run_id = ?", (run_id,)).fetchone()
    if pruned is None:
        elsewhere = results_elsewhere(results_option, "it")
        if elsewhere and run_id > _highest_run_id(conn, schema):
            hint += f"; {db} never had a run {run_id}: {elsewhere}"
        return UsageError(f"run {run_id} not found in {db}", hint=hint)
    name, as_of, status, at = pruned
    failed = " failed" if status != "succeeded" else ""
    return UsageError(f"run {run_id} (a{failed} run of policy {name!r} as of {as_of}) was deleted from {db} by "
                      f"`crm-rules prune` on {str(at)[:10]}", hint=hint)


FORMATS = ("csv", "json", "jsonl")
# Files a spreadsheet program opens as a workbook: CSV text in one is a broken file, not an export.
WORKBOOK_SUFFIXES = ("xlsx", "xlsm", "xls", "ods", "numbers")


def export_format(out: Path | None, given: str | None) -> str:
    """The format to write: ``--format``, else the extension of ``--out`` (.json or .csv), else CSV.

    ``export --out grades.json`` wrote CSV into the .json file, which every JSON reader then refused; a
    ``--format`` the extension contradicts is refused for the same reason.
    """
    fmt = given.strip().lower() if given is not None else None
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown format {given!r}", hint="use --format csv, json or jsonl")
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    if suffix in WORKBOOK_SUFFIXES:
        raise UsageError(f"--out {out}: export writes CSV, JSON or JSON Lines, not a .{suffix} workbook",
                         hint=f"name the file {out.with_suffix('.csv').name}: spreadsheet programs open CSV files")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise UsageError(f"--out {out} is a .{suffix} name but --format is {fmt}",
                             hint=f"name the file {out.with_suffix('.' + fmt).name}, or leave out --format "
                                  f"(the extension decides)")
        return suffix
    return fmt or "csv"


def _base_select(conn: sqlite3.Connection) -> str:
    """The assignment columns and the override's fields, as SQL.  Results written before overrides existed (schema 3
    and older, read as they are) have neither column: the rules gave every tier there, and no override was in force."""
    have = set(table_columns(conn, "main", "crm_assignments") or ())
    columns = [f"a.{c}" if c in have else "a.tier" for c in BASE_COLUMNS]  # only rule_tier can be missing
    fields = [f"json_extract(a.override, '$.{f}')" if "override" in have else "NULL" for f in OVERRIDE_FIELDS]
    return ", ".join(columns + fields)


def _assignment(row: tuple, metric_names: list[str], bools: set[str], width: int) -> dict:
    """One customer of the run as the JSON exports give it: the assignment's columns, its override, its metrics."""
    item = dict(zip(BASE_COLUMNS, row))
    override = dict(zip(OVERRIDE_FIELDS, row[len(BASE_COLUMNS):width]))
    item["override"] = override if override["kind"] is not None else None
    item["metrics"] = {n: as_bool(v) if n in bools else v for n, v in zip(metric_names, row[width:])}
    return item


def export_run(db: Path, run_id: int | None, fmt: str | None, out: Path | None) -> tuple[int, int, str | None, str]:
    """Write the run as CSV, JSON or JSON Lines to ``out`` (atomically) or return it as text. Returns (run_id, rows, text, the
    run's policy name).

    ``fmt`` None: from the extension of ``out`` (:func:`export_format`)."""
    fmt = export_format(out, fmt)
    if out is not None:
        check_out(out, reads={"the --db file": db}, example=f"export.{fmt}")
    conn = connect(db, mode="ro")
    try:
        run = resolve_run(conn, run_id)
        rid = run["run_id"]
        stored = RunMetrics.of_run(conn, rid)
        metric_names = list(stored.names)
        conn.row_factory = None
        rows = conn.execute(f"SELECT {_base_select(conn)}{stored.select()} FROM crm_assignments AS a{stored.join()} "
                            f"WHERE a.run_id = ? ORDER BY a.customer_id", (rid,))
        buffer = io.StringIO(newline="")
        count = 0
        width = len(BASE_COLUMNS) + len(OVERRIDE_COLUMNS)
        if fmt == "csv":
            writer = csv.writer(buffer)
            writer.writerow(BASE_COLUMNS + OVERRIDE_COLUMNS + metric_names)
            for r in rows:
                writer.writerow(map(guarded, r))  # a name such as =HYPERLINK(...) must not run in Excel
                count += 1
        else:
            bools = stored.bools(conn)  # true/false in JSON, not the 1/0 of the table (and of CSV)
            header = dict(run)
            for column in RUN_JSON_COLUMNS:  # JSON in crm_runs, objects and lists in the export, as counts always was
                if column in header:
                    header[column] = json.loads(header[column] or "null")
            items = (_assignment(r, metric_names, bools, width) for r in map(json_ready, rows))  # no second copy of a big run
            if fmt == "json":
                listed = list(items)
                count = len(listed)
                json.dump({"run": json_ready(header), "assignments": listed}, buffer, ensure_ascii=False, indent=1,
                          allow_nan=False)  # proves json_ready left no Infinity or NaN
                buffer.write("\n")
            else:  # JSON Lines: one customer a line, each naming its run, for an import that reads line by line
                named = {k: header[k] for k in RUN_IDENTITY}
                for item in items:
                    buffer.write(json.dumps(named | item, ensure_ascii=False, allow_nan=False))
                    buffer.write("\n")
                    count += 1
    finally:
        conn.close()
    text = buffer.getvalue()
    if out is None:
        return rid, count, text, run["policy_name"]
    write_atomic(out, text.encode("utf-8-sig" if fmt == "csv" else "utf-8"))
    return rid, count, None, run["policy_name"]

