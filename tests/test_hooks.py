"""One test per hook, the registry's rules, and the plugin manager's environment switches."""

from __future__ import annotations

import inspect
import json
import re
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pluggy
import pytest

from crm_rules.engine import hookimpl, hookspecs
from crm_rules.engine.errors import PluginError, PolicyError, RunError
from crm_rules.engine.plugin_api import Action, BatchOutputs, Column, SqlActions, SqlOutputs
from crm_rules.engine.plugin_manager import build_registry, get_plugin_manager, get_registry, reset_plugins
from crm_rules.engine.policy_model import load_policy
from small_db import D, actions, make_db, run

ROOT = Path(__file__).parent.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("crm_rules_"))


@contextmanager
def extra_plugin(plugin, name: str):
    """Register an in-test plugin on the process's plugin manager for the duration of a test."""
    pm, _ = get_plugin_manager()
    pm.register(plugin, name=name)
    get_registry.cache_clear()
    try:
        yield
    finally:
        pm.unregister(name=name)
        get_registry.cache_clear()


@pytest.fixture
def small(tmp_path):
    return make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华南"), ("c", "Gamma", "华东")],
                   orders=[("a", "2026-06-01", 500), ("b", "2026-05-01", 100), ("b", "2026-06-01", 50)])


POLICY_HEAD = "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"


class Scorers:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        def doubled(ctx, params):
            x = ctx.ref(params["metric"], "metric")
            return SqlOutputs([{"": Column("number", f"2 * {x}")}]) if x else None

        register("doubled", doubled, {"type": "object", "required": ["metric"], "additionalProperties": False,
                                       "properties": {"metric": {"type": "string"}}})


def test_crm_rules_register_scorers(tmp_path, small):
    with extra_plugin(Scorers(), "test_scorers"):
        got = run(tmp_path, POLICY_HEAD + "scores:\n  twice: {use: doubled, params: {metric: revenue_12m}}\n"
                  "tiers:\n  levels:\n    - {id: big, when: 'twice >= 1000'}\n    - {id: small, default: true}\n", small)
    assert {c: (v[0], v[4]["twice"]) for c, v in got.items()} == {"a": ("big", 1000), "b": ("small", 300), "c": ("small", 0)}


class CreditChecks:
    @hookimpl
    def crm_rules_register_credit_checks(self, register):
        def limit_check(ctx, params):
            x = ctx.ref(params["metric"], "metric")
            limit = ctx.literal(params["limit"])
            return SqlOutputs([{"outcome": Column("text", f"CASE WHEN {x} > {limit} THEN 'hold' ELSE 'ok' END", summarize=True)}])

        register("limit_check", limit_check, {"type": "object", "required": ["metric", "limit"],
                                              "properties": {"metric": {"type": "string"}, "limit": {"type": "number"}}})


def test_crm_rules_register_credit_checks(tmp_path, small):
    with extra_plugin(CreditChecks(), "test_credit"):
        got = run(tmp_path, POLICY_HEAD + "credit:\n  cc: {use: limit_check, params: {metric: revenue_12m, limit: 120}}\n"
                  "tiers:\n  levels:\n    - {id: held, when: \"cc_outcome = 'hold'\"}\n    - {id: fine, default: true}\n", small)
    assert {c: v[0] for c, v in got.items()} == {"a": "held", "b": "held", "c": "fine"}


class FlagScorer:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        def over(ctx, params):
            x = ctx.ref(params["metric"], "metric")
            return SqlOutputs([{"": Column("bool", f"{x} > {ctx.literal(params['limit'])}", label="over the limit",
                                           summarize=True)}]) if x else None

        register("over", over, {"type": "object", "required": ["metric", "limit"],
                                 "properties": {"metric": {"type": "string"}, "limit": {"type": "number"}}})


