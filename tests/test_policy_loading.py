"""Loading a policy file: its name from the file name, `extends` mistakes, characters YAML refuses,
YAML merge keys, and the wording of `crm-rules index`."""

from __future__ import annotations

import io
import re
import sqlite3

import pytest
from rich.console import Console

from crm_rules.engine import schema_validation
from crm_rules.engine.errors import PolicyError
from crm_rules.engine.index_advisor import print_index_advice
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.yaml_source import MAX_NODES, load_yaml_text

TIERS = "tiers:\n  levels: [{id: A, default: true}]\n"


def error_of(path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def yaml_error(text: str | bytes) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_yaml_text(text if isinstance(text, bytes) else text.encode("utf-8"), "p.yaml")
    return info.value


# ---- 1. the name of a policy without `name:` ---------------------------------


@pytest.mark.parametrize("file_name, name", [
    ("my child.yaml", "my_child"),
    ("vip  (copy).yaml", "vip_copy"),
    ("base - Copy.yaml", "base_-_Copy"),
    ("tiers 2026.v2.yaml", "tiers_2026.v2"),
    ("_private draft.yaml", "_private_draft"),
    ("plain_name.yaml", "plain_name"),
])
def test_a_file_name_with_spaces_gives_a_name_with_underscores(tmp_path, file_name, name):
    policy = tmp_path / file_name
    policy.write_text("extends: base\n", encoding="utf-8")
    assert load_policy(policy).name == name


def test_the_derived_name_is_placed_in_the_users_file_not_the_shipped_base(tmp_path):
    from crm_rules.engine.policy_files import load_policy_document

    policy = tmp_path / "my child.yaml"
    policy.write_text("extends: base\n", encoding="utf-8")
    doc, _ = load_policy_document(policy)
    assert doc.data["name"] == "my_child"
    assert (doc.position(("name",)).file, doc.position(("name",)).line) == (str(policy), 1)
    assert doc.value_position(("name",)).file == str(policy)


def test_a_file_name_that_cannot_be_a_name_is_reported_at_the_users_file_with_the_rule_and_the_fix(tmp_path):
    policy = tmp_path / "客户 政策.yaml"
    policy.write_text("extends: base\n", encoding="utf-8")
    if re.search(schema_validation.load_schema("policy.schema.json")["properties"]["name"]["pattern"], "客户_政策"):
        assert load_policy(policy).name == "客户_政策"  # the schema allows letters of any script
        return
    error = error_of(policy)
    text = str(error)
    assert text.startswith(f"{policy}:1:1: name: this policy has no `name:`, and its file name '客户 政策' is not a valid name"), text
    assert "letters A-Z and a-z, digits, _, . and -, starting with a letter, a digit or _, at most 64 characters" in text
    assert "<shipped>" not in text
    assert error.hint == f"add a line `name: my_policy` to {policy}"


def test_the_suggested_name_keeps_what_it_can(tmp_path, monkeypatch):
    _ascii_names_only(monkeypatch)
    policy = tmp_path / "café clients.yaml"
    policy.write_text("extends: base\n", encoding="utf-8")
    error = error_of(policy)
    assert error.hint == f"add a line `name: cafe_clients` to {policy}"


def test_a_file_name_longer_than_a_name_may_be(tmp_path):
    policy = tmp_path / ("x" * 70 + ".yaml")
    policy.write_text("extends: base\n", encoding="utf-8")
    text = str(error_of(policy))
    assert f"{policy}:1:1: name:" in text and "is longer than 64 characters" in text
    assert f"name: {'x' * 64}`" in text


def test_names_from_the_file_follow_the_schema_when_it_allows_any_letters(tmp_path, monkeypatch):
    """Names reach SQL only as bound parameters (runner.py) and HTML escaped, so letters of any script are safe;
    the name made from a file name follows whatever the schema allows."""
    schema = schema_validation.load_schema("policy.schema.json")
    patched = {**schema, "properties": {**schema["properties"],
                                        "name": {**schema["properties"]["name"], "pattern": r"^\w[\w.-]*(?!\n)$"}}}
    monkeypatch.setattr(schema_validation, "load_schema", lambda name: patched if name == "policy.schema.json" else schema)
    from crm_rules.engine.policy_files import load_policy_document

    for file_name, name in [("客户 分级.yaml", "客户_分级"), ("cafe\u0301.yaml", "café")]:
        policy = tmp_path / file_name
        policy.write_text("extends: base\n", encoding="utf-8")
        doc, _ = load_policy_document(policy)
        assert doc.data["name"] == name


def _ascii_names_only(monkeypatch):
    schema = schema_validation.load_schema("policy.schema.json")
    patched = {**schema, "properties": {**schema["properties"],
                                        "name": {**schema["properties"]["name"], "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"}}}
    monkeypatch.setattr(schema_validation, "load_schema", lambda name: patched if name == "policy.schema.json" else schema)


def test_an_explicit_bad_name_is_reported_at_its_own_line(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("extends: base\nname: \"my child\"\n", encoding="utf-8")
    text = str(error_of(policy))
    assert text.startswith(f"{policy}:2:7: name: \"my child\""), text


def test_a_policy_with_its_own_name_is_unchanged(tmp_path):
    policy = tmp_path / "my child.yaml"
    policy.write_text("extends: base\nname: kept\n", encoding="utf-8")
    assert load_policy(policy).name == "kept"


def test_the_cli_applies_a_policy_whose_file_name_has_a_space(cli, demo_db, tmp_path):
    policy = tmp_path / "my child.yaml"
    policy.write_text("extends: base\n", encoding="utf-8")
    result = cli("apply", "--db", demo_db, "-p", policy, "--as-of", "2026-06-30")
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(demo_db)
    assert conn.execute("SELECT policy_name FROM crm_runs").fetchall() == [("my_child",)]
    conn.close()


# ---- 2. extends naming a test file or a directory ----------------------------


def test_extends_a_test_file_is_a_policy_error_at_the_extends_line(tmp_path, cli):
    (tmp_path / "vip.yaml").write_text(TIERS, encoding="utf-8")
    (tmp_path / "vip.test.yaml").write_text("cases: []\n", encoding="utf-8")
    policy = tmp_path / "child.yaml"
    policy.write_text("name: child\nextends: vip.test.yaml\n", encoding="utf-8")
    error = error_of(policy)
    assert str(error).startswith(f"{policy}:2:10: extends: 'vip.test.yaml' is a policy test file, not a policy"), str(error)
    assert error.hint == f"did you mean `extends: vip`? run the tests with: crm-rules test {tmp_path / 'vip.test.yaml'}"
    result = cli("validate", policy)
    assert result.exit_code == 1, result.output
    assert f"{policy}:2:10: extends: 'vip.test.yaml' is a policy test file" in result.output


def test_extends_a_test_file_that_is_not_there(tmp_path):
    policy = tmp_path / "child.yaml"
    policy.write_text("extends: nothing.test\n", encoding="utf-8")
    error = error_of(policy)
    assert str(error).startswith(f"{policy}:1:10: extends: 'nothing.test' is a policy test file, not a policy")
    assert "run the tests" not in error.hint and "did you mean" not in error.hint


def test_extends_its_own_test_file_does_not_suggest_extending_itself(tmp_path):
    policy = tmp_path / "vip.yaml"
    policy.write_text("extends: vip.test.yaml\n" + TIERS, encoding="utf-8")
    (tmp_path / "vip.test.yaml").write_text("cases: []\n", encoding="utf-8")
    error = error_of(policy)
    assert "did you mean" not in error.hint and "run the tests with" in error.hint


def test_extends_a_directory_is_a_policy_error_at_the_extends_line(tmp_path, cli):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "common.yaml").write_text(TIERS, encoding="utf-8")
    (tmp_path / "sub" / "common.test.yaml").write_text("cases: []\n", encoding="utf-8")
    policy = tmp_path / "child.yaml"
    policy.write_text("name: child\nextends: sub\n", encoding="utf-8")
    error = error_of(policy)
    assert str(error).startswith(f"{policy}:2:10: extends: 'sub' is a directory, not a policy file"), str(error)
    assert error.hint == "name a policy file in it, e.g. `extends: sub/common.yaml`"
    result = cli("validate", policy)
    assert result.exit_code == 1 and f"{policy}:2:10: extends: 'sub' is a directory" in result.output, result.output


def test_extends_an_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    policy = tmp_path / "child.yaml"
    policy.write_text("extends: empty/\n", encoding="utf-8")
    error = error_of(policy)
    assert str(error).startswith(f"{policy}:1:10: extends: 'empty/' is a directory, not a policy file")
    assert "not a directory" in error.hint


def test_a_folder_named_like_a_policy_does_not_hide_it(tmp_path):
    (tmp_path / "base").mkdir()  # e.g. a folder of exports next to the policy
    policy = tmp_path / "child.yaml"
    policy.write_text("name: child\nextends: base\n", encoding="utf-8")
    assert load_policy(policy).files[-1] == "<shipped>/base.yaml"
    (tmp_path / "base.yaml").write_text(TIERS, encoding="utf-8")
    assert load_policy(policy).files[-1] == str(tmp_path / "base.yaml")


def test_extends_a_database_is_a_policy_error_at_the_extends_line(tmp_path):
    db = tmp_path / "crm.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    policy = tmp_path / "child.yaml"
    policy.write_text("name: child\nextends: crm.db\n", encoding="utf-8")
    text = str(error_of(policy))
    assert text.startswith(f"{policy}:2:10: extends: ") and "is a SQLite database, not a policy" in text, text


def test_a_test_file_or_directory_given_as_the_policy_is_still_a_usage_error(cli, demo_db, tmp_path):
    (tmp_path / "d").mkdir()
    assert cli("apply", "--db", demo_db, "-p", tmp_path / "d", "--as-of", "2026-06-30").exit_code == 2
    (tmp_path / "x.test.yaml").write_text("cases: []\n", encoding="utf-8")
    assert cli("apply", "--db", demo_db, "-p", tmp_path / "x.test.yaml", "--as-of", "2026-06-30").exit_code == 2


# ---- 3. crm-rules index wording ----------------------------------------------


def _advice_output(sources: int) -> str:
    source = {"source": "orders", "table": "orders", "key": "customer_id", "columns": ["customer_id"], "rows": 10,
              "existing_index": None, "proposed_index": "crm_rules_orders_cover", "proposed_sql": "CREATE INDEX x ON orders(customer_id)",
              "seconds_now": 0.1, "seconds_with_index": 0.05, "speedup": 2.0, "build_seconds": 0.01, "index_bytes": 4096,
              "helps": True, "created": False, "plan_now": "", "notes": []}
    result = {"db": "crm.db", "policy": "base", "policy_sha256": "0" * 64, "as_of": "2026-06-30", "create": False,
              "changed": False, "created": [], "sources": [dict(source, source=f"s{i}") for i in range(sources)]}
    out = io.StringIO()
    print_index_advice(Console(file=out, width=120, color_system=None), result)
    return out.getvalue()


def test_index_advice_counts_tables_in_words():
    assert "base as of 2026-06-30 on crm.db: a covering index for the table the policy reads" in _advice_output(1)
    assert "base as of 2026-06-30 on crm.db: covering indexes for the 4 tables the policy reads" in _advice_output(4)
    assert "table(s)" not in _advice_output(2)


# ---- 4. characters YAML does not allow, at their own position ----------------


@pytest.mark.parametrize("text, line, col, code", [
    ("name: x\ndescription: \"a\x01b\"\n", 2, 16, "U+0001"),
    ("name: x\n\x00\n", 2, 1, "U+0000"),
    ("a: 1\r\nb: 2\r\nc: \x07\r\n", 3, 4, "U+0007"),
    ("a: 1\rb: \x1b\r", 2, 4, "U+001B"),
    ("label: 重点客户\x0b\n", 1, 12, "U+000B"),
    ("a: \ufffe\n", 1, 4, "U+FFFE"),
])
def test_a_control_character_is_reported_at_its_line_and_column(text, line, col, code):
    error = yaml_error(text)
    [d] = error.diagnostics
    assert (d.file, d.line, d.col) == ("p.yaml", line, col), str(error)
    assert code in d.message and "is not allowed" in d.message and "position" not in d.message
    assert error.hint


def test_a_bom_does_not_shift_the_column():
    [d] = yaml_error("\ufeffa: \x02\n".encode("utf-8")).diagnostics
    assert (d.line, d.col) == (1, 4)


def test_a_utf16_file_is_named_as_such():
    error = yaml_error("name: x\ntiers: {}\n".encode("utf-16-le"))
    assert error.diagnostics[0].line == 1 and error.diagnostics[0].col == 2
    assert "UTF-16" in error.hint


def test_a_control_character_in_a_policy_file_through_the_cli(cli, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_bytes(b"name: x\nextends: base\ndescription: \"a\x00b\"\n")
    result = cli("validate", policy)
    assert result.exit_code == 1
    assert f"{policy}:3:16: invalid YAML: control character U+0000 is not allowed" in result.output, result.output


# ---- 5. YAML merge keys ------------------------------------------------------


def test_a_key_written_next_to_a_merge_key_overrides_the_merged_one():
    doc = load_yaml_text(b"defaults: &d\n  name: a\n  k: 1\nname: b\n<<: *d\n", "p.yaml")
    assert doc.data == {"defaults": {"name": "a", "k": 1}, "name": "b", "k": 1}
    assert doc.position(("name",)).line == 4  # the key written here, not the merged one
    assert doc.position(("k",)).line == 3  # a merged key points at the text it comes from
    assert doc.value_position(("k",)) .col == 6


def test_merge_keys_follow_yaml_rules():
    import yaml

    text = ("- &CENTER {x: 1, y: 2}\n- &LEFT {x: 0, y: 2}\n- &BIG {r: 10}\n- &SMALL {r: 1}\n"
            "- {<<: *CENTER, r: 10}\n- {<<: [*CENTER, *BIG]}\n- {<<: [*BIG, *LEFT, *SMALL], x: 1}\n"
            "- {<<: {<<: *SMALL, y: 3}, x: 4}\n")
    assert load_yaml_text(text.encode(), "p.yaml").data == yaml.safe_load(text)


def test_two_keys_written_in_one_mapping_are_still_a_duplicate():
    text = str(yaml_error("d: &d {k: 1}\nname: a\n<<: *d\nname: b\n"))
    assert "p.yaml:4:1: name: duplicate key 'name' (first defined at line 2)" in text, text


@pytest.mark.parametrize("text, where", [
    ("a: 1\n<<: 5\n", "p.yaml:2:1: (document):"),
    ("a: &a [1]\nb:\n  <<: *a\n", "p.yaml:3:3: b:"),
    ("a: &a {x: 1}\nb:\n  <<: [*a, 2]\n", "p.yaml:3:3: b:"),
])
def test_a_merge_key_of_something_else_than_mappings_is_an_error_at_the_merge_key(text, where):
    message = str(yaml_error(text))
    assert message.startswith(f"{where} a YAML merge key (<<) takes a mapping or a list of mappings"), message


def test_a_mapping_merged_into_itself_is_an_error_not_a_crash():
    message = str(yaml_error("a: &a\n  x: 1\n  <<: *a\n"))
    assert message.startswith("p.yaml:3:3: a: a YAML merge key (<<) here merges a mapping into itself"), message


def test_an_alias_inside_its_own_anchor_is_an_error_not_a_crash():
    message = str(yaml_error("a: &a\n  b: *a\n"))
    assert "p.yaml:2:3: a.b:" in message or "a.b: a YAML alias" in message, message
    assert "stands for a mapping or list that contains it" in message


def test_nested_merges_stay_small():
    lines = ["a0: &a0 {k0: 1}"] + [f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], k{i}: 1}}" for i in range(1, 40)]
    doc = load_yaml_text(("\n".join(lines) + "\n").encode(), "p.yaml")
    assert len(doc.data["a39"]) == 40


