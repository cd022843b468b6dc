"""The one plugin manager, and the registry of what plugins contribute.

Built-in plugins are entry points like any other: ``DEFAULT_PLUGINS`` lists
them in the entry-point format and they load through the same function as
the ``crm_rules`` entry points of installed packages, so the built-ins prove
the path third-party plugins take.  Environment variables restrict
(``CRM_RULES_LOAD_PLUGINS=a,b``; empty loads none) or block
(``CRM_RULES_BLOCK_PLUGINS=a,b``) plugins for tests and incident response;
a name in either that is no installed plugin is an error, not ignored.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

import jsonschema
import pluggy
import referencing
import referencing.exceptions
from referencing.jsonschema import DRAFT202012

from . import __version__, hookimpl, hookspecs, user_cache
from .errors import PluginError
from .expr_types import FUNCTIONS, TYPES, did_you_mean, with_article
from .plugin_source import called_from, defined_at, is_built_in, module_of, raised_at

ENTRY_POINT_GROUP = "crm_rules"
LOAD_ENV = "CRM_RULES_LOAD_PLUGINS"
BLOCK_ENV = "CRM_RULES_BLOCK_PLUGINS"
# The hooks' documentation wherever crm-rules is installed (the README and plugin guide are files of the repository)
HOOK_DOCS = "`python -m pydoc crm_rules.engine.hookspecs` prints what each hook takes"
PARAMS_URI = "urn:crm-rules:params"  # the base a params schema's own "#/..." references resolve against
FUNCTION_NAME = re.compile(r"[a-z][a-z0-9_]*")
JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")

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
    import_seconds: float = 0.0  # how long its module took to import: every command that loads a policy waits for it


# A plugin whose import takes longer is named by `crm-rules plugins`: a heavy library imported at the top of the module
# (or work done there) slows every command, and nothing else says which plugin it is.
SLOW_IMPORT_SECONDS = 1.0


def slow_import_note(info: PluginInfo) -> str | None:
    """What to say of a plugin slow to import, or None."""
    if info.import_seconds < SLOW_IMPORT_SECONDS:
        return None
    return (f"plugin {info.name!r} took {info.import_seconds:.1f} s to import ({info.module}): every command that loads "
            f"a policy waits for it; import heavy libraries, and do slow work, inside the functions that need them "
            f"rather than at the top of the module")


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _load(pm: pluggy.PluginManager, ep: EntryPoint, source: str, version: str, infos: dict[str, PluginInfo]) -> None:
    """The single path by which every plugin, built-in or installed, is registered."""
    if pm.is_blocked(ep.name):
        return
    if ep.name in infos:
        first = infos[ep.name]
        if first.module == ep.value:  # the built-ins' own entry points: the plugin is loaded already
            return
        # Blocking is by name: it would block both.  The later one is never a built-in (they load first).
        raise PluginError(f"two plugins are named {ep.name!r}: {first.module} ({first.source}) and {ep.value} ({source})",
                          hint=f"rename the entry point in the pyproject.toml of {source}"
                               f"{'' if first.source == 'built-in' else ' or of ' + first.source}, or uninstall one "
                               f"of them ({BLOCK_ENV}={ep.name} would block both)")
    started = time.perf_counter()
    try:
        plugin = ep.load()
    except Exception as exc:  # a broken third-party package must not take the tool down silently
        raise _import_failed(ep, source, exc) from exc
    seconds = time.perf_counter() - started
    if inspect.isclass(plugin):  # its hooks are functions wanting `self`: each call would fail naming a missing 'self'
        raise PluginError(f"plugin {ep.name!r} ({ep.value}) is a class, but a plugin is a module or an object: the "
                          f"hooks of a class are methods that need an instance",
                          hint=f"create the instance in the module (`plugin = {plugin.__name__}()`) and point the entry "
                               f"point at it ({ep.value.split(':')[0]}:plugin), or at the module with the hooks as functions")
    if pm.is_registered(plugin):
        raise PluginError(f"plugin {ep.name!r} ({ep.value}) is the module already loaded as plugin {pm.get_name(plugin)!r}",
                          hint="a package declares one entry point per plugin module; remove the other one")
    unmarked = _unmarked_hook(plugin)
    if unmarked is not None:  # pluggy registers marked functions only: the plugin would load and contribute nothing
        raise PluginError(f"plugin {ep.name!r} ({ep.value}) {unmarked[0]}", hint=unmarked[1])
    try:
        pm.register(plugin, name=ep.name)
    except pluggy.PluginValidationError as exc:
        wrong = _wrong_arguments(pm, plugin)
        raise PluginError(f"plugin {ep.name!r} ({ep.value}) cannot be loaded: {wrong[1] if wrong else exc}",
                          hint=f"every hook takes the one argument `register`: define it as `def {wrong[0]}(register):`"
                          if wrong else f"compare the hooks with their specification: {HOOK_DOCS}") from None
    infos[ep.name] = PluginInfo(ep.name, version, source, ep.value, seconds)


def _import_failed(ep: EntryPoint, source: str, exc: Exception) -> PluginError:
    """What to say of an entry point whose module raised on import: the line that raised, and whether the entry
    point names a module that does not exist (a typo, or a module renamed since the package was installed) or
    the plugin imports something that is not installed."""
    known = source not in ("unknown", "built-in")  # the distribution's name, to uninstall it by
    package = f"the pyproject.toml of {source}" if known else "its package's pyproject.toml"
    uninstall = f"uninstall it (pip uninstall {source})" if known else "uninstall it"
    block = f"block it with {BLOCK_ENV}={ep.name}"
    missing = exc.name if isinstance(exc, ModuleNotFoundError) and exc.name else None
    if missing is not None and (ep.module == missing or ep.module.startswith(missing + ".")):
        siblings = _modules_beside(ep.module)
        return PluginError(f"plugin {ep.name!r}: its entry point names module {ep.module!r}, which does not exist"
                           f"{did_you_mean(ep.module, siblings)}",
                           hint=f"correct the entry point under [project.entry-points.{ENTRY_POINT_GROUP}] in {package} "
                                f"and install the package again (also an editable install: the entry points are read "
                                f"from what was installed), or {uninstall}, or {block}")
    where = raised_at(exc, ep.module)
    at = f" at {where}" if where else ""
    own = _crm_rules_import(exc, missing)
    if own is not None:  # a name or module of crm-rules' own API, misspelt or looked for in the wrong module
        return PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import{at}: {own[0]}",
                           hint=f"{own[1]}, or {uninstall}, or {block}")
    if missing is not None and missing.split(".")[0] != ep.module.split(".")[0]:
        return PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import{at}: {exc}",
                           hint=f"install {missing.split('.')[0]!r} and list it in the dependencies of {package}, "
                                f"or {uninstall}, or {block}")
    return PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import{at}: {type(exc).__name__}: {exc}",
                       hint=f"fix it, or {uninstall}, or {block}")


# Where a plugin imports crm-rules' API from (the plugin guide, section 7): the names each module offers plugins.
API_MODULES = ("crm_rules.engine", "crm_rules.engine.plugin_api", "crm_rules.engine.plugin_context",
               "crm_rules.plugins.sql_helpers", "crm_rules.engine.errors", "crm_rules.engine.name_rules")
_CANNOT_IMPORT = re.compile(r"cannot import name '(\w+)' from '(crm_rules(?:\.\w+)*)'")


def _crm_rules_import(exc: Exception, missing: str | None) -> tuple[str, str] | None:
    """(what, fix) for an import of crm-rules' API that does not exist: a module that is not there (crm-rules is
    installed: "install 'crm_rules'" would send the author to pip), a misspelt package, or a name imported from
    another module than the one that has it (``from crm_rules import hookimpl``); None for any other import error."""
    import importlib

    if missing is not None:
        top = missing.split(".")[0]
        if top != "crm_rules" and did_you_mean(top, ["crm_rules"]):
            return (f"No module named {missing!r}; did you mean 'crm_rules'?",
                    "import crm-rules' API from the package crm_rules (e.g. `from crm_rules.engine import hookimpl`)")
        if top != "crm_rules":
            return None
        return (f"No module named {missing!r}{did_you_mean(missing, [*API_MODULES, *_modules_beside(missing)])}",
                f"crm-rules has no such module; the modules plugins import from are {', '.join(API_MODULES)}")
    found = _CANNOT_IMPORT.search(str(exc)) if type(exc) is ImportError else None
    if found is None:
        return None
    name, module = found.groups()
    offers: dict[str, str] = {}
    for candidate in API_MODULES:
        try:
            loaded = importlib.import_module(candidate)
        except ImportError:  # pragma: no cover - crm-rules' own modules import
            continue
        for attr in dir(loaded):
            if not attr.startswith("_") and not isinstance(getattr(loaded, attr), type(importlib)):
                offers.setdefault(attr, candidate)
    what = f"cannot import name {name!r} from {module!r}"
    if name in offers:
        return what, f"import it from {offers[name]}: `from {offers[name]} import {name}`"
    close = did_you_mean(name, list(offers))
    if close:
        guess = close.split("'")[1]
        return f"{what}{close}", f"`from {offers[guess]} import {guess}`"
    return None


def _modules_beside(module: str) -> list[str]:
    """The modules of the package ``module`` is in: what a misspelt entry point may have meant."""
    import importlib.util
    import pkgutil

    parent = module.rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(parent) if parent else None
    except (ImportError, ValueError):  # the package itself is missing or broken
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return []
    return [f"{parent}.{info.name}" for info in pkgutil.iter_modules(list(spec.submodule_search_locations))]


def _unmarked_hook(plugin: object) -> tuple[str, str] | None:
    """(what, fix) for a hook of ``plugin`` that pluggy would not call: one without ``@hookimpl``, one marked with
    another project's marker, or a misspelt hook name without ``@hookimpl`` (the check of unknown hooks sees
    marked functions only); or None."""
    marker = f"{hookimpl.project_name}_impl"
    decorate = "decorate it: `from crm_rules.engine import hookimpl`, then `@hookimpl` above the def"
    for name in sorted(n for n in dir(plugin) if n.startswith("crm_rules_register")):
        fn = getattr(plugin, name, None)
        if not callable(fn) or hasattr(fn, marker):
            continue
        where = _at(defined_at(fn))
        if name not in HOOK_KINDS:
            hooks = list(HOOK_KINDS)
            return (f"defines {name}{where} without @hookimpl, so it is never called, and no hook has that name"
                    f"{did_you_mean(name, hooks)}", f"name it after a hook ({', '.join(hooks)}) and {decorate}")
        attrs = getattr(getattr(fn, "__func__", fn), "__dict__", {})
        other = next((a[:-len("_impl")] for a in attrs if a.endswith("_impl")), None)
        if other is not None:
            return (f"defines {name}{where} with a @hookimpl marker of project {other!r}, but the hooks of crm-rules are "
                    f"project {hookimpl.project_name!r}, so it is never called", "use crm-rules' own marker: `from crm_rules.engine import hookimpl`")
        return f"defines {name}{where} without @hookimpl, so it is never called", decorate
    return None


def _wrong_arguments(pm: pluggy.PluginManager, plugin: object) -> tuple[str, str] | None:
    """(hook, why) for the hook of ``plugin`` that asks for arguments its spec does not pass, in words; pluggy's own
    message shows its internals (``hookimpl definition: ...``)."""
    for hook in HOOK_KINDS:
        fn = getattr(plugin, hook, None)
        if fn is None:
            continue
        wanted = getattr(pm.hook, hook).spec.argnames
        asked = [a for a in inspect.signature(fn).parameters if a != "self"]
        unknown = [a for a in asked if a not in wanted]
        if unknown:
            return hook, (f"{hook}({', '.join(asked)}){_at(defined_at(fn))} asks for {', '.join(map(repr, unknown))}, "
                          f"which the hook does not pass; its arguments are ({', '.join(wanted)}){did_you_mean(unknown[0], wanted)}")
    return None


@dataclass
class LoadProblem:
    """A plugin that could not be loaded (``plugin`` None: a problem of the environment variables)."""
    plugin: PluginInfo | None
    error: PluginError


def build_plugin_manager(problems: list[LoadProblem] | None = None) -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Load every plugin; the first that cannot be loaded raises its PluginError, or, given ``problems``, is
    left out and added there, so `crm-rules plugins` can list the others (every other command stops on it)."""
    pm = pluggy.PluginManager("crm_rules")
    pm.add_hookspecs(hookspecs)
    allowed = _env_names(LOAD_ENV)
    blocked = _env_names(BLOCK_ENV) or set()
    infos: dict[str, PluginInfo] = {}
    candidates = [(ep, "built-in", __version__) for ep in DEFAULT_PLUGINS]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        candidates.append((ep, dist.name if dist else "unknown", dist.version if dist else "unknown"))
    names = [ep.name for ep, _, _ in candidates]
    for var, listed in ((LOAD_ENV, allowed or set()), (BLOCK_ENV, blocked)):
        # a misspelt name must not go unnoticed: a block that blocks nothing leaves the plugin it meant running
        for name in sorted(listed - set(names)):
            error = PluginError(f"{var} names {name!r}, which is no installed plugin{did_you_mean(name, names)}",
                                hint=f"installed: {', '.join(dict.fromkeys(names))}")
            if problems is None:
                raise error
            problems.append(LoadProblem(None, error))
    for name in sorted(blocked):
        pm.set_blocked(name)
    for ep, source, version in candidates:
        if allowed is None or ep.name in allowed:
            try:
                _load(pm, ep, source, version, infos)
            except PluginError as error:
                if problems is None:
                    raise
                if pm.has_plugin(ep.name) and ep.name not in infos:  # registered, then found wanting
                    pm.unregister(name=ep.name)
                problems.append(LoadProblem(PluginInfo(ep.name, version, source, ep.value), error))
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            error = _unknown_hook(pm, exc)
            if problems is None:
                raise error from None
            name = pm.get_name(exc.plugin)
            pm.unregister(exc.plugin)
            problems.append(LoadProblem(infos.pop(name, None), error))
    return pm, infos


