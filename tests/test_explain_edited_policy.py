"""`explain --run N` after the policy file was edited: the run's own policy, as crm_policies stored it, explains it.

It used to refuse ("run N was made with other policy content") and ask for the old file, which is gone once the
policy was edited in place, although every run keeps its resolved policy document.
"""

from __future__ import annotations

import json
import sqlite3
import shutil
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

SHIPPED_BASE = Path(str(shipped_policies_dir())) / "base.yaml"


@pytest.fixture
def policy_file(tmp_path) -> Path:
    path = tmp_path / "base.yaml"
    shutil.copy(SHIPPED_BASE, path)
    return path


@pytest.fixture
def edited(demo_db, policy_file) -> tuple[Path, str, str]:
    """(the database, the policy's sha256 at run 1, its sha256 after the edit): run 1, then the tiers relabelled."""
    before = load_policy(policy_file).sha256
    assert apply_policy(demo_db, load_policy(policy_file), AS_OF).run_id == 1
    text = policy_file.read_text(encoding="utf-8")
    assert "重点客户 Key customers" in text
    policy_file.write_text(text.replace("重点客户 Key customers", "Renamed key customers"), encoding="utf-8")
    after = load_policy(policy_file).sha256
    assert after != before
    return demo_db, before, after


def explain_json(cli, db: Path, policy: Path, *more: str) -> dict:
    return json.loads(cli("explain", "C000002", "--db", db, "-p", policy, *more, "--json", ok=True).stdout)


def test_a_run_is_explained_with_the_policy_it_stored(cli, edited, policy_file):
    db, before, _ = edited
    got = explain_json(cli, db, policy_file, "--run", "1")
    assert got["policy_sha256"] == before and got["source"]["path"] == "stored"
    labels = {r["id"]: r["label"] for r in got["tier"]["rules"]}
    assert labels["A"] == "重点客户 Key customers"  # the label of the run, not of the edited file


def test_the_explanation_is_the_one_the_original_file_gives(cli, edited, policy_file, tmp_path):
    db, _, _ = edited
    original = tmp_path / "original" / "base.yaml"
    original.parent.mkdir()
    shutil.copy(SHIPPED_BASE, original)
    stored = explain_json(cli, db, policy_file, "--run", "1")
    from_file = explain_json(cli, db, original, "--run", "1")
    assert {k: v for k, v in stored.items() if k != "source"} == {k: v for k, v in from_file.items() if k != "source"}


def test_json_source_says_which_version_explained(cli, edited, policy_file):
    db, before, after = edited
    got = explain_json(cli, db, policy_file, "--run", "1")
    assert got["source"]["policy"] == {"sha256": before, "file_sha256": after, "stored_with_run": 1}


def test_text_output_says_which_version_explained(cli, edited, policy_file):
    db, before, after = edited
    out = " ".join(cli("explain", "C000002", "--db", db, "-p", policy_file, "--run", "1", ok=True).stdout.split())
    assert f"policy base (sha256 {before[:12]})" in out
    assert (f"with the policy as the run stored it (sha256 {before[:12]}); the policy file has changed since "
            f"(sha256 {after[:12]} now)") in out


def test_an_unchanged_file_explains_as_before(cli, demo_db, policy_file):
    apply_policy(demo_db, load_policy(policy_file), AS_OF)
    got = explain_json(cli, demo_db, policy_file, "--run", "1")
    sha = load_policy(policy_file).sha256
    assert got["source"]["policy"] == {"sha256": sha, "file_sha256": sha, "stored_with_run": None}
    assert "changed since" not in got["source"]["text"]


def test_without_run_the_edited_file_is_computed_not_replaced(cli, edited, policy_file):
    db, _, after = edited
    got = explain_json(cli, db, policy_file, "--as-of", AS_OF)
    assert got["source"]["path"] == "computed" and got["policy_sha256"] == after
    assert {r["id"]: r["label"] for r in got["tier"]["rules"]}["A"] == "Renamed key customers"


