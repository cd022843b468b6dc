"""Property tests of the expression language: random well-typed expressions mean
in SQLite exactly what an independent Python interpreter of the documented
semantics says; arbitrary text fails only with the language's own errors; and
no literal value ever reaches the SQL text.

The generator builds a small tree (``G``) together with its source text, so the
reference interpreter below evaluates what the *test* meant, not what the
parser produced: a precedence or unescaping bug in the parser shows up as a
wrong value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from crm_rules.engine import expr_ast as ast
from crm_rules.engine.expr_parser import ExpressionSyntaxError, parse_expression
from crm_rules.engine.expr_sql import SqlParams, quote_identifier, to_sql
from crm_rules.engine.expr_types import ExpressionTypeError, TypeChecker
from crm_rules.engine.policy_model import sqlite_can_parse

NUM, TXT, DAT, BOO, NULL = "number", "text", "date", "bool", "null"
SCOPE = {"n1": NUM, "n2": NUM, "t1": TXT, "d1": DAT, "b1": BOO}
NAMES_OF = {NUM: ["n1", "n2"], TXT: ["t1"], DAT: ["d1"], BOO: ["b1"]}
COLUMNS = list(SCOPE)
INT64 = (-(2**63), 2**63 - 1)

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Precedence levels of the grammar, loosest first; an operand whose level is
# below what its position needs is rendered in parentheses.
OR, AND, NOT, PRED, SUM, PROD, UNARY, ATOM = range(1, 9)


# --------------------------------------------------------------------------
# Values shared by literals and rows (so equality tests actually hit)
# --------------------------------------------------------------------------

TEXT_ALPHABET = "abcXYZ09 _-;%'\"\\\n\t华东南客户中文éÄß😀"
COMMON_TEXTS = ["", "a", "abc", "ABC", "华东", "华南", "O'Brien", 'say "hi"', "back\\slash", "'; DROP TABLE t; --",
                "line\nbreak", "tab\there", "ÄÖü", "ß"]
texts = st.one_of(st.sampled_from(COMMON_TEXTS), st.text(alphabet=TEXT_ALPHABET, max_size=8))
ints = st.one_of(st.sampled_from([0, 1, -1, 2, 3, 7, 10, 100, 1000, 500_000]), st.integers(-10**6, 10**6),
                 st.integers(-10**12, 10**12))
floats = st.one_of(st.sampled_from([0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.1, 0.125, 2.675, 1e-5, 1.005]),
                   st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                   st.decimals(-10**6, 10**6, places=3, allow_nan=False, allow_infinity=False).map(float))
numbers = st.one_of(ints, floats)
iso_dates = st.one_of(
    st.sampled_from(["2024-02-29", "2024-03-01", "2025-12-31", "2026-01-01", "2026-06-30", "2000-01-01"]),
    st.dates(dt.date(1990, 1, 1), dt.date(2040, 12, 31)).map(dt.date.isoformat),
)


@st.composite
def rows(draw):
    def maybe(values):  # NULL about a quarter of the time
        return st.one_of(values, values, values, st.none())

    return {
        "n1": draw(maybe(numbers)),
        "n2": draw(maybe(numbers)),
        "t1": draw(maybe(texts)),
        "d1": draw(maybe(iso_dates)),
        "b1": draw(st.sampled_from([None, 0, 1])),
    }


# Rows every example is evaluated on besides the drawn ones.
FIXED_ROWS = [
    {"n1": None, "n2": None, "t1": None, "d1": None, "b1": None},
    {"n1": 0, "n2": 0.0, "t1": "", "d1": "2024-02-29", "b1": 0},
    {"n1": -3, "n2": 2.5, "t1": "华东", "d1": "2026-06-30", "b1": 1},
]


# --------------------------------------------------------------------------
# Generator: a typed tree and its text
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class G:
    kind: str
    parts: tuple
    text: str
    level: int


class Render:
    """Cosmetic choices (keyword case, spaces, extra parentheses) from a recorded Random."""

    def __init__(self, rnd):
        self.rnd = rnd

    def kw(self, word: str) -> str:
        return self.rnd.choice([word, word, word.upper(), word.capitalize()])

    def ws(self) -> str:
        return self.rnd.choice([" ", " ", " ", "  ", "\n", "\t", " \n  "])

    def sym(self) -> str:
        return self.rnd.choice(["", " ", " "])

    def wrap(self, g: G, need: int) -> str:
        if g.level < need or self.rnd.random() < 0.04:
            return f"({self.sym()}{g.text}{self.sym()})"
        return g.text

    def number(self, value) -> tuple[str, int]:
        if value < 0 or (isinstance(value, float) and math.copysign(1, value) < 0):
            text, _ = self.number(-value)
            return "-" + self.rnd.choice(["", " "]) + text, UNARY
        text = repr(value) if isinstance(value, float) else str(value)
        head, sep, tail = text.partition(".") if "e" not in text.split(".")[0] else (text, "", "")
        if head.isdigit() and len(head) > 1 and self.rnd.random() < 0.4:
            # underscores anywhere after the first digit, also doubled or trailing: 1_000, 1__0, 10_
            chars = [head[0]]
            for ch in head[1:]:
                chars.append(self.rnd.choice(["", "", "_", "__"]) + ch)
            if self.rnd.random() < 0.1:
                chars.append("_")
            head = "".join(chars)
        return head + sep + tail, ATOM

    def string(self, value: str) -> str:
        quote = self.rnd.choice("'\"")
        out = []
        for ch in value:
            if ch == "\\":
                out.append("\\\\")
            elif ch == quote:
                out.append("\\" + quote)
            elif ch == "\n":
                out.append(self.rnd.choice(["\\n", "\n"]))
            elif ch == "\t":
                out.append(self.rnd.choice(["\\t", "\t"]))
            elif ch not in "nt" and self.rnd.random() < 0.05:
                out.append("\\" + ch)  # a needless escape keeps the character
            else:
                out.append(ch)
        return quote + "".join(out) + quote


def lit(r: Render, value) -> G:
    if value is None:
        return G("lit", (None,), r.kw("null"), ATOM)
    if isinstance(value, bool):
        return G("lit", (value,), r.kw("true" if value else "false"), ATOM)
    if isinstance(value, (int, float)):
        text, level = r.number(value)
        return G("lit", (value,), text, level)
    return G("lit", (value,), r.string(value), ATOM)


def call(r: Render, fn: str, args: list[G]) -> G:
    name = r.rnd.choice([fn, fn, fn.upper()])
    text = f"{name}({r.sym()}" + f",{r.sym()}".join(a.text for a in args) + f"{r.sym()})"
    return G("call", (fn, tuple(args)), text, ATOM)


@st.composite
def expressions(draw, ty: str | None = None, depth: int = 4):
    """(G, type) for a random well-typed expression; ``ty`` None means any type."""
    # cosmetics come from a seeded Random: hypothesis' own randoms() favour 0.0, i.e. parentheses everywhere
    r = Render(random.Random(draw(st.integers(0, 2**32))))
    if ty is None:
        ty = draw(st.sampled_from([BOO, BOO, NUM, NUM, TXT, DAT]))
    # the top is always an operator or a function, never a bare leaf
    return GENERATORS[ty](draw, r, depth - 1), ty


def gen(draw, r: Render, ty: str, depth: int) -> G:
    if depth <= 0 or draw(st.integers(0, 9)) < 3:
        return leaf(draw, r, ty)
    return GENERATORS[ty](draw, r, depth - 1)


def leaf(draw, r: Render, ty: str) -> G:
    if draw(st.integers(0, 19)) == 0:
        return lit(r, None)
    if draw(st.booleans()):
        return _name(draw, r, ty)
    if ty == NUM:
        return lit(r, draw(numbers))
    if ty == TXT:
        return lit(r, draw(texts))
    if ty == BOO:
        return lit(r, draw(st.booleans()))
    return date_value(draw, r)


def _name(draw, r: Render, ty: str) -> G:
    name = draw(st.sampled_from(NAMES_OF[ty]))
    return G("name", (name,), name, ATOM)


def date_value(draw, r: Render) -> G:
    """A date-typed expression that is not a plain text literal."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return _name(draw, r, DAT)
    if choice == 1:
        return call(r, "as_of", [])
    return call(r, "date", [lit(r, draw(iso_dates))])


