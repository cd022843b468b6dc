"""The context a plugin function receives when a policy is compiled.

Plugins never write raw identifiers or values into SQL: they ask the context
for a metric's column, a literal's placeholder or a compiled expression, and
report problems in their ``params`` through it, so users get the same
``file:line:col`` messages as for the rest of the policy.
"""

from __future__ import annotations

import re

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonschema

from .expr_ast import Compare, InList, Literal, Name, Node, names_in, walk
from .expr_sql import SqlParams, quote_identifier as q, to_sql
from .expr_types import NUMBER, TypeChecker, did_you_mean
from .user_text import joined

if TYPE_CHECKING:  # pragma: no cover
    from .policy_model import _Builder, Metric
    from .data_mapping import DataMapping

AS_OF = ":as_of"


def _same_metric(metrics: dict, spec: dict) -> str | None:
    """Name of a metric computed exactly as ``spec`` says (labels aside), if there is one."""
    def essence(s: dict) -> dict:
        return {k: v for k, v in s.items() if k not in ("label", "description") and not (k == "window" and v == "all")}

    wanted = essence(spec)
    return next((name for name, m in metrics.items() if essence(m.spec) == wanted), None)


@lru_cache(maxsize=1)
def _metric_validator() -> jsonschema.Draft202012Validator:
    from .schema_validation import load_schema

    return jsonschema.Draft202012Validator(load_schema("policy.schema.json")["properties"]["metrics"]["additionalProperties"])


def output_name(entry: str, suffix: str) -> str:
    """Column name of an entry's output: the entry itself, ``entry_suffix``, or hidden ``_entry_suffix``."""
    if not suffix:
        return entry
    if suffix.startswith("_"):
        return f"_{entry}{suffix}"
    return f"{entry}_{suffix}"


GRADE_SECTIONS = {"tier": "tiers", "subgrade": "sub-grades", "stage": "lifecycle section",
                  "service_level": "service_levels section"}


def unknown_grade(name: str, value: str, ids: list[str]) -> str:
    """"unknown tier 'Gold'; did you mean 'gold'? (the policy's tiers: gold and silver)": a grade no customer has."""
    what = {"subgrade": "sub-grade", "service_level": "service level"}.get(name, name)
    if not ids:
        return f"unknown {what} {value!r}: the policy has no {GRADE_SECTIONS[name]}"
    parts = re.split(r"\s*[,，、;；]\s*", value.strip()) if isinstance(value, str) else []
    if len(parts) > 1 and all(p in ids for p in parts):  # `tiers: [A，B]`: the comma of a Chinese input method
        return (f"unknown {what} {value!r}: YAML reads it as one name, since the comma between the {what}s is not the "
                f"ASCII ',' (typed with a Chinese input method); write [{', '.join(parts)}]")
    return f"unknown {what} {value!r}{did_you_mean(value, ids)} (the policy's {what}s: {joined(ids)})"


def grade_literals(node: Node, grades: set[str]):
    """(grade name, text literal) of each comparison of a grade with a text in ``node``: ``tier = 'A'``, ``stage IN (...)``."""
    for n in walk(node):
        if isinstance(n, Compare) and n.op in ("=", "!="):  # the parser reads <> as !=
            for a, b in ((n.left, n.right), (n.right, n.left)):
                if isinstance(a, Name) and a.name in grades and isinstance(b, Literal) and isinstance(b.value, str):
                    yield a.name, b
        elif isinstance(n, InList) and isinstance(n.operand, Name) and n.operand.name in grades:
            yield from ((n.operand.name, i) for i in n.items if isinstance(i, Literal) and isinstance(i.value, str))


