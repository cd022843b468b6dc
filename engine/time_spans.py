"""Spans of time as people write them (`12个月`, `1 quarter`, `2 hours`, `4小时`), and how a policy writes them.

A policy writes a span in four places, each with its own short form: a metric's look-back window (`90d`,
`12 months`, `3y`, or a calendar window: `year to date`, `quarter to date`, `month to date`) and how far before
the as-of date that window ends (its ``offset``, the span forms only), a service level's response and on-site times (`15m`, `4h`, `2d`) and a test file's date
relative to its as-of date (`-6m`).  The schemas check those forms with a pattern, which tells the analyst who
wrote `window: 12个月` or `response_time: 2 hours` only that it "is not in the expected form".  These functions
read what was meant and say what to type, so that the message can name the fix.
"""

from __future__ import annotations

import re
import unicodedata

from .date_windows import CALENDAR
from .ime_text import iso_date

#: The forms, as the schemas write them (policy.schema.json, policy-test.schema.json and the retention plugin's
#: `purchase_gap.window`); a mismatch with one of them is explained by the function of that form.  A metric's
#: window is a span or a calendar window (date_windows.CALENDAR); a window that needs a stretch of history of a
#: steady length (the retention plugin's usual interval between orders) is a span only.
CALENDAR_WINDOWS = tuple(CALENDAR)
TRAILING_WINDOW_PATTERN = "^(all|[1-9][0-9]*\\s*(d|day|days|w|week|weeks|m|month|months|y|year|years))$"
WINDOW_PATTERN = TRAILING_WINDOW_PATTERN.replace("^(all|", f"^(all|{'|'.join(CALENDAR_WINDOWS)}|", 1)
OFFSET_PATTERN = "^[1-9][0-9]*\\s*(d|day|days|w|week|weeks|m|month|months|y|year|years)$"
DURATION_PATTERN = "^[1-9][0-9]*\\s*(min|m|h|d|w)$"
RELATIVE_DATE_PATTERN = "^([0-9]{4}-[0-9]{2}-[0-9]{2}|([+-][0-9]+[dwmy])+)$"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # a test file's as_of

