"""The contact person's desk: respondents' questions to a person, on the identity side.

A query is opened where an engine step is applied (`bot.conversation.steps`), whatever
channel the question came by; while one is open the respondent gets no reminder. A query is
open until the contact person answers it (answered) or closes it without an answer (closed);
a new question from the same respondent while the last one is answered opens it again, with
the new question added below, so the contact person sees one conversation, not two.

Only the query's own text, the identity side and where the respondent stands (an item id)
are read here: never an answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, exists, func, select
from sqlalchemy.orm import Session

from storage.schema import CannedReply, DeskQuery, Invitation, QueryStatus, Respondent
from storage.tokens import new_token

#: What stands between two questions of one query (the second reopened it).
QUESTION_SEPARATOR = "\n\n— "


def open_query(session: Session, invitation_id: int, text: str, *, now: dt.datetime,
               channel: str | None = None, thread: Sequence[str] = ()) -> DeskQuery:
    """Put the respondent's question on the desk (or reopen their answered one with it).

    `channel` is the channel it came by and `thread` the email thread (Message-IDs, the
    question's own last), so that the answer goes back into the same conversation.
    """
    answered = session.scalars(
        select(DeskQuery).where(DeskQuery.invitation_id == invitation_id,
                                DeskQuery.status.in_((QueryStatus.OPEN, QueryStatus.ANSWERED)))
        .order_by(DeskQuery.id.desc()).limit(1)).first()
    if answered is not None:
        answered.text = f"{answered.text}{QUESTION_SEPARATOR}{text}"
        answered.status = QueryStatus.OPEN
        answered.updated_at = now
        answered.notified_at = None
        if channel is not None:
            answered.channel = channel
        if thread:
            answered.thread = list(thread)
        return answered
    query = DeskQuery(invitation_id=invitation_id, text=text, created_at=now, updated_at=now,
                      channel=channel, thread=list(thread) or None)
    session.add(query)
    session.flush()  # the id: the desk's mail and the reply key name the query
    return query


def has_open_query(session: Session, invitation_id: int) -> bool:
    """Whether a question of this invitation waits for the contact person."""
    return bool(session.scalar(select(exists().where(
        DeskQuery.invitation_id == invitation_id, DeskQuery.status == QueryStatus.OPEN))))


def open_query_exists() -> ColumnElement[bool]:
    """SQL, correlated to `Invitation`: the invitation has a question waiting."""
    return exists().where(DeskQuery.invitation_id == Invitation.id,
                          DeskQuery.status == QueryStatus.OPEN)


def mark_answered(query: DeskQuery, text: str, *, by: str, now: dt.datetime) -> None:
    """Record the answer given (the caller queues it to the respondent)."""
    query.answer = text if not query.answer else f"{query.answer}{QUESTION_SEPARATOR}{text}"
    query.status = QueryStatus.ANSWERED
    query.answered_by = by[:120]
    query.answered_at = now
    query.updated_at = now


def close_query(query: DeskQuery, *, now: dt.datetime) -> None:
    """Close the query without (further) answer; reminders may go again."""
    query.status = QueryStatus.CLOSED
    query.closed_at = now
    query.updated_at = now


def reply_key(query: DeskQuery) -> str:
    """The random key in the reply address of the query's mail to the desk (made once)."""
    if query.reply_key is None:
        query.reply_key = new_token()
    return query.reply_key


def find_by_reply_key(session: Session, key: str) -> DeskQuery | None:
    """The query whose desk mail has `key` in its reply address, or None.

    The dispatcher asks this of every reply that carries a token, and nearly every time the
    answer is None (the token is an invitation's): so the id is looked up first by a plain
    statement, and only a query that exists is loaded as an object.
    """
    if session.new or session.dirty:
        session.flush()  # what an ORM query would do first: a key set just now is found
    found = session.connection().execute(_ID_BY_REPLY_KEY, {"key": key}).scalar()
    return None if found is None else session.get(DeskQuery, found)


#: Built once: it runs for every reply.
_ID_BY_REPLY_KEY = select(DeskQuery.id).where(DeskQuery.reply_key == bindparam("key"))


def mark_notified(query: DeskQuery, *, now: dt.datetime) -> None:
    """The query was mailed to the desk (a new question reopening it clears this)."""
    query.notified_at = now


def unnotified(session: Session, limit: int = 500) -> list[DeskQuery]:
    """Open queries not yet mailed to the desk, oldest first."""
    return list(session.scalars(
        select(DeskQuery).where(DeskQuery.status == QueryStatus.OPEN,
                                DeskQuery.notified_at.is_(None))
        .order_by(DeskQuery.created_at, DeskQuery.id).limit(limit)))


# --- what the desk shows ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One query with the identity side the contact person needs (never an answer)."""

    query: DeskQuery
    invitation: Invitation
    respondent: Respondent


def queue(session: Session, statuses: Sequence[QueryStatus] = (QueryStatus.OPEN,),
          limit: int = 500) -> list[QueueEntry]:
    """Queries in `statuses`, oldest first, with who asks."""
    rows = session.execute(
        select(DeskQuery, Invitation, Respondent)
        .join(Invitation, Invitation.id == DeskQuery.invitation_id)
        .join(Respondent, Respondent.id == Invitation.respondent_id)
        .where(DeskQuery.status.in_(list(statuses)))
        .order_by(DeskQuery.created_at, DeskQuery.id).limit(limit)).all()
    return [QueueEntry(q, i, r) for q, i, r in rows]


def entry(session: Session, query_id: int) -> QueueEntry | None:
    """One query with who asks; None when there is no such query."""
    row = session.execute(
        select(DeskQuery, Invitation, Respondent)
        .join(Invitation, Invitation.id == DeskQuery.invitation_id)
        .join(Respondent, Respondent.id == Invitation.respondent_id)
        .where(DeskQuery.id == query_id)).first()
    return QueueEntry(*row) if row is not None else None


def counts_by_status(session: Session) -> dict[str, int]:
    """How many queries stand in each state."""
    return {str(status): n for status, n in session.execute(
        select(DeskQuery.status, func.count()).group_by(DeskQuery.status))}


# --- canned replies -----------------------------------------------------------------------


def canned_replies(session: Session) -> list[CannedReply]:
    """Every kept reply, by language and title."""
    return list(session.scalars(select(CannedReply).order_by(CannedReply.lang,
                                                             CannedReply.title)))


def save_canned_reply(session: Session, *, title: str, lang: str, text: str, by: str,
                      now: dt.datetime, reply_id: int | None = None) -> CannedReply:
    """Add a kept reply, or change the one with `reply_id`.

    Raises:
        LookupError: there is no reply with `reply_id`.
    """
    if reply_id is None:
        reply = CannedReply(title=title[:120], lang=lang, text=text, updated_by=by[:120],
                            updated_at=now)
        session.add(reply)
        session.flush()
        return reply
    found = session.get(CannedReply, reply_id)
    if found is None:
        raise LookupError(f"no canned reply {reply_id}")
    found.title, found.lang, found.text = title[:120], lang, text
    found.updated_by, found.updated_at = by[:120], now
    return found


def delete_canned_reply(session: Session, reply_id: int) -> bool:
    """Delete a kept reply; False when there was none."""
    found = session.get(CannedReply, reply_id)
    if found is None:
        return False
    session.delete(found)
    return True
