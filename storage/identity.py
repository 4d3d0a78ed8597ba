"""The identity side: surveys, respondents and their invitations.

Everything here is idempotent, because contact lists are re-imported and invitation waves
re-run: the same survey, respondent or invitation is found again rather than duplicated, and an
existing invitation keeps its token and state. A respondent is the same person when the email
address is the same, whatever its case (addresses are stored in lower case).

Logs name invitations by their database id only: never a token, an address or a name.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from storage import tokens
from storage.schema import (
    Invitation,
    InvitationEvent,
    InvitationStatus,
    Respondent,
    RespondentRole,
    Survey,
    SurveyStatus,
)

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"\S+@\S+")
_TOKEN_LIKE = re.compile(r"[A-Za-z2-7]{32}")
REASON_MAX = 80


# --- surveys --------------------------------------------------------------------------------


def ensure_survey(session: Session, survey_id: str, questionnaire: str) -> Survey:
    """The survey `survey_id`, created (open) if it does not exist yet.

    An existing survey is returned as it is: its questionnaire and status are not changed.
    """
    survey = session.get(Survey, survey_id)
    if survey is None:
        survey = Survey(id=survey_id, questionnaire=questionnaire, status=SurveyStatus.OPEN)
        session.add(survey)
        session.flush()
        log.info("survey %s created", survey_id)
    return survey


# --- respondents ----------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """The form an address is stored and matched in: trimmed, lower case."""
    return email.strip().lower()


def find_respondent(session: Session, email: str) -> Respondent | None:
    """The respondent with this address (any case), or None."""
    return session.scalars(
        select(Respondent).where(Respondent.email == normalise_email(email))).one_or_none()


def upsert_respondent(
        session: Session, *, email: str, name: str, role: RespondentRole | str,
        municipality_no: str, municipality_name: str, county: str, size_class: str,
        landsdel: str, sector: str | None = None, unit_type: str | None = None,
        phone: str | None = None, telegram: str | None = None, lang: str = "nb") -> Respondent:
    """Create the respondent with this address (any case), or update the one that exists.

    Only fields whose value differs are written, so re-importing an unchanged row changes
    nothing (not even `updated_at`). Invitations are never touched.
    """
    values: dict[str, object] = {
        "name": name, "role": RespondentRole(role), "municipality_no": municipality_no,
        "municipality_name": municipality_name, "county": county, "size_class": size_class,
        "landsdel": landsdel, "sector": sector, "unit_type": unit_type, "phone": phone,
        "telegram": telegram, "lang": lang}
    respondent = find_respondent(session, email)
    if respondent is None:
        respondent = Respondent(email=normalise_email(email))
        session.add(respondent)
    for column, value in values.items():
        if getattr(respondent, column, None) != value:
            setattr(respondent, column, value)
    session.flush()
    return respondent


# --- invitations ----------------------------------------------------------------------------


def _fresh_token(session: Session) -> str:
    """A new token; 160 random bits never collide in practice, but a collision is checked."""
    while True:
        token = tokens.new_token()
        if find_invitation_by_token(session, token) is None:
            return token


def invite(session: Session, respondent: Respondent, survey: Survey) -> Invitation:
    """The respondent's invitation to the survey, created (pending, with a fresh token) once.

    An existing invitation is returned unchanged: its token, status and session state stay.
    """
    existing = session.scalars(select(Invitation).where(
        Invitation.respondent_id == respondent.id,
        Invitation.survey_id == survey.id)).one_or_none()
    if existing is not None:
        return existing
    invitation = Invitation(respondent_id=respondent.id, survey_id=survey.id,
                            token=_fresh_token(session), status=InvitationStatus.PENDING,
                            reminders_sent=0, email_address=respondent.email,
                            answered_from_other_address=False)
    session.add(invitation)
    session.flush()
    log.info("invitation %s created for survey %s", invitation.id, survey.id)
    return invitation


def find_invitation_by_token(session: Session, token: str, *,
                             keep_related: list[object] | None = None) -> Invitation | None:
    """The invitation a token belongs to, or None (also for text that is not a token).

    Tokens are matched in lower case: some mail systems fold the case of an address.

    With `keep_related`, the invitation's respondent and survey come in the same query and are
    appended to it, so that `session.get` finds them loaded afterwards (the session holds
    loaded objects only weakly: something has to keep them). The dispatcher needs both for
    every reply; one query instead of three.
    """
    candidate = token.strip().lower()
    if not tokens.is_token(candidate):
        return None
    if keep_related is None:
        return session.scalars(_BY_TOKEN, {"token": candidate}).one_or_none()
    found = session.execute(_WITH_RELATED_BY_TOKEN, {"token": candidate}).one_or_none()
    if found is None:
        return None
    invitation, respondent, survey = found
    keep_related.extend(item for item in (respondent, survey) if item is not None)
    return invitation


#: Built once: they run for every reply.
_BY_TOKEN = select(Invitation).where(Invitation.token == bindparam("token"))
_WITH_RELATED_BY_TOKEN = (select(Invitation, Respondent, Survey)
                          .outerjoin(Respondent, Respondent.id == Invitation.respondent_id)
                          .outerjoin(Survey, Survey.id == Invitation.survey_id)
                          .where(Invitation.token == bindparam("token")))


def safe_reason(reason: str) -> str:
    """`reason` fit for a log: addresses and token-like strings removed, kept short."""
    cleaned = _ADDRESS.sub("[address]", reason)
    cleaned = _TOKEN_LIKE.sub("[token]", cleaned)
    cleaned = " ".join(cleaned.split())
    return cleaned[:REASON_MAX]


def set_status(session: Session, invitation: Invitation, status: InvitationStatus,
               reason: str, *, now: dt.datetime | None = None) -> InvitationStatus:
    """Move an invitation to `status`; return the status it had.

    The change is logged with the invitation's id and a short reason (e.g. "bounce",
    "opt-out command"); any address or token in the reason is removed first, so nothing
    secret is recorded. A real change is also written to `invitation_events` (at `now`,
    default the current time, UTC) in the caller's transaction: that row is what lets
    `svarbot log` say why someone got, or stopped getting, mail.
    """
    previous = InvitationStatus(invitation.status)
    reason = safe_reason(reason)
    if previous != status:
        invitation.status = status
        if invitation.id is None:  # a new invitation: its id comes with the flush
            session.flush()
        # A plain insert, written at once, rather than an object and a flush: the
        # dispatcher changes a status in its one transaction per message (the first answer,
        # the last), and a flush here would run the unit of work twice in it. The
        # invitation's own change goes with everything else (before the next ORM query, or
        # at the commit).
        session.connection().execute(_INSERT_EVENT, {
            "invitation_id": invitation.id, "status": status.value,
            "previous": previous.value, "reason": reason,
            "at": now or dt.datetime.now(dt.UTC)})
    log.info("invitation %s: %s -> %s (%s)", invitation.id, previous.value, status.value,
             reason)
    return previous


_INSERT_EVENT = insert(cast(Table, InvitationEvent.__table__))


def save_conversation(invitation: Invitation, state: str, *, now: dt.datetime) -> None:
    """Store the conversation's session state (JSON) and the time of the last contact."""
    invitation.session_state = state
    invitation.last_contact_at = now


