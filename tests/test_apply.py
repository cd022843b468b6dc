"""`crm-rules apply`: runs, result tables, reproducibility, atomicity, data mapping."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from conftest import AS_OF, file_digest, stored_metrics, user_tables_digest
from small_db import rows, run
from crm_rules.engine.errors import DataError, RunError
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

VALID = Path(__file__).parent / "policies" / "valid"


def derived_db(path, template, *statements: str):
    """A new database built from the demo's tables by ``statements`` (schema ``demo`` is the demo)."""
    conn = sqlite3.connect(path)
    conn.execute("ATTACH DATABASE ? AS demo", (str(template),))
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()
    return path


def test_apply_prints_summary_and_writes_one_run(cli, demo_db):
    before = user_tables_digest(demo_db)
    result = cli("apply", "--db", demo_db, "--policy", "base", "--as-of", AS_OF, ok=True)
    assert "run 1 written" in result.output
    assert "Customers per tier (revenue: revenue_12m)" in result.output  # the revenue columns
    assert "重点客户" in result.output  # Chinese labels render
    (run,) = rows(demo_db, "SELECT run_id, policy_name, policy_sha256, as_of, status, customers, started_at, finished_at FROM crm_runs")
    assert run[:6] == (1, "base", load_policy("base").sha256, AS_OF, "succeeded", 300)
    assert run[6] and run[7]
    assert rows(demo_db, "SELECT count(*) FROM crm_assignments WHERE run_id = 1") == [(300,)]
    assert user_tables_digest(demo_db) == before  # the user's tables are never modified


def test_rerun_gives_identical_results(cli, demo_db):
    for _ in range(2):
        cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    cols = "customer_id, tier, subgrade, stage, service_level, tier_rule, subgrade_rule, stage_rule"
    first = rows(demo_db, f"SELECT {cols} FROM crm_assignments WHERE run_id = 1 ORDER BY customer_id")
    second = rows(demo_db, f"SELECT {cols} FROM crm_assignments WHERE run_id = 2 ORDER BY customer_id")
    assert first == second
    assert stored_metrics(demo_db, 1) == stored_metrics(demo_db, 2)
    shas = rows(demo_db, "SELECT DISTINCT policy_sha256 FROM crm_runs")
    assert len(shas) == 1


def test_results_match_revenue_shares_and_rules(demo_db):
    outcome = apply_policy(demo_db, load_policy("base"), AS_OF)
    tiers = outcome.summary["tiers"]
    assert list(tiers) == ["A", "B", "C"]
    assert abs(sum(t["revenue_share"] for t in tiers.values()) - 1) < 1e-9
    # Pareto: A holds at least 80% of revenue (the crossing customer is in A), A+B at least 95%.
    assert tiers["A"]["revenue_share"] >= 0.8
    assert tiers["A"]["revenue_share"] + tiers["B"]["revenue_share"] >= 0.95
    stages = rows(demo_db, "SELECT DISTINCT stage FROM crm_assignments")
    assert {s for (s,) in stages} <= {"lost", "decline", "identification", "development", "stable"}
    # service levels: the most specific entry wins (A in decline -> A-recovery)
    assert rows(demo_db, "SELECT DISTINCT service_level FROM crm_assignments WHERE tier='A' AND stage='decline'") in ([("A-recovery",)], [])
    assert rows(demo_db, "SELECT count(*) FROM crm_assignments WHERE tier='A' AND stage!='decline' AND service_level!='A-key'") == [(0,)]


def test_customers_without_a_since_date_are_noted(tmp_path):
    # their tenure is NULL: `tenure_years < 2` matches none of them, and they fell to the default stage unseen
    from small_db import make_db

    db = make_db(tmp_path / "s.db", [("a", "A", "r"), ("b", "B", "r")], orders=[("a", "2026-05-01", 10)])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE customers SET created_at = NULL WHERE id = 'a'")
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  tenure_years: {tenure: years}\n  revenue: {sum: amount}\n"
                      "tiers:\n  levels: [{id: A, default: true}]\n"
                      "lifecycle:\n  stages: [{id: new, when: 'tenure_years < 2'}, {id: stable, default: true}]\n")
    outcome = apply_policy(db, load_policy(policy), AS_OF)
    assert outcome.notes == ["1 customer(s) have no 'created_at' (NULL): their tenure_years is empty, so no rule on it "
                             "matches them; fill the dates in, or say what they get, e.g. `tenure_years is null or "
                             "tenure_years < 2`"]