def test_a_true_false_output_is_counted_and_explained_as_true_and_false(tmp_path, small, cli):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_HEAD + "scores:\n  over: {use: over, params: {metric: revenue_12m, limit: 120}}\n"
                      "tiers:\n  levels:\n    - {id: big, when: 'over'}\n    - {id: small, default: true}\n", encoding="utf-8")
    with extra_plugin(FlagScorer(), "test_flags"):
        summary = json.loads(cli("apply", "--db", small, "-p", policy, "--as-of", D, "--json", ok=True).output)["summary"]
        shown = cli("apply", "--db", small, "-p", policy, "--as-of", D, "--dry-run", ok=True).output
        explained = json.loads(cli("explain", "c", "--db", small, "-p", policy, "--as-of", D, "--json", ok=True).output)
    assert summary["outputs"] == {"over": {"false": 1, "true": 2}}
    assert re.search(r"│ over\s+│ true\s+│\s+2 │", shown) and re.search(r"│\s+│ false\s+│\s+1 │", shown), shown
    assert {m["name"]: m["value"] for m in explained["metrics"]}["over"] is False
    conn = sqlite3.connect(small)
    assert conn.execute("SELECT over FROM crm_metrics WHERE customer_id = 'a'").fetchone() == (1,)  # stored as 1/0
    conn.close()


class Actions:
    @hookimpl
    def crm_rules_register_actions(self, register):
        def call_back(ctx, params):
            when = ctx.condition(params["when"], "when")
            reason = f"printf('revenue %.0f', {ctx.ref('revenue_12m', 'when')})"
            return SqlActions([Action("call_back", when, "other", reason, priority=2, due=f"date({ctx.as_of}, '+7 days')")])

        register("call_back", call_back, {"type": "object", "required": ["when"], "properties": {"when": {"type": "string"}}})


def test_crm_rules_register_actions(tmp_path, small):
    from crm_rules.engine.runner import apply_policy

    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY_HEAD + "tiers:\n  levels:\n    - {id: A, when: 'revenue_12m > 200'}\n    - {id: B, default: true}\n"
                      "actions:\n  follow_up: {use: call_back, params: {when: \"tier = 'B' and revenue_12m > 0\"}}\n")
    with extra_plugin(Actions(), "test_actions"):
        outcome = apply_policy(small, load_policy(policy), D)
    (row,) = actions(small, outcome.run_id)
    assert (row["customer_id"], row["action"], row["priority"], row["due_date"], row["reason"], row["owner"]) == \
        ("b", "call_back", 2, "2026-07-07", "revenue 150", "someone")
    assert (row["plugin"], row["generator"]) == ("test_actions", "follow_up")
    assert outcome.summary["actions"] == {"call_back": 1}


class Functions:
    @hookimpl
    def crm_rules_register_functions(self, register):
        register("clamp01", lambda x: f"min(max({x}, 0), 1)", {"args": ["number"], "returns": "number"})


def test_crm_rules_register_functions(tmp_path, small):
    with extra_plugin(Functions(), "test_functions"):
        got = run(tmp_path, POLICY_HEAD + "  share: {expr: 'clamp01(revenue_12m / 300)'}\n"
                  "tiers:\n  levels:\n    - {id: full, when: 'clamp01(revenue_12m / 300) = 1'}\n    - {id: part, default: true}\n", small)
        assert {c: (v[0], v[4]["share"]) for c, v in got.items()} == {"a": ("full", 1), "b": ("part", 0.5), "c": ("part", 0)}
        bad = tmp_path / "bad.yaml"
        bad.write_text(POLICY_HEAD + "tiers:\n  levels:\n    - {id: x, when: \"clamp01('a') = 1\"}\n    - {id: y, default: true}\n")
        with pytest.raises(PolicyError) as info:
            load_policy(bad)
        assert "argument 1 of clamp01() must be a number" in str(info.value)
        bad.write_text(POLICY_HEAD + "tiers:\n  levels:\n    - {id: x, when: 'clamp0(1) = 1'}\n    - {id: y, default: true}\n")
        with pytest.raises(PolicyError) as info:
            load_policy(bad)
        assert "unknown function 'clamp0'; did you mean 'clamp01'?" in str(info.value)


class DateFunctions:
    @hookimpl
    def crm_rules_register_functions(self, register):
        register("days_to", lambda d: f"CAST(julianday({d}) - julianday('2026-06-30') AS INTEGER)",
                 {"args": ["date"], "returns": "number"})


