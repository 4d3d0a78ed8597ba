"""`svarbot log`: the delivery history, from invitations sent to replies, never an answer.

The history is made the way production makes it: the real sender delivers to an aiosmtpd sink
that answers "try later" to one address and "user unknown" to another, simulated mail clients
reply to the bytes the sink received, and the dispatcher handles the replies. Migration 0003
is checked on a revision-0002 database, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_servers import SmtpSink, try_later, unknown_user
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people, add_people_by_sql
from test_log_words import foreign_or_raw

from bot.channels.email.channel import EmailChannel
from bot.channels.email.clients import compose_reply
from bot.channels.email.smtp import Sender
from bot.cli import main
from bot.cli.log import log_command
from bot.config import EmailSettings, Settings, SmtpSettings, SurveySettings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import make_engine, session_factory, transaction
from storage.history import LANGUAGES, recent_history, respondent_history
from storage.identity import set_status
from storage.inbox import message_id_of, store_inbound
from storage.migrate import (
    current_revision,
    head_revision,
    init_database,
    open_database,
    upgrade,
)
from storage.outbox import enqueue
from storage.schema import (
    Answer,
    DeskQuery,
    InboxMessage,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
)

pytest_plugins = ["storage_backends"]

SURVEY = "virksomhetsleder-2020"
NOW = dt.datetime(2019, 10, 15, 7, 0, tzinfo=dt.UTC)
#: The number respondent 3 answers to question 3: stored as an answer, never shown.
ANSWERED_NUMBER = "9173"
#: A word in respondent 3's question to the contact person (kept in desk_queries).
QUESTION_WORD = "Sebrastripete"
#: A word in a mail that is quarantined (its raw bytes are kept).
QUARANTINED_WORD = "Hemmeligord"


def _settings(sink: SmtpSink, url: str) -> Settings:
    return Settings.model_validate({
        "database": {"url": url},
        "surveys": [SurveySettings(id=SURVEY, questionnaire=SURVEY).model_dump()],
        "email": EmailSettings(smtp=SmtpSettings(port=sink.port, per_minute=10_000,
                                                 connections=2)).model_dump()})


def _address(i: int) -> str:
    return f"leder{i}@kommune{i}.example"


def _reply(sink: SmtpSink, i: int, answer: str) -> bytes:
    """Respondent i's reply to the first message the sink got for them."""
    first = next(r for r in sink.messages if r.rcpt_tos == (_address(i),))
    return compose_reply(first.data, answer, style="outlook_nb", from_address=_address(i),
                         from_name=f"Leder Nummer{i}", now=dt.datetime.now(dt.UTC))


def _retry_now(factory: sessionmaker[Session]) -> None:
    """Make the messages waiting for a retry due now rather than in a minute."""
    with transaction(factory) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.status == "retry")
                        .values(next_attempt_at=dt.datetime.now(dt.UTC)))


def _store(factory: sessionmaker[Session], external_id: str, raw: bytes) -> None:
    with transaction(factory) as session:
        stored = store_inbound(session, channel="email", external_id=external_id, raw=raw,
                               message_id=message_id_of(raw), now=dt.datetime.now(dt.UTC))
        assert stored is not None