def _unknown_hook(pm: pluggy.PluginManager, exc: pluggy.PluginValidationError) -> PluginError:
    name = pm.get_name(exc.plugin) or repr(exc.plugin)
    specs = [n for n in vars(hookspecs) if n.startswith("crm_rules_")]
    unknown = [(n, impl.function) for n, caller in vars(pm.hook).items() if not n.startswith("_") and not caller.has_spec()
               for impl in caller.get_hookimpls() if impl.plugin is exc.plugin]
    hook, fn = unknown[0] if unknown else ("?", None)
    return PluginError(f"plugin {name!r} implements an unknown hook {hook!r}{_at(defined_at(fn))}"
                       f"{did_you_mean(hook, specs)}",
                       hint=f"the hooks are: {', '.join(specs)} ({HOOK_DOCS})")


@lru_cache(maxsize=1)
def get_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Loaded once per process."""
    return build_plugin_manager()


def _at(where: str | None) -> str:
    """`` (crm_rules_churn/plugin.py:12)``: where in the plugin's source, for a message; "" when unknown."""
    return f" ({where})" if where else ""


def _register(name, fn, schema=None):
    """The arguments of the ``register`` callback the hooks receive (hookspecs.Register)."""


_REGISTER = inspect.signature(_register)
# what register() takes third, by kind, as the messages write it
THIRD_ARGUMENT = {"scorer": "schema", "credit_check": "schema", "action": "schema",
                  "function": "{'args': [types], 'returns': type}"}


