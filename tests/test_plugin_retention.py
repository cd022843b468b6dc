"""The retention plugin's action generators, on tiny hand-made databases with exact expectations.

Tiers come from the customers' region column (A, B, anything else C) so each
test picks its customers' tiers directly; stages come from recency as in the
base policy.  The as-of date is 2026-06-30.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.plugin_manager import LOAD_ENV, reset_plugins
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy
from conftest import stored_metrics
from small_db import D, actions, make_db

HEAD = """\
name: retention-test
metrics:
  revenue_12m: {sum: amount, window: 12 months}
  profit_12m: {sum: amount - cost, window: 12 months}
  margin_12m: {expr: profit_12m / revenue_12m}
  orders_12m: {count: orders, window: 12 months}
  recency_days: {recency: orders}
  trend_6m: {trend: amount, window: 6 months}
  complaints_90d: {count: interactions, where: "kind = 'complaint'", window: 90d}
  complaints_prev_90d: {count: interactions, where: "kind = 'complaint' and date < '2026-04-02'", window: 180d}
  contract_days: {contract_days_left: contracts}
  contract_end: {max: end, from: contracts}
  days_to_end: {expr: "days_between(as_of(), contract_end)"}
  first_order: {min: date}
  last_order: {max: date}
  order_days: {count_distinct: date}
  usual_gap: {expr: "days_between(first_order, last_order) / (order_days - 1)"}
tiers:
  levels:
    - {id: A, when: "region = 'A'"}
    - {id: B, when: "region = 'B'"}
    - {id: C, default: true}
lifecycle:
  stages:
    - {id: lost, when: "recency_days is null or recency_days > 365"}
    - {id: decline, when: "recency_days > 120"}
    - {id: stable, default: true}
"""

AS_OF = dt.date.fromisoformat(D)


def day(n: int) -> str:
    """The as-of date plus n days."""
    return (AS_OF + dt.timedelta(days=n)).isoformat()


@pytest.fixture(autouse=True)
def _retention_plugins(monkeypatch):
    """Load exactly the plugins these tests need (others may be mid-development)."""
    monkeypatch.setenv(LOAD_ENV, "value_scoring,retention")
    reset_plugins()
    yield
    monkeypatch.undo()
    reset_plugins()


def write_policy(tmp_path: Path, actions_yaml: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(HEAD + actions_yaml, encoding="utf-8")
    return path


def apply(tmp_path: Path, db: Path, actions_yaml: str) -> list[dict]:
    outcome = apply_policy(db, load_policy(write_policy(tmp_path, actions_yaml)), D)
    return actions(db, outcome.run_id)


def brief(rows: list[dict]) -> list[tuple]:
    """(customer, action, category, priority, due date, reason), ordered by customer and action."""
    return [(r["customer_id"], r["action"], r["category"], r["priority"], r["due_date"], r["reason"]) for r in rows]


def policy_errors(tmp_path: Path, actions_yaml: str) -> tuple[Path, str]:
    path = write_policy(tmp_path, actions_yaml)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return path, str(info.value)


def position(path: Path, needle: str, occurrence: int = 1) -> str:
    """'file:line:col' of the n-th occurrence of ``needle`` in the file."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        col = line.find(needle)
        while col >= 0:
            seen += 1
            if seen == occurrence:
                return f"{path}:{number}:{col + 1}"
            col = line.find(needle, col + 1)
    raise AssertionError(f"{needle!r} not found")


def monthly(customer: str, first: str, months: int, amount: float = 100, cost: float = 0) -> list[tuple]:
    start = dt.date.fromisoformat(first)
    return [(customer, dt.date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, start.day).isoformat(),
             amount, cost) for i in range(months)]


# ---- exit_barriers -----------------------------------------------------------

