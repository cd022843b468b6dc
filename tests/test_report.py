"""`crm-rules report`: one self-contained, escaped HTML page per run, written all or nothing."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from crm_rules.engine import report_html
from crm_rules.engine.report_data import _aging_from_source, _document, gather
from crm_rules.engine.run_history import changes

from conftest import AS_OF

EARLIER = "2026-03-31"
EVIL = "<script>alert(1)</script>"
TIER_LABELS = ("重点客户 Key customers", "成长客户 Growth customers", "一般客户 Regular customers")
STAGE_LABELS = ("流失期 Lost", "衰退期 Decline", "考察期 Identification", "形成期 Development", "稳定期 Stable")


def _two_runs(cli, db: Path) -> None:
    """Base applied at two as-of dates, with one customer whose name is an HTML script."""
    conn = sqlite3.connect(db)
    conn.execute("UPDATE customers SET name = ? WHERE id = (SELECT min(id) FROM customers)", (EVIL,))
    conn.commit()
    conn.close()
    cli("apply", "--db", db, "-p", "base", "--as-of", EARLIER, ok=True)
    cli("apply", "--db", db, "-p", "base", "--as-of", AS_OF, ok=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def two_runs(cli, demo_db) -> Path:
    _two_runs(cli, demo_db)
    return demo_db


def test_report_is_self_contained_escaped_and_complete(cli, two_runs, tmp_path):
    out = tmp_path / "report.html"
    result = cli("report", "--db", two_runs, "--out", out, ok=True)
    assert f"report written to {out} (300 customers, run 2 of policy base in {two_runs})" in result.output
    assert "open it in a browser: file://" in result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    # nothing is loaded from anywhere: no addresses, no external scripts, styles, fonts or images
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=\"(?!data:)", html)
    assert "@import" not in html and "url(" not in html
    assert html.count("<script") == 1  # the table filter, and nothing a customer name smuggled in
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for label in TIER_LABELS + STAGE_LABELS:
        assert label in html
    assert "Noto Sans CJK SC" in html and "Microsoft YaHei" in html  # a font stack that has CJK glyphs
    for section in ("pareto", "tiers", "lifecycle", "transitions", "credit", "actions", "customer-table"):
        assert f'<section id="{section}">' in html
    # the header names the run
    assert "#2" in html and AS_OF in html
    conn = sqlite3.connect(two_runs)
    sha = conn.execute("SELECT policy_sha256 FROM crm_runs WHERE run_id = 2").fetchone()[0]
    conn.close()
    assert sha[:12] in html and sha in html  # short hash shown, full hash in its tooltip


def test_transition_matrix_matches_crm_rules_changes(cli, two_runs, tmp_path):
    out = tmp_path / "report.html"
    cli("report", "--db", two_runs, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert 'id="transition-matrix"' in html and "run #1 (as of 2026-03-31" in html
    expected = changes(two_runs, 2)
    counts = {(m["from"], m["to"]): m["customers"] for m in expected["matrix"]}
    for (before, after), n in counts.items():
        assert f'title="{before} → {after}: {n:,}"' in html
    t = expected["totals"]
    assert f"<b>{t['upgrades']:,}</b> upgraded" in html and f"<b>{t['downgrades']:,}</b> downgraded" in html


def test_first_run_says_there_is_nothing_to_compare(cli, demo_db, tmp_path):
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    out = tmp_path / "first.html"
    cli("report", "--db", demo_db, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert "is the first successful run of policy" in html and 'id="transition-matrix"' not in html


def test_chosen_run_json_and_row_limit(cli, two_runs, tmp_path):
    out = tmp_path / "r1.html"
    result = json.loads(cli("report", "--db", two_runs, "--run", "1", "--rows", "10", "--out", out, "--json", ok=True).output)
    assert result["run_id"] == 1 and result["as_of"] == EARLIER and result["customers"] == 300 and result["rows"] == 10
    html = out.read_text(encoding="utf-8")
    body = html.split('<table id="customers">', 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == 1 + 10  # the header row and ten customers
    assert "embeds the top 10 of 300 customers by Revenue, last 12 months, highest first" in html
    assert "is the first successful run" in html  # run 1 has no earlier run
    by_policy = tmp_path / "p.html"
    assert json.loads(cli("report", "--db", two_runs, "-p", "base", "--out", by_policy, "--json", ok=True).output)["run_id"] == 2


def test_figures_agree_with_the_run(two_runs):
    data = gather(two_runs)
    conn = sqlite3.connect(two_runs)
    counts = json.loads(conn.execute("SELECT counts FROM crm_runs WHERE run_id = 2").fetchone()[0])
    conn.close()
    assert [t["id"] for t in data["tiers"]] == ["A", "B", "C"]
    for t in data["tiers"]:
        assert t["customers"] == counts["tiers"][t["id"]]["customers"]
        assert t["revenue"] == pytest.approx(counts["tiers"][t["id"]]["revenue"])
    assert data["tier_stage"] == {tier: {stage: n for t2, stage, n in counts["tier_stage"] if t2 == tier}
                                  for tier in counts["tiers"]}
    credit = data["credit"][0]
    assert credit["totals"] == counts["outputs"]["credit_check_outcome"]
    assert [b["label"] for b in credit["aging"]] == ["not yet due", "1–30 days", "31–60 days", "61–90 days", "> 90 days"]
    points = data["pareto"]["points"]
    assert points[0] == (0.0, 0.0) and points[-1] == pytest.approx((1.0, 1.0))
    assert all(y0 <= y1 + 1e-12 for (_, y0), (_, y1) in zip(points, points[1:]))
    assert data["actions"]["total"] == sum(counts["actions"].values())


def test_owners_written_with_whitespace_by_earlier_runs_count_as_one(two_runs):
    """Runs before owners were trimmed on write stored "王芳 " beside "王芳": the report counts them as one."""
    conn = sqlite3.connect(two_runs)
    with conn:
        (owner, total), = conn.execute("SELECT owner, count(*) FROM crm_actions WHERE run_id = 2 AND owner IS NOT NULL "
                                       "GROUP BY owner ORDER BY count(*) DESC LIMIT 1").fetchall()
        conn.execute("UPDATE crm_actions SET owner = owner || ' ' WHERE run_id = 2 AND owner = ? AND rowid % 2 = 0",
                     (owner,))
    conn.close()
    actions = gather(two_runs, run_id=2)["actions"]
    assert [o["count"] for o in actions["by_owner"] if o["owner"] == owner] == [total]
    assert all(o["owner"] is None or o["owner"] == o["owner"].strip() for o in actions["by_owner"])
    assert all(a["owner"] is None or a["owner"] == a["owner"].strip() for a in actions["due_soon_list"])


def test_pareto_shares_count_negative_revenue_as_zero_like_the_tiers(cli, demo_db, tmp_path):
    """Returns that make three customers' revenue negative: the Pareto section's shares and cut-off markers are
    on the curve's basis (negatives as 0, as Pareto tiers count them), so A stays within its 80% cut-off."""
    conn = sqlite3.connect(demo_db)
    with conn:
        conn.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) SELECT id, '2026-06-01', "
                     "-5000000, 0, 0 FROM customers WHERE id IN (SELECT id FROM customers ORDER BY id LIMIT 3)")
    conn.close()
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    data = gather(demo_db)
    a = data["tiers"][0]
    assert a["revenue_share"] > 0.85 and 0.79 < a["curve_share"] < 0.81  # the curve's share is at the cut-off
    assert sum(t["curve_share"] for t in data["tiers"]) == pytest.approx(1)
    out = tmp_path / "report.html"
    html = cli("report", "--db", demo_db, "--out", out, ok=True) and out.read_text(encoding="utf-8")
    assert "3 customer(s) with negative" in html
    assert f"hold {a['curve_share'] * 100:.1f}% of revenue" in html


