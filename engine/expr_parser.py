"""Parse policy expressions (``revenue_12m >= 500_000 and region in ['华东']``).

The grammar is deliberately small: no attribute access, no user functions, no
way to name anything the type checker has not been told about.  Parsing is
done by lark (LALR), never by ``eval``.
"""

from __future__ import annotations

import io
import re
import unicodedata
from functools import lru_cache

from lark import Lark, __version__ as lark_version, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import expr_ast as ast, user_cache
from .expr_mistakes import find_mistakes

# The words the grammar reserves, in any case: `true` is the literal, never a name, so a metric,
# attribute or plugin entry named like one of them could not be used in an expression.  Each is a whole word
# only: the LALR lexer tries only the terminals the parser can take next, and where a name cannot follow (after
# `revenue_12m >= and`) a keyword matched the start of one, so `orders_12m` was read as `or ders_12m`.
KEYWORDS = ("and", "or", "not", "in", "is", "between", "true", "false", "null")

GRAMMAR = r"""
?start: expr
?expr: or_expr
?or_expr: and_expr (_OR and_expr)+ -> or_
        | and_expr
?and_expr: not_expr (_AND not_expr)+ -> and_
         | not_expr
?not_expr: _NOT not_expr -> not_
         | predicate
?predicate: sum COMP_OP sum -> compare
          | sum _IN list -> in_
          | sum _NOT _IN list -> not_in
          | sum _IS _NULL -> is_null
          | sum _IS _NOT _NULL -> is_not_null
          | sum _BETWEEN sum _AND sum -> between
          | sum
?sum: sum ADD_OP product -> arith
    | product
?product: product MUL_OP unary -> arith
        | unary
?unary: "-" unary -> neg
      | atom
?atom: NUMBER -> number
     | STRING -> string
     | _TRUE -> true
     | _FALSE -> false
     | _NULL -> null
     | NAME "(" [expr ("," expr)*] ")" -> call
     | NAME -> name
     | "(" expr ")"
list: "[" [expr ("," expr)*] "]"
    | "(" [expr ("," expr)*] ")"

COMP_OP: ">=" | "<=" | "!=" | "<>" | "==" | "=" | ">" | "<"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/"
""" + "".join(f'_{word.upper()}.2: /{word}(?!\\w)/i\n' for word in KEYWORDS) + r"""NAME: /[^\W\d]\w*/
NUMBER: /\d[\d_]*(\.\d+)?([eE][+-]?\d+)?/
STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
%ignore /\s+/
"""


MAX_DEPTH = 200


class ExpressionSyntaxError(Exception):
    """Raised with a 1-based line/column inside the expression text.

    ``others``: more problems of the same text, each with its own position (several full-width
    operators, say); the whole list is :attr:`problems`.
    """

    def __init__(self, message: str, line: int, col: int, others: tuple["ExpressionSyntaxError", ...] = ()):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.others = others

    @property
    def problems(self) -> list["ExpressionSyntaxError"]:
        return [self, *self.others]


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser, its tables loaded from the user cache when built before (70 ms saved per process)."""
    options = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": False}
    name = f"expression-grammar-{user_cache.content_key(GRAMMAR, lark_version, repr(sorted(options.items())))}.lark"
    cached = user_cache.read(name)
    if cached is not None:
        try:
            return Lark.load(io.BytesIO(cached))
        except Exception:  # noqa: BLE001 - a cache file that does not load is rebuilt, whatever is wrong with it
            pass
    parser = Lark(GRAMMAR, **options)
    saved = io.BytesIO()
    parser.save(saved)
    user_cache.write(name, saved.getvalue())
    return parser


def tokens(text: str) -> list[Token]:
    """The grammar's tokens of ``text``, positions included: the commas, which the parsed tree no longer has."""
    return list(_parser().lex(text))


