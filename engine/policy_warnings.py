"""Mistakes in a valid policy that `validate` can see without data: rules that can never decide, and numbers
that may have been written with thousands separators in a list (``grouped_numbers``).

A ladder written from the lowest threshold up (``C: revenue >= 1000`` before ``A: revenue >= 100000``) is
valid YAML and valid rules, and under first hit it puts everybody who would be A into C: nothing fails, the
grades are just wrong.  `analyze` finds it on the data; these warnings find it as the policy is written, from
the same interval analysis (:mod:`rule_analysis`), so a policy repository's CI can stop it (`validate --strict`).
A warning never stops a run: a rule kept for later, or shadowed on purpose, is the author's choice.
"""

from __future__ import annotations

from .errors import Diagnostic
from .expr_parser import ExpressionSyntaxError, parse_expression
from .expr_types import did_you_mean
from .plugin_context import grade_literals
from .grouped_numbers import grouped_number_warning, grouped_numbers
from .yaml_source import format_path
from .policy_model import Policy
from .rule_analysis import static_findings

_WHAT = {"tier": "tier", "subgrade": "sub-grade", "stage": "stage"}


def policy_warnings(policy: Policy) -> list[Diagnostic]:
    """Every rule that no customer can ever reach, and every overlap a ``hit_policy: unique`` list would stop on,
    at the rule's ``when``; then every ``1,500`` in an expression, where it is written, and every text a plugin's
    output is compared with that is none of the values it lists."""
    return _rule_warnings(policy) + _grouped_number_warnings(policy) + _unlisted_value_warnings(policy)


def _unlisted_value_warnings(policy: Policy) -> list[Diagnostic]:
    """`credit_check_outcome in ['hold', 'blocked']`, `credit_check_grade = 'AAA'` where the grades are good, fair and
    poor: the output never has that value, so the comparison never holds (or, with !=, always does), and the rule
    or service level it decides is silently never given.  A warning, not an error: a plugin's ``values`` list the
    order of a summary, and may leave out values it seldom gives."""
    listed = {n: o.column.values for n, o in policy.outputs.items() if o.column.values}
    out = []
    for path, text in policy.expressions.items() if listed else ():
        try:
            node = parse_expression(text)
        except ExpressionSyntaxError:  # pragma: no cover - a loaded policy's expressions parse
            continue
        for name, literal in grade_literals(node, set(listed)):
            values = listed[name]
            if literal.value in values:
                continue
            pos = policy.source.text_position(path, literal.line, literal.col)
            out.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path),
                                  f"{name} is never {literal.value!r}: its values are {', '.join(values)}, so "
                                  f"comparing it with {literal.value!r} matches no customer (with !=, every one)"
                                  f"{did_you_mean(literal.value, values)}"))
    return out


def _grouped_number_warnings(policy: Policy) -> list[Diagnostic]:
    out = []
    for path, text in policy.expressions.items():
        for line, col, written in grouped_numbers(text):
            pos = policy.source.text_position(path, line, col)
            out.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), grouped_number_warning(written)))
    return out


def _rule_warnings(policy: Policy) -> list[Diagnostic]:
    out = []
    for lst, rule, finding in static_findings(policy):
        what = f"{_WHAT[lst.kind]} {rule.id!r}" + (f" (of tier {lst.parent!r})" if lst.parent else "")
        if finding["kind"] == "never true":
            message = f"{what} can never match: no value of {finding['metric']} meets its condition"
            fix = "fix the condition, or remove the rule"
        elif finding["kind"] == "shadowed":
            earlier = ", ".join(finding["covered_by"])
            message = (f"{what} can never match: every value of {finding['metric']} it covers is taken first by "
                       f"{earlier} (the first rule that matches decides)")
            fix = (f"put it before {earlier} (a ladder goes from the strictest threshold to the loosest), or narrow "
                   f"{'that rule' if len(finding['covered_by']) == 1 else 'those rules'}")
        else:  # an overlap under hit_policy unique
            message = (f"{what} overlaps {finding['other']!r} for {finding['metric']} in {finding['where']}; "
                       f"with hit_policy unique, apply stops on any customer there")
            fix = "make the conditions exclusive, or use hit_policy first"
        path = rule.condition.path if rule.condition is not None else rule.path
        pos = policy.source.value_position(path)
        out.append(Diagnostic(pos.file, pos.line, pos.col, format_path(path), f"{message}; {fix}"))
    return out