def test_exit_barriers_by_tier_stage_and_condition(tmp_path):
    db = make_db(tmp_path / "crm.db",
                 [("a1", "Alpha", "A"), ("a2", "Beta", "A"), ("a3", "Gamma", "A"), ("b1", "Delta", "B"), ("c1", "Eps", "C")],
                 orders=monthly("a1", "2025-07-15", 12)                                   # 12 orders, stable
                 + [("a2", "2025-12-01", 100)] * 3                                        # decline (211 days)
                 + [("b1", "2026-05-01", 100), ("b1", "2026-06-01", 100)]                 # stable, 2 orders
                 + [("c1", "2026-06-01", 100)])                                           # stable, tier C; a3: none, lost
    conn = sqlite3.connect(db)
    conn.execute("UPDATE customers SET account_manager = '王经理' WHERE id = 'a1'")
    conn.commit()
    conn.close()
    rows = apply(tmp_path, db, """\
actions:
  barriers:
    use: exit_barriers
    params:
      tiers: [A, B]
      economic:
        - {rebate: 0.02}
        - {action: double_points, points: 2, stages: [decline], label: 积分翻倍, priority: 2}
      technical:
        - {action: edi_integration, when: "orders_12m >= 12", due_in_days: 30}
        - {action: dedicated_service, tiers: [A]}
""")
    assert brief(rows) == [
        ("a1", "dedicated_service", "technical", 3, D, "stable A customer: dedicated service"),
        ("a1", "edi_integration", "technical", 3, day(30), "stable A customer: edi integration (orders_12m=12)"),
        ("a1", "loyalty_rebate", "economic", 3, D, "stable A customer: loyalty rebate 2%"),
        ("a2", "double_points", "economic", 2, D, "decline A customer: 积分翻倍, points x2"),
        ("b1", "loyalty_rebate", "economic", 3, D, "stable B customer: loyalty rebate 2%"),
    ]
    assert {r["owner"] for r in rows if r["customer_id"] == "a1"} == {"王经理"}
    assert {r["owner"] for r in rows if r["customer_id"] != "a1"} == {"someone"}
    assert {(r["plugin"], r["generator"]) for r in rows} == {("retention", "barriers")}
    details = {(r["customer_id"], r["action"]): json.loads(r["details"]) for r in rows}
    assert details[("a1", "loyalty_rebate")] == {"rebate": 0.02}
    assert details[("a1", "edi_integration")] == {"when": "orders_12m >= 12"}
    assert details[("a2", "double_points")] == {"points": 2, "stages": ["decline"], "label": "积分翻倍"}
    assert '"积分翻倍"' in next(r["details"] for r in rows if r["action"] == "double_points")  # stored unescaped


def test_exit_barriers_default_is_every_tier_in_stable_stage(tmp_path):
    db = make_db(tmp_path / "crm.db", [("a1", "A1", "A"), ("c1", "C1", "C"), ("c2", "C2", "C")],
                 orders=[("a1", "2026-06-01", 100), ("c1", "2026-06-01", 5), ("c2", "2025-12-01", 5)])
    rows = apply(tmp_path, db, """\
actions:
  barriers: {use: exit_barriers, params: {economic: [{action: points_club, points: 1.5}]}}
""")
    assert brief(rows) == [
        ("a1", "points_club", "economic", 3, D, "stable A customer: points club, points x1.5"),
        ("c1", "points_club", "economic", 3, D, "stable C customer: points club, points x1.5"),
    ]


# ---- exit_barriers: contract renewal -----------------------------------------