def date_operand(draw, r: Render, depth: int) -> G:
    """Where a date is compared, an ISO text literal stands for a date."""
    if draw(st.integers(0, 3)) == 0:
        return lit(r, draw(iso_dates))
    return gen(draw, r, DAT, depth)


def arith(r: Render, op: str, left: G, right: G) -> G:
    level = SUM if op in "+-" else PROD
    text = f"{r.wrap(left, level)}{r.sym()}{op}{r.sym()}{r.wrap(right, level + 1)}"
    return G("arith", (op, left, right), text, level)


def gen_number(draw, r: Render, depth: int) -> G:
    k = draw(st.integers(0, 12))
    sub = lambda ty=NUM: gen(draw, r, ty, depth)  # noqa: E731
    if k <= 2:
        return arith(r, draw(st.sampled_from("+-*/")), sub(), sub())
    if k == 3:
        # a left-associative chain a - b * c / d + e: precedence and associativity without parentheses
        g = sub()
        for _ in range(draw(st.integers(2, 4))):
            g = arith(r, draw(st.sampled_from("+--*//")), g, leaf(draw, r, NUM) if draw(st.booleans()) else sub())
        return g
    if k == 4:
        operand = sub()
        return G("neg", (operand,), f"-{r.sym()}{r.wrap(operand, UNARY)}", UNARY)
    if k == 5:
        return call(r, "abs", [sub()])
    if k == 6:
        args = [sub()]
        if draw(st.booleans()):
            args.append(lit(r, draw(st.integers(-2, 5))) if draw(st.integers(0, 3)) else sub())
        return call(r, "round", args)
    if k == 7:
        fn = draw(st.sampled_from(["min", "max", "coalesce"]))
        return call(r, fn, [sub() for _ in range(draw(st.integers(2, 3)))])
    if k == 8:
        return call(r, "if", [sub(BOO), sub(), sub()])
    if k == 9:
        return call(r, "days_between", [date_operand(draw, r, depth), date_operand(draw, r, depth)])
    if k == 10:
        return call(r, "length", [sub(TXT)])
    if k == 11:
        return arith(r, draw(st.sampled_from("+-*/")), sub(), sub())
    return leaf(draw, r, NUM)


