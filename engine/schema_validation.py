"""JSON Schema validation that reports every error at once, where it is.

Modelled on check-jsonschema: each error becomes ``file:line:col: path:
message``; unknown keys get a "did you mean" from the keys the schema allows.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .errors import Diagnostic
from .expr_types import did_you_mean
from .name_rules import in_words
from .yaml_source import SourceDocument, format_path


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


_PERCENT = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*%\s*")
_NUMBER_TEXT = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")


def _number_fix(wanted: str, value: Any) -> str:
    """The number a text where a number belongs was meant to be: '5%' is 0.05 (shares and discounts are fractions, as the
    metrics give them), '0.05' in quotes is text to YAML."""
    if not isinstance(value, str) or ("number" not in wanted and "integer" not in wanted):
        return ""
    if match := _PERCENT.fullmatch(value):
        fraction = float(match.group(1)) / 100
        return f": percentages are fractions here, write {fraction:g} for {match.group(1)}%"
    if _NUMBER_TEXT.fullmatch(value):
        return f": write it without quotes, {value.strip()}, for YAML to read a number"
    return ""


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
            return f"expected {wanted}, got {_type_name(value)}{shown}{_number_fix(wanted, value)}"
        case "minLength" if error.validator_value == 1:
            return "must not be empty"
        case "enum" | "const":
            allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
            hint = did_you_mean(str(value), [str(a) for a in allowed])
            return f"{json.dumps(value, ensure_ascii=False)} is not allowed here; use one of: {', '.join(map(str, allowed))}{hint}"
        case "pattern":
            shown = json.dumps(value, ensure_ascii=False)
            words = in_words(error.validator_value, value, defines=tuple(error.absolute_path)[-1:] == ("id",))
            if words is not None:
                return f"{shown} {words}"
            about = schema.get("description") or schema.get("title") or f"it must match the pattern {error.validator_value}"
            return f"{shown} is not in the expected form. {about}"
        case "minItems":
            return f"needs at least {error.validator_value} item(s)"
        case "minProperties":
            return "must not be empty"
    return error.message


def validate_document(doc: SourceDocument, schema_name: str = "policy.schema.json") -> list[Diagnostic]:
    """All schema problems of ``doc.data``."""
    return validate_subtree(doc, schema_validator(schema_name), ())


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
                                                      f"unknown key {key!r}{did_you_mean(key, allowed)}"))
                continue
            if error.validator == "propertyNames" or "propertyNames" in error.schema_path:
                pos = doc.position(path + (error.instance,))
                words = (in_words(error.validator_value, error.instance, defines=path == ("metrics",))  # a metric has a label
                         if error.validator == "pattern" else None)
                diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path + (error.instance,)),
                                              f"{error.instance!r} {words or _message(error)}"))
                continue
            pos = doc.value_position(path) if error.validator not in ("required",) else doc.position(path)
            message = _message(error)
            if describe_missing and error.validator == "required":
                message = _missing_described(error, message)
            diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), message))
    return sorted(set(diagnostics))