def _unescape(raw: str) -> str:
    body = raw[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, text: str):
        super().__init__()
        self.source = text

    def _at(self, meta) -> dict:
        text = self.source[meta.start_pos : meta.end_pos] if not meta.empty else ""
        return {"line": meta.line, "col": meta.column, "text": text}

    def number(self, meta, children):
        self._thousands(meta, str(children[0]))
        raw = str(children[0]).replace("_", "")
        value = float(raw) if any(c in raw for c in ".eE") else int(raw)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            value = float(value)  # beyond SQLite's 64-bit integers, as SQLite itself would store it
        return ast.Literal(value=value, **self._at(meta))

    def _thousands(self, meta, written: str) -> None:
        """`[1,000, 5,000]` is a list of 1, 0, 5 and 0 to the grammar, which would grade by those numbers without a
        word: digits after a comma that start with 0 are the thousands of a number written as a report writes it."""
        start = meta.start_pos
        if not re.match(r"0\d\d(?![\d_])", unicodedata.normalize("NFKC", written)) or self.source[start - 1:start] != ",":
            return
        lead = re.search(r"(?<![\w.])\d{1,3}(?:,\d{3})*,$", self.source[max(0, start - 64):start])
        if lead is None:
            return
        whole = lead.group() + written
        while (more := re.match(r",\d{3}(?![\d_])", self.source[start + len(written):])) is not None:
            whole, start = whole + more.group(), start + len(more.group())
        number = unicodedata.normalize("NFKC", whole)  # '１,０００' (full-width digits) is 1000 too
        col = meta.column - len(lead.group())
        raise ExpressionSyntaxError(f"{whole!r} is written with thousands separators, but ',' separates the items of "
                                    f"a list (and the arguments of a function), so this reads as {len(whole.split(','))} "
                                    f"numbers; write {number.replace(',', '')} or {number.replace(',', '_')}",
                                    meta.line, col)

    def string(self, meta, children):
        return ast.Literal(value=_unescape(str(children[0])), **self._at(meta))

    def true(self, meta, children):
        return ast.Literal(value=True, **self._at(meta))

    def false(self, meta, children):
        return ast.Literal(value=False, **self._at(meta))

    def null(self, meta, children):
        return ast.Literal(value=None, **self._at(meta))

    def name(self, meta, children):
        return ast.Name(name=str(children[0]), **self._at(meta))

    def call(self, meta, children):
        return ast.Call(function=str(children[0]).lower(), args=tuple(children[1:]), **self._at(meta))

    def neg(self, meta, children):
        (operand,) = children
        if isinstance(operand, ast.Literal) and isinstance(operand.value, (int, float)) and not isinstance(operand.value, bool):
            return ast.Literal(value=-operand.value, **self._at(meta))
        return ast.Negate(operand=operand, **self._at(meta))

    def arith(self, meta, children):
        left, op, right = children
        return ast.Arithmetic(op=str(op), left=left, right=right, **self._at(meta))

    def compare(self, meta, children):
        left, op, right = children
        op = {"==": "=", "<>": "!="}.get(str(op), str(op))
        return ast.Compare(op=op, left=left, right=right, **self._at(meta))

    def and_(self, meta, children):
        return ast.Logical(op="and", items=tuple(children), **self._at(meta))

    def or_(self, meta, children):
        return ast.Logical(op="or", items=tuple(children), **self._at(meta))

    def not_(self, meta, children):
        return ast.Not(operand=children[0], **self._at(meta))

    def list(self, meta, children):
        return tuple(children)

    def in_(self, meta, children):
        return ast.InList(operand=children[0], items=children[1], negated=False, **self._at(meta))

    def not_in(self, meta, children):
        return ast.InList(operand=children[0], items=children[1], negated=True, **self._at(meta))

    def is_null(self, meta, children):
        return ast.IsNull(operand=children[0], negated=False, **self._at(meta))

    def is_not_null(self, meta, children):
        return ast.IsNull(operand=children[0], negated=True, **self._at(meta))

    def between(self, meta, children):
        return ast.Between(operand=children[0], low=children[1], high=children[2], **self._at(meta))


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the expression"
    return repr(str(token))


def parse_expression(text: str) -> ast.Node:
    """Parse ``text`` or raise ExpressionSyntaxError pointing at the problem."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionSyntaxError("the expression is empty", 1, 1)
    try:
        tree = _parser().parse(text)
    except RecursionError:
        raise ExpressionSyntaxError(f"the expression is nested too deeply (the limit is {MAX_DEPTH} levels)", 1, 1) from None
    except UnexpectedInput as exc:
        raise _with_mistakes(text, _lark_error(text, exc)) from None
    try:
        result = _ToAst(text).transform(tree)
    except VisitError as exc:  # pragma: no cover - a bug in the transformer
        raise exc.orig_exc from None
    except RecursionError:
        raise ExpressionSyntaxError(f"the expression is nested too deeply (the limit is {MAX_DEPTH} levels)", 1, 1) from None
    if isinstance(result, Tree):  # pragma: no cover
        raise AssertionError(f"untransformed tree {result}")
    depth = _depth(result)
    if depth > MAX_DEPTH:
        raise ExpressionSyntaxError(f"the expression is nested too deeply ({depth} levels, the limit is {MAX_DEPTH}); "
                                    f"split it into metrics", 1, 1)
    return result


def _lark_error(text: str, exc: UnexpectedInput) -> ExpressionSyntaxError:
    """Lark's error in words, at its place."""
    if isinstance(exc, UnexpectedCharacters):
        return ExpressionSyntaxError(f"unexpected character {text[exc.pos_in_stream]!r}", exc.line, exc.column)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return ExpressionSyntaxError("the expression ends too early", *_end_position(text))
    if isinstance(exc, UnexpectedToken):
        message = f"unexpected {_describe_token(exc.token)}"
        shorthand = _shorthand(text, exc.token)
        return ExpressionSyntaxError(f"{message}: {shorthand}" if shorthand else message, exc.line, exc.column)
    return ExpressionSyntaxError(str(exc).splitlines()[0], exc.line, exc.column)  # pragma: no cover - lark's others


