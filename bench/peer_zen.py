"""Peer: the grading as a GoRules zen-engine decision graph (JDM), one customer at a time.

The graph is generated from the loaded policy, not written by hand, so it
cannot drift from base.yaml: four decision tables with hit policy "first"
(tier, sub-grade, lifecycle stage, service level), each rule's condition the
policy's own, translated to zen's expression language with SQL's NULL
semantics (peers.condition).  Sub-grade and service-level tables have one
input column per grade they dispatch on (unary tests such as "A"), as one
would draw them in the JDM editor, plus a condition column.

Inputs are the rows of the shared SQL aggregation (peer_sql) plus
credit_check_outcome, the verdict of crm-rules' 6C credit plugin, read from
the reference run's crm_metrics: the peer does not re-implement
the credit check.

Evaluation: the graph is loaded once into a ZenEngine (static loader) and
evaluated in a loop, one customer's row as JSON text per call.  Measured on
the 100k-customer benchmark database (one free core):
  - ZenEngine.evaluate(key, ctx): ~23 µs per customer plus ~6 µs of json.dumps;
  - ZenDecision.evaluate(ctx), on the object create_decision returns: ~240 µs
    per customer, ten times slower for the same graph, so it is not used;
  - evaluate_batch: ~39 µs per customer (no parallel speed-up), and
    async_evaluate gathered on an asyncio loop: ~72 µs;
  - a dict instead of JSON text is ~10% faster, but the binding rounds floats
    to about 15 significant digits on the way in: a Pareto share of
    0.7999999999999999 arrives as 0.8 and the customer drops from A to B.
    JSON text is parsed exactly, so that is what the peer passes.
"""

from __future__ import annotations

import json

import zen

from peers import DecisionLists, PeerRun, decision_lists, run_after_sql

GRADES = ("_tier", "_subgrade", "_stage", "_service_level")  # policy names cannot start with "_": no clash


def _node(node_id: str, kind: str, name: str, content: dict | None = None) -> dict:
    node = {"id": node_id, "type": kind, "name": name, "position": {"x": 0, "y": 0}}
    if content is not None:
        node["content"] = content
    return node


def _table(node_id: str, output: str, columns: list[str], rows: list[tuple[list[str], str]]) -> dict:
    """A hit-policy-first decision table; ``columns`` are input fields, "" for the condition column."""
    inputs = [{"id": f"in{i}", "name": c or "condition", **({"field": c} if c else {})} for i, c in enumerate(columns)]
    rules = [{"_id": f"{node_id}{n}", **{f"in{i}": cell for i, cell in enumerate(cells)}, "out": json.dumps(value)}
             for n, (cells, value) in enumerate(rows)]
    return _node(node_id, "decisionTableNode", output, {
        "hitPolicy": "first", "passThrough": False, "inputField": None, "outputPath": None, "executionMode": "single",
        "inputs": inputs, "outputs": [{"id": "out", "name": output, "field": output}], "rules": rules})


def _unary(value: str | None) -> str:
    """Unary test cell: equal to ``value``, or any value when None."""
    return "" if value is None else json.dumps(value)


def _rows(rules: list[tuple[str, str | None]]) -> list[tuple[list[str], str]]:
    return [([cond or ""], rid) for rid, cond in rules]


def decision_graph(lists: DecisionLists) -> dict:
    """The JDM document: request -> tier -> sub-grade; request -> stage; all -> service level -> response."""
    subgrades = [([_unary(tier), cond or ""], rid) for tier, rules in lists.subgrades.items() for rid, cond in rules]
    services = [([_unary(s.tier), _unary(s.subgrade), _unary(s.stage), s.when or ""], s.id) for s in lists.service_levels]
    nodes = [
        _node("request", "inputNode", "request"),
        _table("tier", "_tier", [""], _rows(lists.tiers)),
        _table("subgrade", "_subgrade", ["_tier", ""], subgrades),
        _table("stage", "_stage", [""], _rows(lists.stages)),
        _table("service", "_service_level", ["_tier", "_subgrade", "_stage", ""], services),
        _node("response", "outputNode", "response"),
    ]
    edges = [("request", "tier"), ("request", "subgrade"), ("tier", "subgrade"), ("request", "stage"),
             ("request", "service"), ("tier", "service"), ("subgrade", "service"), ("stage", "service"),
             ("tier", "response"), ("subgrade", "response"), ("stage", "response"), ("service", "response")]
    return {"nodes": nodes, "edges": [{"id": f"e{i}", "sourceId": a, "targetId": b, "type": "edge"}
                                      for i, (a, b) in enumerate(edges)]}


KEY = "grading"


def create_engine(policy) -> zen.ZenEngine:
    """An engine holding the policy's graph under KEY; it compiles the graph once and keeps it."""
    graph = decision_graph(decision_lists(policy))
    return zen.ZenEngine({"loader": {"type": "static", "content": {KEY: graph}}})


def evaluate(engine: zen.ZenEngine, rows: list[dict]) -> list[tuple]:
    """(customer_id, tier, subgrade, stage, service_level) per row: one evaluation of the graph per customer."""
    dumps, evaluate_one = json.dumps, engine.evaluate
    out = []
    for row in rows:
        result = evaluate_one(KEY, dumps(row))["result"]
        out.append((row["customer_id"], *(result.get(g) for g in GRADES)))
    return out


def run(db: str, as_of: str, run_id: int, policy=None) -> PeerRun:
    return run_after_sql(db, as_of, run_id, policy, create_engine, evaluate)