def gen_text(draw, r: Render, depth: int) -> G:
    k = draw(st.integers(0, 4))
    sub = lambda ty=TXT: gen(draw, r, ty, depth)  # noqa: E731
    if k == 0:
        return call(r, draw(st.sampled_from(["lower", "upper"])), [sub()])
    if k == 1:
        fn = draw(st.sampled_from(["min", "max", "coalesce"]))
        return call(r, fn, [sub() for _ in range(draw(st.integers(2, 3)))])
    if k == 2:
        return call(r, "if", [sub(BOO), sub(), sub()])
    return leaf(draw, r, TXT)


def gen_date(draw, r: Render, depth: int) -> G:
    k = draw(st.integers(0, 3))
    sub = lambda ty=DAT: gen(draw, r, ty, depth)  # noqa: E731
    if k == 0:
        fn = draw(st.sampled_from(["min", "max", "coalesce"]))
        return call(r, fn, [sub() for _ in range(draw(st.integers(2, 3)))])
    if k == 1:
        return call(r, "if", [sub(BOO), sub(), sub()])
    return date_value(draw, r)


def comparable_pair(draw, r: Render, depth: int, ordered: bool) -> tuple[str, list]:
    """The type of a comparison and a function making operands of it."""
    ty = draw(st.sampled_from([NUM, NUM, TXT, DAT] + ([] if ordered else [BOO])))
    if ty == DAT:
        return ty, lambda: date_operand(draw, r, depth)
    return ty, lambda: gen(draw, r, ty, depth)


