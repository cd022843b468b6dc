"""What a Chinese input method types where a policy needs ASCII, and the ASCII to type instead.

In Chinese mode an input method types '：' for ':', '，' for ',', '１０' for '10' and a full-width space
(U+3000) for a space; business staff also write numbers and dates as they do in a report ('10,000', '1万',
'2026年6月30日').  In most fonts these look like what YAML, the schema and the expression language read,
and they fail far from where they were typed, or not at all (YAML reads `tier：A` as one word), so the
messages of each of those say what was typed and what to type.  Chinese text in labels, names and
descriptions is left alone: only what a policy reads as syntax, a number or a date is looked at.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation

IME = "typed with a Chinese input method"
FULL_WIDTH_INDENT = f"the line is indented with a full-width space (U+3000), {IME}; indent with ASCII spaces"

# Characters of Chinese punctuation that stand for an ASCII one; the full-width forms U+FF01-U+FF5E are
# the ASCII ones U+0021-U+007E shifted, and are worked out.
_TWINS = {"\u3000": " ", "、": ",", "。": ".", "【": "[", "】": "]", "“": '"', "”": '"', "‘": "'", "’": "'"}
_NAMES = {":": "colon", ",": "comma", ";": "semicolon", "[": "bracket", "]": "bracket", "{": "brace", "}": "brace",
          "(": "parenthesis", ")": "parenthesis", ".": "full stop", "-": "minus sign", "%": "percent sign"}


def ascii_twin(ch: str) -> str | None:
    """The ASCII character ``ch`` was typed for, or None for a character that is not such a slip."""
    if "\uff01" <= ch <= "\uff5e":
        return chr(ord(ch) - 0xFEE0)
    return _TWINS.get(ch)


def describe(ch: str) -> str:
    """``'：' is a full-width colon, typed with a Chinese input method; write the ASCII ':'``."""
    twin = ascii_twin(ch)
    if ch == "\u3000":
        return f"it holds a full-width space (U+3000), {IME}; write an ASCII space, or none at either end"
    if ch in "“”‘’":
        return f"{ch!r} is a typographic quote, {IME} or made by a word processor; write the ASCII {twin} or none"
    if twin is None:
        return repr(ch)
    kind = ("digit" if twin.isdigit() else "letter" if twin.isalpha() else _NAMES.get(twin, "character"))
    return f"{ch!r} is a full-width {kind}, {IME}; write the ASCII {twin!r}"


def quoted_fix(text: str) -> str | None:
    """What to write for a text wrapped in typographic quotes (`“12 months”`), which YAML keeps as part of it."""
    if len(text) < 2 or text[0] not in "“‘" or text[-1] not in "”’":
        return None
    inner = text[1:-1]
    return (f"{text} is in typographic quotes, {IME} or made by a word processor, which YAML keeps as part of the "
            f"text; write {inner}, or quote it with ASCII quotes: \"{inner}\"")


def slips_in(text: str) -> list[str]:
    """The distinct characters of ``text`` that :func:`ascii_twin` knows, in the order written."""
    return list(dict.fromkeys(ch for ch in text if ascii_twin(ch) is not None))


# A key, then '：' or ':' and a full-width space, where YAML needs ': '
_KEY_COLON = re.compile(r"^(?P<key>[^\s:：'\"#{}\[\],，][^:：#{}\[\]]*?)(?P<sep>：|:\u3000)[ \u3000]*(?P<value>.*)$", re.S)


def key_colon(text: str) -> tuple[str, str, str] | None:
    """(key, separator, value) of a plain scalar that is a key and its value joined by a full-width colon (or a
    colon and a full-width space), which YAML reads as one word: `tier：A`, `when:　x > 1`."""
    match = _KEY_COLON.match(text.strip(" "))
    return (match["key"].rstrip(" \u3000"), match["sep"], match["value"]) if match else None


def key_colon_fix(text: str) -> str | None:
    """What to write for such a scalar, said in words; None when ``text`` is not one."""
    found = key_colon(text)
    if found is None:
        return None
    key, sep, value = found
    if sep == "：":
        return f"'：' after {key!r} is a full-width colon, {IME}; write the ASCII ':' and a space: {key}: {value}".rstrip()
    return f"the space after '{key}:' is a full-width space (U+3000), {IME}; write an ASCII space: {key}: {value}".rstrip()


_MULTIPLIERS = {"千": 1000, "万": 10_000, "萬": 10_000, "百万": 1_000_000, "千万": 10_000_000, "亿": 100_000_000,
                "億": 100_000_000, "k": 1000, "K": 1000, "w": 10_000, "W": 10_000}
_UNITS = ("元", "块", "天", "日", "个", "次", "人", "名", "单", "笔")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
#: What follows a number written as a report writes it: a multiplier (10万, 10万元, 100k) or a unit (100000元, 30天,
#: 30 days);
#: expr_mistakes finds such numbers inside a condition with it, number_fix says what to write for them.
SUFFIX = rf"(?:百万|千万|[千万萬亿億])元?|[kKwW](?!\w)|[{''.join(_UNITS)}]|[dD]ays?(?!\w)"
# ASCII digits only (re.A): a digit of another script is not one a policy reads, whatever Python's \d says.
_WITH_SUFFIX = re.compile(rf"(?P<n>{_NUMBER})[ \u3000]*(?P<s>{SUFFIX})", re.A)
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", re.A)


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def number_fix(text: str) -> str | None:
    """How to write the number ``text`` was meant to be, when it is one written as people write numbers in a
    report or on a Chinese input method: `１０`, `0。1`, `10,000`, `1万`, `30天`; None when it is not."""
    if not isinstance(text, str):
        return None
    written = text.strip(" \u3000")
    if "，" in written or "、" in written:  # in a YAML list, the separator typed in Chinese: not one number
        return None
    ascii_ = "".join(ascii_twin(ch) or ch for ch in written) if slips_in(written) else written
    ascii_ = unicodedata.normalize("NFKC", ascii_)
    if ascii_ != written and re.fullmatch(_NUMBER, ascii_, re.A):
        return f"{written!r} is written with full-width characters, {IME}; write {ascii_}"
    if _THOUSANDS.fullmatch(ascii_):
        return f"write numbers without thousands separators: {ascii_.replace(',', '')}"
    if re.fullmatch(r"[-+]?\d+,\d+", ascii_, re.A):
        return f"write the decimal point as '.': {ascii_.replace(',', '.')}"
    match = _WITH_SUFFIX.fullmatch(ascii_)
    if match:
        try:
            number = Decimal(match["n"])
        except InvalidOperation:
            return None
        suffix = match["s"].removesuffix("元") or match["s"]  # 10万元: ten thousand (of yuan)
        if suffix in _MULTIPLIERS:
            return f"write {_plain(number * _MULTIPLIERS[suffix])} ({suffix} = {_MULTIPLIERS[suffix]:,})"
        return f"write the number alone, without '{suffix}': {_plain(number)}"
    return None


def plain_number(text: str) -> str | None:
    """The number ``text`` stands for, written as the language and YAML read numbers (`800,000`: `800000`, `80万`:
    `800000`, `１０`: `10`), or None when it is none of the forms :func:`number_fix` knows (a plain number included)."""
    if number_fix(text) is None:
        return None
    ascii_ = unicodedata.normalize("NFKC", "".join(ascii_twin(ch) or ch for ch in text.strip(" \u3000")))
    if re.fullmatch(_NUMBER, ascii_, re.A):
        return ascii_
    if _THOUSANDS.fullmatch(ascii_):
        return ascii_.replace(",", "")
    if re.fullmatch(r"[-+]?\d+,\d+", ascii_, re.A):
        return ascii_.replace(",", ".")
    match = _WITH_SUFFIX.fullmatch(ascii_)
    if match is None:
        return None
    suffix = match["s"].removesuffix("元") or match["s"]
    return _plain(Decimal(match["n"]) * _MULTIPLIERS.get(suffix, 1))


_DATE = re.compile(r"(?P<y>\d{4})\s*(?:[-/.]|年)\s*(?P<m>\d{1,2})\s*(?:[-/.]|月)\s*(?P<d>\d{1,2})\s*日?", re.A)


def iso_date(text: str) -> str | None:
    """``text`` as YYYY-MM-DD when it is a real day written another way (`2026/6/30`, `2026年6月30日`,
    `２０２６-０６-３０`), else None."""
    if not isinstance(text, str):
        return None
    match = _DATE.fullmatch(unicodedata.normalize("NFKC", text).strip())
    if not match:
        return None
    try:
        return date(int(match["y"]), int(match["m"]), int(match["d"])).isoformat()
    except ValueError:
        return None