def test_aging_from_receivables_matches_what_the_credit_check_stored(two_runs):
    """The fallback for runs without a credit check reads the receivables by the plugin's rules."""
    data = gather(two_runs)
    conn = sqlite3.connect(two_runs)
    document = _document(conn, data["policy"]["sha256"])
    conn.close()
    computed = _aging_from_source(two_runs, document, AS_OF)["buckets"]
    stored = data["credit"][0]["aging"]
    assert [b["label"] for b in computed] == [b["label"] for b in stored]
    assert [b["amount"] for b in computed] == pytest.approx([b["amount"] for b in stored], abs=0.01)
    assert [b["customers"] for b in computed[1:]] == [b["customers"] for b in stored[1:]]


def test_run_without_credit_check_computes_aging_from_the_receivables(cli, demo_db, tmp_path):
    policy = tmp_path / "plain.yaml"
    policy.write_text("name: plain\nmetrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
                      "tiers:\n  levels:\n    - {id: A, label: 大客户, when: 'revenue_12m >= 100000'}\n"
                      "    - {id: B, default: true}\n", encoding="utf-8")
    cli("apply", "--db", demo_db, "-p", policy, "--as-of", AS_OF, ok=True)
    out = tmp_path / "plain.html"
    cli("report", "--db", demo_db, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    assert "This run has no credit check" in html and "computed from receivables in" in html
    assert "大客户" in html and "No Pareto curve" in html and "The policy defines no lifecycle stages" in html


def test_results_in_another_database(cli, demo_db, tmp_path):
    results = tmp_path / "results.db"
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", results, ok=True)
    out = tmp_path / "r.html"
    cli("report", "--db", demo_db, "--results-db", results, "--out", out, ok=True)
    assert "重点客户 Key customers" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", ["no runs", "unknown run", "failed run", "run of another policy", "missing directory",
                                  "out is a directory", "missing database", "misspelled policy"])
