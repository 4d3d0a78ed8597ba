"""The dispatcher: each inbound email, once, from the inbox to the conversation and back.

One message is handled in one database transaction: the inbox row is taken (locked on
PostgreSQL, so several processes can share the inbox), read (parse → trim → classify), acted
on (answers stored, the next page queued in the outbox, a bounce or an away date recorded)
and marked done. A crash anywhere rolls all of it back and the message is handled again;
nothing is half-applied and nothing is applied twice.

What happens per kind:
- answer, query: the trimmed text goes to the engine; its prompts go back as a reply in the
  same thread; a question for a person opens a desk query for the contact person;
- opt-out (the List-Unsubscribe address, or "stopp"): the engine stops the conversation and
  the respondent gets one short confirmation;
- bounce: the message it bounces is found by its Message-ID; a permanent failure marks the
  outbox row and the invitation bounced; a temporary one (and a 5.7.x policy refusal, which
  says something about our sending, not the address) is only recorded;
- spam complaint (ARF) about an invitation: the person is never written to again;
- auto-reply: never answered and never an answer; an out-of-office return date is kept so
  that no reminder comes before it;
- forward, unknown, unreadable: kept in the quarantine with a reason code for an operator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.conversation import apply_step
from bot.mail.classify import Classification
from bot.mail.inbound import BadMail, MailKind
from bot.mail.outgoing import SurveyContext, mail_kind, queue_mail, session_language
from bot.mail.reading import Reading, read_mail
from flows.engine import advance
from flows.events import Prompt, QueryRaised, Reply
from flows.session import from_json, new_session
from storage.answers import AnswerStore
from storage.db import transaction
from storage.identity import find_invitation_by_token, normalise_email, set_status
from storage.inbox import mark_ignored, mark_processed, next_received, quarantine
from storage.outbox import find_by_message_id, mark_bounced
from storage.schema import (
    DeskQuery,
    InboxMessage,
    Invitation,
    InvitationStatus,
    OutboxEvent,
    Respondent,
    Survey,
    SurveyStatus,
)

log = logging.getLogger(__name__)

#: What the dispatcher did with one message (for tests, the demo's tally and the log).
Outcome = str


@dataclass(slots=True)
class Dispatcher:
    """Works the inbox until stopped; `handle_next` does one message."""

    session_factory: sessionmaker[Session]
    settings: Settings
    store: AnswerStore
    surveys: Mapping[str, SurveyContext]
    on_queued: Callable[[], None] | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    _wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def notify(self) -> None:
        """New mail was stored: look now rather than at the next poll."""
        self._wake.set()

    def handle_next(self) -> Outcome | None:
        """Handle the oldest received message; None when the inbox is empty."""
        now = self.clock()
        with transaction(self.session_factory) as session:
            row = next_received(session, now=now)
            if row is None:
                return None
            outcome = self._handle(session, row, now)
        if outcome.startswith("replied") and self.on_queued is not None:
            self.on_queued()
        return outcome

    def drain(self) -> int:
        """Handle messages until the inbox is empty; how many were handled."""
        handled = 0
        while self.handle_next() is not None:
            handled += 1
        return handled

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Handle mail as it arrives until `stop` is set (the message in hand is finished)."""
        while not stop.is_set():
            try:
                outcome = await asyncio.to_thread(self.handle_next)
            except Exception:  # one bad message or a database hiccup must not stop the loop
                log.exception("inbox: handling failed; retrying shortly")
                outcome = None
                await asyncio.sleep(poll_seconds)
            if outcome is None:
                self._wake.clear()
                await asyncio.to_thread(self._wake.wait, poll_seconds)

    # --- one message ------------------------------------------------------------------------

    def _handle(self, session: Session, row: InboxMessage, now: dt.datetime) -> Outcome:
        raw = row.raw or b""
        try:
            reading = read_mail(raw, self.settings.email, today=now.date())
        except BadMail as exc:
            quarantine(session, row.id, reason=exc.reason, now=now)
            log.warning("inbox %s quarantined: %s", row.id, exc.reason)
            return f"quarantined:{exc.reason}"
        c = reading.classification
        # What the token query loaded besides the invitation (its respondent and survey), kept
        # referenced while this message is handled so that `session.get` finds it.
        related: list[object] = []
        invitation = self._invitation(session, reading, related)
        if c.kind is MailKind.BOUNCE:
            return self._bounce(session, row, c, invitation, now)
        if c.kind is MailKind.AUTO_REPLY:
            if invitation is not None and c.return_date is not None:
                invitation.away_until = c.return_date
            mark_ignored(session, row.id, classification=c.kind, reason=c.reason, now=now)
            return "auto_reply"
        if c.kind is MailKind.UNKNOWN and c.reason.endswith("no-failure"):
            mark_ignored(session, row.id, classification=c.kind, reason=c.reason, now=now)
            return "ignored:delivery-report"
        if c.kind is MailKind.UNKNOWN and c.reason == "complaint" and invitation is not None:
            # Marked as spam: never write to this person again.
            set_status(session, invitation, InvitationStatus.OPTED_OUT, "spam complaint",
                       now=now)
            mark_ignored(session, row.id, classification=c.kind, reason=c.reason, now=now)
            return "complaint"
        if c.kind in (MailKind.FORWARD, MailKind.UNKNOWN) or invitation is None:
            reason = "no_token" if invitation is None and c.kind is not MailKind.FORWARD \
                else str(c.kind)
            if c.reason == "loop":
                mark_ignored(session, row.id, classification=c.kind, reason="loop", now=now)
                return "ignored:loop"
            quarantine(session, row.id, reason=reason, detail=c.reason, now=now)
            log.warning("inbox %s quarantined: %s (%s)", row.id, reason, c.reason)
            return f"quarantined:{reason}"
        return self._converse(session, row, reading, invitation, now)

    def _invitation(self, session: Session, reading: Reading,
                    related: list[object]) -> Invitation | None:
        """By the token (recipient, subject, our reference id), then by a Message-ID we sent."""
        token = reading.classification.token
        if token is not None:
            invitation = find_invitation_by_token(session, token, keep_related=related)
            if invitation is not None:
                return invitation
        bounce = reading.classification.bounce
        candidates = [bounce.original_message_id] if bounce else []
        candidates += [reading.mail.in_reply_to, *reversed(reading.mail.references)]
        for message_id in candidates:
            if not message_id:
                continue
            sent = find_by_message_id(session, message_id)
            if sent is not None and sent.invitation_id is not None:
                return session.get(Invitation, sent.invitation_id)
        return None

    def _bounce(self, session: Session, row: InboxMessage, c: Classification,
                invitation: Invitation | None, now: dt.datetime) -> Outcome:
        bounce = c.bounce
        permanent = bounce is not None and bounce.permanent
        if permanent and bounce is not None and (bounce.status or "").startswith("5.7"):
            # A policy refusal (authentication, reputation) is about us, not the address.
            log.warning("inbox %s: delivery refused by policy (%s): check SPF/DKIM/DMARC and "
                        "the sending account", row.id, bounce.status)
            permanent = False
        sent = None
        if bounce is not None and bounce.original_message_id:
            sent = find_by_message_id(session, bounce.original_message_id)
        detail = f"{'hard' if permanent else 'soft'} bounce {bounce.status if bounce else ''}"
        if sent is not None and permanent:
            mark_bounced(session, sent.id, now=now, reason=detail.strip())
        elif sent is not None:
            session.add(OutboxEvent(outbox_id=sent.id, at=now, status="soft_bounce",
                                    detail=detail.strip()))
        elif invitation is not None and permanent:
            set_status(session, invitation, InvitationStatus.BOUNCED, "bounce report", now=now)
        mark_ignored(session, row.id, classification=MailKind.BOUNCE, reason=detail.strip(),
                     now=now)
        return "bounce:hard" if permanent else "bounce:soft"

    def _converse(self, session: Session, row: InboxMessage, reading: Reading,
                  invitation: Invitation, now: dt.datetime) -> Outcome:
        c = reading.classification
        survey = self.surveys.get(invitation.survey_id)
        if session.get_bind().dialect.name == "postgresql":
            # Another process may be writing a reminder into this conversation right now:
            # take the row, and read its session state again under the lock.
            session.refresh(invitation, with_for_update=True)
        # Usually loaded with the invitation already (see `_invitation`).
        respondent = session.get_one(Respondent, invitation.respondent_id)
        sender = normalise_email(reading.mail.from_address or "")
        invited = normalise_email(invitation.email_address or respondent.email)
        if sender and sender != invited and not invitation.answered_from_other_address:
            invitation.answered_from_other_address = True
            log.info("invitation %s: reply from another address than the invited one",
                     invitation.id)
        if survey is None:
            quarantine(session, row.id, reason="unknown_survey", now=now)
            return "quarantined:unknown_survey"
        q = survey.questionnaire
        conversation = (from_json(invitation.session_state) if invitation.session_state
                        else new_session(q.id, q.revision, channel="email",
                                         lang=session_language(respondent, survey)))
        thread = [*reading.mail.references]
        if reading.mail.message_id:
            thread.append(reading.mail.message_id)
        # Read in this transaction (a survey closed a moment ago gets the "closed" reply) and
        # kept referenced, so the answer store's own check finds it loaded.
        db_survey = session.get(Survey, invitation.survey_id)
        closed = (db_survey is not None and db_survey.status != SurveyStatus.OPEN) or (
            invitation.status == InvitationStatus.CLOSED)
        if closed:
            queue_mail(session, self.settings, survey, invitation, respondent, conversation,
                       kind="closed", prompts=(), key=f"reply:{row.id}", now=now,
                       in_reply_to=reading.mail.message_id, references=thread)
            mark_processed(session, row.id, classification=c.kind,
                           invitation_id=invitation.id, now=now, detail="survey closed")
            return "replied:closed"
        text = "stopp" if (c.kind is MailKind.OPT_OUT and c.reason == "unsubscribe-address") \
            else reading.reply.text
        step = advance(q, conversation, Reply(text, channel="email"), now=now)
        apply_step(session, self.store, invitation, respondent, step, now=now, questionnaire=q)
        for event in step.events:
            if isinstance(event, QueryRaised):
                session.add(DeskQuery(invitation_id=invitation.id, text=event.text,
                                      created_at=now))
        prompts: tuple[Prompt, ...] = step.prompts
        if prompts:
            queue_mail(session, self.settings, survey, invitation, respondent, step.session,
                       kind=mail_kind(prompts), prompts=prompts, key=f"reply:{row.id}",
                       now=now, in_reply_to=reading.mail.message_id, references=thread)
        detail = "needs review" if reading.reply.needs_review else reading.reply.rule
        mark_processed(session, row.id, classification=c.kind, invitation_id=invitation.id,
                       now=now, detail=detail)
        return f"replied:{c.kind}" if prompts else f"processed:{c.kind}"