def test_renewal_offer_due_dates_boundaries_and_missing_contracts(tmp_path):
    customers = [(c, c, t) for c, t in (("r_eq", "A"), ("r_in", "A"), ("r_far", "A"), ("r_today", "B"), ("r_ended", "A"),
                                        ("r_none", "A"), ("r_future", "A"), ("r_two", "A"), ("r_c", "C"))]
    orders = [(c, "2026-06-01", 100) for c, _, _ in customers if c != "r_in"] + [("r_in", "2025-12-01", 100)]
    contracts = [
        ("r_eq", "2025-09-29", day(90)),      # days left == N: offer due now
        ("r_in", "2025-08-15", day(45)),      # inside N (offer late): due now, any stage (r_in is in decline)
        ("r_far", "2025-09-30", day(91)),     # one day too early
        ("r_today", "2025-07-01", day(0)),    # ends on the as-of date
        ("r_ended", "2025-06-30", day(-1)),   # already ended: no active contract
        ("r_future", day(1), day(60)),        # not started yet
        ("r_two", "2025-07-01", day(10)),     # the latest-ending active contract counts: 200 days left
        ("r_two", "2025-07-01", day(200)),
        ("r_c", "2025-07-30", day(30)),       # tier C is not in `tiers`
    ]
    db = make_db(tmp_path / "crm.db", customers, orders=orders, contracts=contracts)
    rows = apply(tmp_path, db, """\
actions:
  barriers:
    use: exit_barriers
    params:
      tiers: [A, B]
      contractual: {days_before_end: 90}
""")
    assert brief(rows) == [
        ("r_eq", "renewal_offer", "contractual", 3, D, "contract ends in 90 days"),
        ("r_in", "renewal_offer", "contractual", 3, D, "contract ends in 45 days"),
        ("r_today", "renewal_offer", "contractual", 3, D, "contract ends today"),
    ]
    assert json.loads(rows[0]["details"]) == {"days_before_end": 90}


def test_renewal_look_ahead_gives_future_due_dates(tmp_path):
    customers = [(c, c, "B") for c in ("l60", "l100", "l120", "l121", "l_dec")]
    orders = [(c, "2026-06-01", 100) for c in ("l60", "l100", "l120", "l121")] + [("l_dec", "2025-12-01", 100)]
    contracts = [("l60", "2025-07-01", day(60)), ("l100", "2025-07-01", day(100)), ("l120", "2025-07-01", day(120)),
                 ("l121", "2025-07-01", day(121)), ("l_dec", "2025-07-01", day(100))]
    db = make_db(tmp_path / "crm.db", customers, orders=orders, contracts=contracts)
    rows = apply(tmp_path, db, """\
actions:
  barriers:
    use: exit_barriers
    params:
      priority: 1
      contractual: {action: renewal_call, days_before_end: 90, look_ahead_days: 30, metric: contract_days, stages: [stable]}
""")
    assert brief(rows) == [
        ("l100", "renewal_call", "contractual", 1, day(10), "contract ends in 100 days"),
        ("l120", "renewal_call", "contractual", 1, day(30), "contract ends in 120 days"),
        ("l60", "renewal_call", "contractual", 1, D, "contract ends in 60 days"),
    ]
    assert json.loads(rows[0]["details"]) == {"days_before_end": 90, "look_ahead_days": 30, "metric": "contract_days",
                                              "stages": ["stable"]}


def test_renewal_with_a_metric_that_goes_negative_after_the_end(tmp_path):
    db = make_db(tmp_path / "crm.db", [("e5", "E5", "A"), ("e0", "E0", "A"), ("e9", "E9", "A")],
                 orders=[(c, "2026-06-01", 100) for c in ("e5", "e0", "e9")],
                 contracts=[("e5", "2025-06-25", day(-5)), ("e9", "2025-07-01", day(9))])
    rows = apply(tmp_path, db, """\
actions:
  barriers:
    use: exit_barriers
    params:
      contractual: {days_before_end: 10, metric: days_to_end, when: "orders_12m >= 1"}
""")
    assert brief(rows) == [
        ("e5", "renewal_offer", "contractual", 3, D, "contract ended 5 days ago"),
        ("e9", "renewal_offer", "contractual", 3, D, "contract ends in 9 days"),
    ]


# ---- churn_warning -----------------------------------------------------------

CHURN_CUSTOMERS = [("v", "V", "A"), ("g", "G", "B"), ("g_edge", "GE", "B"), ("k", "K", "C"), ("m", "M", "A"),
                   ("n", "N", "A"), ("z", "Z", "B"), ("s", "S", "B"), ("one", "O", "C")]
