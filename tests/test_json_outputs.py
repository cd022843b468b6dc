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


def test_a_run_is_named_by_the_same_keys_in_apply_runs_changes_actions_and_export(demo_db, cli):
    """apply --json said "policy" and actions --json only the run id, where runs, changes and export say
    policy_name, policy_version, policy_sha256 and as_of: a CRM import of the actions could not date them."""
    applied = _json(cli, "apply", "--db", demo_db, "--policy", "base", "--as-of", SECOND)
    identity = {k: applied[k] for k in ("run_id", "policy_name", "policy_version", "policy_sha256", "as_of")}
    assert identity == {"run_id": 1, "policy_name": "base", "policy_version": "1.0",
                        "policy_sha256": applied["policy_sha256"], "as_of": SECOND}
    assert applied["policy"] == "base"  # the key apply printed first, kept
    [listed] = _json(cli, "runs", "--db", demo_db)
    actions = _json(cli, "actions", "--db", demo_db)
    exported = json.loads(cli("export", "--db", demo_db, "--format", "json", ok=True).stdout)
    changes = _json(cli, "changes", "--db", demo_db)
    for found in (listed, actions, exported["run"]):
        assert {k: found[k] for k in identity} == identity
    assert {k: changes[k] for k in ("run_id", "policy_name", "policy_sha256", "as_of")} == {
        k: identity[k] for k in ("run_id", "policy_name", "policy_sha256", "as_of")}
    assert actions["actions"] and all(a["customer_id"] for a in actions["actions"])


def test_export_json_gives_the_runs_json_columns_as_json_not_as_strings(demo_db, cli):
    """run.plugins and run.notes were strings holding JSON ("[]"), next to counts and metrics as objects."""
    cli("apply", "--db", demo_db, "--policy", "base", "--as-of", SECOND, ok=True)
    run = json.loads(cli("export", "--db", demo_db, "--format", "json", ok=True).stdout)["run"]
    assert isinstance(run["plugins"], dict) and run["plugins"]["credit_check"]
    assert isinstance(run["notes"], list)
    assert isinstance(run["counts"], dict) and isinstance(run["metrics"], list)
    assert isinstance(run["customers"], int) and run["error"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run["finished_at"])


def test_diff_json_totals_have_no_noise_of_the_addition_order(demo_db, cli):
    """diff --json gave old_total 134217730.93000004 where apply --json gave 134217730.93 for the same data."""
    applied = _json(cli, "apply", "--db", demo_db, "--policy", "base", "--as-of", SECOND)
    d = _json(cli, "diff", "--db", demo_db, "base", "vip_card", "--as-of", SECOND)
    assert d["revenue_share"]["old_total"] == applied["summary"]["total_revenue"]
    numbers = [d["revenue_share"]["old_total"], d["revenue_share"]["new_total"],
               *(t["old_revenue"] for t in d["revenue_share"]["tiers"].values()),
               *d["costs"]["old"]["totals"].values(), *d["costs"]["new"]["totals"].values(),
               *d["costs"]["change"].values()]
    for n in numbers:  # at most 15 significant digits: what the amounts (two decimals) add up to
        assert isinstance(n, (int, float)) and not isinstance(n, bool)
        assert len(repr(float(n)).replace(".", "").replace("-", "").lstrip("0").rstrip("0")) <= 15, n


def test_table_commands_name_the_policy_file_as_test_does(tmp_path, cli):
    """table export/import --json gave the file as "policy", which every other command uses for a policy's name."""
    from crm_rules.engine.policy_files import shipped_policies_dir

    policy = tmp_path / "base.yaml"
    policy.write_bytes((shipped_policies_dir() / "base.yaml").read_bytes())
    listed = _json(cli, "table", "export", policy)
    assert listed["policy_file"] == listed["policy"] == str(policy)
    sheet = tmp_path / "tiers.csv"
    cli("table", "export", policy, "--table", "tiers", "--out", sheet, ok=True)
    imported = _json(cli, "table", "import", policy, sheet, "--table", "tiers", "--dry-run")
    assert imported["policy_file"] == imported["policy"] == str(policy)
    assert imported["changed"] is False


def _keys_match(command: str, value) -> None:
    """Every key the entry says is always there is, and every key there is documented."""
    from crm_rules.engine.json_outputs import OUTPUTS

    entry = OUTPUTS[command]
    for item in value if isinstance(value, list) else [value]:
        assert entry.required() <= set(item) <= entry.names(), (
            f"`{command} --json`: missing {sorted(entry.required() - set(item))}, "
            f"undocumented {sorted(set(item) - entry.names())} (engine/json_outputs.py)")


