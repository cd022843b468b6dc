"""A plugin author's mistakes are reported naming the plugin, before any run, never as a traceback."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from decimal import Decimal
from pathlib import Path
from importlib.metadata import EntryPoint

import pluggy
import pytest
from small_db import make_db, run

from crm_rules.engine import hookimpl, hookspecs, plugin_manager
from crm_rules.engine.errors import PluginError, RunError
from crm_rules.engine.plugin_api import Action, BatchActions, BatchOutputs, Column, SqlActions, SqlOutputs
from crm_rules.engine.plugin_manager import build_registry, get_plugin_manager, get_registry, reset_plugins
from crm_rules.engine.plugin_source import shown
from crm_rules.engine.policy_model import load_policy

# Where in the plugin's source a message points (" (tests/test_plugin_mistakes.py:57)", " at x.py:3"): the tests of
# the wording leave it out, test_a_mistake_names_the_line_of_the_plugin_source checks it.
_PLACE = re.compile(r" \((?:register\(\) at )?[^()\s]+\.py:\d+(?: and [^()\s]+\.py:\d+)?\)| at [^\s:]+\.py:\d+")


def _unplaced(text: str) -> str:
    return _PLACE.sub("", text)


HEAD = "metrics:\n  revenue_12m: {sum: amount, window: 12 months}\n"
TIERS = "tiers:\n  levels: [{id: A, default: true}]\n"


def _pm_with(plugin):
    pm = pluggy.PluginManager("crm_rules")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="broken")
    return pm


@pytest.fixture
def with_plugin():
    """Register an in-test plugin on the process's plugin manager for the duration of a test."""
    registered = []

    def add(plugin):
        pm, _ = get_plugin_manager()
        pm.register(plugin, name="broken")
        registered.append(pm)
        get_registry.cache_clear()

    yield add
    for pm in registered:
        pm.unregister(name="broken")
    get_registry.cache_clear()


# --- registering -------------------------------------------------------------------------------

class RaisingHook:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        raise KeyError("oops")


class NoSchema:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: None)


class NoRegisterArgument:
    @hookimpl
    def crm_rules_register_scorers(self):
        pass


class CallsRegisterItLacks:
    """Its body calls register(): the NameError it raises said "failed in its hook", a bug inside the hook."""

    @hookimpl
    def crm_rules_register_scorers(self):
        register("bk", lambda ctx, params: None, {"type": "object"})  # noqa: F821


class ShadowsRound:
    @hookimpl
    def crm_rules_register_functions(self, register):
        register("round", lambda x: x, {"args": ["number"], "returns": "number"})


def _function_named(name):
    class Plugin:
        @hookimpl
        def crm_rules_register_functions(self, register):
            register(name, lambda x: x, {"args": ["number"], "returns": "number"})

    return Plugin()


class RefToNowhere:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: None, {"type": "object", "properties": {"x": {"$ref": "#/$defs/nope"}}})


@pytest.mark.parametrize("plugin, message", [
    (RaisingHook(), "plugin 'broken' failed in its hook crm_rules_register_scorers: KeyError: 'oops'"),
    (NoSchema(), "plugin 'broken' registered scorer 'bk' without a schema dict"),
    (NoRegisterArgument(), "plugin 'broken' implements crm_rules_register_scorers without its `register` argument"),
    (CallsRegisterItLacks(), "plugin 'broken' implements crm_rules_register_scorers without its `register` "
                                   "argument, so it registers nothing"),
    (ShadowsRound(), "plugin 'broken' registered function 'round', a built-in function of the expression language"),
    (RefToNowhere(), "the params schema of scorer 'bk' is not a valid JSON Schema: $ref '#/$defs/nope' points to nothing"),
    # a policy's netVAT(x) calls netvat(), its ROUND(x) the built-in round(); null(x), true(x) do not parse
    (_function_named("netVAT"), "plugin 'broken' registered function 'netVAT', but no expression can call it: "
                                "the expression language reads names of functions in lowercase"),
    (_function_named("ROUND"), "plugin 'broken' registered function 'ROUND', a built-in function of the expression "
                               "language (its names are not case-sensitive)"),
    (_function_named("null"), "plugin 'broken' registered function 'null', a keyword of the expression language"),
    (_function_named("True"), "plugin 'broken' registered function 'True', a keyword of the expression language (its"),
    (_function_named("_net"), "plugin 'broken' registered function '_net', but function names are lowercase letters, "
                              "digits and _, starting with a letter"),
])
def test_a_registration_mistake_names_the_plugin(plugin, message):
    with pytest.raises(PluginError) as caught:
        build_registry(_pm_with(plugin))
    assert message in _unplaced(str(caught.value))


class _Registers:
    """A plugin whose hook `hook` calls register(*args, **kwargs)."""

    def __init__(self, hook, *args, **kwargs):
        def impl(register):
            register(*args, **kwargs)

        setattr(self, hook, hookimpl(impl))


FUNCTION_SIGNATURE = {"args": ["number", "number"], "returns": "number"}


@pytest.mark.parametrize("plugin, message, hint", [
    # the hook spec's docstring called the third argument `signature`: the closure's TypeError named build_registry
    (_Registers("crm_rules_register_functions", "bk_f", lambda x, y: x, signature=FUNCTION_SIGNATURE),
     "plugin 'broken' called register() in its hook crm_rules_register_functions with the wrong arguments: "
     "got an unexpected keyword argument 'signature'", "call register(name, fn, {'args': [types], 'returns': type})"),
    (_Registers("crm_rules_register_scorers", "bk", lambda ctx, params: None, {}, "v2"),
     "plugin 'broken' called register() in its hook crm_rules_register_scorers with the wrong arguments: "
     "too many positional arguments", "call register(name, fn, schema)"),
    (_Registers("crm_rules_register_functions", "bk_f", lambda x, y: x),
     "plugin 'broken' registered function 'bk_f' without a signature dict (got None)",
     "pass it as the third argument: register('bk_f', fn, {'args': ['number'], 'returns': 'number'})"),
    # found when registered, not when the first policy calls fn with (ctx, params) or with the SQL of each argument
    (_Registers("crm_rules_register_scorers", "bk", lambda params: None, {"type": "object"}),
     "plugin 'broken' registered scorer 'bk' with a fn that cannot be called as fn(ctx, params): <lambda>(params) "
     "cannot take 2 argument(s): too many positional arguments", "define it as `def fn(ctx, params):`"),
    # register(name, schema, fn): it said "with a non-callable", which did not say which argument nor what to do
    (_Registers("crm_rules_register_scorers", "bk", {"type": "object"}, lambda ctx, params: None),
     "plugin 'broken' registered scorer 'bk' with fn = a dict, which cannot be called: the second and third arguments "
     "are swapped", "call register(name, fn, schema): the function that computes it second"),
    (_Registers("crm_rules_register_functions", "bk_f", lambda x: x, FUNCTION_SIGNATURE),
     "plugin 'broken' registered function 'bk_f' with 2 argument(s) in its signature, but <lambda>(x) cannot take "
     "2 argument(s): too many positional arguments",
     "give fn one parameter per type in 'args' (it receives the SQL of each argument)"),
])
def test_a_register_call_that_does_not_fit_says_how_to_call_it(plugin, message, hint):
    with pytest.raises(PluginError) as caught:
        build_registry(_pm_with(plugin))
    assert _unplaced(caught.value.message) == message
    assert caught.value.hint == hint


@pytest.mark.parametrize("schema, message, hint", [
    # SchemaError's message alone ("'strin' is not valid under any of the given schemas") did not say which key
    ({"type": "object", "properties": {"metric": {"type": "strin"}}},
     "'strin' is not a JSON Schema type; did you mean 'string'? (types: array, boolean, integer, null, number, object, "
     "string) (at properties.metric.type)",
     "params schemas are JSON Schema draft 2020-12"),
    # every problem at once, not the first one a fix at a time
    ({"type": "object", "properties": {"metric": {"type": "strin"}, "top": {"minimum": "10"}}, "required": "metric"},
     "'strin' is not a JSON Schema type; did you mean 'string'? (types: array, boolean, integer, null, number, object, "
     "string) (at properties.metric.type); '10' is not of type 'number' (at properties.top.minimum); "
     "'metric' is not of type 'array' (at required)",
     "params schemas are JSON Schema draft 2020-12"),
    # a schema copied from a draft-07 project: its tuple `items` is an error in 2020-12
    ({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
      "properties": {"pair": {"type": "array", "items": [{"type": "number"}, {"type": "number"}]}}},
     "'items' holds a list, [{'type': 'number'}, {'type': 'number'}]: in draft 2020-12 a list of item schemas is "
     "'prefixItems', and 'items' is one schema for every item (at properties.pair.items)",
     "params schemas are JSON Schema draft 2020-12; this one declares $schema 'http://json-schema.org/draft-07/schema#', "
     "but it is read as 2020-12, where a list of item schemas is 'prefixItems', not 'items'"),
    # the same without $schema: "is not of type 'object', 'boolean'" did not say what to write
    ({"type": "object", "properties": {"bands": {"type": "array", "items": [{"type": "string"}]}}},
     "'items' holds a list, [{'type': 'string'}]: in draft 2020-12 a list of item schemas is 'prefixItems', and "
     "'items' is one schema for every item (at properties.bands.items)",
     "params schemas are JSON Schema draft 2020-12"),
    # JSON Schema ignores keys it does not know: these schemas were accepted and checked no params at all
    ({"type": "object", "additionalproperties": False, "properties": {"metric": {"type": "string"}}},
     "'additionalproperties' is not a JSON Schema keyword; did you mean 'additionalProperties'? JSON Schema ignores "
     "keys it does not know, so it would not check the params",
     "params schemas are JSON Schema draft 2020-12"),
    ({"type": "object", "properties": {"top": {"type": "number", "maxium": 10}}},
     "'maxium' is not a JSON Schema keyword (at properties.top); did you mean 'maximum'? JSON Schema ignores keys it "
     "does not know, so it would not check the params",
     "params schemas are JSON Schema draft 2020-12"),
    ({"metric": {"type": "string", "description": "Metric to scale."}, "factor": {"type": "number"}},
     "'metric' is not a JSON Schema keyword, so the params would not be checked: it looks like a property; write them "
     "under 'properties' of {'type': 'object', 'properties': {...}}",
     "params schemas are JSON Schema draft 2020-12"),
])
def test_an_invalid_params_schema_says_where_and_which_draft(schema, message, hint):
    with pytest.raises(PluginError) as caught:
        build_registry(_pm_with(_Registers("crm_rules_register_scorers", "bk", lambda ctx, params: None, schema)))
    assert _unplaced(caught.value.message) == f"plugin 'broken': the params schema of scorer 'bk' is not a valid JSON Schema: {message}"
    assert caught.value.hint == hint


