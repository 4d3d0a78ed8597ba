"""The database schema: an identity side and an answer side that cannot be joined.

Identity side (who was invited, how far they got, every message in and out):
`surveys`, `respondents`, `invitations`, `invitation_events`, `outbox`, `outbox_events`,
`inbox`, `inbox_events`, `desk_queries`. The three `*_events` tables are the delivery history
`svarbot log` reads: every status change with its reason, never a message's text.

Answer side (what was answered, by nobody in particular): `responses`, `answers` and
`answer_counts`. They hold only coarse strata (respondent type, sector, landsdel, size class)
and a date without a time. Their keys are random (or, for the counts, the category and stratum
counted), and on SQLite they are `WITHOUT ROWID` tables, so neither a key nor the physical row
order reveals when, or in which order, anyone answered. `answer_counts` is what the report
reads: how many answers fall in each category per stratum, kept in step with `answers` by
`storage.answers.AnswerStore.record` (see `storage.counts`).

The one bridge is `response_links`: an HMAC of the invitation token (keyed by a secret that is
never stored in the database) mapped to a response id. Without the key the hash cannot be
recomputed from a token; `svarbot seal` deletes the links, after which no one can tie an answer
to a person.

Statuses are `StrEnum`s stored verbatim. All timestamps are UTC.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base for every svarbot table."""


# --- statuses -------------------------------------------------------------------------------


class SurveyStatus(StrEnum):
    """The life of a survey."""

    OPEN = "open"
    CLOSED = "closed"
    SEALED = "sealed"


class RespondentRole(StrEnum):
    """Who a respondent is, as far as the survey design cares."""

    UNIT_LEADER = "unit_leader"
    MAYOR = "mayor"


class InvitationStatus(StrEnum):
    """Where one invitation stands."""

    PENDING = "pending"
    INVITED = "invited"
    DELIVERED = "delivered"
    STARTED = "started"
    FINISHED = "finished"
    BOUNCED = "bounced"
    OPTED_OUT = "opted_out"
    CLOSED = "closed"


