"""The --json outputs as an integrator's script reads them: the same names for the same things across commands,
JSON values (not JSON in strings), numbers without the noise of an addition order, and what docs/cli.md says."""

from __future__ import annotations

import json
import re

import pytest

from crm_rules.engine.run_history import RECOUNTED_TOTALS

FIRST, SECOND = "2026-03-31", "2026-06-30"


@pytest.fixture
def two_runs(demo_db, cli):
    """Runs 1 and 2 of the shipped base policy on the 300-customer demo, three months apart."""
    for as_of in (FIRST, SECOND):
        cli("apply", "--db", demo_db, "--policy", "base", "--as-of", as_of, "--json", ok=True)
    return demo_db


def _json(cli, *args):
    result = cli(*args, "--json", ok=True)
    return json.loads(result.stdout)


def test_report_kept_their_tier_is_changes_kept_tier_and_stage_only_is_the_old_same_tier(two_runs, cli, tmp_path):
    """The report said "1,794 same tier" where changes --json had totals.same_tier 448: two counts under one name."""
    c = _json(cli, "changes", "--db", two_runs)
    totals = c["totals"]
    kept = sum(m["customers"] for m in c["matrix"] if m["from"] is not None and m["from"] == m["to"])
    assert totals["kept_tier"] == kept and kept > totals["stage_only"] > 0
    assert totals["same_tier"] == totals["stage_only"]  # the old name, kept for the scripts that read it
    assert totals["stage_only"] == sum(1 for r in c["changes"] if r["direction"] == "same tier")
    # the directions and unchanged count every customer of both runs once; the other totals count some again
    assert sum(v for k, v in totals.items() if k not in RECOUNTED_TOTALS) == c["customers"] == c["previous_customers"]

    text = cli("changes", "--db", two_runs, ok=True).stdout
    assert f"{totals['stage_only']:,} changed stage only" in " ".join(text.split())

    out = tmp_path / "report.html"
    cli("report", "--db", two_runs, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert f"<b>{kept:,}</b> kept their tier" in html
    assert "same tier</span>" not in html