def test_a_params_schema_with_annotations_and_extensions_is_valid():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "t", "$comment": "c",
              "type": "object", "x-ui": {"order": 1}, "$defs": {"m": {"type": "string", "examples": ["a"]}},
              "properties": {"m": {"$ref": "#/$defs/m", "deprecated": True},
                             "pair": {"type": "array", "prefixItems": [{"type": "number"}], "items": False}}}
    registry = build_registry(_pm_with(_Registers("crm_rules_register_scorers", "bk", lambda ctx, params: None, schema)))
    assert registry.get("scorer", "bk") is not None


def test_a_name_registered_twice_gets_the_prefixed_name_and_the_plugin_to_block():
    pm = _pm_with(_Registers("crm_rules_register_scorers", "rfm", lambda ctx, params: None, {"type": "object"}))
    pm.register(_Registers("crm_rules_register_scorers", "rfm", lambda ctx, params: None, {"type": "object"}), name="later")
    with pytest.raises(PluginError) as caught:
        build_registry(pm)
    assert _unplaced(caught.value.message) == "scorer 'rfm' is registered twice: by plugin 'broken' and by plugin 'later'"
    assert caught.value.hint == ("the author of plugin 'later' renames it (prefix generic names: 'later_rfm'); a user "
                                 "uninstalls one of the two, or blocks one with CRM_RULES_BLOCK_PLUGINS=later")


def test_a_function_name_that_is_not_lowercase_gets_the_name_to_register():
    with pytest.raises(PluginError) as caught:
        build_registry(_pm_with(_function_named("netVAT")))
    assert caught.value.hint == "register it as 'netvat'"


# --- loading -----------------------------------------------------------------------------------

class TypoHook:
    @hookimpl
    def crm_rules_register_scorer(self, register):
        pass


class WrongArgument:
    @hookimpl
    def crm_rules_register_scorers(self, reg):
        pass


class Undecorated:
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: None, {"type": "object"})


class UndecoratedTypo:
    def crm_rules_register_scorer(self, register):
        register("bk", lambda ctx, params: None, {"type": "object"})


class OwnMarker:
    @pluggy.HookimplMarker("crm-rules")
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: None, {"type": "object"})


TYPO_HOOK, WRONG_ARGUMENT, UNDECORATED = TypoHook(), WrongArgument(), Undecorated()
UNDECORATED_TYPO, OWN_MARKER = UndecoratedTypo(), OwnMarker()
RAISING_HOOK = RaisingHook()


@pytest.fixture
def entry_points(monkeypatch):
    """Load these entry points instead of the installed ones."""
    def use(*eps: EntryPoint):
        monkeypatch.setattr(plugin_manager, "DEFAULT_PLUGINS", eps)
        monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [])
        reset_plugins()

    yield use
    reset_plugins()


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, plugin_manager.ENTRY_POINT_GROUP)


@pytest.mark.parametrize("eps, message", [
    ([_ep("broken", "test_plugin_mistakes:TYPO_HOOK")],
     "plugin 'broken' implements an unknown hook 'crm_rules_register_scorer'; did you mean 'crm_rules_register_scorers'?"),
    ([_ep("broken", "test_plugin_mistakes:WRONG_ARGUMENT")],
     "plugin 'broken' (test_plugin_mistakes:WRONG_ARGUMENT) cannot be loaded: crm_rules_register_scorers(reg) asks for "
     "'reg', which the hook does not pass; its arguments are (register)"),
    # pluggy registers marked functions only: the plugin loaded, and its scorer was 'unknown' in every policy
    ([_ep("broken", "test_plugin_mistakes:UNDECORATED")],
     "plugin 'broken' (test_plugin_mistakes:UNDECORATED) defines crm_rules_register_scorers without @hookimpl, "
     "so it is never called"),
    # neither marked nor a hook: the check of unknown hooks sees marked functions only, and the plugin contributed nothing
    ([_ep("broken", "test_plugin_mistakes:UNDECORATED_TYPO")],
     "plugin 'broken' (test_plugin_mistakes:UNDECORATED_TYPO) defines crm_rules_register_scorer without @hookimpl, so "
     "it is never called, and no hook has that name; did you mean 'crm_rules_register_scorers'?"),
    ([_ep("broken", "test_plugin_mistakes:OWN_MARKER")],
     "plugin 'broken' (test_plugin_mistakes:OWN_MARKER) defines crm_rules_register_scorers with a @hookimpl marker of "
     "project 'crm-rules', but the hooks of crm-rules are project 'crm_rules', so it is never called"),
    # the class, not an instance: each hook call failed with "missing 1 required positional argument: 'self'"
    ([_ep("broken", "test_plugin_mistakes:Undecorated")],
     "plugin 'broken' (test_plugin_mistakes:Undecorated) is a class, but a plugin is a module or an object: the hooks "
     "of a class are methods that need an instance"),
    ([_ep("retention", "crm_rules.plugins.retention"), _ep("retention", "test_plugin_mistakes:TYPO_HOOK")],
     "two plugins are named 'retention': crm_rules.plugins.retention (built-in) and test_plugin_mistakes:TYPO_HOOK"),
    ([_ep("a", "test_plugin_mistakes:TYPO_HOOK"), _ep("b", "test_plugin_mistakes:TYPO_HOOK")],
     "plugin 'b' (test_plugin_mistakes:TYPO_HOOK) is the module already loaded as plugin 'a'"),
])
def test_a_loading_mistake_names_the_plugin(entry_points, eps, message):
    entry_points(*eps)
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    assert message in _unplaced(str(caught.value))


@pytest.mark.parametrize("ep, hint", [
    # the hint sent the author to `crm-rules plugins --json`, which fails the same way while the plugin is installed
    ("WRONG_ARGUMENT", "every hook takes the one argument `register`: define it as `def crm_rules_register_scorers(register):`"),
    ("OWN_MARKER", "use crm-rules' own marker: `from crm_rules.engine import hookimpl`"),
    ("Undecorated", "create the instance in the module (`plugin = Undecorated()`) and point the entry point at it "
                    "(test_plugin_mistakes:plugin), or at the module with the hooks as functions"),
    ("UNDECORATED_TYPO", "name it after a hook (crm_rules_register_scorers, crm_rules_register_credit_checks, "
                         "crm_rules_register_actions, crm_rules_register_functions) and decorate it: "
                         "`from crm_rules.engine import hookimpl`, then `@hookimpl` above the def"),
    # it said (README, "Writing a plugin"): a file of the repository, which an installed crm-rules lacks
    ("TYPO_HOOK", "the hooks are: crm_rules_register_scorers, crm_rules_register_credit_checks, crm_rules_register_actions, "
                  "crm_rules_register_functions (`python -m pydoc crm_rules.engine.hookspecs` prints what each hook takes)"),
])
def test_a_loading_mistake_gets_the_fix(entry_points, ep, hint):
    entry_points(_ep("broken", f"test_plugin_mistakes:{ep}"))
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    assert caught.value.hint == hint


def test_the_hook_documentation_the_hints_name_is_in_the_installed_package():
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "pydoc", "crm_rules.engine.hookspecs"], capture_output=True,
                           text=True, check=True).stdout
    for hook in plugin_manager.HOOK_KINDS:
        assert f"{hook}(register" in shown
    assert "call ``register(name, fn, schema)`` once per scorer" in shown