def test_another_policy_is_still_refused(cli, edited):
    db, _, _ = edited
    result = cli("explain", "C000002", "--db", db, "-p", "vip_card", "--run", "1")
    # named as another policy, not as other content of this one ("pass the policy file the run was made with")
    assert result.exit_code == 2 and f"run 1 in {db} is a run of policy 'base', not 'vip_card'" in result.stderr
    assert "other policy content" not in result.stderr


@pytest.mark.parametrize("name", ["vip_card", "bank_profitability"])
def test_other_policies_explain_from_their_stored_version_as_from_the_file(cli, demo_db, tmp_path, name):
    folder = tmp_path / "policies"
    shutil.copytree(SHIPPED_BASE.parent, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / f"{name}.yaml"
    assert apply_policy(demo_db, load_policy(path), AS_OF).run_id == 1
    from_file = explain_json(cli, demo_db, path, "--run", "1")
    path.write_text(path.read_text(encoding="utf-8").replace('version: "1.0"', 'version: "1.1"', 1), encoding="utf-8")
    stored = explain_json(cli, demo_db, path, "--run", "1")
    assert stored["source"]["policy"]["stored_with_run"] == 1
    assert {k: v for k, v in stored.items() if k != "source"} == {k: v for k, v in from_file.items() if k != "source"}


def test_a_stored_policy_this_version_rejects_is_a_usage_error_not_a_made_up_place(cli, edited, policy_file):
    # a run made by an older crm-rules whose checks were looser: its stored document has no file to point at
    db, before, _ = edited
    with sqlite3.connect(db) as conn:
        (document,) = conn.execute("SELECT document FROM crm_policies WHERE sha256 = ?", (before,)).fetchone()
        assert document.count('"revenue_12m"') > 1
        conn.execute("UPDATE crm_policies SET document = ? WHERE sha256 = ?",
                     (document.replace('"metric":"revenue_12m"', '"metric":"revenue_12mm"', 1), before))
    result = cli("explain", "C000001", "--db", db, "-p", policy_file, "--run", "1")
    assert result.exit_code == 2 and "<policy of run 1>" not in result.output
    assert "run 1 cannot be explained: the policy it stored (sha256 " in result.output
    assert "does not pass this version's checks (" in result.output and "crm-rules export --run 1" in result.output


# ---- explain --run N without --policy: the policy the run stored ----


def test_a_run_is_explained_without_a_policy_file(cli, edited, policy_file):
    """`explain C1 --run 1` was refused with "Missing option '--policy'", although the run stored its policy."""
    db, before, _ = edited
    out = " ".join(cli("explain", "C000002", "--db", db, "--run", "1", ok=True).output.split())  # wrapped lines
    assert f"from run 1 in {db} (finished" in out and f"with the policy as the run stored it (sha256 {before[:12]})" in out
    assert "has changed since" not in out
    got = json.loads(cli("explain", "C000002", "--db", db, "--run", "1", "--json", ok=True).stdout)
    assert got["source"]["policy"] == {"sha256": before, "file_sha256": None, "stored_with_run": 1}
    with_file = explain_json(cli, db, policy_file, "--run", "1")
    assert {k: v for k, v in got.items() if k != "source"} == {k: v for k, v in with_file.items() if k != "source"}


def test_without_a_policy_or_a_run_explain_says_what_it_needs(cli, demo_db):
    result = cli("explain", "C000002", "--db", demo_db, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "error: explain needs --policy, unless --run names a stored run (whose policy it then uses)" in result.stderr


def test_a_run_without_its_stored_document_needs_the_policy_file(cli, edited):
    db, before, _ = edited
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM crm_policies")  # as results written before crm_policies kept every document
    conn.commit()
    conn.close()
    result = cli("explain", "C000002", "--db", db, "--run", "1")
    assert result.exit_code == 2
    assert f"error: run 1 has no stored policy document to explain it with (sha256 {before[:12]})" in result.stderr
    assert "hint: give --policy, the file the run was made with" in result.stderr