def test_a_function_taking_a_date_takes_a_date_literal(tmp_path, small):
    # as comparisons and days_between() do: a date is written '2026-12-31' in the expression language
    with extra_plugin(DateFunctions(), "test_date_functions"):
        got = run(tmp_path, POLICY_HEAD + "  to_year_end: {expr: \"days_to('2026-12-31')\"}\n"
                  "tiers:\n  levels:\n    - {id: A, default: true}\n", small)
        assert {v[4]["to_year_end"] for v in got.values()} == {184}
        bad = tmp_path / "bad.yaml"
        bad.write_text(POLICY_HEAD + "tiers:\n  levels:\n    - {id: x, when: \"days_to('2026-02-30') > 1\"}\n"
                                     "    - {id: y, default: true}\n")
        with pytest.raises(PolicyError, match="'2026-02-30' is not a date"):
            load_policy(bad)


def test_every_hook_has_a_test_and_is_documented():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    assert HOOKS, "no hooks found"
    for hook in HOOKS:
        spec = getattr(hookspecs, hook)
        assert f"test_{hook}" in tests, f"{hook} has no test"
        assert hook in readme, f"{hook} is not documented in the README"
        doc = inspect.getdoc(spec) or ""
        assert doc and ":param register:" in doc, f"{hook} needs a summary and :param: lines"
        assert all(p.annotation is not inspect.Parameter.empty for p in inspect.signature(spec).parameters.values())


def _pm_with(*plugins):
    pm = pluggy.PluginManager("crm_rules")
    pm.add_hookspecs(hookspecs)
    for i, p in enumerate(plugins):
        pm.register(p, name=f"p{i}")
    return pm


def test_duplicate_names_are_rejected_naming_both_plugins():
    with pytest.raises(PluginError) as info:
        build_registry(_pm_with(Scorers(), Scorers()))
    # each with the line of its register() call
    assert re.search(r"scorer 'doubled' is registered twice: by plugin 'p0' \(\S*test_hooks\.py:(\d+)\) and by plugin "
                     r"'p1' \(\S*test_hooks\.py:\1\)", str(info.value))


@pytest.mark.parametrize("name, fn, schema, message", [
    ("bad name", lambda c, p: None, {}, "invalid name"),
    ("ok", "not callable", {}, "with fn = a str, which cannot be called"),
    ("ok", lambda c, p: None, {"type": "nonsense"}, "not a valid JSON Schema"),
    ("ok", lambda c, p: None, None, "without a schema dict"),
])
def test_invalid_registrations_are_rejected(name, fn, schema, message):
    class Bad:
        @hookimpl
        def crm_rules_register_scorers(self, register):
            register(name, fn, schema)

    with pytest.raises(PluginError) as info:
        build_registry(_pm_with(Bad()))
    assert message in str(info.value)


def test_bad_function_signature_is_rejected():
    class Bad:
        @hookimpl
        def crm_rules_register_functions(self, register):
            register("f", lambda x: x, {"args": ["money"], "returns": "number"})

    with pytest.raises(PluginError, match="signature"):
        build_registry(_pm_with(Bad()))


