"""The campaign calendar: when an invitation or a reminder may go out.

Why this exists: a survey mail read on a Saturday, on 17 May or in a county's autumn school
break is read late or not at all, and a reminder that lands the day after someone's
out-of-office ends is buried under a week of mail. The plan in config.yaml says when the
campaign runs; this module answers "may we send now, and if not, when next?".

Everything here is pure: no clock, no I/O and no configuration (bot.config builds a `Plan`
from its settings with `plan_from_settings`). Callers pass the moment they are asking about.
Moments go in aware (any zone) and come out in UTC, the way the database stores them. Opening
hours are wall-clock times in the window's zone, so 08:00 stays 08:00 in Oslo across the
change from summer to winter time (27 October 2019) and back (31 March 2019).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays

#: Weekday names as written in config.yaml, Monday first (ISO weekday = index + 1).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES: tuple[str, ...] = (
    "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag",
)
#: How far ahead `next_opening` looks before it gives up: a window closed for longer than a
#: year is a configuration mistake, not a reason to loop forever.
MAX_SEARCH_DAYS = 400
#: The moment formats config.yaml accepts, for error messages.
MOMENT_FORMATS = ('"YYYY-MM-DD HH:MM" or an ISO week date "YYYY-Www-D HH:MM" '
                  '(e.g. "2019-W42-2 09:00")')

_MOMENT = re.compile(
    r"(?:(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})|(?P<iy>\d{4})-W(?P<iw>\d{2})-(?P<id>[1-7]))"
    r"[ T](?P<hh>\d{1,2}):(?P<mm>\d{2})(?::(?P<ss>\d{2}))?"
)
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class Blocked:
    """A closed period of whole local days (`end` inclusive), e.g. Christmas or høstferie.

    `counties` limits it to respondents in those 2019 counties; empty means everyone. A
    respondent whose county is unknown is not held back by a county-limited period.
    """

    start: date
    end: date
    counties: frozenset[str]
    reason: str

    def applies(self, day: date, county: str | None) -> bool:
        """True when `day` is in the period and the period concerns `county`."""
        if not self.start <= day <= self.end:
            return False
        return not self.counties or (county is not None and county in self.counties)


@dataclass(frozen=True)
class Window:
    """When mail may be sent: weekdays (ISO 1..7), local opening hours, holidays, blocks."""

    weekdays: frozenset[int]
    start: time
    end: time
    zone: ZoneInfo
    holiday_country: str | None
    blocked: tuple[Blocked, ...]

    @property
    def hours_label(self) -> str:
        """The opening hours as people write them, e.g. `08:00–15:00`."""
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class Plan:
    """A survey's campaign: invitation, reminders, close and seal, all inside one window."""

    invite_at: datetime
    reminder_days: tuple[int, ...]
    max_reminders: int
    min_gap: timedelta
    close_at: datetime
    seal_after: timedelta | None
    channel: str
    window: Window


def parse_moment(text: str) -> datetime:
    """A local wall-clock moment as config.yaml writes it; naive, the window's zone applies.

    ISO week dates are accepted because campaigns are planned in week numbers in Norway.
    """
    match = _MOMENT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"cannot read {text!r}: expected {MOMENT_FORMATS}")
    part = match.groupdict()
    try:
        if part["y"] is not None:
            day = date(int(part["y"]), int(part["m"]), int(part["d"]))
        else:
            day = date.fromisocalendar(int(part["iy"]), int(part["iw"]), int(part["id"]))
        clock = time(int(part["hh"]), int(part["mm"]), int(part["ss"] or 0))
    except ValueError as exc:
        raise ValueError(f"cannot read {text!r}: {exc}") from exc
    return datetime.combine(day, clock)


def format_moment(moment: datetime) -> str:
    """A naive local moment the way config.yaml writes it (seconds only when there are any)."""
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment.second else f"{moment:%Y-%m-%d %H:%M}"


def parse_hours(text: str) -> tuple[time, time]:
    """Opening hours `HH:MM-HH:MM` (a hyphen or an en dash) as (start, end); end excluded."""
    match = _HOURS.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"cannot read {text!r}: expected opening hours like \"08:00-15:00\"")
    try:
        start = time(int(match[1]), int(match[2]))
        end = time(int(match[3]), int(match[4]))
    except ValueError as exc:
        raise ValueError(f"cannot read {text!r}: {exc}") from exc
    if start >= end:
        raise ValueError(f"{text!r} has no hours: the start must be before the end")
    return start, end


def is_holiday_country(code: str) -> bool:
    """True when the holidays library knows the public holidays of country `code`."""
    return code in holidays.list_supported_countries()


@lru_cache(maxsize=64)
def _public_holidays(country: str, year: int) -> Mapping[date, str]:
    calendar = holidays.country_holidays(country, years=year)
    # Without an explicit language the library guesses one from the process's locale; the
    # country's own language keeps the reasons ("helligdag: Grunnlovsdag") the same everywhere.
    if calendar.default_language:
        calendar = holidays.country_holidays(country, years=year,
                                             language=calendar.default_language)
    return MappingProxyType(dict(calendar.items()))


def holiday_name(country: str, day: date) -> str | None:
    """The public holiday on `day` in `country`, or None."""
    return _public_holidays(country, day.year).get(day)


