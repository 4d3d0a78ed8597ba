"""The campaign jobs against a real database: the wave, reminders, the close, seal, dry run.

The plan is the one a survey in week 42 of 2019 would have: invitation Monday 14 October
09:00 Oslo time, reminders 7 and 14 days later (at least 5 days apart), close Friday
8 November 16:00, send window Monday to Friday 08:00-15:00 without Norwegian public holidays.
Oslo is UTC+2 until 27 October and UTC+1 after. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.campaign import jobs as campaign
from bot.campaign.jobs import (
    Decision,
    calendar,
    close_due,
    due_invitations,
    due_reminders,
    explain,
    housekeeping,
)
from bot.channels.email.channel import EmailChannel
from bot.cli.plan import plan_command
from bot.config import PlanSettings, Settings, SurveySettings
from bot.conversation.outgoing import SurveyContext, queue_invitations
from bot.conversation.steps import apply_step
from flows.engine import advance
from flows.events import Reply
from flows.loader import load_shipped
from flows.session import from_json
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.history import respondent_history
from storage.migrate import init_database, open_database
from storage.outbox import enqueue, history, mark_sent
from storage.schema import (
    DeskQuery,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
    QueryStatus,
    Respondent,
    Survey,
    SurveyStatus,
)

pytest_plugins = ["storage_backends"]  # the database fixtures, on both backends

SURVEY = "virksomhetsleder-2020"
OSLO = ZoneInfo("Europe/Oslo")
QUESTIONNAIRE = load_shipped(SURVEY)


def oslo(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A 2019 Oslo wall-clock moment, in UTC (as the database and the jobs see it)."""
    return dt.datetime(2019, month, day, hour, minute, tzinfo=OSLO).astimezone(dt.UTC)


def plan_settings(invite: str = "2019-10-14 09:00") -> PlanSettings:
    """The week-42 plan; `invite` as config.yaml writes it (Oslo wall-clock time)."""
    return PlanSettings.model_validate({
        "invite": invite, "close": "2019-11-08 16:00", "seal_after_days": 30,
        "reminders": {"after_days": [7, 14], "max": 2, "min_gap_days": 5}})


@dataclass
class World:
    """A database with people invited to one planned survey, and what the jobs need."""

    factory: sessionmaker[Session]
    settings: Settings
    surveys: dict[str, SurveyContext]
    store: AnswerStore
    ids: list[int]

    def wave(self, now: dt.datetime) -> int:
        return due_invitations(self.factory, self.settings, self.surveys, self.store, now=now)

    def remind(self, now: dt.datetime) -> int:
        return due_reminders(self.factory, self.settings, self.surveys, self.store, now=now)

    def rows(self, kind: str | None = None) -> list[OutboxMessage]:
        with self.factory() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if kind is not None:
                query = query.where(OutboxMessage.kind == kind)
            return list(session.scalars(query))

    def send_all(self, now: dt.datetime) -> None:
        """The sender delivers everything queued (invitations become invited)."""
        with transaction(self.factory) as session:
            for row in session.scalars(select(OutboxMessage).where(
                    OutboxMessage.status == OutboxStatus.QUEUED)):
                mark_sent(session, row.id, now=now)

    def change(self, invitation_id: int, **values: object) -> None:
        with transaction(self.factory) as session:
            invitation = session.get_one(Invitation, invitation_id)
            for name, value in values.items():
                setattr(invitation, name, value)

    def explain(self, invitation_id: int, now: dt.datetime) -> list[Decision]:
        with self.factory() as session:
            return explain(session, self.settings, self.surveys, invitation_id, now=now)

    def calendar(self, now: dt.datetime) -> list[tuple[dt.date, str, str, int]]:
        with self.factory() as session:
            return calendar(session, self.settings, self.surveys, SURVEY, now=now)


