"""Answering a respondent's question, on the channel they asked on, followed by their page.

The answer is one outbox row (or a few, for a long chat message) queued in the caller's
transaction: the contact person's words, then the page the respondent was at, so that the
conversation goes on from where it stood. On email it is threaded into the respondent's own
conversation (In-Reply-To their question); on Telegram it goes to their chat. The query is
marked answered and the change is in the audit log with who did it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.orm import Session

from bot.channels.base import Channel, ReplyContext
from bot.channels.registry import configured_channels
from bot.config import Settings
from bot.conversation.outgoing import (
    SurveyContext,
    conversation_of,
    others_than,
    queue_message,
    reaching_channel,
)
from bot.conversation.steps import apply_step
from flows.engine import advance
from flows.events import Prompt, Start
from storage.answers import AnswerStore
from storage.desk import close_query, mark_answered
from storage.schema import DeskQuery, Invitation, QueryStatus, Respondent
from storage.users import audit

#: The line above the contact person's words, in the respondent's language.
_INTRO = {"nb": "Svar fra kontaktpersonen på spørsmålet ditt:",
          "nn": "Svar frå kontaktpersonen på spørsmålet ditt:",
          "en": "The contact person's answer to your question:"}

#: Longest answer accepted (a chat splits it; an email carries it whole).
MAX_ANSWER = 10_000


class DeskError(Exception):
    """The question cannot be answered as asked; the message is one line for the user."""


def answer_query(session: Session, settings: Settings, surveys: Mapping[str, SurveyContext],
                 store: AnswerStore, query: DeskQuery, text: str, *, by: str, key: str,
                 now: dt.datetime) -> Channel:
    """Queue `text` to the respondent who asked `query`, then their current page, and mark
    the query answered; the channel it went on.

    `key` makes the send idempotent (a form submitted twice, a mail read again after a
    crash queue one answer).

    Raises:
        DeskError: the text is empty or too long, the query is closed, or no channel reaches
            the respondent.
    """
    # Browsers send a text box's line breaks as CRLF; a stored answer has plain newlines.
    words = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not words:
        raise DeskError("the answer is empty")
    if len(words) > MAX_ANSWER:
        raise DeskError(f"the answer is longer than {MAX_ANSWER} characters")
    if query.status == QueryStatus.CLOSED:
        raise DeskError("the question is closed; it opens again when the respondent writes")
    invitation = session.get_one(Invitation, query.invitation_id)
    respondent = session.get_one(Respondent, invitation.respondent_id)
    survey = surveys.get(invitation.survey_id)
    if survey is None:
        raise DeskError(f"survey {invitation.survey_id} is not in the configuration")
    channels = configured_channels(settings)
    channel = reaching_channel(channels, (query.channel, invitation.last_channel),
                               invitation, respondent)
    if channel is None:
        raise DeskError("no channel reaches the respondent (no address, chat blocked)")
    conversation = conversation_of(invitation, respondent, survey, channel)
    step = advance(survey.questionnaire, conversation, Start(channel=channel.style), now=now)
    lang = conversation.lang
    prompts = (Prompt(kind="info", text=f"{_INTRO.get(lang, _INTRO['nb'])}\n\n{words}"),
               *step.prompts)
    reply = _thread(query) if channel.name == query.channel else None
    row = queue_message(session, channel, survey, invitation, respondent, step.session,
                        kind="desk_reply", prompts=prompts, key=f"desk:{query.id}:{key}",
                        now=now, reply=reply, others=others_than(channels, channel))
    if row is None:
        return channel  # sent before under this key (a second click, a mail read again)
    apply_step(session, store, invitation, respondent, step, now=now,
               questionnaire=survey.questionnaire)
    mark_answered(query, words, by=by, now=now)
    audit(session, actor=by, action="desk answered", target=f"query {query.id}", now=now)
    return channel


def close_without_answer(session: Session, query: DeskQuery, *, by: str,
                         now: dt.datetime) -> None:
    """Close the query with no (further) answer: reminders may go to the respondent again."""
    close_query(query, now=now)
    audit(session, actor=by, action="desk closed", target=f"query {query.id}", now=now)


def _thread(query: DeskQuery) -> ReplyContext | None:
    """Where an email answer belongs: In-Reply-To the question, References its thread."""
    thread = [m for m in (query.thread or []) if isinstance(m, str)]
    if not thread:
        return None
    return ReplyContext(message_id=thread[-1], references=tuple(thread[:-1]))
