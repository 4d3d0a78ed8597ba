"""Turning the engine's prompts into outbox rows: invitations, pages, confirmations, reminders.

Nothing here sends: a message is an outbox row with the channel's payload (`Channel.outgoing`),
a message id chosen now where the channel has one, and an idempotency key that makes
re-running harmless (an invitation wave run twice, or an inbound message processed again after
a crash, queues nothing new). The channel's outbox worker delivers the row later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, cast, exists, literal, select
from sqlalchemy.orm import Session

from bot.channels.base import Channel, Channels, Message, Outgoing, ReplyContext
from bot.config import SurveySettings
from bot.conversation.steps import apply_step
from flows.engine import advance, progress
from flows.events import Prompt, Start
from flows.model import Lang, Questionnaire
from flows.session import Session as Conversation
from flows.session import from_json, new_session
from storage.answers import AnswerStore
from storage.outbox import enqueue
from storage.schema import Invitation, InvitationStatus, OutboxMessage, Respondent

#: The message kind for a step, by the kinds of the engine's prompts in it.
_KIND_BY_PROMPT = {"completed": "confirmation", "stopped": "confirmation",
                   "paused": "confirmation", "questions": "page"}


@dataclass(frozen=True, slots=True)
class SurveyContext:
    """What outgoing messages need to know about one survey."""

    settings: SurveySettings
    questionnaire: Questionnaire


def message_kind(prompts: Sequence[Prompt]) -> str:
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


def conversation_of(invitation: Invitation, respondent: Respondent, survey: SurveyContext,
                    channel: Channel) -> Conversation:
    """The invitation's conversation, or a new one in the respondent's language."""
    if invitation.session_state:
        return from_json(invitation.session_state)
    q = survey.questionnaire
    return new_session(q.id, q.revision, channel=channel.style,
                       lang=session_language(respondent, survey))


def queue_message(session: Session, channel: Channel, survey: SurveyContext,
                  invitation: Invitation, respondent: Respondent, conversation: Conversation, *,
                  kind: str, prompts: Sequence[Prompt], key: str, now: dt.datetime,
                  reply: ReplyContext | None = None, not_before: dt.datetime | None = None,
                  deadline: dt.datetime | None = None,
                  others: Sequence[Channel] = ()) -> OutboxMessage | None:
    """Queue one message to the respondent on `channel`; None when `key` was queued before
    (or the invitation has no address on that channel). A channel may need several rows
    (a long text in a chat): they follow under `key:2`, `key:3` …; the first is returned.

    `not_before` holds the message back (until the send window opens); `deadline` is when it
    is no longer worth sending (see `storage.outbox.enqueue`). A message that asks something
    carries a link to continue on each of `others` (the other enabled channels) that has one.
    """
    recipient = channel.address(invitation, respondent)
    if recipient is None:
        return None
    q = survey.questionnaire
    lang = conversation.lang
    show_progress = kind in ("page", "reminder") and conversation.answers
    asking = next((p for p in reversed(prompts) if p.asked), None)
    message = Message(
        kind=kind, lang=lang, token=invitation.token, to_name=respondent.name,
        survey_title=q.title.get(lang), prompts=tuple(p.text for p in prompts),
        progress=progress(q, conversation) if show_progress else None,
        contact=survey.settings.contact, reply=reply,
        asked=asking.asked if asking is not None else (),
        choices=asking.choices if asking is not None else (),
        multiple=bool(getattr(asking, "multiple", False)),
        join_links=_join_links(session, others, invitation, kind))
    first: OutboxMessage | None = None
    for n, out in enumerate(channel.outgoing(message, recipient)):
        row = enqueue(session, idempotency_key=key if n == 0 else f"{key}:{n + 1}",
                      channel=channel.name, kind=kind, recipient=out.recipient,
                      payload=out.payload, message_id=out.message_id,
                      invitation_id=invitation.id, not_before=not_before, deadline=deadline,
                      now=now)
        if n == 0:
            if row is None:
                return None  # queued before: so were the rest
            first = row
    return first


#: Kinds of message that carry links to the other channels (they ask something).
_LINKED_KINDS = ("invitation", "page", "reminder")


def _join_links(session: Session, others: Sequence[Channel], invitation: Invitation,
                kind: str) -> tuple[tuple[str, str], ...]:
    """Links to continue on each other enabled channel, for a message that asks something."""
    if kind not in _LINKED_KINDS:
        return ()
    links = []
    for other in others:
        url = other.join_link(session, invitation)
        if url is not None:
            links.append((other.name, url))
    return tuple(links)


def queue_outgoing(session: Session, channel: Channel, rows: Sequence[Outgoing], *, key: str,
                   kind: str, now: dt.datetime, invitation_id: int | None = None,
                   not_before: dt.datetime | None = None) -> int:
    """Queue the channel's own rows (a note to a chat not yet bound, the answer to a button
    press, a mail to the desk) under `key`, `key:2` …; how many were new."""
    queued = 0
    for n, out in enumerate(rows):
        if enqueue(session, idempotency_key=key if n == 0 else f"{key}:{n + 1}",
                   channel=channel.name, kind=kind, recipient=out.recipient,
                   payload=out.payload, message_id=out.message_id,
                   invitation_id=invitation_id, now=now, not_before=not_before) is not None:
            queued += 1
    return queued


def queue_invitation(session: Session, channel: Channel, survey: SurveyContext,
                     store: AnswerStore, invitation: Invitation, respondent: Respondent, *,
                     now: dt.datetime, not_before: dt.datetime | None = None,
                     deadline: dt.datetime | None = None,
                     others: Sequence[Channel] = ()) -> bool:
    """Start one invitation's conversation and queue its first message; False if queued before.

    The key is the invitation (`invitation:<id>`), whoever queues it: a manual
    `svarbot invite` and the scheduled wave never both send. The conversation is only stored
    when the message was queued, so a second caller changes nothing.
    """
    q = survey.questionnaire
    lang = session_language(respondent, survey)
    step = advance(q, new_session(q.id, q.revision, channel=channel.style, lang=lang),
                   Start(channel=channel.style, lang=lang), now=now)
    row = queue_message(session, channel, survey, invitation, respondent, step.session,
                        kind="invitation", prompts=step.prompts,
                        key=invitation_key(invitation.id), now=now, not_before=not_before,
                        deadline=deadline, others=others)
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


def queue_invitations(session: Session, channel: Channel, survey: SurveyContext,
                      store: AnswerStore, *, now: dt.datetime, limit: int | None = None,
                      others: Sequence[Channel] = ()) -> int:
    """Start the conversation of every pending invitation reachable on `channel` and queue
    its first message.

    The invitation carries the first page, so that a reply is all it takes. Returns how many
    were queued; a second run queues none (the key is the invitation).
    """
    already = exists().where(OutboxMessage.idempotency_key == sql_invitation_key())
    query = (select(Invitation, Respondent)
             .join(Respondent, Respondent.id == Invitation.respondent_id)
             .where(Invitation.survey_id == survey.settings.id,
                    Invitation.status == InvitationStatus.PENDING,
                    channel.reachable(), ~already)
             .order_by(Invitation.id))
    if limit is not None:
        query = query.limit(limit)
    queued = 0
    for invitation, respondent in session.execute(query):
        if queue_invitation(session, channel, survey, store, invitation, respondent, now=now,
                            others=others):
            queued += 1
    return queued


def others_than(channels: Channels, channel: Channel) -> list[Channel]:
    """The enabled channels other than `channel` (whose links a message carries)."""
    return [other for other in channels if other.name != channel.name]


def reaching_channel(channels: Channels, preferred: Sequence[str | None],
                     invitation: Invitation, respondent: Respondent) -> Channel | None:
    """The first of the `preferred` channels (by name; None entries are passed over) that
    reaches the respondent, else any enabled channel that does (a blocked chat falls back to
    email); None when none does."""
    order = [c for c in (channels.get(name) for name in preferred if name) if c is not None]
    order += list(channels)
    return next((c for c in order if c.address(invitation, respondent) is not None), None)


def invitation_channel(channels: Channels, survey: SurveyContext) -> Channel:
    """The channel a survey's invitations and reminders go out on: its plan's, else email.

    Raises:
        KeyError: the plan names a channel that is not enabled.
    """
    plan = survey.settings.plan
    return channels[plan.channel if plan is not None else "email"]
