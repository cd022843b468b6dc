"""The value_scoring plugin's arithmetic on hand-made customers: weighted_value and rfm."""

from __future__ import annotations

import math

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.policy_model import load_policy
from small_db import make_db, run

# revenue_12m: d 0 (no orders), a 100, b 200, c 300; avg_order: d missing
CUSTOMERS = [("a", "A", "x"), ("b", "B", "x"), ("c", "C", "x"), ("d", "D", "x")]
ORDERS = [("a", "2026-06-01", 100), ("b", "2026-06-01", 200), ("c", "2026-06-01", 300)]
METRICS = ("metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n  avg_order: {avg: amount}\n"
           "  recency_days: {recency: orders}\n  orders_12m: {count: orders, window: 12 months}\n")
TIERS = "tiers:\n  levels: [{id: all, default: true}]\n"


@pytest.fixture
def db(tmp_path):
    return make_db(tmp_path / "v.db", CUSTOMERS, orders=ORDERS)


def scores(tmp_path, db, params: str, output: str = "v") -> dict:
    got = run(tmp_path, METRICS + f"scores:\n  v:\n    use: weighted_value\n    params:\n{params}" + TIERS, db)
    return {cid: v[4][output] for cid, v in got.items()}


def test_percentile_normalisation_ties_share(tmp_path, db):
    got = scores(tmp_path, db, "      factors: [{metric: revenue_12m, weight: 1}]\n")
    assert got == {"d": 0, "a": pytest.approx(100 / 3), "b": pytest.approx(200 / 3), "c": 100}


def test_minmax_and_better_low_cancel_out(tmp_path, db):
    got = scores(tmp_path, db, "      factors:\n        - {metric: revenue_12m, weight: 0.5, normalize: minmax}\n"
                               "        - {metric: revenue_12m, weight: 0.5, normalize: minmax, better: low}\n"
                               "      grades: [{id: hi, min: 60}, {id: mid, min: 50}, {id: lo}]\n", "v_grade")
    assert got == {"a": "mid", "b": "mid", "c": "mid", "d": "mid"}  # exactly 50, on the boundary


def test_zscore_is_mapped_from_minus_3_to_3(tmp_path, db):
    got = scores(tmp_path, db, "      factors: [{metric: revenue_12m, weight: 1, normalize: zscore}]\n")
    sd = math.sqrt((0 + 100**2 + 200**2 + 300**2) / 4 - 150**2)
    for cid, x in {"d": 0, "a": 100, "b": 200, "c": 300}.items():
        assert got[cid] == pytest.approx(100 * ((x - 150) / sd + 3) / 6)


def test_bands_include_their_upper_bound(tmp_path, db):
    got = scores(tmp_path, db, "      factors:\n        - metric: revenue_12m\n          weight: 1\n          normalize: bands\n"
                               "          bands: [{up_to: 100, score: 0.2}, {up_to: 250, score: 0.6}, {score: 1}]\n")
    assert got == {"d": 20, "a": 20, "b": 60, "c": 100}


@pytest.mark.parametrize("missing, expected_d", [("skip", 100), ("zero", 50), ("mean", 75)])
def test_missing_factor_policy(tmp_path, db, missing, expected_d):
    got = scores(tmp_path, db, f"      missing: {missing}\n      factors:\n"
                               "        - {metric: revenue_12m, weight: 0.5, normalize: minmax, better: low}\n"
                               "        - {metric: avg_order, weight: 0.5, normalize: minmax}\n")
    assert got["d"] == pytest.approx(expected_d)
    assert got["c"] == pytest.approx(50)  # revenue minmax 1 -> low-is-better 0; avg_order 1


def test_all_factors_missing_gives_no_score(tmp_path, db):
    got = scores(tmp_path, db, "      factors: [{metric: avg_order, weight: 1}]\n")
    assert got["d"] is None and got["c"] == 100


def test_everyone_equal_is_the_middle(tmp_path):
    db = make_db(tmp_path / "eq.db", [("a", "A", "x"), ("b", "B", "x")], orders=[("a", "2026-06-01", 5), ("b", "2026-06-01", 5)])
    got = scores(tmp_path, db, "      factors: [{metric: revenue_12m, weight: 1, normalize: minmax}]\n")
    assert got == {"a": 50, "b": 50}


def test_scale_and_grades(tmp_path, db):
    got = scores(tmp_path, db, "      scale: 10\n      factors: [{metric: revenue_12m, weight: 1}]\n"
                               "      grades: [{id: top, min: 10}, {id: good, min: 6}, {id: rest}]\n", "v_grade")
    assert got == {"c": "top", "b": "good", "a": "rest", "d": "rest"}


@pytest.mark.parametrize("params, message", [
    ("      factors: [{metric: revenue_12m, weight: 0.5}, {metric: avg_order, weight: 0.4}]\n",
     ":10:16: scores.v.params.factors: the weights add up to 0.9; they must add up to 1 "
     "(scorer 'weighted_value' of plugin 'value_scoring')"),
    ("      factors: [{metric: revenue_12n, weight: 1}]\n", "unknown metric 'revenue_12n'; did you mean 'revenue_12m'?"),
    ("      factors: [{metric: revenue_12m, weight: 1, normalize: bands}]\n", "normalize: bands needs a `bands` list"),
    ("      factors: [{metric: revenue_12m, weight: 1, normalize: bands, bands: [{up_to: 5, score: 1}]}]\n",
     "the last band must have no `up_to`"),
    ("      factors: [{metric: revenue_12m, weight: 1}]\n      grades: [{id: a, min: 10}, {id: b, min: 50}, {id: c}]\n",
     "`min` values must decrease"),
    ("      factors: [{metric: revenue_12m, wieght: 1}]\n", "unknown key 'wieght'; did you mean 'weight'?"),
])
def test_bad_params_are_reported_in_the_policy(tmp_path, params, message):
    policy = tmp_path / "p.yaml"
    policy.write_text(METRICS + f"scores:\n  v:\n    use: weighted_value\n    params:\n{params}" + TIERS)
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    text = str(info.value)
    assert (f"{policy}{message}" if message.startswith(":") else message) in text, text


