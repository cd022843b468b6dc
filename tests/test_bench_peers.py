"""The benchmark peers (bench/peer_*.py) grade exactly as crm-rules does.

A benchmark against other tools only means something if they compute the
same answers: each peer is run on a generated database and compared with a
crm-rules run of policies/base.yaml customer by customer.  A peer whose
package is not installed is skipped.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import peers  # noqa: E402
from crm_rules.engine.expr_parser import parse_expression  # noqa: E402
from crm_rules.engine.expr_sql import SqlParams, to_sql  # noqa: E402
from crm_rules.engine.policy_model import load_policy  # noqa: E402
from crm_rules.engine.runner import apply_policy  # noqa: E402

AS_OF = "2026-06-30"
PEERS = {"zen": ("zen", "peer_zen"), "rule-engine": ("rule_engine", "peer_rule_engine"), "pandas": ("pandas", "peer_pandas")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, int]:
    """A generated benchmark database with one crm-rules run of base.yaml: (path, run id)."""
    from generate import generate

    path = tmp_path_factory.mktemp("peers") / "bench.db"
    generate(path, customers=2_000, orders=20_000)
    outcome = apply_policy(path, load_policy("base"), AS_OF)
    return path, outcome.run_id


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_agrees_with_crm_rules(graded, name):
    package, module = PEERS[name]
    pytest.importorskip(package)
    db, run_id = graded
    outcome = __import__(module).run(str(db), AS_OF, run_id)
    customers, mismatches, examples = peers.compare(outcome.answers, peers.reference_in(db, run_id))
    assert customers == 2_000
    assert mismatches == dict.fromkeys(peers.FIELDS, 0), examples
    assert outcome.rules_s <= outcome.total_s


def test_the_peers_rules_alone_grade_as_the_full_policy(graded, tmp_path):
    """bench/peer_rules.yaml, what the pandas script is also compared with, must do the peers' work: the same grades."""
    db, run_id = graded
    results = tmp_path / "peer-rules.db"
    outcome = apply_policy(db, load_policy(str(BENCH / "peer_rules.yaml")), AS_OF, results_db=results)
    customers, mismatches, examples = peers.compare_runs(results, outcome.run_id, db, run_id)
    assert customers == 2_000
    assert mismatches == dict.fromkeys(peers.FIELDS, 0), examples


def test_cli_prints_one_json_line(graded, capsys):
    pytest.importorskip("pandas")
    db, run_id = graded
    assert peers.main(["pandas", str(db), "--as-of", AS_OF, "--run", str(run_id)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["customers"] == 2_000 and report["aggregate_s"] is None
    assert set(report) == {"peer", "aggregate_s", "rules_s", "total_s", "peak_mb", "customers", "mismatches", "examples"}


def test_compare_counts_every_difference():
    """The verification itself must notice a wrong grade and a missing customer."""
    expected = {"c1": ("A", "A1", "stable", "A-key"), "c2": ("B", None, "lost", "B-growth")}
    customers, mismatches, examples = peers.compare([("c1", "A", "A2", "stable", "A-key")], expected)
    assert customers == 1
    assert mismatches == {"tier": 1, "subgrade": 1, "stage": 1, "service_level": 1}  # c2's missing subgrade is right
    assert [e["customer_id"] for e in examples] == ["c1", "c2"]


CONDITIONS = [
    "x > 1 or y <= 2", "not (x > 1)", "not (x > 1 and y < 3)", "not (x > 1 or y < 3)", "x is null or y is not null",
    "s in ['a', 'b']", "s not in ['a', 'b']", "s in ['a', null]", "not (s in ['a', null])", "x between 1 and y",
    "not (x between 1 and 2)", "x / y > 1", "not (x / y > 1)", "(x + y) / 2 >= 1", "-x < -1", "x = 2 or not (y != 2)",
    "x / y is null", "not (x > null)", "x * 2 = y",
]


@pytest.mark.parametrize("engine", ["zen", "rule_engine"])
def test_conditions_keep_sql_null_semantics(engine):
    """A translated condition matches exactly the rows SQL's CASE WHEN matches, NULLs included."""
    module = pytest.importorskip(engine)
    compile_ = (lambda text: module.compile_expression(text).evaluate) if engine == "zen" else \
        (lambda text: module.Rule(text).matches)
    conn = sqlite3.connect(":memory:")
    for text in CONDITIONS:
        node = parse_expression(text)
        params = SqlParams()
        sql = to_sql(node, lambda name: f":{name}", params)
        matches = compile_(peers.condition(node))
        for x, y, s in itertools.product([None, 0, 1, 2, 3], [None, 0, 1, 2, 3], [None, "a", "c"]):
            row = {"x": x, "y": y, "s": s}
            want = conn.execute(f"SELECT CASE WHEN {sql} THEN 1 ELSE 0 END", {**params.values, **row}).fetchone()[0] == 1
            assert matches(row) == want, (text, row)
