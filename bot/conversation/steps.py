"""Applying one engine step to the database: the session, the invitation, answers, the desk.

This is the seam between the pure engine and storage. Whatever channel a message came by, the
step it produced is stored the same way, in the caller's transaction: the session JSON goes to
the invitation, the invitation's status follows the conversation (started, finished, opted out),
every recorded or removed answer goes to the anonymised store, keyed only by the link, and a
question to a person goes to the contact person's desk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from flows.events import (
    AnswerRecorded,
    AnswerRemoved,
    QueryRaised,
    QuestionnaireCompleted,
    Step,
    Stopped,
)
from flows.model import Questionnaire
from flows.session import Status, to_json
from storage.answers import AnswerStore, strata_for
from storage.desk import open_query
from storage.identity import save_conversation, set_status
from storage.schema import DeskQuery, Invitation, InvitationStatus, Respondent

#: Statuses a conversation step may move an invitation out of.
_OPEN = (InvitationStatus.PENDING, InvitationStatus.INVITED, InvitationStatus.DELIVERED,
         InvitationStatus.STARTED, InvitationStatus.FINISHED, InvitationStatus.OPTED_OUT)


def apply_step(session: Session, store: AnswerStore, invitation: Invitation,
               respondent: Respondent, step: Step, *, now: dt.datetime,
               questionnaire: Questionnaire | None = None, channel: str | None = None,
               thread: Sequence[str] = ()) -> DeskQuery | None:
    """Store `step` for `invitation`: session state, status, answers (by link only) and the
    questions for the contact person.

    `questionnaire` is the one the step came from (it tells the store which answers are free
    text); without it the store loads the survey's own. `channel` and `thread` say where a
    question for the contact person came from (the channel, and the email thread with the
    question's Message-ID last), so that the answer goes back into that conversation.
    Returns the desk query the step opened (or reopened), if any.
    """
    save_conversation(invitation, to_json(step.session), now=now)
    recorded = {e.answer_id for e in step.events if isinstance(e, AnswerRecorded)}
    removed = [e.answer_id for e in step.events if isinstance(e, AnswerRemoved)]
    if recorded or removed:
        answers = {a: step.session.answers[a] for a in recorded if a in step.session.answers}
        store.record(session, survey_id=invitation.survey_id, token=invitation.token,
                     strata=strata_for(respondent), answers=answers, removed=removed,
                     completed=step.session.status is Status.COMPLETED, today=now.date(),
                     questionnaire=questionnaire)
    status = _status_after(invitation, step)
    if status is not None and status != invitation.status and invitation.status in _OPEN:
        set_status(session, invitation, status, _reason(step), now=now)
    opened = None
    for event in step.events:
        if isinstance(event, QueryRaised):
            opened = open_query(session, invitation.id, event.text, now=now, channel=channel,
                                thread=thread)
    return opened


def _status_after(invitation: Invitation, step: Step) -> InvitationStatus | None:
    if any(isinstance(e, Stopped) for e in step.events):
        return InvitationStatus.OPTED_OUT
    if any(isinstance(e, QuestionnaireCompleted) for e in step.events):
        return InvitationStatus.FINISHED
    if step.session.status in (Status.IN_PROGRESS, Status.PAUSED) and any(
            isinstance(e, AnswerRecorded) for e in step.events):
        return InvitationStatus.STARTED
    if step.session.status is Status.IN_PROGRESS and invitation.status is (
            InvitationStatus.OPTED_OUT):
        return InvitationStatus.STARTED  # the respondent took part again
    return None


def _reason(step: Step) -> str:
    kinds = sorted({e.kind for e in step.events}) or ["reply"]
    return "conversation: " + ", ".join(kinds)
