"""Running policy tests: grade a test file's customers with a real run and compare with what they expect.

The format of test files is in policy_test_file, the text of the report in
policy_test_report.

How a file runs: every case and ``population`` customer of the file is
written to ONE temporary SQLite database with the tables and columns of the
policy's data mapping (the demo schema's names unless it has a ``data:``
section; see ``database_layout``), the policy is
applied to it once (``apply_policy``, a real run), and the run's
``crm_assignments`` and ``crm_actions`` are compared with the expectations.
Cases of one file are therefore graded together, as one population: Pareto
tiers, ranks, percentiles and n-tiles (RFM scores, value scores) depend on
every customer in the file, which is why a file can add ``population``
customers that are graded but not checked.  A failing case is explained with
``explain_customer`` on the same database.

Coverage: a tier, sub-grade, stage or service-level rule is exercised when
it decided that grade for a case that checks it (``expect.tier`` or
``expect.subgrade`` for tier rules, ``expect.subgrade``, ``expect.stage``,
``expect.service_level``); population customers never count.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .errors import CrmRulesError, Diagnostic, PolicyError
from .policy_model import Policy, written_service_levels
from .expr_sql import quote_identifier as q
from .policy_test_file import (COVERAGE_KINDS, GRADES, Case, PolicyTestFile, TableLayout, credit_outcome_name,
                               database_schema, find_test_files, invalid_test_file, load_test_file, tolerance)
from .policy_test_report import explanation_text
from .run_metrics import RunMetrics


# ---- running ---------------------------------------------------------------------------

def _insert_columns(concept: str, t: TableLayout) -> dict[str, tuple[str, list[int]]]:
    """The columns a row of ``concept`` is written to (by lower-case name: SQLite's names ignore case), each
    with the positions of its values in the row's list of values: for a history row the customer key, then
    each field the policy maps a column for; for a customer the mapped fields.  Two values mapped to one
    column: the first one given (not null) wins."""
    named = ([] if concept == "customers" else [t.key]) + [f.column for f in t.fields if f.column]
    columns: dict[str, tuple[str, list[int]]] = {}
    for i, column in enumerate(named):
        columns.setdefault(column.lower(), (column, []))[1].append(i)
    return columns


def _write_database(db: Path, tf: PolicyTestFile) -> None:
    """The cases and population in the tables and columns the policy's data mapping names (the demo schema's
    names unless the policy has a ``data:`` section)."""
    conn = sqlite3.connect(db)
    try:
        for table, columns, is_customers in database_schema(tf.layout):
            defs = [f"{q(c)} {t}" + (" PRIMARY KEY" if is_customers and i == 0 else "") for i, (c, t) in enumerate(columns)]
            if not is_customers and "id" not in {c.lower() for c, _ in columns}:
                defs.insert(0, "id INTEGER PRIMARY KEY")  # rows are named by id in the run's data checks
            conn.execute(f"CREATE TABLE {q(table)} ({', '.join(defs)})")
        everyone = tf.cases + tf.population
        for concept, t in tf.layout.items():
            if concept == "customers":
                rows = [[c.customer.get(f.name) for f in t.fields if f.column] for c in everyone]
            else:
                rows = [[c.customer_id] + [v for f, v in zip(t.fields, row) if f.column]
                        for c in everyone for row in c.histories.get(concept, [])]
            columns = _insert_columns(concept, t)
            batch = [[next((row[i] for i in at if row[i] is not None), None) for _, at in columns.values()] for row in rows]
            conn.executemany(f"INSERT INTO {q(t.table)} ({', '.join(q(c) for c, _ in columns.values())}) "
                             f"VALUES ({', '.join('?' * len(columns))})", batch)
        conn.commit()
    finally:
        conn.close()


def _read_results(db: Path, run_id: int) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        stored = RunMetrics.of_run(conn, run_id)
        rows = conn.execute(f"SELECT a.*{stored.select()} FROM crm_assignments AS a{stored.join()} WHERE a.run_id = ?",
                            (run_id,)).fetchall()
        width = len(rows[0]) - len(stored.names) if rows else 0
        assignments = {str(r["customer_id"]): {**dict(zip(r.keys()[:width], r[:width])),
                                               "metrics": dict(zip(stored.names, r[width:]))} for r in rows}
        actions: dict[str, list[dict]] = {}
        for r in conn.execute("SELECT * FROM crm_actions WHERE run_id = ? ORDER BY customer_id, action", (run_id,)):
            actions.setdefault(str(r["customer_id"]), []).append(dict(r))
        return assignments, actions
    finally:
        conn.close()


def _computed_values(db: Path, tf: PolicyTestFile, names: list[str]) -> dict[str, dict]:
    """Values the run does not store (attributes, a plugin's helper metrics): computed again."""
    from .database import open_for_run
    from .metric_sql import CID
    from .runner import compute

    rc = open_for_run(db, write=False)
    try:
        computed = compute(rc, tf.policy, tf.as_of)
        cols = ", ".join(q(n) for n in names)
        return {str(r[0]): dict(zip(names, r[1:]))
                for r in rc.conn.execute(f"SELECT {CID}, {cols} FROM {computed.result_table}")}
    finally:
        rc.close()


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return False
        if "approx" in expected:
            return abs(actual - expected["approx"]) <= tolerance(expected)
        return expected.get("min", actual) <= actual <= expected.get("max", actual)
    if isinstance(expected, bool):  # _compare read a condition's 0/1 from SQLite as false/true
        return isinstance(actual, bool) and actual == expected
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return abs(actual - expected) <= tolerance(expected)
    return expected == actual


def _actual_for(key: str, a: dict, acts: list[dict], values: dict, outcome_name: str | None) -> Any:
    if key in GRADES:
        return a[key]
    if key in ("actions", "actions_include"):
        return sorted({x["action"] for x in acts})
    if key == "credit_outcome":
        key = outcome_name
    if key in a["metrics"]:
        return a["metrics"][key]
    return values.get(key)


def _compare(case: Case, a: dict, acts: list[dict], values: dict, outcome_name: str | None) -> tuple[dict, list[dict]]:
    actual, mismatches = {}, []
    for key, expected in case.expect.items():
        got = _actual_for(key, a, acts, values, outcome_name)
        if isinstance(expected, bool) and not isinstance(got, (bool, str)) and got in (0, 1):
            got = bool(got)  # a condition comes back from SQLite as 0/1: shown as the test file writes it
        actual[key] = got
        if key == "actions_include":
            ok = set(expected) <= set(got)
        elif key == "actions":
            ok = expected == got
        else:
            ok = _matches(expected, got)
        if not ok:
            mismatch = {"key": key, "expected": expected, "actual": got, "where": str(case.expect_where[key])}
            if key == "actions_include":
                mismatch["missing"] = sorted(set(expected) - set(got))
            mismatches.append(mismatch)
    return actual, mismatches


def _without_overrides(tf: PolicyTestFile) -> tuple[PolicyTestFile, list[str]]:
    """The test file with its policy's overrides left out, and a note saying so.  Overrides name customers of
    the user's data, which the test's made-up customers are not: applied, every one stopped the test as an
    unknown customer (or, where a case's id happened to match, overrode a case nobody meant to)."""
    if tf.policy.overrides is None:
        return tf, []
    kind, where = tf.policy.overrides
    shown = Path(where).name if kind == "file" else where
    note = (f"the policy's overrides ({kind} {shown}) are not applied to the test customers: they name customers of "
            f"your data; the tests check what the rules give")
    return replace(tf, policy=replace(tf.policy, overrides=None)), [note]


def run_test_file(tf: PolicyTestFile, explain: bool = True) -> dict:
    """Grade every customer of one test file in one temporary database and compare."""
    from .runner import apply_policy

    started = time.perf_counter()
    tf, notes = _without_overrides(tf)
    with tempfile.TemporaryDirectory(prefix="crm-rules-test-") as tmp:
        db = Path(tmp) / "policy-tests.db"
        _write_database(db, tf)
        try:
            outcome = apply_policy(db, tf.policy, tf.as_of)
        except PolicyError:
            raise
        except CrmRulesError as exc:
            raise type(exc)(f"{tf.display}: the policy could not run on the test customers: {exc.message}",
                            hint=exc.hint or "policy tests build the tables and columns of the policy's data mapping "
                                             "(customers, orders, receivables, interactions, contracts)") from exc
        assignments, actions = _read_results(db, outcome.run_id)
        stored = set()
        for a in assignments.values():
            stored |= set(a["metrics"])
        outcome_name = credit_outcome_name(tf.policy)
        wanted = {outcome_name if k == "credit_outcome" else k for c in tf.cases for k in c.expect
                  if k not in GRADES and k not in ("actions", "actions_include")}
        missing = sorted(n for n in wanted if n and n not in stored)
        values = _computed_values(db, tf, missing) if missing else {}
        results, failures = [], []
        for case in tf.cases:
            a = assignments[case.customer_id]
            actual, mismatches = _compare(case, a, actions.get(case.customer_id, []), values.get(case.customer_id, {}),
                                          outcome_name)
            result = {"file": tf.display, "name": case.name, "where": str(case.where), "customer_id": case.customer_id,
                      "passed": not mismatches, "expected": case.expect, "actual": actual,
                      "rules": {"tier": a["tier_rule"], "subgrade": a["subgrade_rule"], "stage": a["stage_rule"]}}
            results.append(result)
            if mismatches:
                failure = {k: result[k] for k in ("file", "name", "where", "customer_id", "expected", "actual")}
                failure["mismatches"] = mismatches
                failure["explanation"] = _explanation(db, tf, case, a, actions.get(case.customer_id, []), mismatches) if explain else ""
                failures.append(failure)
    return {
        "file": tf.display, "policy": tf.policy.name, "policy_file": tf.policy.files[0], "as_of": tf.as_of,
        "run_id": outcome.run_id, "cases": results, "failures": failures, "population": len(tf.population),
        "passed": sum(r["passed"] for r in results), "failed": len(failures),
        "seconds": round(time.perf_counter() - started, 3), "notes": outcome.notes,
        "test_notes": notes,  # printed; the run's notes are mostly of the made-up data (tables the file leaves empty)
        "coverage": _file_coverage(tf, assignments),
    }


def _explanation(db: Path, tf: PolicyTestFile, case: Case, a: dict, acts: list[dict], mismatches: list[dict]) -> str:
    from .explain import explain_customer

    try:
        e = explain_customer(db, tf.policy, case.customer_id, tf.as_of)
    except CrmRulesError as exc:  # pragma: no cover - the same policy just ran on the same database
        return f"(no explanation: {exc.message})"
    keys = [m["key"] for m in mismatches]
    outcome_name = credit_outcome_name(tf.policy)
    names = [outcome_name if k == "credit_outcome" else k for k in keys if k not in GRADES and not k.startswith("actions")]
    for name in list(names):  # a credit outcome is explained by the check's score, grade and reason
        if name.endswith("_outcome"):
            entry = name[: -len("_outcome")]
            names += [n for n in (entry, f"{entry}_grade", f"{entry}_reason") if n in tf.policy.outputs and n not in names]
    show_actions = any(k.startswith("actions") for k in keys)
    return explanation_text(e, acts if show_actions else None, names)


# ---- coverage ----------------------------------------------------------------------------

def _rules(policy: Policy) -> dict[str, list[dict]]:
    def where(path: tuple) -> str:
        pos = policy.source.position(path)
        return f"{pos.file}:{pos.line}"

    return {
        "tiers": [{"id": t.id, "label": t.rule.label, "default": t.rule.is_default, "where": where(t.rule.path)} for t in policy.tiers],
        "subgrades": [{"id": s.id, "tier": t.id, "label": s.label, "default": s.is_default, "where": where(s.path)}
                      for t in policy.tiers for s in t.subgrades],
        "stages": [{"id": s.id, "label": s.label, "default": s.is_default, "where": where(s.path)} for s in policy.stages],
        "service_levels": [{"id": s.id, "label": s.details.get("label", s.id), "default": False, "where": where(s.path)}
                           for s in written_service_levels(policy.service_levels)],  # one per entry, not per tier
    }


def _file_coverage(tf: PolicyTestFile, assignments: dict[str, dict]) -> dict[str, dict[str, list[str]]]:
    """kind -> rule id -> names of the cases it decided (for cases that check that grade)."""
    hits: dict[str, dict[str, list[str]]] = {k: {} for k in COVERAGE_KINDS}
    for case in tf.cases:
        a = assignments[case.customer_id]
        checks = {"tiers": "tier" in case.expect or "subgrade" in case.expect, "subgrades": "subgrade" in case.expect,
                  "stages": "stage" in case.expect, "service_levels": "service_level" in case.expect}
        decided = {"tiers": a["tier"], "subgrades": a["subgrade"], "stages": a["stage"], "service_levels": a["service_level"]}
        for kind, checked in checks.items():
            if checked and decided[kind] is not None:
                hits[kind].setdefault(decided[kind], []).append(case.name)
    return hits


def _coverage(files: list[tuple[PolicyTestFile, dict]]) -> list[dict]:
    by_policy: dict[tuple[str, str], dict] = {}
    for tf, result in files:
        key = (tf.policy.name, str(tf.policy_path.resolve()))
        entry = by_policy.get(key)
        if entry is None:
            entry = by_policy[key] = {"policy": tf.policy.name, "policy_file": tf.policy.files[0], "test_files": [],
                                      "_rules": _rules(tf.policy), "_hits": {k: {} for k in COVERAGE_KINDS}}
        entry["test_files"].append(tf.display)
        for kind, hits in result["coverage"].items():
            for rule, names in hits.items():
                entry["_hits"][kind].setdefault(rule, []).extend(f"{tf.display}::{n}" for n in names)
    out = []
    for entry in by_policy.values():
        rules, hits = entry.pop("_rules"), entry.pop("_hits")
        complete = True
        for kind in COVERAGE_KINDS:
            listed = [{**r, "cases": len(hits[kind].get(r["id"], []))} for r in rules[kind]]
            unexercised = [r["id"] for r in listed if not r["cases"]]
            entry[kind] = {"rules": listed, "exercised": [r["id"] for r in listed if r["cases"]], "unexercised": unexercised}
            if kind != "service_levels" and unexercised:
                complete = False
        entry["complete"] = complete  # every tier, sub-grade and stage rule exercised
        out.append(entry)
    return out


# ---- the whole run ------------------------------------------------------------------------

def run_policy_tests(paths: list[str | Path], explain: bool = True) -> dict:
    """Find, validate and run the test files of ``paths``; the report of every case, failure and rule coverage.

    Every invalid test file is reported at once (PolicyError, file:line:col) before anything runs.
    """
    started = time.perf_counter()
    files = find_test_files(paths)
    loaded: list[PolicyTestFile] = []
    problems: list[Diagnostic] = []
    hint = None
    of_tests = False  # a problem of a test file (or a CSV file it reads), not only of the policies they test
    for f in files:
        try:
            loaded.append(load_test_file(f))
        except PolicyError as exc:
            problems += exc.diagnostics
            hint = hint or exc.hint
            of_tests = of_tests or exc.subject is not None
    if problems:
        raise invalid_test_file(problems, hint=hint) if of_tests else PolicyError(problems, hint=hint)
    results = [(tf, run_test_file(tf, explain=explain)) for tf in loaded]
    cases = [c for _, r in results for c in r["cases"]]
    failures = [f for _, r in results for f in r["failures"]]
    return {
        "ok": not failures,
        "passed": len(cases) - len(failures),
        "failed": len(failures),
        "seconds": round(time.perf_counter() - started, 3),
        "files": [{k: r[k] for k in ("file", "policy", "policy_file", "as_of", "passed", "failed", "population", "seconds",
                                     "notes", "test_notes")}
                  | {"cases": len(r["cases"])} for _, r in results],
        "cases": cases,
        "failures": failures,
        "coverage": _coverage(results),
    }
