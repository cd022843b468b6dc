"""JSON Schema validation that reports every error at once, where it is.

Modelled on check-jsonschema: each error becomes ``file:line:col: path:
message``; unknown keys get a "did you mean" from the keys the schema allows.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .errors import Diagnostic
from .plugin_api import PLUGIN_SECTIONS
from .expr_types import did_you_mean
from .ime_text import FULL_WIDTH_INDENT, IME, describe, key_colon_fix, number_fix, quoted_fix, slips_in
from .name_rules import in_words
from .yaml_source import SourceDocument, format_path
from .time_spans import FIXES, REFUSALS, missing_unit


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """A schema shipped in ``crm_rules/schemas`` (package data)."""
    return json.loads(files("crm_rules").joinpath("schemas").joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def _leaf_errors(error: ValidationError) -> list[ValidationError]:
    """For oneOf/anyOf: the errors of the alternative written for this kind of value, else the closest one."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        kind = _JSON_TYPES.get(type(error.instance))
        by_branch: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            by_branch.setdefault(sub.schema_path[0], []).append(sub)
        for index, alternative in enumerate(error.validator_value):
            declared = alternative.get("type") if isinstance(alternative, dict) else None
            declared = declared if isinstance(declared, list) else [declared]
            if kind in declared or (kind == "integer" and "number" in declared):
                return [leaf for sub in by_branch.get(index, []) for leaf in _leaf_errors(sub)]
        return _leaf_errors(best_match(error.context))
    return [error]


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


_PERCENT = re.compile(r"\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))\s*[%％]\s*")
_NUMBER_TEXT = re.compile(r"\s*[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*")


def _number_fix(wanted: str, value: Any) -> str:
    """The number a text where a number belongs was meant to be: '5%' is 0.05 (shares and discounts are fractions, as the
    metrics give them), '0.05' in quotes is text to YAML, and '10,000', '1万' or '１０' are how a report or a Chinese input
    method writes a number that YAML reads as text."""
    if not isinstance(value, str) or ("number" not in wanted and "integer" not in wanted):
        return ""
    if match := _PERCENT.fullmatch(value):
        fraction = float(match.group(1)) / 100
        return f": percentages are fractions here, write {fraction:g} for {match.group(1)}%"
    if _NUMBER_TEXT.fullmatch(value):
        return f": write it without quotes, {value.strip()}, for YAML to read a number"
    if (fix := number_fix(value)) is not None:
        return f": {fix}"
    return ""


def _fraction_fix(error: ValidationError) -> str:
    """`discount: 3`, `up_to: 80`, `below: -30`: a share written in percent where the schema takes a fraction (a
    number bounded by -1 and 1), with the fraction to write; '' for any other number out of its range."""
    schema, value = error.schema, error.instance
    if schema.get("type") != "number" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is None or high is None or low < -1 or high > 1 or not -100 <= value <= 100:
        return ""
    fraction = value / 100
    inside = (fraction > low if "exclusiveMinimum" in schema else fraction >= low) and \
             (fraction < high if "exclusiveMaximum" in schema else fraction <= high)
    return f": shares are fractions here, write {fraction:g} for {value:g}%" if inside else ""


def _list_fix(wanted: str, value: Any) -> str:
    """`tiers: A, B`, `perks: 送货上门，冷链`: a list written without its brackets, which YAML reads as one text;
    the list to write."""
    if wanted != "array" or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    items = [i for i in re.split(r"\s*[,，、;；]\s*", str(value).strip()) if i] if isinstance(value, str) else [str(value)]
    if not items:
        return ""
    typed = " (the '，' and '、' of a Chinese input method are written ',')" if re.search("[，、]", str(value)) else ""
    return f": a list is written in brackets, [{', '.join(items)}]{typed}"


def _mapping_fix(wanted: str, schema: dict, value: Any) -> str:
    """`payment: 90`: one value where the schema takes keys and values; the keys that go there."""
    keys = list(schema.get("properties") or {})
    if wanted != "object" or isinstance(value, (dict, list)) or not keys:
        return ""
    return f": this holds keys and values, such as {{{keys[0]}: ...}}; the keys here are {', '.join(keys)}"


