"""Pareto cut-offs in explain: the value this customer needs, everyone else as they are, checked by re-running."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from small_db import make_db

from crm_rules.engine import explain
from crm_rules.engine.explain import explain_customer
from crm_rules.engine.pareto_cutoffs import Cutoff, cutoff
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

AS_OF = "2026-06-30"
POLICY = """metrics:
  revenue_12m: {sum: amount, window: 12 months}
tiers:
  method: pareto
  metric: revenue_12m
  levels:
    - {id: A, up_to: 0.8}
    - {id: B, up_to: 0.95}
    - {id: C}
"""
REVENUE = {"a": 50, "b": 30, "c": 15, "d": 5, "e": 0}
_SENTENCE = re.compile(r"would (?:be|drop to) (\w) if revenue_12m (≥|<) ([\d,.]+) \(now [\d,.]+\)")


def database(path: Path, revenue: dict) -> Path:
    return make_db(path, [(c, c.upper(), "r") for c in revenue],
                   orders=[(c, "2026-06-01", amount) for c, amount in revenue.items() if amount])


def tier_of(tmp_path: Path, customer: str, amount: float) -> str:
    """The tier a fresh run gives ``customer`` with revenue ``amount``, the others as in REVENUE."""
    db = database(tmp_path / f"check_{customer}_{amount}.db", {**REVENUE, customer: amount})
    apply_policy(db, load_policy(tmp_path / "p.yaml"), AS_OF)
    return sqlite3.connect(db).execute("SELECT tier FROM crm_assignments WHERE customer_id = ?", (customer,)).fetchone()[0]


@pytest.fixture
def policy(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(POLICY, encoding="utf-8")
    return load_policy(tmp_path / "p.yaml")


def test_the_sentences_hold_when_the_data_changes(tmp_path, policy):
    # "the lowest revenue in A now" was given as the cut-off: b at 29 "would drop to B" but stayed A, and c was
    # told it needed 30 where 15.01 takes it into A
    db = database(tmp_path / "d.db", REVENUE)
    said = {c: explain_customer(db, policy, c, AS_OF)["why"]["tier"] for c in REVENUE}
    assert said["b"]["down"] == ["would drop to B if revenue_12m < 11.26 (now 30)"]
    assert said["c"]["up"] == ["would be A if revenue_12m ≥ 15.01 (now 15)"]
    assert said["d"]["up"] == ["would be A if revenue_12m ≥ 15 (now 5)", "would be B if revenue_12m ≥ 5.01 (now 5)"]
    for customer, why in said.items():
        for sentence in why["up"] + why["down"]:
            tier, op, number = _SENTENCE.fullmatch(sentence).groups()
            at = float(number.replace(",", ""))
            inside, outside = (at, round(at - 0.01, 2)) if op == "≥" else (round(at - 0.01, 2), at)
            assert tier_of(tmp_path, customer, inside) == tier, sentence
            assert tier_of(tmp_path, customer, outside) != tier, sentence


RANKED = {"top_n": POLICY.replace("pareto", "top_n").replace("up_to: 0.8", "top: 1").replace("up_to: 0.95", "top: 3"),
          "quantile": POLICY.replace("pareto", "quantile").replace("up_to: 0.8", "top: 0.25").replace("up_to: 0.95", "top: 0.6")}


@pytest.mark.parametrize("method", sorted(RANKED))
def test_quantile_and_top_n_tiers_speak_in_values_that_hold(tmp_path, method):
    """'would be A if _tier_rank ≤ 1 (now 3)' told the customer a rank, not what to sell: the sentences are now
    values of the tier metric, each checked by a fresh run with the customer's value there and a cent below."""
    (tmp_path / "p.yaml").write_text(RANKED[method], encoding="utf-8")
    ranked = load_policy(tmp_path / "p.yaml")
    db = database(tmp_path / "d.db", REVENUE)
    said = {c: explain_customer(db, ranked, c, AS_OF)["why"]["tier"] for c in REVENUE}
    assert said["c"]["because"].startswith("tier B by rank of revenue_12m, in the top ")
    assert said["c"]["up"] == ["would be A if revenue_12m ≥ 50 (now 15)"]  # a tie with a: both rank 1
    assert not any("_tier_rank" in s for why in said.values() for s in why["up"] + why["down"])
    for customer, why in said.items():
        for sentence in why["up"] + why["down"]:
            match = _SENTENCE.fullmatch(sentence)
            if match is None:  # "would drop to C if revenue_12m ≤ 0": the rest tier needs a positive value
                assert sentence.startswith("would drop to C if revenue_12m ≤ 0"), sentence
                continue
            tier, op, number = match.groups()
            at = float(number.replace(",", ""))
            inside, outside = (at, round(at - 0.01, 2)) if op == "≥" else (round(at - 0.01, 2), at)
            assert tier_of(tmp_path, customer, inside) == tier, sentence
            assert tier_of(tmp_path, customer, outside) != tier, sentence
    apply_policy(db, ranked, AS_OF)  # a stored run says the same
    assert {c: explain_customer(db, ranked, c, AS_OF)["why"]["tier"] for c in REVENUE} == said