def _cannot_take(fn: Callable[..., Any], count: int) -> str | None:
    """Why ``fn`` cannot be called with ``count`` positional arguments, or None (also when Python cannot tell)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some built-ins and C callables have none
        return None
    try:
        signature.bind(*range(count))
    except TypeError as exc:
        return f"{getattr(fn, '__name__', 'fn')}{signature} cannot take {count} argument(s): {exc}"
    return None


@dataclass
class Contribution:
    kind: str
    name: str
    fn: Callable[..., Any]
    schema: dict
    plugin: str
    origin: str | None = None  # where the plugin called register() for it: path:line
    built_in: bool = False


@dataclass
class Registry:
    """Everything plugins registered, by kind and name."""

    items: dict[tuple[str, str], Contribution] = field(default_factory=dict)
    hooks: dict[str, list[str]] = field(default_factory=dict)  # plugin -> hooks it implements
    blocked: list[str] = field(default_factory=list)  # installed plugins not loaded because of BLOCK_ENV
    # loaded plugins that registered nothing -> their module when it implements no hook (an entry point at the
    # package's __init__ while the hooks are in its plugin module), else None
    empty: dict[str, str | None] = field(default_factory=dict)
    # build_registry(keep_going=True) only: plugin -> what it failed to register, each left out of the registry
    problems: dict[str, list[PluginError]] = field(default_factory=dict)

    def add(self, kind: str, plugin: str, name: Any, fn: Any, schema: Any, origin: str | None = None,
            built_in: bool = False) -> None:
        """Check and add one contribution; a problem raises PluginError naming the plugin and where it called
        register() (``origin``).  ``built_in``: the plugin is one of crm-rules' own, which cannot be uninstalled."""
        try:
            self._add(kind, plugin, name, fn, schema, origin, built_in)
        except PluginError as exc:
            if origin is None or origin in exc.message:
                raise
            raise PluginError(f"{exc.message} (register() at {origin})", hint=exc.hint) from exc.__cause__

    def _add(self, kind: str, plugin: str, name: Any, fn: Any, schema: Any, origin: str | None, built_in: bool) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise PluginError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}",
                              hint="names are identifiers: letters, digits and _")
        if not callable(fn):
            third = THIRD_ARGUMENT[kind]
            swapped = callable(schema) and isinstance(fn, dict)
            raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with fn = {with_article(type(fn).__name__)}, "
                              f"which cannot be called"
                              f"{': the second and third arguments are swapped' if swapped else ''}",
                              hint=f"call register(name, fn, {third}): the function that computes it second")
        if not isinstance(schema, dict):
            example = ("{'args': ['number'], 'returns': 'number'}" if kind == "function"
                       else "{'type': 'object', 'properties': {...}}, the JSON Schema of its params")
            raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} without a "
                              f"{'signature' if kind == 'function' else 'schema'} dict (got {schema!r})",
                              hint=f"pass it as the third argument: register({name!r}, fn, {example})")
        if kind == "function":
            from .expr_parser import KEYWORDS  # not at the top: lark is imported only where expressions are parsed

            args, returns = schema.get("args"), schema.get("returns")
            # A policy's `netVAT(x)` or `ROUND(x)` calls netvat() or the built-in round(): a name that is not
            # lowercase, or that is a built-in or a keyword in any case, could never be called.
            clash = ("a built-in function" if name.lower() in FUNCTIONS else "a keyword" if name.lower() in KEYWORDS else None)
            if clash is not None:
                raise PluginError(f"plugin {plugin!r} registered function {name!r}, {clash} of the "
                                  f"expression language{' (its names are not case-sensitive)' * (name != name.lower())}",
                                  hint="give the function another name")
            if not FUNCTION_NAME.fullmatch(name):
                why = "no expression can call it: the expression language reads names of functions in lowercase" \
                    if name != name.lower() else "function names are lowercase letters, digits and _, starting with a letter"
                fixed = f"register it as {name.lower()!r}" if FUNCTION_NAME.fullmatch(name.lower()) else "rename it"
                raise PluginError(f"plugin {plugin!r} registered function {name!r}, but {why}", hint=fixed)
            if not (isinstance(args, list) and all(a in TYPES for a in args) and returns in TYPES):
                raise PluginError(f"plugin {plugin!r} registered function {name!r} with signature {schema!r}; "
                                  f"expected {{'args': [types], 'returns': type}} with types {', '.join(TYPES)}")
            problem = _cannot_take(fn, len(args))
            if problem is not None:
                raise PluginError(f"plugin {plugin!r} registered function {name!r} with {len(args)} argument(s) in its "
                                  f"signature, but {problem}",
                                  hint="give fn one parameter per type in 'args' (it receives the SQL of each argument)")
        else:
            cannot = _cannot_take(fn, 2)
            if cannot is not None:
                raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with a fn that cannot be called as "
                                  f"fn(ctx, params): {cannot}", hint="define it as `def fn(ctx, params):`")
            problem = _schema_problem(schema)
            if problem is not None:
                declared = schema.get("$schema")
                other = (f"; this one declares $schema {declared!r}, but it is read as 2020-12, where a list of item "
                         f"schemas is 'prefixItems', not 'items'"
                         if isinstance(declared, str) and "2020-12" not in declared else "")
                raise PluginError(f"plugin {plugin!r}: the params schema of {kind} {name!r} is not a valid JSON Schema: {problem}",
                                  hint=f"params schemas are JSON Schema draft 2020-12{other}")
        key = (kind, name)
        if key in self.items:
            raise _registered_twice(self.items[key], plugin, origin)
        self.items[key] = Contribution(kind, name, fn, schema, plugin, origin, built_in)

    def get(self, kind: str, name: str) -> Contribution | None:
        return self.items.get((kind, name))

    def names(self, kind: str) -> list[str]:
        return sorted(n for k, n in self.items if k == kind)

    def by_plugin(self, plugin: str) -> list[Contribution]:
        return [c for c in self.items.values() if c.plugin == plugin]

    def absent_note(self) -> str:
        """For the message of a contribution nobody registered: why a plugin that may have it does not, or ""."""
        notes = [self.blocked_note()]
        for name, module in self.empty.items():
            why = f" (its entry point, {module}, implements no hook)" if module else ""
            notes.append(f"; plugin {name!r} is loaded but registers nothing{why}")
        return "".join(notes)

    def blocked_note(self) -> str:
        """For the message of a contribution nobody registered: ``"; plugin 'x' is blocked by ..."``, or "".

        What a blocked plugin would register is unknown (blocking is for a plugin that must not even be
        imported), so the note names every blocked plugin: the name asked for may be one of theirs."""
        if not self.blocked:
            return ""
        many = len(self.blocked) > 1
        names = ", ".join(repr(name) for name in self.blocked)
        return f"; plugin{'s' * many} {names} {'are' if many else 'is'} blocked by {BLOCK_ENV}"


