"""The email conversation through the database: invitation → reply → next page, and the rest.

Each test queues real invitations, renders them exactly as the sender would, has a simulated
mail client reply to the rendered bytes, stores that reply in the inbox as the listener or the
IMAP reader does, and runs the dispatcher. Nothing is mocked: parsing, trimming,
classification, the engine and the anonymised store are the production code. Runs on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from smtp_servers import plain_text
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.channels.email.channel import EmailChannel
from bot.channels.email.clients import (
    INLINE_STYLE,
    compose_auto_reply,
    compose_bounce,
    compose_reply,
)
from bot.channels.email.compose import OutgoingMail, render
from bot.config import Settings, SurveySettings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from flows.session import from_json
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.inbox import store_inbound
from storage.outbox import mark_sent
from storage.schema import (
    ANSWER_SIDE,
    DeskQuery,
    InboxEvent,
    InboxMessage,
    InboxStatus,
    Invitation,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
)

pytest_plugins = ["storage_backends"]  # the database fixtures, on both backends

SURVEY = "virksomhetsleder-2020"
NOW = dt.datetime(2019, 10, 15, 9, 0, tzinfo=dt.UTC)


def _invited(engine: Engine, people: int) -> tuple[sessionmaker[Session], Dispatcher,
                                                   Settings]:
    """`people` invited unit leaders, their invitations queued (once, whatever runs again)."""
    settings = Settings(surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY,
                                                contact="Kari Nordmann, KS"),))
    factory = session_factory(engine)
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    with transaction(factory) as session:
        add_people(session, SURVEY, people)
    with transaction(factory) as session:
        assert queue_invitations(session, EmailChannel(settings), contexts[SURVEY], store,
                                 now=NOW) == people
    with transaction(factory) as session:  # a second wave queues nothing new
        assert queue_invitations(session, EmailChannel(settings), contexts[SURVEY], store,
                                 now=NOW) == 0
    dispatcher = Dispatcher(session_factory=factory, settings=settings, store=store,
                            surveys=contexts, clock=lambda: NOW + dt.timedelta(hours=1))
    return factory, dispatcher, settings


@pytest.fixture
def world(engine: Engine) -> tuple[sessionmaker[Session], Dispatcher, Settings]:
    """Three invited unit leaders, their invitations queued and "sent"."""
    factory, dispatcher, settings = _invited(engine, 3)
    with transaction(factory) as session:
        for row in session.scalars(select(OutboxMessage)):
            mark_sent(session, row.id, now=NOW)
    return factory, dispatcher, settings


def _sent(factory: sessionmaker[Session], settings: Settings, *, kind: str | None = None,
          invitation: int | None = None) -> list[bytes]:
    """The outbox rows as the bytes the sender would put on the wire (oldest first)."""
    with factory() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        if invitation is not None:
            query = query.where(OutboxMessage.invitation_id == invitation)
        rows = session.scalars(query).all()
        out = []
        for row in rows:
            payload = row.payload
            if payload is None:  # sent rows lose their body; re-render from a fresh one
                continue
            mail = OutgoingMail.from_payload(payload)
            out.append(render(mail, message_id=row.message_id or "", settings=settings.email,
                              now=NOW).as_bytes())
        return out


def _invitation_bytes(factory: sessionmaker[Session], settings: Settings,
                      invitation_id: int) -> bytes:
    """Re-render one invitation as sent (its payload is kept until sent; rebuild it)."""
    with factory() as session:
        row = session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id == invitation_id,
            OutboxMessage.kind == "invitation")).one()
        invitation = session.get_one(Invitation, invitation_id)
        mail = OutgoingMail(kind="invitation", lang="nb", token=invitation.token,
                            to_address=invitation.email_address or "", to_name="Leder",
                            survey_title="Innovasjonsbarometeret 2020",
                            prompts=("1. Hvilken sektor jobber du i?",))
        return render(mail, message_id=row.message_id or "", settings=settings.email,
                      now=NOW).as_bytes()


def _deliver(factory: sessionmaker[Session], raw: bytes, external: str) -> int:
    with transaction(factory) as session:
        message = email.message_from_bytes(raw, policy=default_policy)
        row = store_inbound(session, channel="email", external_id=external, raw=raw,
                            message_id=str(message.get("Message-ID") or "") or None, now=NOW)
        assert row is not None
        return row.id


def _invitation(factory: sessionmaker[Session], invitation_id: int) -> Invitation:
    with factory() as session:
        return session.get_one(Invitation, invitation_id)


def _inbox(factory: sessionmaker[Session], inbox_id: int) -> InboxMessage:
    with factory() as session:
        return session.get_one(InboxMessage, inbox_id)


def _reply_rows(factory: sessionmaker[Session], invitation_id: int) -> list[OutboxMessage]:
    with factory() as session:
        return list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id == invitation_id,
            OutboxMessage.kind != "invitation").order_by(OutboxMessage.id)))


def test_an_outlook_reply_is_answered_with_the_next_page_in_the_same_thread(world) -> None:
    factory, dispatcher, settings = world
    original = _invitation_bytes(factory, settings, 1)
    reply = compose_reply(original, "1: helse\n\nHilsen Leder", style="outlook_nb",
                          from_address="leder0@kommune0.example", from_name="Leder Nummer0",
                          now=NOW)
    inbox_id = _deliver(factory, reply, "test:1")
    assert dispatcher.handle_next() == "replied:answer"
    assert dispatcher.handle_next() is None

    row = _inbox(factory, inbox_id)
    assert row.status == InboxStatus.PROCESSED
    assert row.raw is None  # the processed body is not kept
    assert row.invitation_id == 1
    invitation = _invitation(factory, 1)
    assert invitation.status == InvitationStatus.STARTED
    assert not invitation.answered_from_other_address
    assert '"sektor": "helse"' in (invitation.session_state or "")
    replies = _reply_rows(factory, 1)
    assert [r.kind for r in replies] == ["page"]
    page = email.message_from_bytes(_sent(factory, settings, invitation=1)[-1],
                                    policy=default_policy)
    incoming = email.message_from_bytes(reply, policy=default_policy)
    assert page["In-Reply-To"] == incoming["Message-ID"]
    assert incoming["Message-ID"] in str(page["References"])
    assert str(page["Subject"]).startswith("Re: ")
    assert page["Auto-Submitted"] == "auto-replied"
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(text("answers"))) >= 1


@pytest.mark.parametrize("style", ["gmail_nb", "iphone_nb", "apple_mail_nb", "thunderbird_nb",
                                   "outlook_web_nb", "bottom_post"])
def test_every_client_style_reaches_the_engine(world, style: str) -> None:
    factory, dispatcher, settings = world
    reply = compose_reply(_invitation_bytes(factory, settings, 2), "1: barnehage", style=style,
                          from_address="leder1@kommune1.example", from_name="Leder Nummer1",
                          now=NOW)
    _deliver(factory, reply, f"test:{style}")
    assert dispatcher.handle_next() == "replied:answer"
    assert '"sektor": "oppvekst"' in (_invitation(factory, 2).session_state or "")
    assert _invitation(factory, 2).status == InvitationStatus.STARTED


def test_a_reply_from_a_central_mailbox_is_accepted_and_flagged(world) -> None:
    factory, dispatcher, settings = world
    reply = compose_reply(_invitation_bytes(factory, settings, 1), "1: helse",
                          style="outlook_nb", from_address="postmottak@kommune0.example",
                          from_name="Postmottak", now=NOW)
    _deliver(factory, reply, "test:central")
    assert dispatcher.handle_next() == "replied:answer"
    assert _invitation(factory, 1).answered_from_other_address


def test_a_hard_bounce_marks_the_invitation_and_is_never_answered(world) -> None:
    factory, dispatcher, settings = world
    bounce = compose_bounce(_invitation_bytes(factory, settings, 3),
                            reporting_mta="mx.kommune2.example", permanent=True, now=NOW)
    inbox_id = _deliver(factory, bounce, "test:bounce")
    assert dispatcher.handle_next() == "bounce:hard"
    assert _invitation(factory, 3).status == InvitationStatus.BOUNCED
    assert _reply_rows(factory, 3) == []
    assert _inbox(factory, inbox_id).status == InboxStatus.IGNORED
    with factory() as session:
        row = session.scalars(select(OutboxMessage).where(
            OutboxMessage.invitation_id == 3)).one()
        assert row.status == OutboxStatus.BOUNCED


def test_a_soft_bounce_is_recorded_but_changes_nothing(world) -> None:
    factory, dispatcher, settings = world
    bounce = compose_bounce(_invitation_bytes(factory, settings, 3),
                            reporting_mta="mx.kommune2.example", permanent=False, now=NOW)
    _deliver(factory, bounce, "test:soft")
    assert dispatcher.handle_next() == "bounce:soft"
    assert _invitation(factory, 3).status == InvitationStatus.INVITED


@pytest.mark.parametrize("style", ["exchange", "gmail"])
def test_an_out_of_office_reply_stores_the_return_date_and_gets_no_answer(world,
                                                                          style: str) -> None:
    factory, dispatcher, settings = world
    auto = compose_auto_reply(_invitation_bytes(factory, settings, 1),
                              from_address="leder0@kommune0.example",
                              return_date=dt.date(2019, 10, 28), lang="nb", style=style)
    _deliver(factory, auto, f"test:oof:{style}")
    assert dispatcher.handle_next() == "auto_reply"
    invitation = _invitation(factory, 1)
    assert invitation.away_until == dt.date(2019, 10, 28)
    assert invitation.session_state is not None
    assert '"answers": {}' in invitation.session_state
    assert _reply_rows(factory, 1) == []


def test_unsubscribing_by_the_list_unsubscribe_address_opts_out(world) -> None:
    factory, dispatcher, settings = world
    original = email.message_from_bytes(_invitation_bytes(factory, settings, 2),
                                        policy=default_policy)
    target = str(original["List-Unsubscribe"]).split("<mailto:", 1)[1].split("?", 1)[0]
    mail = EmailMessage()
    mail["From"] = "leder1@kommune1.example"
    mail["To"] = target
    mail["Subject"] = "unsubscribe"
    mail["Message-ID"] = "<unsub-1@kommune1.example>"
    mail.set_content("unsubscribe\n")
    _deliver(factory, mail.as_bytes(), "test:unsub")
    assert dispatcher.handle_next() is not None
    assert _invitation(factory, 2).status == InvitationStatus.OPTED_OUT
    assert [r.kind for r in _reply_rows(factory, 2)] == ["confirmation"]


def test_a_question_for_a_person_opens_a_desk_query(world) -> None:
    factory, dispatcher, settings = world
    reply = compose_reply(_invitation_bytes(factory, settings, 1),
                          "Hvem skal egentlig svare på dette?", style="iphone_nb",
                          from_address="leder0@kommune0.example", from_name="Leder", now=NOW)
    _deliver(factory, reply, "test:query")
    assert dispatcher.handle_next() is not None
    with factory() as session:
        queries = session.scalars(select(DeskQuery)).all()
        assert [q.invitation_id for q in queries] == [1]
        assert "Hvem skal" in queries[0].text


def test_mail_without_a_token_is_quarantined_with_its_bytes(world) -> None:
    factory, dispatcher, _settings = world
    mail = EmailMessage()
    mail["From"] = "someone@example.org"
    mail["To"] = "svar@svarbot.localhost"
    mail["Subject"] = "Spørsmål"
    mail["Message-ID"] = "<lost-1@example.org>"
    mail.set_content("Hei, jeg fikk en lenke fra en kollega. 1: 3\n")
    raw = mail.as_bytes()
    inbox_id = _deliver(factory, raw, "test:lost")
    assert dispatcher.handle_next() == "quarantined:no_token"
    row = _inbox(factory, inbox_id)
    assert row.status == InboxStatus.FAILED
    assert row.error == "no_token"
    assert row.raw == raw  # kept for an operator


def test_unreadable_bytes_are_quarantined_and_the_loop_goes_on(world) -> None:
    factory, dispatcher, settings = world
    _deliver(factory, b"\x00\xff" * 10 + b"\r\n\r\n" + bytes(range(256)), "test:junk")
    good = compose_reply(_invitation_bytes(factory, settings, 1), "1: helse",
                         style="gmail_nb", from_address="leder0@kommune0.example",
                         from_name="Leder", now=NOW)
    _deliver(factory, good, "test:good")
    outcomes = [dispatcher.handle_next(), dispatcher.handle_next(), dispatcher.handle_next()]
    assert outcomes[0] is not None
    assert outcomes[0].startswith("quarantined")
    assert outcomes[1] == "replied:answer"
    assert outcomes[2] is None


def test_a_reply_after_the_survey_closed_gets_a_polite_answer(world) -> None:
    factory, dispatcher, settings = world
    with transaction(factory) as session:
        session.execute(text("UPDATE surveys SET status = 'closed'"))
    reply = compose_reply(_invitation_bytes(factory, settings, 1), "1: helse",
                          style="outlook_nb", from_address="leder0@kommune0.example",
                          from_name="Leder", now=NOW)
    _deliver(factory, reply, "test:late")
    assert dispatcher.handle_next() == "replied:closed"
    assert [r.kind for r in _reply_rows(factory, 1)] == ["closed"]
    assert '"answers": {}' in (_invitation(factory, 1).session_state or "")


def test_the_answer_side_holds_no_token_address_or_name(world) -> None:
    factory, dispatcher, settings = world
    for n, style in enumerate(("outlook_nb", "gmail_nb", "iphone_nb")):
        reply = compose_reply(_invitation_bytes(factory, settings, n + 1), "1: helse",
                              style=style, from_address=f"leder{n}@kommune{n}.example",
                              from_name=f"Leder Nummer{n}", now=NOW)
        _deliver(factory, reply, f"test:anon:{n}")
    assert dispatcher.drain() == 3
    with factory() as session:
        secrets = [t for (t,) in session.execute(select(Invitation.token))]
        secrets += ["leder0@kommune0.example", "Nummer0", "3001"]
        for table in ANSWER_SIDE:
            rows = session.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
            dump = repr(rows).lower()
            assert rows or table == "answer_counts"
            for secret in secrets:
                assert secret.lower() not in dump, (table, secret)


def test_mail_inspect_explains_a_message(tmp_path: Path, world) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    factory, _dispatcher, settings = world
    path = tmp_path / "svar.eml"
    path.write_bytes(compose_reply(_invitation_bytes(factory, settings, 1), "1: helse\n2: 3",
                                   style="outlook_nb", from_address="leder0@kommune0.example",
                                   from_name="Leder", now=NOW))
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(compose_bounce(path.read_bytes(), reporting_mta="mx.example",
                                      permanent=True, now=NOW))
    config = tmp_path / "config.yaml"
    config.write_text("email:\n  reply_to: 'svar+{token}@svarbot.localhost'\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["mail", "inspect", "--json", "--text", "--config",
                                       str(config), str(path), str(bounce)])
    assert result.exit_code == 0, result.output
    import json
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["kind"] == "answer"
    assert first["text"] == "1: helse\n2: 3"
    assert first["token"] == _invitation(factory, 1).token
    assert second["kind"] == "bounce"
    assert second["bounce"]["permanent"] is True


def test_the_quarantine_can_be_listed_saved_and_released(tmp_path: Path, world) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    factory, dispatcher, _settings = world
    mail = EmailMessage()
    mail["From"] = "someone@example.org"
    mail["To"] = "svar@svarbot.localhost"
    mail["Subject"] = "Hei"
    mail["Message-ID"] = "<lost-2@example.org>"
    mail.set_content("1: helse\n")
    inbox_id = _deliver(factory, mail.as_bytes(), "test:q")
    assert dispatcher.handle_next() == "quarantined:no_token"
    url = str(factory.kw["bind"].url.render_as_string(hide_password=False))
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: '{url}'\n", encoding="utf-8")
    runner = CliRunner()
    listed = runner.invoke(main, ["mail", "quarantine", "--save", str(tmp_path / "q"),
                                  "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "no_token" in listed.output
    assert (tmp_path / "q" / f"{inbox_id}.eml").read_bytes() == mail.as_bytes()
    released = runner.invoke(main, ["mail", "quarantine", "--release", str(inbox_id),
                                    "--config", str(config)])
    assert released.exit_code == 0, released.output
    assert released.output.startswith("1 of 1")
    assert _inbox(factory, inbox_id).status == InboxStatus.RECEIVED


def test_invitations_queued_in_batches_take_the_next_ones(engine: Engine) -> None:
    settings = Settings(surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY),))
    factory = session_factory(engine)
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    context = SurveyContext(settings=settings.surveys[0], questionnaire=load_shipped(SURVEY))
    with transaction(factory) as session:
        add_people(session, SURVEY, 5)
    batches = []
    for _ in range(4):  # `svarbot invite --limit 2`, four times
        with transaction(factory) as session:
            batches.append(queue_invitations(session, EmailChannel(settings), context, store,
                                             now=NOW, limit=2))
    assert batches == [2, 2, 1, 0]
    with factory() as session:
        keys = sorted(session.scalars(select(OutboxMessage.idempotency_key)))
    assert keys == [f"invitation:{i}" for i in range(1, 6)]


def test_stopp_in_the_subject_alone_opts_the_person_out(world) -> None:
    """A reply whose only "Stopp" is its subject (the body is the quote) opts out: the
    channel's verdict reaches the engine as an opt-out, not as a word to find in the text."""
    factory, dispatcher, settings = world
    reply = compose_reply(_invitation_bytes(factory, settings, 1), "",
                          style="outlook_nb", from_address="leder0@kommune0.example",
                          from_name="Leder", now=NOW)
    message = email.message_from_bytes(reply, policy=default_policy)
    message.replace_header("Subject", "Stopp")
    _deliver(factory, message.as_bytes(), "test:subject-stop")
    assert dispatcher.handle_next() == "replied:opt_out"
    assert _invitation(factory, 1).status == InvitationStatus.OPTED_OUT
    [confirmation] = _reply_rows(factory, 1)
    assert confirmation.kind == "confirmation"