def test_a_trend_over_a_previous_period_of_zero_or_less_is_empty(tmp_path):
    # credit notes outweighing sales before: -5,000 then +90,000 was a trend of -19, a "decline" and a churn alert
    from small_db import make_db

    db = make_db(tmp_path / "s.db", [("neg", "N", "r"), ("zero", "Z", "r"), ("up", "U", "r")], orders=[
        ("neg", "2025-10-01", 40_000), ("neg", "2025-11-01", -45_000), ("neg", "2026-03-01", 90_000),
        ("zero", "2026-03-01", 500), ("up", "2025-10-01", 100), ("up", "2026-03-01", 150)])
    got = run(tmp_path, "metrics:\n  revenue_trend: {trend: amount, window: 6 months}\n"
                        "tiers:\n  levels: [{id: A, default: true}]\n", db)
    assert {cid: v[4]["revenue_trend"] for cid, v in got.items()} == {"neg": None, "zero": None, "up": 0.5}


def test_as_of_excludes_later_data(demo_db):
    early = apply_policy(demo_db, load_policy("base"), "2024-06-30")
    late = apply_policy(demo_db, load_policy("base"), AS_OF)
    assert early.summary["total_revenue"] != late.summary["total_revenue"]
    (metrics,) = rows(demo_db, "SELECT count(*) FROM crm_metrics WHERE run_id = ? AND recency_days < 0", early.run_id)
    assert metrics == (0,)


def test_an_as_of_date_before_the_data_is_noted(cli, demo_db):
    """A mistyped year grades everyone on nothing; the run is valid, so it says so instead of failing."""
    (joined,) = rows(demo_db, "SELECT count(*) FROM customers WHERE created_at > '2025-01-01'")[0]
    past = apply_policy(demo_db, load_policy("base"), "2025-01-01")
    assert past.notes == [f"{joined:,} customer(s) joined after the as-of date 2025-01-01 (their 'created_at' is "
                          f"later): they are graded before they existed, with a negative tenure; is --as-of right?"]
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", "1990-01-01", "--json", ok=True)
    (customers, before_data) = json.loads(result.output)["notes"]
    assert customers.startswith("300 customer(s) joined after the as-of date 1990-01-01")
    assert before_data == ("no row of 'contracts' (by start_date), 'interactions' (by date), 'orders' (by order_date), "
                           "'receivables' (by issue_date) is dated on or before the as-of date 1990-01-01: their metrics are empty for every "
                           "customer; is --as-of right?")
    (stored,) = rows(demo_db, "SELECT notes FROM crm_runs WHERE as_of = '1990-01-01'")[0]
    assert json.loads(stored) == [customers, before_data]  # kept with the run, for whoever reads it later
    explained = cli("explain", "C000001", "--db", demo_db, "-p", "base", "--as-of", "1990-01-01", ok=True).output
    explained = " ".join(explained.split())  # the notes wrap to the terminal
    assert "from run" in explained and f"note: {customers}" in explained and f"note: {before_data}" in explained
    recomputed = cli("explain", "C000001", "--db", demo_db, "-p", "base", "--as-of", "1990-01-01", "--recompute",
                     "--json", ok=True).output
    assert json.loads(recomputed)["source"]["notes"] == [customers, before_data]
    assert apply_policy(demo_db, load_policy("base"), AS_OF).notes == []


def test_crm_current_shows_latest_successful_run_per_policy(demo_db):
    apply_policy(demo_db, load_policy("base"), "2025-06-30")
    apply_policy(demo_db, load_policy("base"), AS_OF)
    apply_policy(demo_db, load_policy(VALID / "minimal.yaml"), AS_OF)
    current = rows(demo_db, "SELECT policy_name, run_id, count(*) FROM crm_current GROUP BY policy_name, run_id ORDER BY policy_name")
    assert current == [("base", 2, 300), ("minimal", 3, 300)]


def test_results_db_keeps_source_untouched(cli, demo_db, tmp_path):
    digest = file_digest(demo_db)
    results = tmp_path / "results.db"
    cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--results-db", results, ok=True)
    assert file_digest(demo_db) == digest
    assert rows(results, "SELECT count(*) FROM crm_assignments") == [(300,)]
    out = cli("export", "--db", results, "--format", "json", ok=True)
    assert json.loads(out.output)["run"]["run_id"] == 1


