"""Valid and invalid policy examples, each one a test case.

Every file under ``policies/invalid`` states the messages it must produce in
``# expect:`` comments (``:LINE:COL: path: message`` fragments), and those it
must not in ``# expect-not:`` comments (follow-on errors of the one it is
about), so adding a case is adding a file.  Files under ``policies/warned`` are
valid policies with warnings (rules that can never match, a number in a list written like ``1,500``):
``# expect-warning:`` lines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.name_rules import ID_PATTERN, NAME_PATTERN, in_words
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.policy_warnings import policy_warnings

HERE = Path(__file__).parent / "policies"
VALID = sorted(p for p in (HERE / "valid").glob("*.yaml") if p.name != "sources.yaml" and not p.name.endswith(".test.yaml"))
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
WARNED = sorted((HERE / "warned").glob("*.yaml"))
SHIPPED = sorted(Path(str(p)) for p in shipped_policies_dir().iterdir() if p.name.endswith(".yaml") and ".test." not in p.name)


def expectations(path: Path, kind: str = "expect") -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    return re.findall(rf"^# {kind}: (.+)$", text, flags=re.M)


@pytest.mark.parametrize("path", VALID + SHIPPED, ids=lambda p: p.name)
def test_valid_policy_loads(path):
    policy = load_policy(path)
    assert policy.tiers and len(policy.sha256) == 64
    assert policy_warnings(policy) == []


@pytest.mark.parametrize("path", WARNED, ids=lambda p: p.name)
def test_a_warned_policy_is_warned_of_where_it_is_written(path, cli):
    wanted = [f"{path}{f}" if f.startswith(":") else f for f in expectations(path, "expect-warning")]
    assert wanted, f"{path.name} has no '# expect-warning:' line"
    found = [str(w) for w in policy_warnings(load_policy(path))]
    assert len(found) == len(wanted), found
    for fragment, warning in zip(wanted, found):
        assert warning.startswith(fragment), f"expected {fragment!r}, got {warning!r}"
    result = cli("validate", path)
    assert result.exit_code == 0, result.output
    assert f"ok: {path} " in result.output and f"{len(wanted)} warning" in result.output
    assert all(f"warning: {w}" in result.output for w in found)
    assert cli("validate", "--strict", path).exit_code == 1
    entry = json.loads(cli("validate", "--json", path, ok=True).output)[0]
    assert entry["ok"] is True and [w["line"] for w in entry["warnings"]] == [
        int(f.split(":")[1]) for f in expectations(path, "expect-warning")]


def test_strict_passes_a_policy_without_warnings(cli):
    assert cli("validate", "--strict", HERE / "valid" / "rules_unique.yaml").exit_code == 0


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
    for fragment in expectations(path, "expect-not"):
        assert fragment not in message, f"did not expect {fragment!r} in:\n{message}"
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


def test_a_redefined_metric_replaces_the_inherited_one_whole(tmp_path):
    # merged option by option, the base's `where` stayed unseen, and another kind made two kinds
    (tmp_path / "child.yaml").write_text(
        "extends: base\nname: child\nmetrics:\n"
        "  complaints_12m: {label: All interactions, count: interactions, window: 12 months}\n"
        "  revenue_12m: {count: orders, window: 12 months}\n"
        "data:\n  orders: {amount: amount}\n", encoding="utf-8")
    policy, base = load_policy(tmp_path / "child.yaml"), load_policy("base")
    assert policy.metrics["complaints_12m"].spec == {"label": "All interactions", "count": "interactions",
                                                     "window": "12 months"}
    assert policy.metrics["revenue_12m"].kind == "count" and policy.metrics["recency_days"] == base.metrics["recency_days"]
    assert policy.data.sources["orders"] == base.data.sources["orders"]  # data still merges column by column


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


@pytest.mark.parametrize("value", ["5", "{file: base}", "[base]", '""', "''", "", "' '"])
def test_extends_that_is_not_a_name_is_an_error_not_ignored(tmp_path, value):
    """`extends` is resolved (and removed) before the schema runs, so the loader itself must reject it."""
    path = tmp_path / "child.yaml"
    path.write_text(f"extends: {value}\ntiers:\n  levels: [{{id: A, default: true}}]\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert f"{path}:1:" in str(info.value)
    assert "extends: expected a policy name or file (a string)" in str(info.value)
    assert "extends: base" in info.value.hint


def test_defaults_of_the_metrics_type_are_accepted(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("metrics:\n"
                    "  revenue: {sum: amount, default: 0.5}\n"
                    "  visits: {count: interactions, default: 1}\n"
                    "  last_order_day: {max: date, default: '2020-01-01'}\n"
                    "  last_kind: {max: kind, from: interactions, default: none}\n"
                    "  typical_order: {avg: amount, default: null}\n"
                    "tiers:\n  levels: [{id: A, default: true}]\n")
    assert load_policy(path).metrics["last_order_day"].type == "date"


def test_round_digits_are_checked_only_when_written_as_a_literal(tmp_path):
    """The docs allow any digits expression (held to 0..30 when the policy runs); a literal is checked."""
    path = tmp_path / "p.yaml"
    path.write_text("metrics:\n"
                    "  revenue: {sum: amount}\n"
                    "  orders: {count: orders}\n"
                    "  a: {expr: 'round(revenue, 0) + round(revenue, 30) + round(revenue, 2.0) + round(revenue)'}\n"
                    "  b: {expr: 'round(revenue, orders - 3)'}\n"
                    "tiers:\n  levels: [{id: A, default: true}]\n")
    assert set(load_policy(path).metrics) >= {"a", "b"}


def _problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return [f"{d.path}: {d.message}" for d in info.value.diagnostics]


def test_a_misspelt_section_is_not_also_a_missing_one(tmp_path):
    problems = _problems(tmp_path, "tier:\n  levels: [{id: A, default: true}]\n"
                                   "service_levels: [{id: s, tier: A}]\n")
    assert problems == ["tier: unknown key 'tier'; did you mean 'tiers'?"]


def test_an_invalid_data_section_leaves_only_the_schema_errors(tmp_path):
    """Without a data mapping every attribute would read as unknown: nothing more is checked."""
    problems = _problems(tmp_path, "data: {customers: {table: 5}}\n"
                                   "tiers:\n  levels: [{id: A, when: 'region = \"x\"'}, {id: B, default: true}]\n")
    assert problems == ["data.customers.table: expected string, got a number 5"]


def test_an_invalid_tier_level_skips_the_tiers_but_not_the_rest(tmp_path):
    problems = _problems(tmp_path, "metrics: {m: {sum: amout}}\n"
                                   "tiers:\n  levels: [{id: A, up_to: x}, {id: B, default: true}]\n"
                                   "service_levels: [{id: a, tier: A}, {id: z, tier: Z}]\n")
    assert problems == ["metrics.m.sum: unknown orders column 'amout'; did you mean 'amount'?",
                        'tiers.levels[0].up_to: expected number, got text "x"',
                        "service_levels[1].tier: unknown tier 'Z' (the policy's tiers: A and B)"]


def test_service_levels_inherited_for_tiers_the_child_replaced(tmp_path):
    """The policy guide's section 4: a child with new tier ids keeps base's service levels, at base's lines."""
    (tmp_path / "child.yaml").write_text("extends: base\ntiers:\n  method: pareto\n  metric: revenue_12m\n"
                                         "  levels: [{id: gold, up_to: 0.8}, {id: other}]\n")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "child.yaml")
    first = next(d for d in info.value.diagnostics if d.path == "service_levels[0].tier")
    assert first.file == "<shipped>/base.yaml"
    assert first.message == (f"unknown tier 'A' (the policy's tiers: gold and other); these service_levels are inherited "
                             f"from <shipped>/base.yaml, but {tmp_path / 'child.yaml'} replaces tiers: write "
                             f"service_levels in {tmp_path / 'child.yaml'} too")


