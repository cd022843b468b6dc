"""The benchmark's tables and target lines (bench/report.py), on made-up figures."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import report  # noqa: E402


def size(customers: int, orders: int, base_s: float, crm_s: float, crm_mb: float) -> dict:
    """The measurements of one size, as bench/run.py collects them, without peers."""
    return {"counts": {"customers": customers, "orders": orders},
            "baseline": {"total_s": base_s, "peak_mb": 30.0},
            "crm-rules": {"total_s": crm_s, "peak_mb": crm_mb, "aggregation_s": crm_s / 3,
                          "after_aggregation_s": crm_s * 2 / 3, "rules_s": crm_s / 20},
            "peer-rules": {"total_s": crm_s / 2, "peak_mb": crm_mb * 0.9, "mismatches": {"tier": 0},
                           "aggregation_s": crm_s / 4, "after_aggregation_s": crm_s / 4}}


def test_growth_compares_only_sizes_with_the_same_customers():
    sizes = {"100,000/10,000,000": size(100_000, 10_000_000, 9.0, 40.0, 190.0),
             "10,000/100,000": size(10_000, 100_000, 0.1, 0.9, 57.0),
             "100,000/1,000,000": size(100_000, 1_000_000, 1.0, 5.0, 186.0)}
    assert report.orders_alone(sizes) == [("100,000/1,000,000", "100,000/10,000,000")]
    rows = report.growth(sizes)
    crm = next(row for row in rows if "crm-rules apply (all" in row)
    assert crm == "| 100,000 | 1,000,000 → 10,000,000 | 10.0 | crm-rules apply (all, written) | 8.00 | 0.80 | 186 → 190 |"
    assert any(row.startswith("| 100,000 |") and "baseline query | 9.00 | 0.90 | 30 → 30" in row for row in rows)


def test_no_growth_table_without_a_pair_of_sizes_on_the_same_customers():
    sizes = {"10,000/100,000": size(10_000, 100_000, 0.1, 0.9, 57.0),
             "100,000/1,000,000": size(100_000, 1_000_000, 1.0, 5.0, 186.0)}
    assert report.orders_alone(sizes) == []
    assert report.growth(sizes) == []
    assert not any("only the orders grow" in line for line in report.targets(sizes))


def test_targets_judge_memory_independent_of_the_orders():
    same = {"a": size(100_000, 1_000_000, 1.0, 5.0, 186.0), "b": size(100_000, 10_000_000, 9.0, 40.0, 195.0)}
    grown = {"a": size(100_000, 1_000_000, 1.0, 5.0, 186.0), "b": size(100_000, 10_000_000, 9.0, 40.0, 400.0)}
    assert any("peak memory, b / a: only the orders grow" in line and "(met)" in line for line in report.targets(same))
    assert "- crm-rules seconds per order, b / a: only the orders grow (linear or better: at most 1.1): 0.80 (met)" \
        in report.targets(same)
    assert any("peak memory, b / a: only the orders grow" in line and "(NOT met)" in line
               for line in report.targets(grown))


def test_table_gives_each_figure_as_a_ratio_to_the_baseline_of_its_size():
    lines = report.table({"10,000/100,000": size(10_000, 100_000, 0.5, 2.0, 57.0)})
    assert "| crm-rules apply (all, written) | 2.00 | 4.00 | 57 |" in lines
    assert not any("zen" in line for line in lines)  # peers not measured: no rows for them


def test_after_aggregation_is_judged_for_the_full_policy_and_for_the_peers_rules():
    sizes = {"1,000,000/10,000,000": size(1_000_000, 10_000_000, 10.0, 60.0, 600.0)}
    sizes["1,000,000/10,000,000"]["zen"] = {"total_s": 45.0, "rules_s": 30.0, "peak_mb": 800.0, "mismatches": {}}
    lines = report.targets(sizes)
    assert "- zen rule evaluation / crm-rules everything after aggregation (>= 3): 0.75 (NOT met)" in lines
    assert "- zen rule evaluation / crm-rules everything after aggregation, the peers' rules only (>= 3): 2.00 (NOT met)" \
        in lines
    table = report.table(sizes)
    assert table.index("|   after aggregation | 15.00 | 1.50 | - |") > table.index(
        "| crm-rules apply, the peers' rules only (written) | 30.00 | 3.00 | 540 |")