def _local(window: Window, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: pass an aware moment")
    return moment.astimezone(window.zone)


def _day_closed(window: Window, day: date, county: str | None) -> str | None:
    """Why the whole local `day` is closed, or None when it has opening hours."""
    if window.holiday_country is not None:
        name = holiday_name(window.holiday_country, day)
        if name is not None:
            return f"helligdag: {name}"
    if day.isoweekday() not in window.weekdays:
        return _DAY_NAMES[day.weekday()]
    for block in window.blocked:
        if block.applies(day, county):
            return block.reason
    return None


def closed_reason(window: Window, moment: datetime, *,
                  county: str | None = None) -> str | None:
    """Why the window is closed at `moment` (`lørdag`, `helligdag: …`, a block's reason,
    `utenfor 08:00–15:00`), or None when it is open."""
    local = _local(window, moment)
    reason = _day_closed(window, local.date(), county)
    if reason is not None:
        return reason
    if not window.start <= local.time() < window.end:
        return f"utenfor {window.hours_label}"
    return None


def is_open(window: Window, moment: datetime, *, county: str | None = None) -> bool:
    """True when mail may be sent at `moment` (aware) to a respondent in `county`."""
    return closed_reason(window, moment, county=county) is None


def _first_true(low: datetime, high: datetime, test: Callable[[datetime], bool]) -> datetime:
    """The first whole second in (low, high] where `test` turns true; false at low, true at high.

    Time-zone transitions fall on whole seconds, so this finds them exactly.
    """
    below, above = 0, int((high - low).total_seconds())
    while above - below > 1:
        middle = (below + above) // 2
        if test(low + timedelta(seconds=middle)):
            above = middle
        else:
            below = middle
    return low + timedelta(seconds=above)


def _wall_instants(day: date, clock: time, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants `day clock` means in `zone`: (first, second) reading.

    They are equal on ordinary days; first < second when the clock time happens twice (the
    autumn fold); first > second when it never happens (the spring gap).
    """
    wall = datetime.combine(day, clock, tzinfo=zone)
    return wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)


def _openings(window: Window, day: date) -> list[datetime]:
    """Every instant on local `day` at which the window may open, as the wall clock runs.

    Normally that is just the opening time. Around a change of clocks it can also be the end
    of a spring gap the opening time falls in, the second reading of an opening time that
    happens twice, or the moment an autumn fold turns the clock back from past closing time
    to within the hours.
    """
    zone = window.zone

    def wall(moment: datetime) -> tuple[date, time]:
        local = moment.astimezone(zone)
        return local.date(), local.time()

    first, second = _wall_instants(day, window.start, zone)
    if first <= second:
        found = [first, second]
    else:
        found = [_first_true(second, first, lambda m: wall(m) >= (day, window.start))]
    end_first, end_second = _wall_instants(day, window.end, zone)
    if end_first < end_second:
        found.append(_first_true(end_first, end_second, lambda m: wall(m) < (day, window.end)))
    return found


def next_opening(window: Window, moment: datetime, *, county: str | None = None) -> datetime:
    """`moment` (in UTC) when the window is open then, else the first open instant after it.

    Raises:
        ValueError: `moment` is naive, or the window does not open within `MAX_SEARCH_DAYS`.
    """
    local = _local(window, moment)
    moment = moment.astimezone(UTC)
    if is_open(window, moment, county=county):
        return moment
    for offset in range(MAX_SEARCH_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        if _day_closed(window, day, county) is not None:
            continue
        candidates = [c for c in _openings(window, day)
                      if c > moment and is_open(window, c, county=county)]
        if candidates:
            return min(candidates)
    raise ValueError(f"the window never opens: closed for {MAX_SEARCH_DAYS} days "
                     f"from {local:%Y-%m-%d %H:%M %Z}")


def invitation_at(plan: Plan, *, county: str | None = None) -> datetime:
    """When the invitation goes out: the planned moment, or the window's next opening."""
    return next_opening(plan.window, plan.invite_at, county=county)


def _after_days(moment: datetime, days: int, zone: ZoneInfo) -> datetime:
    """`days` calendar days after `moment` at the same local clock time, in UTC."""
    wall = moment.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def reminder_at(plan: Plan, n: int, *, invited_at: datetime, last_reminder_at: datetime | None,
                away_until: date | None, county: str | None = None,
                ) -> tuple[datetime | None, str]:
    """When reminder `n` (1-based) is due, in UTC, and why; None when it is not to be sent.

    The reminder is due `reminder_days[n-1]` days after the invitation at the same local clock
    time, but never sooner than `min_gap` after the previous reminder, never on or before the
    last day a respondent said they are away, and only when the window is open. None when that
    is at or after the close, or when `n` is past `max_reminders`.
    """
    if n < 1:
        raise ValueError(f"reminders are numbered from 1, not {n}")
    window = plan.window
    _local(window, invited_at)
    allowed = min(plan.max_reminders, len(plan.reminder_days))
    if n > allowed:
        return None, f"høyst {allowed} purringer"
    days = plan.reminder_days[n - 1]
    due = _after_days(invited_at, days, window.zone)
    reason = f"{days} dager etter invitasjonen"
    if last_reminder_at is not None:
        _local(window, last_reminder_at)
        earliest = last_reminder_at.astimezone(UTC) + plan.min_gap
        if earliest > due:
            due, reason = earliest, f"minst {plan.min_gap.days} dager etter forrige purring"
    if away_until is not None:
        back = datetime.combine(away_until + timedelta(days=1), time(0), tzinfo=window.zone)
        if back.astimezone(UTC) > due:
            due = back.astimezone(UTC)
            reason = f"utsatt: fraværende til {away_until:%d.%m}"
    closed = f"etter stengning {plan.close_at.astimezone(window.zone):%d.%m.%Y %H:%M}"
    if due >= plan.close_at:
        return None, closed
    try:
        opening = next_opening(window, due, county=county)
    except ValueError:
        return None, closed
    if opening >= plan.close_at:
        return None, closed
    if opening > due:
        reason = f"{reason} (stengt: {closed_reason(window, due, county=county)})"
    return opening, reason
