"""Window sorts given to a worker process give exactly what the run's connection gives, and fail as cleanly."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest

from crm_rules.engine import runner, window_workers
from crm_rules.engine.demo_data import DEMO_AS_OF
from crm_rules.engine.errors import RunError
from crm_rules.engine.policy_files import shipped_policy_names
from crm_rules.engine.policy_model import load_policy
from crm_rules.engine.window_sql import columns_read

from conftest import stored_metrics
from small_db import actions, assignments


def _always(monkeypatch) -> list[tuple[set[str], set[str]]]:
    """Sorts go to a worker whatever the population and the number of cores; records, for each run, the tables
    it gave the worker and those it sorted from the worker's copy of the columns."""
    given: list[tuple[set[str], set[str]]] = []
    plain = window_workers.WindowWorker._start

    def start(self, conn, dates):
        plain(self, conn, dates)
        given.append((set(self.given), set(self.local)))

    monkeypatch.setattr(window_workers, "MIN_WORKER_ROWS", 0)
    monkeypatch.setattr(window_workers.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(window_workers.WindowWorker, "_start", start)
    return given


@pytest.fixture
def worker_always(monkeypatch):
    return _always(monkeypatch)


def _without_run_id(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "run_id"} for r in rows]


def _assert_same_run(db, here, there) -> None:
    assert there.summary == here.summary
    assert assignments(db, there.run_id) == assignments(db, here.run_id)
    assert stored_metrics(db, there.run_id) == stored_metrics(db, here.run_id)
    assert _without_run_id(actions(db, there.run_id)) == _without_run_id(actions(db, here.run_id))


def test_a_run_with_sorts_in_a_worker_writes_the_same_run(demo_db, monkeypatch):
    policy = load_policy("base")
    here = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    given = _always(monkeypatch)
    there = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    assert len(given) == 1 and len(given[0][0]) >= 2  # the value score's percentiles, at least
    assert given[0][1]  # and the run sorted the others from the copy
    _assert_same_run(demo_db, here, there)


@pytest.mark.parametrize("name", [n for n in shipped_policy_names() if n != "base"])
def test_every_shipped_policy_writes_the_same_run_with_a_worker(demo_db, monkeypatch, name):
    """Whatever sorts a policy has, those the worker takes or the run takes from the worker's copy give the same run."""
    policy = load_policy(name)
    here = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    given = _always(monkeypatch)
    there = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    _assert_same_run(demo_db, here, there)
    assert all(local for to_worker, local in given if to_worker)  # the run keeps sorts of its own meanwhile


def test_a_single_sort_stays_with_the_run(demo_db, monkeypatch):
    """The peers' rules of the benchmark sort one ordering (the Pareto share and the credit check's rank of
    revenue share it): a worker would only make the run wait for it."""
    policy = load_policy(str(Path(__file__).parent.parent / "bench" / "peer_rules.yaml"))
    here = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    given = _always(monkeypatch)
    monkeypatch.setattr(window_workers, "start_worker", lambda *a: pytest.fail("a worker for one sort"))
    there = runner.apply_policy(demo_db, policy, DEMO_AS_OF)
    assert given == [(set(), set())]
    _assert_same_run(demo_db, here, there)


def test_a_run_that_fails_after_the_worker_started_stops_it_and_leaves_no_scratch_files(demo_db, monkeypatch, worker_always):
    workers = []
    plain_start = window_workers.WindowWorker.start

    def start(self):
        workers.append(self)
        return plain_start(self)

    monkeypatch.setattr(window_workers.WindowWorker, "start", start)
    monkeypatch.setattr(runner, "check_rows", lambda *a: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    before = set(Path(tempfile.gettempdir()).glob("crm-rules-windows-*"))
    with pytest.raises(RunError, match="disk I/O error"):
        runner.apply_policy(demo_db, load_policy("base"), DEMO_AS_OF)
    assert worker_always and worker_always[0][0]  # the worker had started
    process = workers[0].process
    assert process is not None and process.returncode is not None  # finished or killed, not left running
    assert set(Path(tempfile.gettempdir()).glob("crm-rules-windows-*")) == before


def test_small_populations_keep_their_sorts(demo_db, monkeypatch):
    monkeypatch.setattr(window_workers, "start_worker", lambda *a: pytest.fail("no worker for 300 customers"))
    assert runner.apply_policy(demo_db, load_policy("base"), DEMO_AS_OF).run_id == 1


@pytest.mark.parametrize("sql, columns", [
    ('RANK() OVER (ORDER BY round(t."revenue_12m", 6) DESC NULLS LAST)', {"revenue_12m"}),
    ('SUM(CASE WHEN t."x" > :p0 THEN t."x" END) OVER (ORDER BY t."k" ASC, t._rid ROWS UNBOUNDED PRECEDING)', {"x", "k", "_rid"}),
    ('NTILE(5) OVER (ORDER BY CAST(t."a" AS REAL))', {"a"}),
    ('RANK() OVER (ORDER BY other."x")', None),  # another table: stays with the run
    ('RANK() OVER (ORDER BY x)', None),  # a bare name: cannot tell whose
    ('RANK() OVER (ORDER BY t."x" || \'', None),  # does not tokenize
])
def test_columns_a_sort_reads(sql, columns):
    got = columns_read(sql, "t", other_tables=False)
    assert (set(got) if got is not None else None) == columns