_BOUNDARY = ("_AND", "_OR", "_NOT", "LPAR", "LSQB", "COMMA")  # tokens a comparison's operand starts after


def _shorthand(text: str, token: Token) -> str | None:
    """What to write for a condition said as people say it, which the grammar does not take: `x > 0 and < 10`
    (the name said once for two comparisons), `0 < x < 10` (comparisons chained as in mathematics) and
    `region in '华东', '华南'` (the list without brackets); None for any other unexpected token."""
    try:
        found = [t for t in tokens(text) if t.start_pos < token.start_pos]
    except UnexpectedInput:
        return None
    after = text[token.start_pos:]
    segment = found[max((i + 1 for i, t in enumerate(found) if t.type in _BOUNDARY[:3] + ("LPAR",)), default=0):]
    if token.type == "COMP_OP" and (not found or found[-1].type in ("LPAR", "_NOT")):
        return f"a comparison needs what it compares on its left: write e.g. revenue_12m {token} ..."
    if token.type == "COMP_OP" and found and found[-1].type in ("_AND", "_OR"):
        # `x > 0 and < 10`: the comparison before the `and` names what this one compares
        before = found[:-1]
        start = max((i + 1 for i, t in enumerate(before) if t.type in _BOUNDARY), default=0)
        ops = [i for i in range(start, len(before)) if before[i].type == "COMP_OP"]
        if not ops:
            return None
        left = text[before[start].start_pos:before[ops[-1]].start_pos].strip()
        fixed = f"{text[:token.start_pos]}{left} {after}".strip()
        return (f"a comparison needs something on its left, also after '{found[-1]}'; repeat it: {fixed}"
                + (f" (or {left} between ... and ...)" if found[-1].type == "_AND" else ""))
    if token.type == "COMP_OP" and any(t.type == "COMP_OP" for t in segment):
        # `0 < x < 10`: a comparison is true or false, and true/false is not compared with a number
        first = next(i for i, t in enumerate(segment) if t.type == "COMP_OP")
        left = text[segment[0].start_pos:segment[first].start_pos].strip()
        middle = text[segment[first].end_pos:token.start_pos].strip()
        rest = re.split(r"\s+(?:and|or)\s+|\)", after[len(token):], maxsplit=1, flags=re.I)[0].strip()
        if not (left and middle and rest):
            return None
        return (f"comparisons do not chain; write two joined by 'and': {left} {segment[first]} {middle} and "
                f"{middle} {token} {rest}")
    if found and found[-1].type == "_IN" and token.type in ("STRING", "NUMBER", "NAME"):
        items = re.split(r"\s+(?:and|or)\s+|\)", after, maxsplit=1, flags=re.I)[0].strip()
        return f"the values after 'in' are a list, in brackets: in [{items}]"
    return None


def _with_mistakes(text: str, error: ExpressionSyntaxError) -> ExpressionSyntaxError:
    """The known mistakes of ``text`` (`=>`, `&&`, `＞`, ...), each with its fix, instead of the parser's
    "unexpected ..." where it stumbled over one of them; the parser's error is kept when it is before the
    first (a mistake of its own)."""
    mistakes = [ExpressionSyntaxError(m.message, m.line, m.col) for m in find_mistakes(text)]
    if not mistakes:
        return error
    if (error.line, error.col) < (mistakes[0].line, mistakes[0].col):
        mistakes.insert(0, error)
    first, *others = mistakes
    return ExpressionSyntaxError(first.message, first.line, first.col, tuple(others))


def _depth(node: ast.Node) -> int:
    """Nesting depth, counted without recursion (the checker and compiler recurse, so they need a bound)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.children(current))
    return deepest


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1