def make_world(engine: Engine, people: int, plan: PlanSettings | None = None) -> World:
    settings = Settings(surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY,
                                                plan=plan or plan_settings()),))
    factory = session_factory(engine)
    with transaction(factory) as session:
        ids = [i.id for i in add_people(session, SURVEY, people)]
    return World(factory=factory, settings=settings,
                 surveys={SURVEY: SurveyContext(settings=settings.surveys[0],
                                                questionnaire=QUESTIONNAIRE)},
                 store=AnswerStore(LinkKey(TEST_KEY_TEXT.encode())), ids=ids)


@pytest.fixture
def world(engine: Engine) -> Callable[..., World]:
    """Worlds on SQLite and PostgreSQL: for the tests that exercise the jobs' SQL."""
    return lambda people=3, plan=None: make_world(engine, people, plan)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    opened = open_database(url)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def lite(sqlite_engine: Engine) -> Callable[..., World]:
    """Worlds on SQLite only: for the calendar rules, whose SQL the `world` tests cover on
    both backends (a PostgreSQL database per test costs seconds)."""
    return lambda people=3, plan=None: make_world(sqlite_engine, people, plan)


def invited_world(make: Callable[..., World], people: int = 3) -> World:
    """People whose invitations went out at 09:00 on Monday 14 October."""
    w = make(people)
    assert w.wave(oslo(10, 14, 9)) == people
    w.send_all(oslo(10, 14, 9))
    return w


# --- the wave -------------------------------------------------------------------------------


def test_the_wave_queues_each_pending_invitation_once(world: Callable[..., World]) -> None:
    """Before invite_at nothing goes; then each invitation once, under the manual key too."""
    w = world(3)
    assert w.wave(oslo(10, 14, 8, 59)) == 0
    assert w.wave(oslo(10, 14, 9)) == 3
    assert w.wave(oslo(10, 14, 9, 1)) == 0
    rows = w.rows()
    assert sorted(r.idempotency_key for r in rows) == sorted(f"invitation:{i}" for i in w.ids)
    assert {r.next_attempt_at.replace(tzinfo=dt.UTC) for r in rows} == {oslo(10, 14, 9)}
    with transaction(w.factory) as session:  # `svarbot invite` afterwards sends nothing more
        assert queue_invitations(session, EmailChannel(w.settings), w.surveys[SURVEY], w.store,
                                 now=oslo(10, 14, 10)) == 0
    with w.factory() as session:
        states = session.scalars(select(Invitation.session_state)).all()
    assert all(s is not None for s in states)


def test_a_wave_that_ran_by_hand_first_adds_nothing(lite: Callable[..., World]) -> None:
    """`svarbot invite` and the wave share the key: whichever comes second queues nothing."""
    w = lite(2)
    with transaction(w.factory) as session:
        assert queue_invitations(session, EmailChannel(w.settings), w.surveys[SURVEY], w.store,
                                 now=oslo(10, 14, 8), limit=1) == 1
    assert w.wave(oslo(10, 14, 9)) == 1
    assert len(w.rows("invitation")) == 2