def test_a_plugin_whose_entry_point_has_no_hooks_is_named_where_its_contributions_are_missing(entry_points, cli, tmp_path):
    # an entry point at the package (crm_rules_churn) while the hooks are in crm_rules_churn.plugin: it loaded,
    # `plugins` showed an empty cell, and a policy read "unknown scorer" naming only the other plugins
    from crm_rules.engine.errors import PolicyError

    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"), _ep("broken", "crm_rules.engine.errors"))
    assert get_registry().empty == {"broken": "crm_rules.engine.errors"}
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: churn_risk}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert ("unknown scorer 'churn_risk' (installed: rfm, weighted_value; plugin 'broken' is loaded but registers "
            "nothing (its entry point, crm_rules.engine.errors, implements no hook); see `crm-rules plugins`)"
            ) in str(caught.value)
    listed = cli("plugins", ok=True).output
    assert "nothing (no hooks in" in listed and "crm_rules.engine.errors" in listed


class RfmAgain:
    """A third-party plugin registering a scorer under the name of a built-in one, and one of its own."""

    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("rfm", lambda ctx, params: None, {"type": "object"})
        register("bk_own", lambda ctx, params: None, {"type": "object"})


RFM_AGAIN = RfmAgain()
# a built-in plugin cannot be uninstalled: the hint said "a user uninstalls one of the two"
TWICE_ERROR = "scorer 'rfm' is registered twice: by the built-in plugin 'value_scoring' and by plugin 'dupe'"
TWICE_HINT = ("the author of plugin 'dupe' renames it (prefix generic names: 'dupe_rfm'); a user uninstalls the package "
              "of plugin 'dupe', or blocks it with CRM_RULES_BLOCK_PLUGINS=dupe")
TWICE = f"error: {TWICE_ERROR}\n  hint: {TWICE_HINT}\n"


def test_plugins_lists_the_plugins_when_one_registers_a_name_twice_and_fails(entry_points, cli):
    # `plugins` failed with the error like every other command, so the user could not see what was loaded
    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"), _ep("dupe", "test_plugin_mistakes:RFM_AGAIN"))
    shown = cli("plugins")
    assert shown.exit_code == 1
    assert "weighted_value" in shown.stdout and "scorer: bk_own" in shown.stdout
    assert "1 problem: see below" in shown.stdout
    assert _unplaced(shown.stderr) == TWICE
    listing = cli("plugins", "--json")
    assert listing.exit_code == 1 and _unplaced(listing.stderr) == TWICE
    by_name = {p["name"]: p for p in json.loads(listing.stdout)}
    assert by_name["dupe"]["hooks"] == ["crm_rules_register_scorers"]
    assert by_name["dupe"]["contributions"] == [{"kind": "scorer", "name": "bk_own"}]
    assert [{**p, "error": _unplaced(p["error"])} for p in by_name["dupe"]["problems"]] == [
        {"error": TWICE_ERROR, "hint": TWICE_HINT}]
    assert by_name["value_scoring"]["problems"] == []
    # a command that needs the plugins' contributions still fails on it
    checked = cli("validate", "base")
    assert checked.exit_code == 1 and _unplaced(checked.stderr) == TWICE


def test_plugins_lists_the_plugins_when_one_cannot_be_loaded_and_fails(entry_points, cli):
    # an import error or an unknown hook made `plugins` fail like every other command, the listing unseen
    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"), _ep("typo", "test_plugin_mistakes:TYPO_HOOK"),
                 _ep("gone", "no_such_module_anywhere"))
    shown = cli("plugins")
    assert shown.exit_code == 1
    assert "weighted_value" in shown.stdout and shown.stdout.count("not loaded: see below") == 2
    assert "error: plugin 'gone': its entry point names module 'no_such_module_anywhere', which does not exist" \
        in shown.stderr
    assert "error: plugin 'typo' implements an unknown hook 'crm_rules_register_scorer'" in shown.stderr
    by_name = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)}
    assert by_name["typo"]["loaded"] is False and by_name["gone"]["problems"][0]["error"].startswith("plugin 'gone'")
    assert by_name["value_scoring"]["problems"] == [] and "loaded" not in by_name["value_scoring"]
    checked = cli("validate", "base")  # every other command still stops on it
    assert checked.exit_code == 1 and "which does not exist" in checked.stderr


def test_plugins_lists_the_plugins_when_an_environment_variable_names_no_plugin(entry_points, cli, monkeypatch):
    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"))
    monkeypatch.setenv("CRM_RULES_BLOCK_PLUGINS", "value_scorin")
    shown = cli("plugins")
    assert shown.exit_code == 1 and "weighted_value" in shown.stdout  # the misspelt name blocks nothing
    assert "CRM_RULES_BLOCK_PLUGINS names 'value_scorin', which is no installed plugin; did you mean 'value_scoring'?" \
        in shown.stderr


def test_plugins_reports_every_registration_problem_after_the_listing(entry_points, cli):
    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"), _ep("dupe", "test_plugin_mistakes:RFM_AGAIN"),
                 _ep("broken", "test_plugin_mistakes:RAISING_HOOK"))
    shown = cli("plugins")
    assert shown.exit_code == 1
    assert _unplaced(shown.stderr).startswith(TWICE)
    assert "error: plugin 'broken' failed in its hook crm_rules_register_scorers: KeyError: 'oops'\n" in _unplaced(shown.stderr)
    assert "Traceback" not in shown.output
    loud = cli("--debug", "plugins")  # the plugin's bug: the traceback the hint promises
    assert loud.exit_code == 1 and "Traceback (most recent call last)" in loud.stderr and "KeyError: 'oops'" in loud.stderr


def test_a_registry_that_keeps_going_has_the_rest_of_what_plugins_register():
    pm = _pm_with(RaisingHook())
    pm.register(_Registers("crm_rules_register_scorers", "bk", lambda ctx, params: None, {}, "v2"), name="wrong_call")
    pm.register(RfmAgain(), name="fine")
    registry = build_registry(pm, keep_going=True)
    assert registry.names("scorer") == ["bk_own", "rfm"]
    assert {name: [_unplaced(e.message).split(":")[0] for e in errors] for name, errors in registry.problems.items()} == {
        "broken": ["plugin 'broken' failed in its hook crm_rules_register_scorers"],
        "wrong_call": ["plugin 'wrong_call' called register() in its hook crm_rules_register_scorers with the wrong arguments"]}
    with pytest.raises(PluginError, match="plugin 'broken' failed"):
        build_registry(pm)


def test_two_plugins_of_one_name_get_the_package_to_rename_not_a_block_that_blocks_both(monkeypatch):
    # the hint said "block one with CRM_RULES_BLOCK_PLUGINS=retention": blocking is by name, so it blocked both
    class Dist:
        name, version = "crm-rules-oops", "0.0.1"

    clash = _ep("retention", "test_plugin_mistakes:TYPO_HOOK")
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [clash])
    monkeypatch.setattr(EntryPoint, "dist", property(lambda ep: Dist if ep is clash else None))
    reset_plugins()
    try:
        with pytest.raises(PluginError) as caught:
            get_plugin_manager()
    finally:
        monkeypatch.undo()
        reset_plugins()
    assert caught.value.message == ("two plugins are named 'retention': crm_rules.plugins.retention (built-in) and "
                                    "test_plugin_mistakes:TYPO_HOOK (crm-rules-oops)")
    assert caught.value.hint == ("rename the entry point in the pyproject.toml of crm-rules-oops, or uninstall one of them "
                                 "(CRM_RULES_BLOCK_PLUGINS=retention would block both)")


def test_a_misspelled_plugin_to_load_is_an_error(monkeypatch):
    monkeypatch.setenv(plugin_manager.LOAD_ENV, "value_scorin")
    reset_plugins()
    try:
        with pytest.raises(PluginError, match="CRM_RULES_LOAD_PLUGINS names 'value_scorin', which is no installed plugin; "
                                              "did you mean 'value_scoring'"):
            get_plugin_manager()
    finally:
        monkeypatch.undo()
        reset_plugins()


@pytest.fixture
def env_plugins(monkeypatch):
    """Set a plugin variable for one test: the plugins load again with it, and again after the test without it."""
    def use(var: str, value: str) -> None:
        monkeypatch.setenv(var, value)
        reset_plugins()

    yield use
    monkeypatch.undo()
    reset_plugins()


def test_a_misspelled_plugin_to_block_is_an_error(env_plugins):
    """A block that blocks nothing would leave the plugin it was meant for running, unnoticed."""
    env_plugins(plugin_manager.BLOCK_ENV, "value_scoring, credit-check")
    with pytest.raises(PluginError, match="CRM_RULES_BLOCK_PLUGINS names 'credit-check', which is no installed plugin; "
                                          "did you mean 'credit_check'") as caught:
        get_plugin_manager()
    assert caught.value.hint == "installed: value_scoring, credit_check, retention"


def test_a_blocked_plugin_is_not_loaded_and_the_registry_says_so(env_plugins):
    assert get_registry().blocked == [] and get_registry().blocked_note() == ""
    env_plugins(plugin_manager.BLOCK_ENV, "credit_check")
    _, infos = get_plugin_manager()
    assert "credit_check" not in infos and "value_scoring" in infos
    assert get_registry().names("credit_check") == [] and get_registry().blocked == ["credit_check"]
    assert get_registry().blocked_note() == "; plugin 'credit_check' is blocked by CRM_RULES_BLOCK_PLUGINS"
    env_plugins(plugin_manager.BLOCK_ENV, "retention,credit_check")
    assert get_registry().blocked_note() == "; plugins 'credit_check', 'retention' are blocked by CRM_RULES_BLOCK_PLUGINS"


