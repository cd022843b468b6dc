"""Where a window of days, weeks, months or years ending on the as-of date starts, and a calendar window
(`year to date`, `quarter to date`, `month to date`).

Calendar arithmetic in SQLite (``date(d, '-6 months')``) keeps the day of the
month and rolls an impossible date forward: six months before 2026-08-31 is
"2026-02-31", that is 2026-03-03, so a 6-month window as of the end of August
would start on March 4th and lose three days of orders, and start later than
the same window as of September 1st.  Here a month-end stays a month-end and
a day the shorter month lacks becomes its last day, so that a window of N
months ending on a month's last day is exactly N calendar months, and a later
as-of date never starts a window earlier.

A calendar window starts on the first day of the calendar period (year, quarter, month) that holds its last
day: on a day that is not a period's end, `3 months` is not "this quarter", and business reviews speak in
periods to date.  With an offset its last day moves back first, by the month rules above, and the period is
the one holding that day: `year to date` a year before 2026-06-15 is 2025-01-01 .. 2025-06-15.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

UNIT_MONTHS = {"months": 1, "years": 12}
UNIT_DAYS = {"days": 1, "weeks": 7}
_SPAN = re.compile(r"^([1-9][0-9]*)\s*(d|day|days|w|week|weeks|m|month|months|y|year|years)$")
_UNITS = {"d": "days", "w": "weeks", "m": "months", "y": "years"}
#: The calendar windows and the months of their period; a period starts in a month 1 + a multiple of them.
CALENDAR = {"year to date": 12, "quarter to date": 3, "month to date": 1}


def calendar_months(window: object) -> int | None:
    """Months of the period of a calendar window (`quarter to date`: 3), or None for any other window."""
    return CALENDAR.get(window.strip()) if isinstance(window, str) else None


def period_start(end: str, months: int) -> str:
    """First day of the calendar period of ``months`` months (12, 3 or 1) that holds the day ``end``."""
    day = dt.date.fromisoformat(end)
    return dt.date(day.year, day.month - (day.month - 1) % months, 1).isoformat()


def span(text: str) -> tuple[int, str]:
    """(count, unit) of a span as a policy writes a window or an offset (`12 months`, `1y`, `90d`), the schema
    having checked its form."""
    count, unit = _SPAN.match(text.strip()).groups()
    return int(count), _UNITS[unit[0]]


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` months earlier (later, for a negative count), kept inside its month."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    if year < dt.MINYEAR:
        return dt.date.min
    if year > dt.MAXYEAR:
        return dt.date.max
    last = calendar.monthrange(year, month + 1)[1]
    at_month_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return dt.date(year, month + 1, last if at_month_end else min(day.day, last))


def shifted(as_of: str, count: int, unit: str) -> str:
    """``as_of`` moved by ``count`` days, weeks, months or years (negative: earlier), as YYYY-MM-DD."""
    day = dt.date.fromisoformat(as_of)
    if unit in UNIT_DAYS:
        try:
            return (day + dt.timedelta(days=count * UNIT_DAYS[unit])).isoformat()
        except OverflowError:
            return (dt.date.min if count < 0 else dt.date.max).isoformat()
    return months_before(day, -count * UNIT_MONTHS[unit]).isoformat()


def window_start(as_of: str, count: int, unit: str) -> str:
    """First day of the window of ``count`` units that ends on (and includes) ``as_of``."""
    before = dt.date.fromisoformat(shifted(as_of, -count, unit))
    return before.isoformat() if before == dt.date.min else (before + dt.timedelta(days=1)).isoformat()


def window_end(as_of: str, offset: str | None) -> str:
    """Last day of a window that ends ``offset`` (a span such as ``12 months``) before ``as_of``: ``as_of`` without
    one.  Counted as windows count, so the last day of a quarter stays one a year earlier."""
    if offset is None:
        return as_of
    count, unit = span(offset)
    return shifted(as_of, -count, unit)


def offset_window(as_of: str, window: str, offset: str | None) -> tuple[str, str]:
    """(first day, last day) of a ``window`` (a span or a calendar window) that ends ``offset`` before ``as_of``
    (on it, without one): the window a run as of that last day reads."""
    end = window_end(as_of, offset)
    months = calendar_months(window)
    return (period_start(end, months) if months else window_start(end, *span(window))), end