def test_the_wave_is_committed_in_chunks(lite: Callable[..., World],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """More invitations than one chunk all go, each once."""
    monkeypatch.setattr(campaign, "CHUNK", 2)
    w = lite(5)
    assert w.wave(oslo(10, 14, 9)) == 5
    assert w.wave(oslo(10, 14, 9)) == 0
    assert len(w.rows("invitation")) == 5


@pytest.mark.parametrize(("invite", "now", "opening"), [
    # Saturday morning: waits for Monday 08:00.
    ("2019-10-12 10:00", oslo(10, 12, 10), oslo(10, 14, 8)),
    # Monday 07:00: waits for 08:00 the same day.
    ("2019-10-14 07:00", oslo(10, 14, 7), oslo(10, 14, 8)),
    # Monday 15:30, after hours: Tuesday 08:00.
    ("2019-10-14 15:30", oslo(10, 14, 15, 30), oslo(10, 15, 8)),
])
def test_a_wave_outside_the_window_waits_for_the_next_opening(
        lite: Callable[..., World], invite: str, now: dt.datetime,
        opening: dt.datetime) -> None:
    """not_before is the next opening; the message is given up 48 hours after it at the latest."""
    w = lite(2, plan_settings(invite))
    assert w.wave(now) == 2
    for row in w.rows():
        assert row.next_attempt_at.replace(tzinfo=dt.UTC) == opening
        assert row.deadline_at is not None
        assert row.deadline_at.replace(tzinfo=dt.UTC) == opening + dt.timedelta(hours=48)


def test_invitations_still_queued_at_closing_time_wait_for_the_next_opening(
        world: Callable[..., World]) -> None:
    """A wave that has not drained by 15:00 (or a retry due at night) is put off again;
    a page answering a respondent's own reply is not."""
    w = world(2)
    assert w.wave(oslo(10, 14, 9)) == 2
    with transaction(w.factory) as session:
        enqueue(session, idempotency_key="reply:test", channel="email", kind="page",
                recipient="leder0@kommune0.example", payload={}, invitation_id=w.ids[0],
                now=oslo(10, 14, 15, 30))
    assert w.wave(oslo(10, 14, 15, 30)) == 0
    tuesday = oslo(10, 15, 8)
    assert [r.next_attempt_at.replace(tzinfo=dt.UTC) for r in w.rows("invitation")] == \
        [tuesday, tuesday]
    (page,) = w.rows("page")
    assert page.next_attempt_at.replace(tzinfo=dt.UTC) == oslo(10, 14, 15, 30)
    # Inside the window nothing is moved.
    assert w.wave(tuesday) == 0
    assert [r.next_attempt_at.replace(tzinfo=dt.UTC) for r in w.rows("invitation")] == \
        [tuesday, tuesday]


def test_no_wave_for_a_closed_survey_or_after_the_close(lite: Callable[..., World]) -> None:
    w = lite(2)
    assert w.wave(oslo(11, 8, 16)) == 0
    with transaction(w.factory) as session:
        session.get_one(Survey, SURVEY).status = SurveyStatus.CLOSED
    assert w.wave(oslo(10, 15, 9)) == 0
    assert w.rows() == []


# --- reminders ------------------------------------------------------------------------------


def test_reminder_one_is_due_seven_days_after_the_invitation(
        world: Callable[..., World]) -> None:
    """Due at the same local time a week later; once only, with its own key."""
    w = invited_world(world, 2)
    assert w.remind(oslo(10, 21, 8, 59)) == 0
    assert w.remind(oslo(10, 21, 9)) == 2
    assert w.remind(oslo(10, 21, 9, 30)) == 0
    rows = w.rows("reminder")
    assert sorted(r.idempotency_key for r in rows) == sorted(f"reminder:{i}:1" for i in w.ids)
    with w.factory() as session:
        assert set(session.scalars(select(Invitation.reminders_sent))) == {1}


def test_reminders_go_only_to_those_invited_and_not_done(world: Callable[..., World]) -> None:
    """Finished, bounced, opted-out, closed and pending invitations get no reminder."""
    w = invited_world(world, 6)
    ended = [InvitationStatus.FINISHED, InvitationStatus.BOUNCED, InvitationStatus.OPTED_OUT,
             InvitationStatus.CLOSED, InvitationStatus.PENDING]
    for invitation_id, status in zip(w.ids, ended, strict=False):
        w.change(invitation_id, status=status)
    assert w.remind(oslo(10, 21, 9)) == 1
    assert [r.invitation_id for r in w.rows("reminder")] == [w.ids[5]]


def test_a_pending_invitation_whose_message_waits_gets_no_reminder(
        lite: Callable[..., World]) -> None:
    """Queued but never sent (the sender was down): still pending, so no reminder."""
    w = lite(1)
    assert w.wave(oslo(10, 14, 9)) == 1
    assert w.remind(oslo(10, 22, 9)) == 0


def test_no_reminder_while_a_desk_query_is_open(lite: Callable[..., World]) -> None:
    """The question to the contact person comes first; once answered, the reminder goes."""
    w = invited_world(lite, 1)
    with transaction(w.factory) as session:
        session.add(DeskQuery(invitation_id=w.ids[0], text="Gjelder dette oss?",
                              status=QueryStatus.OPEN, created_at=oslo(10, 16, 10)))
    assert w.remind(oslo(10, 21, 9)) == 0
    assert w.explain(w.ids[0], oslo(10, 21, 9))[1].reason == (
        "ikke sendt: venter på svar fra kontaktpersonen")
    with transaction(w.factory) as session:
        for query in session.scalars(select(DeskQuery)):
            query.status = QueryStatus.ANSWERED
    assert w.remind(oslo(10, 21, 10)) == 1


def test_away_until_postpones_the_reminder_to_the_next_working_day(
        lite: Callable[..., World]) -> None:
    """Away until Tuesday 22.10: the reminder goes Wednesday at 08:00, not before."""
    w = invited_world(lite, 1)
    w.change(w.ids[0], away_until=dt.date(2019, 10, 22))
    assert w.remind(oslo(10, 21, 9)) == 0
    assert w.remind(oslo(10, 22, 14)) == 0
    decisions = w.explain(w.ids[0], oslo(10, 22, 14))
    assert decisions[1] == Decision(
        oslo(10, 23, 8), "reminder 1",
        "utsatt: fraværende til 22.10 (stengt: utenfor 08:00–15:00)")
    assert w.remind(oslo(10, 23, 8)) == 1
    [row] = w.rows("reminder")
    assert row.next_attempt_at.replace(tzinfo=dt.UTC) == oslo(10, 23, 8)


def test_reminders_respect_the_gap_and_the_maximum(lite: Callable[..., World]) -> None:
    """Reminder 1 late (away): reminder 2 waits the 5-day gap; there is no reminder 3."""
    w = invited_world(lite, 1)
    w.change(w.ids[0], away_until=dt.date(2019, 10, 25))
    assert w.remind(oslo(10, 28, 8)) == 1  # Monday after the absence
    w.send_all(oslo(10, 28, 8))
    # Day 14 would be Monday 28.10 09:00; five days after reminder 1 is Saturday 2.11,
    # so Monday 4.11 at 08:00.
    assert w.remind(oslo(11, 1, 14)) == 0
    assert w.explain(w.ids[0], oslo(11, 1, 14))[2].when == oslo(11, 4, 8)
    assert w.remind(oslo(11, 4, 8)) == 1
    w.send_all(oslo(11, 4, 8))
    assert w.remind(oslo(11, 7, 14)) == 0
    with w.factory() as session:
        assert session.get_one(Invitation, w.ids[0]).reminders_sent == 2


def test_a_reminder_carries_the_progress_and_the_next_page(world: Callable[..., World]) -> None:
    """Someone who answered two questions is told so, and gets the next question."""
    w = invited_world(world, 1)
    with transaction(w.factory) as session:
        invitation = session.get_one(Invitation, w.ids[0])
        respondent = session.get_one(Respondent, invitation.respondent_id)
        assert invitation.session_state is not None
        step = advance(QUESTIONNAIRE, from_json(invitation.session_state), Reply("1: 1\n2: 1"),
                       now=oslo(10, 15, 10))
        apply_step(session, w.store, invitation, respondent, step, now=oslo(10, 15, 10),
                   questionnaire=QUESTIONNAIRE)
    assert w.remind(oslo(10, 21, 9)) == 1
    [row] = w.rows("reminder")
    assert row.payload is not None
    done, total = row.payload["progress"]  # type: ignore[misc]
    assert done == 2
    assert total > done
    text = "\n".join(row.payload["prompts"])  # type: ignore[arg-type]
    assert f"Du har svart på 2 av {total} spørsmål" in text
    assert "3. Omtrent hvor mange ansatte" in text
    with w.factory() as session:
        assert session.get_one(Invitation, w.ids[0]).status == InvitationStatus.STARTED


# --- close and seal -------------------------------------------------------------------------


def test_close_due_closes_the_survey_and_gives_up_queued_mail(
        world: Callable[..., World]) -> None:
    """Queued invitations and reminders die ("survey closed"); sent ones and finished stay."""
    w = invited_world(world, 3)
    assert w.remind(oslo(10, 21, 9)) == 3
    w.change(w.ids[0], status=InvitationStatus.FINISHED)
    assert close_due(w.factory, w.settings, now=oslo(11, 8, 15, 59)) == 0
    assert close_due(w.factory, w.settings, now=oslo(11, 8, 16)) == 1
    assert close_due(w.factory, w.settings, now=oslo(11, 8, 17)) == 0
    with w.factory() as session:
        assert session.get_one(Survey, SURVEY).status == SurveyStatus.CLOSED
        statuses = {i: s for i, s in session.execute(select(Invitation.id, Invitation.status))}
        assert statuses == {w.ids[0]: InvitationStatus.FINISHED,
                            w.ids[1]: InvitationStatus.CLOSED,
                            w.ids[2]: InvitationStatus.CLOSED}
        reminders = list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "reminder")))
        assert {r.status for r in reminders} == {OutboxStatus.DEAD}
        assert history(session, reminders[0].id)[-1].detail == "survey closed"
        invitations = session.scalars(select(OutboxMessage.status).where(
            OutboxMessage.kind == "invitation")).all()
        assert set(invitations) == {OutboxStatus.SENT}
        # The bulk close is in the history, so `svarbot log` can say why mail stopped.
        events = session.execute(select(InvitationEvent.invitation_id, InvitationEvent.previous,
                                        InvitationEvent.reason)
                                 .where(InvitationEvent.status == InvitationStatus.CLOSED)
                                 .order_by(InvitationEvent.invitation_id)).all()
        assert [tuple(e) for e in events] == [(w.ids[1], InvitationStatus.INVITED,
                                               "survey closed"),
                                              (w.ids[2], InvitationStatus.INVITED,
                                               "survey closed")]
        respondent = session.get_one(Invitation, w.ids[1]).respondent_id
        closed = [e for e in respondent_history(session, respondent) if e.status == "closed"]
        assert [e.detail for e in closed] == ["invitert → lukket (undersøkelsen er stengt)"]
    assert w.remind(oslo(11, 8, 17)) == 0


