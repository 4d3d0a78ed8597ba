"""Telling the desk: each new question mailed to `desk.notify`, replyable.

The contact person who lives in Outlook gets one mail per question, with who asks and where
they stand (never an answer). Its reply address carries the query's random reply key, so an
answer by plain reply comes back to svarbot, is trimmed like any reply and goes to the
respondent through `bot.desk.answer` (see `bot.conversation.dispatch`). With
`notify_mode: digest` the mails are held until `digest_at` and go out together.
The respondent's address is not in the mail: the reply goes through svarbot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import Message
from bot.channels.registry import configured_channels
from bot.config import Settings
from bot.conversation.outgoing import SurveyContext, queue_outgoing
from bot.desk.where import role_text, standing
from storage.db import transaction
from storage.desk import QUESTION_SEPARATOR, mark_notified, reply_key, unnotified
from storage.history import local_time
from storage.schema import DeskQuery, Invitation, Respondent

_ZONE = ZoneInfo("Europe/Oslo")

_CHANNEL = {"email": "e-post", "telegram": "Telegram"}


def notify_desk(factory: sessionmaker[Session], settings: Settings,
                surveys: Mapping[str, SurveyContext], *, now: dt.datetime) -> int:
    """Queue a mail to the desk for each open question not yet told; how many were queued
    (the leader's clock; questions are usually told at once, when they arrive)."""
    if settings.desk.notify is None:
        return 0
    queued = 0
    with transaction(factory) as session:
        for query in unnotified(session):
            queued += queue_notice(session, settings, surveys, query, now=now)
    return queued


def queue_notice(session: Session, settings: Settings, surveys: Mapping[str, SurveyContext],
                 query: DeskQuery, *, now: dt.datetime) -> int:
    """Queue the mail that tells the desk about `query` (held until the digest with
    `notify_mode: digest`); how many rows were queued (0: no desk address, or told before)."""
    desk = settings.desk
    email = configured_channels(settings).get("email")
    if desk.notify is None or email is None or query.notified_at is not None:
        return 0
    invitation = session.get_one(Invitation, query.invitation_id)
    respondent = session.get_one(Respondent, invitation.respondent_id)
    survey = surveys.get(invitation.survey_id)
    if survey is None:
        return 0
    message = Message(kind="desk_notice", lang="nb", token=reply_key(query), to_name="",
                      survey_title=survey.questionnaire.title.get("nb"),
                      prompts=notice_text(settings, survey, query, invitation, respondent),
                      progress=None, contact=None)
    questions = query.text.count(QUESTION_SEPARATOR) + 1  # one notice per question asked
    not_before = next_digest(desk.digest_at, now) if desk.notify_mode == "digest" else None
    queued = queue_outgoing(session, email, email.outgoing(message, desk.notify),
                            kind="desk_notice", now=now,
                            key=f"desk-notice:{query.id}:{questions}",
                            not_before=not_before)
    mark_notified(query, now=now)
    return queued


def next_digest(at: str, now: dt.datetime) -> dt.datetime:
    """The next `at` (HH:MM, Norwegian time) from `now`, in UTC."""
    hour, minute = (int(part) for part in at.split(":"))
    local = now.astimezone(_ZONE)
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due <= local:
        due += dt.timedelta(days=1)
    return due.astimezone(dt.UTC)


def notice_text(settings: Settings, survey: SurveyContext, query: DeskQuery,
                invitation: Invitation, respondent: Respondent) -> tuple[str, ...]:
    """The mail's paragraphs: who asks, where they stand, the question, how to answer."""
    who = ", ".join(part for part in (respondent.name,
                                      role_text(survey.questionnaire, respondent),
                                      f"{respondent.municipality_name} kommune") if part)
    place = standing(survey.questionnaire, invitation)
    channel = _CHANNEL.get(query.channel or "email", query.channel or "e-post")
    lines = [f"Et nytt spørsmål har kommet til kontaktpersonen for {survey.settings.id}.",
             f"Fra: {who}\nKanal: {channel}, {local_time(query.created_at)}\n"
             f"Står ved: {place}",
             "Spørsmålet:\n" + "\n".join(f"> {line}" for line in query.text.splitlines()),
             "Svar på denne e-posten (over streken), så går svaret ditt til respondenten, "
             "med siden hen var ved. Skriv bare svaret: det respondenten skrev blir ikke med."]
    if settings.web.public_url:
        lines.append(f"Du kan også svare i nettleseren: "
                     f"{settings.web.public_url.rstrip('/')}/desk/{query.id}")
    return tuple(lines)