def gen_bool(draw, r: Render, depth: int) -> G:
    k = draw(st.integers(0, 10))
    sub = lambda ty=BOO: gen(draw, r, ty, depth)  # noqa: E731
    if k <= 2:
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "==", "<>"]))
        ty, make = comparable_pair(draw, r, depth, ordered=op not in ("=", "!=", "==", "<>"))
        # a comparison with the literal null is refused (never true: write `is null`), so its operands are not one
        left, right = (_name(draw, r, ty) if g.kind == "lit" and g.parts == (None,) else g for g in (make(), make()))
        text = f"{r.wrap(left, SUM)}{r.sym()}{op}{r.sym()}{r.wrap(right, SUM)}"
        return G("cmp", ({"==": "=", "<>": "!="}.get(op, op), left, right), text, PRED)
    if k in (3, 4):
        op = draw(st.sampled_from(["and", "or"]))
        items = [sub() for _ in range(draw(st.integers(2, 3)))]
        need = NOT if op == "and" else AND
        sep = r.ws() + r.kw(op) + r.ws()
        return G(op, tuple(items), sep.join(r.wrap(i, need) for i in items), AND if op == "and" else OR)
    if k == 5:
        operand = sub()
        return G("not", (operand,), r.kw("not") + r.ws() + r.wrap(operand, NOT), NOT)
    if k == 6:
        _, make = comparable_pair(draw, r, depth, ordered=False)
        operand = make()
        items = [make() for _ in range(draw(st.integers(1, 4)))]
        negated = draw(st.booleans())
        opener, closer = draw(st.sampled_from(["[]", "()"]))
        kw = (r.kw("not") + r.ws() if negated else "") + r.kw("in")
        text = (f"{r.wrap(operand, SUM)}{r.ws()}{kw}{r.ws()}{opener}"
                + f",{r.sym()}".join(i.text for i in items) + closer)
        return G("in", (operand, tuple(items), negated), text, PRED)
    if k == 7:
        _, make = comparable_pair(draw, r, depth, ordered=True)
        operand, low, high = make(), make(), make()
        text = (f"{r.wrap(operand, SUM)}{r.ws()}{r.kw('between')}{r.ws()}{r.wrap(low, SUM)}"
                f"{r.ws()}{r.kw('and')}{r.ws()}{r.wrap(high, SUM)}")
        return G("between", (operand, low, high), text, PRED)
    if k == 8:
        operand = gen(draw, r, draw(st.sampled_from([NUM, TXT, DAT, BOO])), depth)
        negated = draw(st.booleans())
        kw = r.kw("is") + r.ws() + (r.kw("not") + r.ws() if negated else "") + r.kw("null")
        return G("isnull", (operand, negated), f"{r.wrap(operand, SUM)}{r.ws()}{kw}", PRED)
    if k == 9:
        fn = draw(st.sampled_from(["coalesce", "if"]))
        if fn == "if":
            return call(r, "if", [sub(), sub(), sub()])
        return call(r, "coalesce", [sub() for _ in range(draw(st.integers(2, 3)))])
    return leaf(draw, r, BOO)


GENERATORS = {NUM: gen_number, TXT: gen_text, DAT: gen_date, BOO: gen_bool}


# --------------------------------------------------------------------------
# Reference interpreter: the documented semantics, written out in Python
# --------------------------------------------------------------------------


class Ambiguous(Exception):
    """round() of a value a hair's breadth from a tie, or to more than 15 digits: SQLite's
    printf-based rounding and exact decimal rounding may legitimately differ, skip the row."""


def _int_or_float(exact, as_float):
    """SQLite integer arithmetic: on int64 overflow the result is computed in floating point."""
    if isinstance(exact, int) and not INT64[0] <= exact <= INT64[1]:
        return as_float()
    if isinstance(exact, float) and math.isnan(exact):
        return None  # SQLite never produces NaN: it is NULL
    return exact


def _and(values):
    if any(v is not None and not v for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values):
    if any(v is not None and v for v in values):
        return True
    return None if any(v is None for v in values) else False


def _not(v):
    return None if v is None else not v


def _cmp(op, a, b):
    if a is None or b is None:
        return None
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _round(x, n=0):
    # SQLite's round(): NULL in -> NULL; digits truncated to an integer and clamped to 0..30
    # (clamped first, so that digits of -inf, e.g. -(1 / 5e-324), are 0 as CAST gives them);
    # halves go away from zero.  With 0 digits it is (int64)(|x| + 0.5) in floating point.
    if x is None or n is None:
        return None
    n = int(max(0, min(30, n)))
    x = float(x)
    if math.isinf(x):
        return x  # SQLite's round(±inf, n) is ±inf; the decimal rounding below cannot take it (int(Decimal('Infinity')))
    if n > 15:
        # Beyond 15 digits SQLite rounds through its printf, which keeps about 16 significant
        # digits: round(-11078, 20) is -11077.99999999999.  Close to the exact value, but not
        # close enough once an expression subtracts the integer part back: skip the row.
        raise Ambiguous
    if n == 0 and abs(x) < 2**63 - 2:
        r = float(math.trunc(abs(x) + 0.5))
        return -r if x < 0 else r
    with localcontext() as ctx:
        ctx.prec = 400  # every digit of any double (up to 309 before the point) and 30 after it
        d = Decimal(repr(x))
        scaled = abs(d.scaleb(n))
        frac = scaled - int(scaled)
        if frac not in (0, Decimal("0.5")) and abs(frac - Decimal("0.5")) <= scaled * Decimal("1e-14") + Decimal("1e-12"):
            raise Ambiguous
        return float(d.quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP))


