"""The one plugin manager, and the registry of what plugins contribute.

Built-in plugins are entry points like any other: ``DEFAULT_PLUGINS`` lists
them in the entry-point format and they load through the same function as
the ``crm_rules`` entry points of installed packages, so the built-ins prove
the path third-party plugins take.  Environment variables restrict
(``CRM_RULES_LOAD_PLUGINS=a,b``; empty loads none) or block
(``CRM_RULES_BLOCK_PLUGINS=a,b``) plugins for tests and incident response.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

import jsonschema
import pluggy

from . import __version__, hookspecs, user_cache
from .errors import PluginError

ENTRY_POINT_GROUP = "crm_rules"
LOAD_ENV = "CRM_RULES_LOAD_PLUGINS"
BLOCK_ENV = "CRM_RULES_BLOCK_PLUGINS"

DEFAULT_PLUGINS: tuple[EntryPoint, ...] = (
    EntryPoint("value_scoring", "crm_rules.plugins.value_scoring", ENTRY_POINT_GROUP),
    EntryPoint("credit_check", "crm_rules.plugins.credit_check", ENTRY_POINT_GROUP),
    EntryPoint("retention", "crm_rules.plugins.retention", ENTRY_POINT_GROUP),
)

# hook name -> the kind of contribution its register callback adds
HOOK_KINDS = {
    "crm_rules_register_scorers": "scorer",
    "crm_rules_register_credit_checks": "credit_check",
    "crm_rules_register_actions": "action",
    "crm_rules_register_functions": "function",
}


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str  # "built-in" or the distribution name
    module: str


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _load(pm: pluggy.PluginManager, ep: EntryPoint, source: str, version: str, infos: dict[str, PluginInfo]) -> None:
    """The single path by which every plugin, built-in or installed, is registered."""
    if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
        return
    try:
        plugin = ep.load()
    except Exception as exc:  # a broken third-party package must not take the tool down silently
        raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}",
                          hint=f"fix or uninstall it, or block it with {BLOCK_ENV}={ep.name}") from exc
    pm.register(plugin, name=ep.name)
    infos[ep.name] = PluginInfo(ep.name, version, source, getattr(plugin, "__name__", ep.value))


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    pm = pluggy.PluginManager("crm_rules")
    pm.add_hookspecs(hookspecs)
    allowed = _env_names(LOAD_ENV)
    for name in _env_names(BLOCK_ENV) or ():
        pm.set_blocked(name)
    infos: dict[str, PluginInfo] = {}
    candidates = [(ep, "built-in", __version__) for ep in DEFAULT_PLUGINS]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        candidates.append((ep, dist.name if dist else "unknown", dist.version if dist else "unknown"))
    for ep, source, version in candidates:
        if allowed is None or ep.name in allowed:
            _load(pm, ep, source, version, infos)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}",
                          hint="check the hook names in the plugin author guide (README)") from None
    return pm, infos


@lru_cache(maxsize=1)
def get_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Loaded once per process."""
    return build_plugin_manager()


@dataclass
class Contribution:
    kind: str
    name: str
    fn: Callable[..., Any]
    schema: dict
    plugin: str


@dataclass
class Registry:
    """Everything plugins registered, by kind and name."""

    items: dict[tuple[str, str], Contribution] = field(default_factory=dict)
    hooks: dict[str, list[str]] = field(default_factory=dict)  # plugin -> hooks it implements

    def add(self, kind: str, plugin: str, name: Any, fn: Any, schema: Any) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}",
                              hint="names are identifiers: letters, digits and _")
        if not callable(fn):
            raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with a non-callable")
        if not isinstance(schema, dict):
            raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} without a schema dict")
        if kind == "function":
            args, returns = schema.get("args"), schema.get("returns")
            from .expr_types import TYPES

            if not (isinstance(args, list) and all(a in TYPES for a in args) and returns in TYPES):
                raise PluginError(f"plugin {plugin!r} registered function {name!r} with signature {schema!r}; "
                                  f"expected {{'args': [types], 'returns': type}} with types {', '.join(TYPES)}")
        else:
            problem = _schema_problem(schema)
            if problem is not None:
                raise PluginError(f"plugin {plugin!r}: the params schema of {kind} {name!r} is not a valid JSON Schema: {problem}")
        key = (kind, name)
        if key in self.items:
            first = self.items[key].plugin
            raise PluginError(f"{kind} {name!r} is registered twice: by plugin {first!r} and by plugin {plugin!r}",
                              hint=f"uninstall or block one of them ({BLOCK_ENV}=...)")
        self.items[key] = Contribution(kind, name, fn, schema, plugin)

    def get(self, kind: str, name: str) -> Contribution | None:
        return self.items.get((kind, name))

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.items if k == kind)

    def by_plugin(self, plugin: str) -> list[Contribution]:
        return [c for c in self.items.values() if c.plugin == plugin]


def _schema_problem(schema: dict) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (2020-12), or None.

    Checking against the meta-schema takes 5-60 ms a schema, in every process;
    a schema found valid is remembered in the user cache by its content.
    """
    try:
        text = json.dumps(schema, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = None  # not plain JSON: checked every time
    memo = None if text is None else f"valid-schema-{user_cache.content_key(jsonschema.Draft202012Validator.META_SCHEMA['$id'], text)}"
    if memo is not None and user_cache.read(memo) is not None:
        return None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    if memo is not None:
        user_cache.write(memo, b"")
    return None


def build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry()
    for hook_name, kind in HOOK_KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            registry.hooks.setdefault(impl.plugin_name, []).append(hook_name)

            def register(name, fn, schema, _plugin=impl.plugin_name, _kind=kind):
                registry.add(_kind, _plugin, name, fn, schema)

            impl.function(**{arg: register for arg in impl.argnames})
    return registry


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    pm, _ = get_plugin_manager()
    return build_registry(pm)


def reset_plugins() -> None:
    """Forget the loaded plugins (tests change the environment between cases)."""
    get_plugin_manager.cache_clear()
    get_registry.cache_clear()
