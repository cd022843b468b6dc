"""A bare policy name on the command line that is a file here and a shipped policy too: the file wins, with a note.

`-p base` in a folder holding a base.yaml grades with that file (a copied policy folder is edited in place),
which is right; but a stray base.yaml used to be taken silently when the shipped base was meant.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy

SHIPPED_BASE = Path(str(shipped_policies_dir())) / "base.yaml"
NOTE = "is ./base.yaml in this folder, not the shipped policy base"


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """The current folder, holding a base.yaml of its own (another version of the shipped base)."""
    local = tmp_path / "base.yaml"
    local.write_text(SHIPPED_BASE.read_text(encoding="utf-8").replace('version: "1.0"', 'version: "local"', 1),
                     encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_apply_with_a_bare_name_notes_which_file_it_used(cli, here, demo_db):
    result = cli("apply", "--db", demo_db, "-p", "base", "--as-of", AS_OF, "--dry-run", ok=True)
    assert (f"note: -p base {NOTE}; give -p ./base.yaml to say so without this note, or the shipped one's path: "
            f"-p {SHIPPED_BASE}") in result.stderr
    assert "note: -p base" not in result.stdout


def test_the_local_file_is_still_the_one_used(cli, here):
    result = cli("validate", "base", "--json", ok=True)
    assert json.loads(result.stdout)[0]["sha256"] == load_policy(here / "base.yaml").sha256 != \
        load_policy(SHIPPED_BASE).sha256
    assert f"note: base {NOTE}" in result.stderr


@pytest.mark.parametrize("ref", ["./base.yaml", "base.yaml"])
def test_a_path_or_a_file_name_gets_no_note(cli, here, ref):
    assert cli("validate", ref, ok=True).stderr == ""


def test_the_shipped_path_of_the_note_gives_the_shipped_policy(cli, here):
    result = cli("validate", SHIPPED_BASE, "--json", ok=True)
    assert json.loads(result.stdout)[0]["sha256"] == load_policy(SHIPPED_BASE).sha256
    assert result.stderr == ""


def test_no_local_file_no_note(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("validate", "base", ok=True).stderr == ""


def test_a_local_name_no_policy_is_shipped_under_gets_no_note(cli, here):
    (here / "mine.yaml").write_text((here / "base.yaml").read_text(encoding="utf-8").replace("name: base", "name: mine"),
                                    encoding="utf-8")
    assert cli("validate", "mine", ok=True).stderr == ""


def test_extends_of_a_local_file_is_not_noted(cli, here):
    (here / "child.yaml").write_text("name: child\nextends: base\n", encoding="utf-8")
    result = cli("validate", "child.yaml", ok=True)
    assert result.stderr == ""


def test_explain_notes_it(cli, here, demo_db):
    result = cli("explain", "C000001", "--db", demo_db, "-p", "base", "--as-of", AS_OF, ok=True)
    assert f"note: -p base {NOTE}" in result.stderr


def test_diff_notes_each_bare_name(cli, here, demo_db):
    result = cli("diff", "--db", demo_db, "base", "vip_card", "--as-of", AS_OF, ok=True)
    assert f"note: base {NOTE}" in result.stderr
    assert "vip_card" not in result.stderr  # no vip_card.yaml here: the shipped one, as always


def test_table_export_notes_it(cli, here):
    result = cli("table", "export", "base", "--table", "tiers", ok=True)
    assert f"note: base {NOTE}" in result.stderr
    assert result.stdout.startswith("id,label,")