class PluginContext:
    def __init__(self, builder: "_Builder", data: "DataMapping", metrics: dict[str, "Metric"], scope: dict[str, str],
                 entry: str, path: tuple, index: int):
        self._builder = builder
        self._data = data
        self._metrics = metrics
        self.scope = dict(scope)
        self.entry = entry
        self.path = path
        self.sql_params = SqlParams(prefix=f"x{index}_")
        self.as_of = AS_OF
        self.failed = False
        self._hidden = 0
        self.locals: dict[str, tuple[str, str]] = {}  # names with engine-given SQL (tier, stage, ... for actions)
        self.used: set[str] = set()  # policy names the plugin reads, so the data binding can check them
        self.grades: dict[str, list[str] | None] = {}  # local name -> the ids the policy gives it (see check_grade)
        self.owner = ""  # "scorer 'rfm' of plugin 'value_scoring'": who checked the params, ending error()'s messages

    # -- reporting ---------------------------------------------------------
    def _params_path(self, where: Any) -> tuple:
        parts = tuple(where) if isinstance(where, (list, tuple)) else ((where,) if where is not None else ())
        return self.path + ("params",) + parts

    def error(self, where: Any, message: str) -> None:
        """Report a problem at ``params.<where>`` of this entry, saying which plugin found it: the rule broken is the
        plugin's (its documentation is where the user looks), as for its params schema."""
        self.failed = True
        self._builder.error(self._params_path(where), f"{message} ({self.owner})" if self.owner else message, key=False)

    def check_grade(self, name: str, value: Any, where: Any, key: bool = False) -> bool:
        """Report ``value`` at ``params.<where>`` when no customer can have it as ``name`` (``tier``, ``stage``...);
        ``key``: the value is the key written at ``where`` (``priority_by_tier: {A: 1}``), not its value.

        A misspelt tier in a filter matches nobody, and the action silently never fires.  True when the
        policy gives ``name`` that value, or when its ids are not known (outside actions, or sections with
        errors of their own).
        """
        ids = self.grades.get(name)
        if ids is None or not isinstance(value, str) or value in ids:
            return True
        self.failed = True
        self._builder.error(self._params_path(where), unknown_grade(name, value, ids), key=key)
        return False

    # -- building SQL --------------------------------------------------------
    def col(self, suffix: str) -> str:
        """SQL of one of this entry's outputs from an earlier step."""
        return f"t.{q(output_name(self.entry, suffix))}"

    def literal(self, value: Any) -> str:
        """A bound parameter for ``value``."""
        if value is not None and not isinstance(value, (str, int, float)):  # bool is an int
            raise TypeError(f"ctx.literal() takes a number, text, bool or None, got {type(value).__name__} {value!r}")
        return self.sql_params.add(value)

    def ref(self, name: Any, where: Any, types: tuple[str, ...] = (NUMBER,)) -> str | None:
        """SQL of a metric, attribute or earlier plugin output named in the params."""
        if isinstance(name, str) and name in self.locals:
            sql, found = self.locals[name]
            if found not in types:
                self.error(where, f"{name!r} is a {found}, expected {' or '.join(types)}")
                return None
            return sql
        if not isinstance(name, str) or name not in self.scope:
            if isinstance(name, str) and self._builder.from_failed_entry(name):
                self.failed = True  # that entry's own error says it all
                return None
            removed = self._builder.removal_note(self._params_path(where), name) if isinstance(name, str) else None
            self.error(where, f"unknown metric {name!r}" + (f": {removed}" if removed else did_you_mean(str(name), self.scope)))
            return None
        self.used.add(name)
        if self.scope[name] not in types:
            self.error(where, f"{name!r} is a {self.scope[name]}, expected {' or '.join(types)}")
            return None
        return f"t.{q(name)}"

    def type_of(self, name: str) -> str | None:
        return self.scope.get(name)

    def expr(self, text: Any, where: Any, names: dict[str, tuple[str, str]] | None = None,
             condition: bool = False, types: tuple[str, ...] | None = None,
             values: dict[str, list[str]] | None = None) -> str | None:
        """Compile an expression written in the params; ``names`` adds local names (name -> (sql, type)),
        ``types`` restricts the type the expression may have, ``values`` gives the only texts a local name can be
        (``{"grade": ["good", "fair", "poor"]}``), so that `grade = 'bad'` is named rather than never true."""
        path = self._params_path(where)
        if not isinstance(text, str):
            self.error(where, "expected an expression (text)")
            return None
        node = self._builder.parse(text, path)
        if node is None:
            self.failed = True
            return None
        local = {**self.locals, **(names or {})}
        checker = TypeChecker({**self.scope, **{n: t for n, (_, t) in local.items()}}, "metric or name")
        found = self._builder.typecheck(node, path, checker, condition=condition)
        if found is None:
            self.failed = True
            return None
        if types is not None and found not in (*types, "null"):
            self.error(where, f"expected a {' or '.join(types)} expression, but {text!r} is a {found}")
            return None
        self.used |= names_in(node) - set(local)
        unknown = [(literal, unknown_grade(name, literal.value, self.grades[name]))
                   for name, literal in grade_literals(node, set(self.grades) - set(names or {}))
                   if self.grades[name] is not None and literal.value not in self.grades[name]]
        unknown += [(literal, f"unknown {name} {literal.value!r}{did_you_mean(literal.value, (values or {})[name])} "
                              f"(the {name}s: {joined((values or {})[name])})")
                    for name, literal in grade_literals(node, set(values or {}))
                    if literal.value not in (values or {})[name]]
        for literal, message in unknown:
            self._builder.text_error(path, literal.line, literal.col, message)
        if unknown:
            self.failed = True
            return None
        return to_sql(node, lambda n: local[n][0] if n in local else f"t.{q(n)}", self.sql_params)

    def metric(self, spec: dict, where: Any) -> str | None:
        """An extra engine metric this plugin needs (e.g. ``{"overdue": "amount", "min_days": 31}``)."""
        from .policy_model import METRIC_KINDS, POPULATION

        kinds = [k for k in spec if k in METRIC_KINDS]
        if len(kinds) != 1:  # a plugin bug, not a user error
            raise ValueError(f"metric spec needs exactly one kind key: {spec}")
        errors = sorted(e.message for e in _metric_validator().iter_errors(spec))
        if errors:  # a plugin bug too: it built the spec
            raise ValueError(f"invalid metric spec {spec}: {'; '.join(errors)}")
        same = _same_metric(self._metrics, spec)
        if same is not None:  # already computed (by the policy or another plugin): reuse it
            self.used.add(same)
            return f"t.{q(same)}"
        self._hidden += 1
        name = f"_{self.entry}_m{self._hidden}"
        m = self._builder._metric(name, kinds[0], spec, self._params_path(where), self._data)
        m.internal = True
        if kinds[0] in POPULATION:
            if m.of not in self._metrics:
                self.error(where, f"unknown metric {m.of!r}{did_you_mean(str(m.of), self._metrics)}")
                return None
            m.deps = {m.of}
        self._metrics[name] = m
        return f"t.{q(name)}"

    def condition(self, text: Any, where: Any, names: dict[str, tuple[str, str]] | None = None,
                  values: dict[str, list[str]] | None = None) -> str | None:
        return self.expr(text, where, names, condition=True, values=values)