_CHINESE_BOOLEANS = {"是": "true", "对": "true", "真": "true", "有": "true", "否": "false", "不是": "false",
                     "错": "false", "假": "false", "无": "false", "没有": "false"}


def _bool_fix(wanted: str, value: Any) -> str:
    """`default: 是`: yes or no written in Chinese where YAML's true/false belongs."""
    if wanted != "boolean" or not isinstance(value, str) or value.strip() not in _CHINESE_BOOLEANS:
        return ""
    return f": write {_CHINESE_BOOLEANS[value.strip()]} (true/false are written in English)"


def _slip_fix(value: Any) -> str:
    """What a Chinese input method typed in ``value`` in place of ASCII, for a message about a text YAML, an id or a
    name: `tier：A` is a key and its value that YAML read as one word, `“A”` holds typographic quotes."""
    if not isinstance(value, str):
        return ""
    if (fix := key_colon_fix(value) or quoted_fix(value)) is not None:
        return f"; {fix}"
    slips = slips_in(value)
    if len(slips) > 1 and all("\uff01" <= ch <= "\uff5e" for ch in slips):
        plain = unicodedata.normalize("NFKC", value)
        return f"; {value!r} is written in full-width characters, {IME}; write {plain!r}"
    return "".join(f"; {describe(ch)}" for ch in slips[:3])


# Keys written in Chinese, and the keys they stand for (the first of them the schema allows at that place).
_CHINESE_KEYS = {
    "名称": ("name",), "名字": ("name",), "版本": ("version",), "描述": ("description",), "说明": ("description",),
    "继承": ("extends",), "扩展": ("extends",), "数据": ("data",), "指标": ("metrics", "metric"),
    "评分": ("scores",), "得分": ("scores",), "信用": ("credit",), "等级": ("tiers", "levels"),
    "分级": ("tiers",), "客户等级": ("tiers",), "层级": ("levels", "tiers"), "级别": ("levels", "tiers"),
    "生命周期": ("lifecycle",), "服务等级": ("service_levels",), "服务水平": ("service_levels",),
    "动作": ("actions",), "行动": ("actions",), "覆盖": ("overrides",), "汇总": ("summary",), "摘要": ("summary",),
    "标签": ("label",), "名称标签": ("label",), "条件": ("when", "where"), "默认": ("default",),
    "子等级": ("subgrades",), "子级": ("subgrades",), "方法": ("method",), "阶段": ("stages",),
    "策略": ("strategy",), "折扣": ("discount",), "窗口": ("window",), "时间窗口": ("window",), "求和": ("sum",),
    "合计": ("sum",), "计数": ("count",), "表达式": ("expr",), "来源": ("from",), "筛选": ("where",),
    "过滤": ("where",), "编号": ("id",), "标识": ("id",), "客户经理": ("account_manager",),
    "响应时间": ("response_time",), "拜访频率": ("visit_cadence",), "权益": ("perks",), "等级编号": ("tier",),
    "参数": ("params",), "插件": ("use",), "权重": ("weight",),
}

# Values of the schemas' word lists (a visit cadence, a tier method) as a Chinese office user writes them: each
# names the value it stands for where that value is allowed (``_enum``).
_CHINESE_VALUES = {
    "每周": "weekly", "每星期": "weekly", "每两周": "biweekly", "双周": "biweekly", "隔周": "biweekly",
    "每月": "monthly", "每个月": "monthly", "每季度": "quarterly", "每季": "quarterly", "每半年": "half-yearly",
    "半年": "half-yearly", "每年": "yearly", "每一年": "yearly", "按需": "on request", "按需拜访": "on request",
    "应要求": "on request", "不拜访": "none", "无": "none", "帕累托": "pareto", "分位数": "quantile", "阈值": "rules",
}