CHURN_ORDERS = (
    [("v", "2025-10-01", 1000), ("v", "2026-06-01", 500)]                       # volume -50% only
    + [("g", "2026-01-01", 100), ("g", "2026-01-31", 100), ("g", "2026-03-02", 100)]  # every 30 days, none for 120
    + [("g_edge", "2026-04-01", 100), ("g_edge", "2026-05-01", 100)]            # 60 days = exactly 2 x 30: no signal
    + [("k", "2025-12-15", 100), ("k", "2026-06-15", 100)]                      # complaints only
    + [("m", "2025-08-01", 500), ("m", "2025-09-01", 500), ("m", "2026-01-05", 100)]  # all three
    + monthly("n", "2025-07-15", 12)                                            # steady: nothing
    + [("s", "2026-02-01", 100), ("s", "2026-02-01", 100)]                      # one order day, no previous period
    + [("one", "2025-05-01", 100)]                                              # a single order, long ago
)                                                                               # z: no orders at all
CHURN_INTERACTIONS = ([("k", "2026-05-01", "complaint"), ("k", "2026-06-01", "complaint")]
                      + [("m", "2026-04-10", "complaint")] * 3
                      + [("n", "2026-06-01", "complaint"), ("n", "2026-06-02", "visit"), ("n", "2026-06-03", "visit")]
                      + [("one", "2026-01-01", "complaint")] * 5)              # old complaints do not count


def test_churn_signals_alone_combined_and_none(tmp_path):
    db = make_db(tmp_path / "crm.db", CHURN_CUSTOMERS, orders=CHURN_ORDERS, interactions=CHURN_INTERACTIONS)
    rows = apply(tmp_path, db, """\
actions:
  churn:
    use: churn_warning
    params:
      volume_drop: {metric: trend_6m, below: -0.3}
      purchase_gap: {k: 2}
      complaints: {metric: complaints_90d, min: 2}
      priority_by_tier: {A: 1, B: 2}
      due_in_days: 7
""")
    assert brief(rows) == [
        ("g", "churn_alert", "churn", 2, day(7), "no order for 120 days (usual interval 30 days)"),
        ("k", "churn_alert", "churn", 3, day(7), "complaints: 2"),
        ("m", "churn_alert", "churn", 1, day(7),
         "volume -90% vs previous period; no order for 176 days (usual interval 78.5 days); complaints: 3"),
        ("v", "churn_alert", "churn", 1, day(7), "volume -50% vs previous period"),
    ]
    assert json.loads(rows[0]["details"]) == {
        "volume_drop": {"metric": "trend_6m", "below": -0.3},
        "purchase_gap": {"k": 2, "window": "all"},
        "complaints": {"metric": "complaints_90d", "min": 2},
    }


def test_churn_volume_drop_reason_names_the_period_the_metric_compares_with(tmp_path):
    """A year-on-year metric (this quarter against the same quarter last year) is no drop "vs previous period":
    `versus` says what it compares with, and `label` names the signal, in the account manager's language."""
    db = make_db(tmp_path / "crm.db", CHURN_CUSTOMERS, orders=CHURN_ORDERS, interactions=CHURN_INTERACTIONS)
    rows = apply(tmp_path, db, """\
actions:
  churn:
    use: churn_warning
    params:
      volume_drop: {metric: trend_6m, below: -0.3, label: 本季度订单, versus: 去年同季度}
""")
    assert [(r["customer_id"], r["reason"]) for r in rows] == [("m", "本季度订单 -90% vs 去年同季度"),
                                                                ("v", "本季度订单 -50% vs 去年同季度")]
    assert json.loads(rows[0]["details"])["volume_drop"] == {"metric": "trend_6m", "below": -0.3, "versus": "去年同季度"}


