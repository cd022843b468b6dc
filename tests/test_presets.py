"""The shipped policies on the demo database: every grade they define is used.

The policy tests (``policies/*.test.yaml``) pin each rule on hand-made
customers.  This checks the other half of what a shipped policy promises: on a
realistic customer base (the data ``crm-rules demo`` writes) it gives a
sensible distribution, with no tier, sub-grade, lifecycle stage or service
level left empty (exceptions are listed with the reason).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_rules.engine.demo_data import DEMO_AS_OF, generate_demo_database
from crm_rules.engine.policy_files import shipped_policy_names
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

DEMO_CUSTOMERS = 2000  # `crm-rules demo` defaults: 2,000 customers, seed 7

# Grades a shipped policy defines that no demo customer can get, and why.
EMPTY_ON_THE_DEMO = {
    ("b2b_export", "stage", "prospect"): "every demo customer has ordered; prospects are leads without orders",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("presets") / "crm.db"
    generate_demo_database(path, customers=DEMO_CUSTOMERS, seed=7)
    return path


@pytest.mark.parametrize("name", shipped_policy_names())
def test_every_grade_of_a_shipped_policy_is_used_on_the_demo(demo: Path, name: str) -> None:
    policy = load_policy(name)
    summary = apply_policy(demo, policy, DEMO_AS_OF, dry_run=True).summary
    assert summary["customers"] == DEMO_CUSTOMERS
    assert sum(t["customers"] for t in summary["tiers"].values()) == DEMO_CUSTOMERS
    counts = {
        "tier": {k: v["customers"] for k, v in summary["tiers"].items()},
        "subgrade": summary["subgrades"],
        "stage": summary["stages"],
        "service level": summary["service_levels"],
    }
    defined = {
        "tier": [t.rule.id for t in policy.tiers],
        "subgrade": [s.id for t in policy.tiers for s in t.subgrades],
        "stage": [s.id for s in policy.stages],
        "service level": [s.id for s in policy.service_levels],
    }
    empty = [(kind, grade) for kind, ids in defined.items() for grade in ids
             if counts[kind].get(grade, 0) == 0 and (name, kind, grade) not in EMPTY_ON_THE_DEMO]
    assert empty == [], f"{name}: no demo customer gets {empty}"
    assert counts["service level"].get("", 0) == 0, f"{name}: customers without a service level"
    # a grading that puts nearly everyone in one tier says little
    assert max(counts["tier"].values()) <= 0.9 * DEMO_CUSTOMERS, counts["tier"]
    for (policy_name, kind, grade), why in EMPTY_ON_THE_DEMO.items():
        if policy_name == name:
            assert counts[kind].get(grade, 0) == 0, f"{name}: {kind} {grade} is no longer empty ({why}); update the list"