def _thousands_key(key: Any, mapping: Any) -> str | None:
    """`{credit_limit: 100,000}`: in { } a ',' separates entries, so YAML reads the number 100 and a key '000' (without
    a value); what happened and the number to write, or None when ``key`` is no such key of ``mapping``."""
    if not isinstance(mapping, dict) or not isinstance(key, str) or key not in mapping:
        return None
    keys = list(mapping)
    before = mapping[keys[keys.index(key) - 1]] if keys.index(key) > 0 else None
    if re.fullmatch(r"[0-9]{3}", key) and mapping[key] is None and isinstance(before, int) and not isinstance(before, bool):
        return (f"in {{ }} a ',' separates entries, so YAML read {before},{key} as the number {before} and a "
                f"key {key!r}; write numbers without thousands separators: {before}{key}")
    return None


def _unknown_key(key: str, allowed, mapping: dict) -> str:
    """``unknown key 'x'`` and its fix: a misspelling, a key typed with a Chinese input method, a key in Chinese, the
    digits after the thousands separator of a number in { } (`{discount: 1,000}` is discount 1 and a key '000')."""
    message = f"unknown key {key!r}"
    plain = unicodedata.normalize("NFKC", key)
    if plain != key and plain in allowed:
        return f"{message}; did you mean {plain!r}? {key!r} is written in full-width characters, {IME}"
    if (thousands := _thousands_key(key, mapping)) is not None:
        return f"{message}: {thousands}"
    if key[:1] == "\u3000":  # the key of a line indented with it, at the top: YAML 1.1 takes it for no space
        return f"{message}; {FULL_WIDTH_INDENT}"
    if (fix := _slip_fix(key)):
        return message + fix
    if key.isascii():  # a key of another part of the policy, or a guess: the keys that go here are the fix
        return message + (did_you_mean(key, allowed) or f"; the keys here are {', '.join(allowed)}")
    meant = next((k for k in _CHINESE_KEYS.get(key.strip(), ()) if k in allowed), None)
    if meant is not None:
        return f"{message}; did you mean {meant!r}? Keys are written in English (Chinese text goes in values, such as a label)"
    return f"{message}: keys are written in English; the keys here are {', '.join(allowed)}"



def _message(error: ValidationError) -> str:
    schema, value = error.schema, error.instance
    match error.validator:
        case "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            return f"missing required key {missing!r}"
        case "type":
            wanted = error.validator_value
            wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
            shown = "" if value is None else f" {json.dumps(value, ensure_ascii=False)}"
            section = tuple(error.absolute_path)
            # a plugin section may be empty: `credit: {}` for no credit checks, where `credit: null` was written
            if value is None and wanted == "object" and len(section) == 1 and section[0] in PLUGIN_SECTIONS:
                return (f"expected {wanted}, got {_type_name(value)}; for no {section[0]} entries write "
                        f"`{section[0]}: {{}}` (in a policy that extends another, it replaces the base's section)")
            unit = missing_unit(schema.get("pattern"), value) if "string" in wanted else None
            fix = (f": {unit}" if unit else _list_fix(wanted, value) or _number_fix(wanted, value) or _bool_fix(wanted, value)
                   or _slip_fix(value) or _mapping_fix(wanted, schema, value))
            return f"expected {wanted}, got {_type_name(value)}{shown}{fix}"
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum":
            return error.message + _fraction_fix(error)
        case "minLength" if error.validator_value == 1:
            return "must not be empty"
        case "enum" | "const":
            allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
            hint = did_you_mean(str(value), [str(a) for a in allowed])
            meant = _CHINESE_VALUES.get(value.strip()) if isinstance(value, str) else None
            if not hint and meant in allowed:  # `visit_cadence: 每月`
                hint = f"; did you mean {meant!r}? Values here are the English words listed (Chinese text goes in a label)"
            return (f"{json.dumps(value, ensure_ascii=False)} is not allowed here; use one of: {', '.join(map(str, allowed))}"
                    f"{hint or _slip_fix(value)}")
        case "pattern":
            shown = json.dumps(value, ensure_ascii=False)
            words = in_words(error.validator_value, value, defines=tuple(error.absolute_path)[-1:] == ("id",))
            if words is not None:
                return f"{shown} {words}{_slip_fix(value)}"
            if (why := REFUSALS.get(error.validator_value, lambda _: None)(value)) is not None:  # `offset: 0d`
                return f"{shown} {why}"
            about = schema.get("description") or schema.get("title") or f"it must match the pattern {error.validator_value}"
            meant = FIXES.get(error.validator_value, lambda _: None)(value)
            if meant is not None:  # `12个月`, `1 quarter`, `2 hours`: a span written with a unit word
                return f"{shown} is not in the expected form; write {meant}. {about}"
            slip = _slip_fix(value)
            return f"{shown} is not in the expected form. {about.rstrip('.') if slip else about}{slip}"
        case "minItems":
            about = schema.get("description")  # what the list is for says what to put in it
            return f"needs at least {error.validator_value} item(s)" + (f". {about}" if about else "")
        case "minProperties":
            return "must not be empty"
        case "not" if isinstance(schema.get("description"), str):  # a key the schema names only to refuse it
            return schema["description"]
    return error.message


