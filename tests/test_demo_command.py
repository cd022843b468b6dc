"""`crm-rules demo`: checks everything before writing anything, never overwrites a file, quotes its next: lines."""

from __future__ import annotations

import errno
import shlex
from importlib.resources import files
from pathlib import Path

import pytest

from crm_rules.engine import demo_data
from crm_rules.engine.policy_files import shipped_policies_dir


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for a folder)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


def _next_command(output: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith("next: "))
    return shlex.split(line[len("next: "):].removeprefix("edit it, then "))


# --- 1. never overwrites a file ----------------------------------------------------------------


def test_refuses_a_folder_holding_files_it_would_write_and_changes_nothing(cli, tmp_path):
    target = tmp_path / "nonempty"
    (target / "policies").mkdir(parents=True)
    (target / "policies" / "base.yaml").write_text("name: mine\n")
    (target / "report.html").write_text("custom\n")
    (target / "notes.txt").write_text("unrelated\n")
    before = _tree(target)
    result = cli("demo", "--dir", target, "--customers", "20")
    assert result.exit_code == 2, result.output
    assert f"error: report.html already exists in {target}, as does policies/base.yaml; " in result.output
    assert "policies/base.yaml" in result.output and "report.html" in result.output
    assert "hint:" in result.output and "--dir" in result.output and "remove" in result.output
    assert _tree(target) == before  # no crm.db, no schemas/, no other policy copied


def test_unrelated_files_in_the_folder_are_kept(cli, tmp_path):
    target = tmp_path / "demo"
    (target / "policies").mkdir(parents=True)
    (target / "policies" / "mine.yaml").write_text("name: mine\n")
    cli("demo", "--dir", target, "--customers", "20", ok=True)
    assert (target / "policies" / "mine.yaml").read_text() == "name: mine\n"


def test_rerun_after_removing_only_the_database_keeps_edited_policies(cli, tmp_path):
    target = tmp_path / "re"
    first = cli("demo", "--dir", target, "--customers", "20", ok=True)
    assert "delete" not in first.output
    whole = cli("demo", "--dir", target, "--customers", "20")
    assert whole.exit_code == 2 and f"error: crm.db already exists in {target}, as do report.html" in whole.output
    assert "hint: choose another --dir, or delete the old demo first: move or remove all of those files, " \
           "not only crm.db" in whole.output
    (target / "policies" / "base.yaml").write_text("# my edits\n")
    (target / "crm.db").unlink()
    before = _tree(target)
    again = cli("demo", "--dir", target, "--customers", "20")
    assert again.exit_code == 2 and "already exists" in again.output
    assert "report.html" in again.output  # the database's neighbours are named before the policies
    assert "hint: choose another --dir, or move or remove all of those files first" in again.output
    assert _tree(target) == before
    assert (target / "policies" / "base.yaml").read_text() == "# my edits\n"


def test_a_stale_write_ahead_log_blocks_a_new_database(cli, tmp_path):
    target = tmp_path / "demo"
    target.mkdir()
    (target / "crm.db-wal").write_bytes(b"old log")
    result = cli("demo", "--dir", target, "--customers", "20")
    assert result.exit_code == 2 and "crm.db-wal" in result.output
    assert _tree(target) == {"crm.db-wal": b"old log"}


# --- 2. the policy is checked first --------------------------------------------------------------


def test_unknown_policy_writes_nothing_and_the_corrected_command_works(cli, tmp_path):
    target = tmp_path / "pp"
    result = cli("demo", "--dir", target, "--customers", "5", "-p", "nosuch")
    assert result.exit_code == 2 and "policy 'nosuch' not found" in result.output and "hint:" in result.output
    assert not target.exists()
    cli("demo", "--dir", target, "--customers", "5", "-p", "base", ok=True)
    assert (target / "crm.db").is_file()


def test_a_failure_half_way_removes_what_the_demo_wrote(cli, tmp_path, monkeypatch):
    import crm_rules.engine.runner as runner
    from crm_rules.engine.errors import RunError

    def fail(*args, **kwargs):
        raise RunError("the run failed")

    monkeypatch.setattr(runner, "apply_policy", fail)
    target = tmp_path / "half"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    result = cli("demo", "--dir", target, "--customers", "5")
    assert result.exit_code == 1 and "the run failed" in result.output
    assert _tree(target) == {"keep.txt": b"mine"}
    monkeypatch.undo()
    cli("demo", "--dir", target, "--customers", "5", ok=True)


# --- 3. a folder that cannot be used -------------------------------------------------------------