def _ascii_case(s: str, upper: bool) -> str:
    # SQLite's built-in lower()/upper() fold ASCII letters only (no ICU): 'ä', 'ß', 'É' stay as they are.
    if upper:
        return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in s)
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def evaluate(g: G, row: dict, as_of: str):
    ev = lambda x: evaluate(x, row, as_of)  # noqa: E731
    match g.kind:
        case "lit":
            return g.parts[0]
        case "name":
            return row[g.parts[0]]
        case "neg":
            v = ev(g.parts[0])
            return None if v is None else _int_or_float(-v, lambda: -float(v))
        case "arith":
            op, left, right = g.parts
            a, b = ev(left), ev(right)
            if op == "/":
                # real division; a zero divisor gives NULL
                if a is None or b is None or b == 0:
                    return None
                return _int_or_float(float(a) / b, None)
            if a is None or b is None:
                return None
            exact = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[op]()
            return _int_or_float(exact, lambda: {"+": float(a) + float(b), "-": float(a) - float(b), "*": float(a) * float(b)}[op])
        case "cmp":
            op, left, right = g.parts
            return _cmp(op, ev(left), ev(right))
        case "and":
            return _and([ev(i) for i in g.parts])
        case "or":
            return _or([ev(i) for i in g.parts])
        case "not":
            return _not(ev(g.parts[0]))
        case "in":
            operand, items, negated = g.parts
            x = ev(operand)
            values = [ev(i) for i in items]
            if x is None:
                found = None
            elif any(v is not None and v == x for v in values):
                found = True
            else:
                found = None if any(v is None for v in values) else False
            return _not(found) if negated else found
        case "between":
            x, low, high = (ev(p) for p in g.parts)
            return _and([_cmp(">=", x, low), _cmp("<=", x, high)])
        case "isnull":
            operand, negated = g.parts
            v = ev(operand)
            return (v is not None) if negated else (v is None)
        case "call":
            fn, args = g.parts
            vals = [ev(a) for a in args]
            if fn == "coalesce":
                return next((v for v in vals if v is not None), None)
            if fn == "if":
                return vals[1] if vals[0] is not None and vals[0] else vals[2]
            if fn in ("min", "max"):
                # scalar min/max (SQLite): NULL if any argument is NULL
                if any(v is None for v in vals):
                    return None
                return min(vals) if fn == "min" else max(vals)
            if fn == "abs":
                return None if vals[0] is None else abs(vals[0])
            if fn == "round":
                return _round(*vals)
            if fn == "days_between":
                a, b = vals
                if a is None or b is None:
                    return None
                return float((dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days)
            if fn == "length":
                return None if vals[0] is None else len(vals[0])
            if fn in ("lower", "upper"):
                return None if vals[0] is None else _ascii_case(vals[0], fn == "upper")
            if fn == "date":
                return vals[0]
            if fn == "as_of":
                return as_of
    raise AssertionError(g)


def same(expected, actual) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, str) or isinstance(actual, str):
        return expected == actual
    return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)


# --------------------------------------------------------------------------
# Compiling and running in SQLite
# --------------------------------------------------------------------------


def resolve(name: str) -> str:
    return f"t.{quote_identifier(name)}"


def compile_text(text: str, ty: str | None = None) -> tuple[ast.Node, str, dict]:
    node = parse_expression(text)
    found = TypeChecker(SCOPE).infer(node)
    if ty is not None:
        assert found in (ty, NULL), f"{text!r} inferred as {found}, generated as {ty}"
    if ty == BOO:
        TypeChecker(SCOPE).check_condition(node)
    params = SqlParams()
    return node, to_sql(node, resolve, params), params.values


_CONN = sqlite3.connect(":memory:")
_CONN.execute("CREATE TABLE t (n1, n2, t1, d1, b1)")


def run_sql(sql: str, params: dict, data: list[dict], as_of: str) -> list:
    _CONN.execute("DELETE FROM t")
    _CONN.executemany("INSERT INTO t VALUES (:n1, :n2, :t1, :d1, :b1)", data)
    return [r[0] for r in _CONN.execute(f"SELECT {sql} FROM t ORDER BY rowid", {**params, "as_of": as_of})]


# --------------------------------------------------------------------------
# Property 2: SQLite computes what the reference interpreter says
# --------------------------------------------------------------------------


@settings(max_examples=1000, **SETTINGS)
@given(expressions(), st.lists(rows(), min_size=1, max_size=4), iso_dates)
def test_compiled_sql_matches_reference_semantics(generated, drawn_rows, as_of):
    g, ty = generated
    note(f"expression: {g.text!r}")
    node, sql, params = compile_text(g.text, ty)
    note(f"sql: {sql}  params: {params}")
    data = drawn_rows + FIXED_ROWS
    results = run_sql(sql, params, data, as_of)
    for row, actual in zip(data, results):
        try:
            expected = evaluate(g, row, as_of)
        except Ambiguous:
            continue
        assert same(expected, actual), f"{g.text!r} on {row} (as_of {as_of}): expected {expected!r}, SQLite gave {actual!r}"


