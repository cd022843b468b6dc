"""Mistakes people make typing an expression, each with the fix.

The parser's own message names the first character it cannot use ("unexpected character '＞'"),
which says nothing about why: the operator of another language (`&&`, `=>`, `!`), or an operator or
quote typed with a Chinese input method, which looks like the ASCII one in most fonts.  When a text
does not parse, :func:`find_mistakes` looks for these outside its quoted text and says what to type
instead, at the column of each (counted in characters, as the parser counts them, so Chinese text
before it does not shift it).  A text that parses is never looked at.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .ime_text import IME, SUFFIX, iso_date, number_fix, plain_number

# Full-width characters and the ASCII ones they stand for; longest first.
FULL_WIDTH = {
    "＞＝": ">=", "＜＝": "<=", "！＝": "!=", "＝＝": "==",
    "＞": ">", "＜": "<", "＝": "=", "！": "!",
    "（": "(", "）": ")", "，": ",", "、": ",", "［": "[", "］": "]", "【": "[", "】": "]",
    "＋": "+", "－": "-", "＊": "*", "／": "/", "．": ".", "。": ".",
}
_FULL_WIDTH_LONGEST_FIRST = sorted(FULL_WIDTH, key=len, reverse=True)
# Symbols a Chinese input method offers for the comparisons (and mathematics writes).
MATH = {"≥": ">=", "≤": "<=", "≠": "!="}
CURLY_QUOTES = {"‘": "'", "’": "'", "“": '"', "”": '"'}

# Words for 'and' and 'or' typed in Chinese, standing alone.
CHINESE_WORDS = {"并且": "and", "而且": "and", "且": "and", "和": "and", "或者": "or", "或": "or"}
# Numbers and dates as a report writes them: 10万, 100k, 100000元, 100,000, 2026年6月30日 (checked before the parser
# reads the digits as a number and the rest as a name).
_NUMBER_WITH_SUFFIX = re.compile(rf"\d[\d_]*(?:\.\d+)?[ \t\u3000]*(?:{SUFFIX})")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d_])")
_CHINESE_DATE = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日?")

# A currency sign before an amount (`¥800,000`, `$ 1,000`): the language's numbers are plain.
_CURRENCY = re.compile(r"[¥￥$€£][ \t]*(?P<n>\d[\d,_]*(?:\.\d+)?(?:[ \t\u3000]*(?:" + SUFFIX + r"))?)")
# Thousands grouped with spaces, as some reports write them (`800 000`): the parser reads two numbers.
_SPACED_THOUSANDS = re.compile(r"\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d_.])")
# What other languages write for a missing value after `is` (`is None`, `is empty`): the language writes null.
_NULL_WORDS = re.compile(r"is(?P<not>[ \t]+not)?[ \t]+(?P<word>none|nil|nothing|empty|blank|undefined|空)(?!\w)", re.I)

# SQL's text search (`name like '%abc%'`, `glob`, `regexp`), always before a quoted pattern: the language has none.
_TEXT_SEARCH = re.compile(r"(?P<op>like|ilike|glob|regexp|rlike)[ \t]+['\"]", re.I)
# An amount with an English multiplier (`1.2 million`, `1.2m`, `3 thousand`, `2bn`): the language's numbers are plain.
_NUMBER_WORD = re.compile(r"\d[\d_]*(?:\.\d+)?[ \t]*(?P<word>millions?|mn|mio|[mM]|thousands?|billions?|bn)(?!\w)", re.I)
_WORD_MULTIPLIERS = {"million": 10**6, "mn": 10**6, "mio": 10**6, "m": 10**6, "thousand": 1000, "billion": 10**9,
                     "bn": 10**9}
# A condition started with `if` and no bracket (`if margin_12m >= 0.3`): `if(` is the function.
_LEADING_IF = re.compile(r"if[ \t]+(?!\()", re.I)
_THEN_ELSE = re.compile(r"(?P<c>.+?)\s+then\s+(?P<t>.+?)\s+else\s+(?P<e>.+)", re.I | re.S)

# Operators of other languages; checked in this order at each position.
FOREIGN = (
    ("=>", "'=>' is not an operator; write '>=' (greater than or equal)"),
    ("=<", "'=<' is not an operator; write '<=' (less than or equal)"),
    ("&&", "'&&' is not an operator; write 'and'"),
    ("||", "'||' is not an operator; write 'or'"),
    ("&", "'&' is not an operator; write 'and'"),
    ("|", "'|' is not an operator; write 'or'"),
)


@dataclass(frozen=True)
class Mistake:
    """What is wrong at a 1-based line and column of the expression."""

    message: str
    line: int
    col: int


def _not(text: str, i: int) -> str | None:
    """The message for a '!' at ``i`` that does not start '!=', or None for one that does."""
    j = i + 1
    while j < len(text) and text[j] in " \t":
        j += 1
    if j == i + 1 and text[j:j + 1] == "=":
        return None
    if j < len(text) and text[j] == "=" and text[j:j + 2] != "==":
        return "'! =' is not an operator; write '!=' without a space (not equal)"
    return "'!' is not an operator; write 'not' (e.g. `not vip`), or '!=' for not equal"


def _quoted(text: str, i: int) -> tuple[str, int]:
    """(message, length) for a typographic quote at ``i``: with the text it quotes, up to the next one, when
    there is one on the line, so that the fix is the whole quoted text.  Quotes around the whole condition were
    meant for YAML: in ASCII quotes text, the fix is no quotes at all, not a condition that is a text."""
    end = next((j for j in range(i + 1, len(text)) if text[j] in CURLY_QUOTES or text[j] == "\n"), None)
    if end is None or text[end] == "\n":
        return (f"{text[i]!r} is a typographic quote, {IME} or made by a word processor; "
                f"write the ASCII quote {CURLY_QUOTES[text[i]]} instead"), 1
    inner = text[i + 1:end]
    if not text[:i].strip() and not text[end + 1:].strip() and any(ch in inner for ch in "<>=!≥≤＞＜＝ "):
        return (f"the whole expression is in typographic quotes, {IME} or made by a word processor; remove them "
                f"(or quote the YAML value with ASCII double quotes): {inner}"), end + 1 - i
    fixed = f"'{inner}'" if "'" not in inner else f'"{inner}"'
    return f"{text[i:end + 1]} is quoted with typographic quotes, {IME} or made by a word processor; write {fixed}", end + 1 - i


def _inside_word(text: str, i: int, joins: str = "_") -> bool:
    """Whether ``text[i]`` continues the word (or number, with '.' in ``joins``) before it: a mistake is looked for
    where a word starts, not in `revenue_12m` or `1.5`."""
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] in joins)


def _percent(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for a number written with a percent sign at ``i`` (`margin_12m >= 30%`), or None.

    Shares are fractions in the language, as the metrics give them (a margin of 30% is 0.3)."""
    if not text[i].isdigit() or _inside_word(text, i, "_."):
        return None
    j = i
    while j < len(text) and (text[j].isdigit() or text[j] in "_."):
        j += 1
    k = j
    while k < len(text) and text[k] in " \t":
        k += 1
    if text[k:k + 1] not in ("%", "％"):
        return None
    try:
        fraction = Decimal(text[i:j].replace("_", "")) / 100
    except InvalidOperation:
        return None
    return (f"{text[i:k + 1]!r} is not a number of the language: shares are fractions, write {fraction.normalize():f} "
            f"for {text[i:k + 1]}"), k + 1 - i