def test_dry_run_writes_nothing(cli, demo_db):
    digest = file_digest(demo_db)
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--dry-run", ok=True)
    assert "dry run: nothing written" in result.output
    assert file_digest(demo_db) == digest


def test_a_future_as_of_is_refused_unless_allowed(cli, demo_db):
    digest = file_digest(demo_db)
    refused = cli("apply", "--db", demo_db, "-p", "base", "--as-of", "2062-06-30")
    assert refused.exit_code == 2 and "--as-of 2062-06-30 is after today" in refused.output
    assert file_digest(demo_db) == digest
    allowed = cli("apply", "--db", demo_db, "-p", "base", "--as-of", "2062-06-30", "--allow-future", "--dry-run", ok=True)
    assert "as of 2062-06-30" in allowed.output


def test_json_summary(cli, demo_db):
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--json", ok=True)
    data = json.loads(result.output)
    assert data["run_id"] == 1 and data["summary"]["customers"] == 300
    # the labels the table shows beside each id, as the text is (UTF-8, not escaped)
    assert data["labels"]["tiers"]["A"] == "重点客户 Key customers" and "重点客户" in result.output
    assert data["labels"]["subgrades"]["A1"] == "Strategic" and data["labels"]["stages"]["lost"] == "流失期 Lost"
    # a grade scale in its own order (the plugins' Column.values), not most customers first
    outputs = data["summary"]["outputs"]
    assert list(outputs["credit_check_grade"]) == [g for g in ("AAA", "AA", "A", "B", "C") if g in outputs["credit_check_grade"]]
    assert list(outputs["credit_check_outcome"]) == [o for o in ("ok", "warn", "hold", "block")
                                                     if o in outputs["credit_check_outcome"]]
    assert list(outputs["value_grade"]) == [g for g in ("high", "medium", "low") if g in outputs["value_grade"]]


def test_failed_run_leaves_no_partial_results(demo_db, tmp_path):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    before = rows(demo_db, "SELECT * FROM crm_assignments ORDER BY customer_id")
    policy = tmp_path / "overlap.yaml"
    policy.write_text(
        "metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
        "tiers:\n  hit_policy: unique\n  levels:\n"
        "    - {id: big, when: 'revenue_12m >= 1000'}\n"
        "    - {id: any, when: 'revenue_12m >= 0'}\n"
        "    - {id: none, default: true}\n")
    with pytest.raises(RunError) as info:
        apply_policy(demo_db, load_policy(policy), AS_OF)
    assert "matches tier rules 'big'" in str(info.value) and "'any'" in str(info.value)
    assert rows(demo_db, "SELECT * FROM crm_assignments ORDER BY customer_id") == before
    assert rows(demo_db, "SELECT status FROM crm_runs ORDER BY run_id") == [("succeeded",), ("failed",)]


def test_unique_hit_policy_without_overlap_runs(demo_db):
    outcome = apply_policy(demo_db, load_policy(VALID / "rules_unique.yaml"), AS_OF)
    assert sum(t["customers"] for t in outcome.summary["tiers"].values()) == 300


@pytest.mark.parametrize("name", ["quantile.yaml", "top_n.yaml", "with_sources_file.yaml", "extends_base.yaml",
                                  "shared_service_levels.yaml"])
def test_example_policies_apply(demo_db, name):
    outcome = apply_policy(demo_db, load_policy(VALID / name), AS_OF)
    assert outcome.summary["customers"] == 300


def test_top_n_takes_exactly_the_top(demo_db):
    run = apply_policy(demo_db, load_policy(VALID / "top_n.yaml"), AS_OF).run_id
    joined = "FROM crm_assignments AS a JOIN crm_metrics AS m USING (run_id, customer_id) WHERE run_id = ?"
    top = rows(demo_db, f"SELECT m.revenue_12m {joined} AND a.tier = 'top10'", run)
    rest = rows(demo_db, f"SELECT max(m.revenue_12m) {joined} AND a.tier != 'top10'", run)
    assert len(top) == 10 and min(t for (t,) in top) > rest[0][0]
    zero = rows(demo_db, f"SELECT count(*) {joined} AND a.tier = 'inactive' AND m.revenue_12m > 0", run)
    assert zero == [(0,)]