def test_bad_inputs_fail_clearly_and_write_nothing(cli, demo_db, tmp_path, case):
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "report.html"
    args = ["report", "--db", demo_db, "--out", out]
    if case != "no runs":
        cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    expected = {"no runs": "has no crm-rules runs yet", "unknown run": "run 99 not found",
                "failed run": "failed and has no results", "missing directory": "does not exist",
                "run of another policy": f"run 1 in {demo_db} is a run of policy 'base', not 'vip_card'",
                "out is a directory": "is a directory", "missing database": "database not found",
                "misspelled policy": f"no successful run found for policy 'bse' in {demo_db}; did you mean 'base'?\n"
                                     "  hint: policies with successful runs here: base"}[case]
    if case == "unknown run":
        args += ["--run", "99"]
    elif case == "failed run":
        conn = sqlite3.connect(demo_db)
        conn.execute("INSERT INTO crm_runs (policy_name, policy_sha256, as_of, started_at, status, error) "
                     "VALUES ('base', 'x', ?, 'now', 'failed', 'disk full')", (AS_OF,))
        conn.commit()
        conn.close()
        args += ["--run", "2"]
    elif case == "run of another policy":
        args += ["--run", "1", "--policy", "vip_card"]
    elif case == "misspelled policy":
        args += ["--policy", "bse"]
    elif case == "missing directory":
        args[-1] = folder / "nope" / "report.html"
    elif case == "out is a directory":
        args[-1] = folder
    elif case == "missing database":
        args[2] = tmp_path / "typo.db"
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    if case == "no runs":
        assert "crm-rules apply" in result.output  # the hint says what to do
    assert not (folder / "report.html").exists() and _leftovers(folder) == []
    assert not (tmp_path / "typo.db").exists()