def test_housekeeping_seals_the_survey_after_the_plan_s_days(
        lite: Callable[..., World]) -> None:
    w = invited_world(lite, 1)
    assert close_due(w.factory, w.settings, now=oslo(11, 8, 16)) == 1
    housekeeping(w.factory, w.settings, now=oslo(12, 8, 15))
    with w.factory() as session:
        assert session.get_one(Survey, SURVEY).status == SurveyStatus.CLOSED
    housekeeping(w.factory, w.settings, now=oslo(12, 8, 16))
    with w.factory() as session:
        survey = session.get_one(Survey, SURVEY)
        assert survey.status == SurveyStatus.SEALED
        assert session.scalars(select(Invitation.session_state)).all() == [None]


# --- the dry run ----------------------------------------------------------------------------


def test_explain_gives_the_reasons(world: Callable[..., World]) -> None:
    """Sent, due with the rule that set the time, and why nothing more is sent."""
    w = invited_world(world, 3)
    assert w.remind(oslo(10, 21, 9)) == 3
    w.send_all(oslo(10, 21, 9, 5))
    w.change(w.ids[1], status=InvitationStatus.FINISHED)
    w.change(w.ids[2], status=InvitationStatus.OPTED_OUT)
    now = oslo(10, 22, 12)
    assert w.explain(w.ids[0], now) == [
        Decision(oslo(10, 14, 9), "invitation", "sendt"),
        Decision(oslo(10, 21, 9, 5), "reminder 1", "sendt"),
        Decision(oslo(10, 28, 9), "reminder 2", "14 dager etter invitasjonen"),
    ]
    assert w.explain(w.ids[1], now)[2] == Decision(None, "reminder 2", "ikke sendt: ferdig")
    assert w.explain(w.ids[2], now)[2] == Decision(None, "reminder 2", "ikke sendt: meldt av")