def test_own_table_and_column_names_via_data_section(tmp_path, demo_template):
    db = derived_db(tmp_path / "erp.db", demo_template,
        "CREATE TABLE kunden AS SELECT id AS nr, name AS firma, region AS gebiet FROM demo.customers",
        "CREATE TABLE auftraege AS SELECT customer_id AS kunde, order_date AS datum, amount AS betrag FROM demo.orders",
    )
    policy = tmp_path / "erp.yaml"
    policy.write_text(
        "data:\n"
        "  customers: {table: kunden, id: nr, name: firma, attributes: {region: gebiet}}\n"
        "  orders: {table: auftraege, customer: kunde, date: datum, amount: betrag}\n"
        "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n  last: {recency: orders}\n"
        "tiers:\n  levels:\n    - {id: A, when: \"revenue_12m > 50000 and region in ['华东', '华南']\"}\n    - {id: B, default: true}\n",
        encoding="utf-8")
    outcome = apply_policy(db, load_policy(policy), AS_OF)
    assert outcome.summary["customers"] == 300


def test_missing_optional_table_names_the_metric(tmp_path, demo_template):
    db = derived_db(tmp_path / "small.db", demo_template,
        "CREATE TABLE customers AS SELECT * FROM demo.customers",
        "CREATE TABLE orders AS SELECT * FROM demo.orders",
    )
    digest = file_digest(db)
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy("base"), AS_OF)
    message = str(info.value)
    assert ("metrics 'complaints_12m', 'referrals_12m' and 'contacts_12m' need interactions, but the database has no "
            "table 'interactions'") in message
    assert "metrics 'overdue_amount' and 'collection_rate_12m', and the plugin entry credit.credit_check need receivables" in message
    assert message.count("need receivables") == 1
    assert file_digest(db) == digest
    # a policy that only needs orders works on the same database
    assert apply_policy(db, load_policy(VALID / "minimal.yaml"), AS_OF).summary["customers"] == 300


def test_missing_column_is_named_with_suggestion(tmp_path, demo_template):
    db = derived_db(tmp_path / "c.db", demo_template,
        "CREATE TABLE customers AS SELECT * FROM demo.customers",
        "CREATE TABLE orders AS SELECT id, customer_id, order_date AS order_dt, amount, cost, discount FROM demo.orders",
    )
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics: {r: {sum: amount, window: 12 months}}\ntiers:\n  levels: [{id: A, default: true}]\n")
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(policy), AS_OF)
    assert "table 'orders' has no column 'order_date' (data.orders.date, needed by metric 'r'); did you mean 'order_dt'?" in str(info.value)


def test_data_mapping_problems_are_named_once_each_at_the_data_entry(tmp_path, demo_template):
    """A column or table the data: section maps wrong is one problem however many metrics use it, at its
    file:line:col: in the policy, its base or its sources file; a default mapping has no place to name."""
    db = derived_db(tmp_path / "m.db", demo_template,
        "CREATE TABLE customers AS SELECT * FROM demo.customers",
        "CREATE TABLE orders AS SELECT id, customer_id, order_date, amount FROM demo.orders",
    )
    (tmp_path / "parent.yaml").write_text("data:\n  orders: {date: day}\ntiers:\n  levels: [{id: A, default: true}]\n",
                                          encoding="utf-8")
    policy = tmp_path / "p.yaml"
    policy.write_text("extends: parent.yaml\n"
                      "data:\n  orders:\n    amount: amt\n    columns: {channel: {column: chanel, type: text}}\n"
                      "  receivables: {table: invoices}\n"
                      "metrics:\n  r12: {sum: amount, window: 12 months}\n  r6: {sum: amount, window: 6 months}\n"
                      "  web: {count: orders, where: \"channel = 'web'\"}\n  margin: {sum: amount - cost}\n"
                      "  overdue: {overdue: amount}\n  open: {outstanding: receivables}\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(policy), AS_OF)
    lines = str(info.value).splitlines()[1:-1]  # between the heading and the hint
    assert lines == [
        f"  - {tmp_path / 'p.yaml'}:4:13: table 'orders' has no column 'amt' (data.orders.amount, needed by metrics 'r12', "
        f"'r6' and 'margin'); did you mean 'amount'?; its columns are: id, customer_id, order_date, amount",
        f"  - {tmp_path / 'p.yaml'}:5:33: table 'orders' has no column 'chanel' (data.orders.columns.channel, needed by "
        f"metric 'web'); its columns are: id, customer_id, order_date, amount",
        f"  - {tmp_path / 'p.yaml'}:6:24: metrics 'overdue' and 'open' need receivables, but the database has no table "
        f"'invoices'; map data.receivables.table to your table, or remove what needs it",
        f"  - {tmp_path / 'parent.yaml'}:2:18: table 'orders' has no column 'day' (data.orders.date, needed by metrics "
        f"'r12', 'r6', 'web' and 'margin'); its columns are: id, customer_id, order_date, amount",
        "  - table 'orders' has no column 'cost' (data.orders.columns.cost, needed by metric 'margin'); its columns are: "
        "id, customer_id, order_date, amount",
    ]
    (tmp_path / "sources.yaml").write_text("orders:\n  amount: amt\n", encoding="utf-8")
    policy.write_text("data: sources.yaml\nmetrics: {r: {sum: amount}}\ntiers:\n  levels: [{id: A, default: true}]\n",
                      encoding="utf-8")
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(policy), AS_OF)
    assert f"\n  - {tmp_path / 'sources.yaml'}:2:11: table 'orders' has no column 'amt' (data.orders.amount" in str(info.value)


