"""Static types for policy expressions, checked when a policy is loaded.

A misspelt metric or a comparison of a date with a number must fail at
``crm-rules validate`` time with a position, not as a surprising SQL result.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import difflib
from collections.abc import Mapping
from typing import Any

from . import expr_ast as ast
from .ime_text import iso_date

NUMBER, TEXT, DATE, BOOL, NULL = "number", "text", "date", "bool", "null"
TYPES = (NUMBER, TEXT, DATE, BOOL)


class ExpressionTypeError(Exception):
    def __init__(self, message: str, node: ast.Node, hint: str | None = None, unknown: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = node.line
        self.col = node.col
        self.hint = hint
        self.unknown = unknown  # the unknown name, when that is the problem


def closest(word: str, choices) -> str | None:
    """The one of ``choices`` that ``word`` is most likely a misspelling of, or None."""
    choices = list(choices)
    same = [c for c in choices if isinstance(c, str) and c.casefold() == word.casefold()]
    if same:  # 'a' for tier 'A': too short for difflib to call it close
        return same[0]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' or '' — shared by every unknown-name message."""
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close is not None else ""


def with_article(word: str) -> str:
    """``an index``, ``an avg metric``, ``a str``: a word with the article messages put before it."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def is_iso_date(value: object) -> bool:
    """A YYYY-MM-DD text naming a real day.

    The round trip matters: since Python 3.11 ``date.fromisoformat`` also reads other ISO forms, such as
    the week date '2026-W01-1' (10 characters too), and SQLite's date() lets 2026-02-30 through unchanged."""
    if not isinstance(value, str):
        return False
    try:
        return dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _date_fix(lt: str, rt: str, left: ast.Node, right: ast.Node) -> str:
    """`since < 2020/01/01` divides 2020 by 1 and by 1: the date it was meant to be, to write in quotes."""
    other = right if lt == DATE else left if rt == DATE else None
    day = iso_date(other.text) if other is not None and NUMBER in (lt, rt) else None
    return f": unquoted, {other.text} is arithmetic on numbers, not a date; write the date in quotes: '{day}'" if day else ""


def _date_literal_fix(text: str) -> str:
    """What to write for a date literal that is no YYYY-MM-DD day: the day written another way (`2026/06/30`, and
    `30/06/2026` where the day cannot be the month), or why it is no day (`2026-02-30`)."""
    if (day := iso_date(text)) is not None:
        return f"; write '{day}'"
    match = re.fullmatch(r"\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})\s*", text)
    if match and int(match[1]) > 12 and (day := iso_date(f"{match[3]}-{match[2]}-{match[1]}")) is not None:
        return f"; write '{day}'"
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if match and 1 <= int(match[2]) <= 12 and int(match[1]) >= dt.MINYEAR:
        year, month = int(match[1]), int(match[2])
        return f": {dt.date(year, month, 1):%B %Y} has {calendar.monthrange(year, month)[1]} days"
    return ""


