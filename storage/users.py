"""The people who use svarbot (operators, contact persons, admins), and the audit log.

Passwords are kept only as Argon2id hashes (argon2-cffi's defaults: 64 MiB, 3 passes, the
salt and parameters in the hash string), so a copy of the database gives no one a password.
Every change to a user is written to `audit_log` with who made it and when, in the same
transaction; neither a password nor a hash is ever in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.schema import AuditEvent, User, UserRole

log = logging.getLogger(__name__)

#: A user name: letters, digits and . _ - (it is shown and typed at a login prompt).
_NAME = re.compile(r"^[\w.-]{2,100}$")
#: The shortest password accepted (a passphrase is better; nothing longer is refused).
MIN_PASSWORD = 10

_hasher = PasswordHasher()


class UserError(Exception):
    """A user cannot be added or changed as asked; the message is one line for the user."""


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


def audit(session: Session, *, actor: str, action: str, target: str = "",
          now: dt.datetime | None = None) -> None:
    """Record that `actor` did `action` to `target` (in the caller's transaction)."""
    session.add(AuditEvent(at=now or dt.datetime.now(dt.UTC), actor=actor[:120],
                           action=action[:40], target=target[:200]))


def find_user(session: Session, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).one_or_none()


def add_user(session: Session, name: str, role: UserRole, password: str, *, actor: str,
             now: dt.datetime | None = None) -> User:
    """A new user with `role` and `password` (hashed).

    Raises:
        UserError: the name is not allowed or taken, or the password is too short.
    """
    if not _NAME.match(name):
        raise UserError(f"user name {name!r}: use 2 to 100 letters, digits, '.', '_' or '-'")
    if find_user(session, name) is not None:
        raise UserError(f"there is already a user called {name!r}")
    _check_password(password)
    moment = now or dt.datetime.now(dt.UTC)
    user = User(name=name, role=role, password_hash=_hasher.hash(password),
                created_at=moment, password_changed_at=moment)
    session.add(user)
    audit(session, actor=actor, action="user added", target=f"{name} ({role.value})",
          now=moment)
    session.flush()
    log.info("user %s added (%s)", name, role.value)
    return user


def set_password(session: Session, name: str, password: str, *, actor: str,
                 now: dt.datetime | None = None) -> None:
    """Give `name` a new password. Raises `UserError` (no such user, too short)."""
    user = find_user(session, name)
    if user is None:
        raise UserError(f"no user called {name!r}")
    _check_password(password)
    moment = now or dt.datetime.now(dt.UTC)
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = moment
    _end_sessions(session, user.id)
    audit(session, actor=actor, action="password changed", target=name, now=moment)


def remove_user(session: Session, name: str, *, actor: str,
                now: dt.datetime | None = None) -> None:
    """Remove `name`. Raises `UserError` when there is no such user."""
    user = find_user(session, name)
    if user is None:
        raise UserError(f"no user called {name!r}")
    _end_sessions(session, user.id)
    session.delete(user)
    audit(session, actor=actor, action="user removed", target=name, now=now)


def _end_sessions(session: Session, user_id: int) -> None:
    """A new password or a removal logs the user out everywhere."""
    from storage.web_sessions import end_sessions_of

    end_sessions_of(session, user_id)


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.name)))


def check_password(session: Session, name: str, password: str) -> User | None:
    """The user, when `password` is theirs; None otherwise (an unknown name costs the same
    time as a wrong password, so a login does not tell which names exist)."""
    user = find_user(session, name)
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is not None and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


_DUMMY_HASH = _hasher.hash("svarbot: no such user")