def test_bad_dates_in_data_are_reported(tmp_path, demo_template):
    db = derived_db(tmp_path / "d.db", demo_template,
        "CREATE TABLE customers AS SELECT * FROM demo.customers",
        "CREATE TABLE orders AS SELECT * FROM demo.orders",
        "UPDATE orders SET order_date = '03/05/2026' WHERE id = (SELECT min(id) FROM orders)",
    )
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(VALID / "rules_unique.yaml"), AS_OF)
    assert "'03/05/2026'" in str(info.value) and "is not a YYYY-MM-DD date" in str(info.value)


def test_cli_errors_are_clean(cli, tmp_path, demo_db):
    missing = cli("apply", "--db", tmp_path / "nope.db", "-p", "base")
    assert missing.exit_code == 2 and "database not found" in missing.output
    assert not (tmp_path / "nope.db").exists()
    bad_date = cli("apply", "--db", demo_db, "-p", "base", "--as-of", "2026-02-30")
    assert bad_date.exit_code == 2 and "is not a date" in bad_date.output
    no_policy = cli("apply", "--db", demo_db, "-p", "nosuch")
    assert no_policy.exit_code == 2 and "shipped policy: " in no_policy.output
    (tmp_path / "junk.db").write_text("not a database")
    junk = cli("apply", "--db", tmp_path / "junk.db", "-p", "base")
    assert junk.exit_code == 1 and "not a SQLite database" in junk.output
    assert "Traceback" not in missing.output + bad_date.output + no_policy.output + junk.output


def _statements_for(db, policy, monkeypatch) -> list[str]:
    """Every SQL statement a run sends, with parameters left out."""
    import crm_rules.engine.runner as runner

    seen: list[str] = []
    real = runner.open_for_run

    def traced(*args, **kwargs):
        rc = real(*args, **kwargs)
        rc.conn.set_trace_callback(seen.append)
        return rc

    monkeypatch.setattr(runner, "open_for_run", traced)
    apply_policy(db, load_policy(policy), AS_OF)
    return seen


def test_work_is_set_based_not_per_customer(tmp_path, monkeypatch):
    """The statements a run sends do not depend on how many customers there are."""
    from crm_rules.engine.demo_data import generate_demo_database

    import crm_rules.engine.runner as runner
    from crm_rules.engine import source_scans

    # the scans on the run's connection alone at both sizes (how many jobs a thread takes depends on timing)
    monkeypatch.setattr(runner, "run_scans", lambda *a, **k: source_scans.run_scans(*a, **{**k, "workers": 0}))
    counts = []
    for n in (50, 400):
        db = tmp_path / f"{n}.db"
        generate_demo_database(db, customers=n, seed=3)
        counts.append(len(_statements_for(db, "base", monkeypatch)))
    assert counts[0] == counts[1] < 400  # equal: nothing is sent per customer


def test_impossible_dates_are_rejected(tmp_path, demo_template):
    db = derived_db(tmp_path / "d.db", demo_template,
        "CREATE TABLE customers AS SELECT * FROM demo.customers",
        "CREATE TABLE orders AS SELECT * FROM demo.orders",
        "UPDATE orders SET order_date = '2026-02-30' WHERE id = (SELECT min(id) FROM orders)",
        "UPDATE orders SET order_date = 20260105 WHERE id = (SELECT max(id) FROM orders)",
    )
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(VALID / "rules_unique.yaml"), AS_OF)
    assert "'2026-02-30'" in str(info.value) and "20260105" in str(info.value)