@pytest.mark.parametrize(
    "text, row, expected",
    [
        # pinned SQLite behaviours the reference implements (see the report of this test module)
        ("upper('äbc华ß')", {}, "äBC华ß"),  # ASCII-only case folding
        ("lower('ÀB')", {}, "Àb"),
        ("round(2.5)", {}, 3.0),  # half away from zero
        ("round(-2.5)", {}, -3.0),
        ("round(0.125, 2)", {}, 0.13),
        ("round(1234.5678, -2)", {}, 1235.0),  # negative digits count as 0
        ("round(1234.5678, 2.9)", {}, 1234.57),  # digits are truncated to an integer
        # digits beyond 32 bits: SQLite alone would keep their low 32 bits (found by the property above)
        ("round(0.5, -2147483649)", {}, 1.0),
        ("round(0.125, 4294967298)", {}, 0.125),
        ("round(0.125, n1)", {"n1": -4294967294}, 0.0),
        ("round(0.5, -(1 / 5e-324))", {}, 1.0),  # digits of -inf count as 0, of +inf as 30
        ("round(0.125, 1 / 5e-324)", {}, 0.125),
        ("round(5)", {}, 5.0),  # always a real
        ("min(n1, null)", {"n1": 1}, None),  # scalar min/max: NULL if any argument is NULL
        ("n1 between null and 3", {"n1": 5}, 0),  # one false side decides BETWEEN
        ("n1 between null and 6", {"n1": 5}, None),
        ("n1 in [1.0, null]", {"n1": 1}, 1),
        ("n1 in [2, null]", {"n1": 1}, None),
        ("n1 not in [2, null]", {"n1": 1}, None),
        ("null in [1]", {}, None),
        ("n1 / 0", {"n1": 1}, None),
        ("n1 / 0.0", {"n1": 1}, None),
        ("7 / 2", {}, 3.5),
        ("n1 * n1", {"n1": 2**62}, float(2**124)),  # int64 overflow falls back to real arithmetic
        ("'it\\'s' = \"it's\"", {}, 1),
        ("'a\\\\b' = t1", {"t1": "a\\b"}, 1),  # \\ is one backslash
        ("t1 = 'a\\tb\\nc\\q\\\"'", {"t1": "a\tb\nc" + 'q"'}, 1),  # \t, \n; \<other> is <other>
        ('t1 = "x\\\'y\\\\"', {"t1": "x'y\\"}, 1),
        ("days_between('2024-02-28', '2024-03-01')", {}, 2.0),
        ("1__0_ = 10", {}, 1),  # underscores anywhere after the first digit
    ],
)
def test_pinned_semantics(text, row, expected):
    _, sql, params = compile_text(text)
    full = {c: None for c in COLUMNS} | row
    (actual,) = run_sql(sql, params, [full], "2026-06-30")
    assert same(expected, actual), (text, actual)


@settings(max_examples=300, **SETTINGS)
@given(st.one_of(texts, st.text(max_size=20).filter(lambda t: "\x00" not in t)), numbers, st.integers(0, 2**32))
def test_literals_round_trip(text, number, seed):
    """Every text (quotes, backslashes, newlines, Chinese) and number (negative,
    decimal, underscored) written as a literal reads back as exactly itself."""
    r = Render(random.Random(seed))
    written = r.string(text)
    node = parse_expression(written)
    assert isinstance(node, ast.Literal) and node.value == text, (written, node)
    written, _ = r.number(number)
    node = parse_expression(written)
    assert isinstance(node, ast.Literal) and node.value == number and type(node.value) is type(number), (written, node)
    _, sql, params = compile_text(f"{written} = n1 and {r.string(text)} = t1")
    assert run_sql(sql, params, [{"n1": number, "t1": text, "n2": None, "d1": None, "b1": None}], "2026-06-30") == [1]


def test_reference_round_agrees_with_sqlite_on_plain_decimals():
    """The reference's round() is checked once against SQLite directly, so the
    property above tests the engine, not a shared misunderstanding."""
    checked = 0
    for x in [2.675, 1.005, -8155.875, 0.285, 1.5, -0.5, 0.045, 123.4549, 99.995, 7.0, 1e-7, 330.1095]:
        for n in range(0, 5):
            try:
                expected = _round(x, n)
            except Ambiguous:
                continue
            (actual,) = _CONN.execute("SELECT round(?, ?)", (x, n)).fetchone()
            assert same(expected, actual), (x, n, expected, actual)
            checked += 1
    assert checked > 40