def _registered_twice(first: Contribution, plugin: str, origin: str | None) -> PluginError:
    """A name registered again: by the same plugin (a repeated register() call), or by a second plugin, which
    one of the two authors renames, or a user removes (a built-in one cannot be uninstalled, only blocked)."""
    kind, name = first.kind, first.name
    if first.plugin == plugin:
        lines = " and ".join(dict.fromkeys(w for w in (first.origin, origin) if w))  # a loop: one line
        return PluginError(f"plugin {plugin!r} registers {kind} {name!r} twice{f' ({lines})' if lines else ''}",
                           hint=f"call register() once for {name!r}, or give the second {kind.replace('_', ' ')} "
                                f"another name")
    prefixed = f"{plugin}_{name}".lower() if kind == "function" else f"{plugin}_{name}"
    by_first = f"by the built-in plugin {first.plugin!r}" if first.built_in else f"by plugin {first.plugin!r}{_at(first.origin)}"
    who = (f"a user uninstalls the package of plugin {plugin!r}, or blocks it with {BLOCK_ENV}={plugin}" if first.built_in
           else f"a user uninstalls one of the two, or blocks one with {BLOCK_ENV}={plugin}")
    return PluginError(f"{kind} {name!r} is registered twice: {by_first} and by plugin {plugin!r}{_at(origin)}",
                       hint=f"the author of plugin {plugin!r} renames it (prefix generic names: {prefixed!r}); {who}")