def test_repurchase_rate_is_share_of_months_with_a_purchase(tmp_path, demo_db):
    policy = tmp_path / "r.yaml"
    policy.write_text("metrics:\n  months_6m: {repurchase_rate: orders, window: 6 months}\n"
                      "tiers:\n  levels:\n    - {id: regular, when: 'months_6m >= 0.5'}\n    - {id: other, default: true}\n")
    run = apply_policy(demo_db, load_policy(policy), AS_OF).run_id
    got = dict(rows(demo_db, "SELECT customer_id, months_6m FROM crm_metrics WHERE run_id = ?", run))
    # the as-of date is a month's last day: the six periods are January to June 2026
    months: dict[str, set] = {cid: set() for (cid,) in rows(demo_db, "SELECT id FROM customers")}
    for cid, day in rows(demo_db, "SELECT customer_id, order_date FROM orders"):
        if "2026-01-01" <= day[:10] <= AS_OF:
            months[cid].add(day[:7])
    expected = {cid: len(m) / 6 for cid, m in months.items()}
    assert got == pytest.approx(expected)
    assert 0 < sum(1 for v in got.values() if v >= 0.5) < len(got)


@pytest.mark.parametrize("as_of, days, expected", [
    ("2026-06-30", (1, 15, 28), 1.0),   # month end: calendar months, whatever day of the month the customer buys on
    ("2026-06-15", (15, 16), 1.0),      # months ending on the 15th: (May 15, June 15] holds one 15th and one 16th
    ("2026-03-31", (31,), 7 / 12),      # no 31st in February, April, June, September, November
])
def test_repurchase_rate_of_a_customer_buying_every_calendar_month_is_one(tmp_path, as_of, days, expected):
    from small_db import make_db

    end = dt.date.fromisoformat(as_of)
    orders = [(f"c{day}", f"{year}-{month:02d}-{day:02d}", 10)
              for day in days for year in (end.year - 2, end.year - 1, end.year) for month in range(1, 13)
              if day <= calendar.monthrange(year, month)[1] and f"{year}-{month:02d}-{day:02d}" <= as_of]
    db = make_db(tmp_path / "m.db", [(f"c{day}", "x", "r") for day in days], orders)
    policy = tmp_path / "r.yaml"
    policy.write_text("metrics:\n  months_12m: {repurchase_rate: orders, window: 12 months}\n"
                      "  months_1y: {repurchase_rate: orders, window: 1 year}\n"
                      "tiers:\n  levels:\n    - {id: other, default: true}\n")
    run = apply_policy(db, load_policy(policy), as_of).run_id
    got = rows(db, "SELECT customer_id, months_12m, months_1y FROM crm_metrics WHERE run_id = ?", run)
    assert {cid: (a, b) for cid, a, b in got} == {f"c{day}": (pytest.approx(expected), pytest.approx(expected)) for day in days}


def test_repurchase_rate_over_days_never_passes_one(tmp_path):
    from small_db import make_db

    orders = [("a", (dt.date(2026, 6, 30) - dt.timedelta(days=n)).isoformat(), 1) for n in range(90)]
    db = make_db(tmp_path / "d.db", [("a", "x", "r")], orders)
    policy = tmp_path / "r.yaml"
    policy.write_text("metrics:\n  daily: {repurchase_rate: orders, window: 90 days}\n"
                      "tiers:\n  levels:\n    - {id: other, default: true}\n")
    run = apply_policy(db, load_policy(policy), "2026-06-30").run_id
    assert rows(db, "SELECT months FROM (SELECT daily AS months FROM crm_metrics WHERE run_id = ?)", run) == [(1.0,)]


def test_overdue_counts_due_dates_with_a_time(tmp_path):
    from small_db import make_db, run

    db = make_db(tmp_path / "t.db", [("a", "A", "x")], receivables=[
        ("a", "2026-05-01", "2026-05-30 10:00:00", 100, 0, None),   # 31 days past due
        ("a", "2026-05-01", "2026-06-29 10:00:00", 10, 0, None),    # 1 day past due
    ])
    got = run(tmp_path, "metrics:\n  late_31_60: {overdue: amount, min_days: 31, max_days: 60}\n"
                        "  late_any: {overdue: amount}\ntiers:\n  levels: [{id: A, default: true}]\n", db)
    assert got["a"][4] == {"late_31_60": 100, "late_any": 110}