def test_a_policy_using_a_blocked_plugin_says_it_is_blocked(env_plugins):
    from crm_rules.engine.errors import PolicyError

    env_plugins(plugin_manager.BLOCK_ENV, "credit_check")
    with pytest.raises(PolicyError) as caught:
        load_policy("base")
    assert ("unknown credit check 'credit_6c' (installed: none; plugin 'credit_check' is blocked by "
            "CRM_RULES_BLOCK_PLUGINS; see `crm-rules plugins`)") in str(caught.value)


def test_a_function_of_a_blocked_plugin_says_it_is_blocked(env_plugins, tmp_path):
    # the scorers, credit checks and actions said so; an unknown function named only the functions there are
    from crm_rules.engine.errors import PolicyError

    env_plugins(plugin_manager.BLOCK_ENV, "retention")
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "  quiet: {expr: 'clamp(revenue_12m, 0, 10)'}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert "unknown function 'clamp' (functions: " in str(caught.value)
    assert "upper; plugin 'retention' is blocked by CRM_RULES_BLOCK_PLUGINS)" in str(caught.value)


def test_the_plugins_a_run_needs_back_say_whether_to_install_or_unblock_them(env_plugins):
    from crm_rules.engine.explain import plugins_gone

    env_plugins(plugin_manager.BLOCK_ENV, "credit_check")
    assert plugins_gone(3, '{"credit_check": "0.1.0", "value_scoring": "0.1.0"}') == (
        "run 3 was made with plugin credit_check 0.1.0, which is blocked by CRM_RULES_BLOCK_PLUGINS now: "
        "unset CRM_RULES_BLOCK_PLUGINS or take it out of the list to explain the run")
    assert plugins_gone(3, '{"churn_risk": "0.1.0", "hotel": "2.0", "credit_check": "0.1.0"}') == (
        "run 3 was made with plugins churn_risk 0.1.0, hotel 2.0, which are not installed now: install them again to "
        "explain the run; run 3 was made with plugin credit_check 0.1.0, which is blocked by CRM_RULES_BLOCK_PLUGINS "
        "now: unset CRM_RULES_BLOCK_PLUGINS or take it out of the list to explain the run")
    assert plugins_gone(3, '{"value_scoring": "0.1.0"}') is None and plugins_gone(3, None) is None


# --- params ------------------------------------------------------------------------------------

class DescribedParams:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: SqlOutputs([{"": Column("number", "1")}]), {
            "type": "object", "required": ["nights", "spend", "rate"],
            "properties": {"nights": {"type": "string", "description": "Metric: nights stayed in the last 12 months."},
                           "spend": {"type": "string"}, "rate": {"type": "number", "maximum": 1}}})


def test_a_missing_required_param_is_reported_with_its_description(tmp_path, with_plugin):
    # the params of a plugin are documented in its schema only: the message is where a policy author reads it
    from crm_rules.engine.errors import PolicyError

    with_plugin(DescribedParams())
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: bk, params: {rate: 2}}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    owner = " (params schema of scorer 'bk' of plugin 'broken')"
    assert [d.message for d in caught.value.diagnostics] == [
        "missing required key 'nights' (Metric: nights stayed in the last 12 months.)" + owner,
        "missing required key 'spend'" + owner,  # no description to give
        "2 is greater than the maximum of 1" + owner]


class OwnParams:
    """A third-party plugin with a params schema of each kind of entry it can register."""

    SCHEMA = {"type": "object", "additionalProperties": False, "properties": {"rate": {"type": "number", "maximum": 1}}}

    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: SqlOutputs([{"": Column("number", "1")}]), self.SCHEMA)

    @hookimpl
    def crm_rules_register_credit_checks(self, register):
        register("bk_credit", lambda ctx, params: SqlOutputs([{"": Column("number", "1")}]), self.SCHEMA)

    @hookimpl
    def crm_rules_register_actions(self, register):
        register("bk_act", lambda ctx, params: SqlActions([]), self.SCHEMA)


def test_params_that_break_a_plugins_schema_name_the_plugin_and_its_entry(tmp_path, with_plugin, cli):
    # the message named the place and the rule, not whose rule it was: a policy author could not tell which
    # plugin's documentation to read, nor whom to ask when its rules seemed wrong
    with_plugin(OwnParams())
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: bk, params: {rate: 2}}\n"
                      "credit:\n  c: {use: bk_credit, params: {ratez: 1}}\n"
                      "actions:\n  act: {use: bk_act, params: {rate: high}}\n" + TIERS, encoding="utf-8")
    result = cli("validate", policy)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{policy}:4:33: scores.bkv.params.rate: 2 is greater than the maximum of 1 "
        "(params schema of scorer 'bk' of plugin 'broken')",
        f"{policy}:6:32: credit.c.params.ratez: unknown key 'ratez'; did you mean 'rate'? "
        "(params schema of credit check 'bk_credit' of plugin 'broken')",
        f"{policy}:8:37: actions.act.params.rate: expected number, got text \"high\" "
        "(params schema of action 'bk_act' of plugin 'broken')",
        "error: 3 problems in the policy"]


# --- plans and functions -----------------------------------------------------------------------

def _scorer(plan):
    class Plugin:
        @hookimpl
        def crm_rules_register_scorers(self, register):
            register("bk", lambda ctx, params: plan(ctx), {"type": "object"})

    return Plugin()


def _actions(*actions):
    return _action_plan(lambda ctx: SqlActions(list(actions)))


def _action_plan(plan):
    class Plugin:
        @hookimpl
        def crm_rules_register_actions(self, register):
            register("bk_act", lambda ctx, params: plan(ctx), {"type": "object"})

    return Plugin()


def _no_outputs(rows):
    return [{} for _ in rows]


