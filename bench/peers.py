"""Run one benchmark peer, time it, and check it customer by customer against crm-rules.

Usage: python bench/peers.py {zen,rule-engine,pandas} DB --as-of 2026-06-30 --run RUN_ID

A peer computes the grading of policies/base.yaml (tier, sub-grade, lifecycle
stage, service level) with another tool.  RUN_ID is a crm-rules run of the
same policy in DB: its crm_assignments rows are the reference answers, and the
only input the zen and rule-engine peers take from it is the credit plugin's
verdict (credit_check_outcome, the 6C check), which they do not re-implement:
they are compared on rule evaluation.  The pandas script works from the raw
tables alone, the credit verdict included, as an analyst's script must.
Verification runs after the timed part, so it never counts against a peer.
Prints one JSON line; exits 1 when any answer differs.

This module also holds what the zen and rule-engine peers share: the
policy's rules as ordered first-hit decision lists, with every condition
translated from SQL's three-valued logic into the two-valued expression
language both engines speak.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))  # a checkout named crm_rules
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the peer modules next to this file

from crm_rules.engine import expr_ast as ast  # noqa: E402
from crm_rules.engine.policy_model import Policy  # noqa: E402
from crm_rules.engine.run_metrics import RunMetrics  # noqa: E402

PEERS = {"zen": "peer_zen", "rule-engine": "peer_rule_engine", "pandas": "peer_pandas"}
FIELDS = ("tier", "subgrade", "stage", "service_level")
MAX_EXAMPLES = 3


# ---- conditions: SQL three-valued logic as two-valued expressions -------------------------------

_INVERSE = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_OPERATOR = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def literal(value) -> str:
    """A literal both zen and rule-engine read as the value SQLite compares with."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _value(node: ast.Node) -> tuple[str, list[str]]:
    """(expression text, tests that it is not NULL): SQL NULL propagates through arithmetic."""
    match node:
        case ast.Literal(value=v):
            return literal(v), ([] if v is not None else ["false"])
        case ast.Name(name=name):
            return name, [f"{name} != null"]
        case ast.Negate(operand=o):
            text, defined = _value(o)
            return f"(-{text})", defined
        case ast.Arithmetic(op=op, left=left, right=right):
            (lt, ld), (rt, rd) = _value(left), _value(right)
            nonzero = isinstance(right, ast.Literal) and right.value not in (None, 0)
            defined = ld + rd + ([f"{rt} != 0"] if op == "/" and not nonzero else [])  # x / 0 is NULL in the engine
            return f"({lt} {op} {rt})", defined
    raise NotImplementedError(f"the peers do not translate {node.text!r}")


def _all(tests: list[str]) -> str:
    tests = list(dict.fromkeys(tests))
    if "false" in tests:
        return "false"
    return " and ".join(tests) if tests else "true"


def _compare(op: str, left: ast.Node, right: ast.Node) -> str:
    """True exactly when SQL's comparison is true: both sides known and the comparison holds."""
    (lt, ld), (rt, rd) = _value(left), _value(right)
    return f"({_all(ld + rd + [f'{lt} {_OPERATOR[op]} {rt}'])})"


def _truth(node: ast.Node, want: bool) -> str:
    """Expression that is true iff SQL evaluates ``node`` to ``want`` (never to NULL).

    A rules engine has no unknown: zen raises on `null > 5`, rule-engine raises
    a type mismatch, and both read `not x` as plain negation.  SQL's CASE takes
    a rule only when its condition is true, so `x > 120 or t <= -0.3` with x
    false and t NULL must not match, and `not (x > 5)` must not match when x is
    NULL.  Tracking "is true" and "is false" separately (a NULL is neither)
    reproduces that exactly.
    """
    match node:
        case ast.Literal(value=v):
            return "false" if v is None or bool(v) != want else "true"
        case ast.Compare(op=op, left=left, right=right):
            return _compare(op if want else _INVERSE[op], left, right)
        case ast.Logical(op=op, items=items):
            joiner = " and " if (op == "and") == want else " or "
            return "(" + joiner.join(_truth(i, want) for i in items) + ")"
        case ast.Not(operand=o):
            return _truth(o, not want)
        case ast.IsNull(operand=o, negated=negated):
            return _is_null(_value(o)[1], want != negated)
        case ast.InList(operand=o, items=items, negated=negated):
            return _in_list(o, items, want != negated)
        case ast.Between(operand=o, low=low, high=high):
            both = ast.Logical(node.line, node.col, node.text, "and",
                               (ast.Compare(node.line, node.col, node.text, ">=", o, low),
                                ast.Compare(node.line, node.col, node.text, "<=", o, high)))
            return _truth(both, want)
    raise NotImplementedError(f"the peers do not translate {node.text!r}")