def _labelled(data: Any, kind: str) -> list[tuple[str, str]]:
    """(id, label) of the tiers, sub-grades or stages the file itself defines."""
    def rows(items: Any) -> list[dict]:
        return [r for r in items if isinstance(r, dict)] if isinstance(items, list) else []

    tiers = data.get("tiers") if isinstance(data, dict) else None
    levels = rows(tiers.get("levels")) if isinstance(tiers, dict) else []
    lifecycle = data.get("lifecycle") if isinstance(data, dict) else None
    found = {"tier": levels, "subgrade": [s for level in levels for s in rows(level.get("subgrades"))],
             "stage": rows(lifecycle.get("stages")) if isinstance(lifecycle, dict) else []}.get(kind, [])
    return [(str(r.get("id")), r["label"]) for r in found if isinstance(r.get("label"), str)]


def label_fix(data: Any, path: tuple, value: Any) -> str:
    """``; '衰退期' is the label of stage 'decline': write its id, decline``: a tier or stage named by its label.

    Chinese staff know their grades by the labels (`稳定期 Stable`), and write them where the id goes (a service
    level's ``stage``, a cell of its sheet); "not a valid id" alone did not say which id was meant.
    """
    kind = next((p for p in reversed(path) if isinstance(p, str)), None)
    if not isinstance(value, str) or kind not in ("tier", "subgrade", "stage"):
        return ""
    wanted = value.strip().casefold()
    for row_id, label in _labelled(data, kind):
        if wanted and (label.strip().casefold() == wanted or wanted in label.casefold().split()):
            what = "sub-grade" if kind == "subgrade" else kind
            return f"; {value!r} is the label of {what} {row_id!r}: write its id, {row_id}"
    return ""