@pytest.mark.parametrize("plugin, section, message", [
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "t.revenue_12m +* 2 FROM")}])), "scores",
     "output '': near \"*\": syntax error (SQL: t.revenue_12m +* 2 FROM)"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", ctx.col("nosuch"))}])), "scores",
     "output '': no such column: t.bkv_nosuch"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", None)}])), "scores", "output '': expected SQL text, got None"),
    # a function of another SQL dialect: what SQLite writes for it
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "greatest(t.revenue_12m, 0)")}])), "scores",
     "output '': no such function: greatest: SQLite has no greatest(); write max(a, b, ...)"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "nvl(t.revenue_12m, 0)")}])), "scores",
     "output '': no such function: nvl: SQLite has no nvl(); write coalesce(a, b)"),
    (_scorer(lambda ctx: SqlOutputs([{"bad suffix!": Column("number", "1")}])), "scores",
     "output suffix 'bad suffix!' is not a name"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "1")}, {"": Column("number", "2")}])), "scores",
     "output '' is computed twice"),
    (_scorer(lambda ctx: SqlOutputs([])), "scores", "SqlOutputs.steps must be a non-empty list"),
    # one step given without its list: "must be a non-empty list of non-empty dicts" did not say to wrap it
    (_scorer(lambda ctx: SqlOutputs({"": Column("number", "1")})), "scores",
     "SqlOutputs.steps is one {suffix: Column} dict, but it is a list of steps: SqlOutputs([{...}]) for one step"),
    # the types Python and SQL call them, and the SQL given first
    (_scorer(lambda ctx: SqlOutputs([{"": Column("float", "1.5")}])), "scores",
     "output '' has unknown type 'float' (types: number, text, date, bool); write 'number'"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("t.revenue_12m * 2")}])), "scores",
     "output '' has unknown type 't.revenue_12m * 2' (types: number, text, date, bool): Column takes the type first, "
     "then the SQL, Column('number', sql)"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "1", label=42)}])), "scores",
     "output '' has label=42: a label is text, shown to policy authors"),
    # SQLite said 'near "FROM": syntax error', the text the check wraps around the plugin's SQL
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "round(t.revenue_12m * (1 + 0.5), 2")}])), "scores",
     "output '': its parentheses do not pair up: 2 '(' and 1 ')' (a ')' is missing) (SQL: round(t.revenue_12m"),
    (_actions(Action("a1", "t.revenue_12m > 0)", "churn", "'r'")), "actions",
     "action 'a1': when: its parentheses do not pair up: 0 '(' and 1 ')' (a '(' is missing) (SQL: t.revenue_12m > 0))"),
    # the summary has a line per value: a score would make one per customer
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "t.revenue_12m", summarize=True)}])), "scores",
     "output '' is a number with summarize=True, but the summary counts customers per value: summarize a text or bool"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("text", "'a'", summarize=True, values="AAA")}])), "scores",
     "output '' has values='AAA': give the values as a tuple of texts, e.g. ('AAA', 'AA')"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("text", "'a'", values=("a", "b"))}])), "scores",
     "output '' has values but not summarize=True: the values order the summary's counts"),
    (_actions(Action("a1", "1", "bogus", "'r'")), "actions", "unknown category 'bogus'"),
    (_actions(Action("a1", "1", "churn", "'r'", priority=0)), "actions", "priority must be a whole number from 1"),
    (_actions(Action("bad name; drop", "1", "churn", "'r'")), "actions", "action name 'bad name; drop' is not a name"),
    (_actions(Action("a1", "1", "churn", "'r'", details={"x": {1, 2}})), "actions", "details are not JSON"),
    (_actions(Action("a1", 't."nope" > 1', "churn", "'r'")), "actions", "when: no such column: t.nope"),
    # an aggregate without OVER makes one row of all customers: one would get the value, the others NULL
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "t.revenue_12m / AVG(t.revenue_12m)")}])), "scores",
     "output '': uses an aggregate function (AVG) without OVER (...), which makes one row of all customers"),
    (_scorer(lambda ctx: SqlOutputs([{"_s": Column("number", "t.revenue_12m")}, {"": Column("number", f"sum({ctx.col('_s')})")}])),
     "scores", "output '': uses an aggregate function (sum) without OVER (...)"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "1")}], error="max(t.revenue_12m)")), "scores",
     "error: uses an aggregate function (max) without OVER (...)"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "avg(avg(t.revenue_12m))")}])), "scores",
     "output '': misuse of aggregate function avg()"),
    (_actions(Action("a1", "1", "churn", "group_concat(t._cname)")), "actions",
     "action 'a1': reason: uses an aggregate function (group_concat) without OVER (...)"),
    # a condition is computed where it runs, in a WHERE clause: no aggregate, no window function
    (_actions(Action("a1", "t.revenue_12m > avg(t.revenue_12m)", "churn", "'r'")), "actions",
     "action 'a1': when: misuse of aggregate"),
    (_actions(Action("a1", "rank() OVER (ORDER BY t.revenue_12m DESC) <= 10", "churn", "'r'")), "actions",
     "action 'a1': when: misuse of window function rank()"),
    # a batch's input is a column of the policy, or the first query of the run fails naming no plugin
    (_scorer(lambda ctx: BatchOutputs(["revenue_12mm"], {"": Column("number")}, _no_outputs)), "scores",
     "input 'revenue_12mm' is no metric, attribute or earlier output; did you mean 'revenue_12m'?"),
    (_scorer(lambda ctx: BatchOutputs(["stage"], {"": Column("number")}, _no_outputs)), "scores",
     "input 'stage' is no metric, attribute or earlier output; scorers and credit checks run before tiers, sub-grades, "
     "stages and service levels are graded, so only action generators can read the stage"),
    (_action_plan(lambda ctx: BatchActions(["tierr"], _no_outputs)), "actions",
     "input 'tierr' is no metric, attribute or earlier output; did you mean 'tier'?"),
    # the grades exist when actions run, not when scores do
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", 't."_tier" = \'A\'')}])), "scores",
     "output '': no such column: t._tier"),
    (_scorer(lambda ctx: SqlOutputs([{"": Column("text", 't."tier"')}])), "scores",
     "output '': no such column: t.tier (SQL: t.\"tier\"); scorers and credit checks run before tiers, sub-grades, "
     "stages and service levels are graded, so only action generators can read the tier"),
    # an output of a later step (or of the same step): SQLite's "no such column" said nothing of steps
    (_scorer(lambda ctx: SqlOutputs([{"raw": Column("number", 't."bkv_scaled" * 2')},
                                     {"scaled": Column("number", "t.revenue_12m / 10")}])), "scores",
     "; 'bkv_scaled' is an output of step 2 (this is step 1): a step reads only the outputs of the steps before it, "
     "so compute it in an earlier step"),
    (_scorer(lambda ctx: SqlOutputs([{"scaled": Column("number", "t.revenue_12m / 10"),
                                      "": Column("number", "t.bkv_scaled + 1")}])), "scores",
     "'bkv_scaled' is an output of the same step"),
    # a column written into the plugin's SQL, which the plugin's own test policy had: "no such column" and the
    # hint to upgrade the plugin did not say that names come from the policy, through the params
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "t.seats_used * 1.0 / t.seats_bought")}])), "scores",
     "output '': no such column: t.seats_used (SQL: t.seats_used * 1.0 / t.seats_bought); this policy has no metric, "
     "attribute or earlier output 'seats_used'; a plugin takes names from its params, ctx.ref(params[key], key), "
     "rather than writing them into its SQL"),
    (_actions(Action("a1", "t.revenue_12 > 0", "churn", "'r'")), "actions",
     "no such column: t.revenue_12 (SQL: t.revenue_12 > 0); this policy has no metric, attribute or earlier output "
     "'revenue_12'; did you mean 'revenue_12m'?; a plugin takes names from its params"),
    # an action generator can, but not under that column name
    (_actions(Action("a1", 't."stage" = \'lost\'', "churn", "'r'")), "actions",
     "action 'a1': when: no such column: t.stage (SQL: t.\"stage\" = 'lost'); the customer's stage is what "
     "ctx.ref('stage', where, ('text',)) gives"),
])
def test_a_plan_mistake_is_found_when_the_policy_compiles(tmp_path, with_plugin, plugin, section, message):
    with_plugin(plugin)
    entry = "bkv: {use: bk}" if section == "scores" else "act: {use: bk_act}"
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + f"{section}:\n  {entry}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PluginError) as caught:
        load_policy(policy)
    assert "of plugin 'broken' (in " in str(caught.value) and "returned an invalid plan" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize("plugin, section, message, hint", [
    # the guide says to return None after ctx.error: without one, the message named only 'NoneType'
    (_scorer(lambda ctx: None), "scores",
     "scorer 'bk' of plugin 'broken' (in scores.bkv) returned None without reporting a problem, expected SqlOutputs "
     "or BatchOutputs", "this is a bug in the plugin: return SqlOutputs or BatchOutputs, or report the problem in the "
                        "params with ctx.error(where, message) and then return None"),
    (_action_plan(lambda ctx: [Action("a1", "1", "churn", "'r'")]), "actions",
     "action 'bk_act' of plugin 'broken' (in actions.act) returned list [Action(action='a1', when='1', "
     "category='churn', reason=\"'r'\", priority=3, du...",
     "this is a bug in the plugin: return SqlActions or BatchActions (from crm_rules.engine.plugin_api), "
     "e.g. SqlActions(the list)"),
])
def test_a_plan_of_the_wrong_type_names_the_entry_and_the_fix(tmp_path, with_plugin, plugin, section, message, hint):
    with_plugin(plugin)
    entry = "bkv: {use: bk}" if section == "scores" else "act: {use: bk_act}"
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + f"{section}:\n  {entry}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PluginError) as caught:
        load_policy(policy)
    assert caught.value.message.startswith(message)
    assert caught.value.hint == hint


@pytest.mark.parametrize("plugin, section, said", [
    # 'NoneType' object is not iterable, for every customer
    (_scorer(lambda ctx: BatchOutputs(["revenue_12m"], {"": Column("number")}, lambda rows: None)), "scores",
     "TypeError: compute returned None, expected a list with one result per row"),
    # a dict was read as the list of its keys: "an action must be a dict ..., got 'action'"
    (_action_plan(lambda ctx: BatchActions(["tier"], lambda rows: [{"action": "call"} for _ in rows])), "actions",
     "TypeError: compute returned a dict for the row, expected a list of action dicts ([] for none), as "
     "[{'action': 'call'}]"),
])
def test_a_batch_result_of_the_wrong_shape_says_what_to_return(tmp_path, with_plugin, plugin, section, said):
    with_plugin(plugin)
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东")], orders=[("a", "2026-06-01", 500)])
    entry = "bkv: {use: bk}" if section == "scores" else "act: {use: bk_act}"
    with pytest.raises(RunError) as caught:
        run(tmp_path, HEAD + f"{section}:\n  {entry}\n" + TIERS, db)
    assert f"customer 'a': {said}" in str(caught.value)


def _divides_by_zero(rows):
    return [{"": 1 // 0} for r in rows]  # raises for every row


def _divides_by_revenue(rows):
    return [{"": 1000 / r["revenue_12m"]} for r in rows]  # raises where revenue is 0


@pytest.mark.parametrize("compute, said, where, hint", [
    # "fix the data or the plugin, or set on_error: skip": every customer failing is no data problem, and skip would
    # have blanked everyone's output
    (_divides_by_zero, "plugin 'broken' failed in scores.bkv for every customer (2): customers 'a', 'b': "
                       "ZeroDivisionError: integer division or modulo by zero; raised at ", "{# raises for every row}",
     "every customer failing is a bug in the plugin: fix or upgrade it (`crm-rules plugins` shows its version and the "
     "package it comes from)"),
    (lambda rows: [{"": "5"} for _ in rows], "plugin 'broken' failed in scores.bkv for every customer (2): customers "
     "'a', 'b': ValueError: output '': '5' is text (str), not a number: return an int or a float; its compute is at ",
     "{def test_a_batch_plugin_failing_for_every_customer_is_told_as_its_bug}", "every customer failing is a bug"),
    (lambda rows: [{"": 1} for _ in rows[1:]], "customers 'a', 'b': ValueError: compute returned 0 results for 1 "
     "row(s): it returns one result per row, in the order of the rows; its compute is at ", None, "every customer"),
    # one customer's data: the usual message, with the line that raised for the plugin's author
    (_divides_by_revenue, "plugin 'broken' failed in scores.bkv for 1 customer(s): customer 'b': ZeroDivisionError: "
                          "division by zero; raised at ", "{# raises where revenue is 0}",
     "fix the data or the plugin, or set `on_error: skip` on scores.bkv to record the errors and go on"),
])
def test_a_batch_plugin_failing_for_every_customer_is_told_as_its_bug(tmp_path, with_plugin, compute, said, where, hint):
    with_plugin(_scorer(lambda ctx: BatchOutputs(["revenue_12m"], {"": Column("number")}, compute)))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华东")], orders=[("a", "2026-06-01", 500)])
    with pytest.raises(RunError) as caught:
        run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, db)
    assert said in caught.value.message
    if where and where.startswith("{#"):
        assert caught.value.message.endswith(_line_of(where[1:-1]))
    assert caught.value.hint.startswith(hint)


class WindowAndGrades:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: SqlOutputs([{"": Column("number", "t.revenue_12m / AVG(t.revenue_12m) OVER ()")}]),
                 {"type": "object"})

    @hookimpl
    def crm_rules_register_actions(self, register):
        register("bk_act", lambda ctx, params: BatchActions(["tier", "bkv"], _no_outputs), {"type": "object"})