def value_type(value: object) -> str:
    """The type of a literal value, written in an expression or in the policy's YAML (a metric's ``default``)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    return TEXT


ROUND_DIGITS = (0, 30)


def check_round_digits(node: ast.Node) -> None:
    """Reject a round() whose ``digits`` is a literal the language would silently change.

    The language holds digits to whole numbers 0..30 as SQLite does, so ``round(x, -3)`` is
    ``round(x)``, not a rounding to thousands, and ``round(x, 2.5)`` is ``round(x, 2)``.  Written as a
    literal, such a value is always a mistake, so policies are checked for it when they are loaded.
    It is not a type error: ``TypeChecker`` keeps the language's semantics, where digits computed by
    an expression are held to 0..30 when the policy runs.
    """
    low, high = ROUND_DIGITS
    for call in ast.walk(node):
        if not (isinstance(call, ast.Call) and call.function == "round" and len(call.args) == 2
                and isinstance(call.args[1], ast.Literal)):
            continue
        x, digits = call.args
        value = digits.value
        if value is None:
            fix = "the result would always be missing"
        elif isinstance(value, (int, float)) and float(value).is_integer() and low <= value <= high:
            continue
        elif isinstance(value, (int, float)) and value < 0:
            fix = "negative digits count as 0, they do not round to tens or thousands"
            if float(value).is_integer() and value >= -15:
                fix += f"; write round({x.text} / {10 ** int(-value)}) * {10 ** int(-value)}"
        elif isinstance(value, (int, float)) and value > high:
            fix = f"{high} is the most (and only 15 digits are exact)"
        else:
            fix = f"e.g. round({x.text}, {int(value)})"
        raise ExpressionTypeError(f"the digits of round() must be a whole number from {low} to {high}, "
                                  f"not {digits.text}: {fix}", digits)


def _quote_words(comparison: ast.Node, words: list[ast.Name]) -> str:
    """The comparison's text with each of ``words`` in quotes; just the quoted words when the text does not
    hold them where their positions say (a comparison over several lines)."""
    text = comparison.text
    for word in sorted(words, key=lambda w: w.col, reverse=True):
        at = word.col - comparison.col
        if word.line != comparison.line or text[at:at + len(word.name)] != word.name:
            return ", ".join(f"'{w.name}'" for w in words)
        text = f"{text[:at]}'{word.name}'{text[at + len(word.name):]}"
    return text


# The grades a run decides: action params read them (after grading), conditions of the rules that decide them cannot.
GRADES = ("tier", "subgrade", "sub_grade", "stage", "service_level")
GRADES_DECIDED = ("the tier, sub-grade, stage and service level are what the rules decide, so conditions cannot "
                  "read them (actions' params can); compare what the tier's rule compares, or, in a service level, "
                  "use its tier:, subgrade: and stage: keys")


def _null_compared(node: ast.Compare) -> str | None:
    """Why ``x = null`` (a comparison with the literal null) is wrong, with the fix, or None for any other comparison.

    Compared with a missing value, every value gives unknown, so the comparison never holds: `recency_days = null`
    matches no customer, not the ones without orders."""
    nulls = [side for side in (node.left, node.right) if isinstance(side, ast.Literal) and side.value is None]
    if not nulls:
        return None
    other = node.right if nulls[0] is node.left else node.left
    fix = {"=": f"{other.text} is null", "!=": f"{other.text} is not null"}.get(node.op)
    return (f"{node.text!r} is never true: compared with null (a missing value) every value gives unknown"
            + (f"; write {fix}" if fix else "; to test for a missing value write is null or is not null"))


def _or_of_values(node: ast.Logical, item: ast.Node, found: str) -> str | None:
    """`industry = 'healthcare' or 'retail'`: the values after `or` were meant as more values of the comparison
    before it; the condition to write, with `in`, or None when ``item`` is not such a value."""
    if node.op != "or" or not isinstance(item, ast.Literal) or found not in (TEXT, NUMBER):
        return None
    first = node.items[0]
    if not (isinstance(first, ast.Compare) and first.op == "=" and isinstance(first.right, ast.Literal)):
        return None
    values = [first.right] + [i for i in node.items[1:] if isinstance(i, ast.Literal)]
    return (f"each side of 'or' must be a condition, but {item.text!r} is a {found}; to test several values write "
            f"{first.left.text} in [{', '.join(v.text for v in values)}]")


# name -> (min args, max args or None)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "coalesce": (2, None),
    "days_between": (2, 2),
    "abs": (1, 1),
    "round": (1, 2),
    "min": (2, None),
    "max": (2, None),
    "if": (3, 3),
    "date": (1, 1),
    "as_of": (0, 0),
    "lower": (1, 1),
    "upper": (1, 1),
    "length": (1, 1),
}


def _unify(types: list[str], node: ast.Node, what: str) -> str:
    real = {t for t in types if t != NULL}
    if len(real) > 1:
        raise ExpressionTypeError(f"{what} mixes {' and '.join(sorted(real))} values", node)
    return real.pop() if real else NULL


class TypeChecker:
    """Infers the type of a node given the types of the names in scope."""

    def __init__(self, scope: Mapping[str, str], scope_label: str = "name", source: Any = None):
        self.scope = scope
        self.scope_label = scope_label
        # the source table whose row the names are columns of (unmapped_columns.RowSource): says what an unknown
        # name is (a column mapped under another name, one not mapped, or one the policy removed)
        self.source = source

    def check_condition(self, node: ast.Node) -> None:
        found = self.infer(node)
        if found not in (BOOL, NULL):
            raise ExpressionTypeError(f"a condition must be true or false, but this is a {found}", node, hint="compare it, e.g. `x > 0`")

    def infer(self, node: ast.Node) -> str:
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node)

    def _expect(self, node: ast.Node, wanted: str, role: str, found: str | None = None) -> str:
        """``found``: the type of ``node`` when the caller inferred it already (inferring again would check the
        node's whole subtree again, at every level of nesting)."""
        found = self.infer(node) if found is None else found
        if found not in (wanted, NULL):
            raise ExpressionTypeError(f"{role} must be a {wanted}, but {node.text!r} is a {found}", node)
        return found

    def _literal(self, node: ast.Literal) -> str:
        return value_type(node.value)

    def unknown_names(self, node: ast.Node) -> list[ExpressionTypeError]:
        """An error for each name not in scope, at its first use, in the order written.

        ``infer`` stops at the first one; a condition with two misspelt metrics needs both named at once.
        """
        errors: list[ExpressionTypeError] = []
        names = sorted((n for n in ast.walk(node) if isinstance(n, ast.Name)), key=lambda n: (n.line, n.col))
        unknown = [n for n in names if n.name not in self.scope]
        if not unknown:
            return errors
        as_text = self._compared_with_text(node)
        for name in unknown:
            if all(e.unknown != name.name for e in errors):
                errors.append(self._unknown(name, as_text.get(id(name))))
        return errors

    def _compared_with_text(self, node: ast.Node) -> dict[int, str]:
        """Unknown names compared with text (``region = 华东``, ``region in [华东, 华南]``): the quotes were
        forgotten.  id of the name's node -> the comparison as it would read with the text quoted."""
        fixes: dict[int, str] = {}
        for n in ast.walk(node):
            if isinstance(n, ast.Compare) and n.op in ("=", "!="):
                pairs = [(n.left, n.right), (n.right, n.left)]
            elif isinstance(n, ast.InList):
                pairs = [(item, n.operand) for item in n.items]
            else:
                continue
            words = [w for w, other in pairs if isinstance(w, ast.Name) and w.name not in self.scope and self._is_text(other)]
            fixed = _quote_words(n, words)
            fixes.update({id(w): fixed for w in words})
        return fixes

    def _is_text(self, node: ast.Node) -> bool:
        """Text read from the data (a literal beside the word is no sign that the word is text too)."""
        if isinstance(node, ast.Literal):
            return False
        try:
            return self.infer(node) == TEXT
        except ExpressionTypeError:
            return False

    def _unknown(self, node: ast.Name, quoted: str | None = None) -> ExpressionTypeError:
        message = f"unknown {self.scope_label} {node.name!r}{did_you_mean(node.name, self.scope)}"
        if quoted is not None:
            message += f"{' I' if message.endswith('?') else '; i'}f it is a text value, quote it: {quoted}"
        elif node.name.lower() in GRADES and "did you mean" not in message:
            message += f": {GRADES_DECIDED}"
        return ExpressionTypeError(message, node, hint=f"known: {', '.join(sorted(self.scope)) or '(none)'}",
                                   unknown=node.name)

    def _name(self, node: ast.Name) -> str:
        if node.name not in self.scope:
            raise self._unknown(node)
        return self.scope[node.name]

    def _negate(self, node: ast.Negate) -> str:
        self._expect(node.operand, NUMBER, "the operand of '-'")
        return NUMBER

    def _arithmetic(self, node: ast.Arithmetic) -> str:
        self._expect(node.left, NUMBER, f"the left side of {node.op!r}")
        self._expect(node.right, NUMBER, f"the right side of {node.op!r}")
        return NUMBER

    def comparable(self, left: ast.Node, right: ast.Node, node: ast.Node, ordered: bool) -> None:
        lt, rt = self.infer(left), self.infer(right)
        # An ISO date string literal compares with a date.
        if lt == DATE and rt == TEXT and isinstance(right, ast.Literal):
            rt = self._date_literal(right)
        if rt == DATE and lt == TEXT and isinstance(left, ast.Literal):
            lt = self._date_literal(left)
        if NULL in (lt, rt):
            return
        if lt != rt:
            raise ExpressionTypeError(f"cannot compare {lt} {left.text!r} with {rt} {right.text!r}"
                                      f"{_date_fix(lt, rt, left, right)}", node)
        if ordered and lt == BOOL:
            raise ExpressionTypeError("true/false values can only be compared with = or !=", node)

    def _date_literal(self, node: ast.Literal) -> str:
        if not is_iso_date(node.value):
            raise ExpressionTypeError(f"{node.value!r} is not a date{_date_literal_fix(node.value)}", node,
                                      hint="write dates as 'YYYY-MM-DD'")
        return DATE

    def _compare(self, node: ast.Compare) -> str:
        if (never := _null_compared(node)) is not None:
            raise ExpressionTypeError(never, node)
        self.comparable(node.left, node.right, node, ordered=node.op not in ("=", "!="))
        return BOOL

    def _between(self, node: ast.Between) -> str:
        self.comparable(node.operand, node.low, node, ordered=True)
        self.comparable(node.operand, node.high, node, ordered=True)
        return BOOL

    def _inlist(self, node: ast.InList) -> str:
        if not node.items:
            raise ExpressionTypeError("the list after 'in' is empty", node)
        for item in node.items:
            self.comparable(node.operand, item, item, ordered=False)
        return BOOL

    def _isnull(self, node: ast.IsNull) -> str:
        self.infer(node.operand)
        return BOOL

    def _logical(self, node: ast.Logical) -> str:
        for item in node.items:
            found = self.infer(item)
            if (values := _or_of_values(node, item, found)) is not None:
                raise ExpressionTypeError(values, item)
            self._expect(item, BOOL, f"each side of {node.op!r}", found)
        return BOOL

    def _not(self, node: ast.Not) -> str:
        self._expect(node.operand, BOOL, "the operand of 'not'")
        return BOOL

    def _call(self, node: ast.Call) -> str:
        fn = node.function
        if fn not in FUNCTIONS:
            return self._plugin_call(node)
        low, high = FUNCTIONS[fn]
        n = len(node.args)
        if n < low or (high is not None and n > high):
            wanted = str(low) if low == high else f"{low} or more" if high is None else f"{low} to {high}"
            raise ExpressionTypeError(f"{fn}() takes {wanted} arguments, got {n}", node)
        args = node.args
        if fn in ("coalesce", "min", "max"):
            result = _unify([self.infer(a) for a in args], node, f"{fn}()")
            if fn != "coalesce" and result not in (NUMBER, DATE, TEXT, NULL):
                raise ExpressionTypeError(f"{fn}() takes numbers, dates or text", node)
            return result
        if fn == "days_between":
            for a in args:
                self._date_argument(a, fn)
            return NUMBER
        if fn in ("abs", "round"):
            for a in args:
                self._expect(a, NUMBER, f"the argument of {fn}()")
            return NUMBER
        if fn == "if":
            self._expect(args[0], BOOL, "the first argument of if()")
            return _unify([self.infer(args[1]), self.infer(args[2])], node, "if()")
        if fn == "date":
            if not (isinstance(args[0], ast.Literal) and isinstance(args[0].value, str)):
                raise ExpressionTypeError("date() takes a text literal such as '2026-01-31'", node)
            return self._date_literal(args[0])
        if fn == "as_of":
            return DATE
        if fn in ("lower", "upper"):
            self._expect(args[0], TEXT, f"the argument of {fn}()")
            return TEXT
        if fn == "length":
            self._expect(args[0], TEXT, "the argument of length()")
            return NUMBER
        raise AssertionError(fn)  # pragma: no cover

    def _plugin_call(self, node: ast.Call) -> str:
        from .plugin_manager import get_registry

        registry = get_registry()
        contribution = registry.get("function", node.function)
        if contribution is None:
            known = sorted(FUNCTIONS) + registry.names("function")
            raise ExpressionTypeError(f"unknown function {node.function!r}{did_you_mean(node.function, known)}", node,
                                      hint=f"functions: {', '.join(known)}{registry.absent_note()}")
        wanted = contribution.schema["args"]
        if len(node.args) != len(wanted):
            raise ExpressionTypeError(f"{node.function}() takes {len(wanted)} arguments, got {len(node.args)}", node)
        for i, (arg, kind) in enumerate(zip(node.args, wanted)):
            if kind == DATE and isinstance(arg, ast.Literal) and isinstance(arg.value, str):
                self._date_literal(arg)  # '2026-01-31' is a date where one is wanted, as in comparisons
            else:
                self._expect(arg, kind, f"argument {i + 1} of {node.function}()")
        return contribution.schema["returns"]

    def _date_argument(self, node: ast.Node, fn: str) -> None:
        found = self.infer(node)
        if found == TEXT and isinstance(node, ast.Literal):
            self._date_literal(node)
        elif found not in (DATE, NULL):
            raise ExpressionTypeError(f"the arguments of {fn}() must be dates, but {node.text!r} is a {found}", node)
