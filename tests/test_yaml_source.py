"""Safe YAML loading: positions, duplicate keys, tags, bombs, encodings."""

from pathlib import Path

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.yaml_source import MAX_NODES, Position, load_yaml_text


def error_of(text) -> str:
    with pytest.raises(PolicyError) as info:
        load_yaml_text(text if isinstance(text, bytes) else text.encode(), "p.yaml")
    return str(info.value)


def test_positions_are_one_based_and_point_at_keys():
    doc = load_yaml_text(b"a: 1\nb:\n  - x: 2024-01-01\n", "p.yaml")
    assert doc.data == {"a": 1, "b": [{"x": "2024-01-01"}]}  # dates stay text
    pos = doc.position(("b", 0, "x"))
    assert (pos.file, pos.line, pos.col) == ("p.yaml", 3, 5)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: 1\na: 2\n", "p.yaml:2:1: a: duplicate key 'a' (first defined at line 1)"),
        ("a:\n\tb: 1\n", "indent with spaces, not tabs"),
        ("a: !!python/object/apply:os.system ['echo hi']\n", "is not allowed"),
        ("a: !custom 1\n", "is not allowed"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("a: b: c\n", "p.yaml:1:5: invalid YAML: mapping values are not allowed here"),
        ("a: [1, 2\n", "invalid YAML"),
        ("? [a, b]\n: 1\n", "mapping keys must be plain text"),
    ],
)
def test_bad_yaml_is_reported_with_position(text, expected):
    assert expected in error_of(text)


def test_non_utf8_names_line_and_byte():
    message = error_of(b"a: 1\nb: caf\xe9\n")
    assert "p.yaml:2:7" in message and "not valid UTF-8" in message and "save the file as UTF-8" in message


def test_utf8_bom_and_chinese_are_fine():
    doc = load_yaml_text("\ufefflabel: 重点客户\n".encode("utf-8"), "p.yaml")
    assert doc.data == {"label": "重点客户"}


def test_alias_bomb_is_bounded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i-1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    message = error_of("\n".join(lines) + "\n")
    assert f"more than {MAX_NODES} values" in message


def test_oversized_file_is_rejected():
    assert "larger than" in error_of(b"a: " + b"x" * (3 * 1024 * 1024))


def test_libyaml_and_pyyaml_give_the_same_tree_for_every_shipped_and_test_policy():
    """Policies are parsed by libyaml when PyYAML has it; the positions must be PyYAML's to the column."""
    import glob

    import yaml

    from crm_rules.engine import yaml_source

    if yaml_source._FastLoader is None:
        pytest.skip("PyYAML without libyaml")
    root = Path(__file__).parent.parent

    def tree(loader_class, text):
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        out = []

        def walk(n):
            out.append((type(n).__name__, n.tag, n.start_mark.line, n.start_mark.column, n.end_mark.line,
                        n.end_mark.column, n.style or None if isinstance(n, yaml.ScalarNode) else n.flow_style,
                        n.value if isinstance(n.value, str) else None))
            for item in n.value if isinstance(n.value, list) else []:
                for child in item if isinstance(item, tuple) else (item,):
                    walk(child)

        if node is not None:
            walk(node)
        return out

    compared = 0
    for name in [*glob.glob(str(root / "policies" / "*.yaml")), *glob.glob(str(root / "tests" / "**" / "*.yaml"), recursive=True)]:
        try:
            text = Path(name).read_text(encoding="utf-8-sig")
            expected = tree(yaml_source._Loader, text)
        except (UnicodeDecodeError, yaml.YAMLError):
            continue  # the bad-input cases: PyYAML parses those itself, for its messages
        assert tree(yaml_source._FastLoader, text) == expected, name
        compared += 1
    assert compared > 100


def test_keys_are_kept_as_written():
    """A risk table's NO (Norway) is not the key false, nor yes true, nor 0012 the octal 10."""
    doc = load_yaml_text(b"table: {DE: 0.9, NO: 0.9, yes: 1, ~: 2, 0012: a, true: 1, 12: x, 0.5: y}\n", "p.yaml")
    assert list(doc.data["table"]) == ["DE", "NO", "yes", "~", "0012", "true", "12", "0.5"]