@pytest.mark.parametrize("written, hint", [
    ("010", "(YAML reads 010 as 8; quote it: '010')"),
    ("1_000", "(YAML reads 1_000 as 1000; quote it: '1_000')"),
    ("Off", "(YAML reads Off as false; quote it: 'Off')"),
    ("~", "(YAML reads ~ as null; quote it: '~')"),
    ("true", None),  # the message already says what YAML read
    ("5", None),
])
def test_a_word_yaml_reads_as_something_else_gets_a_hint(tmp_path, written, hint):
    problems = _problems(tmp_path, f"tiers:\n  levels:\n    - id: {written}\n      default: true\n")
    assert len(problems) == 1 and problems[0].startswith("tiers.levels[0].id: expected string")
    assert (hint in problems[0]) if hint else "YAML reads" not in problems[0]


@pytest.mark.parametrize("pattern, value, expected", [
    (NAME_PATTERN, "营收", "is not a valid name: use letters A-Z and a-z, digits and _, starting with a letter or _ "
                         "(not allowed: '营', '收')"),
    (NAME_PATTERN, "a-b c", "(not allowed: '-', a space)"),
    (NAME_PATTERN, "9lives", "(it starts with '9')"),
    (ID_PATTERN, "9lives", None),  # an id may start with a digit
    (ID_PATTERN, ".x", "is not a valid id: use letters A-Z and a-z, digits, _, . and -, starting with a letter, a digit "
                       "or _ (it starts with '.')"),
    (ID_PATTERN, "", "(it is empty)"),
    (ID_PATTERN, "a\u3000b\tc", "(not allowed: a full-width space, a tab)"),
    (ID_PATTERN, "一二三四五六", "(not allowed: '一', '二', '三', '四', '五', ...)"),
])
def test_names_and_ids_are_said_in_words(pattern, value, expected):
    import re

    words = in_words(pattern, value)
    assert (re.fullmatch(pattern, value) is None) == (expected is not None)
    if expected is not None:
        assert expected in words, words
        assert pattern not in words and "A-Za-z" not in words


def test_only_an_id_that_defines_something_is_told_about_labels():
    assert in_words(ID_PATTERN, "金卡", defines=True).endswith("; other text, such as Chinese, goes in its label")
    assert "label" not in in_words(ID_PATTERN, "金卡") and "label" not in in_words(ID_PATTERN, "-x", defines=True)
    assert in_words("^[a-z]+$", "X") is None  # a pattern of a plugin's own: its description is shown


def test_a_plugin_pattern_without_words_of_its_own_is_named_by_its_description(tmp_path):
    from crm_rules.engine.schema_validation import validate_params
    from crm_rules.engine.yaml_source import load_yaml_text

    doc = load_yaml_text(b"p:\n  code: X-1\n  name: 9x\n", "p.yaml")
    schema = {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "^[a-z]+$", "description": "A code in lowercase letters."},
        "name": {"type": "string", "pattern": NAME_PATTERN, "description": "A metric."}}}
    messages = [d.message for d in validate_params(doc, schema, ("p",))]
    assert messages == ['"X-1" is not in the expected form. A code in lowercase letters.',
                        '"9x" is not a valid name: use letters A-Z and a-z, digits and _, starting with a letter or _ '
                        "(it starts with '9')"]