# Unit words and what they stand for: (unit, how many of it); a quarter is three months.
_UNITS = {
    "minute": ("min", 1), "minutes": ("min", 1), "mins": ("min", 1), "分钟": ("min", 1), "分": ("min", 1),
    "hour": ("h", 1), "hours": ("h", 1), "hr": ("h", 1), "hrs": ("h", 1), "小时": ("h", 1), "个小时": ("h", 1),
    "钟头": ("h", 1), "个钟头": ("h", 1),
    "day": ("d", 1), "days": ("d", 1), "天": ("d", 1), "日": ("d", 1),
    "week": ("w", 1), "weeks": ("w", 1), "wk": ("w", 1), "wks": ("w", 1), "周": ("w", 1), "个周": ("w", 1),
    "星期": ("w", 1), "个星期": ("w", 1), "礼拜": ("w", 1), "个礼拜": ("w", 1),
    "month": ("m", 1), "months": ("m", 1), "mo": ("m", 1), "mon": ("m", 1), "月": ("m", 1), "个月": ("m", 1),
    "quarter": ("m", 3), "quarters": ("m", 3), "q": ("m", 3), "季": ("m", 3), "季度": ("m", 3), "个季度": ("m", 3),
    "year": ("y", 1), "years": ("y", 1), "yr": ("y", 1), "yrs": ("y", 1), "年": ("y", 1),
    "h": ("h", 1), "d": ("d", 1), "w": ("w", 1), "m": ("m", 1), "y": ("y", 1), "min": ("min", 1),
}
_DIGITS = {"一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_SPAN = re.compile(r"(?P<sign>[+-]?)\s*(?P<n>[0-9]+|[一两二三四五六七八九十]|半)\s*(?P<unit>[^\s0-9]+)", re.A)


def _read(text: object) -> tuple[str, int, str] | None:
    """(sign, number, unit) of a span written with a unit word, else None; 半年 is six months, 半小时 30 minutes."""
    if not isinstance(text, str):
        return None
    match = _SPAN.fullmatch(unicodedata.normalize("NFKC", text).strip().lower())
    if match is None or match["unit"] not in _UNITS:
        return None
    unit, times = _UNITS[match["unit"]]
    if match["n"] == "半":
        halves = {"y": ("m", 6), "h": ("min", 30)}
        if unit not in halves or times != 1:
            return None
        unit, number = halves[unit]
    else:
        number = (int(match["n"]) if match["n"].isdigit() else _DIGITS[match["n"]]) * times
    return (match["sign"], number, unit) if number > 0 else None


# What people write for a calendar window (the language keeps one spelling of each, so that policies stay
# comparable: `crm-rules diff`, the stored definitions of runs); read after folding case, `-` and `_` to spaces.
_CALENDAR_ALIASES = {
    "year to date": ("ytd", "y t d", "yeartodate", "this year", "year so far", "本年至今", "年初至今", "今年至今",
                     "今年以来", "年初以来", "本年", "今年", "本年度"),
    "quarter to date": ("qtd", "q t d", "quartertodate", "this quarter", "quarter so far", "本季度至今", "本季至今",
                        "季初至今", "本季度以来", "季初以来", "本季度", "本季"),
    "month to date": ("mtd", "m t d", "monthtodate", "this month", "month so far", "本月至今", "月初至今",
                      "本月以来", "月初以来", "本月"),
}
_CALENDAR_FIX = {alias: window for window, aliases in _CALENDAR_ALIASES.items() for alias in (window, *aliases)}
_WEEK_TO_DATE = ("week to date", "wtd", "w t d", "weektodate", "this week", "week so far", "本周至今", "周初至今",
                 "本周以来", "本周")


def _folded(text: str) -> str:
    """``text`` in lower case with `-`, `_`, `.` and runs of spaces as one space (`Quarter-To-Date`: `quarter to
    date`)."""
    return re.sub(r"[\s_.\-]+", " ", unicodedata.normalize("NFKC", text).strip().lower()).strip()


def calendar_fix(text: object) -> str | None:
    """The calendar window ``text`` was meant to be (`YTD`, `年初至今`, `quarter-to-date`), or None."""
    return _CALENDAR_FIX.get(_folded(text)) if isinstance(text, str) else None


def week_to_date(text: object) -> str | None:
    """Why a week to date is refused, for `week to date` and its spellings; None for any other text.

    Weeks start on Monday (ISO 8601, China) in some calendars and on Sunday in others, and "the same week last
    year" starts on another day of the month each year; a week is also too short for a customer's grade."""
    if not isinstance(text, str) or _folded(text) not in _WEEK_TO_DATE:
        return None
    return ("is not a window crm-rules offers: weeks start on Monday in some calendars and on Sunday in others, and "
            "a week is too short to grade customers by; write `7d` for the last seven days, or `month to date`")


def calendar_in_trailing(text: object) -> str | None:
    """Why a calendar window is refused where only a span is (the retention plugin's `purchase_gap.window`), or
    None for any other text: the usual interval between orders needs a stretch of history of a steady length, and
    a year to date is only days long in early January."""
    meant = calendar_fix(text)
    if meant is None:
        return week_to_date(text)
    named = "" if _folded(text) == meant else f" ({meant})"
    return (f"is a calendar window{named}, which this window does not take: the usual interval between orders "
            f"needs history of a steady length, and a {meant} is only days long at the start of the "
            f"{meant.split()[0]}; write a span such as `24 months`, or `all`")


# What people put before a look-back span (`last 12 months`, `近12个月`): a window always ends on the as-of date.
_LOOKING_BACK = re.compile(r"^(?:(?:the\s+)?(?:last|past|previous|trailing|rolling)\s+|最近|近|过去|前)", re.I)


def window_fix(text: object) -> str | None:
    """The window ``text`` was meant to be (`12个月`: `12 months`, `1 quarter`: `3 months`, `YTD`: `year to date`,
    `last 12 months`: `12 months`), or None."""
    if (meant := calendar_fix(text)) is not None:
        return meant
    if isinstance(text, str) and _LOOKING_BACK.match(text.strip()):
        bare = _LOOKING_BACK.sub("", text.strip())
        if re.fullmatch(TRAILING_WINDOW_PATTERN, bare) and bare != "all":
            return bare
        text = bare
    span = _read(text)
    if span is None or span[0] or span[2] in ("min", "h"):
        return None
    _, number, unit = span
    return f"{number} months" if unit == "m" else f"{number}{unit}"


def offset_fix(text: object) -> str | None:
    """The offset ``text`` was meant to be: a window's form (`1 quarter`: `3 months`); `-12 months` counts back from
    the as-of date, which an offset always does, so it is `12 months`."""
    span = _read(text)
    if span is None or span[0] == "+" or span[2] in ("min", "h"):
        return None
    _, number, unit = span
    return f"{number} months" if unit == "m" else f"{number}{unit}"


def zero_offset(text: object) -> str | None:
    """Why an offset of nothing (`0d`, `0 months`, `0`) is refused, or None for any other text.

    It would be the window without an offset, written so that a reader wonders what was meant; one way to say it
    keeps policies comparable (``crm-rules diff``, the stored definitions of runs)."""
    if not isinstance(text, str):
        return None
    match = re.fullmatch(r"[+-]?0+\s*([^\s0-9]*)", unicodedata.normalize("NFKC", text).strip().lower())
    if match is None or (match[1] and match[1] not in _UNITS):
        return None
    return ("is no offset: without one the window already ends on the as-of date; remove `offset`, or write how far "
            "before the as-of date the window ends, e.g. 12 months")


_MINUTES = {"min": 1, "h": 60, "d": 24 * 60, "w": 7 * 24 * 60}
_PART = re.compile(r"\s*(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[^\s0-9.]+?)\s*(?:and\s*|,\s*)?(?=[0-9]|$)", re.A)


def _minutes(text: str) -> int | None:
    """The minutes of a duration written in parts or with a fraction (`1h30m`, `1小时30分钟`, `0.5h`, `1.5 days`), or
    None; `m` is minutes here, as in the duration form."""
    folded, total, at = unicodedata.normalize("NFKC", text).strip().lower(), 0.0, 0
    while at < len(folded):
        match = _PART.match(folded, at)
        if match is None or match["unit"] not in _UNITS:
            return None
        unit, times = _UNITS[match["unit"]]
        unit = "min" if unit == "m" else unit
        if unit not in _MINUTES:
            return None
        total, at = total + float(match["n"]) * times * _MINUTES[unit], match.end()
    return int(total) if total >= 1 and total == int(total) else None


def duration_fix(text: object) -> str | None:
    """The response or on-site time ``text`` was meant to be (`2 hours`: `2h`, `4小时`: `4h`, `1h30m`: `90m`, `0.5h`:
    `30m`), or None."""
    span = _read(text)
    if span is not None and not span[0] and span[2] not in ("m", "y"):
        _, number, unit = span
        return f"{number}{'m' if unit == 'min' else unit}"
    minutes = _minutes(text) if isinstance(text, str) else None
    if minutes is None:
        return None
    unit = next(u for u in ("w", "d", "h", "min") if minutes % _MINUTES[u] == 0)
    return f"{minutes // _MINUTES[unit]}{'m' if unit == 'min' else unit}"


# A span counted in working time (`2 working days`, `3 business days`, `2个工作日`, `8 working hours`).
_WORKING = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?:(?:working|work|business)\s*(?P<unit>days?|hours?|hrs?|h|d)|"
                      r"个?工作(?P<cn>日|天|小时))", re.A)