def value_at(data: Any, path: tuple) -> Any:
    """The value at ``path`` of ``data``, or None when it has no such value."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def validate_document(doc: SourceDocument, schema_name: str = "policy.schema.json") -> list[Diagnostic]:
    """All schema problems of ``doc.data``."""
    return _keys_written_as_entries(doc, load_schema(schema_name), validate_subtree(doc, schema_validator(schema_name), ()))


_ENTRY = {"metrics": ("a metric", "metrics"), "scores": ("a score", "scores"), "credit": ("a credit check", "credit checks"),
          "actions": ("an action", "actions")}


def _keys_written_as_entries(doc: SourceDocument, schema: dict, problems: list[Diagnostic]) -> list[Diagnostic]:
    """`window: 12 months` indented like the metrics' names, not like the keys of the metric above it: YAML reads a
    metric named `window`, and the schema's "expected object" (or an unknown `factors` beside a missing `use`, for a
    plugin entry's `params:`) says nothing of indentation.  Each such entry's problems become one, naming the entry
    it belongs to and how far to indent it."""
    data = doc.data if isinstance(doc.data, dict) else {}
    for section, (entry, entries) in _ENTRY.items():
        names = data.get(section)
        keys = (((schema.get("properties") or {}).get(section) or {}).get("additionalProperties") or {}).get("properties")
        if not isinstance(names, dict) or not keys:
            continue
        listed = list(names)
        for i, name in enumerate(listed):
            where = format_path((section, name))
            own = [d for d in problems if d.path == where or d.path.startswith((where + ".", where + "["))]
            if name not in keys or not own:
                continue
            before = listed[i - 1] if i else None
            inner = names.get(before) if before is not None else None
            first = next(iter(inner), None) if isinstance(inner, dict) else None
            fix = ""
            if first is not None:
                at = doc.position((section, before, first))
                fix = f"; if it belongs to {before!r} (line {doc.position((section, before)).line}), indent it " \
                      f"{at.col - 1} spaces like its '{first}:'"
            pos = doc.position((section, name))
            problems = [d for d in problems if d not in own] + [Diagnostic(
                pos.file, pos.line, pos.col, where,
                f"{name!r} is indented like the names of the {entries}, but it is a key of {entry}{fix}")]
    return sorted(problems)


def validate_params(doc: SourceDocument, schema: dict, root: tuple, owner: str = "") -> list[Diagnostic]:
    """All problems of the sub-tree at ``root`` against a plugin's params schema.

    ``owner`` (``scorer 'rfm' of plugin 'value_scoring'``) ends each message: the schema is the plugin's, not
    crm-rules', so its author and its documentation are what a user needs to find when the rules seem wrong.
    """
    diagnostics = validate_subtree(doc, jsonschema.Draft202012Validator(schema), root, describe_missing=True)
    return [replace(d, message=f"{d.message} (params schema of {owner})") for d in diagnostics] if owner else diagnostics


def _missing_described(error: ValidationError, message: str) -> str:
    """``missing required key 'recency' (Metric: days since the last order.)``: a plugin's params are documented only
    in its schema, so the description of a missing key is the one place that says what to write."""
    missing = message.split("'")[1] if message.count("'") >= 2 else None
    properties = error.schema.get("properties") if isinstance(error.schema, dict) else None
    about = properties.get(missing, {}) if isinstance(properties, dict) and missing else {}
    description = about.get("description") if isinstance(about, dict) else None
    return f"{message} ({description})" if isinstance(description, str) and description.strip() else message


def validate_subtree(doc: SourceDocument, validator: jsonschema.Draft202012Validator, root: tuple,
                     describe_missing: bool = False) -> list[Diagnostic]:
    data = doc.data
    for part in root:
        data = data[part]
    diagnostics: list[Diagnostic] = []
    for top in validator.iter_errors(data):
        for error in _leaf_errors(top):
            path = root + tuple(error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                allowed = error.schema.get("properties", {})
                for key in error.instance:
                    if key not in allowed:
                        pos = doc.position(path + (key,))
                        diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path + (key,)),
                                                      _unknown_key(key, allowed, error.instance)))
                continue
            if error.validator == "propertyNames" or "propertyNames" in error.schema_path:
                pos = doc.position(path + (error.instance,))
                thousands = _thousands_key(error.instance, value_at(doc.data, path))
                if thousands is not None:  # `{credit_limit: 100,000}`: the key '000' is no name anyone wrote
                    diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path + (error.instance,)),
                                                  f"unknown key {error.instance!r}: {thousands}"))
                    continue
                words = (in_words(error.validator_value, error.instance, defines=path == ("metrics",))  # a metric has a label
                         if error.validator == "pattern" else None)
                diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path + (error.instance,)),
                                              f"{error.instance!r} {words or _message(error)}{_slip_fix(error.instance)}"))
                continue
            pos = doc.value_position(path) if error.validator not in ("required",) else doc.position(path)
            message = _message(error)
            if error.validator == "pattern" and not root:
                message += label_fix(doc.data, path, error.instance)
            if describe_missing and error.validator == "required":
                message = _missing_described(error, message)
            diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), message))
    return sorted(set(diagnostics))