def test_explain_before_the_wave_and_after_the_close(lite: Callable[..., World]) -> None:
    w = lite(1, plan_settings("2019-10-12 10:00"))
    before = w.explain(w.ids[0], oslo(10, 1, 12))
    assert before[0] == Decision(oslo(10, 14, 8), "invitation",
                                 "med invitasjonsbølgen (stengt: lørdag)")
    assert before[1].when == oslo(10, 21, 8)  # Saturday + 7 is Saturday: Monday 08:00
    late = w.explain(w.ids[0], oslo(11, 9, 12))
    assert late[0] == Decision(None, "invitation", "ikke sendt: undersøkelsen er stengt")


def test_calendar_counts_per_day(world: Callable[..., World]) -> None:
    """Before the wave everything is projected; after it, what is queued counts too."""
    w = world(3)
    day = dt.date
    assert w.calendar(oslo(10, 1, 12)) == [
        (day(2019, 10, 14), "email", "invitation", 3),
        (day(2019, 10, 21), "email", "reminder", 3),
        (day(2019, 10, 28), "email", "reminder", 3),
    ]
    assert w.wave(oslo(10, 14, 9)) == 3
    w.send_all(oslo(10, 14, 9))
    w.change(w.ids[0], status=InvitationStatus.FINISHED)
    w.change(w.ids[1], away_until=dt.date(2019, 10, 25))
    assert w.calendar(oslo(10, 14, 12)) == [
        (day(2019, 10, 21), "email", "reminder", 1),
        (day(2019, 10, 28), "email", "reminder", 2),
        (day(2019, 11, 4), "email", "reminder", 1),
    ]


