"""The campaign calendar: parsing the plan, the send window, DST, reminders, config errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.campaign.plan import (
    Blocked,
    Plan,
    Window,
    closed_reason,
    invitation_at,
    is_open,
    next_opening,
    parse_moment,
    reminder_at,
)
from bot.config import ConfigError, PlanSettings, load_settings, plan_from_settings

ROOT = Path(__file__).resolve().parents[1]
OSLO = ZoneInfo("Europe/Oslo")
HOSTFERIE_40 = Blocked(start=date(2019, 9, 30), end=date(2019, 10, 4),
                       counties=frozenset({"Oslo", "Akershus"}), reason="høstferie uke 40")
JUL = Blocked(start=date(2019, 12, 20), end=date(2020, 1, 2), counties=frozenset(),
              reason="jul")


def _window(*, weekdays: tuple[int, ...] = (1, 2, 3, 4, 5), start: time = time(8),
            end: time = time(15), zone: ZoneInfo = OSLO, holidays: str | None = "NO",
            blocked: tuple[Blocked, ...] = (HOSTFERIE_40, JUL)) -> Window:
    return Window(weekdays=frozenset(weekdays), start=start, end=end, zone=zone,
                  holiday_country=holidays, blocked=blocked)


def _oslo(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
          second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=OSLO)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
         second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _plan(*, days: tuple[int, ...] = (7, 14), max_reminders: int = 2, min_gap_days: int = 5,
          close: datetime | None = None, window: Window | None = None) -> Plan:
    return Plan(invite_at=_utc(2019, 10, 15, 7), reminder_days=days,
                max_reminders=max_reminders, min_gap=timedelta(days=min_gap_days),
                close_at=close or _oslo(2019, 12, 6, 16).astimezone(UTC), seal_after=None,
                channel="email", window=window or _window())


# -- parsing ----------------------------------------------------------------------------------


def test_iso_week_date_is_monday_of_week_40_in_oslo_time() -> None:
    """2019-W40-1 09:00 is Monday 30 Sep 2019 09:00 in Oslo, 07:00 UTC (summer time)."""
    assert parse_moment("2019-W40-1 09:00") == datetime(2019, 9, 30, 9)  # noqa: DTZ001
    settings = PlanSettings.model_validate({"invite": "2019-W40-1 09:00",
                                            "close": "2019-12-06 16:00"})
    plan = plan_from_settings(settings)
    assert plan.invite_at == _utc(2019, 9, 30, 7)
    assert plan.close_at == _utc(2019, 12, 6, 15)  # winter time by then


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2019-W42-2 09:00", _oslo(2019, 10, 15, 9)), ("2019-10-15 09:00", _oslo(2019, 10, 15, 9)),
     ("2020-W01-3 8:30", _oslo(2020, 1, 1, 8, 30)), ("2019-12-06T16:00", _oslo(2019, 12, 6, 16)),
     ("2019-12-06 16:00:30", _oslo(2019, 12, 6, 16, 0, 30))],
)
def test_both_moment_formats_are_read(text: str, expected: datetime) -> None:
    """Week dates and calendar dates, with a space or a T before the clock time; naive."""
    assert parse_moment(text) == expected.replace(tzinfo=None)


@pytest.mark.parametrize("text", ["15.10.2019 09:00", "2019-W54-1 09:00", "2019-10-15",
                                  "2019-02-30 09:00", "2019-10-15 25:00"])
def test_unreadable_moments_name_the_formats(text: str) -> None:
    """Every unreadable moment says what would have been accepted."""
    with pytest.raises(ValueError, match="cannot read"):
        parse_moment(text)


# -- the window -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "county", "reason"),
    [
        (_oslo(2019, 10, 16, 10), None, None),
        (_oslo(2019, 10, 19, 10), None, "lørdag"),
        (_oslo(2019, 10, 20, 10), None, "søndag"),
        (_oslo(2019, 10, 16, 7, 59), None, "utenfor 08:00–15:00"),
        (_oslo(2019, 10, 16, 8), None, None),
        (_oslo(2019, 10, 16, 14, 59, 59), None, None),
        (_oslo(2019, 10, 16, 15), None, "utenfor 08:00–15:00"),
        (_oslo(2019, 5, 17, 10), None, "helligdag: Grunnlovsdag"),
        (_oslo(2019, 5, 30, 10), None, "helligdag: Kristi himmelfartsdag"),
        (_oslo(2019, 10, 2, 10), "Oslo", "høstferie uke 40"),
        (_oslo(2019, 10, 2, 10), "Hordaland", None),
        (_oslo(2019, 10, 2, 10), None, None),
        (_oslo(2019, 12, 27, 10), "Hordaland", "jul"),
        (_utc(2019, 10, 16, 13, 0), None, "utenfor 08:00–15:00"),  # 15:00 in Oslo
        (_utc(2019, 10, 16, 12, 59), None, None),
    ],
)
def test_window_open_or_closed_with_reason(moment: datetime, county: str | None,
                                           reason: str | None) -> None:
    """Weekdays, hours (start in, end out), holidays by name, blocks only for their counties."""
    window = _window()
    assert closed_reason(window, moment, county=county) == reason
    assert is_open(window, moment, county=county) is (reason is None)


def test_no_holidays_when_no_country_is_set() -> None:
    """`holidays: null` keeps 17 May open."""
    assert is_open(_window(holidays=None), _oslo(2019, 5, 17, 10))


def test_naive_moments_are_refused() -> None:
    """A moment without a zone is ambiguous across DST; it is an error, not a guess."""
    with pytest.raises(ValueError, match="no time zone"):
        is_open(_window(), datetime(2019, 10, 16, 10))  # noqa: DTZ001
    with pytest.raises(ValueError, match="no time zone"):
        next_opening(_window(), datetime(2019, 10, 16, 10))  # noqa: DTZ001


# -- next opening -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "county", "expected"),
    [
        # Open: the moment itself, in UTC.
        (_oslo(2019, 10, 16, 10), None, _utc(2019, 10, 16, 8)),
        # Friday after hours → Monday 08:00.
        (_oslo(2019, 10, 18, 16), None, _utc(2019, 10, 21, 6)),
        # Before opening on a working day → 08:00 the same day.
        (_oslo(2019, 10, 16, 6), None, _utc(2019, 10, 16, 6)),
        # Across the end of summer time: Monday 08:00 CET is 07:00 UTC.
        (_oslo(2019, 10, 25, 16), None, _utc(2019, 10, 28, 7)),
        # Across the start of summer time: Monday 1 April 08:00 CEST is 06:00 UTC.
        (_oslo(2019, 3, 29, 16), None, _utc(2019, 4, 1, 6)),
        # Same instant given in another zone.
        (datetime(2019, 10, 25, 10, tzinfo=ZoneInfo("America/New_York")), None,
         _utc(2019, 10, 28, 7)),
        # Kristi himmelfartsdag (Thursday) → Friday 08:00.
        (_oslo(2019, 5, 29, 15), None, _utc(2019, 5, 31, 6)),
        # Høstferie in Oslo → Monday of week 41; Hordaland is open.
        (_oslo(2019, 9, 30, 9), "Oslo", _utc(2019, 10, 7, 6)),
        (_oslo(2019, 9, 30, 9), "Hordaland", _utc(2019, 9, 30, 7)),
        # Christmas for everyone; 1 January is a holiday as well → Friday 3 January 2020.
        (_oslo(2019, 12, 19, 15), None, _utc(2020, 1, 3, 7)),
    ],
)
def test_next_opening(moment: datetime, county: str | None, expected: datetime) -> None:
    """The first open instant at or after the moment, in UTC, wall-clock hours across DST."""
    opening = next_opening(_window(), moment, county=county)
    assert opening == expected
    assert opening.tzinfo is UTC


def test_opening_time_inside_the_spring_gap_opens_when_the_clock_jumps() -> None:
    """02:30 does not exist on 31 Mar 2019 in Oslo; the window opens at 03:00 CEST."""
    window = _window(weekdays=(1, 2, 3, 4, 5, 6, 7), start=time(2, 30), end=time(4),
                     holidays=None, blocked=())
    assert next_opening(window, _oslo(2019, 3, 31, 0)) == _utc(2019, 3, 31, 1)
    assert not is_open(window, _utc(2019, 3, 31, 0, 59, 59))


def test_autumn_fold_reopens_when_the_clock_turns_back() -> None:
    """Hours 01:00–02:30 on 27 Oct 2019: closed at 02:45 CEST, open again at 02:00 CET."""
    window = _window(weekdays=(1, 2, 3, 4, 5, 6, 7), start=time(1), end=time(2, 30),
                     holidays=None, blocked=())
    after_first_close = _utc(2019, 10, 27, 0, 45)  # 02:45 CEST
    assert not is_open(window, after_first_close)
    assert next_opening(window, after_first_close) == _utc(2019, 10, 27, 1)  # 02:00 CET


def test_a_window_that_never_opens_is_an_error() -> None:
    """A block longer than the search horizon ends the search instead of looping."""
    always = Blocked(start=date(2019, 1, 1), end=date(2021, 12, 31), counties=frozenset(),
                     reason="stengt")
    with pytest.raises(ValueError, match="the window never opens"):
        next_opening(_window(blocked=(always,)), _oslo(2019, 10, 16, 10))


WINDOWS = [
    _window(),
    _window(weekdays=(2, 3, 4)),
    _window(weekdays=(1, 2, 3, 4, 5, 6, 7), start=time(1), end=time(2, 30), holidays=None),
    _window(weekdays=(1, 2, 3, 4, 5, 6, 7), start=time(2, 30), end=time(4), holidays=None),
    _window(zone=ZoneInfo("America/New_York"), holidays="US", blocked=()),
]


@given(
    window=st.sampled_from(WINDOWS),
    moment=st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2020, 12, 31),  # noqa: DTZ001
                        timezones=st.sampled_from([UTC, OSLO, ZoneInfo("Asia/Tokyo")]),
                        allow_imaginary=False),
    county=st.sampled_from([None, "Oslo", "Hordaland"]),
)
def test_next_opening_is_the_first_open_instant(window: Window, moment: datetime,
                                                county: str | None) -> None:
    """Never before the moment, always open, and nothing open is skipped on the way."""
    _assert_first_open(window, moment, county)


@pytest.mark.parametrize("window", WINDOWS[2:4])
@pytest.mark.parametrize("around", [_utc(2019, 3, 31, 1), _utc(2019, 10, 27, 1)])
def test_first_open_instant_around_the_change_of_clocks(window: Window,
                                                        around: datetime) -> None:
    """Every 7 minutes through the nights the clocks change, for hours that touch 02:00–03:00."""
    for step in range(-60, 60):
        _assert_first_open(window, around + timedelta(minutes=7 * step), None)


def _assert_first_open(window: Window, moment: datetime, county: str | None) -> None:
    opening = next_opening(window, moment, county=county)
    assert opening >= moment
    assert is_open(window, opening, county=county)
    if opening > moment:
        assert not is_open(window, opening - timedelta(seconds=1), county=county)
        probe = moment.astimezone(UTC)  # step in real time, not on the wall clock
        while probe < opening:
            assert not is_open(window, probe, county=county)
            probe += timedelta(minutes=30)


# -- reminders --------------------------------------------------------------------------------

INVITED = _utc(2019, 10, 15, 7)  # Tuesday 15 Oct 2019 09:00 in Oslo


def test_first_reminder_seven_days_after_the_invitation() -> None:
    """Same local clock time a week later."""
    due, reason = reminder_at(_plan(), 1, invited_at=INVITED, last_reminder_at=None,
                              away_until=None)
    assert due == _utc(2019, 10, 22, 7)
    assert reason == "7 dager etter invitasjonen"


def test_reminder_after_the_clocks_go_back_keeps_the_local_time() -> None:
    """Day 14 falls after 27 Oct: still 09:00 in Oslo, now 08:00 UTC."""
    due, _ = reminder_at(_plan(), 2, invited_at=INVITED, last_reminder_at=_utc(2019, 10, 22, 7),
                         away_until=None)
    assert due == _utc(2019, 10, 29, 8)


def test_away_until_puts_the_reminder_off_to_the_next_working_day() -> None:
    """Away until Friday 25 Oct: the reminder waits for Monday 08:00, and says why."""
    due, reason = reminder_at(_plan(), 1, invited_at=INVITED, last_reminder_at=None,
                              away_until=date(2019, 10, 25))
    assert due == _utc(2019, 10, 28, 7)
    assert reason.startswith("utsatt: fraværende til 25.10")


def test_away_until_in_the_past_changes_nothing() -> None:
    """An out-of-office that already ended does not delay the reminder."""
    due, reason = reminder_at(_plan(), 1, invited_at=INVITED, last_reminder_at=None,
                              away_until=date(2019, 10, 14))
    assert (due, reason) == (_utc(2019, 10, 22, 7), "7 dager etter invitasjonen")


def test_min_gap_after_a_late_first_reminder() -> None:
    """The first reminder went out late (Mon 28 Oct); the second waits the full 10 days."""
    last = _utc(2019, 10, 28, 9)
    due, reason = reminder_at(_plan(min_gap_days=10), 2, invited_at=INVITED,
                              last_reminder_at=last, away_until=None)
    assert due == last + timedelta(days=10)
    assert reason == "minst 10 dager etter forrige purring"


def test_reminder_due_on_a_closed_day_moves_and_says_why() -> None:
    """Due on Saturday: sent Monday 08:00, the reason names the closed day."""
    due, reason = reminder_at(_plan(days=(4,)), 1, invited_at=INVITED, last_reminder_at=None,
                              away_until=None)
    assert due == _utc(2019, 10, 21, 6)
    assert reason == "4 dager etter invitasjonen (stengt: lørdag)"


@pytest.mark.parametrize(
    ("kwargs", "n", "away", "reason"),
    [
        ({"close": _utc(2019, 10, 25, 14)}, 2, None, "etter stengning 25.10.2019 16:00"),
        ({}, 1, date(2019, 12, 6), "etter stengning 06.12.2019 16:00"),
        # Due on Saturday before a Saturday close: the window next opens after it.
        ({"days": (11,), "close": _utc(2019, 10, 26, 10)}, 1, None,
         "etter stengning 26.10.2019 12:00"),
        ({"max_reminders": 1}, 2, None, "høyst 1 purringer"),
        ({}, 3, None, "høyst 2 purringer"),
    ],
)
def test_no_reminder_after_the_close_or_beyond_max(kwargs: dict[str, Any], n: int,
                                                   away: date | None, reason: str) -> None:
    """None, with the reason, when the reminder would come too late or one too many."""
    assert reminder_at(_plan(**kwargs), n, invited_at=INVITED, last_reminder_at=None,
                       away_until=away) == (None, reason)


def test_reminders_are_numbered_from_one() -> None:
    """Reminder 0 is a caller's mistake."""
    with pytest.raises(ValueError, match="numbered from 1"):
        reminder_at(_plan(), 0, invited_at=INVITED, last_reminder_at=None, away_until=None)