def test_churn_hidden_metrics_stay_out_of_assignments(tmp_path):
    db = make_db(tmp_path / "crm.db", CHURN_CUSTOMERS, orders=CHURN_ORDERS, interactions=CHURN_INTERACTIONS)
    outcome = apply_policy(db, load_policy(write_policy(tmp_path, """\
actions:
  churn: {use: churn_warning, params: {purchase_gap: {window: 12 months}}}
""")), D)
    conn = sqlite3.connect(db)
    stored = stored_metrics(db, outcome.run_id)["g"]
    defined = [r[0] for r in conn.execute("SELECT id FROM crm_definitions WHERE run_id = ? AND kind = 'metric'", (outcome.run_id,))]
    conn.close()
    assert not [k for k in stored if k.startswith("_")] and "recency_days" in stored
    assert not [k for k in defined if k.startswith("_")]
    # every order but one's lies within the last 12 months: the same intervals as with window `all`
    assert brief(actions(db, outcome.run_id)) == [
        ("g", "churn_alert", "churn", 3, D, "no order for 120 days (usual interval 30 days)"),
        ("m", "churn_alert", "churn", 3, D, "no order for 176 days (usual interval 78.5 days)"),
    ]


def test_churn_purchase_gap_window_falls_back_to_all_orders_for_who_stopped_before_it(tmp_path):
    customers = [("gone", "Gone", "A"), ("once", "Once", "A"), ("new", "New", "A"), ("g", "G", "B")]
    orders = ([("gone", "2024-01-01", 100), ("gone", "2024-01-31", 100), ("gone", "2024-03-01", 100)]  # none in the window
              + [("once", "2025-01-01", 100), ("once", "2025-03-02", 100), ("once", "2026-05-01", 100)]  # one in it
              + [("new", "2026-06-01", 100)]                                     # a single order: no usual interval
              + [("g", "2026-01-01", 100), ("g", "2026-01-31", 100), ("g", "2026-03-02", 100)])
    db = make_db(tmp_path / "crm.db", customers, orders=orders)
    rows = apply(tmp_path, db, "actions:\n  churn: {use: churn_warning, params: {purchase_gap: {window: 12 months}}}\n")
    gone = (AS_OF - dt.date(2024, 3, 1)).days
    # once: 60 days since its order, under 2 x its usual 242.5 days over all its orders
    assert brief(rows) == [
        ("g", "churn_alert", "churn", 3, D, "no order for 120 days (usual interval 30 days)"),
        ("gone", "churn_alert", "churn", 3, D, f"no order for {gone} days (usual interval 30 days, over all orders)"),
    ]


def test_churn_rising_complaints_with_tier_and_stage_filters(tmp_path):
    customers = [("x1", "X1", "A"), ("x2", "X2", "A"), ("x3", "X3", "B"), ("x4", "X4", "C"), ("x5", "X5", "A")]
    orders = [(c, "2026-06-01", 100) for c in ("x1", "x2", "x3", "x4")]          # x5 has no orders: lost
    before, recent = "2026-03-01", "2026-06-01"
    interactions = ([("x1", before, "complaint")] + [("x1", recent, "complaint")] * 2
                    + [("x2", before, "complaint")] * 2 + [("x2", recent, "complaint")] * 2
                    + [("x3", recent, "complaint")]
                    + [("x4", recent, "complaint")] * 3
                    + [("x5", recent, "complaint")] * 2)
    db = make_db(tmp_path / "crm.db", customers, orders=orders, interactions=interactions)
    rows = apply(tmp_path, db, """\
actions:
  rising:
    use: churn_warning
    params:
      complaints: {metric: complaints_90d, previous: complaints_prev_90d, label: 投诉}
      tiers: [A, B]
      stages: [stable, decline]
  rising_twice:
    use: churn_warning
    params:
      complaints: {metric: complaints_90d, previous: complaints_prev_90d, min: 2}
""")
    got = sorted((t[0], r["generator"]) + t[1:] for r, t in zip(rows, brief(rows)))
    assert got == [
        ("x1", "rising", "churn_alert", "churn", 3, D, "投诉: 2 (previous period 1)"),
        ("x1", "rising_twice", "churn_alert", "churn", 3, D, "complaints: 2 (previous period 1)"),
        ("x3", "rising", "churn_alert", "churn", 3, D, "投诉: 1 (previous period 0)"),
        ("x4", "rising_twice", "churn_alert", "churn", 3, D, "complaints: 3 (previous period 0)"),
        ("x5", "rising_twice", "churn_alert", "churn", 3, D, "complaints: 2 (previous period 0)"),
    ]