def test_every_duplicate_key_is_reported_at_once():
    text = ("a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 2\nc: [{k: 1, k: 2}]\n"
            "b:\n  z: 1\n  z: 2\n")  # the second b is left out of the data, but its own duplicate is found
    error = yaml_error(text)
    assert [str(d) for d in error.diagnostics] == [
        "p.yaml:5:3: b.x: duplicate key 'x' (first defined at line 3)",
        "p.yaml:6:1: a: duplicate key 'a' (first defined at line 1)",
        "p.yaml:7:12: c[0].k: duplicate key 'k' (first defined at line 7)",
        "p.yaml:8:1: b: duplicate key 'b' (first defined at line 2)",
        "p.yaml:10:3: b.z: duplicate key 'z' (first defined at line 9)",
    ]
    assert error.hint == "remove or rename one of them"


def test_a_key_written_three_times_is_two_problems_both_naming_the_first():
    error = yaml_error("k: 1\nk: 2\nk: 3\n")
    assert [d.message for d in error.diagnostics] == ["duplicate key 'k' (first defined at line 1)"] * 2


def test_deferred_duplicates_keep_the_first_value_for_the_other_checks():
    doc = load_yaml_text(b"a: 1\nb: {x: 1}\na: 2\nb: {x: 2, x: 3}\n", "p.yaml", defer_duplicates=True)
    assert doc.data == {"a": 1, "b": {"x": 1}}
    assert doc.position(("a",)).line == 1 and doc.value_position(("b", "x")) == Position("p.yaml", 2, 8)
    assert [(d.line, d.path) for d in doc.duplicates] == [(3, "a"), (4, "b"), (4, "b.x")]


def test_a_duplicate_in_an_anchored_mapping_is_reported_once():
    error = yaml_error("d: &d {k: 1, k: 2}\ne: *d\nf: {<<: *d}\n")
    assert [str(d) for d in error.diagnostics] == ["p.yaml:1:14: d.k: duplicate key 'k' (first defined at line 1)"]


def test_a_key_merged_in_is_no_duplicate():
    assert load_yaml_text(b"d: &d {k: 1}\ne: {<<: *d, k: 2}\n", "p.yaml").data["e"] == {"k": 2}


def yaml_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_yaml_text(text.encode("utf-8"), "p.yaml")
    return info.value


def test_slips_of_a_chinese_input_method_are_named_where_they_were_typed_all_at_once():
    # YAML stumbled on the next line ("could not find expected ':'") and said nothing of the '：'
    message = error_of("metrics：\n  x: 1\ntiers:\n  levels:\n    - id：A\n      when: x > 1\n      label:\u3000重点\n"
                       "    - id: B\n")
    assert "p.yaml:1:8: invalid YAML: '：' after 'metrics' is a full-width colon" in message
    assert "p.yaml:5:9: invalid YAML: '：' after 'id' is a full-width colon, typed with a Chinese input method; " \
           "write the ASCII ':' and a space: id: A" in message
    assert "p.yaml:7:13: invalid YAML: the space after 'label:' is a full-width space (U+3000)" in message
    assert "could not find expected" not in message


def test_a_slip_is_found_in_the_lines_after_another_one_on_the_same_line():
    # the column of the second slip is counted in the file as written, not in the file mended for the first
    message = error_of("a:\n\u3000\u3000- id：A\n      b: 1\n")  # b under id, as the editor shows it
    assert "p.yaml:2:1: invalid YAML: the line is indented with a full-width space (U+3000)" in message
    assert "p.yaml:2:7: invalid YAML: '：' after 'id'" in message


def test_chinese_punctuation_in_text_is_not_taken_for_the_cause_of_a_yaml_error():
    # a '：' in a block of Chinese text, then a real mistake: YAML's own message, at the mistake
    message = error_of("description: |\n  注意：按收入分级\nlabel: 重点：客户\na: b: c\n")
    assert "p.yaml:4:5: invalid YAML: mapping values are not allowed here" in message
    assert "full-width" not in message


def test_nothing_written_after_a_key_is_no_word_yaml_read_otherwise():
    doc = load_yaml_text(b"summary:\n", "p.yaml")
    assert doc.data == {"summary": None} and doc.readings == {}