def test_invitation_waits_for_the_countys_autumn_break() -> None:
    """Invited Monday of week 40: Oslo gets it after høstferie, Hordaland at once."""
    plan = plan_from_settings(PlanSettings.model_validate({
        "invite": "2019-W40-1 09:00", "close": "2019-12-06 16:00",
        "window": {"blocked": [{"from": "2019-09-30", "to": "2019-10-04",
                                "counties": ["Oslo"], "reason": "høstferie uke 40"}]},
    }))
    assert invitation_at(plan, county="Oslo") == _utc(2019, 10, 7, 6)
    assert invitation_at(plan, county="Hordaland") == _utc(2019, 9, 30, 7)


# -- configuration ----------------------------------------------------------------------------


def test_shipped_surveys_have_plans_inside_their_windows() -> None:
    """Both surveys plan an invitation and two reminders that all fall before the close."""
    settings = load_settings(ROOT / "config.yaml")
    plans = {survey.id: survey.plan for survey in settings.surveys}
    leaders, mayors = plans["virksomhetsleder-2020"], plans["ordforer-2020"]
    assert leaders is not None
    assert mayors is not None
    leader_plan, mayor_plan = plan_from_settings(leaders), plan_from_settings(mayors)
    assert invitation_at(leader_plan, county="Oslo") == _utc(2019, 10, 15, 7)
    assert leader_plan.close_at == _utc(2019, 12, 6, 15)
    assert invitation_at(mayor_plan) == _utc(2019, 10, 1, 7)
    for plan in (leader_plan, mayor_plan):
        invited = invitation_at(plan)
        for n in (1, 2):
            due, _ = reminder_at(plan, n, invited_at=invited, last_reminder_at=None,
                                 away_until=None)
            assert due is not None
            assert due < plan.close_at


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