def test_churn_purchase_gap_with_own_metrics_and_zero_denominators(tmp_path):
    customers = [("u1", "U1", "A"), ("u2", "U2", "A"), ("u3", "U3", "A"), ("u4", "U4", "A")]
    orders = ([("u1", "2026-01-01", 100), ("u1", "2026-03-02", 100)]   # interval 60, 120 days since: 120 > 90
              + [("u2", "2026-01-01", 100)]                            # one order: usual_gap divides by zero
              + [("u3", "2026-03-01", 100), ("u3", "2026-04-30", 100)]  # interval 60, 61 days since
              + [("u4", "2026-03-01", 100), ("u4", "2026-03-01", 50)])  # two orders, one day: 0 / 0
    db = make_db(tmp_path / "crm.db", customers, orders=orders)
    rows = apply(tmp_path, db, """\
actions:
  gap:
    use: churn_warning
    params:
      purchase_gap: {recency: recency_days, interval: usual_gap, k: 1.5}
""")
    assert brief(rows) == [("u1", "churn_alert", "churn", 3, D, "no order for 120 days (usual interval 60 days)")]
    assert json.loads(rows[0]["details"]) == {"purchase_gap": {"k": 1.5, "recency": "recency_days", "interval": "usual_gap"}}


# ---- upgrade_candidates and phase_out_review ------------------------------------

def test_upgrade_candidates(tmp_path):
    customers = [("b_up", "B1", "B"), ("b_flat", "B2", "B"), ("c_lowm", "C1", "C"), ("c_up", "C2", "C"),
                 ("a_up", "A1", "A"), ("c_new", "C3", "C")]
    orders = [("b_up", "2025-10-01", 1000, 800), ("b_up", "2026-03-01", 1500, 1000),       # +50%, margin 0.28
              ("b_flat", "2025-10-01", 1000, 0), ("b_flat", "2026-03-01", 1100, 0),        # +10%
              ("c_lowm", "2025-10-01", 1000, 900), ("c_lowm", "2026-03-01", 1500, 1350),   # margin 0.1
              ("c_up", "2025-10-01", 100, 50), ("c_up", "2026-03-01", 200, 100),           # +100%, margin 0.5
              ("a_up", "2025-10-01", 1000, 800), ("a_up", "2026-03-01", 1500, 1000),       # already A
              ("c_new", "2026-03-01", 1500, 0)]                                            # no previous period
    db = make_db(tmp_path / "crm.db", customers, orders=orders)
    rows = apply(tmp_path, db, """\
actions:
  stars:
    use: upgrade_candidates
    params: {from_tiers: [B, C], to_tier: A, when: "trend_6m >= 0.3 and margin_12m >= 0.2", priority: 2, due_in_days: 14}
""")
    assert brief(rows) == [
        ("b_up", "upgrade_review", "upgrade", 2, day(14), "B customer, candidate for upgrade to A: trend_6m=0.5, margin_12m=0.28"),
        ("c_up", "upgrade_review", "upgrade", 2, day(14), "C customer, candidate for upgrade to A: trend_6m=1, margin_12m=0.5"),
    ]
    assert json.loads(rows[0]["details"]) == {"to_tier": "A", "when": "trend_6m >= 0.3 and margin_12m >= 0.2"}


def test_phase_out_review(tmp_path):
    customers = [("c_bad", "C1", "C"), ("c_many", "C2", "C"), ("c_good", "C3", "C"), ("b_bad", "B1", "B"),
                 ("c_none", "C4", "C")]
    orders = ([("c_bad", "2026-03-01", 1000, 980)]
              + [("c_many", d, 1000, 980) for d in ("2026-01-01", "2026-02-01", "2026-03-01")]
              + [("c_good", "2026-03-01", 1000, 700)]
              + [("b_bad", "2026-03-01", 1000, 980)])                 # c_none: no revenue, margin unknown
    db = make_db(tmp_path / "crm.db", customers, orders=orders)
    rows = apply(tmp_path, db, """\
actions:
  review:
    use: phase_out_review
    params: {tiers: [C], when: "margin_12m < 0.05 and orders_12m <= 2"}
""")
    assert brief(rows) == [
        ("c_bad", "phase_out_review", "phase_out", 3, D, "C customer, phase-out review: margin_12m=0.02, orders_12m=1"),
    ]
    assert json.loads(rows[0]["details"]) == {"when": "margin_12m < 0.05 and orders_12m <= 2"}