def test_window_functions_and_the_grades_of_actions_are_no_plan_mistake(tmp_path, with_plugin):
    with_plugin(WindowAndGrades())
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华东")],
                 orders=[("a", "2026-06-01", 500), ("b", "2026-06-01", 1500)])
    result = run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\nactions:\n  act: {use: bk_act}\n" + TIERS, db)
    assert {cid: metrics["bkv"] for cid, (*_, metrics) in result.items()} == {"a": 0.5, "b": 1.5}


@pytest.mark.parametrize("due", ["not-a-date", "2026-02-30", "2026-07-01 09:00"])
def test_a_due_date_that_is_no_date_fails_the_run_naming_the_plugin(tmp_path, with_plugin, due):
    # an impossible day is no date either, as on the batch path and in the sources' row checks
    with_plugin(_actions(Action("a1", "1", "churn", "'r'", due=f"'{due}'")))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东")], orders=[("a", "2026-06-01", 500)])
    with pytest.raises(RunError, match=f"plugin 'broken' failed in actions.act for 1 customer.*'{due}' is not a YYYY-MM-DD"):
        run(tmp_path, HEAD + "actions:\n  act: {use: bk_act}\n" + TIERS, db)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'crm_actions'").fetchone()[0] == 0 or \
        conn.execute("SELECT count(*) FROM crm_actions").fetchone()[0] == 0


@pytest.mark.parametrize("type_, sql, said", [
    ("number", "CASE WHEN t.revenue_12m > 1000 THEN 'n/a' ELSE t.revenue_12m END", "'n/a' is not a number"),
    ("text", "CASE WHEN t.revenue_12m > 1000 THEN 7 ELSE 'low' END", "7 is not a text"),
    ("date", "CASE WHEN t.revenue_12m > 1000 THEN '2026-02-30' ELSE '2026-06-30' END", "'2026-02-30' is not a date"),
    ("bool", "CASE WHEN t.revenue_12m > 1000 THEN 2 ELSE 1 END", "2 is not a bool"),
])
def test_a_sql_output_of_another_type_than_declared_fails_the_run_naming_the_customer(tmp_path, with_plugin, type_, sql, said):
    # 'n/a' declared a number compared greater than every number: `bkv >= 80` put every customer in tier A
    with_plugin(_scorer(lambda ctx: SqlOutputs([{"": Column(type_, sql)}])))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华东")],
                 orders=[("a", "2026-06-01", 500), ("b", "2026-06-01", 1500)])
    with pytest.raises(RunError, match=f"plugin 'broken' failed in scores.bkv for 1 customer\\(s\\): customer 'b': "
                                       f"output '': {said}"):
        run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, db)


def test_sql_outputs_of_another_type_are_found_in_every_layer_of_the_entry(tmp_path, with_plugin):
    # a later step with a window function is a layer of its own: each layer's table is checked
    with_plugin(_scorer(lambda ctx: SqlOutputs([
        {"raw": Column("number", "CASE WHEN t.revenue_12m > 1000 THEN 'n/a' ELSE t.revenue_12m END")},
        {"": Column("text", "CASE WHEN RANK() OVER (ORDER BY t.revenue_12m) = 1 THEN 1 ELSE 'ok' END")}])))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华东")],
                 orders=[("a", "2026-06-01", 500), ("b", "2026-06-01", 1500)])
    with pytest.raises(RunError) as caught:
        run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, db)
    assert "for 2 customer(s): customer 'a': output '': 1 is not a text; customer 'b': output 'raw': 'n/a' is not a " \
           "number" in str(caught.value)


def test_customers_failing_with_one_message_are_listed_once_with_it(tmp_path, with_plugin, cli):
    # a bug in compute failed all 2,000 demo customers: the message was printed five times over, "(and 1995 more)"
    def compute(rows):
        return [{"": 1} if r["customer_id"] == "c3" else ValueError("priority must be 1 to 9, got 12") for r in rows]

    with_plugin(_scorer(lambda ctx: BatchOutputs(["revenue_12m"], {"": Column("number")}, compute)))
    ids = [f"c{i}" for i in range(1, 1009)]
    db = make_db(tmp_path / "s.db", [(c, c, "华东") for c in ids], orders=[(c, "2026-06-01", 10) for c in ids])
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, encoding="utf-8")
    result = cli("apply", "--db", db, "--policy", policy, "--as-of", "2026-06-30")
    assert result.exit_code == 1, result.output
    assert ("error: plugin 'broken' failed in scores.bkv for 1,007 customer(s): customers 'c1', 'c10', 'c100', "
            "'c1000', 'c1001': ValueError: priority must be 1 to 9, got 12 (and 1,002 more)") in " ".join(result.output.split())
    assert result.output.count("got 12") == 1


def test_a_sql_output_of_another_type_is_blanked_with_on_error_skip(tmp_path, with_plugin):
    with_plugin(_scorer(lambda ctx: SqlOutputs([{"": Column("number", "CASE WHEN t.revenue_12m > 1000 THEN 'n/a' "
                                                                      "ELSE t.revenue_12m END")}])))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华东")],
                 orders=[("a", "2026-06-01", 500), ("b", "2026-06-01", 1500)])
    result = run(tmp_path, HEAD + "scores:\n  bkv: {use: bk, on_error: skip}\n" + TIERS, db)
    assert {cid: metrics["bkv"] for cid, (*_, metrics) in result.items()} == {"a": 500, "b": None}


@pytest.mark.parametrize("type_, value, said", [
    ("date", dt.date(2026, 7, 1), "datetime.date(2026, 7, 1) is a Python date, not a 'YYYY-MM-DD' text: return value.isoformat()"),
    ("date", dt.datetime(2026, 7, 1, 9), "datetime.datetime(2026, 7, 1, 9, 0) is a Python datetime, not a 'YYYY-MM-DD' text: return value.date().isoformat()"),
    ("number", Decimal("1.5"), "Decimal('1.5') is a decimal.Decimal, not a number SQLite stores: return float(value) or int(value)"),
    ("bool", 1, "1 is not a bool: return True or False"),
    # a number formatted as text (str(x), f"{x:.2f}") said only "'500' is not a number"
    ("number", "500.00", "'500.00' is text (str), not a number: return an int or a float"),
])
def test_a_batch_output_of_a_python_type_gets_the_conversion(tmp_path, with_plugin, type_, value, said):
    with_plugin(_scorer(lambda ctx: BatchOutputs(["revenue_12m"], {"": Column(type_)}, lambda rows: [{"": value} for _ in rows])))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东")], orders=[("a", "2026-06-01", 500)])
    with pytest.raises(RunError) as caught:
        run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, db)
    assert f"customer 'a': ValueError: output '': {said}" in str(caught.value)


def _function(fn):
    class Plugin:
        @hookimpl
        def crm_rules_register_functions(self, register):
            register("bk_plus1", fn, {"args": ["number"], "returns": "number"})

    return Plugin()


def _raise(x):
    raise ValueError("func boom")


@pytest.mark.parametrize("fn, message", [
    (_raise, "function bk_plus1() of plugin 'broken' failed: ValueError: func boom"),
    (lambda x: f"{x} +* 1", "function bk_plus1() of plugin 'broken' returned invalid SQL: near \"*\": syntax error"),
    (lambda x: 42, "function bk_plus1() of plugin 'broken' returned invalid SQL: expected SQL text, got 42"),
    # a function's SQL reads its arguments only: what else it names fails the run, or (an aggregate) grades everyone alike
    (lambda x: f't."revenue_12m" * 0 + {x}', "function bk_plus1() of plugin 'broken' returned invalid SQL: "
                                             "no such column: t.revenue_12m"),
    (lambda x: f"{x} * :rate", "function bk_plus1() of plugin 'broken' returned invalid SQL: "
                               "You did not supply a value for binding parameter :rate"),
    (lambda x: f"(SELECT count(*) FROM orders) + {x}", "function bk_plus1() of plugin 'broken' returned invalid SQL: "
                                                       "no such table: orders"),
    (lambda x: f"total({x})", "function bk_plus1() of plugin 'broken' returned invalid SQL: uses an aggregate function "
                              "(total) without OVER (...)"),
])
def test_a_function_mistake_names_the_plugin(tmp_path, with_plugin, fn, message):
    with_plugin(_function(fn))
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "  p1: {expr: 'bk_plus1(revenue_12m)'}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PluginError) as caught:
        load_policy(policy)
    assert message in _unplaced(str(caught.value))
    # which expression called it: the policy may call the function in many places
    assert caught.value.message.startswith(f"{policy}:3:14: metrics.p1.expr: function bk_plus1() of plugin 'broken' ")