def _is_null(defined: list[str], is_null: bool) -> str:
    """`e IS NULL` is never unknown: it is the negation of e's definedness tests."""
    if not is_null:
        return f"({_all(defined)})"
    if not defined:
        return "false"
    if all(t.endswith(" != null") for t in defined):  # the usual case: names only
        return "(" + " or ".join(t[: -len(" != null")] + " == null" for t in dict.fromkeys(defined)) + ")"
    return f"(not ({_all(defined)}))"


def _in_list(operand: ast.Node, items: tuple, want: bool) -> str:
    """`x IN (a, b)` is true if some x = item is true, false if all are false (a NULL item is never false)."""
    if all(isinstance(i, ast.Literal) and i.value is not None for i in items):
        text, defined = _value(operand)
        listed = "[" + ", ".join(literal(i.value) for i in items) + "]"
        test = f"{text} in {listed}" if want else f"not ({text} in {listed})"
        return f"({_all(defined + [test])})"
    equal = [ast.Compare(operand.line, operand.col, operand.text, "=", operand, i) for i in items]
    either = ast.Logical(operand.line, operand.col, operand.text, "or", tuple(equal))
    return _truth(either, want)


def condition(node: ast.Node) -> str:
    """The zen / rule-engine expression matching exactly the customers SQL's WHEN ``node`` matches."""
    return _truth(node, True)


# ---- the policy as first-hit decision lists ----------------------------------------------------

@dataclass
class ServiceRule:
    """One service level: the grades it is for, and its extra condition (None when it has none)."""

    id: str
    tier: str
    subgrade: str | None
    stage: str | None
    when: str | None


@dataclass
class DecisionLists:
    """The grading rules in evaluation order; a None condition is the default and comes last.

    Mirrors engine/classify_sql.py: a default rule is the CASE's ELSE wherever
    it stands in the list, sub-grades are chosen among their tier's only, and
    service levels are tried most specific first (condition, then sub-grade,
    then stage, then tier only), ties in policy order.
    """

    tiers: list[tuple[str, str | None]]
    subgrades: dict[str, list[tuple[str, str | None]]]
    stages: list[tuple[str, str | None]]
    service_levels: list[ServiceRule]
    names: set[str] = field(default_factory=set)  # every policy name the conditions read


def _first_hit(rules) -> list[tuple[str, str | None]]:
    out = [(r.id, condition(r.condition.node)) for r in rules if r.condition is not None]
    default = next((r for r in rules if r.is_default), None)
    return out + ([(default.id, None)] if default else [])


def decision_lists(policy: Policy) -> DecisionLists:
    names: set[str] = set()
    rules = [t.rule for t in policy.tiers] + [s for t in policy.tiers for s in t.subgrades] + list(policy.stages)
    for r in rules + [s for s in policy.service_levels]:
        if r.condition is not None:
            names |= ast.names_in(r.condition.node)
    ordered = sorted(enumerate(policy.service_levels), key=lambda p: (-p[1].specificity, p[0]))
    services = [ServiceRule(sl.id, sl.tier, sl.subgrade, sl.stage, condition(sl.condition.node) if sl.condition else None)
                for _, sl in ordered]
    return DecisionLists(
        tiers=_first_hit([t.rule for t in policy.tiers]),
        subgrades={t.id: _first_hit(t.subgrades) for t in policy.tiers if t.subgrades},
        stages=_first_hit(policy.stages),
        service_levels=services,
        names=names,
    )


# ---- inputs from the crm-rules run, and the verification ---------------------------------------

def plugin_inputs(policy: Policy, computed: Iterable[str]) -> list[str]:
    """Names the rules read that the peer does not compute: plugin outputs, taken from the run."""
    needed = decision_lists(policy).names - set(computed)
    unknown = needed - set(policy.outputs)
    if unknown:
        raise SystemExit(f"the peer's aggregation lacks {sorted(unknown)}, which the policy's rules read")
    return sorted(needed)


def run_inputs(conn: sqlite3.Connection, run_id: int, names: list[str]) -> dict[str, tuple]:
    """customer id -> values of ``names`` as the crm-rules run computed them (its crm_metrics)."""
    stored = RunMetrics.of_run(conn, run_id)
    cols = "".join(f", {stored.column(n)}" for n in names)
    rows = conn.execute(f"SELECT a.customer_id{cols} FROM crm_assignments AS a{stored.join()} WHERE a.run_id = ?", [run_id])
    return {r[0]: r[1:] for r in rows}


def add_run_inputs(rows: list[dict], names: list[str], values: dict[str, tuple]) -> None:
    """Put the plugin outputs from the crm-rules run (credit_check_outcome) into each input row."""
    missing = (None,) * len(names)
    for row in rows:
        row.update(zip(names, values.get(row["customer_id"], missing)))