def set_away(invitation: Invitation, until: dt.date) -> None:
    """The respondent is away until `until` (an out-of-office reply): no reminder before."""
    invitation.away_until = until


def flag_other_sender(invitation: Invitation) -> bool:
    """Mark that a reply came from another address than the invited one; True if new."""
    if invitation.answered_from_other_address:
        return False
    invitation.answered_from_other_address = True
    log.info("invitation %s: reply from another address than the invited one", invitation.id)
    return True


def count_reminder(invitation: Invitation, n: int) -> None:
    """Reminder `n` of the invitation was queued."""
    invitation.reminders_sent = n


def close_invitations(session: Session, survey_id: str, *, keep: Sequence[InvitationStatus],
                      reason: str, now: dt.datetime) -> list[int]:
    """Close every invitation of the survey not in a `keep` status; their ids, ascending.

    One UPDATE, and one `invitation_events` row per invitation (with its previous status), so
    that `svarbot log` can say why the conversation ended.
    """
    from storage.history import record_changes

    before: dict[int, str] = {row.id: row.status for row in session.execute(
        select(Invitation.id, Invitation.status)
        .where(Invitation.survey_id == survey_id, Invitation.status.not_in(keep)))}
    closed = sorted(session.scalars(
        update(Invitation)
        .where(Invitation.survey_id == survey_id, Invitation.status.not_in(keep))
        .values(status=InvitationStatus.CLOSED).returning(Invitation.id)
        .execution_options(synchronize_session="fetch")).all())
    record_changes(session, [(i, InvitationStatus(before[i]) if i in before else None,
                              InvitationStatus.CLOSED) for i in closed],
                   reason=reason, now=now)
    for invitation_id in closed:
        log.info("invitation %s: -> closed (%s)", invitation_id, reason)
    return closed


