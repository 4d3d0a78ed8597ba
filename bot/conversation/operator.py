"""What an operator may do to one respondent's conversation: send the page again, correct
the address and invite again, or stop all contact.

Each is queued through the outbox like any message (idempotent under its key), changes the
invitation only through storage, and is written to the audit log with who did it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.orm import Session

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
from flows.events import Start
from storage.answers import AnswerStore
from storage.identity import change_address, set_status
from storage.schema import Invitation, InvitationStatus, Respondent
from storage.users import audit

#: Conversations that have ended: nothing is sent again to them.
_ENDED = (InvitationStatus.FINISHED, InvitationStatus.OPTED_OUT, InvitationStatus.CLOSED)


class ActionError(Exception):
    """The action cannot be done; the message is one line for the operator."""


def resend_page(session: Session, settings: Settings, surveys: Mapping[str, SurveyContext],
                store: AnswerStore, invitation: Invitation, *, by: str, key: str,
                now: dt.datetime, kind: str = "page") -> str:
    """Queue the page the respondent is at again, on the channel that reaches them; the
    channel's name. Raises `ActionError` for an ended conversation or no channel."""
    if invitation.status in _ENDED:
        raise ActionError(f"the conversation has ended ({invitation.status})")
    respondent = session.get_one(Respondent, invitation.respondent_id)
    survey = surveys.get(invitation.survey_id)
    if survey is None:
        raise ActionError(f"survey {invitation.survey_id} is not in the configuration")
    channels = configured_channels(settings)
    channel = reaching_channel(channels, (invitation.last_channel, "email"), invitation,
                               respondent)
    if channel is None:
        raise ActionError("no channel reaches the respondent")
    conversation = conversation_of(invitation, respondent, survey, channel)
    step = advance(survey.questionnaire, conversation, Start(channel=channel.style), now=now)
    row = queue_message(session, channel, survey, invitation, respondent, step.session,
                        kind=kind if conversation.answers or kind != "page" else "invitation",
                        prompts=step.prompts, key=key, now=now,
                        others=others_than(channels, channel))
    if row is None:
        raise ActionError("already sent")
    apply_step(session, store, invitation, respondent, step, now=now,
               questionnaire=survey.questionnaire)
    audit(session, actor=by, action="page sent again", target=f"invitation {invitation.id}",
          now=now)
    return channel.name


def readdress(session: Session, settings: Settings, surveys: Mapping[str, SurveyContext],
              store: AnswerStore, invitation: Invitation, email: str, *, by: str,
              now: dt.datetime) -> None:
    """Correct the address and send the invitation (or the current page) to it.

    Raises:
        ActionError: the address is not usable or taken, or the conversation has ended.
    """
    from storage.contacts import is_email

    if not is_email(email.strip()):
        raise ActionError("not an email address")
    respondent = session.get_one(Respondent, invitation.respondent_id)
    try:
        change_address(session, invitation, respondent, email)
    except ValueError as exc:
        raise ActionError(str(exc)) from exc
    if invitation.status == InvitationStatus.BOUNCED:
        set_status(session, invitation, InvitationStatus.INVITED,
                   "adressen rettet av en operatør", now=now)
    resend_page(session, settings, surveys, store, invitation, by=by,
                key=f"readdress:{invitation.id}:{respondent.email}", now=now)
    audit(session, actor=by, action="address corrected", target=f"invitation {invitation.id}",
          now=now)


def stop_contact(session: Session, invitation: Invitation, *, by: str,
                 now: dt.datetime) -> None:
    """No more messages to this respondent (they asked by phone, or left the job)."""
    set_status(session, invitation, InvitationStatus.OPTED_OUT, "stoppet av en operatør",
               now=now)
    audit(session, actor=by, action="contact stopped", target=f"invitation {invitation.id}",
          now=now)