BASE_PLAN: dict[str, Any] = {
    "invite": "2019-W42-2 09:00",
    "reminders": {"after_days": [7, 14], "max": 2, "min_gap_days": 5},
    "close": "2019-12-06 16:00",
    "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "hours": "08:00-15:00",
               "timezone": "Europe/Oslo", "holidays": "NO", "blocked": []},
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reminders": {"after_days": [7, 60]}},
         "surveys.0.plan.reminders.after_days: reminder 2 (day 60, 2019-12-14) falls after "
         "the close 2019-12-06 16:00"),
        ({"window": {"hours": "15:00-08:00"}},
         "surveys.0.plan.window.hours: '15:00-08:00' has no hours"),
        ({"window": {"hours": "8-15"}}, "surveys.0.plan.window.hours: cannot read '8-15'"),
        ({"window": {"weekdays": []}}, "surveys.0.plan.window.weekdays: no weekdays"),
        ({"window": {"weekdays": ["mon", "tor"]}}, "surveys.0.plan.window.weekdays.1: input"),
        ({"invite": "2019-12-07 09:00"},
         "surveys.0.plan.invite: the invitation 2019-12-07 09:00 is not before the close "
         "2019-12-06 16:00"),
        ({"reminders": {"max": 3}},
         "surveys.0.plan.reminders.max: 3 reminders, but after_days lists only 2"),
        ({"reminders": {"min_gap_days": 10}},
         "surveys.0.plan.reminders.min_gap_days: 10 days is more than the 7 between "
         "reminder 1 (day 7) and reminder 2 (day 14)"),
        ({"reminders": {"after_days": [14, 7]}},
         "surveys.0.plan.reminders.after_days: reminder 2 (day 7) is not after reminder 1"),
        ({"reminders": {"after_days": [0, 7]}}, "surveys.0.plan.reminders.after_days.0: input"),
        ({"window": {"timezone": "Europe/Olso"}},
         "surveys.0.plan.window.timezone: unknown time zone 'Europe/Olso'"),
        ({"window": {"holidays": "XX"}},
         "surveys.0.plan.window.holidays: unknown holidays country 'XX'"),
        ({"window": {"holidays": False}},
         'surveys.0.plan.window.holidays: got false: write the country code in quotes, "NO"'),
        ({"invite": "15.10.2019 09:00"},
         "surveys.0.plan.invite: cannot read '15.10.2019 09:00': expected \"YYYY-MM-DD HH:MM\" "
         "or an ISO week date \"YYYY-Www-D HH:MM\""),
        ({"close": date(2019, 12, 6)},
         "surveys.0.plan.close: 2019-12-06 has no time of day: expected"),
        ({"close": datetime(2019, 12, 6, 16, tzinfo=UTC)},
         "surveys.0.plan.close: write local time without a UTC offset"),
        ({"window": {"blocked": [{"from": date(2019, 10, 1), "to": date(2019, 10, 4),
                                  "counties": ["Viken"]}]}},
         "surveys.0.plan.window.blocked.0.counties: unknown county 'Viken'"),
        ({"window": {"blocked": [{"from": date(2019, 10, 4), "to": date(2019, 10, 1)}]}},
         "surveys.0.plan.window.blocked.0.to: 2019-10-01 is before from 2019-10-04"),
        ({"window": {"blocked": [{"form": date(2019, 10, 1), "to": date(2019, 10, 4)}]}},
         "surveys.0.plan.window.blocked.0.form: unknown key (did you mean 'from'?)"),
        ({"window": {"blocked": [{"from": date(2019, 10, 14), "to": date(2019, 12, 31)}]}},
         "surveys.0.plan.window: the window does not open between the invitation "
         "2019-10-15 09:00 and the close 2019-12-06 16:00"),
        ({"channel": "fax"}, "surveys.0.plan.channel: input should be"),
        ({"remiders": {}}, "surveys.0.plan.remiders: unknown key (did you mean 'reminders'?)"),
    ],
)
def test_plan_mistakes_name_the_key(tmp_path: Path, changes: dict[str, Any],
                                    message: str) -> None:
    """One line that names the file and the key, in the operator's own spelling."""
    survey = {"id": "x", "questionnaire": "x", "plan": _merge(BASE_PLAN, changes)}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"surveys": [survey]}, allow_unicode=True),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


