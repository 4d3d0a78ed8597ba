"""The contact person's desk: respondents' questions to a person, on the identity side.

A query is opened where an engine step is applied (`bot.conversation.steps`), whatever
channel the question came by; while one is open the respondent gets no reminder.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from storage.schema import DeskQuery, Invitation, QueryStatus


def open_query(session: Session, invitation_id: int, text: str, *, now: dt.datetime) -> None:
    """Put the respondent's question on the desk."""
    session.add(DeskQuery(invitation_id=invitation_id, text=text, created_at=now))


def has_open_query(session: Session, invitation_id: int) -> bool:
    """Whether a question of this invitation waits for the contact person."""
    return bool(session.scalar(select(exists().where(
        DeskQuery.invitation_id == invitation_id, DeskQuery.status == QueryStatus.OPEN))))


def open_query_exists() -> ColumnElement[bool]:
    """SQL, correlated to `Invitation`: the invitation has a question waiting."""
    return exists().where(DeskQuery.invitation_id == Invitation.id,
                          DeskQuery.status == QueryStatus.OPEN)
