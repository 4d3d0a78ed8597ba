"""Is svarbot working? Heartbeats of its parts, and the alerts an operator must hear about.

The running service writes a heartbeat when a part has done its work (the leader's clock,
an IMAP check, a Telegram poll: `storage.health.Pulse`); the dashboard's health page reads
them. `current_alerts` is the one place that decides what is wrong enough to
alert: email sending failing for `alerts.sending_down_minutes` while mail waits, or the last
hour's bounce rate over `alerts.bounce_rate`. The health page shows them, and the leader's
clock mails them to `alerts.to` (once an hour per alert, through the outbox like any mail:
when the mail server itself is down, the alert goes when it is back, and the page shows it
meanwhile).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import Message
from bot.channels.registry import configured_channels
from bot.config import Settings
from bot.conversation.outgoing import queue_outgoing
from storage.dashboard import retrying_since, sending_state
from storage.db import transaction
from storage.health import beat, heartbeats
from storage.tokens import new_token

log = logging.getLogger(__name__)

#: How often an alert is mailed again while it lasts.
ALERT_REPEAT = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something wrong: a key (one mail per key and hour) and what to say, in nb and en."""

    key: str
    nb: str
    en: str

    def text(self, lang: str) -> str:
        return self.nb if lang == "nb" else self.en


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def current_alerts(session: Session, settings: Settings, *, now: dt.datetime) -> list[Alert]:
    """What is wrong now."""
    rules = settings.alerts
    alerts = []
    state = sending_state(session, now=now)
    failing = retrying_since(session, now=now)
    if state.oldest_overdue is not None and failing is not None:
        minutes = (now - _utc(failing)).total_seconds() / 60
        if minutes >= rules.sending_down_minutes:
            alerts.append(Alert(
                "sending_down",
                f"E-post kommer ikke ut: sendingen har feilet i {minutes:.0f} minutter, og "
                f"e-post venter. Se Drift og Mislykkede.",
                f"Email is not going out: sending has failed for {minutes:.0f} minutes while "
                f"mail waits. See Health and Failed."))
    if state.sent_last_hour >= rules.bounce_min_sent:
        rate = state.bounced_last_hour / state.sent_last_hour
        if rate > rules.bounce_rate:
            alerts.append(Alert(
                "bounce_rate",
                f"{100 * rate:.0f} % av e-postene den siste timen kom i retur "
                f"({state.bounced_last_hour} av {state.sent_last_hour}). Sjekk adresselisten.",
                f"{100 * rate:.0f} % of the last hour's email bounced "
                f"({state.bounced_last_hour} of {state.sent_last_hour}). Check the list."))
    return alerts


def mail_alerts(factory: sessionmaker[Session], settings: Settings, *,
                now: dt.datetime) -> int:
    """Queue a mail to `alerts.to` for each current alert not mailed in the last hour; how
    many were queued (the leader's clock calls this every minute)."""
    to = settings.alerts.to
    email = configured_channels(settings).get("email")
    queued = 0
    with transaction(factory) as session:
        alerts = current_alerts(session, settings, now=now)
        beats = heartbeats(session)
        for alert in alerts:
            last = beats.get(f"alert:{alert.key}")
            if last is not None and now - _utc(last.at) < ALERT_REPEAT:
                continue
            beat(session, f"alert:{alert.key}", now=now, detail=alert.en[:200])
            log.warning("alert: %s", alert.en)
            if email is None:
                continue
            for address in to:
                message = Message(kind="alert", lang="nb", token=new_token(), to_name="",
                                  survey_title=alert.nb, prompts=(alert.nb, alert.en),
                                  progress=None, contact=None)
                queued += queue_outgoing(session, email, email.outgoing(message, address),
                                         key=f"alert:{alert.key}:{now.isoformat()}:{address}",
                                         kind="alert", now=now)
    return queued


def leader_heartbeat(factory: sessionmaker[Session], *, detail: str,
                     now: dt.datetime) -> None:
    """The leader's clock is alive (a clock job every half minute)."""
    with transaction(factory) as session:
        beat(session, "leader", now=now, detail=detail)