def _schema_problem(schema: dict) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (2020-12), or None.

    Checking against the meta-schema takes 5-60 ms a schema, in every process;
    a schema found valid is remembered in the user cache by its content (and the version of these checks:
    ``valid-schema-2`` since keys that are no keyword are refused).
    """
    try:
        text = json.dumps(schema, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = None  # not plain JSON: checked every time
    memo = None if text is None else f"valid-schema-2-{user_cache.content_key(jsonschema.Draft202012Validator.META_SCHEMA['$id'], text)}"
    if memo is not None and user_cache.read(memo) is not None:
        return None
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    # every problem at once, each as check_schema would give it alone (the most relevant error of its branch)
    problems = [_meta_problem(jsonschema.exceptions.best_match([error]))
                for error in sorted(meta.iter_errors(schema), key=lambda e: [str(p) for p in e.path])]
    if problems:
        return "; ".join(dict.fromkeys(problems))
    unknown = _unknown_keywords(schema, "")
    if unknown:
        return unknown
    resolver = referencing.Registry().with_resource(PARAMS_URI, DRAFT202012.create_resource(schema)).resolver(PARAMS_URI)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            return f"$ref {ref!r} points to nothing in the schema"
    if memo is not None:
        user_cache.write(memo, b"")
    return None


# Keywords a schema may hold besides the validation ones: annotations and the core vocabulary.  JSON Schema ignores
# any other key, so a misspelt one ("propertes", "additionalproperties") or the properties given as the schema
# itself would leave the params unchecked without a word.
_ANNOTATIONS = {"$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
                "$comment", "definitions", "title", "description", "default", "examples", "deprecated", "readOnly",
                "writeOnly", "format", "contentEncoding", "contentMediaType", "contentSchema"}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf")
_SCHEMA_VALUES = ("items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "not", "if", "then",
                  "else", "contains", "propertyNames")


def _unknown_keywords(schema: Any, where: str) -> str | None:
    """The first key of ``schema`` (or of a schema within it) that is no JSON Schema keyword, said with its place;
    keys starting with ``x-`` are extensions and allowed."""
    if not isinstance(schema, dict):
        return None
    known = set(jsonschema.Draft202012Validator.VALIDATORS) | _ANNOTATIONS
    odd = [k for k in schema if isinstance(k, str) and k not in known and not k.startswith("x-")]
    if odd:
        at = f" (at {where})" if where else ""
        close = did_you_mean(odd[0], sorted(known))
        if "properties" not in schema and all(isinstance(schema[k], dict) and set(schema[k]) & known for k in odd):
            return (f"{odd[0]!r} is not a JSON Schema keyword{at}, so the params would not be checked: it looks like "
                    f"a property; write them under 'properties' of {{'type': 'object', 'properties': {{...}}}}")
        why = "JSON Schema ignores keys it does not know, so it would not check the params"
        return f"{odd[0]!r} is not a JSON Schema keyword{at}{close} {why}" if close else \
            f"{odd[0]!r} is not a JSON Schema keyword{at}: {why}"
    for sub, at in _subschemas(schema, where):
        found = _unknown_keywords(sub, at)
        if found:
            return found
    return None


def _subschemas(schema: dict, where: str):
    """(schema, where) of each schema directly within ``schema``: the values of its maps of schemas, the items of
    its lists of schemas, and its single schemas."""
    prefix = f"{where}." if where else ""
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            yield from ((sub, f"{prefix}{key}.{name}") for name, sub in schema[key].items())
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            yield from ((sub, f"{prefix}{key}[{i}]") for i, sub in enumerate(schema[key]))
    for key in _SCHEMA_VALUES:
        if key in schema:
            yield schema[key], f"{prefix}{key}"


def _meta_problem(error: jsonschema.ValidationError) -> str:
    """One problem of a params schema against the meta-schema, with where it is."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path).lstrip(".")
    message = error.message
    if error.path and error.path[-1] == "type" and isinstance(error.instance, str):  # "... under any of the given schemas"
        message = (f"{error.instance!r} is not a JSON Schema type{did_you_mean(error.instance, JSON_TYPES)} "
                   f"(types: {', '.join(JSON_TYPES)})")
    if error.path and error.path[-1] == "items" and isinstance(error.instance, list):  # draft-07's tuple form
        message = (f"'items' holds a list, {error.instance!r}: in draft 2020-12 a list of item schemas is "
                   f"'prefixItems', and 'items' is one schema for every item")
    return f"{message} (at {where})" if where else message