@pytest.mark.parametrize("plugin, expr, message", [
    (_scorer(lambda ctx: SqlOutputs([])), None,
     "error: scorer 'bk' of plugin 'broken' (in scores.bkv) returned an invalid plan: SqlOutputs.steps must be a "
     "non-empty list"),
    (_function(_raise), "bk_plus1(revenue_12m)", ": metrics.p1.expr: function bk_plus1() of plugin 'broken' failed: "
                                                 "ValueError: func boom"),
    (_function(lambda x: f"total({x})"), "bk_plus1(revenue_12m)",
     ": metrics.p1.expr: function bk_plus1() of plugin 'broken' returned invalid SQL: uses an aggregate function (total)"),
])
def test_a_plugins_bug_sends_the_user_to_its_version_and_package(tmp_path, with_plugin, cli, plugin, expr, message):
    # the hint said "(see the plugin author guide)": a file of the repository, which an installed crm-rules lacks;
    # who meets the bug needs which version of which package to upgrade or report
    with_plugin(plugin)
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + (f"  p1: {{expr: '{expr}'}}\n" if expr else "scores:\n  bkv: {use: bk}\n") + TIERS,
                      encoding="utf-8")
    result = cli("validate", policy)
    assert result.exit_code == 1
    assert message in _unplaced(result.stderr)
    assert result.stderr.splitlines()[-1] == ("  hint: this is a bug in the plugin: fix or upgrade it (`crm-rules plugins` "
                                              "shows its version and the package it comes from)")


def test_a_plugin_used_only_through_a_function_is_recorded_with_the_run(tmp_path, with_plugin):
    with_plugin(_function(lambda x: f"{x} + 1"))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东")], orders=[("a", "2026-06-01", 500)])
    run(tmp_path, HEAD + "  p1: {expr: 'bk_plus1(revenue_12m)'}\n" + TIERS, db)
    plugins = sqlite3.connect(db).execute("SELECT plugins FROM crm_runs").fetchone()[0]
    assert '"broken"' in plugins


def test_explaining_a_run_whose_plugin_is_gone_names_the_plugin(tmp_path):
    from crm_rules.engine.errors import PolicyError
    from crm_rules.engine.explain import load_policy_of_run

    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东")], orders=[("a", "2026-06-01", 500)])
    policy = tmp_path / "policy.yaml"
    pm, _ = get_plugin_manager()
    pm.register(_scorer(lambda ctx: SqlOutputs([{"": Column("number", "1")}])), name="broken")
    get_registry.cache_clear()
    try:
        run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, db)  # run 1, made with plugin 'broken'
    finally:
        pm.unregister(name="broken")
        get_registry.cache_clear()
    with pytest.raises(PolicyError, match="unknown scorer 'bk'") as caught:
        load_policy_of_run(policy, db, 1)
    assert caught.value.hint.startswith("run 1 was made with plugin broken ")
    assert "install it again to explain the run" in caught.value.hint
    with pytest.raises(PolicyError) as plain:
        load_policy_of_run(policy, db, None)  # no run named: the policy's own errors only
    assert plain.value.hint is None


def test_explaining_a_run_by_its_id_alone_names_the_plugin_it_needs_back(tmp_path, cli):
    # with the run's stored policy (no --policy), the message said the policy "does not pass this version's checks"
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东")], orders=[("a", "2026-06-01", 500)])
    pm, _ = get_plugin_manager()
    pm.register(_scorer(lambda ctx: SqlOutputs([{"": Column("number", "1")}])), name="broken")
    get_registry.cache_clear()
    try:
        run(tmp_path, HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, db)  # run 1, made with plugin 'broken'
    finally:
        pm.unregister(name="broken")
        get_registry.cache_clear()
    result = cli("explain", "a", "--db", db, "--run", "1")
    assert result.exit_code == 2
    assert "run 1 cannot be explained: the policy it stored (sha256 " in result.output
    assert ") needs a plugin that is not loaded (unknown scorer 'bk' (installed: " in result.output
    assert "hint: run 1 was made with plugin broken " in result.output
    assert "which is not installed now: install it again to explain the run" in result.output


class FailsWhileCompiling:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: {}["no_such_key"], {"type": "object"})


def test_validate_with_debug_shows_the_traceback_of_a_plugin_that_failed(tmp_path, with_plugin, cli):
    # the hint says "run with --debug for the traceback": validate reports and goes on, so it prints it
    with_plugin(FailsWhileCompiling())
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, encoding="utf-8")
    quiet = cli("validate", policy)
    assert quiet.exit_code != 0 and "Traceback" not in quiet.output
    assert "failed while compiling scores.bkv" in quiet.output and "--debug" in quiet.output
    loud = cli("--debug", "validate", policy, policy)
    assert loud.exit_code == quiet.exit_code
    assert loud.output.count("Traceback (most recent call last)") == 2 and "KeyError: 'no_such_key'" in loud.output


def test_a_plugin_failing_for_every_customer_under_on_error_skip_is_told_as_a_bug(tmp_path, with_plugin):
    # the note gave a count ("2 plugin error(s) recorded"), and a plugin broken for everyone passed for bad data
    from crm_rules.engine.runner import apply_policy

    def broken(rows):
        raise KeyError("revenue")
    with_plugin(_scorer(lambda ctx: BatchOutputs(["revenue_12m"], {"": Column("number")}, broken)))
    db = make_db(tmp_path / "s.db", [("a", "Alpha", "华东"), ("b", "Beta", "华东")],
                 orders=[("a", "2026-06-01", 500), ("b", "2026-06-01", 1500)])
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: bk, on_error: skip}\n" + TIERS, encoding="utf-8")
    notes = apply_policy(db, load_policy(policy), "2026-06-30").notes
    assert notes == ["plugin 'broken' failed in scores.bkv for every customer (2; on_error: skip left their outputs empty), "
                     "e.g. KeyError: 'revenue': that is the plugin's bug or its params', not the data's; see crm_errors"]


# --- where in the plugin's source ------------------------------------------------------------------

def _line_of(text: str) -> str:
    """``tests/test_plugin_mistakes.py:N`` of the line of this file that starts or ends with ``text`` (once)."""
    lines = [i for i, line in enumerate(Path(__file__).read_text(encoding="utf-8").splitlines(), 1)
             if line.strip().startswith(text) or line.rstrip().endswith(text)]
    assert len(lines) == 1, (text, lines)
    return shown(__file__, lines[0])


class RegistersTwice:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk_twice", lambda ctx, params: None, {"type": "object"})  # first bk_twice
        register("bk_twice", lambda ctx, params: None, {"type": "object"})  # second bk_twice


class BadSchemaAtItsLine:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", lambda ctx, params: None, {"type": "obj"})  # the line of the bad schema


class FailsInItsHook:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        limits = {"low": 1}
        register("bk", lambda ctx, params: None, {"type": "object", "maximum": limits["high"]})  # raises in the hook


def _fails_while_compiling(ctx, params):
    return params["weights"]  # raises while compiling


class FailsWhileCompilingAtItsLine:
    @hookimpl
    def crm_rules_register_scorers(self, register):
        register("bk", _fails_while_compiling, {"type": "object"})


REGISTERS_TWICE = RegistersTwice()


def test_a_name_one_plugin_registers_twice_is_its_own_mistake_with_both_lines():
    # it said "registered twice: by plugin 'broken' and by plugin 'broken'", with the hint to rename it after the
    # plugin, or to uninstall "one of the two" plugins
    with pytest.raises(PluginError) as caught:
        build_registry(_pm_with(RegistersTwice()))
    assert caught.value.message == (f"plugin 'broken' registers scorer 'bk_twice' twice ({_line_of('# first bk_twice')} "
                                    f"and {_line_of('# second bk_twice')})")
    assert caught.value.hint == "call register() once for 'bk_twice', or give the second scorer another name"