def test_a_row_of_a_channel_this_process_does_not_run_is_left_for_one_that_does(world) -> None:
    """An inbox row of another channel (a Telegram update) is never read as email: it stays
    received, and the email row after it is handled."""
    factory, dispatcher, settings = world
    with transaction(factory) as session:
        other = store_inbound(session, channel="telegram", external_id="update:1",
                              raw=b'{"update_id": 1, "message": {"text": "1"}}',
                              message_id=None, now=NOW)
        assert other is not None
        other_id = other.id
    good = compose_reply(_invitation_bytes(factory, settings, 1), "1: helse",
                         style="gmail_nb", from_address="leder0@kommune0.example",
                         from_name="Leder", now=NOW)
    _deliver(factory, good, "test:good")
    assert dispatcher.handle_next() == "replied:answer"
    assert dispatcher.handle_next() is None
    assert _inbox(factory, other_id).status == InboxStatus.RECEIVED


@pytest.fixture
def unsent(engine: Engine) -> tuple[sessionmaker[Session], Dispatcher, Settings, bytes]:
    """One invited unit leader and the real invitation as sent (the first page, three
    questions), its payload still in the outbox."""
    factory, dispatcher, settings = _invited(engine, 1)
    [invitation] = _sent(factory, settings, kind="invitation")
    return factory, dispatcher, settings, invitation