# ---- policy errors -------------------------------------------------------------

def test_params_schema_errors_have_positions(tmp_path):
    path, message = policy_errors(tmp_path, """\
actions:
  barriers:
    use: exit_barriers
    params:
      tier: [A]
      economic:
        - {rebat: 0.02}
      contractual: {days_before_end: "90"}
  churn:
    use: churn_warning
    params: {complaints: {metric: complaints_90d, min: 2}, priority: 0}
""")
    assert f"{position(path, 'tier: [A]')}: actions.barriers.params.tier: unknown key 'tier'; did you mean 'tiers'?" in message
    assert (f"{position(path, 'rebat')}: actions.barriers.params.economic[0].rebat: "
            f"unknown key 'rebat'; did you mean 'rebate'?") in message
    quoted = '"90"'
    assert (f"{position(path, quoted)}: actions.barriers.params.contractual.days_before_end: "
            f"expected integer, got text {quoted}") in message
    assert f"{position(path, '0}')}: actions.churn.params.priority: 0 is less than the minimum of 1" in message


def test_unknown_metric_names_in_params(tmp_path):
    path, message = policy_errors(tmp_path, """\
actions:
  churn:
    use: churn_warning
    params:
      volume_drop: {metric: trend_6n}
      complaints: {metric: region}
  up:
    use: upgrade_candidates
    params: {from_tiers: [B], when: "margin_12 >= 0.2"}
  renew:
    use: exit_barriers
    params:
      contractual: {metric: contract_dayz}
""")
    assert (f"{position(path, 'trend_6n')}: actions.churn.params.volume_drop.metric: "
            f"unknown metric 'trend_6n'; did you mean 'trend_6m'?") in message
    assert f"{position(path, 'region}')}: actions.churn.params.complaints.metric: 'region' is a text, expected number" in message
    assert (f"{position(path, 'margin_12 ')}: actions.up.params.when: "
            f"unknown metric or name 'margin_12'; did you mean 'margin_12m'?") in message
    assert (f"{position(path, 'contract_dayz')}: actions.renew.params.contractual.metric: "
            f"unknown metric 'contract_dayz'; did you mean 'contract_days'?") in message


def test_meaningless_params_are_errors(tmp_path):
    path, message = policy_errors(tmp_path, """\
actions:
  nothing: {use: exit_barriers, params: {tiers: [A]}}
  twice:
    use: exit_barriers
    params:
      economic: [{rebate: 0.01}, {action: loyalty_rebate, rebate: 0.02}]
  silent: {use: churn_warning, params: {tiers: [A]}}
  sideways: {use: upgrade_candidates, params: {from_tiers: [B, C], to_tier: B, when: "trend_6m > 0"}}
""")
    assert "actions.nothing.params: nothing to generate: give `economic`, `technical` and/or `contractual` actions" in message
    assert (f"{position(path, 'loyalty_rebate')}: actions.twice.params.economic[1].action: action 'loyalty_rebate' "
            f"is already generated by params.economic[0]; give it another name") in message
    assert "actions.silent.params: no signal to watch: give `volume_drop`, `purchase_gap` and/or `complaints`" in message
    to_tier = position(path, 'B, when: "trend')
    assert f"{to_tier}: actions.sideways.params.to_tier: 'B' is one of `from_tiers`" in message


# ---- through the CLI -------------------------------------------------------------