# --------------------------------------------------------------------------
# Property 3: any text fails only with the language's own errors
# --------------------------------------------------------------------------

NASTY = list("'\"()[],-+*/=<>!\\ \n\t._;%") + [" and ", " or ", " not ", " in ", " is ", " null ", " between ",
                                                "true", "(", ")", "'", "0", "n1", "t1", "d1", "b1", "abs(", "if("]


@st.composite
def near_misses(draw):
    """A valid expression with a few characters deleted, doubled, swapped or inserted."""
    g, _ = draw(expressions(depth=3))
    text = g.text
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.integers(0, 4))
        if op == 0:
            text = text[:i] + text[i + 1:]
        elif op == 1:
            text = text[:i] + text[i] + text[i:]
        elif op == 2 and i + 1 < len(text):
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        elif op == 3:
            text = text[:i] + draw(st.sampled_from(NASTY)) + text[i:]
        else:
            text = text[:i]
    return text


fuzz_texts = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="n1t2db ()[]'\"\\,.-+*/=<>!andorstiulfbewcg_0123456789\n华", max_size=40),
    near_misses(),
)


def _int_literals_fit(node: ast.Node) -> bool:
    return all(not (isinstance(n, ast.Literal) and type(n.value) is int and not INT64[0] <= n.value <= INT64[1])
               for n in ast.walk(node))


@settings(max_examples=300, **SETTINGS)
@given(fuzz_texts)
@example("")
@example("   \n ")
@example("n1 >")
@example("'unterminated")
@example("n1 in []")
@example("abs()")
@example("load_extension('x') = 1")
@example("__import__('os') is null")
@example("os.system('ls')")
@example("n1 = 1; DROP TABLE t")
@example("b1 -- comment")
@example("n1\n  >\n 'x'")
def test_any_text_fails_only_with_expression_errors(text):
    try:
        node = parse_expression(text)
        TypeChecker(SCOPE).check_condition(node)
    except (ExpressionSyntaxError, ExpressionTypeError) as exc:
        # the position points into the text (or just past its end)
        lines = text.split("\n") if text.strip() else [""]
        assert 1 <= exc.line <= len(lines), (exc.message, exc.line, exc.col)
        assert 1 <= exc.col <= len(lines[exc.line - 1]) + 1, (exc.message, exc.line, exc.col)
        assert exc.message
        return
    # whatever type-checks compiles and runs in SQLite (integer literals beyond int64 included)
    params = SqlParams()
    sql = to_sql(node, resolve, params)
    assert _int_literals_fit(node)
    run_sql(sql, params.values, FIXED_ROWS, "2026-06-30")


@pytest.mark.parametrize("text", [
    " + ".join(["n1"] * 1000) + " > 0",
    "-" * 1000 + "n1 > 0",
    "not " * 1000 + "b1",
    "(-" * 300 + "n1" + ")" * 300 + " > 0",
    "coalesce(" * 300 + "n1" + ", 1)" * 300 + " > 0",
], ids=["sum-of-1000-terms", "1000-minus-signs", "1000-nots", "300-parenthesised-negations", "300-nested-calls"])
def test_deeply_nested_expression_is_a_clean_error(text):
    # (was a RecursionError from the type checker / lark's transformer)
    with pytest.raises(ExpressionSyntaxError) as info:
        parse_expression(text)
    assert "nested too deeply" in info.value.message


def test_long_but_reasonable_expression_compiles_and_runs():
    text = " + ".join(["n1"] * 50) + " > 0 and " + "not " * 20 + "b1 = true"
    _, sql, params = compile_text(text, BOO)
    assert run_sql(sql, params, [{**FIXED_ROWS[2], "n1": 2, "b1": 1}], "2026-06-30") == [1]
    # redundant parentheses add no depth at all
    _, sql, params = compile_text("(" * 5000 + "n1" + ")" * 5000 + " > 0", BOO)
    assert sql == '(t."n1" > :p0)'


@pytest.mark.parametrize("text", [
    " + ".join(["n1"] * 150) + " > 0",
    "if(b1, " * 20 + "n1" + ", 1)" * 20 + " > 0",
    "coalesce(" * 40 + "n1" + ", 1)" * 40 + " > 0",
    "n1 + (" * 40 + "n1" + ")" * 40 + " > 0",
    "not " * 60 + "b1",
], ids=["sum-of-150-terms", "20-nested-ifs", "40-nested-coalesces", "40-right-nested-sums", "60-nots"])
def test_whatever_parses_compiles_to_sql_sqlite_can_parse(text):
    """Either the SQL runs, or loading the policy rejects the expression (policy_model.sqlite_can_parse)."""
    try:
        node, sql, params = compile_text(text, BOO)
        sqlite_can_parse(node)
    except (ExpressionSyntaxError, ExpressionTypeError) as exc:
        assert "nested too deeply" in exc.message
        return
    run_sql(sql, params, FIXED_ROWS, "2026-06-30")