def test_a_large_stored_run_gives_quantile_and_top_n_tiers_their_rank_conditions(tmp_path, monkeypatch):
    (tmp_path / "p.yaml").write_text(RANKED["top_n"], encoding="utf-8")
    ranked = load_policy(tmp_path / "p.yaml")
    db = database(tmp_path / "d.db", REVENUE)
    apply_policy(db, ranked, AS_OF)
    monkeypatch.setattr(explain, "PARETO_READ_LIMIT", 4)  # too many customers to read every value
    why = explain_customer(db, ranked, "c", AS_OF)["why"]["tier"]
    assert why["up"] == ["would be A if _tier_rank ≤ 1 (now 3)"]


def test_a_stored_run_gives_the_same_cut_offs(tmp_path, policy):
    db = database(tmp_path / "d.db", REVENUE)
    computed = {c: explain_customer(db, policy, c, AS_OF)["why"]["tier"] for c in REVENUE}
    apply_policy(db, policy, AS_OF)
    stored = {c: explain_customer(db, policy, c, AS_OF) for c in REVENUE}
    assert all(s["source"]["path"] == "stored" for s in stored.values())
    assert {c: s["why"]["tier"] for c, s in stored.items()} == computed


def test_a_large_stored_run_says_about(tmp_path, policy, monkeypatch):
    # reading every value of a million-customer run would take explain past a second: the lowest value stands in
    db = database(tmp_path / "d.db", REVENUE)
    apply_policy(db, policy, AS_OF)
    monkeypatch.setattr(explain, "PARETO_READ_LIMIT", 4)
    why = explain_customer(db, policy, "c", AS_OF)["why"]["tier"]
    assert why["up"] == ["would be A if revenue_12m ≥ about 30 (the lowest revenue_12m in A now; the cut-off moves a "
                         "little with this customer's own revenue_12m; now 15)"]
    assert why["down"][0].startswith("would drop to C if revenue_12m < about 15 (the lowest revenue_12m in B now;")


@pytest.mark.parametrize("others,share,expected", [
    ([50, 15, 5], 0.8, Cutoff(11.25)),  # between two others' values
    ([50, 30, 15], 0.8, Cutoff(15, inclusive=True)),  # on another's value: equal values are peers, none ahead
    ([], 0.8, Cutoff(0.0)),  # alone: any positive value
    ([10, 10], 0.5, Cutoff(10, inclusive=True)),
])
def test_cutoff(others, share, expected):
    got = cutoff(others, share)
    assert got.inclusive == expected.inclusive and got.value == pytest.approx(expected.value)


def test_the_least_amount_in_cents_stays_true():
    assert Cutoff(11.25).least == 11.26 and Cutoff(4.476).least == 4.48 and Cutoff(4.4736).least == 4.48
    assert Cutoff(15, inclusive=True).least == 15


def test_the_only_customer_with_revenue_drops_to_the_default_without_it(tmp_path, policy):
    db = make_db(tmp_path / "one.db", [("a", "A", "r"), ("z", "Z", "r")], orders=[("a", "2026-06-01", 50)])
    assert explain_customer(db, policy, "a", AS_OF)["why"]["tier"]["down"] == [
        "would drop to C if revenue_12m < 0.01 (now 50)"]