def test_apply_command_writes_crm_actions(tmp_path, cli):
    db = make_db(tmp_path / "crm.db", [("a1", "Alpha", "A"), ("c1", "Gamma", "C")],
                 orders=[("a1", "2026-06-01", 1000, 900), ("c1", "2026-06-01", 100, 99)],
                 contracts=[("a1", "2025-07-01", day(30))])
    policy = write_policy(tmp_path, """\
actions:
  barriers:
    use: exit_barriers
    params: {economic: [{rebate: 0.03}], contractual: {days_before_end: 60}}
  review: {use: phase_out_review, params: {tiers: [C], when: "margin_12m < 0.05"}}
""")
    cli("apply", "--db", db, "--policy", policy, "--as-of", D, ok=True)
    conn = sqlite3.connect(db)
    run_id, plugins = conn.execute("SELECT run_id, plugins FROM crm_runs WHERE status = 'succeeded'").fetchone()
    got = conn.execute("SELECT run_id, customer_id, action, category, plugin, generator, reason, details, priority, "
                       "due_date, owner FROM crm_actions ORDER BY customer_id, action").fetchall()
    conn.close()
    assert "retention" in json.loads(plugins)
    assert got == [
        (run_id, "a1", "loyalty_rebate", "economic", "retention", "barriers", "stable A customer: loyalty rebate 3%",
         '{"rebate": 0.03}', 3, D, "someone"),
        (run_id, "a1", "renewal_offer", "contractual", "retention", "barriers", "contract ends in 30 days",
         '{"days_before_end": 60}', 3, D, "someone"),
        (run_id, "c1", "loyalty_rebate", "economic", "retention", "barriers", "stable C customer: loyalty rebate 3%",
         '{"rebate": 0.03}', 3, D, "someone"),
        (run_id, "c1", "phase_out_review", "phase_out", "retention", "review",
         "C customer, phase-out review: margin_12m=0.01", '{"when": "margin_12m < 0.05"}', 3, D, "someone"),
    ]


@pytest.mark.parametrize("signal, key, message", [
    ("complaints: {metric: complaints_12m, min: 0}", "min", "0 is less than the minimum of 1"),
    ("volume_drop: {metric: revenue_prev_12m_trend, below: -30}", "below", "-30 is less than the minimum of -1"),
    ("volume_drop: {metric: revenue_prev_12m_trend, below: 0}", "below", "0"),
])
def test_churn_signal_thresholds_are_bounded(tmp_path, signal, key, message):
    text = ("metrics:\n  complaints_12m: {sum: amount}\n  revenue_prev_12m_trend: {sum: amount}\n"
            "tiers:\n  levels: [{id: all, default: true}]\n"
            f"actions:\n  churn:\n    use: churn_warning\n    params:\n      {signal}\n")
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    got = str(info.value)
    assert f"{policy}:10:" in got and f"actions.churn.params.{signal.split(':')[0]}.{key}:" in got and message in got, got


BARRIERS = "actions:\n  eb:\n    use: exit_barriers\n    params: {tiers: [A], economic: [{action: loyalty_rebate, rebate: 0.02}]}\n"


def test_exit_barriers_without_a_lifecycle_go_to_every_customer_of_the_tiers(tmp_path):
    # the default stages [stable] matched nobody when no customer has a stage: the generator never fired
    db = make_db(tmp_path / "s.db", [("a1", "A1", "A"), ("b1", "B1", "B")], orders=[("a1", day(-10), 100)])
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD.split("lifecycle:")[0] + BARRIERS, encoding="utf-8")
    outcome = apply_policy(db, load_policy(policy), D)
    assert [(a["customer_id"], a["action"]) for a in actions(db, outcome.run_id)] == [("a1", "loyalty_rebate")]


def test_exit_barriers_default_stage_must_be_a_stage_of_the_policy(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD.replace("{id: stable, default: true}", "{id: steady, default: true}") + BARRIERS,
                      encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    assert ("actions.eb.params: `stages` is not given and its default, [stable], is no stage of this policy (its "
            "stages: lost, decline, steady): write `stages:` with the stages that get exit barriers") in str(info.value)
