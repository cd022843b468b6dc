"""`export --out FILE` writes the format the file's name says, and refuses a --format that contradicts it."""

from __future__ import annotations

import json

import pytest

from conftest import AS_OF
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy


@pytest.fixture
def graded(demo_db):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    return demo_db


def test_a_json_out_file_gets_json_without_format(cli, graded, tmp_path):
    out = tmp_path / "grades.json"
    cli("export", "--db", graded, "--out", out, ok=True)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["run"]["run_id"] == 1 and len(data["assignments"]) == 300


def test_the_out_suffix_is_read_in_any_case(cli, graded, tmp_path):
    out = tmp_path / "GRADES.JSON"
    cli("export", "--db", graded, "--out", out, ok=True)
    assert json.loads(out.read_text(encoding="utf-8"))["run"]["run_id"] == 1


def test_a_csv_out_file_gets_csv_without_format(cli, graded, tmp_path):
    out = tmp_path / "grades.csv"
    cli("export", "--db", graded, "--out", out, ok=True)
    assert out.read_text(encoding="utf-8-sig").startswith("run_id,customer_id,customer_name,")


def test_another_suffix_and_standard_output_stay_csv(cli, graded, tmp_path):
    out = tmp_path / "grades.txt"
    cli("export", "--db", graded, "--out", out, ok=True)
    assert out.read_text(encoding="utf-8-sig").startswith("run_id,customer_id,")
    assert cli("export", "--db", graded, ok=True).stdout.startswith("run_id,customer_id,")


def test_a_format_matching_the_suffix_is_fine(cli, graded, tmp_path):
    out = tmp_path / "grades.json"
    cli("export", "--db", graded, "--format", "JSON", "--out", out, ok=True)
    assert json.loads(out.read_text(encoding="utf-8"))["run"]["run_id"] == 1


@pytest.mark.parametrize("fmt,name,fix", [("csv", "grades.json", "grades.csv"), ("json", "grades.csv", "grades.json")])
def test_a_format_the_suffix_contradicts_is_refused_and_nothing_written(cli, graded, tmp_path, fmt, name, fix):
    out = tmp_path / name
    result = cli("export", "--db", graded, "--format", fmt, "--out", out)
    assert result.exit_code == 2
    assert f"error: --out {out} is a .{name.split('.')[1]} name but --format is {fmt}" in result.stderr
    assert f"hint: name the file {fix}, or leave out --format (the extension decides)" in result.stderr
    assert not out.exists()


def test_a_workbook_name_is_refused(cli, graded, tmp_path):
    out = tmp_path / "grades.xlsx"
    result = cli("export", "--db", graded, "--out", out)
    assert result.exit_code == 2
    assert f"error: --out {out}: export writes CSV, JSON or JSON Lines, not a .xlsx workbook" in result.stderr
    assert "hint: name the file grades.csv" in result.stderr
    assert not out.exists()


def test_json_lines_give_one_customer_a_line_each_naming_its_run(cli, graded, tmp_path):
    """For a CRM import that reads line by line: every line a whole customer, with the run it comes from."""
    whole = json.loads(cli("export", "--db", graded, "--format", "json", ok=True).stdout)
    out = tmp_path / "grades.jsonl"
    result = cli("export", "--db", graded, "--out", out, ok=True)  # the extension decides
    assert f"exported 300 customers of run 1 (policy base) of {graded} to {out}" in result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(whole["assignments"]) == 300
    run = whole["run"]
    for line, assignment in zip(lines, whole["assignments"]):
        item = json.loads(line)
        assert item == {"run_id": 1, "policy_name": "base", "policy_version": run["policy_version"],
                        "policy_sha256": run["policy_sha256"], "as_of": AS_OF} | assignment
    assert cli("export", "--db", graded, "--format", "jsonl", ok=True).stdout.splitlines() == lines