def close_survey(session: Session, survey_id: str) -> bool:
    """Close the survey if it is open; True when this call closed it."""
    return bool(session.scalars(
        update(Survey).where(Survey.id == survey_id, Survey.status == SurveyStatus.OPEN)
        .values(status=SurveyStatus.CLOSED).returning(Survey.id)
        .execution_options(synchronize_session="fetch")).all())


# --- channels: Telegram ----------------------------------------------------------------------


def ensure_telegram_start(session: Session, invitation: Invitation) -> str:
    """The invitation's deep-link payload, made on first use."""
    if invitation.telegram_start is None:
        invitation.telegram_start = tokens.new_start_code()
        session.flush()
    return invitation.telegram_start


def find_invitation_by_start(session: Session, code: str) -> Invitation | None:
    """The invitation whose deep link carries `code`."""
    if not code or len(code) > 64:
        return None
    return session.scalars(select(Invitation).where(Invitation.telegram_start == code)
                           ).one_or_none()


def find_invitation_by_chat(session: Session, chat_id: int) -> Invitation | None:
    """The invitation a Telegram chat is bound to (the one last in touch, if several)."""
    return session.scalars(
        select(Invitation).where(Invitation.telegram_chat_id == chat_id)
        .order_by(Invitation.last_contact_at.desc().nulls_last(), Invitation.id.desc())
        .limit(1)).one_or_none()


def bind_telegram(session: Session, invitation: Invitation, *, user_id: int,
                  chat_id: int) -> bool:
    """Tie the Telegram user and chat to the invitation; False when another user holds it.

    Binding again from the same user (a second tap on the link) changes nothing but makes the
    chat active again (the respondent pressed Start, so the bot may write).
    """
    if invitation.telegram_user_id is not None and invitation.telegram_user_id != user_id:
        return False
    invitation.telegram_user_id = user_id
    invitation.telegram_chat_id = chat_id
    invitation.telegram_active = True
    session.flush()
    log.info("invitation %s: Telegram chat bound", invitation.id)
    return True


def flag_start_shared(invitation: Invitation) -> None:
    """Someone else presented the invitation's link (it was forwarded): for an operator."""
    if not invitation.start_shared:
        invitation.start_shared = True
        log.warning("invitation %s: its Telegram link was used by another Telegram user",
                    invitation.id)


def note_channel(invitation: Invitation, channel: str) -> None:
    """The respondent last wrote on `channel` (reminders may follow them there)."""
    invitation.last_channel = channel


def channel_unreachable(session: Session, channel: str, invitation_ids: Sequence[int]) -> None:
    """`channel` refused to deliver to these invitations for good (a blocked bot, an account
    gone): they are written to on another channel from now on."""
    if channel == "telegram":
        telegram_unreachable(session, invitation_ids)


def telegram_unreachable(session: Session, invitation_ids: Sequence[int]) -> None:
    """Telegram refused to deliver (bot blocked, account gone): write by email from now on."""
    if not invitation_ids:
        return
    session.execute(update(Invitation).where(Invitation.id.in_(list(invitation_ids)))
                    .values(telegram_active=False)
                    .execution_options(synchronize_session="fetch"))
    for invitation_id in sorted(invitation_ids):
        log.info("invitation %s: Telegram chat no longer reachable; email from now on",
                 invitation_id)


def change_address(session: Session, invitation: Invitation, respondent: Respondent,
                   email: str) -> None:
    """Give the respondent a corrected email address (an operator's fix after a bounce).

    Raises:
        ValueError: another respondent already has that address.
    """
    address = normalise_email(email)
    other = find_respondent(session, address)
    if other is not None and other.id != respondent.id:
        raise ValueError("another respondent already has that address")
    respondent.email = address
    invitation.email_address = address
    invitation.answered_from_other_address = False
