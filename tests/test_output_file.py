"""The files commands write (export, report, table export): never over what they read, never half-written."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import file_digest

from crm_rules.engine.errors import DataError, UsageError
from crm_rules.engine.output_file import check_out, write_atomic
from crm_rules.engine.policy_files import shipped_policies_dir
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.runner import apply_policy

AS_OF = "2026-06-30"


@pytest.fixture
def applied_db(demo_db):
    apply_policy(demo_db, load_policy("base"), AS_OF)
    return demo_db


@pytest.mark.parametrize("command", [
    ["export", "--db", "{db}", "--out", "{db}"],
    ["export", "--db", "{db}", "--format", "json", "--out", "{db}-wal"],
    ["report", "--db", "{db}", "--out", "{db}"],
    ["report", "--db", "{other}", "--results-db", "{db}", "--out", "{db}-journal"],
])
def test_out_is_never_the_database_the_command_reads(cli, applied_db, tmp_path, command):
    other = tmp_path / "other.db"
    shutil.copy(applied_db, other)
    before = file_digest(applied_db)
    result = cli(*[part.format(db=applied_db, other=other) for part in command])
    assert result.exit_code == 2, result.output
    assert "which this command reads; writing it would destroy it" in result.output
    assert file_digest(applied_db) == before


def test_out_is_never_the_policy_table_export_reads(cli, tmp_path):
    policy = tmp_path / "base.yaml"
    shutil.copy(Path(str(shipped_policies_dir())) / "base.yaml", policy)
    before = file_digest(policy)
    result = cli("table", "export", policy, "--table", "tiers", "--format", "csv", "--out", policy)
    assert result.exit_code == 2 and "is the policy" in result.output
    assert file_digest(policy) == before


def test_no_export_replaces_another_sqlite_database(cli, applied_db, tmp_path):
    other = tmp_path / "customers.db"
    shutil.copy(applied_db, other)
    before = file_digest(other)
    result = cli("export", "--db", applied_db, "--out", other)
    assert result.exit_code == 2 and "is a SQLite database" in result.output
    assert file_digest(other) == before


def test_an_out_directory_is_refused_before_any_work(tmp_path):
    with pytest.raises(UsageError, match="is a directory") as caught:
        check_out(tmp_path, example="report.html")
    assert f"--out {tmp_path / 'report.html'}" in caught.value.hint


@pytest.mark.parametrize("failing", ["tempfile.mkstemp", "os.replace"])
def test_a_write_the_system_refuses_is_a_message_and_changes_nothing(tmp_path, monkeypatch, failing):
    out = tmp_path / "kept.csv"
    out.write_bytes(b"old")

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    module, name = failing.split(".")
    monkeypatch.setattr(f"crm_rules.engine.output_file.{module}.{name}", refuse)
    with pytest.raises(DataError, match="cannot write the file .No space left on device.; nothing was changed"):
        write_atomic(out, b"new")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["kept.csv"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_a_message_not_a_traceback(applied_db):
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-c", "from crm_rules.cli import main; main()", "export", "--db",
                               str(applied_db), "--format", "json"], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 1
    assert done.stderr.strip() == "error: cannot write the output (No space left on device); what was written is incomplete"


def _file_size_limit(limit: int):
    """For the child: files it writes stop growing at ``limit`` bytes, as on a disk that fills (EFBIG, not a signal).

    Above 32 KiB: SQLite sizes the -shm file of a WAL database so, even to read it."""
    def limit_files() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_files


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("command", [["export", "--format", "csv"], ["export", "--format", "json"], ["actions", "--json"]])
def test_an_unbuffered_standard_output_the_disk_cuts_short_is_an_error(applied_db, tmp_path, command):
    """PYTHONUNBUFFERED=1 (containers, service units): Python wrote what fitted and dropped the rest, exit code 0."""
    out = tmp_path / "out.txt"
    with open(out, "wb") as file:
        done = subprocess.run([sys.executable, "-c", "from crm_rules.cli import main; main()", *command, "--db",
                               str(applied_db)], stdout=file, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_file_size_limit(49_152),
                              env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1",
                                                "CRM_RULES_CACHE_DIR": ""})
    assert out.stat().st_size == 49_152  # the limit cut it short
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "error: cannot write the output (File too large); what was written is incomplete"


def test_an_unbuffered_standard_output_still_writes_everything(applied_db):
    done = subprocess.run([sys.executable, "-c", "from crm_rules.cli import main; main()", "export", "--format", "csv",
                           "--db", str(applied_db)], capture_output=True,
                          env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"})
    buffered = subprocess.run([sys.executable, "-c", "from crm_rules.cli import main; main()", "export", "--format",
                               "csv", "--db", str(applied_db)], capture_output=True,
                              env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
                              | {"PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == buffered.returncode == 0
    assert done.stdout == buffered.stdout and done.stdout.count(b"\n") == 301


def test_report_checks_the_customer_database_given_beside_the_results(cli, applied_db, tmp_path):
    result = cli("report", "--db", tmp_path / "typo.db", "--results-db", applied_db, "--out", tmp_path / "r.html")
    assert result.exit_code == 2 and "typo.db: database not found" in result.output
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", [["actions"], ["export", "--format", "json"], ["changes"]])
def test_a_reader_that_leaves_early_is_no_error(applied_db, command):
    """`crm-rules actions ... | head -1`: the output was wanted only in part; the exit code is 0, nothing on stderr."""
    proc = subprocess.Popen([sys.executable, "-c", "from crm_rules.cli import main; main()", *command, "--db",
                             str(applied_db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "120"})
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert stderr == ""


@pytest.mark.parametrize("mode", [0o444, 0o400])
def test_a_read_only_file_is_not_replaced_even_by_root(tmp_path, mode):
    """The rename that replaces a file needs only the folder's permission: the file's own must be asked for."""
    kept = tmp_path / "kept.yaml"
    kept.write_bytes(b"old")
    kept.chmod(mode)
    with pytest.raises(DataError) as caught:
        write_atomic(kept, b"new", label="the policy")
    assert caught.value.message == f"{kept} is read-only; nothing was written"
    assert f"chmod u+w {kept}" in caught.value.hint
    assert kept.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["kept.yaml"]


def test_report_refuses_a_read_only_out_before_any_work(cli, applied_db, tmp_path):
    out = tmp_path / "report.html"
    out.write_bytes(b"kept")
    out.chmod(0o444)
    result = cli("report", "--db", applied_db, "--out", out)
    assert result.exit_code == 1 and f"{out} is read-only; nothing was written" in result.output
    assert "choose another --out" in result.output and out.read_bytes() == b"kept"


@pytest.mark.parametrize("command, hint", [
    (["export", "--db", "{db}", "--out", "-"], "leave out --out to print to standard output"),
    (["table", "export", "base", "--table", "tiers", "--out", "-"], "leave out --out to print to standard output"),
    (["report", "--db", "{db}", "--out", "-"], "give a file name, e.g. --out report.html"),
])
def test_out_dash_is_refused_rather_than_written_as_a_file_named_dash(cli, applied_db, tmp_path, monkeypatch, command, hint):
    # `--out -` is standard output to most Unix tools; here it wrote a file named '-' in the current folder
    monkeypatch.chdir(tmp_path)
    result = cli(*[part.format(db=applied_db) for part in command])
    assert result.exit_code == 2, result.output
    assert "--out - would write a file named '-'" in result.output and hint in result.output
    assert not (tmp_path / "-").exists()
