"""A third-party plugin installs from its own package and works end to end.

``tests/example_plugin`` is a complete package (a hotel loyalty club) that
declares a ``crm_rules`` entry point.  It is installed with pip into a
temporary directory, and the CLI runs in a subprocess with that directory on
``PYTHONPATH``: the plugin is found only through its installed dist-info,
exactly as it would be after ``pip install crm-rules-hotel-loyalty``.  The
crm_rules package itself comes from the environment (installed, or a source
tree on ``PYTHONPATH``), which is kept.

The arithmetic of the plugin (points, status thresholds, offers) is
unit-tested by importing its module directly from the source tree.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import stored_metrics
from small_db import D, make_db

TESTS = Path(__file__).parent
EXAMPLE = TESTS / "example_plugin"
POLICY = EXAMPLE / "policies" / "hotel.yaml"
PLUGIN = "hotel_loyalty"
STATUSES = ("platinum", "gold", "silver", "member")
HOOKS = {"crm_rules_register_scorers", "crm_rules_register_actions", "crm_rules_register_functions"}


# ---------------------------------------------------------------------------
# the installed package and the CLI in a subprocess
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """pip-install tests/example_plugin into a fresh directory (about 1 s; no network)."""
    pytest.importorskip("hatchling", reason="building the example plugin needs hatchling (test extras)")
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}\n{proc.stderr}"
    assert (target / "crm_rules_hotel" / "plugin.py").exists()
    assert not (target / "crm_rules").exists(), "--no-deps must not install crm-rules into the target"
    return target


def _env(target: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # The crm_rules under test first (a source tree such as /tmp/dev, if that is how it is found),
    # then the directory holding only the plugin and its dist-info.
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*existing, str(target)])
    env["PYTHONUTF8"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def crm(installed, tmp_path_factory):
    """Run ``python -m crm_rules.cli ...`` in a subprocess that sees the installed plugin."""
    cwd = tmp_path_factory.mktemp("cwd")  # not the source tree: the plugin must come from the install

    def run(*args, ok: bool | None = None, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "crm_rules.cli", *map(str, args)], cwd=cwd,
                              env=_env(installed, **env), capture_output=True, text=True, timeout=120)
        if ok:
            assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    return run


@pytest.fixture(scope="module")
def demo(crm, tmp_path_factory) -> Path:
    """The 300-customer demo database, made by the CLI (it also applies the base policy)."""
    directory = tmp_path_factory.mktemp("demo") / "demo"
    crm("demo", "--dir", directory, "--customers", "300", ok=True)
    return directory / "crm.db"


def _rows(db: Path, sql: str, *params) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _latest_run(db: Path) -> int:
    return _rows(db, "SELECT max(run_id) AS r FROM crm_runs WHERE status = 'succeeded'")[0]["r"]


def test_plugin_module_comes_from_the_installed_package(installed):
    proc = subprocess.run([sys.executable, "-c", "import crm_rules_hotel.plugin as p; print(p.__file__)"],
                          cwd=installed.parent, env=_env(installed), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(installed.resolve())


def test_plugins_lists_the_installed_plugin(crm):
    proc = crm("plugins", "--json", ok=True)
    listing = json.loads(proc.stdout)
    assert isinstance(listing, list)
    hotel = next((p for p in listing if p["name"] == PLUGIN), None)
    assert hotel is not None, [p["name"] for p in listing]
    assert hotel["version"] == "0.1.0"
    assert hotel["source"] == "crm-rules-hotel-loyalty"
    assert set(hotel["hooks"]) == HOOKS
    assert {(c["kind"], c["name"]) for c in hotel["contributions"]} == {
        ("scorer", "hotel_elite"), ("action", "stay_reward"), ("function", "nights_to_status")}


def test_hotel_policy_on_the_demo(crm, demo, tmp_path, hotel):
    db = tmp_path / "crm.db"
    shutil.copy(demo, db)
    proc = crm("apply", "--db", db, "--policy", POLICY, "--as-of", D, "--json", ok=True)
    summary = json.loads(proc.stdout)["summary"]
    run_id = _latest_run(db)

    # Tiers are the elite statuses the plugin computed, and every status occurs on the demo.
    rows = _rows(db, "SELECT customer_id, tier, stage FROM crm_assignments WHERE run_id = ?", run_id)
    assert len(rows) == 300
    metrics = stored_metrics(db, run_id)
    for r in rows:
        assert r["tier"] == metrics[r["customer_id"]]["elite"], r["customer_id"]
    counts = {s: summary["tiers"][s]["customers"] for s in STATUSES}
    assert all(counts[s] > 0 for s in STATUSES), counts
    assert summary["outputs"]["elite"] == {s: n for s, n in counts.items() if n}
    assert summary["plugin_errors"] == 0

    # The plugin's arithmetic, recomputed here from the metrics the engine stored.
    programme = hotel.Programme.from_params(_policy_params())
    for cid, m in metrics.items():
        points = hotel.loyalty_points(programme, m["nights_12m"], m["revenue_12m"], m["orders_12m"])
        status, nxt, missing = hotel.elite_status(programme, m["nights_12m"], points)
        assert (m["elite"], m["elite_points"], m["elite_next"], m["elite_nights_to_next"]) == (
            status.id, points, nxt.id if nxt else None, missing), cid
        # nights_to_gold is computed by the plugin's expression function in SQL
        assert m["nights_to_gold"] == max(0, 25 - m["nights_12m"]), cid

    # Status-match offers, from the Python batch action generator.
    run = _rows(db, "SELECT plugins FROM crm_runs WHERE run_id = ?", run_id)[0]
    assert json.loads(run["plugins"])[PLUGIN] == "0.1.0"
    actions = _rows(db, "SELECT * FROM crm_actions WHERE run_id = ?", run_id)
    assert actions, "no status_match_offer on the demo"
    stages = {r["customer_id"]: r["stage"] for r in rows}
    for a in actions:
        m, details = metrics[a["customer_id"]], json.loads(a["details"])
        assert (a["action"], a["category"], a["plugin"], a["generator"]) == ("status_match_offer", "upgrade", PLUGIN, "status_push")
        assert 1 <= m["elite_nights_to_next"] <= 3 and stages[a["customer_id"]] != "lost"
        assert details["next_status"] == m["elite_next"] and details["nights_to_next"] == m["elite_nights_to_next"]
        assert a["priority"] == (1 if m["elite_nights_to_next"] <= 2 else 2)
        assert a["due_date"] == D
    expected = {c for c, m in metrics.items() if m["elite_nights_to_next"] is not None
                and m["elite_nights_to_next"] <= 3 and stages[c] != "lost"}
    assert {a["customer_id"] for a in actions} == expected
    assert summary["actions"] == {"status_match_offer": len(actions)}


def _policy_params() -> dict:
    return yaml.safe_load(POLICY.read_text(encoding="utf-8"))["scores"]["elite"]["params"]


def test_blocked_plugin_fails_with_the_installed_scorers(crm, demo, tmp_path):
    db = tmp_path / "crm.db"
    shutil.copy(demo, db)
    proc = crm("apply", "--db", db, "--policy", POLICY, "--as-of", D, CRM_RULES_BLOCK_PLUGINS=PLUGIN)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "unknown scorer 'hotel_elite'" in proc.stderr
    assert "installed" in proc.stderr and "weighted_value" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _latest_run(db) == _latest_run(demo)  # nothing written
    listing = json.loads(crm("plugins", "--json", ok=True, CRM_RULES_BLOCK_PLUGINS=PLUGIN).stdout)
    assert PLUGIN not in {p["name"] for p in listing}


# ---------------------------------------------------------------------------
# per-customer errors: on_error fail / skip
# ---------------------------------------------------------------------------

def _small_db(tmp_path: Path) -> Path:
    """H1: 30 nights (gold); H2: a cancellation without its stay (-1 night, invalid);
    H3: 8 nights (member, 2 short of silver: an urgent offer)."""
    orders = ([("H1", "2026-03-01", 2000.0)] * 30 + [("H2", "2026-05-01", -500.0)]
              + [("H3", "2026-06-01", 2000.0)] * 8)
    return make_db(tmp_path / "small.db", [("H1", "Ada", "Europe"), ("H2", "Bo", "华东"), ("H3", "Cy", "华南")], orders)


def _policy(tmp_path: Path, on_error: str) -> Path:
    text = POLICY.read_text(encoding="utf-8")
    assert text.count("on_error: fail") == 1
    path = tmp_path / f"hotel_{on_error}.yaml"
    path.write_text(text.replace("on_error: fail", f"on_error: {on_error}"), encoding="utf-8")
    return path


def test_bad_customer_fails_the_run_naming_customer_and_plugin(crm, tmp_path):
    db = _small_db(tmp_path)
    proc = crm("apply", "--db", db, "--policy", _policy(tmp_path, "fail"), "--as-of", D)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert "plugin 'hotel_loyalty'" in err and "scores.elite" in err and "for 1 customer(s)" in err
    assert "customer 'H2'" in err and "nights cannot be negative" in err
    assert "customer 'H1'" not in err and "customer 'H3'" not in err
    assert "on_error: skip" in err  # the hint
    assert "Traceback" not in err
    # a first run that fails leaves the database as it was: no results tables at all
    assert _rows(db, "SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'crm_%'")[0]["n"] == 0


def test_bad_customer_is_recorded_and_skipped(crm, tmp_path):
    db = _small_db(tmp_path)
    proc = crm("apply", "--db", db, "--policy", _policy(tmp_path, "skip"), "--as-of", D, ok=True)
    assert "failed in scores.elite for 1 customer(s)" in proc.stdout and "most often: ValueError: nights" in proc.stdout
    run_id = _latest_run(db)
    errors = [dict(r) for r in _rows(db, "SELECT * FROM crm_errors WHERE run_id = ?", run_id)]
    assert len(errors) == 1
    assert (errors[0]["customer_id"], errors[0]["plugin"], errors[0]["entry"]) == ("H2", PLUGIN, "elite")
    assert errors[0]["message"].startswith("ValueError: nights (nights_12m) is -1")
    metrics = stored_metrics(db, run_id)
    got = {r["customer_id"]: (r["tier"], metrics[r["customer_id"]])
           for r in _rows(db, "SELECT * FROM crm_assignments WHERE run_id = ?", run_id)}
    tier, m = got["H2"]
    assert m["nights_12m"] == -1 and m["revenue_12m"] == -500
    assert (m["elite"], m["elite_points"], m["elite_next"], m["elite_nights_to_next"]) == (None, None, None, None)
    assert tier == "member"  # the default tier takes customers without a status
    assert got["H1"][0] == "gold" and got["H1"][1]["elite_nights_to_next"] == 20
    assert got["H1"][1]["elite_points"] == 60_000 * 10 * 2 + 30 * 500
    assert got["H3"][0] == "member" and got["H3"][1]["elite_nights_to_next"] == 2
    actions = [dict(r) for r in _rows(db, "SELECT * FROM crm_actions WHERE run_id = ?", run_id)]
    assert [(a["customer_id"], a["action"], a["priority"]) for a in actions] == [("H3", "status_match_offer", 1)]
    assert json.loads(actions[0]["details"])["next_status"] == "silver"


# ---------------------------------------------------------------------------
# unit tests of the plugin's arithmetic (imported from the source tree)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hotel():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXAMPLE))
        module = importlib.import_module("crm_rules_hotel.plugin")
        yield module


@pytest.fixture
def programme(hotel):
    return hotel.Programme.from_params({})  # the defaults: 50/25/10 nights, 2.5M/1M points, x2 above 25 nights


def test_points_double_only_above_the_bonus_nights(hotel, programme):
    assert hotel.loyalty_points(programme, nights=25, spend=100) == 1_000
    assert hotel.loyalty_points(programme, nights=26, spend=100) == 2_000
    assert hotel.loyalty_points(programme, nights=0, spend=0) == 0
    custom = hotel.Programme.from_params({"points_per_unit": 100, "points_per_stay": 500, "bonus_after_nights": 0,
                                          "bonus_multiplier": 1.5})
    assert hotel.loyalty_points(custom, nights=1, spend=10, stays=2) == 10 * 100 * 1.5 + 2 * 500


def test_points_drop_fractions_without_float_noise(hotel):
    p = hotel.Programme.from_params({"points_per_unit": 100})
    assert hotel.loyalty_points(p, nights=1, spend=0.29) == 29  # 0.29 * 100 is 28.999999999999996 in floats
    assert hotel.loyalty_points(p, nights=1, spend=0.295) == 29


@pytest.mark.parametrize("nights, status, nxt, missing", [
    (0, "member", "silver", 10),
    (9, "member", "silver", 1),
    (9.5, "member", "silver", 1),
    (10, "silver", "gold", 15),
    (24, "silver", "gold", 1),
    (25, "gold", "platinum", 25),
    (49, "gold", "platinum", 1),
    (50, "platinum", None, None),
    (400, "platinum", None, None),
])
def test_status_by_nights_at_the_thresholds(hotel, programme, nights, status, nxt, missing):
    got = hotel.elite_status(programme, nights, points=0)
    assert (got[0].id, got[1].id if got[1] else None, got[2]) == (status, nxt, missing)


@pytest.mark.parametrize("nights, points, status, missing", [
    (0, 999_999, "member", 10),
    (0, 1_000_000, "gold", 50),      # gold by points: the nights to platinum are all missing
    (12, 999_999, "silver", 13),
    (12, 2_499_999, "gold", 38),
    (12, 2_500_000, "platinum", None),
])
def test_status_by_points_at_the_thresholds(hotel, programme, nights, points, status, missing):
    got = hotel.elite_status(programme, nights, points)
    assert (got[0].id, got[2]) == (status, missing)


def test_score_row_rejects_impossible_data(hotel, programme):
    row = {"customer_id": "X", "n": 3, "s": 900.0, "k": 2}
    assert hotel.score_row(programme, row, "n", "s", "k") == {"": "member", "points": 9_000, "next": "silver",
                                                               "nights_to_next": 7}
    assert hotel.score_row(programme, {"n": None, "s": None}, "n", "s", None)[""] == "member"  # nothing yet: 0
    for bad, message in (({"n": -1, "s": 0}, "nights cannot be negative"), ({"n": 1, "s": -5}, "spend cannot be negative"),
                         ({"n": "ten", "s": 0}, "not a number")):
        with pytest.raises(ValueError, match=message):
            hotel.score_row(programme, bad, "n", "s", None)


class FakeContext:
    """The few PluginContext methods the plugin uses, for unit tests without a policy file."""

    def __init__(self, scope: dict[str, str]):
        self.scope, self.errors, self.failed = scope, [], False

    def error(self, where, message):
        self.failed = True
        self.errors.append((where, message))

    def type_of(self, name):
        return self.scope.get(name)

    def ref(self, name, where, types=("number",)):
        if self.scope.get(name) not in types:
            self.error(where, f"bad {name}")
            return None
        return f"t.{name}"


def test_batch_compute_returns_an_exception_for_the_bad_row_only(hotel):
    ctx = FakeContext({"nights": "number", "spend": "number"})
    plan = hotel.hotel_elite(ctx, {"nights": "nights", "spend": "spend"})
    assert not ctx.errors and plan.inputs == ["nights", "spend"]
    assert set(plan.outputs) == {"", "points", "next", "nights_to_next"} and plan.outputs[""].summarize
    out = plan.compute([{"customer_id": "a", "nights": 10, "spend": 10}, {"customer_id": "b", "nights": -2, "spend": 10},
                        {"customer_id": "c", "nights": 60, "spend": 0}])
    assert out[0] == {"": "silver", "points": 100, "next": "gold", "nights_to_next": 15}
    assert isinstance(out[1], ValueError) and "-2" in str(out[1])
    assert out[2] == {"": "platinum", "points": 0, "next": None, "nights_to_next": None}


@pytest.mark.parametrize("params, where", [
    ({"statuses": [{"id": "a", "min_nights": 5}, {"id": "b", "min_nights": 10}, {"id": "c"}]}, "statuses"),
    ({"statuses": [{"id": "a", "min_points": 5}, {"id": "c"}]}, ["statuses", 0]),
    ({"statuses": [{"id": "a", "min_nights": 5}, {"id": "c", "min_nights": 1}]}, ["statuses", 1]),
    ({"statuses": [{"id": "a", "min_nights": 5}, {"id": "a"}]}, ["statuses", 1, "id"]),
    ({"points_per_stay": 10}, "points_per_stay"),
    ({"nights": "nope"}, "nights"),
])
def test_scorer_params_are_checked(hotel, params, where):
    ctx = FakeContext({"nights": "number", "spend": "number"})
    assert hotel.hotel_elite(ctx, {"nights": "nights", "spend": "spend", **params}) is None
    assert where in [w for w, _ in ctx.errors], ctx.errors


def test_offers_within_the_nights_and_not_for_lost_members(hotel):
    def row(missing, stage="active", status="silver", nxt="gold"):
        return {"customer_id": "x", "tier": status, "stage": stage, "elite": status, "elite_next": nxt,
                "elite_nights_to_next": missing, "elite_points": 1234}

    def offers(r):
        return hotel.offer_for(r, "elite", within=3, urgent=2, skip_stages={"lost"}, offer_days=90)

    assert [a["priority"] for a in offers(row(2))] == [1]
    assert [a["priority"] for a in offers(row(3))] == [2]
    assert offers(row(4)) == []
    assert offers(row(1, stage="lost")) == []
    assert offers(row(None, status="platinum", nxt=None)) == []
    assert offers(row(None, status=None, nxt=None)) == []  # outputs blanked by on_error: skip
    (a,) = offers(row(1))
    assert (a["action"], a["category"]) == ("status_match_offer", "upgrade")
    assert a["details"]["next_status"] == "gold" and a["details"]["nights_to_next"] == 1 and "gold" in a["reason"]


def test_stay_reward_needs_a_hotel_elite_entry(hotel):
    scope = {"elite": "text", "elite_next": "text", "elite_nights_to_next": "number", "elite_points": "number"}
    plan = hotel.stay_reward(FakeContext(scope), {"status": "elite"})
    assert plan.inputs == ["tier", "stage", "elite", "elite_next", "elite_nights_to_next", "elite_points"]
    ctx = FakeContext(scope)
    assert hotel.stay_reward(ctx, {"status": "value"}) is None and "hotel_elite" in ctx.errors[0][1]
    ctx = FakeContext(scope)
    assert hotel.stay_reward(ctx, {"status": "elite", "within_nights": 1, "urgent_within": 2}) is None


def test_nights_to_status_sql(hotel):
    conn = sqlite3.connect(":memory:")
    sql = hotel.nights_to_status_sql(":nights", ":threshold")
    got = [conn.execute(f"SELECT {sql}", {"nights": n, "threshold": 25}).fetchone()[0] for n in (0, 24, 25, 30, None)]
    assert got == [25, 1, 0, 0, None]
    assert hotel.NIGHTS_TO_STATUS_SIGNATURE == {"args": ["number", "number"], "returns": "number"}
