"""Login sessions in the browser, kept on the server, and the count of failed logins.

The cookie holds 256 random bits; the table holds only their SHA-256, so neither a copy of
the database nor a log line lets anyone in. A session ends when the user logs out (the row is
deleted), after `idle` without a request, or at `max_age` whatever happens: an ended session
is gone, so its cookie opens nothing. Failed logins are counted per user name and per client
address over a window; past the limit, every attempt is refused until the window has passed,
right password or not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from storage.schema import LoginFailure, User, WebSession

#: How far back failed logins count.
FAILURE_WINDOW = dt.timedelta(minutes=15)


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class Login:
    """A live session: who, with which role, and the CSRF token of their forms."""

    user_id: int
    name: str
    role: str
    csrf: str


def start_session(session: Session, user: User, *, now: dt.datetime,
                  max_age: dt.timedelta) -> str:
    """A new session for `user`; returns the cookie value (shown to no one but the browser)."""
    cookie = secrets.token_urlsafe(32)
    session.add(WebSession(id=_digest(cookie), user_id=user.id,
                           csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                           expires_at=now + max_age))
    return cookie


def find_session(session: Session, cookie: str, *, now: dt.datetime,
                 idle: dt.timedelta) -> Login | None:
    """The live session the cookie opens (and it is marked used), or None: unknown, expired
    or idle too long (such a row is deleted)."""
    if not cookie:
        return None
    row = session.execute(select(WebSession, User).join(User, User.id == WebSession.user_id)
                          .where(WebSession.id == _digest(cookie))).first()
    if row is None:
        return None
    web, user = row
    if _utc(web.expires_at) <= now or _utc(web.last_seen_at) + idle <= now:
        session.delete(web)
        return None
    if now - _utc(web.last_seen_at) > dt.timedelta(seconds=60):
        web.last_seen_at = now  # written at most once a minute, not on every request
    return Login(user_id=user.id, name=user.name, role=str(user.role), csrf=web.csrf)


def end_session(session: Session, cookie: str) -> None:
    """Log out: the session is deleted, so the cookie opens nothing any more."""
    session.execute(delete(WebSession).where(WebSession.id == _digest(cookie)))


def end_sessions_of(session: Session, user_id: int) -> None:
    """Every session of a user ends (their password changed, or they were removed)."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id))


def purge_sessions(session: Session, *, now: dt.datetime) -> int:
    """Delete expired sessions and old failures; how many sessions went."""
    result = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    gone = getattr(result, "rowcount", 0)
    session.execute(delete(LoginFailure).where(LoginFailure.at <= now - FAILURE_WINDOW))
    return int(gone or 0)


def note_failure(session: Session, *, name: str, address: str, now: dt.datetime) -> None:
    """Count one failed login."""
    session.add(LoginFailure(name=name[:100], address=address[:64], at=now))


def too_many_failures(session: Session, *, name: str, address: str, now: dt.datetime,
                      limit: int) -> bool:
    """Whether the name or the address has used up its attempts in the window."""
    since = now - FAILURE_WINDOW
    by_name = session.scalar(select(func.count()).where(
        LoginFailure.at > since, LoginFailure.name == name[:100])) or 0
    by_address = session.scalar(select(func.count()).where(
        LoginFailure.at > since, LoginFailure.address == address[:64])) or 0
    return by_name >= limit or by_address >= limit


def clear_failures(session: Session, *, name: str, address: str) -> None:
    """A successful login forgets the name's and the address's failures."""
    session.execute(delete(LoginFailure).where(or_(LoginFailure.name == name[:100],
                                                   LoginFailure.address == address[:64])))