@pytest.fixture
def world(sink: SmtpSink, tmp_path: Path) -> tuple[sessionmaker[Session], Path]:
    """Four respondents' histories, made by the real sender and dispatcher; (factory, config).

    0: "451 4.3.0 try later" once, then sent; later a reminder is queued.
    1: "550 5.1.1 user unknown": bounced.
    2: replies "stopp": opted out.
    3: answers question 3 with ANSWERED_NUMBER and asks a question with QUESTION_WORD.
    A stranger's mail with QUARANTINED_WORD is quarantined.
    """
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    settings = _settings(sink, url)
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    with transaction(factory) as session:
        add_people(session, SURVEY, 4)
        assert queue_invitations(session, EmailChannel(settings), contexts[SURVEY], store,
                                 now=dt.datetime.now(dt.UTC)) == 4
    sink.fail(_address(0), try_later(1))
    sink.fail(_address(1), unknown_user())
    sender = Sender(session_factory=factory, settings=settings, worker="test")

    async def send_twice() -> None:
        try:
            await sender.send_batch()
            await asyncio.to_thread(_retry_now, factory)
            await sender.send_batch()
        finally:
            await sender.close()

    asyncio.run(send_twice())
    sink.wait_for(3, timeout=10)
    _store(factory, "r2", _reply(sink, 2, "stopp"))
    _store(factory, "r3", _reply(sink, 3, f"1: helse\n3: {ANSWERED_NUMBER}"))
    _store(factory, "q3", _reply(sink, 3, f"Hvem får se svarene? Er de {QUESTION_WORD}?"))
    _store(factory, "x", (f"From: someone@else.example\r\nTo: svar@svarbot.localhost\r\n"
                          f"Subject: hei\r\nMessage-ID: <x1@else.example>\r\n\r\n"
                          f"{QUARANTINED_WORD} 1: helse\r\n").encode())
    dispatcher = Dispatcher(session_factory=factory, settings=settings, store=store,
                            surveys=contexts)
    assert dispatcher.drain() == 4
    with transaction(factory) as session:
        invitation = session.scalars(select(Invitation).where(Invitation.respondent_id == 2)
                                     ).one()
        enqueue(session, idempotency_key="reminder:test", channel="email", kind="reminder",
                recipient=_address(0), payload={}, invitation_id=1,
                now=dt.datetime.now(dt.UTC))
        assert invitation.status == InvitationStatus.BOUNCED
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: '{url}'\n", encoding="utf-8")
    return factory, config


def _lines(factory: sessionmaker[Session], respondent: int) -> list[tuple[str, str, str]]:
    with factory() as session:
        return [(e.what, e.status, e.detail) for e in respondent_history(session, respondent)]


def test_the_history_explains_each_message(world: tuple[sessionmaker[Session], Path]) -> None:
    factory, _config = world
    first = _lines(factory, 1)
    assert first[0] == ("invitasjon (e-post)", "queued", "")
    retry = next(line for line in first if line[1] == "retry")
    assert retry[0] == "invitasjon (e-post)"
    assert retry[2].startswith(
        "serveren svarte på mottakeradressen: «451 4.3.0 try later» → nytt forsøk ")
    assert retry[2].endswith("(forsøk 1)")
    assert ("status", "invited", "venter → invitert (invitasjonen er sendt)") in first
    assert [line[:2] for line in first[-2:]] == [("invitasjon (e-post)", "sent"),
                                                 ("påminnelse 1 (e-post)", "queued")]
    bounced = _lines(factory, 2)
    assert ("invitasjon (e-post)", "bounced",
            "serveren svarte på mottakeradressen: «550 5.1.1 User unknown»") in bounced
    assert ("status", "bounced", "venter → avvist (adressen ble avvist)") in bounced
    stopped = _lines(factory, 3)
    assert ("innkommende e-post: avmelding", "processed",
            "lest over sitatets Fra:/Sendt:/Til:-linjer") in stopped
    assert any(s == "opted_out" and d.endswith("→ avmeldt (ba om å stoppe)")
               for w, s, d in stopped)
    assert ("bekreftelse 1 (e-post)", "queued", "") in stopped
    answered = _lines(factory, 4)
    whats = [w for w, s, _ in answered if s == "processed"]
    assert whats == ["innkommende e-post: svar",
                     "innkommende e-post: spørsmål til kontaktpersonen"]
    assert any(s == "started" for _w, s, _d in answered)
    with factory() as session:  # the history is in time order
        times = [e.at for e in respondent_history(session, 4)]
    assert times == sorted(times)