def _refs(schema: Any):
    """Every ``$ref`` in a schema, at any depth."""
    if isinstance(schema, dict):
        if isinstance(schema.get("$ref"), str):
            yield schema["$ref"]
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def build_registry(pm: pluggy.PluginManager, *, keep_going: bool = False) -> Registry:
    """What the loaded plugins register; the first registration problem raises.

    With ``keep_going`` each problem is kept in ``Registry.problems`` instead, and the rest is registered: for
    ``crm-rules plugins``, which must list the plugins while one of them is rejected, since it is where a user
    looks for which plugins are there.  Such a registry is for showing only: a run must not go on without a
    contribution that was rejected.
    """
    registry = Registry(blocked=sorted(name for name, plugin in pm.list_name_plugin() if plugin is None))

    def failed(plugin: str, error: PluginError) -> None:
        if not keep_going:
            raise error
        registry.problems.setdefault(plugin, []).append(error)

    for hook_name, kind in HOOK_KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            registry.hooks.setdefault(impl.plugin_name, []).append(hook_name)

            def register(*args, _plugin=impl.plugin_name, _kind=kind, _hook=hook_name,
                         _built_in=is_built_in(impl.function), **kwargs):
                origin = called_from(inspect.currentframe().f_back)  # the plugin's line that called register()
                try:
                    _add(registry, _kind, _plugin, _hook, args, kwargs, origin, _built_in)
                except PluginError as exc:
                    failed(_plugin, exc)

            try:
                _call_hook(impl, hook_name, register)
            except PluginError as exc:
                failed(impl.plugin_name, exc)
    for name, plugin in pm.list_name_plugin():
        if plugin is not None and not registry.by_plugin(name):
            registry.empty[name] = None if name in registry.hooks else getattr(plugin, "__name__", type(plugin).__name__)
    return registry


