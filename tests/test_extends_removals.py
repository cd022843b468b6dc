"""What a policy that extends another removes (`name: null`, a plugin section of its own), and the messages about a
base that still uses what was removed: the line that removed it, not a "did you mean" of another name."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_rules.engine.errors import PolicyError
from crm_rules.engine.policy_model import load_policy

PARENT = """\
extends: base
name: parent
data:
  orders:
    columns: {cost: 成本, rebate: {column: 返利}}
metrics:
  rebates_12m: {sum: rebate, window: 12 months}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_null_removes_a_default_column_that_the_base_does_not_name(tmp_path: Path) -> None:
    """`discount: null` under a parent whose data section maps other columns only: the merge dropped the null, and
    the default (`discount: discount`) came back, so a table without the column failed only at run time."""
    write(tmp_path, "parent.yaml", PARENT.replace("extends: base", "extends: base\nscores: {}\nactions: {}"))
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nname: child\ndata:\n  orders:\n"
                                          "    columns: {discount: null, rebate: null}\n"
                                          "metrics:\n  discount_12m: null\n  rebates_12m: null\n")
    policy = load_policy(child)
    columns = policy.data.sources["orders"].columns
    assert "discount" not in columns and "rebate" not in columns and columns["cost"].column == "成本"


def test_a_base_metric_reading_a_removed_column_names_the_null(tmp_path: Path, cli) -> None:
    write(tmp_path, "parent.yaml", PARENT)
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nname: child\ndata:\n  orders:\n"
                                          "    columns: {rebate: null}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(child)
    assert (f"{tmp_path / 'parent.yaml'}:7:22: metrics.rebates_12m.sum: unknown orders column 'rebate'; "
            f"data.orders.columns.rebate: null removed it (your table has no such column): remove what reads it too "
            f"(metric rebates_12m; an inherited metric is removed with `rebates_12m: null` under metrics), or map "
            f"rebate to a column of yours") in str(caught.value)
    result = cli("validate", child)
    assert result.exit_code == 1 and "data.orders.columns.rebate: null removed it" in result.output


def test_a_removal_two_levels_up_is_named_where_it_was_written(tmp_path: Path) -> None:
    write(tmp_path, "parent.yaml", PARENT)
    write(tmp_path, "child.yaml", "extends: parent.yaml\nname: child\nmetrics:\n  orders_12m: null\n")
    grandchild = write(tmp_path, "grandchild.yaml", "extends: child.yaml\nname: grandchild\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(grandchild)
    message = str(caught.value)
    assert (f"metrics.f_score.ntile: unknown metric 'orders_12m': {tmp_path / 'child.yaml'}:4:3 removes it "
            f"(`orders_12m: null` under metrics); metric f_score, which uses it, comes from <shipped>/base.yaml: "
            f"remove it too (`f_score: null` under metrics) or redefine it") in message
    assert "did you mean" not in message
    # defined again further down, the name is known: nothing to say
    again = write(tmp_path, "again.yaml", "extends: child.yaml\nname: again\nmetrics:\n"
                                          "  orders_12m: {count: orders, window: 6 months}\n")
    assert load_policy(again).metrics["orders_12m"].spec["window"] == "6 months"


def test_a_name_used_in_the_same_file_that_removes_it(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "extends: base\nname: child\nmetrics:\n  recency_days: null\n"
                                          "lifecycle:\n  stages:\n    - {id: lost, when: recency_days > 365}\n"
                                          "    - {id: active, default: true}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(child)
    assert (f"{child}:7:24: lifecycle.stages[0].when: unknown metric or attribute 'recency_days': {child}:4:3 "
            f"removes it (`recency_days: null` under metrics); leave it out here too, or keep what defines it") \
        in str(caught.value)


def test_a_misspelt_name_still_gets_its_suggestion(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "extends: base\nname: child\nmetrics:\n  discount_12m: null\n"
                                          "summary: {revenue: revenue_12mm}\nscores: {}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(child)
    assert "summary.revenue: unknown metric 'revenue_12mm'; did you mean 'revenue_12m'?" in str(caught.value)


def test_an_attribute_a_base_removes_and_the_users_file_reads_is_left_out_there(tmp_path: Path, cli) -> None:
    """A company base without a region column, a child that grades by region: the fix is in the child itself, where
    the condition is, not in "a section of its own"."""
    base = write(tmp_path, "company.yaml", "extends: base\nname: company\ndata:\n  customers:\n"
                                           "    attributes: {region: null}\n")
    child = write(tmp_path, "child.yaml", "extends: company.yaml\nname: child\nservice_levels:\n"
                                          "  - {id: east, tier: A, when: \"region = 'east'\", response_time: 1h}\n")
    result = cli("validate", child)
    assert result.exit_code == 1
    assert (f"{child}:4:32: service_levels[0].when: unknown metric or attribute 'region': {base}:5:18 removes it "
            f"(`region: null` under data.customers.attributes: the customers table has no such column); leave it out "
            f"here too, or map region to a column of yours (data.customers.attributes.region: COLUMN)") \
        in " ".join(result.output.split())
    assert "did you mean" not in result.output