def test_attributes_read_by_plugins_are_checked_and_can_be_unmapped(tmp_path, demo_template):
    db = derived_db(tmp_path / "nolimit.db", demo_template,
                    "CREATE TABLE customers AS SELECT id, name, region, industry, created_at, account_manager FROM demo.customers",
                    "CREATE TABLE orders AS SELECT * FROM demo.orders",
                    "CREATE TABLE receivables AS SELECT * FROM demo.receivables")
    policy = tmp_path / "c.yaml"
    policy.write_text("metrics: {revenue_12m: {sum: amount, window: 12 months}}\n"
                      "credit:\n  c: {use: credit_6c}\ntiers:\n  levels: [{id: A, default: true}]\n")
    with pytest.raises(DataError) as info:
        apply_policy(db, load_policy(policy), AS_OF)
    assert "has no column 'credit_limit' (data.customers.attributes.credit_limit" in str(info.value)
    policy.write_text(policy.read_text() + "data:\n  customers: {attributes: {credit_limit: null}}\n")
    outcome = apply_policy(db, load_policy(policy), AS_OF)
    assert outcome.summary["customers"] == 300


def test_revenues_equal_to_the_cent_are_ties_at_a_pareto_cut(tmp_path):
    # 0.1 + 0.2 is 0.30000000000000004 in floating point; ranked apart from 0.3, the customer
    # summed second would see the other ahead of it and cross the 80% cut into tier B.
    from small_db import make_db, run

    day = "2026-06-01"
    db = make_db(tmp_path / "t.db", [("big", "Big", "x"), ("one", "One order", "x"), ("two", "Two orders", "x")],
                 orders=[("big", day, 0.9), ("one", day, 0.3), ("two", day, 0.1), ("two", day, 0.2)])
    got = run(tmp_path, "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
                        "tiers:\n  method: pareto\n  metric: revenue_12m\n"
                        "  levels: [{id: A, up_to: 0.8}, {id: B, up_to: 0.95}, {id: C}]\n", db)
    assert got["one"][0] == got["two"][0] == "A"


def test_the_summary_groups_are_those_of_a_group_by_nulls_and_mixed_values_included():
    """_grouped counts by an upsert; the rows, sums and minimums must be a GROUP BY's, in its order."""
    from types import SimpleNamespace

    from crm_rules.engine.runner import Computed, _grouped

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TEMP TABLE r (_tier, _stage, _subgrade, _service_level, _tier_rule, _rule_tier, rev, grade)")
    conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        ("A", "stable", None, "gold", "t1", "A", 10.5, "x"), ("A", "stable", None, "gold", "override", "C", None, None),
        ("A", "stable", None, "gold", "t1", "A", 2, "x"), ("B", None, "B1", None, "t2", "B", None, ""),
        ("B", None, "B1", None, "t2", "B", None, None), ("C", "new", None, None, "t3", "C", 0, 7),
        ("C", "new", None, None, "t3", "C", -1.25, 7), ("A", "stable", None, "gold", "t1", "A", 0.1, "x"),
        ("A", "stable", None, "gold", "override", "B", 3, "x")])
    column = SimpleNamespace(summarize=True)
    policy = SimpleNamespace(outputs={"grade": SimpleNamespace(column=column)}, revenue_metric="rev",
                             tier_metric="rev", tier_method="pareto")
    expected = conn.execute(
        "SELECT count(*), sum(rev), _tier, _stage, _subgrade, _service_level, _tier_rule = 'override', min(rev), "
        "_rule_tier, coalesce(grade, '') FROM r GROUP BY _tier, _stage, _subgrade, _service_level, "
        "_tier_rule = 'override', _rule_tier, coalesce(grade, '')").fetchall()
    assert _grouped(conn, policy, "temp.r", with_overrides=True) == expected
    # the lowest tier metric per tier the rules give: the override's 3 counts for B, not for A
    grouped = SimpleNamespace(groups=expected)
    assert Computed.tier_minimum(grouped) == [["A", 0.1], ["B", 3], ["C", -1.25]]
    assert (2, None, "B", None, "B1", None, 0, None, "B", "") in expected  # NULL keys and an all-NULL sum kept