def test_a_failure_while_writing_leaves_the_old_report(cli, two_runs, tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("old report", encoding="utf-8")

    def broken(data, generated):
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(report_html, "render", broken)
    with pytest.raises(RuntimeError):
        cli("report", "--db", two_runs, "--out", out)
    assert out.read_text(encoding="utf-8") == "old report" and _leftovers(tmp_path) == []


def test_demo_writes_the_report_of_its_run(cli, tmp_path):
    result = cli("demo", "--dir", tmp_path / "demo", "--customers", "300", ok=True)
    page = tmp_path / "demo" / "report.html"
    assert page.is_file() and "report: " in result.output and page.resolve().as_uri() in result.output.replace("\n", "")
    text = page.read_text(encoding="utf-8")
    assert "<svg" in text and "重点客户" in text


def test_key_metrics_choose_the_report_columns_and_come_first_but_every_metric_is_stored(cli, demo_db, tmp_path):
    """What docs/policy-guide.md says of summary.key_metrics: it does not limit what a run stores."""
    policy = tmp_path / "km.yaml"
    policy.write_text("name: km\nmetrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
                      "  orders_12m: {count: orders, window: 12 months}\n  recency_days: {recency: orders}\n"
                      "tiers:\n  levels:\n    - {id: A, when: 'revenue_12m > 100000'}\n    - {id: B, default: true}\n"
                      "summary:\n  revenue: revenue_12m\n  key_metrics: [recency_days]\n", encoding="utf-8")
    cli("apply", "--db", demo_db, "-p", policy, "--as-of", AS_OF, ok=True)
    conn = sqlite3.connect(demo_db)
    stored = json.loads(conn.execute("SELECT metrics FROM crm_runs ORDER BY run_id DESC LIMIT 1").fetchone()[0])
    conn.close()
    assert stored == ["recency_days", "revenue_12m", "orders_12m"]  # all of them, the key metrics first
    header = cli("export", "--db", demo_db, "--format", "csv", ok=True).output.splitlines()[0]
    assert header.endswith(",recency_days,revenue_12m,orders_12m")
    assert [m["name"] for m in gather(demo_db)["customers"]["metrics"]] == ["revenue_12m", "recency_days"]
    explained = json.loads(cli("explain", "C000001", "--db", demo_db, "-p", policy, "--as-of", AS_OF, "--json", ok=True).output)
    assert [m["name"] for m in explained["metrics"]] == ["revenue_12m", "orders_12m", "recency_days"]


def test_the_tier_changes_card_counts_moves_from_a_renamed_tier(cli, demo_db, tmp_path):
    """After B was renamed G the card gave only the ups and downs, nothing of the customers who left B."""
    from crm_rules.engine.policy_files import shipped_policies_dir

    renamed = tmp_path / "base.yaml"
    text = (shipped_policies_dir() / "base.yaml").read_text(encoding="utf-8")
    renamed.write_text(text.replace("    - id: B\n", "    - id: G\n").replace("    tier: B\n", "    tier: G\n")
                       .replace("[A, B]", "[A, G]").replace("[B, C]", "[G, C]").replace("B: 2}", "G: 2}"),
                       encoding="utf-8")
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", EARLIER, ok=True)
    cli("apply", "--db", demo_db, "-p", renamed, "--as-of", AS_OF, ok=True)
    out = tmp_path / "report.html"
    cli("report", "--db", demo_db, "--out", out, ok=True)
    html = out.read_text(encoding="utf-8")
    unranked = changes(demo_db, 2)["totals"]["unranked"]
    assert unranked > 0
    card = html.split('<div class="k">Tier changes</div>', 1)[1].split('<div class="kpi">', 1)[0]
    assert f"since run #1 ({EARLIER}); {unranked:,} to or from a tier this run lacks" in card


def test_charts_shorten_long_chinese_labels_and_keep_them_whole_in_the_tooltip(cli, demo_db, tmp_path):
    """SVG text does not wrap: a long Chinese tier label ran under the bars beside it, and a long stage label,
    drawn right-aligned, off the chart's left edge."""
    from crm_rules.engine.policy_files import shipped_policies_dir

    tier, stage = "金卡成长型客户（年采购额稳步增长，具备升级为钻石卡潜力）", "衰退期（采购量连续下滑需要预警跟进）"
    text = shipped_policies_dir().joinpath("base.yaml").read_text(encoding="utf-8")
    policy = tmp_path / "zh.yaml"
    policy.write_text(text.replace("label: 成长客户 Growth customers", f"label: {tier}")
                      .replace("label: 衰退期 Decline", f"label: {stage}"), encoding="utf-8")
    cli("apply", "--db", demo_db, "-p", policy, "--as-of", AS_OF, ok=True)
    out = tmp_path / "report.html"
    cli("report", "--db", demo_db, "--out", out, ok=True)
    page = out.read_text(encoding="utf-8")
    shortened = {full: shown for full, shown in re.findall(r"<text [^>]*><title>([^<]*)</title>([^<]*)</text>", page)}
    for full in (tier, stage):
        shown = shortened[full]
        assert shown.endswith("…") and full.startswith(shown[:-1]) and len(shown) < len(full)
    assert f">{tier}</text>" not in page and f">{stage}</text>" not in page  # drawn whole in no chart
    assert f"<span class=tl>{tier}</span>" in page  # and whole in the tables
    assert ">重点客户 Key customers</text>" in page  # a label that fits is drawn as it is
