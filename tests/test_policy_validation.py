"""Valid and invalid policy examples, each one a test case.

Every file under ``policies/invalid`` states the messages it must produce in
``# expect:`` comments (``:LINE:COL: path: message`` fragments), so adding a
case is adding a file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy

HERE = Path(__file__).parent / "policies"
VALID = sorted(p for p in (HERE / "valid").glob("*.yaml") if p.name != "sources.yaml")
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
SHIPPED = sorted(Path(str(p)) for p in shipped_policies_dir().iterdir() if p.name.endswith(".yaml") and ".test." not in p.name)


def expectations(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    return re.findall(r"^# expect: (.+)$", text, flags=re.M)


@pytest.mark.parametrize("path", VALID + SHIPPED, ids=lambda p: p.name)
def test_valid_policy_loads(path):
    policy = load_policy(path)
    assert policy.tiers and len(policy.sha256) == 64


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_policy_is_rejected_with_its_message(path, cli):
    wanted = expectations(path)
    assert wanted, f"{path.name} has no '# expect:' line"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    for fragment in wanted:
        if fragment.startswith(":"):
            fragment = f"{path}{fragment}"
        assert fragment in message, f"expected {fragment!r} in:\n{message}"
    result = cli("validate", path)
    assert result.exit_code == 1
    assert "problem" in result.output


def test_all_errors_are_reported_at_once():
    with pytest.raises(PolicyError) as info:
        load_policy(HERE / "invalid" / "unknown_nested_key.yaml")
    assert len(info.value.diagnostics) == 2


def test_cli_validate_reports_each_file(cli):
    result = cli("validate", HERE / "valid" / "minimal.yaml", HERE / "invalid" / "two_defaults.yaml")
    assert result.exit_code == 1
    assert "ok: " in result.output and "minimal.yaml" in result.output
    assert "more than one default tier" in result.output


def test_same_content_same_hash_comments_do_not_matter(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("name: p\ntiers:\n  levels: [{id: A, default: true}]\n")
    b.write_text("# a comment\nname: p\ntiers:\n  levels:\n    - id: A\n      default: true\n")
    assert load_policy(a).sha256 == load_policy(b).sha256
    b.write_text("name: p\ntiers:\n  levels: [{id: B, default: true}]\n")
    assert load_policy(a).sha256 != load_policy(b).sha256


def test_extends_merges_mappings_and_replaces_lists():
    policy = load_policy(HERE / "valid" / "extends_base.yaml")
    base = load_policy("base")
    assert policy.name == "stricter"
    assert set(base.metrics) <= set(policy.metrics)  # metrics inherited
    assert [s.id for s in policy.service_levels] == ["A-key", "B-std", "C-std"]  # list replaced
    assert [s.id for s in policy.stages] == [s.id for s in base.stages]


def test_error_in_inherited_file_names_that_file(tmp_path):
    (tmp_path / "parent.yaml").write_text("metrics:\n  m: {sum: amout}\ntiers:\n  levels: [{id: A, default: true}]\n")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\n")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "child.yaml")
    assert f"{tmp_path / 'parent.yaml'}:2:12:" in str(info.value)


def test_extends_prefers_a_policy_next_to_the_file(tmp_path):
    """In a copied policy folder, `extends: base` is the copy's base.yaml, so editing it counts."""
    (tmp_path / "base.yaml").write_text("name: base\ntiers:\n  levels: [{id: local, default: true}]\n")
    (tmp_path / "child.yaml").write_text("extends: base\nname: child\n")
    assert [t.id for t in load_policy(tmp_path / "child.yaml").tiers] == ["local"]


def test_a_test_file_is_not_a_policy(cli):
    result = cli("apply", "--db", "x.db", "-p", "base.test")
    assert result.exit_code == 2 and "is a policy test file, not a policy" in result.output
    assert "crm-rules test base.test" in result.output