def test_unknown_scorer_lists_installed_ones(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("scores:\n  v: {use: weighted_valeu}\ntiers:\n  levels: [{id: A, default: true}]\n")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    message = str(info.value)
    assert f"{policy}:2:12: scores.v.use: unknown scorer 'weighted_valeu'; did you mean 'weighted_value'? (installed: " in message
    assert "rfm" in message


def test_params_are_checked_against_the_plugins_schema(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY_HEAD + "scores:\n  v:\n    use: weighted_value\n    params:\n      factorz: []\n"
                      "tiers:\n  levels: [{id: A, default: true}]\n")
    with pytest.raises(PolicyError) as info:
        load_policy(policy)
    message = str(info.value)
    assert f"{policy}:7:7: scores.v.params.factorz: unknown key 'factorz'; did you mean 'factors'?" in message
    assert "missing required key 'factors'" in message


class Flaky:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        def inverse(ctx, params):
            def compute(rows):
                return [{"": 1 / r["revenue_12m"]} for r in rows]  # fails for a customer without revenue
            return BatchOutputs(["revenue_12m"], {"": Column("number")}, compute, chunk_size=2)

        register("inverse", inverse, {"type": "object"})


def test_batch_plugin_errors_fail_or_skip_per_customer(tmp_path, small):
    policy = POLICY_HEAD + "scores:\n  inv: {use: inverse, on_error: ON_ERROR}\ntiers:\n  levels: [{id: A, default: true}]\n"
    with extra_plugin(Flaky(), "flaky"):
        with pytest.raises(RunError) as info:
            run(tmp_path, policy.replace("ON_ERROR", "fail"), small)
        assert "plugin 'flaky' failed in scores.inv for 1 customer(s): customer 'c': ZeroDivisionError" in str(info.value)
        got = run(tmp_path, policy.replace("ON_ERROR", "skip"), small)
    assert {c: v[4]["inv"] for c, v in got.items()} == {"a": 0.002, "b": pytest.approx(1 / 150), "c": None}
    conn = sqlite3.connect(small)
    assert conn.execute("SELECT customer_id, plugin, entry FROM crm_errors").fetchall() == [("c", "flaky", "inv")]


def _plugins_json(env: dict) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "crm_rules.cli", "plugins", "--json"], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


def test_environment_restricts_and_blocks_plugins(monkeypatch):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_RULES_")}
    names = {p["name"] for p in _plugins_json(env)}
    assert {"value_scoring", "credit_check", "retention"} <= names
    assert {p["name"] for p in _plugins_json({**env, "CRM_RULES_LOAD_PLUGINS": "value_scoring"})} == {"value_scoring"}
    assert _plugins_json({**env, "CRM_RULES_LOAD_PLUGINS": ""}) == []
    blocked = {p["name"] for p in _plugins_json({**env, "CRM_RULES_BLOCK_PLUGINS": "retention,credit_check"})}
    assert "retention" not in blocked and "credit_check" not in blocked and "value_scoring" in blocked
    monkeypatch.setenv("CRM_RULES_LOAD_PLUGINS", "value_scoring")
    reset_plugins()
    try:
        assert list(get_plugin_manager()[1]) == ["value_scoring"]
    finally:
        monkeypatch.undo()
        reset_plugins()


def test_plugins_command_lists_builtins_with_hooks(cli):
    listing = json.loads(cli("plugins", "--json", ok=True).output)
    scoring = next(p for p in listing if p["name"] == "value_scoring")
    assert scoring["source"] == "built-in" and scoring["hooks"] == ["crm_rules_register_scorers"]
    assert {"kind": "scorer", "name": "weighted_value"} in scoring["contributions"]
    assert "weighted_value" in cli("plugins", ok=True).output


@pytest.mark.parametrize("width", [60, 80, 120])
def test_plugins_keeps_each_contribution_on_one_line(cli, columns, width):
    # at 60 columns the Registers column broke "scorer: weighted_value" between "scorer:" and the name
    from rich.cells import cell_len

    listing = json.loads(cli("plugins", "--json", ok=True).output)
    columns(width)
    lines = cli("plugins", ok=True).output.splitlines()
    cells = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in lines if line[:1] in "│┃"]
    registers = [row[-1] for row in cells]
    for p in listing:
        assert {f"{c['kind']}: {c['name']}" for c in p["contributions"]} <= set(registers), p["name"]
    assert max(cell_len(line) for line in lines) <= width
    if width == 60:  # the version and source under the plugin's name
        assert cells[:2] == [["Plugin", ""], ["version, source", "Registers"]]
        names = [row[0] for row in cells[2:]]
        for p in listing:
            assert names[names.index(p["name"]) + 1] == f"{p['version']}, {p['source']}"
    else:
        assert cells[0] == ["Plugin", "Version", "Source", "Registers"]


def test_builtins_are_declared_as_entry_points_in_pyproject():
    from crm_rules.engine.plugin_manager import DEFAULT_PLUGINS

    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.entry-points.crm_rules]")[1].split("\n[")[0]
    declared = dict(re.findall(r'^(\w+) = "([\w.:]+)"', section, flags=re.M))
    assert declared == {ep.name: ep.value for ep in DEFAULT_PLUGINS}
