"""A run killed outright (SIGKILL) leaves no worker running, and its folder goes with the next run's workers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crm_rules.engine import source_scans, window_workers
from crm_rules.engine.demo_data import DEMO_AS_OF
from crm_rules.engine import runner
from crm_rules.engine.policy_model import load_policy

pytestmark = pytest.mark.skipif(source_scans.fcntl is None or not Path("/proc/self/stat").exists(),
                                reason="POSIX locks and /proc (to see a process end)")

SLOW = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT max(i) AS _cid FROM n")  # minutes of work, unless stopped
PYTHONPATH = os.pathsep.join([str(Path(source_scans.__file__).parents[2]), str(Path(__file__).parent)])


def _alive(pid: int) -> bool:
    """Running: neither gone nor a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _start(script: str, tmp_path: Path) -> subprocess.Popen:
    """A Python process running ``script`` with the package importable and ``tmp_path`` as its TMPDIR."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": PYTHONPATH, "TMPDIR": str(tmp_path)})


def _assert_ends(worker: int) -> None:
    try:
        assert _wait_until(lambda: not _alive(worker), 5), "the worker outlived its run"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)  # not left scanning for minutes after the test


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()


@pytest.fixture
def tmpdir_here(tmp_path, monkeypatch):
    """The temporary directory of this process is ``tmp_path/tmp`` (kept apart from the test's own files)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(source_scans.tempfile, "tempdir", str(folder))
    return folder


def test_scan_workers_exit_when_the_run_is_killed_and_the_next_run_removes_its_folder(demo_db, tmpdir_here):
    """The run and its worker each scan for minutes; SIGKILL the run: the worker ends within a second or so."""
    run = _start(f"""
        import sqlite3
        from pathlib import Path
        from crm_rules.engine import source_scans
        from test_source_scans import _agg
        plain = source_scans.start_worker
        def start(*a, **k):
            process = plain(*a, **k)
            print(process.pid, flush=True)
            return process
        source_scans.start_worker = start
        slow = {SLOW!r}
        source_scans.run_scans(sqlite3.connect({str(demo_db)!r}), Path({str(demo_db)!r}),
                               [_agg("_crm_agg_a", 1000, slow), _agg("_crm_agg_b", 900, slow)],
                               {{}}, 1024, workers=1, min_worker_rows=0)
    """, tmpdir_here)
    try:
        worker = int(run.stdout.readline())
        assert _wait_until(lambda: list(tmpdir_here.glob("crm-rules-scan-*/scan0.json")), 10)
        time.sleep(0.3)  # both at work
        assert _alive(worker)
    finally:
        _kill(run)
    _assert_ends(worker)
    left = list(tmpdir_here.glob("crm-rules-scan-*"))
    assert len(left) == 1 and json.loads((left[0] / source_scans.OWNER).read_text())["pid"] == run.pid

    conn = sqlite3.connect(demo_db)  # the next run with workers
    source_scans.run_scans(conn, demo_db, [_scan("_crm_agg_x", 10), _scan("_crm_agg_y", 5)], {}, 1024,
                           workers=1, min_worker_rows=0)
    assert conn.execute("SELECT * FROM temp._crm_agg_y").fetchall() == [(1,)]
    conn.close()
    assert list(tmpdir_here.iterdir()) == []


def _scan(name: str, rows: int):
    from test_source_scans import _agg

    return _agg(name, rows)


def test_a_window_worker_exits_when_the_run_is_killed(demo_db, tmpdir_here):
    """The window sorts' worker is started the same way (start_worker): here with sorts that take minutes."""
    run = _start(f"""
        from crm_rules.engine import runner, window_workers, source_scans
        from crm_rules.engine.policy_model import load_policy
        window_workers.MIN_WORKER_ROWS = 0
        window_workers.os.cpu_count = lambda: 2
        plain = window_workers.start_worker
        def start(source, scratch, work, cache_kib):
            slow = [(table, f"SELECT * FROM ({{select}}) WHERE (" + {SLOW!r} + ") > 0", params)
                    for table, select, params in work]
            process = plain(source, scratch, slow, cache_kib)
            print(process.pid, flush=True)
            return process
        window_workers.start_worker = start
        runner.apply_policy({str(demo_db)!r}, load_policy("base"), {DEMO_AS_OF!r})
    """, tmpdir_here)
    try:
        worker = int(run.stdout.readline())
        assert _alive(worker)
        assert len(list(tmpdir_here.glob("crm-rules-windows-*"))) == 1
    finally:
        _kill(run)
    _assert_ends(worker)
    assert [p.name for p in source_scans.remove_stale_folders()][0].startswith("crm-rules-windows-")
    assert list(tmpdir_here.iterdir()) == []


def test_a_worker_that_finishes_is_not_cut_short(tmp_path):
    """Its end of the lifeline stays open while the run waits for it, however long the work."""
    source = tmp_path / "source.db"
    sqlite3.connect(source).close()
    work = [("t", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
                  "SELECT count(*) AS c FROM n", {})]
    process = source_scans.start_worker(source_scans.file_uri(source, "ro"), tmp_path / "out.db", work, 1024)
    source_scans.wait_worker(process)
    assert process.returncode == 0 and process.lifeline.closed
    assert sqlite3.connect(tmp_path / "out.db").execute("SELECT c FROM t").fetchall() == [(300000,)]


def _folder_of_a_process(tmp_path: Path, prefix: str) -> tuple[subprocess.Popen, Path]:
    holder = _start(f"""
        import sys, time
        from crm_rules.engine import source_scans
        folder = source_scans.ScratchFolder({prefix!r})
        print(folder.path, flush=True)
        time.sleep(600)
    """, tmp_path)
    return holder, Path(holder.stdout.readline().strip())


@pytest.mark.parametrize("prefix", source_scans.FOLDER_PREFIXES)
def test_only_the_folders_of_processes_that_ended_on_this_machine_are_removed(tmpdir_here, prefix):
    killed, left = _folder_of_a_process(tmpdir_here, prefix)
    running, going = _folder_of_a_process(tmpdir_here, prefix)
    mine = source_scans.ScratchFolder(prefix)  # this process's, going on
    try:
        _kill(killed)
        old = tmpdir_here / f"{prefix}old"  # an older crm-rules's (no owner file): nothing proves its run ended
        old.mkdir()
        elsewhere = tmpdir_here / f"{prefix}elsewhere"  # another machine's (its lock need not be visible here)
        elsewhere.mkdir()
        (elsewhere / source_scans.OWNER).write_text(json.dumps({"boot": "another", "host": "other", "pid": 1}))
        unlocked = tmpdir_here / f"{prefix}unlocked"  # being made: not locked, not filled in yet
        unlocked.mkdir()
        (unlocked / source_scans.OWNER).write_text("")
        assert source_scans.remove_stale_folders() == [left]
        assert not left.exists()
        assert going.exists() and mine.path.exists() and old.exists() and elsewhere.exists() and unlocked.exists()
        mine.close()
        assert not mine.path.exists()
    finally:
        _kill(running)
    assert source_scans.remove_stale_folders() == [going]


def test_a_folder_of_another_user_is_left_alone(tmpdir_here, monkeypatch):
    killed, left = _folder_of_a_process(tmpdir_here, source_scans.FOLDER_PREFIXES[0])
    _kill(killed)
    uid = os.getuid()
    monkeypatch.setattr(source_scans.os, "getuid", lambda: uid + 1)
    assert source_scans.remove_stale_folders() == [] and left.exists()


def test_a_run_with_sorts_in_a_worker_removes_its_folder_and_those_killed_runs_left(demo_db, tmpdir_here, monkeypatch):
    killed, left = _folder_of_a_process(tmpdir_here, source_scans.FOLDER_PREFIXES[1])
    _kill(killed)
    started = []
    plain = window_workers.start_worker
    monkeypatch.setattr(window_workers, "start_worker", lambda *a: started.append(plain(*a)) or started[-1])
    monkeypatch.setattr(window_workers, "MIN_WORKER_ROWS", 0)
    monkeypatch.setattr(window_workers.os, "cpu_count", lambda: 2)
    runner.apply_policy(demo_db, load_policy("base"), DEMO_AS_OF)
    assert len(started) == 1 and started[0].returncode == 0
    assert list(tmpdir_here.iterdir()) == []