def test_no_answer_or_message_text_is_ever_shown(
        world: tuple[sessionmaker[Session], Path]) -> None:
    factory, config = world
    with factory() as session:  # the secrets are in the database ...
        assert ANSWERED_NUMBER in json.dumps([a.value for a in session.scalars(select(Answer))])
        assert any(QUESTION_WORD in q.text for q in session.scalars(select(DeskQuery)))
        assert any(QUARANTINED_WORD.encode() in (m.raw or b"")
                   for m in session.scalars(select(InboxMessage)))
    runner = CliRunner()
    outputs = []
    for args in (["--respondent", "4"], ["--respondent", "4", "--json"], ["--tail", "500"],
                 ["--tail", "500", "--json"]):
        result = runner.invoke(log_command, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert "innkommende e-post: svar" in outputs[0]
    assert "spørsmål" in outputs[1]
    assert "karantene" in outputs[2]
    for output in outputs:  # ... but never in the log (a JSON time's digits aside)
        if output.startswith("{"):
            output = json.dumps([{k: v for k, v in json.loads(line).items() if k != "at"}
                                 for line in output.splitlines()], ensure_ascii=False)
        for private in (ANSWERED_NUMBER, QUESTION_WORD, QUARANTINED_WORD, "leder3@",
                       "Nummer3", "@kommune"):
            assert private not in output


def test_the_command_prints_a_table_json_and_the_tail(
        world: tuple[sessionmaker[Session], Path]) -> None:
    _factory, config = world
    runner = CliRunner()
    table = runner.invoke(log_command, ["--respondent", "1", "--config", str(config)])
    assert table.exit_code == 0, table.output
    for word in ("tid", "undersøkelse", "hva", "status", "detalj", "invitasjon", "sendt",
                 "nytt forsøk", "påminnelse 1 (e-post)", SURVEY):
        assert word in table.output
    lines = runner.invoke(log_command, ["--respondent", "2", "--survey", SURVEY, "--json",
                                        "--config", str(config)]).output.splitlines()
    entries = [json.loads(line) for line in lines]
    assert {e["survey"] for e in entries} == {SURVEY}
    assert entries[-1]["status"] == "bounced"
    assert runner.invoke(log_command, ["--respondent", "2", "--survey", "other",
                                       "--config", str(config)]).output.endswith(
        "ingen hendelser\n")
    tail = [json.loads(line) for line in runner.invoke(
        log_command, ["--tail", "3", "--json", "--config", str(config)]).output.splitlines()]
    assert len(tail) == 3
    assert tail[-1]["what"] == "påminnelse 1 (e-post)"
    for wrong in ([], ["--respondent", "1", "--tail", "2"], ["--tail", "2", "--survey", "s"]):
        result = runner.invoke(log_command, [*wrong, "--config", str(config)])
        assert result.exit_code == 2
        assert result.output.startswith("svarbot: ")


def test_recent_history_reads_only_the_newest_rows(
        world: tuple[sessionmaker[Session], Path]) -> None:
    factory, _config = world
    with factory() as session:
        everything = recent_history(session, 10_000)
        assert recent_history(session, 5) == everything[-5:]
        assert recent_history(session, 0) == []


# --- one language, no raw code ---------------------------------------------------------------


def _outputs(config: Path, lang: str) -> list[str]:
    runner = CliRunner()
    outputs = []
    for args in (["--respondent", "1"], ["--respondent", "2"], ["--respondent", "3"],
                 ["--respondent", "4"], ["--tail", "500"], ["--respondent", "9"],
                 ["--respondent", "2", "--survey", "other"]):
        result = runner.invoke(log_command, [*args, "--lang", lang, "--config", str(config)])
        outputs.append(result.output)
    tail = runner.invoke(log_command, ["--tail", "500", "--json", "--lang", lang,
                                       "--config", str(config)])
    for line in tail.output.splitlines():
        entry = json.loads(line)
        outputs.append(f"{entry['what']}\n{entry['detail']}")
    return outputs


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_log_is_in_one_language_with_no_raw_code(
        world: tuple[sessionmaker[Session], Path], lang: str) -> None:
    _factory, config = world
    outputs = _outputs(config, lang)
    for output in outputs:
        assert foreign_or_raw(output, lang) == [], output
    everything = "\n".join(outputs)
    if lang == "nb":
        for said in ("invitasjonen er sendt", "innkommende e-post: svar", "karantene",
                     "lest over sitatets", "nytt forsøk", "ingen respondent har id 9",
                     "ingen hendelser"):
            assert said in everything
    else:
        for said in ("the invitation was sent", "incoming email: answer", "quarantined",
                     "read above the quoted", "next attempt", "no respondent has id 9",
                     "no events", "Last 27 events"):
            assert said in everything


def test_usage_errors_follow_the_language(world: tuple[sessionmaker[Session], Path]) -> None:
    _factory, config = world
    runner = CliRunner()
    for lang, said in (("nb", "si hvem"), ("en", "say whose history")):
        result = runner.invoke(log_command, ["--lang", lang, "--config", str(config)])
        assert result.exit_code == 2
        assert result.output.startswith(f"svarbot: {said}")
    assert runner.invoke(log_command, ["--tail", "1", "--lang", "de",
                                       "--config", str(config)]).exit_code == 2


# --- set_status and migration 0003 ------------------------------------------------------------


def test_set_status_records_each_change_once(migrated_url: str) -> None:
    engine = open_database(migrated_url)
    factory = session_factory(engine)
    at = dt.datetime(2020, 3, 2, 9, 30, tzinfo=dt.UTC)
    with transaction(factory) as session:
        invitation = add_people(session, SURVEY, 1)[0]
        set_status(session, invitation, InvitationStatus.STARTED, "reply", now=at)
        set_status(session, invitation, InvitationStatus.STARTED, "reply again", now=at)
        set_status(session, invitation, InvitationStatus.OPTED_OUT,
                   f"stopp from leder0@kommune0.example {invitation.token}")
    with factory() as session:
        events = session.scalars(select(InvitationEvent).order_by(InvitationEvent.id)).all()
        assert [(e.previous, e.status) for e in events] == [("pending", "started"),
                                                            ("started", "opted_out")]
        assert events[0].at.replace(tzinfo=dt.UTC) == at
        assert events[1].reason == "stopp from [address] [token]"
        assert events[1].at.replace(tzinfo=dt.UTC) > at
    engine.dispose()


def test_db_upgrade_brings_a_0002_database_up_with_its_statuses(db_url: str,
                                                                 tmp_path: Path) -> None:
    assert init_database(db_url, revision="0002") == "0002"
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        add_people_by_sql(session, SURVEY, 3)
        session.execute(text("UPDATE invitations SET status = 'bounced' WHERE id = 2"))
        session.execute(text("UPDATE invitations SET status = 'finished' WHERE id = 3"))
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: '{db_url}'\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert current_revision(db_url) == head_revision()
    assert upgrade(db_url) == (head_revision(), head_revision())
    engine = open_database(db_url)
    with session_factory(engine)() as session:
        rows = session.execute(select(InvitationEvent.invitation_id, InvitationEvent.status,
                                      InvitationEvent.previous, InvitationEvent.reason)
                               .order_by(InvitationEvent.invitation_id)).all()
        assert [tuple(r) for r in rows] == [(2, "bounced", None, "status before 0003"),
                                            (3, "finished", None, "status before 0003")]
        entries = respondent_history(session, 2)
        assert [(e.what, e.status, e.detail) for e in entries] == [
            ("status", "bounced", "avvist (status fra før hendelsesloggen)")]
    engine.dispose()


def test_db_upgrade_to_0004_moves_retry_numbers_out_of_the_text(db_url: str) -> None:
    """Retry events written before 0004 ("attempt 2: …; next at …Z") get their attempt and
    next time as columns, the text keeps only the reason, and `svarbot log` says the same."""
    assert init_database(db_url, revision="0003") == "0003"
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        add_people_by_sql(session, SURVEY, 1)
        session.execute(text(
            "INSERT INTO outbox (id, idempotency_key, invitation_id, channel, kind, recipient, "
            "status, attempts, next_attempt_at, created_at) VALUES (1, 'invitation:1', 1, "
            "'email', 'invitation', 'x@example.test', 'retry', 2, :at, :at)"), {"at": NOW})
        session.execute(text(
            "INSERT INTO outbox_events (outbox_id, at, status, detail) VALUES "
            "(1, :at, 'queued', 'queued (invitation)'), "
            "(1, :at, 'retry', 'attempt 2: 451 4.3.0 try later; next at 2019-10-15 07:10:00Z')"),
            {"at": NOW})
    engine.dispose()
    assert upgrade(db_url) == ("0003", head_revision())
    engine = open_database(db_url)
    with session_factory(engine)() as session:
        rows = session.execute(select(OutboxEvent.status, OutboxEvent.detail,
                                      OutboxEvent.attempt, OutboxEvent.next_at)
                               .order_by(OutboxEvent.id)).all()
        assert [(s, d, a) for s, d, a, _ in rows] == [("queued", "", None),
                                                      ("retry", "451 4.3.0 try later", 2)]
        next_at = rows[1][3]
        assert next_at.replace(tzinfo=dt.UTC) == dt.datetime(2019, 10, 15, 7, 10, tzinfo=dt.UTC)
        details = [e.detail for e in respondent_history(session, 1) if e.source == "outbox"]
        assert sorted(details) == [
            "", "serveren svarte «451 4.3.0 try later» → nytt forsøk 09:10 (forsøk 2)"]
    engine.dispose()