def test_a_file_in_the_way_of_the_folder(cli, tmp_path):
    (tmp_path / "afile").write_text("hi\n")
    result = cli("demo", "--dir", tmp_path / "afile" / "sub")
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'afile'} is a file, not a folder" in result.output and "hint:" in result.output
    assert (tmp_path / "afile").read_text() == "hi\n"


def test_a_file_where_the_policies_folder_goes(cli, tmp_path):
    target = tmp_path / "demo"
    target.mkdir()
    (target / "policies").write_text("not a folder")
    result = cli("demo", "--dir", target, "--customers", "5")
    assert result.exit_code == 2 and "policies is a file, not a folder" in result.output
    assert _tree(target) == {"policies": b"not a folder"}


def _deny(monkeypatch, where: str, folder: Path):
    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    if where == "mkdir":
        real = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if self.parent == folder:
                denied(self)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    else:
        monkeypatch.setattr(demo_data, "_reserve_temp_file", lambda path: denied(path.with_name(".tmp")))


@pytest.mark.parametrize("where", ["mkdir", "database"])
def test_a_folder_that_cannot_be_written(cli, tmp_path, monkeypatch, where):
    imm = tmp_path / "imm"
    imm.mkdir()
    _deny(monkeypatch, where, imm)
    result = cli("demo", "--dir", imm, "--customers", "5")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"error: cannot write the demo in {imm} (Permission denied)" in result.output
    assert "hint: check the folder's permissions" in result.output
    assert list(imm.iterdir()) == []  # the folders made before the failure are gone again


# --- 4. the schemas the policies refer to ----------------------------------------------------------


def test_schemas_are_copied_where_the_policies_point(cli, tmp_path):
    target = tmp_path / "demo"
    cli("demo", "--dir", target, "--customers", "5", ok=True)
    shipped = files("crm_rules").joinpath("schemas")
    for name in ("policy.schema.json", "policy-test.schema.json"):
        assert (target / "schemas" / name).read_bytes() == shipped.joinpath(name).read_bytes()
    copied = sorted((target / "policies").iterdir())
    assert [p.name for p in copied] == sorted(p.name for p in shipped_policies_dir().iterdir() if p.name.endswith(".yaml"))
    for policy in copied:
        first = policy.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        assert (policy.parent / first.split("$schema=", 1)[1]).resolve().is_file(), policy.name


def test_an_existing_schema_is_not_overwritten(cli, tmp_path):
    target = tmp_path / "demo"
    (target / "schemas").mkdir(parents=True)
    (target / "schemas" / "policy.schema.json").write_text("{}")
    result = cli("demo", "--dir", target, "--customers", "5")
    assert result.exit_code == 2 and "schemas/policy.schema.json" in result.output
    assert _tree(target) == {"schemas": None, "schemas/policy.schema.json": b"{}"}


# --- 5. next: lines are shell-quoted ---------------------------------------------------------------


def test_demo_next_line_is_shell_quoted(cli, tmp_path):
    target = tmp_path / "my demo"
    result = cli("demo", "--dir", target, "--customers", "5", ok=True)
    args = _next_command(result.output)
    assert args[:2] == ["crm-rules", "explain"]
    assert args[args.index("--db") + 1] == str(target / "crm.db")
    assert args[args.index("--policy") + 1] == str(target / "policies" / "base.yaml")
    # the printed command works as printed
    assert cli(*args[1:]).exit_code == 0


def test_demo_takes_its_folder_as_an_argument_too(cli, tmp_path):
    """`crm-rules demo my-demo` is how tools that make a folder are called; it said "unexpected extra argument"."""
    target = tmp_path / "my-demo"
    result = cli("demo", target, "--customers", "5", ok=True)
    assert (target / "crm.db").is_file() and (target / "policies" / "base.yaml").is_file()
    assert _next_command(result.output)[_next_command(result.output).index("--db") + 1] == str(target / "crm.db")
    assert cli("demo", tmp_path / "again", "--dir", tmp_path / "again", "--customers", "5").exit_code == 0


def test_table_export_next_lines_are_shell_quoted(cli, tmp_path):
    folder = tmp_path / "my policies"
    folder.mkdir()
    policy = folder / "base.yaml"
    policy.write_bytes(shipped_policies_dir().joinpath("base.yaml").read_bytes())
    listed = cli("table", "export", policy, ok=True)
    args = _next_command(listed.output)
    assert args[:3] == ["crm-rules", "table", "export"] and args[3] == str(policy)
    out = folder / "tiers sheet.csv"
    exported = cli("table", "export", policy, "--table", "tiers", "--out", out, ok=True)
    args = _next_command(exported.output)
    assert args[:4] == ["crm-rules", "table", "import", str(policy)] and str(out) in args