def test_bare_yaml_no_is_caught(tmp_path: Path) -> None:
    """`holidays: NO` without quotes is YAML's false; the message says to quote it."""
    text = yaml.safe_dump({"surveys": [{"id": "x", "questionnaire": "x", "plan": BASE_PLAN}]})
    path = tmp_path / "plan.yaml"
    path.write_text(text.replace("holidays: 'NO'", "holidays: NO"), encoding="utf-8")
    with pytest.raises(ConfigError, match='write the country code in quotes, "NO"'):
        load_settings(path)


def test_shipped_plans_survive_a_dump_and_a_reload(tmp_path: Path) -> None:
    """`svarbot demo` writes the settings back out as YAML; they must load unchanged."""
    settings = load_settings(ROOT / "config.yaml")
    path = tmp_path / "dumped.yaml"
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), allow_unicode=True),
                    encoding="utf-8")
    assert load_settings(path) == settings
    blocked = settings.model_dump(mode="json")["surveys"][0]["plan"]["window"]["blocked"][0]
    assert next(iter(blocked)) == "from"


def test_minimal_plan_uses_the_documented_defaults() -> None:
    """Only `invite` and `close` are needed; the rest defaults to the shipped values."""
    plan = plan_from_settings(PlanSettings.model_validate(
        {"invite": "2019-10-15 09:00", "close": "2019-12-06 16:00"}))
    assert plan.reminder_days == (7, 14)
    assert (plan.max_reminders, plan.min_gap, plan.seal_after) == (2, timedelta(days=5), None)
    assert plan.window.weekdays == frozenset({1, 2, 3, 4, 5})
    assert (plan.window.start, plan.window.end) == (time(8), time(15))
    assert plan.window.holiday_country == "NO"