# An availability where a duration belongs (`24/7`, `7x24`, `7*24`, `全天候`, `24 hours a day`).
_AVAILABILITY = re.compile(r"24\s*[/x×*]\s*7|7\s*[/x×*]\s*24|24\s*/\s*365|全天候|全天|24\s*(?:hours?|h)\s*a\s*day", re.A)
_FORMS = "a duration is a number and a unit of calendar time (15m, 1h, 4h, 2d, 1w)"


def duration_refusal(text: object) -> str | None:
    """Why a response or on-site time is refused that is no slip of the form: working days (crm-rules counts
    calendar time, and knows no one's weekends and holidays), and an availability such as `24/7` (when someone
    answers, not how soon); None for any other text."""
    if not isinstance(text, str):
        return None
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    if match := _WORKING.fullmatch(folded):
        number = match["n"]
        hours = (match["unit"] or "").startswith("h") or match["cn"] == "小时"
        if hours:
            return (f"is counted in working hours, which crm-rules does not count (it knows no one's working hours, "
                    f"weekends or holidays); {_FORMS}: write {number}h")
        days = float(number)
        plain = f"{days:g}"
        also = f" or {days * 24:g}h" if days * 24 == int(days * 24) else ""
        fix = f"{plain}d{also}" if days == int(days) else f"{days * 24:g}h"
        return (f"is counted in working days, which crm-rules does not count (it knows no one's weekends or "
                f"holidays); {_FORMS}: write {fix}")
    if _AVAILABILITY.fullmatch(folded):
        return (f"is an availability (when someone answers), not a duration (how soon they answer); {_FORMS}: write "
                f"the time it stands for, e.g. 1h, and put the availability into a perk text (perks: [{text.strip()} "
                f"hotline])")
    return None


def date_fix(text: object) -> str | None:
    """The date ``text`` was meant to be, written YYYY-MM-DD (`2026/06/30`, `2026年6月30日`), or None."""
    return iso_date(text) if isinstance(text, str) else None


def relative_date_fix(text: object) -> str | None:
    """The date relative to a test file's as-of date ``text`` was meant to be (`-3个月`, `-3 months`: `-3m`), or the
    date written YYYY-MM-DD (`2026/06/30`: `2026-06-30`)."""
    if (day := date_fix(text)) is not None:
        return day
    span = _read(text)
    if span is None or not span[0] or span[2] in ("min", "h"):
        return None
    sign, number, unit = span
    return f"{sign}{number}{unit}"


def missing_unit(pattern: object, value: object) -> str | None:
    """What to write for a bare number where a span of one of the forms belongs (`window: 12`, `response_time: 30`),
    which YAML reads as a number and the form cannot read without its unit; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    if pattern in (WINDOW_PATTERN, TRAILING_WINDOW_PATTERN, OFFSET_PATTERN):
        return f"a span needs its unit: {value} months, {value}d, {value}w or {value}y"
    if pattern == DURATION_PATTERN:
        return f"a duration needs its unit: {value}m (minutes), {value}h or {value}d"
    return None


FIXES = {WINDOW_PATTERN: window_fix, TRAILING_WINDOW_PATTERN: window_fix, OFFSET_PATTERN: offset_fix,
         DURATION_PATTERN: duration_fix, RELATIVE_DATE_PATTERN: relative_date_fix, DATE_PATTERN: date_fix}
#: Values of a form that are refused for a reason of their own, not as a slip of the form: the reason, or None.
REFUSALS = {OFFSET_PATTERN: zero_offset, DURATION_PATTERN: duration_refusal, WINDOW_PATTERN: week_to_date, TRAILING_WINDOW_PATTERN: calendar_in_trailing}
