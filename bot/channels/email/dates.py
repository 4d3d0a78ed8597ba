"""Finding the return date in an out-of-office reply (bokmål, nynorsk, English).

The date lets the bot hold reminders until the respondent is back, so a wrong date costs at
most one early or late reminder, while a missed one costs nothing. The parser therefore only
reads a date that follows a phrase about coming back or being away *until*, and gives up
otherwise. Norwegian numeric dates are day-first ("7.10", "11/10"); a missing year is the
next occurrence on or after today.

"tilbake 14. oktober", "back on Monday 7 October", "until 11/10" → that day;
"til og med 11. oktober", "t.o.m. 11.10", "through October 11" → the day after.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

__all__ = ["parse_return_date"]

#: Only the start of an auto-reply is read: the date is in its first sentences.
_MAX_CHARS = 4000
#: How far after the trigger phrase the date may start ("tilbake på kontoret mandag 7.10").
_WINDOW = 48

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("januar", "january", "jan"),
        ("februar", "february", "feb"),
        ("mars", "march", "mar"),
        ("april", "apr"),
        ("mai", "may"),
        ("juni", "june", "jun"),
        ("juli", "july", "jul"),
        ("august", "aug"),
        ("september", "sept", "sep"),
        ("oktober", "october", "okt", "oct"),
        ("november", "nov"),
        ("desember", "december", "des", "dec"),
    ),
    start=1,
):
    for _name in _names:
        _MONTHS[_name] = _number

_WEEKDAYS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        ("mandag", "måndag", "monday"),
        ("tirsdag", "tysdag", "tuesday"),
        ("onsdag", "wednesday"),
        ("torsdag", "thursday"),
        ("fredag", "friday"),
        ("lørdag", "laurdag", "saturday"),
        ("søndag", "sundag", "sunday"),
    )
):
    for _name in _names:
        _WEEKDAYS[_name] = _number

_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))

#: Phrases after which the date is the last day away: the return is the day after.
_INCLUSIVE = (
    r"til\s+og\s+med|t\.\s?o\.\s?m\.?|tom\.?|through|thru|up\s+to\s+and\s+including"
    r"|to\s+and\s+including|including"
)
#: Phrases after which the date is the first day back (or the end of an "until").
_RETURN = (
    r"tilbake|attende|tilbage|på\s+jobb\s+igjen|på\s+jobb\s+att|treffes\s+igjen"
    r"|back|return(?:ing|s)?|in\s+the\s+office|til|inntil|fram\s+til|frem\s+til|until|till"
)
_TRIGGER_RE = re.compile(
    rf"\b(?:(?P<inclusive>{_INCLUSIVE})|(?P<back>{_RETURN}))(?![\w])", re.IGNORECASE
)

_YEAR = r"(?P<year>\d{4}|\d{2})"
_DATE_RES = (
    # 2019-10-14
    re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"),
    # 14.10.2019, 14.10.19, 14/10/2019, 14.10, 7/10
    re.compile(
        rf"(?<![\d.])(?P<day>\d{{1,2}})[./](?P<month>\d{{1,2}})(?:[./]{_YEAR})?(?![\d/]|\.\d)"
    ),
    # 14. oktober 2019, 14 oct, 14th of October, 6. januar
    re.compile(
        rf"\b(?P<day>\d{{1,2}})(?:\.|st|nd|rd|th)?\s*(?:of\s+)?(?P<mname>{_MONTH})\b\.?"
        rf"(?:,?\s+{_YEAR}\b)?",
        re.IGNORECASE,
    ),
    # October 14, Oct 14th, 2019
    re.compile(
        rf"\b(?P<mname>{_MONTH})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+{_YEAR}\b)?",
        re.IGNORECASE,
    ),
)
_WEEK_RE = re.compile(r"\b(?:uke|veke|week)\s+(?P<week>\d{1,2})\b", re.IGNORECASE)
_WEEKDAY_RE = re.compile(rf"\b(?P<wday>{_WEEKDAY})\b", re.IGNORECASE)
#: A sentence end stops the search for a date after a trigger.
_SENTENCE_END_RE = re.compile(r"[.!?](?:\s|$)(?!\s*(?:\d|" + _MONTH + r"))", re.IGNORECASE)


def parse_return_date(text: str, *, today: date) -> date | None:
    """The first day the writer of `text` is back, or None when no such date is stated.

    The first trigger phrase followed closely by a date decides. A date without a year is
    its next occurrence on or after `today` ("tilbake 6. januar" on 2019-12-20 is
    2020-01-06); a bare weekday ("tilbake mandag") is the next such day after today, and
    "uke 42" is the Monday of that ISO week.
    """
    sample = text[:_MAX_CHARS]
    for trigger in _TRIGGER_RE.finditer(sample):
        window = sample[trigger.end() : trigger.end() + _WINDOW]
        found = _date_in(window, today)
        if found is None:
            continue
        return found + timedelta(days=1) if trigger.group("inclusive") else found
    return None


def _date_in(window: str, today: date) -> date | None:
    """The date at the start of `window` (after filler words), or None."""
    end = _SENTENCE_END_RE.search(window)
    if end is not None:
        window = window[: end.start() + 1]
    best: tuple[int, date] | None = None
    for pattern in _DATE_RES:
        for match in pattern.finditer(window):
            found = _date_of(match, today)
            if found is not None and (best is None or match.start() < best[0]):
                best = (match.start(), found)
            if found is not None:
                break
    if best is not None:
        return best[1]
    week = _WEEK_RE.search(window)
    if week is not None:
        return _monday_of_week(int(week.group("week")), today)
    weekday = _WEEKDAY_RE.search(window)
    if weekday is not None and weekday.start() < 24:
        wanted = _WEEKDAYS[weekday.group("wday").lower()]
        return today + timedelta(days=(wanted - today.weekday() - 1) % 7 + 1)
    return None


def _date_of(match: re.Match[str], today: date) -> date | None:
    groups = match.groupdict()
    day = int(groups["day"])
    name = groups.get("mname")
    month = _MONTHS[name.lower()] if name else int(groups["month"])
    year_text = groups.get("year")
    if year_text:
        year = int(year_text)
        if year < 100:
            year += 2000
        try:
            return date(year, month, day)
        except ValueError:
            return None
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:  # 29 February, or no such day at all
            continue
        if candidate >= today:
            return candidate
    return None


def _monday_of_week(week: int, today: date) -> date | None:
    for year in (today.year, today.year + 1):
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError:
            continue
        if monday + timedelta(days=6) >= today:
            return monday
    return None