def _written(text: str, i: int, depth: int) -> tuple[str, int] | None:
    """(message, length) for a number or date written at ``i`` as a report writes it (`10万`, `100,000` where it is
    not a list's separator, `2026年6月30日`), or None."""
    if not text[i].isdigit() or _inside_word(text, i, "_."):
        return None
    if match := _CHINESE_DATE.match(text, i):
        day = iso_date(match.group())
        if day is not None:
            return f"{match.group()!r} is not a date of the language; write '{day}' (in quotes)", match.end() - i
    if match := _NUMBER_WITH_SUFFIX.match(text, i):
        fix = number_fix(match.group().replace("_", ""))
        if fix is not None:
            return f"{match.group()!r} is not a number of the language; {fix}", match.end() - i
    if depth == 0 and (match := _THOUSANDS.match(text, i)):
        number = unicodedata.normalize("NFKC", match.group())  # in ASCII digits, also when typed full-width
        return (f"{match.group()!r} is not a number of the language; write {number.replace(',', '')} "
                f"or {number.replace(',', '_')}, without thousands separators"), match.end() - i
    return None


def _currency(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for an amount written with a currency sign at ``i`` (`¥800,000`, `$1,000`), or None."""
    match = _CURRENCY.match(text, i)
    if match is None:
        return None
    written = match["n"].replace("_", "")
    plain = written if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", written) else plain_number(written)
    if plain is None:
        return None
    shown = match.group().rstrip()
    return f"{shown!r} is not a number of the language; write {plain}, without the currency sign", len(shown)


def _spaced(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for a number with its thousands grouped by spaces at ``i`` (`800 000`), or None."""
    if _inside_word(text, i, "_."):
        return None
    match = _SPACED_THOUSANDS.match(text, i)
    if match is None:
        return None
    digits = re.sub(r"\D", "", match.group())
    return (f"{match.group()!r} is not a number of the language; write {digits} (or {int(digits):_}), "
            f"without spaces between the digits"), len(match.group())


def _text_search(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for SQL's `like '%abc%'` (or `glob`, `regexp`) at ``i``: the language has no text search,
    and a condition compares whole values."""
    if _inside_word(text, i):
        return None
    match = _TEXT_SEARCH.match(text, i)
    if match is None:
        return None
    op = match["op"]
    words = re.findall(r"\w+", text[:i])
    negated = bool(words) and words[-1].lower() == "not"
    left = (words[-2] if negated and len(words) > 1 else words[-1] if words and not negated else "name")
    return (f"{op!r} is not an operator of the language: it has no text search (no {op}, no % or * wildcards); "
            f"compare with the whole values instead, e.g. {left} {'not in' if negated else 'in'} ['...', '...'], or map "
            f"a column that holds what you search for (a category, a region) and compare with that"), len(op)


def _number_word(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for an amount with an English multiplier at ``i`` (`1.2 million`, `1.2m`, `2bn`), or None."""
    if not text[i].isdigit() or _inside_word(text, i, "_."):
        return None
    match = _NUMBER_WORD.match(text, i)
    if match is None:
        return None
    word = match["word"].lower()
    multiplier = _WORD_MULTIPLIERS.get(word.removesuffix("s") if word.endswith("s") and word != "s" else word)
    if multiplier is None:
        return None
    number = Decimal(match.group()[:match.start("word") - i].strip().replace("_", "")) * multiplier
    grouped = number == number.to_integral_value() and number >= 10_000
    plain = f"{int(number):_}" if grouped else f"{number.normalize():f}"
    grouped = "; '_' groups the digits" if grouped else ""
    return (f"{match.group()!r} is not a number of the language; write {plain} ({match['word']} = {multiplier:,}"
            f"{grouped})"), len(match.group())


def _leading_if(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for a condition that starts with `if` (`if margin_12m >= 0.3`), or None."""
    if text[:i].strip() or not _LEADING_IF.match(text, i):
        return None
    rest = text[i + 2:].strip()
    if parts := _THEN_ELSE.fullmatch(rest):  # `if a > 1 then 1 else 0`: the function, in a value's expression
        return (f"'if ... then ... else' is written as the function if(condition, then, else): write "
                f"if({parts['c']}, {parts['t']}, {parts['e']})"), 2
    return (f"a condition is written without 'if' (the key it stands under already means 'if'): write {rest}; "
            f"if(condition, then, else) is the function that picks one of two values"), 2


def _null_word(text: str, i: int) -> tuple[str, int] | None:
    """(message, length) for `is None`, `is not empty` and the like at ``i``: a missing value is `null`."""
    if _inside_word(text, i):
        return None
    match = _NULL_WORDS.match(text, i)
    if match is None:
        return None
    meant = "is not null" if match["not"] else "is null"
    return f"{match.group()!r}: a missing value is written null in the language; write {meant!r}", len(match.group())


# `in` and a value without the list's brackets (`region in '华东', '华南'`): the parser names that, with the fix
_BARE_IN = re.compile(r"(?<!\w)in[ \t\n]+(?![\[(（［【\s])", re.I)


def _comma(text: str, i: int, inside: str | None) -> str | None:
    """The message for a comma (``text[i]``: ',' or one typed with a Chinese input method) that stands where the
    language has no comma (outside a list and a function's arguments), or None for one that stands in them."""
    ch = text[i]
    if inside in ("list", "call"):
        return None
    clause = re.split(r"(?<!\w)(?:and|or)(?!\w)|[(（]", text[:i], flags=re.I)[-1]
    if _BARE_IN.search(clause):
        return None
    typed = "" if ch == "," else f"{ch!r} is {'a full-width comma' if ch == '，' else 'an enumeration comma'}, {IME}; "
    return (f"{typed}a comma separates the items of a list and the arguments of a function, not conditions; "
            f"to join two conditions write 'and' (both must hold) or 'or' (either one)")


def _colon(ch: str) -> str:
    """The message for a ':' or '：' in an expression (`revenue_12m: 800_000`): the language has no colon."""
    typed = "" if ch == ":" else f"{ch!r} is a full-width colon, {IME}; "
    return (f"{typed}':' is not an operator of the language; compare with =, !=, <, <=, > or >= "
            f"(e.g. revenue_12m >= 800_000)")


def _at(text: str, i: int, depth: int = 0, inside: str | None = None) -> tuple[str, int] | None:
    """(message, length) of a mistake that starts at ``text[i]``, or None; ``depth``: of brackets around it,
    ``inside``: what the innermost one holds ("list", "call", "group" or None at the top)."""
    for found in (_currency(text, i), _spaced(text, i), _null_word(text, i), _text_search(text, i),
                  _number_word(text, i), _leading_if(text, i)):
        if found is not None:
            return found
    if text[i] in ",，、" and (message := _comma(text, i, inside)) is not None:
        return message, 1
    if text[i] in ":：" and re.search(r"[\w)'\"][ \t\u3000]*$", text[:i]):  # `revenue_12m: 800_000`, not `= :x`
        return _colon(text[i]), 1
    percent = _percent(text, i)
    if percent is not None:
        return percent
    written = _written(text, i, depth)
    if written is not None:
        return written
    for word, meant in CHINESE_WORDS.items():
        after = text[i + len(word):i + len(word) + 1]
        if text.startswith(word, i) and (not i or not text[i - 1].isalnum()) and not after.isalnum():
            return f"{word!r} is not an operator of the language; write {meant!r}", len(word)
    for wide in _FULL_WIDTH_LONGEST_FIRST:
        if text.startswith(wide, i):
            what = "is a full-width character" if len(wide) == 1 else "are full-width characters"
            return f"{wide!r} {what}, {IME}; write the ASCII {FULL_WIDTH[wide]!r}", len(wide)
    if text[i] in MATH:
        return f"{text[i]!r} is a math sign, not an operator of the language; write {MATH[text[i]]!r}", 1
    if text[i] in CURLY_QUOTES:
        return _quoted(text, i)
    if text[i] == "!":
        message = _not(text, i)
        return (message, 1) if message else None
    for written, message in FOREIGN:
        if text.startswith(written, i):
            return message, len(written)
    return None


_OPENING, _CLOSING = "([（［【", ")]）］】"
_WORD_BEFORE = re.compile(r"(\w+)[ \t\u3000]*$")


def _opens(text: str, i: int) -> str:
    """What the bracket at ``text[i]`` holds: a list (`[`, or `(` after `in`), a function's arguments (`(` after a
    name) or a group (any other `(`)."""
    if text[i] in "[［【":
        return "list"
    word = _WORD_BEFORE.search(text, 0, i)
    if word is None:
        return "group"
    if word.group(1).lower() == "in":
        return "list"
    return "group" if word.group(1).lower() in ("and", "or", "not", "is", "between") else "call"


def find_mistakes(text: str) -> list[Mistake]:
    """Each known mistake outside quoted text, in the order written."""
    found: list[Mistake] = []
    line, line_start, quote, i, depth = 1, 0, None, 0, 0
    inside: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
        if quote is not None:  # inside '...' or "...": anything goes, \ escapes the next character
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            i += 1
            continue
        depth += (ch in _OPENING) - (ch in _CLOSING)
        if ch in _OPENING:
            inside.append(_opens(text, i))
        elif ch in _CLOSING and inside:
            inside.pop()
        hit = _at(text, i, depth, inside[-1] if inside else None)
        if hit is None:
            i += 1
            continue
        message, length = hit
        found.append(Mistake(message, line, i - line_start + 1))
        i += length
    return found