def test_every_json_output_is_documented_key_by_key(two_runs, cli, tmp_path):
    from crm_rules.engine.cli_reference import command_tree, options_of
    from crm_rules.engine.json_outputs import OUTPUTS
    from crm_rules.engine.policy_files import shipped_policies_dir

    db = two_runs
    with_json = {" ".join(d.path) for d in command_tree() if not d.is_group
                 and any("--json" in opts for opts in options_of(d.command).values())} | {"export"}  # --format json
    assert with_json == set(OUTPUTS), "a command with --json and no entry in engine/json_outputs.py, or the reverse"

    policies = shipped_policies_dir()
    policy = tmp_path / "base.yaml"
    policy.write_bytes((policies / "base.yaml").read_bytes())
    broken = tmp_path / "broken.yaml"
    broken.write_text("tiers: [\n", encoding="utf-8")
    sheet = tmp_path / "tiers.csv"
    cli("table", "export", policy, "--table", "tiers", "--out", sheet, ok=True)
    upload = tmp_path / "upload.csv"
    upload.write_text("id;amount\n1;1.234,5\n", encoding="utf-8")
    customer = json.loads(cli("export", "--db", db, "--format", "json", ok=True).stdout)["assignments"][0]["customer_id"]

    validated = json.loads(cli("validate", policy, broken, policies / "base.test.yaml", "--json").stdout)
    assert [v["ok"] for v in validated] == [True, False, True]
    _keys_match("validate", validated)
    outputs = {
        "apply": _json(cli, "apply", "--db", db, "--policy", "base", "--as-of", SECOND, "--dry-run"),
        "test": _json(cli, "test", policies / "base.test.yaml"),
        "explain": _json(cli, "explain", customer, "--db", db, "--policy", "base", "--as-of", SECOND),
        "export": json.loads(cli("export", "--db", db, "--format", "json", ok=True).stdout),
        "import": _json(cli, "import", upload, "--db", db, "--table", "uploaded"),
        "plugins": _json(cli, "plugins"),
        "actions": _json(cli, "actions", "--db", db),
        "diff": _json(cli, "diff", "--db", db, "base", "vip_card", "--as-of", SECOND, "--customers"),
        "analyze": _json(cli, "analyze", "--db", db, "--policy", "base", "--as-of", SECOND),
        "index": _json(cli, "index", "--db", db, "--policy", "base", "--as-of", SECOND),
        "runs": _json(cli, "runs", "--db", db),
        "history": _json(cli, "history", customer, "--db", db),
        "changes": _json(cli, "changes", "--db", db),
        "prune": _json(cli, "prune", "--db", db, "--keep", "1", "--dry-run"),
        "report": _json(cli, "report", "--db", db, "--out", tmp_path / "r.html"),
        "table export": _json(cli, "table", "export", policy),
        "table import": _json(cli, "table", "import", policy, sheet, "--table", "tiers", "--dry-run"),
    }
    assert outputs["import"]["decimal_comma_columns"] == ["amount"]
    erp = tmp_path / "erp.csv"
    erp.write_text('id,amount\n1,"¥1,234.50"\n', encoding="utf-8")
    kept = _json(cli, "import", erp, "--db", db, "--table", "erp")
    assert kept["text_columns_a_run_refuses"] == [{"column": "amount", "holds": "amounts", "example": "¥1,234.50"}]
    _keys_match("import", kept)
    for command, value in outputs.items():
        _keys_match(command, value)
    _keys_match("diff", _json(cli, "diff", "--db", db, "base", "--against-run", "2"))


def test_json_keeps_chinese_text_as_it_is_and_stays_valid(two_runs, cli):
    """The demo's names are mostly Chinese: they are written as UTF-8, not \\u escapes, and parse back."""
    out = cli("export", "--db", two_runs, "--format", "json", ok=True).stdout
    names = [a["customer_name"] for a in json.loads(out)["assignments"]]
    chinese = [n for n in names if re.search(r"[\u4e00-\u9fff]", n or "")]
    assert chinese and all(n in out for n in chinese) and "\\u" not in out
    changes = cli("changes", "--db", two_runs, "--json", ok=True).stdout
    assert json.loads(changes)["changes"] and "\\u" not in changes