@pytest.mark.parametrize("plugin, said", [
    (BadSchemaAtItsLine(), "is not a valid JSON Schema: 'obj' is not a JSON Schema type; did you mean 'object'? "
                           "(types: array, boolean, integer, null, number, object, string) (at type) (register() at "
                           "{# the line of the bad schema})"),
    (FailsInItsHook(), "plugin 'broken' failed in its hook crm_rules_register_scorers at {# raises in the hook}: "
                       "KeyError: 'high'"),
    (RaisingHook(), "plugin 'broken' failed in its hook crm_rules_register_scorers at {raise KeyError(\"oops\")}: "),
    (NoRegisterArgument(), "plugin 'broken' implements crm_rules_register_scorers ({class NoRegisterArgument}) without"),
])
def test_a_registration_mistake_names_the_line_of_the_plugin_source(plugin, said):
    # the messages named the plugin and the hook, but not where in the plugin's files to look
    place = re.search(r"\{(.+?)\}", said).group(1)
    line = _line_of(place)
    if place.startswith("class "):  # a method is defined at its decorator, the line after the class
        path, number = line.rsplit(":", 1)
        line = f"{path}:{int(number) + 1}"
    with pytest.raises(PluginError) as caught:
        build_registry(_pm_with(plugin))
    assert said.replace("{" + place + "}", line) in caught.value.message


@pytest.mark.parametrize("ep, said", [
    ("TYPO_HOOK", "plugin 'broken' implements an unknown hook 'crm_rules_register_scorer' ({class TypoHook});"),
    ("WRONG_ARGUMENT", "crm_rules_register_scorers(reg) ({class WrongArgument}) asks for 'reg'"),
    ("UNDECORATED", "defines crm_rules_register_scorers ({class Undecorated}) without @hookimpl"),
])
def test_a_hook_declared_wrongly_names_the_line_of_its_def(entry_points, ep, said):
    place = re.search(r"\{(.+?)\}", said).group(1)
    path, number = _line_of(place + ":").rsplit(":", 1)
    entry_points(_ep("broken", f"test_plugin_mistakes:{ep}"))
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    assert said.replace("{" + place + "}", f"{path}:{int(number) + 1}") in caught.value.message


@pytest.mark.parametrize("plugin, section, place", [
    (_scorer(lambda ctx: SqlOutputs([{"": Column("number", "t.nope")}])),  # the bad Column
     "scores", "Column made at {# the bad Column}"),
    (_actions(Action("a1", "t.nope > 1", "churn", "'r'")),  # the bad Action
     "actions", "Action made at {# the bad Action}"),
])
def test_a_plan_mistake_names_the_line_that_made_the_column_or_action(tmp_path, with_plugin, plugin, section, place):
    # the plan is checked when the policy compiles: the message named the plugin and entry, not where in its files
    with_plugin(plugin)
    entry = "bkv: {use: bk}" if section == "scores" else "act: {use: bk_act}"
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + f"{section}:\n  {entry}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PluginError) as caught:
        load_policy(policy)
    marker = re.search(r"\{(.+?)\}", place).group(1)
    assert caught.value.message.endswith(f"({place.replace('{' + marker + '}', _line_of(marker))})")


def test_a_plugin_failing_while_a_policy_compiles_names_its_line(tmp_path, with_plugin, cli):
    with_plugin(FailsWhileCompilingAtItsLine())
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  bkv: {use: bk}\n" + TIERS, encoding="utf-8")
    result = cli("validate", policy)
    assert result.exit_code == 1
    assert (f"error: plugin 'broken' failed while compiling scores.bkv (scorer 'bk') at "
            f"{_line_of('# raises while compiling')}: KeyError: 'weights'") in result.output


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """Write a package of plugin modules ({module: source}) on sys.path; its name is unique to the test."""
    import sys

    made = []

    def write(files: dict[str, str]) -> str:
        name = f"crm_rules_bk_{len(made)}_{abs(hash(str(tmp_path))) % 10**8}"
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        for module, source in files.items():
            (package / f"{module}.py").write_text(source, encoding="utf-8")
        made.append(name)
        return name

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the messages show the plugin's files relative to the working directory
    yield write
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in made):
            del sys.modules[name]


def _load_error(entry_points, value: str) -> PluginError:
    entry_points(_ep("broken", value))
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    return caught.value


def test_an_entry_point_naming_a_module_that_does_not_exist_says_so_and_to_reinstall(entry_points, plugin_package):
    # it said "failed to import: No module named 'x.plugins'" with "fix or uninstall it": nothing said that the
    # entry point was wrong, nor that an editable install keeps the entry point it was installed with
    package = plugin_package({"plugin": "from crm_rules.engine import hookimpl\n"})
    error = _load_error(entry_points, f"{package}.plugins")
    assert error.message == (f"plugin 'broken': its entry point names module '{package}.plugins', which does not "
                             f"exist; did you mean '{package}.plugin'?")
    assert error.hint.startswith("correct the entry point under [project.entry-points.crm_rules] in its package's "
                                 "pyproject.toml and install the package again (also an editable install: the entry "
                                 "points are read from what was installed)")


@pytest.mark.parametrize("source, said, hint", [
    ("import json\nimport crm_rules_no_such_dependency.api\n",
     "failed to import at {}:2: No module named 'crm_rules_no_such_dependency'",
     "install 'crm_rules_no_such_dependency' and list it in the dependencies of its package's pyproject.toml"),
    ("from . import helpers\n", "failed to import at {}:1: ImportError: cannot import name 'helpers'", "fix it, "),
    ("x = 1\ny = (\n", "failed to import at {}:2: SyntaxError: '(' was never closed", "fix it, "),
    ("SCHEMA = {}\nSCHEMA['x']['y'] = 1\n", "failed to import at {}:2: KeyError: 'x'", "fix it, "),
    # crm-rules' API imported from the wrong place: "fix it", or "install 'crm_rules'" for crm-rules itself
    ("from crm_rules import hookimpl\n", "failed to import at {}:1: cannot import name 'hookimpl' from 'crm_rules'",
     "import it from crm_rules.engine: `from crm_rules.engine import hookimpl`, or uninstall it"),
    ("from crm_rules.engine.plugin_api import SqlOutput\n",
     "failed to import at {}:1: cannot import name 'SqlOutput' from 'crm_rules.engine.plugin_api'; did you mean "
     "'SqlOutputs'?", "`from crm_rules.engine.plugin_api import SqlOutputs`, or uninstall it"),
    ("from crm_rules.engine.plugin_apis import Column\n",
     "failed to import at {}:1: No module named 'crm_rules.engine.plugin_apis'; did you mean "
     "'crm_rules.engine.plugin_api'?", "crm-rules has no such module; the modules plugins import from are "
                                       "crm_rules.engine, crm_rules.engine.plugin_api, "),
    ("from crm_rule.engine import hookimpl\n",
     "failed to import at {}:1: No module named 'crm_rule'; did you mean 'crm_rules'?",
     "import crm-rules' API from the package crm_rules (e.g. `from crm_rules.engine import hookimpl`)"),
])
def test_a_plugin_that_fails_to_import_names_the_line_and_what_to_do(entry_points, plugin_package, source, said, hint):
    package = plugin_package({"plugin": source})
    error = _load_error(entry_points, f"{package}.plugin")
    assert error.message.startswith(f"plugin 'broken' ({package}.plugin) " + said.format(f"{package}/plugin.py"))
    assert error.hint.startswith(hint) and error.hint.endswith("or block it with CRM_RULES_BLOCK_PLUGINS=broken")


def test_a_plugin_that_cannot_be_loaded_is_not_reported_as_a_problem_of_the_policy(entry_points, cli, tmp_path):
    # validate said "p.yaml:3:18: metrics.days_left.expr: plugin 'typo' implements an unknown hook ...": the first
    # expression of the policy happened to load the plugins
    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"), _ep("typo", "test_plugin_mistakes:TYPO_HOOK"))
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "  days_left: {expr: \"days_between(as_of(), date('2026-12-31'))\"}\n" + TIERS,
                      encoding="utf-8")
    result = cli("validate", policy)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: plugin 'typo' implements an unknown hook 'crm_rules_register_scorer'")
    assert "p.yaml" not in result.stderr


def test_a_scorer_nothing_like_any_loaded_one_names_the_python_environment(tmp_path):
    # a plugin installed with the pip of another Python: the message listed the installed scorers only
    import sys

    from crm_rules.engine.errors import PolicyError

    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + "scores:\n  health: {use: saas_health}\n" + TIERS, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert (f"see `crm-rules plugins`, which lists the plugins installed in {sys.prefix})") in str(caught.value)


def test_a_plugin_slow_to_import_is_named_by_plugins(entry_points, plugin_package, cli, monkeypatch):
    # a heavy import at the top of a plugin's module slowed every command, and nothing said which plugin it was
    package = plugin_package({"plugin": "import time\ntime.sleep(0.05)\nfrom crm_rules.engine import hookimpl\n"})
    monkeypatch.setattr(plugin_manager, "SLOW_IMPORT_SECONDS", 0.04)
    entry_points(_ep("value_scoring", "crm_rules.plugins.value_scoring"), _ep("broken", f"{package}.plugin"))
    result = cli("plugins", ok=True)
    said = re.sub(r"took \d+\.\d s", "took N s", " ".join(result.output.split()))
    assert (f"note: plugin 'broken' took N s to import ({package}.plugin): every command that loads a policy waits "
            f"for it; import heavy libraries, and do slow work, inside the functions that need them rather than at the "
            f"top of the module") in said
    assert "plugin 'value_scoring' took" not in said
    listing = {p["name"]: p for p in json.loads(cli("plugins", "--json", ok=True).output)}
    assert listing["broken"]["import_seconds"] >= 0.05 and listing["value_scoring"]["import_seconds"] < 0.04