# --- svarbot plan ---------------------------------------------------------------------------


def _config(tmp_path: Path, url: str, plan: bool = True) -> str:
    """A config whose plan lies ahead (the command asks the real clock): week 42, two years on."""
    path = tmp_path / "config.yaml"
    year = dt.datetime.now(dt.UTC).year + 2
    plan_yaml = (f"    plan:\n      invite: {year}-W42-1 09:00\n      close: {year}-12-01 16:00\n"
                 if plan else "")
    path.write_text(f"database:\n  url: {url}\nsurveys:\n  - id: {SURVEY}\n"
                    f"    questionnaire: {SURVEY}\n{plan_yaml}", encoding="utf-8")
    return str(path)


def test_plan_command(tmp_path: Path, sqlite_engine: Engine) -> None:
    """The calendar as a table and as JSON, one person's reasons, and one-line errors."""
    w = make_world(sqlite_engine, 2)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    config = _config(tmp_path, url)
    (tmp_path / "noplan").mkdir()
    runner = CliRunner()
    table = runner.invoke(plan_command, [SURVEY, "--config", config])
    assert table.exit_code == 0, table.output
    assert "invitasjon" in table.stdout
    assert "påminnelse" in table.stdout
    as_json = runner.invoke(plan_command, [SURVEY, "--json", "--config", config])
    assert as_json.exit_code == 0
    data = json.loads(as_json.stdout)
    assert data["survey"] == SURVEY
    assert data["status"] == "open"
    one = runner.invoke(plan_command, [SURVEY, "--json", "--respondent", str(w.ids[0]),
                                       "--config", config])
    assert one.exit_code == 0, one.output
    assert [d["what"] for d in json.loads(one.stdout)["decisions"]] == [
        "invitation", "reminder 1", "reminder 2"]
    for args, message in [
            (["nope"], "unknown survey 'nope'"),
            ([SURVEY, "--respondent", "999999"], "no invitation 999999"),
            ([SURVEY, "--config", _config(tmp_path / "noplan", url, plan=False)], "has no plan")]:
        if "--config" not in args:
            args = [*args, "--config", config]
        result = runner.invoke(plan_command, args)
        assert result.exit_code == 2
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