def test_a_commit_by_another_program_during_the_run_is_noted(demo_db, monkeypatch):
    """Each scan sees the data as it is when it starts: a commit between two of them can count an invoice
    without its order, so the run says the data changed while it read it."""
    from crm_rules.engine import runner

    scans = runner.run_scans

    def scans_then_a_commit(*args, **kwargs):
        scans(*args, **kwargs)
        other = sqlite3.connect(demo_db)
        with other:
            other.execute("INSERT INTO orders (customer_id, order_date, amount, cost, discount) "
                          "VALUES ('C000001', '2026-06-01', 10, 0, 0)")
        other.close()

    quiet = apply_policy(demo_db, load_policy("base"), "2026-06-30", dry_run=True)
    assert not any("changed while the run read it" in n for n in quiet.notes)
    monkeypatch.setattr(runner, "run_scans", scans_then_a_commit)
    busy = apply_policy(demo_db, load_policy("base"), "2026-06-30", dry_run=True)
    assert any(n.startswith(f"the data changed while the run read it (another program committed to {demo_db}")
               for n in busy.notes)


@pytest.mark.parametrize("top, expected", [(0.07, 7), (0.14, 14), (0.29, 29), (0.5, 50)])
def test_a_quantile_cut_takes_exactly_its_share_of_customers(tmp_path, top, expected):
    # 0.07 * 100 is 7.000000000000001 in floating point: compared with the 7 customers ahead of the
    # 8th, it let 8 customers into the top 7%.
    from small_db import make_db, run

    customers = [(f"c{i:03d}", f"Customer {i}", "x") for i in range(100)]
    db = make_db(tmp_path / "t.db", customers, orders=[(c, "2026-06-01", 1000 - i) for i, (c, _, _) in enumerate(customers)])
    got = run(tmp_path, "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
                        "tiers:\n  method: quantile\n  metric: revenue_12m\n"
                        f"  levels: [{{id: A, top: {top}}}, {{id: B}}]\n", db)
    top_customers = sorted(c for c, grades in got.items() if grades[0] == "A")
    assert top_customers == [f"c{i:03d}" for i in range(expected)]


def test_no_revenue_shares_of_a_net_revenue_of_zero_or_less(cli, tmp_path):
    # returns outweighing sales: shares of -5 read "-0.0%" for tiers without revenue and "100.0%" for the
    # tier holding the loss; the run's report already shows none
    from small_db import make_db

    db = make_db(tmp_path / "t.db", [("a", "A", "x"), ("b", "B", "x")], orders=[("a", "2026-06-01", -5)])
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
                      "tiers:\n  method: pareto\n  metric: revenue_12m\n  levels: [{id: A, up_to: 0.8}, {id: C}]\n")
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", AS_OF, "--json", ok=True)
    tiers = json.loads(result.output)["summary"]["tiers"]
    assert [t["revenue_share"] for t in tiers.values()] == [None, None]
    text = cli("apply", "--db", db, "--policy", policy, "--as-of", AS_OF, "--dry-run", ok=True).output
    rows_of_tiers = [line for line in text.splitlines() if line.startswith(("│ A ", "│ C "))]
    assert len(rows_of_tiers) == 2 and all(line.endswith("│          — │") for line in rows_of_tiers)


def test_data_that_stops_months_before_the_as_of_date_is_noted(tmp_path):
    # a stale export graded as of today made every customer lapsed, and the run looked as valid as any other
    from small_db import make_db

    db = make_db(tmp_path / "s.db", [("a", "A", "r"), ("b", "B", "r")],
                 orders=[("a", "2026-05-01", 10), ("b", "2026-04-01", 10)])
    policy = tmp_path / "p.yaml"
    policy.write_text("metrics:\n  recency_days: {recency: orders}\n  revenue: {sum: amount}\n"
                      "tiers:\n  levels: [{id: A, default: true}]\n")
    assert apply_policy(db, load_policy(policy), "2026-06-30").notes == []
    notes = apply_policy(db, load_policy(policy), "2026-11-01").notes
    assert notes == ["the latest row of 'orders' that recency_days counts is dated 2026-05-01, 184 days before the "
                     "as-of date 2026-11-01: every customer is graded as inactive since then; is the data current, "
                     "and is --as-of right? (to grade as of the data's end: --as-of 2026-05-01)"]
