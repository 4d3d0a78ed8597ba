"""Turning the engine's prompts into outbox rows: invitations, pages, confirmations.

Nothing here sends: a message is an outbox row with a JSON payload (`OutgoingMail`), a stable
Message-ID chosen now, and an idempotency key that makes re-running harmless (an invitation
wave run twice, or an inbound message processed again after a crash, queues nothing new).
The sender renders and delivers the row later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, cast, exists, literal, select
from sqlalchemy.orm import Session

from bot.config import Settings, SurveySettings
from bot.conversation import apply_step
from bot.mail.compose import OutgoingMail, new_message_id
from flows.engine import advance, progress
from flows.events import Prompt, Start
from flows.model import Lang, Questionnaire
from flows.session import Session as Conversation
from flows.session import new_session
from storage.answers import AnswerStore
from storage.outbox import enqueue
from storage.schema import Invitation, InvitationStatus, OutboxMessage, Respondent

#: How many earlier Message-IDs a reply carries in References (the chain stays short).
MAX_REFERENCES = 8

#: The mail kind for a step, by the kinds of the engine's prompts in it.
_KIND_BY_PROMPT = {"completed": "confirmation", "stopped": "confirmation",
                   "paused": "confirmation", "questions": "page"}


@dataclass(frozen=True, slots=True)
class SurveyContext:
    """What outgoing mail needs to know about one survey."""

    settings: SurveySettings
    questionnaire: Questionnaire


def mail_kind(prompts: Sequence[Prompt]) -> str:
    """`page` when the step asks something, else `confirmation` or `info`."""
    kinds = [_KIND_BY_PROMPT.get(p.kind, "info") for p in prompts]
    if "page" in kinds:
        return "page"
    return "confirmation" if "confirmation" in kinds else "info"


def session_language(respondent: Respondent, survey: SurveyContext) -> Lang:
    """The respondent's language if the questionnaire has it, else the survey's default."""
    for lang in survey.questionnaire.languages:
        if lang == respondent.lang:
            return lang
    return survey.settings.default_lang


def queue_mail(session: Session, settings: Settings, survey: SurveyContext,
               invitation: Invitation, respondent: Respondent, conversation: Conversation, *,
               kind: str, prompts: Sequence[Prompt], key: str, now: dt.datetime,
               in_reply_to: str | None = None, references: Sequence[str] = (),
               not_before: dt.datetime | None = None,
               deadline: dt.datetime | None = None) -> OutboxMessage | None:
    """Queue one email to the respondent; None when `key` was queued before.

    `not_before` holds the message back (until the send window opens); `deadline` is when it
    is no longer worth sending (see `storage.outbox.enqueue`).
    """
    q = survey.questionnaire
    lang = conversation.lang
    show_progress = kind in ("page", "reminder") and conversation.answers
    mail = OutgoingMail(
        kind=kind, lang=lang, token=invitation.token,
        to_address=invitation.email_address or respondent.email, to_name=respondent.name,
        survey_title=q.title.get(lang), prompts=tuple(p.text for p in prompts),
        progress=progress(q, conversation) if show_progress else None,
        contact=survey.settings.contact, in_reply_to=in_reply_to,
        references=tuple(references)[-MAX_REFERENCES:])
    return enqueue(session, idempotency_key=key, channel="email", kind=kind,
                   recipient=mail.to_address, payload=mail.to_payload(),
                   message_id=new_message_id(settings.email), invitation_id=invitation.id,
                   not_before=not_before, deadline=deadline, now=now)


def queue_invitation(session: Session, settings: Settings, survey: SurveyContext,
                     store: AnswerStore, invitation: Invitation, respondent: Respondent, *,
                     now: dt.datetime, not_before: dt.datetime | None = None,
                     deadline: dt.datetime | None = None) -> bool:
    """Start one invitation's conversation and queue its first message; False if queued before.

    The key is the invitation (`invitation:<id>`), whoever queues it: a manual
    `svarbot invite` and the scheduled wave never both send. The conversation is only stored
    when the message was queued, so a second caller changes nothing.
    """
    q = survey.questionnaire
    lang = session_language(respondent, survey)
    step = advance(q, new_session(q.id, q.revision, channel="email", lang=lang),
                   Start(channel="email", lang=lang), now=now)
    row = queue_mail(session, settings, survey, invitation, respondent, step.session,
                     kind="invitation", prompts=step.prompts, key=invitation_key(invitation.id),
                     now=now, not_before=not_before, deadline=deadline)
    if row is None:
        return False
    apply_step(session, store, invitation, respondent, step, now=now, questionnaire=q)
    return True


def invitation_key(invitation_id: int) -> str:
    """The idempotency key of an invitation's first message."""
    return f"invitation:{invitation_id}"


def reminder_key(invitation_id: int, n: int) -> str:
    """The idempotency key of reminder `n` (1-based) to an invitation."""
    return f"reminder:{invitation_id}:{n}"


def sql_invitation_key() -> ColumnElement[str]:
    """`invitation_key(Invitation.id)` as SQL, so the outbox's unique key index finds the row.

    Invitations stay pending until their message is sent, so "already queued" is asked of the
    outbox: a second `svarbot invite --limit N` then takes the next N, not the same ones.
    """
    return literal("invitation:") + cast(Invitation.id, String)


def queue_invitations(session: Session, settings: Settings, survey: SurveyContext,
                      store: AnswerStore, *, now: dt.datetime, limit: int | None = None) -> int:
    """Start the conversation of every pending email invitation and queue its first message.

    The invitation carries the first page, so that a reply is all it takes. Returns how many
    were queued; a second run queues none (the key is the invitation).
    """
    already = exists().where(OutboxMessage.idempotency_key == sql_invitation_key())
    query = (select(Invitation, Respondent)
             .join(Respondent, Respondent.id == Invitation.respondent_id)
             .where(Invitation.survey_id == survey.settings.id,
                    Invitation.status == InvitationStatus.PENDING,
                    Invitation.email_address.is_not(None), ~already)
             .order_by(Invitation.id))
    if limit is not None:
        query = query.limit(limit)
    queued = 0
    for invitation, respondent in session.execute(query):
        if queue_invitation(session, settings, survey, store, invitation, respondent, now=now):
            queued += 1
    return queued