class OutboxStatus(StrEnum):
    """Where one outbound message stands."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    BOUNCED = "bounced"
    DEAD = "dead"


class InboxStatus(StrEnum):
    """Where one inbound message stands."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class QueryStatus(StrEnum):
    """A respondent's question to the contact person."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- identity side --------------------------------------------------------------------------


class Survey(Base):
    """A campaign: one questionnaire sent to a list of respondents."""

    __tablename__ = "surveys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    questionnaire: Mapped[str] = mapped_column(String(200))
    status: Mapped[SurveyStatus] = mapped_column(String(16), default=SurveyStatus.OPEN)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    sealed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Respondent(Base):
    """A person who may be invited: contact details and the strata used for sampling."""

    __tablename__ = "respondents"
    __table_args__ = (UniqueConstraint("email", name="uq_respondents_email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    telegram: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[RespondentRole] = mapped_column(String(16))
    municipality_no: Mapped[str] = mapped_column(String(4))
    municipality_name: Mapped[str] = mapped_column(String(100))
    county: Mapped[str] = mapped_column(String(100))
    sector: Mapped[str | None] = mapped_column(String(32))
    unit_type: Mapped[str | None] = mapped_column(String(100))
    size_class: Mapped[str] = mapped_column(String(16))
    landsdel: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(2), default="nb")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow,
                                                    onupdate=_utcnow)


class Invitation(Base):
    """One respondent invited to one survey, and the state of their conversation."""

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("respondent_id", "survey_id", name="uq_invitations_respondent_survey"),
        Index("ix_invitations_funnel", "survey_id", "status", "last_channel", "away_until"),
        Index("ix_invitations_survey_respondent", "survey_id", "respondent_id", "status"),
        Index("ix_invitations_status_contact", "status", "last_contact_at"),
        Index("ix_invitations_telegram_start", "telegram_start", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    respondent_id: Mapped[int] = mapped_column(ForeignKey("respondents.id", ondelete="CASCADE"))
    survey_id: Mapped[str] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    #: At least 128 random bits, URL- and address-safe; the only key a reply is matched by.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[InvitationStatus] = mapped_column(String(16), default=InvitationStatus.PENDING)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: The engine's session (flows.session JSON); deleted when the survey is sealed.
    session_state: Mapped[str | None] = mapped_column(Text)
    email_address: Mapped[str | None] = mapped_column(String(320))
    #: Set when a reply came from another address than the invited one.
    answered_from_other_address: Mapped[bool] = mapped_column(default=False)
    #: An out-of-office reply's return date: no reminder before it.
    away_until: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow,
                                                    onupdate=_utcnow)
    #: The deep-link payload (`/start <payload>`) that binds a Telegram chat (192 random
    #: bits, not the token): made when the first email that carries the link is queued.
    telegram_start: Mapped[str | None] = mapped_column(String(43))
    #: The Telegram user and chat bound by `/start <link>` (64-bit ids; never logged).
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    #: False once Telegram refused a message (bot blocked, account gone): mail goes by email.
    telegram_active: Mapped[bool] = mapped_column(default=True)
    #: Someone else tried the link (a forwarded invitation): for an operator to look at.
    start_shared: Mapped[bool] = mapped_column(default=False)
    #: The channel the respondent last wrote from (reminders go there).
    last_channel: Mapped[str | None] = mapped_column(String(16))


class InvitationEvent(Base):
    """One status change of an invitation and why (so `svarbot log` can explain a silence).

    `previous` is None only for the statuses migration 0003 found already set, whose history
    from before it is unknown. `reason` is short and scrubbed of addresses and tokens
    (`storage.identity.safe_reason`); it is never a message's text.
    """

    __tablename__ = "invitation_events"
    __table_args__ = (Index("ix_invitation_events_status", "status", "invitation_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    status: Mapped[InvitationStatus] = mapped_column(String(16))
    previous: Mapped[InvitationStatus | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


class OutboxMessage(Base):
    """Every outbound message, from queued to sent (or dead, for an operator to replay)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_invitation", "invitation_id", "kind", "status", "channel", "sent_at"),
        Index("ix_outbox_channel_sent", "channel", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Makes enqueueing idempotent: the same invitation wave enqueues nothing twice.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    invitation_id: Mapped[int | None] = mapped_column(
        ForeignKey("invitations.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: The rendered message; cleared once sent (bodies can carry answers).
    payload: Mapped[dict[str, object] | None] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(String(16), default=OutboxStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                         default=_utcnow)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxEvent(Base):
    """One step in an outbound message's delivery history (attempts, bounces, reasons)."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_status_at", "status", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"),
                                           index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    #: For a retry: which attempt failed, and when the next one is due.
    attempt: Mapped[int | None] = mapped_column(Integer)
    next_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class InboxMessage(Base):
    """Every inbound message, stored before anything else happens to it."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_inbox_channel_external"),
        Index("ix_inbox_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    #: Email: folder/UIDVALIDITY/UID or Message-ID; Telegram: update id.
    external_id: Mapped[str] = mapped_column(String(400))
    message_id: Mapped[str | None] = mapped_column(String(400), index=True)
    invitation_id: Mapped[int | None] = mapped_column(
        ForeignKey("invitations.id", ondelete="SET NULL"))
    classification: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[InboxStatus] = mapped_column(String(16), default=InboxStatus.RECEIVED)
    #: The raw message until processed (then deleted: it may carry answers).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class InboxEvent(Base):
    """One step in an inbound message's handling history."""

    __tablename__ = "inbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inbox.id", ondelete="CASCADE"),
                                          index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class DeskQuery(Base):
    """A respondent's question to the contact person, and the answer given."""

    __tablename__ = "desk_queries"
    __table_args__ = (
        Index("ix_desk_queries_reply_key", "reply_key", unique=True),
        Index("ix_desk_queries_status", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"),
                                               index=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[QueryStatus] = mapped_column(String(16), default=QueryStatus.OPEN)
    answer: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: The channel the question came by (the answer goes back there).
    channel: Mapped[str | None] = mapped_column(String(16))
    #: The email thread of the question (its Message-ID last), so the answer is threaded.
    thread: Mapped[list[str] | None] = mapped_column(JSON)
    #: A random key in the reply address of the mail to the desk (`desk.notify`).
    reply_key: Mapped[str | None] = mapped_column(String(43))
    #: Who answered: a user name, or `email:<desk address>` for an answer by mail.
    answered_by: Mapped[str | None] = mapped_column(String(120))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the query was mailed to the desk's address (None: not yet).
    notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


# --- the link -------------------------------------------------------------------------------


class ResponseLink(Base):
    """HMAC(token) → response id. The key is never in the database; `seal` deletes these."""

    __tablename__ = "response_links"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy table options

    link: Mapped[str] = mapped_column(String(64), primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(64), index=True)
    response_id: Mapped[str] = mapped_column(String(32))


# --- answer side ----------------------------------------------------------------------------

#: Tables whose rows must never be joinable to a person (a test checks every column).
ANSWER_SIDE = ("responses", "answers", "answer_counts")


class Response(Base):
    """One anonymous set of answers: coarse strata and a date, keyed by a random id."""

    __tablename__ = "responses"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy table options

    #: 128 random bits as hex; carries no order.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(64), index=True)
    respondent_type: Mapped[str] = mapped_column(String(16))
    sector: Mapped[str | None] = mapped_column(String(32))
    landsdel: Mapped[str | None] = mapped_column(String(64))
    size_class: Mapped[str | None] = mapped_column(String(16))
    completed: Mapped[bool] = mapped_column(default=False)
    #: The day of the latest answer: never a time.
    answered_on: Mapped[dt.date] = mapped_column(Date)


class Answer(Base):
    """One answer (an item, or one row of a grid) within a response."""

    __tablename__ = "answers"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy table options

    response_id: Mapped[str] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"),
                                             primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(130), primary_key=True)
    #: The value as JSON: an option id, a list of option ids, a number or a text.
    value: Mapped[object] = mapped_column(JSON)


class AnswerCount(Base):
    """How many answers of one answer id fall in one category, per stratum: the report's input.

    Aggregate only: no response id, no text. `value_key` is the category as JSON (see
    `storage.counts.value_keys`): the value of a choice, scale, yes/no or number answer, one row
    per chosen option of a multiple choice (plus one for having answered), and `"answered"`
    for a non-empty free text, never the text. Answer id `""` counts the responses themselves.
    A missing stratum is `""` rather than NULL, so that it can be part of the primary key.
    """

    __tablename__ = "answer_counts"
    __table_args__ = {"sqlite_with_rowid": False}  # noqa: RUF012 - SQLAlchemy table options

    survey_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer_id: Mapped[str] = mapped_column(String(130), primary_key=True)
    value_key: Mapped[str] = mapped_column(Text, primary_key=True)
    respondent_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    sector: Mapped[str] = mapped_column(String(32), primary_key=True)
    landsdel: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_class: Mapped[str] = mapped_column(String(16), primary_key=True)
    completed: Mapped[bool] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


# --- people who use svarbot (the web desk and dashboard) -------------------------------------


class UserRole(StrEnum):
    """What a user of svarbot may do: watch delivery, answer respondents' questions, or both
    and manage users."""

    OPERATOR = "operator"
    CONTACT = "contact"
    ADMIN = "admin"


class User(Base):
    """A person who logs in to svarbot (an operator, a contact person, an admin)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[UserRole] = mapped_column(String(16))
    #: Argon2id, with its parameters and salt (the PHC string); never the password.
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                             default=_utcnow)


class AuditEvent(Base):
    """Who changed what, and when: a user change, a reply, a replay, a release."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    #: The user, or `cli:<login>` for a command run in a terminal.
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    #: What it was done to (a user name, an outbox id); never a password or an answer.
    target: Mapped[str] = mapped_column(String(200), default="")


class CannedReply(Base):
    """An answer the contact person keeps for questions that come again and again."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    lang: Mapped[str] = mapped_column(String(2))
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)


class WebSession(Base):
    """A login in the browser, kept on the server: logging out or expiry deletes it.

    `id` is the SHA-256 of the cookie's value, so a copy of the database lets no one in.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The token every form of this session carries.
    csrf: Mapped[str] = mapped_column(String(43))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """A failed login (the name tried and the client address): what throttling counts."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_utcnow, index=True)


class Heartbeat(Base):
    """When a part of the running service last did its work (the leader's clock, the IMAP
    check, the Telegram poll): what the health page and the alerts read."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: Which process, and anything short worth showing (never an address or a token).
    detail: Mapped[str] = mapped_column(String(200), default="")