def _answers(factory: sessionmaker[Session], invitation_id: int) -> dict[str, object]:
    state = _invitation(factory, invitation_id).session_state
    assert state is not None
    return dict(from_json(state).answers)


def test_an_inline_reply_with_a_blank_question_records_each_answer_under_its_own(
        unsent) -> None:
    """Answers typed under the quoted questions 1 and 3, question 2 left blank: 40 is the
    number of employees (3), never the unit type (2); the blank stays unanswered."""
    factory, dispatcher, settings, invitation = unsent
    reply = compose_reply(invitation, "1: helse\n3: 40", style=INLINE_STYLE,
                          from_address="leder0@kommune0.example", from_name="Leder", now=NOW)
    inbox_id = _deliver(factory, reply, "test:inline")
    assert dispatcher.handle_next() == "replied:answer"
    assert _answers(factory, 1) == {"sektor": "helse", "ansatte": 40}
    row = _inbox(factory, inbox_id)
    assert row.classification == "answer"
    with factory() as session:
        details = session.scalars(select(InboxEvent.detail).where(
            InboxEvent.inbox_id == inbox_id, InboxEvent.status == "processed")).all()
    assert details == ["inline"]  # read right: not flagged for review
    [page] = _sent(factory, settings, kind="page")
    assert "2. Hva slags virksomhet leder du?" in plain_text(page)


def test_a_reply_with_only_the_quote_is_told_that_no_answer_was_found(unsent) -> None:
    """Reply pressed and sent with nothing typed: the same page comes back, saying so."""
    factory, dispatcher, settings, invitation = unsent
    reply = compose_reply(invitation, "", style="outlook_nb",
                          from_address="leder0@kommune0.example", from_name="Leder", now=NOW)
    _deliver(factory, reply, "test:empty")
    assert dispatcher.handle_next() == "replied:answer"
    assert _answers(factory, 1) == {}
    [page] = _sent(factory, settings, kind="page")
    text = plain_text(page)
    assert "Vi fant ikke noe svar i meldingen din" in text
    assert "1. Hvilken sektor hører virksomheten din til?" in text