def rfm(tmp_path, db, params: str = "") -> dict:
    got = run(tmp_path, METRICS + "scores:\n  r:\n    use: rfm\n    params:\n"
              "      {recency: recency_days, frequency: orders_12m, monetary: revenue_12m" + params + "}\n" + TIERS, db)
    return {cid: (v[4]["r_r"], v[4]["r_f"], v[4]["r_m"], v[4]["r"], v[4]["r_score"]) for cid, v in got.items()}


def test_rfm_scores_ties_and_missing(tmp_path):
    db = make_db(tmp_path / "r.db", CUSTOMERS, orders=[
        ("a", "2026-06-29", 100), ("a", "2026-06-01", 100), ("b", "2026-06-29", 500), ("c", "2026-01-01", 50)])
    got = rfm(tmp_path, db, ", n: 5")
    # recency (lower is better): c 180 days is worst; a and b tie at 1 day. d never ordered: no recency score.
    assert got["c"][0] == 1 and got["a"][0] == got["b"][0] == 1 + (5 * 1) // 3
    assert got["d"][0] is None
    # frequency: d 0, b 1, c 1 (tie), a 2 -> among 4 customers
    assert (got["d"][1], got["b"][1], got["c"][1], got["a"][1]) == (1, 1 + 5 * 1 // 4, 1 + 5 * 1 // 4, 1 + 5 * 3 // 4)
    # monetary: d 0, c 50, a 200, b 500
    assert [got[c][2] for c in "dcab"] == [1 + 5 * i // 4 for i in range(4)]
    assert got["d"][3] == "need_attention" and got["d"][4] is None  # no recency -> default segment


def test_rfm_custom_segments_use_r_f_m_and_metrics(tmp_path, db):
    got = rfm(tmp_path, db, ", n: 3, segments: [{id: vip, when: 'm = 3 and revenue_12m >= 300'}, {id: active, when: 'r >= 1'}, {id: other}]")
    assert {c: v[3] for c, v in got.items()} == {"c": "vip", "a": "active", "b": "active", "d": "other"}


def test_rfm_segment_errors(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(METRICS + "scores:\n  r:\n    use: rfm\n    params:\n      {recency: recency_days, frequency: orders_12m, "
                      "monetary: revenue_12m, segments: [{id: x}, {id: y, when: 'z > 1'}]}\n" + TIERS)
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    assert "only the last rule may have no `when`" in str(info.value)


def test_bands_score_the_factor_without_normalize_bands(tmp_path, db):
    got = scores(tmp_path, db, "      normalize: minmax\n      factors:\n        - metric: revenue_12m\n          weight: 1\n"
                               "          bands: [{up_to: 100, score: 0.2}, {up_to: 250, score: 0.6}, {score: 1}]\n")
    assert got == {"d": 20, "a": 20, "b": 60, "c": 100}


@pytest.mark.parametrize("params, messages", [
    # bands next to an explicit other normalize, or better: low: errors at their keys
    ("      factors:\n        - {metric: revenue_12m, weight: 0.5, normalize: percentile, bands: [{up_to: 1, score: 0}, {score: 1}]}\n"
     "        - {metric: avg_order, weight: 0.5, better: low, bands: [{up_to: 1, score: 0}, {score: 1}]}\n",
     [":11:57: scores.v.params.factors[0].normalize: `normalize: percentile` contradicts `bands`",
      ":12:52: scores.v.params.factors[1].better: `better: low` does not apply to `bands`"]),
    # equal band limits, equal grade minimums, duplicate grade ids
    ("      factors: [{metric: revenue_12m, weight: 1, bands: [{up_to: 5, score: 0}, {up_to: 5, score: 1}, {score: 1}]}]\n"
     "      grades: [{id: a, min: 50}, {id: b, min: 50}, {id: a}]\n",
     ["bands need strictly increasing `up_to` values", "`min` values must decrease, with no two equal",
      "scores.v.params.grades[2].id: duplicate grade id 'a'"]),
    # grade errors come with the other errors, not after them
    ("      factors: [{metric: revenue_12n, weight: 1}]\n      grades: [{id: a, min: 10}, {id: b, min: 50}, {id: c}]\n",
     ["unknown metric 'revenue_12n'", "`min` values must decrease"]),
])
def test_more_bad_params_are_reported_all_at_once(tmp_path, params, messages):
    policy = tmp_path / "p.yaml"
    policy.write_text(METRICS + f"scores:\n  v:\n    use: weighted_value\n    params:\n{params}" + TIERS)
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    text = str(info.value)
    for message in messages:
        assert (f"{policy}{message}" if message.startswith(":") else message) in text, text


def test_rfm_segment_with_when_and_default_is_an_error(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(METRICS + "scores:\n  r:\n    use: rfm\n    params:\n      {recency: recency_days, frequency: orders_12m, "
                      "monetary: revenue_12m, segments: [{id: x, when: 'r > 1'}, {id: y, when: 'f > 1', default: true}]}\n" + TIERS)
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    assert "scores.r.params.segments[1]: rule 'y' has both `when` and `default: true`" in str(info.value), str(info.value)
