"""The dispatcher: each inbound message, of every channel, once, from the inbox to the
conversation and back.

One message is handled in one database transaction: the inbox row is taken (locked on
PostgreSQL, so several processes can share the inbox), read by its channel
(`Channel.read`), acted on (answers stored, the next prompts queued in the outbox, a bounce or
an away date recorded) and marked done. A crash anywhere rolls all of it back and the message
is handled again; nothing is half-applied and nothing is applied twice.

What happens per verdict:
- answer, query: the text goes to the engine; its prompts go back on the same channel (an
  email in the same thread); a question for a person opens a desk query (`steps.apply_step`);
- opt-out (the unsubscribe address, "Stopp" in the text or the subject): the engine is told
  so (`OptOut`, not a word to parse) and the respondent gets one short confirmation;
- bounce: the message it bounces is found by its message id; a permanent failure marks the
  outbox row and the invitation bounced; a temporary one is only recorded;
- complaint (marked as spam): the person is never written to again;
- auto-reply: never answered and never an answer; a return date is kept so that no reminder
  comes before it;
- ignore (our own message come back, a delivery report): done, nothing kept;
- forward, unknown, no invitation, unreadable: kept in the quarantine with a reason code.

A channel may also ask for more than the engine: a join code (a chat's `/start <payload>`)
ties the sender to an invitation (or is refused when someone else holds it, and the invitation
is flagged); a button press is acknowledged, and answers only if its item is still asked; a
sender may ask to go on by another channel (the current page goes there); and a channel may
have a word of its own for the sender (an edited message is not re-read).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import Channel, Channels, Reading, Unreadable, Verdict
from bot.channels.registry import configured_channels
from bot.config import Settings
from bot.conversation.outgoing import (
    SurveyContext,
    conversation_of,
    message_kind,
    others_than,
    queue_message,
    queue_outgoing,
)
from bot.conversation.steps import apply_step
from bot.desk.answer import DeskError, answer_query
from bot.desk.notify import queue_notice
from flows.engine import advance
from flows.events import Inbound, OptOut, Prompt, Reply, Start
from flows.session import from_json
from storage.answers import AnswerStore
from storage.db import transaction
from storage.desk import find_by_reply_key
from storage.identity import (
    find_invitation_by_start,
    find_invitation_by_token,
    flag_other_sender,
    flag_start_shared,
    normalise_email,
    note_channel,
    set_away,
    set_status,
)
from storage.inbox import mark_ignored, mark_processed, next_received, quarantine
from storage.outbox import find_by_message_id, mark_bounced, note_soft_bounce
from storage.schema import (
    DeskQuery,
    InboxMessage,
    Invitation,
    InvitationStatus,
    Respondent,
    Survey,
    SurveyStatus,
)

log = logging.getLogger(__name__)

#: What the dispatcher did with one message (for tests, the demo's tally and the log).
Outcome = str


@dataclass(slots=True)
class Dispatcher:
    """Works the inbox until stopped; `handle_next` does one message.

    `channels` are the channels whose rows this process reads (default: every configured
    one); a row of another channel waits for a process that knows it.
    """

    session_factory: sessionmaker[Session]
    settings: Settings
    store: AnswerStore
    surveys: Mapping[str, SurveyContext]
    #: Called with the names of the channels a message was queued on, after the commit.
    on_queued: Callable[[set[str]], None] | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    channels: Channels | None = None
    _channels: Channels = field(init=False, repr=False)
    _queued: set[str] = field(default_factory=set, init=False, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        self._channels = self.channels or configured_channels(self.settings)

    def notify(self) -> None:
        """A new message was stored: look now rather than at the next poll."""
        self._wake.set()

    def handle_next(self) -> Outcome | None:
        """Handle the oldest received message; None when the inbox is empty."""
        now = self.clock()
        self._queued = set()
        with transaction(self.session_factory) as session:
            row = next_received(session, now=now, channels=self._channels.names())
            if row is None:
                return None
            outcome = self._handle(session, row, self._channels[row.channel], now)
        if self._queued and self.on_queued is not None:
            self.on_queued(self._queued)
        return outcome

    def drain(self) -> int:
        """Handle messages until the inbox is empty; how many were handled."""
        handled = 0
        while self.handle_next() is not None:
            handled += 1
        return handled

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Handle messages as they arrive until `stop` is set (the one in hand is finished)."""
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

    def _handle(self, session: Session, row: InboxMessage, channel: Channel,
                now: dt.datetime) -> Outcome:
        try:
            reading = channel.read(row.raw or b"", today=now.date())
        except Unreadable as exc:
            quarantine(session, row.id, reason=exc.reason, now=now)
            log.warning("inbox %s quarantined: %s", row.id, exc.reason)
            return f"quarantined:{exc.reason}"
        except Exception as exc:
            # A channel's reader that fails on a message would fail on it at every retry and
            # hold up every message behind it: it is set aside for an operator instead.
            quarantine(session, row.id, reason="read_error", detail=type(exc).__name__, now=now)
            log.exception("inbox %s quarantined: reading it failed", row.id)
            return "quarantined:read_error"
        # What the token query loaded besides the invitation (its respondent and survey), kept
        # referenced while this message is handled so that `session.get` finds it.
        related: list[object] = []
        if reading.start is not None:
            return self._start(session, row, channel, reading, now)
        if reading.verdict in (Verdict.ANSWER, Verdict.QUERY) and reading.token is not None:
            query = find_by_reply_key(session, reading.token)
            if query is not None:
                return self._desk_answer(session, row, reading, query, now)
        invitation = self._invitation(session, channel, reading, related)
        verdict = reading.verdict
        if reading.notice is not None:
            self._notice(session, row, channel, reading, reading.notice, invitation, now)
        if verdict is Verdict.IGNORE and reading.tap:
            stale = invitation is None or not self._asked(invitation, channel, reading)
            self._acknowledge(session, row, channel, reading, stale=stale, now=now)
            self._ignore(session, row, reading, now)
            return f"ignored:{reading.reason}"
        if verdict is Verdict.BOUNCE:
            return self._bounce(session, row, reading, invitation, now)
        if verdict is Verdict.AUTO_REPLY:
            if invitation is not None and reading.return_date is not None:
                set_away(invitation, reading.return_date)
            self._ignore(session, row, reading, now)
            return "auto_reply"
        if verdict is Verdict.IGNORE:
            self._ignore(session, row, reading, now)
            report = reading.reason.endswith("no-failure")  # a delivery report, not a failure
            return "ignored:delivery-report" if report else f"ignored:{reading.reason}"
        if verdict is Verdict.COMPLAINT and invitation is not None:
            # Marked as spam: never write to this person again.
            set_status(session, invitation, InvitationStatus.OPTED_OUT, "spam complaint",
                       now=now)
            self._ignore(session, row, reading, now)
            return "complaint"
        if invitation is None and verdict in (Verdict.ANSWER, Verdict.QUERY) and self._notice(
                session, row, channel, reading, "start_missing", None, now):
            # A chat nobody has tied to an invitation: told how, and nothing kept.
            mark_ignored(session, row.id, classification=str(verdict),
                         reason="sender not tied to an invitation", now=now)
            return "notice:start_missing"
        if verdict in (Verdict.FORWARD, Verdict.UNKNOWN, Verdict.COMPLAINT) \
                or invitation is None:
            reason = "no_token" if invitation is None and verdict is not Verdict.FORWARD \
                else str(verdict)
            quarantine(session, row.id, reason=reason, detail=reading.reason, now=now)
            log.warning("inbox %s quarantined: %s (%s)", row.id, reason, reading.reason)
            return f"quarantined:{reason}"
        return self._converse(session, row, channel, reading, invitation, now)

    def _desk_answer(self, session: Session, row: InboxMessage, reading: Reading,
                     query: DeskQuery, now: dt.datetime) -> Outcome:
        """The contact person answered the desk's mail: the answer goes to the respondent.

        Only from the desk's own address (the reply key alone is not enough); anything else
        is quarantined for an operator to look at.
        """
        desk = self.settings.desk.notify
        sender = normalise_email(reading.sender or "")
        if desk is None or sender != normalise_email(desk):
            quarantine(session, row.id, reason="desk_sender",
                       detail="a reply to the desk's mail from another address", now=now)
            return "quarantined:desk_sender"
        try:
            sent_on = answer_query(session, self.settings, self.surveys, self.store, query,
                                   reading.text, by=f"email:{sender}", key=f"mail:{row.id}",
                                   now=now)
        except DeskError as exc:
            mark_ignored(session, row.id, classification="desk_answer", reason=str(exc),
                         now=now)
            log.warning("inbox %s: desk answer not sent: %s", row.id, exc)
            return "ignored:desk_answer"
        self._queued.add(sent_on.name)
        mark_processed(session, row.id, classification="desk_answer", invitation_id=None,
                       now=now, detail=f"query {query.id}")
        return "desk:answered"

    @staticmethod
    def _ignore(session: Session, row: InboxMessage, reading: Reading,
                now: dt.datetime) -> None:
        mark_ignored(session, row.id, classification=_classification(reading),
                     reason=reading.reason, now=now)

    def _invitation(self, session: Session, channel: Channel, reading: Reading,
                    related: list[object]) -> Invitation | None:
        """By the token (recipient, subject), then by a message id we sent, then by the
        channel's own means (a bound chat)."""
        if reading.token is not None:
            invitation = find_invitation_by_token(session, reading.token, keep_related=related)
            if invitation is not None:
                return invitation
        for message_id in reading.references:
            sent = find_by_message_id(session, message_id)
            if sent is not None and sent.invitation_id is not None:
                return session.get(Invitation, sent.invitation_id)
        return channel.lookup(session, reading)

    def _asked(self, invitation: Invitation, channel: Channel, reading: Reading) -> bool:
        """Whether the item a button press answers is still the one asked."""
        if not invitation.session_state:
            return False
        survey = self.surveys.get(invitation.survey_id)
        if survey is None:
            return False
        return channel.still_asked(reading, from_json(invitation.session_state).asked)

    def _notice(self, session: Session, row: InboxMessage, channel: Channel, reading: Reading,
                key: str, invitation: Invitation | None, now: dt.datetime) -> bool:
        """Queue the channel's note `key` to the sender; False when it has none."""
        lang = reading.lang or "nb"
        if invitation is not None and invitation.session_state:
            lang = from_json(invitation.session_state).lang
        out = channel.notice(reading, key, lang)
        if out is None:
            return False
        queue_outgoing(session, channel, [out], key=f"notice:{row.id}", kind="info",
                       now=now, invitation_id=invitation.id if invitation else None)
        self._queued.add(channel.name)
        return True

    def _acknowledge(self, session: Session, row: InboxMessage, channel: Channel,
                     reading: Reading, *, stale: bool, now: dt.datetime) -> None:
        if queue_outgoing(session, channel, channel.acknowledge(reading, stale=stale),
                          key=f"ack:{row.id}", kind="ack", now=now):
            self._queued.add(channel.name)

    def _start(self, session: Session, row: InboxMessage, channel: Channel, reading: Reading,
               now: dt.datetime) -> Outcome:
        """A join code: bind the sender and show where the conversation stands."""
        code = reading.start or ""
        invitation = (find_invitation_by_start(session, code) if code
                      else channel.lookup(session, reading))
        if invitation is None:
            key = "start_unknown" if code else "start_missing"
            self._notice(session, row, channel, reading, key, None, now)
            mark_processed(session, row.id, classification="start", invitation_id=None,
                           now=now, detail=key)
            return f"notice:{key}"
        if not channel.bind(session, invitation, reading):
            flag_start_shared(invitation)
            self._notice(session, row, channel, reading, "start_taken", None, now)
            mark_processed(session, row.id, classification="start", invitation_id=None,
                           now=now, detail="link held by another user")
            return "refused:start_taken"
        return self._converse(session, row, channel, reading, invitation, now)

    def _bounce(self, session: Session, row: InboxMessage, reading: Reading,
                invitation: Invitation | None, now: dt.datetime) -> Outcome:
        bounce = reading.bounce
        permanent = bounce is not None and bounce.permanent
        sent = None
        if bounce is not None and bounce.original_message_id:
            sent = find_by_message_id(session, bounce.original_message_id)
        status = bounce.status if bounce is not None and bounce.status else ""
        detail = f"{'hard' if permanent else 'soft'} bounce {status}".strip()
        if sent is not None and permanent:
            mark_bounced(session, sent.id, now=now, reason=detail)
        elif sent is not None:
            note_soft_bounce(session, sent.id, now=now, detail=detail)
        elif invitation is not None and permanent:
            set_status(session, invitation, InvitationStatus.BOUNCED, "bounce report", now=now)
        mark_ignored(session, row.id, classification=str(Verdict.BOUNCE), reason=detail,
                     now=now)
        return "bounce:hard" if permanent else "bounce:soft"

    def _converse(self, session: Session, row: InboxMessage, channel: Channel,
                  reading: Reading, invitation: Invitation, now: dt.datetime) -> Outcome:
        survey = self.surveys.get(invitation.survey_id)
        if session.get_bind().dialect.name == "postgresql":
            # Another process may be writing a reminder into this conversation right now:
            # take the row, and read its session state again under the lock.
            session.refresh(invitation, with_for_update=True)
        # Usually loaded with the invitation already (see `_invitation`).
        respondent = session.get_one(Respondent, invitation.respondent_id)
        if not channel.same_sender(reading, invitation, respondent):
            flag_other_sender(invitation)
        if survey is None:
            quarantine(session, row.id, reason="unknown_survey", now=now)
            return "quarantined:unknown_survey"
        q = survey.questionnaire
        conversation = conversation_of(invitation, respondent, survey, channel)
        # Read in this transaction (a survey closed a moment ago gets the "closed" reply) and
        # kept referenced, so the answer store's own check finds it loaded.
        db_survey = session.get(Survey, invitation.survey_id)
        closed = (db_survey is not None and db_survey.status != SurveyStatus.OPEN) or (
            invitation.status == InvitationStatus.CLOSED)
        classification = _classification(reading)
        if reading.tap:
            stale = not channel.still_asked(reading, conversation.asked)
            self._acknowledge(session, row, channel, reading, stale=stale, now=now)
            if stale:
                mark_ignored(session, row.id, classification=classification,
                             reason="tap on an answered question", now=now)
                return "ignored:stale_tap"
        note_channel(invitation, channel.name)
        if closed:
            queue_message(session, channel, survey, invitation, respondent, conversation,
                          kind="closed", prompts=(), key=f"reply:{row.id}", now=now,
                          reply=reading.reply, others=others_than(self._channels, channel))
            self._queued.add(channel.name)
            mark_processed(session, row.id, classification=classification,
                           invitation_id=invitation.id, now=now, detail="survey closed")
            return "replied:closed"
        answering = channel
        if reading.switch_to is not None and reading.switch_to in self._channels.names():
            answering = self._channels[reading.switch_to]
            self._notice(session, row, channel, reading, f"by_{answering.name}", invitation,
                         now)
            note_channel(invitation, answering.name)
        inbound: Inbound
        if reading.verdict is Verdict.OPT_OUT:
            inbound = OptOut(channel=channel.style)
        elif reading.start is not None or answering is not channel:
            inbound = Start(channel=answering.style)
        else:
            inbound = Reply(reading.text, channel=channel.style)
        step = advance(q, conversation, inbound, now=now)
        asked = apply_step(session, self.store, invitation, respondent, step, now=now,
                           questionnaire=q, channel=channel.name, thread=_thread(reading))
        if asked is not None and queue_notice(session, self.settings, self.surveys, asked,
                                              now=now):
            self._queued.add("email")
        prompts: tuple[Prompt, ...] = step.prompts
        if prompts:
            queue_message(session, answering, survey, invitation, respondent, step.session,
                          kind=message_kind(prompts), prompts=prompts, key=f"reply:{row.id}",
                          now=now, reply=reading.reply if answering is channel else None,
                          others=others_than(self._channels, answering))
            self._queued.add(answering.name)
        detail = "needs review" if reading.needs_review else reading.rule
        mark_processed(session, row.id, classification=classification,
                       invitation_id=invitation.id, now=now, detail=detail)
        return f"replied:{classification}" if prompts else f"processed:{classification}"


def _classification(reading: Reading) -> str:
    """The inbox row's classification: the verdict, as the history names it (a join code
    is a start, not an answer)."""
    if reading.start is not None:
        return "start"
    return "unknown" if reading.verdict is Verdict.IGNORE else str(reading.verdict)


def _thread(reading: Reading) -> tuple[str, ...]:
    """The message's thread with its own Message-ID last (where an answer to it belongs)."""
    reply = reading.reply
    if reply is None:
        return ()
    own = (reply.message_id,) if reply.message_id else ()
    return (*reply.references, *own)