def test_integer_literal_beyond_int64_reads_as_a_real():
    # (was an OverflowError when the literal was bound as a SQLite parameter)
    node = parse_expression("100_000_000_000_000_000_000")
    assert node == ast.Literal(line=1, col=1, text="100_000_000_000_000_000_000", value=1e20)
    assert parse_expression("9223372036854775807").value == 2**63 - 1  # the largest int64 stays an integer
    for text, expected in [("n1 > 100_000_000_000_000_000_000", 0), ("n1 < 100_000_000_000_000_000_000", 1),
                           ("9223372036854775808 = 9223372036854775807 + 1", 1)]:
        _, sql, params = compile_text(text, BOO)
        assert run_sql(sql, params, [FIXED_ROWS[2]], "2026-06-30") == [expected], text


# --------------------------------------------------------------------------
# Property 4: literal values never reach the SQL text
# --------------------------------------------------------------------------


def _replace_literals(node: ast.Node) -> ast.Node:
    """The same tree with every non-null literal swapped for a bland one of its type."""
    if isinstance(node, ast.Literal):
        v = node.value
        if v is None:
            return node
        bland = False if isinstance(v, bool) else 0 if isinstance(v, (int, float)) else "x"
        return dataclasses.replace(node, value=bland)
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast.Node):
            changes[f.name] = _replace_literals(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], ast.Node):
            changes[f.name] = tuple(_replace_literals(v) for v in value)
    return dataclasses.replace(node, **changes)


def _text_literals(g: G):
    if g.kind == "lit" and isinstance(g.parts[0], str):
        yield g.parts[0]
    for p in g.parts:
        if isinstance(p, G):
            yield from _text_literals(p)
        elif isinstance(p, tuple):
            for q in p:
                if isinstance(q, G):
                    yield from _text_literals(q)


@settings(max_examples=300, **SETTINGS)
@given(expressions(), st.lists(st.text(min_size=3, max_size=12), max_size=3), st.integers(0, 2**32))
def test_literals_are_parameters_never_sql_text(generated, extra, seed):
    g, _ = generated
    text, literals = g.text, list(_text_literals(g))
    if extra:
        # arbitrary text (SQL keywords, quotes, comments, ...) among the literals too
        text = f"t1 in [{', '.join(Render(random.Random(seed)).string(e) for e in extra)}] or ({g.text}) is null"
        literals += extra
    node, sql, params = compile_text(text)
    neutral = to_sql(_replace_literals(node), resolve, SqlParams())
    # no literal of 3 or more characters appears in the SQL (unless the SQL has that text anyway, e.g. 'AND') ...
    leaked = [v for v in literals if len(v) >= 3 and v in sql and v not in neutral]
    assert not leaked, (sql, leaked)
    # ... because the SQL text does not depend on literal values at all
    assert sql == neutral
    # and every literal value is passed as a parameter
    literal_values = [n.value for n in ast.walk(node) if isinstance(n, ast.Literal) and n.value is not None]
    expected = Counter(repr(int(v) if isinstance(v, bool) else v) for v in literal_values)
    assert Counter(repr(v) for v in params.values()) == expected


def test_reference_round_of_an_infinity_is_sqlites():
    """round() of a sum that overflowed to ±inf, to any number of digits: the reference raised OverflowError in
    its own int(Decimal('Infinity')) (found by the property test above), where SQLite gives the infinity back."""
    for x in (math.inf, -math.inf):
        for n in (0, 2, 30):
            (actual,) = _CONN.execute("SELECT round(?, ?)", (x, n)).fetchone()
            assert _round(x, n) == actual == x


def test_round_beyond_15_digits_is_left_to_sqlite():
    """Found by the property above (n1 + round(-n1, n1) with n1 = 11078): SQLite's round() to more
    than 15 digits goes through its printf and is off in the 16th significant digit."""
    (actual,) = _CONN.execute("SELECT round(-11078, 20)").fetchone()
    assert math.isclose(actual, -11078.0, rel_tol=1e-14)
    with pytest.raises(Ambiguous):
        _round(-11078, 20)