def reference(conn: sqlite3.Connection, run_id: int) -> dict[str, tuple]:
    rows = conn.execute("SELECT customer_id, tier, subgrade, stage, service_level FROM crm_assignments WHERE run_id = ?",
                        (run_id,)).fetchall()
    if not rows:
        raise SystemExit(f"run {run_id} has no assignments in this database")
    return {r[0]: r[1:] for r in rows}


def reference_in(db: Path | str, run_id: int) -> dict[str, tuple]:
    """:func:`reference` of the database file ``db``, opened read-only for the call."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return reference(conn, run_id)
    finally:
        conn.close()


def compare_runs(results: Path | str, run_id: int, db: Path | str, reference_run: int) -> tuple[int, dict[str, int], list[dict]]:
    """:func:`compare` of crm-rules run ``run_id`` in the database ``results`` with run ``reference_run`` in ``db``."""
    answers = [(cid, *grades) for cid, grades in reference_in(results, run_id).items()]
    return compare(answers, reference_in(db, reference_run))


def compare(answers: Iterable[tuple], expected: dict[str, tuple]) -> tuple[int, dict[str, int], list[dict]]:
    """(customers answered, mismatches per field, a few examples); a missing customer answers None everywhere."""
    mismatches = dict.fromkeys(FIELDS, 0)
    examples: list[dict] = []
    seen = set()
    missing = (None,) * len(FIELDS)
    for cid, *got in answers:
        seen.add(cid)
        _tally(cid, tuple(got), expected.get(cid, missing), mismatches, examples)
    for cid in sorted(expected.keys() - seen):
        _tally(cid, missing, expected[cid], mismatches, examples)
    return len(seen), mismatches, examples


def _tally(cid: str, got: tuple, want: tuple, mismatches: dict, examples: list) -> None:
    if got == want:
        return
    for name, g, w in zip(FIELDS, got, want):
        mismatches[name] += g != w
    if len(examples) < MAX_EXAMPLES:
        examples.append({"customer_id": cid, "peer": dict(zip(FIELDS, got)), "crm_rules": dict(zip(FIELDS, want))})


# ---- the command line ------------------------------------------------------------------------

@dataclass
class PeerRun:
    """What a peer's run() returns: its answers, and the seconds of each part."""

    answers: Iterable[tuple]  # (customer_id, tier, subgrade, stage, service_level); may be lazy
    aggregate_s: float | None
    rules_s: float
    total_s: float


def run_after_sql(db: str, as_of: str, run_id: int, policy: Policy | None,
                  prepare: Callable[[Policy], Any], evaluate: Callable[[Any, list[dict]], list[tuple]]) -> PeerRun:
    """A per-record engine's run: the shared SQL aggregation, then ``evaluate`` timed on its own.

    ``prepare`` builds the engine from the policy (compiling rules is not
    rule evaluation, so it is outside the rules timing but inside the total).
    """
    import peer_sql
    from crm_rules.engine.policy_model import load_policy

    policy = policy or load_policy("base")
    started = time.perf_counter()
    conn = peer_sql.connect(db)
    rows = peer_sql.aggregate(conn, as_of)
    aggregated = time.perf_counter()
    names = plugin_inputs(policy, peer_sql.COLUMNS)
    add_run_inputs(rows, names, run_inputs(conn, run_id, names))
    engine = prepare(policy)
    rules_started = time.perf_counter()
    answers = evaluate(engine, rows)
    done = time.perf_counter()
    conn.close()
    return PeerRun(answers, aggregated - started, done - rules_started, done - started)


def _peak_mb() -> float:
    """High-water mark of this process's memory since exec (ru_maxrss also counts the parent's before exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("db", type=Path)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--run", type=int, required=True, help="crm-rules run id of the same policy in DB")
    args = parser.parse_args(argv)
    module = importlib.import_module(PEERS[args.peer])
    outcome = module.run(str(args.db), args.as_of, args.run)
    peak_mb = _peak_mb()
    customers, mismatches, examples = compare(outcome.answers, reference_in(args.db, args.run))
    print(json.dumps({"peer": args.peer, "aggregate_s": _round(outcome.aggregate_s), "rules_s": _round(outcome.rules_s),
                      "total_s": _round(outcome.total_s), "peak_mb": round(peak_mb, 1), "customers": customers,
                      "mismatches": mismatches, "examples": examples}, ensure_ascii=False))
    return 1 if any(mismatches.values()) else 0


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


if __name__ == "__main__":
    sys.modules.setdefault("peers", sys.modules[__name__])  # the peer modules import this one by name
    sys.exit(main())