def test_merge_bombs_are_still_bounded():
    lines = ["a0: &a0 {" + ", ".join(f"k{j}: [x, x, x, x, x, x, x, x, x, x]" for j in range(10)) + "}"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    assert f"more than {MAX_NODES} values" in str(yaml_error("\n".join(lines) + "\n"))


def test_a_policy_using_a_merge_key(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("name: merged\nextends: base\nmetrics:\n  revenue_6m: &rev {sum: amount, window: 6m}\n"
                      "  revenue_3m:\n    <<: *rev\n    window: 3m\n", encoding="utf-8")
    loaded = load_policy(policy)
    assert loaded.document["metrics"]["revenue_3m"] == {"sum": "amount", "window": "3m"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: merged\nextends: base\nmetrics:\n  revenue_6m: &rev {sum: amount, windw: 6m}\n"
                   "  revenue_3m:\n    <<: *rev\n    label: x\n", encoding="utf-8")
    text = str(error_of(bad))
    assert f"{bad}:4:34: metrics.revenue_3m.windw: unknown key 'windw'" in text, text  # where the merged key is written


def test_duplicate_keys_of_a_sources_file_and_of_the_base_are_reported_with_the_policy_problems(tmp_path):
    (tmp_path / "sources.yaml").write_text("orders:\n  date: order_date\n  date: day\n", encoding="utf-8")
    (tmp_path / "parent.yaml").write_text("name: parent\nname: p\ntiers:\n  levels: [{id: A, default: true}]\n",
                                          encoding="utf-8")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\ndata: sources.yaml\nmetrics:\n  r: {sum: amount}\n"
                                         "tiers:\n  levels: [{id: A, when: 'rr > 1'}, {id: B, default: true}]\n",
                                         encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "child.yaml")
    assert sorted(str(d) for d in info.value.diagnostics) == sorted([
        f"{tmp_path / 'sources.yaml'}:3:3: data.orders.date: duplicate key 'date' (first defined at line 2)",
        f"{tmp_path / 'parent.yaml'}:2:1: name: duplicate key 'name' (first defined at line 1)",
        f"{tmp_path / 'child.yaml'}:6:27: tiers.levels[0].when: unknown metric or attribute 'rr'; did you mean 'r'?",
    ])
    assert info.value.hint == "for each duplicate key, remove or rename one of them"


def test_a_childs_data_merges_into_the_sources_file_of_its_base(tmp_path):
    # the base's `data: sources.yaml` was inlined after the merge, so a child's `data:` replaced it whole
    (tmp_path / "sources.yaml").write_text("customers: {table: kh, id: cid}\n", encoding="utf-8")
    (tmp_path / "base.yaml").write_text("data: sources.yaml\nmetrics:\n  revenue: {sum: amount}\n"
                                        "tiers:\n  levels: [{id: A, default: true}]\n", encoding="utf-8")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ndata:\n  orders: {table: xs}\n", encoding="utf-8")
    loaded = load_policy(tmp_path / "child.yaml")
    assert (loaded.data.customers.table, loaded.data.customers.key) == ("kh", "cid")
    assert loaded.data.sources["orders"].table == "xs"
    assert loaded.source.value_position(("data", "customers", "table")).file == str(tmp_path / "sources.yaml")


@pytest.mark.parametrize("written, meant", [
    ("bse", "base"),  # a shipped policy, by name
    ("bsae.yaml", "base.yaml"),
    ("common/shared_bsae.yaml", "common/shared_base.yaml"),  # a file in another folder, as written
    ("common/shared_bsae", "common/shared_base"),
])
def test_a_misspelt_extends_gets_a_did_you_mean(tmp_path, written, meant):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "shared_base.yaml").write_text("tiers: {levels: [{id: A, default: true}]}\n", encoding="utf-8")
    policy = tmp_path / "child.yaml"
    policy.write_text(f"extends: {written}\n", encoding="utf-8")
    assert error_of(policy).diagnostics[0].message == f"cannot find policy {written!r}; did you mean {meant!r}?"