def _add(registry: Registry, kind: str, plugin: str, hook: str, args: tuple, kwargs: dict, origin: str | None,
         built_in: bool) -> None:
    """What one call of the ``register`` callback of ``plugin``'s hook does."""
    try:
        call = _REGISTER.bind(*args, **kwargs)
    except TypeError as exc:  # the message of calling a closure would name build_registry.<locals>
        raise PluginError(f"plugin {plugin!r} called register() in its hook {hook}{_at(origin)} with the wrong "
                          f"arguments: {exc}", hint=f"call register(name, fn, {THIRD_ARGUMENT[kind]})") from None
    call.apply_defaults()
    registry.add(kind, plugin, *call.args, origin=origin, built_in=built_in)


def _call_hook(impl: pluggy.HookImpl, hook_name: str, register: Callable[..., None]) -> None:
    """Call one plugin's register hook; what goes wrong in it is a PluginError naming the plugin.

    A hook without its ``register`` argument is said before it is called: its body's ``register(...)`` would
    otherwise fail first as a NameError, which reads as a bug inside the hook rather than in its def line."""
    if not impl.argnames:
        raise PluginError(f"plugin {impl.plugin_name!r} implements {hook_name}{_at(defined_at(impl.function))} without "
                          f"its `register` argument, "
                          f"so it registers nothing", hint=f"define it as `def {hook_name}(register):`")
    try:
        impl.function(**{arg: register for arg in impl.argnames})
    except PluginError:
        raise
    except Exception as exc:  # another package's bug: name it, and keep its traceback for --debug
        where = raised_at(exc, module_of(impl.function))
        raise PluginError(f"plugin {impl.plugin_name!r} failed in its hook {hook_name}{f' at {where}' if where else ''}: "
                          f"{type(exc).__name__}: {exc}",
                          hint=f"a bug in the plugin: fix or upgrade it, or block it with {BLOCK_ENV}={impl.plugin_name}"
                          ) from exc


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    pm, _ = get_plugin_manager()
    return build_registry(pm)


def reset_plugins() -> None:
    """Forget the loaded plugins (tests change the environment between cases)."""
    get_plugin_manager.cache_clear()
    get_registry.cache_clear()
